//! A parser and evaluator for the subset of Qualys Query Language (QQL) that
//! FIM clients write:
//!
//! - `field: value`, `field: 'quoted value'`, `field: "quoted value"`
//!   (strings compare without regard to case, numbers as numbers);
//! - ranges `field: ['from'..'to']`, both ends inclusive;
//! - lists `field: [a, b, c]`, matching any of the values;
//! - comparisons `field > 3`, `>=`, `<`, `<=` on numbers and dates;
//! - `and`, `or`, `not` (any case) and parentheses.
//!
//! Inside quotes a backslash escapes the next character, so a path ending
//! in a single backslash (`'C:\temp\'`) leaves the quote open and is invalid,
//! as it is on the real API.

use std::fmt;

use crate::record::{FieldValue, Record, is_date_field, lookup, parse_time_ms};

/// Deepest nesting of parentheses and `not` a filter may use; deeper
/// filters are rejected before they can exhaust the parser's stack.
pub const MAX_NESTING: usize = 64;

/// Earliest `dateTime` a filter may ask for, as documented for the FIM API.
pub const EARLIEST_DATE_TIME_MS: i64 = 1_483_228_800_000; // 2017-01-01T00:00:00Z

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        field: String,
        op: Op,
        value: Literal,
    },
    Range {
        field: String,
        from: Literal,
        to: Literal,
    },
    AnyOf {
        field: String,
        values: Vec<Literal>,
    },
}

/// Comparison operator; `:` is equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A value written in a filter, already converted for its field: date fields
/// hold epoch ms, others keep the text and, when it reads as one, a number.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Time(i64),
    Value { text: String, number: Option<f64> },
}

/// An invalid filter: the problem and its character position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter: {message} (at character {position} of the filter)")]
pub struct FilterError {
    pub message: String,
    pub position: usize,
}

/// Parses `text` as a filter over records whose top-level fields are
/// `known_fields`.
pub fn parse(text: &str, known_fields: &[&str]) -> Result<Filter, FilterError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(FilterError {
            message: "the filter is empty".to_owned(),
            position: 0,
        });
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        known_fields,
        end: text.chars().count(),
        depth: 0,
    };
    let filter = parser.parse_or()?;
    if let Some(token) = parser.tokens.get(parser.next) {
        return Err(FilterError {
            message: format!("unexpected {} after a complete condition", token.kind),
            position: token.position,
        });
    }
    Ok(filter)
}

impl Filter {
    /// Tells whether `record` matches. `parsed` caches the record's JSON tree
    /// across the conditions of one evaluation.
    pub fn matches(&self, record: &Record) -> bool {
        let mut parsed = None;
        self.eval(record, &mut parsed)
    }

    fn eval(&self, record: &Record, parsed: &mut Option<serde_json::Value>) -> bool {
        match self {
            Filter::And(parts) => parts.iter().all(|part| part.eval(record, parsed)),
            Filter::Or(parts) => parts.iter().any(|part| part.eval(record, parsed)),
            Filter::Not(inner) => !inner.eval(record, parsed),
            Filter::Compare { field, op, value } => lookup(record, field, parsed)
                .iter()
                .any(|found| compare(found, value).is_some_and(|order| op.accepts(order))),
            Filter::Range { field, from, to } => {
                lookup(record, field, parsed).iter().any(|found| {
                    compare(found, from).is_some_and(|order| order.is_ge())
                        && compare(found, to).is_some_and(|order| order.is_le())
                })
            }
            Filter::AnyOf { field, values } => lookup(record, field, parsed).iter().any(|found| {
                values
                    .iter()
                    .any(|value| compare(found, value).is_some_and(|order| order.is_eq()))
            }),
        }
    }

    /// Returns the inclusive bounds this filter puts on `field` through
    /// conditions every match must meet (top-level `and` only), so a search
    /// can skip straight to the matching part of a time-ordered stream.
    pub fn bounds(&self, field: &str) -> (Option<i64>, Option<i64>) {
        let mut low: Option<i64> = None;
        let mut high: Option<i64> = None;
        let mut tighten = |lo: Option<i64>, hi: Option<i64>| {
            if let Some(lo) = lo {
                low = Some(low.map_or(lo, |current| current.max(lo)));
            }
            if let Some(hi) = hi {
                high = Some(high.map_or(hi, |current| current.min(hi)));
            }
        };
        match self {
            Filter::And(parts) => {
                for part in parts {
                    let (lo, hi) = part.bounds(field);
                    tighten(lo, hi);
                }
            }
            Filter::Range {
                field: name,
                from: Literal::Time(from),
                to: Literal::Time(to),
            } if name == field => tighten(Some(*from), Some(*to)),
            Filter::Compare {
                field: name,
                op,
                value: Literal::Time(at),
            } if name == field => match op {
                Op::Eq => tighten(Some(*at), Some(*at)),
                Op::Gt => tighten(Some(at.saturating_add(1)), None),
                Op::Ge => tighten(Some(*at), None),
                Op::Lt => tighten(None, Some(at.saturating_sub(1))),
                Op::Le => tighten(None, Some(*at)),
            },
            _ => {}
        }
        (low, high)
    }
}

impl Op {
    fn accepts(self, order: std::cmp::Ordering) -> bool {
        match self {
            Op::Eq => order.is_eq(),
            Op::Gt => order.is_gt(),
            Op::Ge => order.is_ge(),
            Op::Lt => order.is_lt(),
            Op::Le => order.is_le(),
        }
    }
}

/// Orders a record's value against a filter literal; `None` when the two
/// cannot be compared (text against a range of numbers, say).
fn compare(found: &FieldValue, literal: &Literal) -> Option<std::cmp::Ordering> {
    match (found, literal) {
        (FieldValue::Time(ms), Literal::Time(at)) => Some(ms.cmp(at)),
        (FieldValue::Time(_), Literal::Value { .. }) => None,
        (
            FieldValue::Number(number),
            Literal::Value {
                number: Some(n), ..
            },
        ) => number.partial_cmp(n),
        (
            FieldValue::Text(text),
            Literal::Value {
                text: wanted,
                number,
            },
        ) => {
            // Numbers sent as strings ("severity": "4") still compare as numbers.
            if let (Some(wanted), Ok(have)) = (number, text.trim().parse::<f64>()) {
                return have.partial_cmp(wanted);
            }
            Some(text.to_lowercase().cmp(&wanted.to_lowercase()))
        }
        (FieldValue::Bool(flag), Literal::Value { text, .. }) => {
            let wanted = text.eq_ignore_ascii_case("true");
            if !wanted && !text.eq_ignore_ascii_case("false") {
                return None;
            }
            Some(flag.cmp(&wanted))
        }
        (FieldValue::Number(_), _) | (FieldValue::Text(_), Literal::Time(_)) => None,
        (FieldValue::Bool(_), Literal::Time(_)) => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Word(String),
    Quoted(String),
    Colon,
    Op(Op),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    DotDot,
    Comma,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Word(word) => write!(f, "'{word}'"),
            TokenKind::Quoted(text) => write!(f, "quoted value '{text}'"),
            TokenKind::Colon => f.write_str("':'"),
            TokenKind::Op(op) => f.write_str(match op {
                Op::Eq => "':'",
                Op::Gt => "'>'",
                Op::Ge => "'>='",
                Op::Lt => "'<'",
                Op::Le => "'<='",
            }),
            TokenKind::Open => f.write_str("'('"),
            TokenKind::Close => f.write_str("')'"),
            TokenKind::OpenBracket => f.write_str("'['"),
            TokenKind::CloseBracket => f.write_str("']'"),
            TokenKind::DotDot => f.write_str("'..'"),
            TokenKind::Comma => f.write_str("','"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// Character offset in the filter text, for error messages.
    position: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let start = at;
        let current = chars[at];
        let next = chars.get(at + 1).copied();
        let kind = match current {
            c if c.is_whitespace() => {
                at += 1;
                continue;
            }
            ':' => TokenKind::Colon,
            '(' => TokenKind::Open,
            ')' => TokenKind::Close,
            '[' => TokenKind::OpenBracket,
            ']' => TokenKind::CloseBracket,
            ',' => TokenKind::Comma,
            '.' if next == Some('.') => {
                at += 1;
                TokenKind::DotDot
            }
            '>' | '<' => {
                let or_equal = next == Some('=');
                if or_equal {
                    at += 1;
                }
                TokenKind::Op(match (current, or_equal) {
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    ('<', false) => Op::Lt,
                    _ => Op::Le,
                })
            }
            '\'' | '"' => {
                let quote = current;
                let mut value = String::new();
                at += 1;
                loop {
                    match chars.get(at) {
                        None => {
                            return Err(FilterError {
                                message: "the quoted value starting here is not closed \
                                     (a backslash escapes the next character, so write a \
                                     trailing backslash as \\\\)"
                                    .to_owned(),
                                position: start,
                            });
                        }
                        Some('\\') => {
                            if let Some(escaped) = chars.get(at + 1) {
                                value.push(*escaped);
                            }
                            at += 2;
                        }
                        Some(c) if *c == quote => break,
                        Some(c) => {
                            value.push(*c);
                            at += 1;
                        }
                    }
                }
                TokenKind::Quoted(value)
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.get(at) {
                    let ends_word = c.is_whitespace()
                        || matches!(
                            c,
                            ':' | '(' | ')' | '[' | ']' | ',' | '\'' | '"' | '<' | '>'
                        )
                        || (c == '.' && chars.get(at + 1) == Some(&'.'));
                    if ends_word {
                        break;
                    }
                    word.push(c);
                    at += 1;
                }
                tokens.push(Token {
                    kind: TokenKind::Word(word),
                    position: start,
                });
                continue;
            }
        };
        tokens.push(Token {
            kind,
            position: start,
        });
        at += 1;
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    next: usize,
    known_fields: &'a [&'a str],
    /// Length of the filter text, the position reported for "ended early".
    end: usize,
    /// Parentheses and `not` currently open.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&TokenKind> {
        self.tokens.get(self.next).map(|token| &token.kind)
    }

    fn position(&self) -> usize {
        self.tokens
            .get(self.next)
            .map_or(self.end, |token| token.position)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError {
            message: message.into(),
            position: self.position(),
        })
    }

    fn advance(&mut self) -> Option<TokenKind> {
        let token = self.tokens.get(self.next).map(|token| token.kind.clone());
        self.next += 1;
        token
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(TokenKind::Word(word)) if word.eq_ignore_ascii_case(keyword))
    }

    fn parse_or(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.parse_and()?];
        while self.at_keyword("or") {
            self.next += 1;
            parts.push(self.parse_and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn parse_and(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.parse_not()?];
        while self.at_keyword("and") {
            self.next += 1;
            parts.push(self.parse_not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn parse_not(&mut self) -> Result<Filter, FilterError> {
        if self.at_keyword("not") {
            self.enter()?;
            self.next += 1;
            let inner = self.parse_not()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.error(format!(
                "the filter nests parentheses and 'not' deeper than {MAX_NESTING} levels"
            ));
        }
        Ok(())
    }

    fn parse_primary(&mut self) -> Result<Filter, FilterError> {
        match self.peek() {
            Some(TokenKind::Open) => {
                self.enter()?;
                self.next += 1;
                let inner = self.parse_or()?;
                if self.peek() != Some(&TokenKind::Close) {
                    return self.error("missing ')' to close the '(' before it");
                }
                self.next += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(TokenKind::Word(_)) => self.parse_condition(),
            Some(other) => {
                let message = format!("expected a field name, found {other}");
                self.error(message)
            }
            None => self.error("the filter ends where a condition is expected"),
        }
    }

    fn parse_condition(&mut self) -> Result<Filter, FilterError> {
        let field_position = self.position();
        let Some(TokenKind::Word(field)) = self.advance() else {
            return self.error("expected a field name");
        };
        self.check_field(&field, field_position)?;

        let op = match self.advance() {
            Some(TokenKind::Colon) => Op::Eq,
            Some(TokenKind::Op(op)) => op,
            _ => {
                self.next = self.next.saturating_sub(1);
                let message = format!("expected ':' or a comparison after field '{field}'");
                return self.error(message);
            }
        };

        if op == Op::Eq && self.peek() == Some(&TokenKind::OpenBracket) {
            self.next += 1;
            return self.parse_bracket(field);
        }

        let value = self.parse_literal(&field)?;
        if !matches!(value, Literal::Time(_))
            && op != Op::Eq
            && matches!(value, Literal::Value { number: None, .. })
        {
            return Err(FilterError {
                message: format!("'{field}' can only be compared with a number or a date"),
                position: field_position,
            });
        }
        self.check_date_floor(&field, &value, field_position)?;
        Ok(Filter::Compare { field, op, value })
    }

    /// Parses what follows `field: [`: a range `'a'..'b']` or a list `a, b]`.
    fn parse_bracket(&mut self, field: String) -> Result<Filter, FilterError> {
        let start = self.position();
        let first = self.parse_literal(&field)?;
        match self.advance() {
            Some(TokenKind::DotDot) => {
                let to = self.parse_literal(&field)?;
                if self.advance() != Some(TokenKind::CloseBracket) {
                    self.next = self.next.saturating_sub(1);
                    return self.error("missing ']' to close the range");
                }
                let reversed = match (&first, &to) {
                    (Literal::Time(from), Literal::Time(to)) => from > to,
                    (
                        Literal::Value {
                            number: Some(from), ..
                        },
                        Literal::Value {
                            number: Some(to), ..
                        },
                    ) => from > to,
                    _ => false,
                };
                if reversed {
                    return Err(FilterError {
                        message: format!("the range on '{field}' ends before it starts"),
                        position: start,
                    });
                }
                self.check_date_floor(&field, &first, start)?;
                Ok(Filter::Range {
                    field,
                    from: first,
                    to,
                })
            }
            Some(TokenKind::Comma) => {
                let mut values = vec![first];
                loop {
                    values.push(self.parse_literal(&field)?);
                    match self.advance() {
                        Some(TokenKind::Comma) => continue,
                        Some(TokenKind::CloseBracket) => break,
                        _ => {
                            self.next = self.next.saturating_sub(1);
                            return self.error("expected ',' or ']' in the list of values");
                        }
                    }
                }
                Ok(Filter::AnyOf { field, values })
            }
            Some(TokenKind::CloseBracket) => Ok(Filter::AnyOf {
                field,
                values: vec![first],
            }),
            _ => {
                self.next = self.next.saturating_sub(1);
                self.error("expected '..' (a range) or ',' (a list) after the first value")
            }
        }
    }

    fn parse_literal(&mut self, field: &str) -> Result<Literal, FilterError> {
        let position = self.position();
        let text = match self.advance() {
            Some(TokenKind::Quoted(text)) => text,
            Some(TokenKind::Word(word)) => word,
            Some(other) => {
                self.next = self.next.saturating_sub(1);
                let message = format!("expected a value for '{field}', found {other}");
                return self.error(message);
            }
            None => return self.error(format!("the filter ends before the value of '{field}'")),
        };
        if is_date_field(field) {
            return match parse_time_ms(&text) {
                Some(ms) => Ok(Literal::Time(ms)),
                None => Err(FilterError {
                    message: format!(
                        "invalid date '{text}' for '{field}': write ISO 8601 UTC such as \
                         2024-05-01T00:00:00.000Z"
                    ),
                    position,
                }),
            };
        }
        let number = text.trim().parse::<f64>().ok().filter(|n| n.is_finite());
        Ok(Literal::Value { text, number })
    }

    fn check_field(&self, field: &str, position: usize) -> Result<(), FilterError> {
        let top = field.split('.').next().unwrap_or(field);
        let known = self.known_fields.contains(&top)
            && !field.split('.').any(str::is_empty)
            && field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        if known {
            return Ok(());
        }
        Err(FilterError {
            message: format!("unknown field '{field}'"),
            position,
        })
    }

    fn check_date_floor(
        &self,
        field: &str,
        value: &Literal,
        position: usize,
    ) -> Result<(), FilterError> {
        if field == "dateTime"
            && let Literal::Time(ms) = value
            && *ms < EARLIEST_DATE_TIME_MS
        {
            return Err(FilterError {
                message: "'dateTime' values before 2017-01-01T00:00:00.000Z are not accepted"
                    .to_owned(),
                position,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[&str] = &[
        "dateTime",
        "processedTime",
        "action",
        "platform",
        "severity",
        "fullPath",
        "asset",
    ];

    fn parse_ok(text: &str) -> Filter {
        match parse(text, FIELDS) {
            Ok(filter) => filter,
            Err(err) => panic!("{text}: {err}"),
        }
    }

    #[test]
    fn parses_time_range() {
        let filter =
            parse_ok("processedTime: ['2024-05-01T00:00:00.000Z'..'2024-05-01T00:10:00.000Z']");
        assert_eq!(
            filter,
            Filter::Range {
                field: "processedTime".to_owned(),
                from: Literal::Time(1_714_521_600_000),
                to: Literal::Time(1_714_522_200_000),
            }
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let filter = parse_ok("action: Create or action: Delete and severity > 3");
        let Filter::Or(parts) = filter else {
            panic!("expected or at the top")
        };
        assert_eq!(parts.len(), 2);
        assert!(matches!(parts[1], Filter::And(_)));
    }

    #[test]
    fn keywords_ignore_case() {
        let filter = parse_ok("NOT (platform: LINUX AND severity >= 4)");
        assert!(matches!(filter, Filter::Not(_)));
    }

    #[test]
    fn trailing_backslash_leaves_quote_open() {
        let err = parse(r"fullPath: 'C:\temp\'", FIELDS).unwrap_err();
        assert!(err.message.contains("not closed"), "{err}");
    }

    #[test]
    fn escaped_backslash_is_valid() {
        let filter = parse_ok(r"fullPath: 'C:\\temp\\'");
        assert_eq!(
            filter,
            Filter::Compare {
                field: "fullPath".to_owned(),
                op: Op::Eq,
                value: Literal::Value {
                    text: r"C:\temp\".to_owned(),
                    number: None
                },
            }
        );
    }

    #[test]
    fn rejects_unknown_field() {
        let err = parse("colour: red", FIELDS).unwrap_err();
        assert_eq!(err.message, "unknown field 'colour'");
    }

    #[test]
    fn rejects_invalid_date() {
        let err = parse(
            "dateTime: ['yesterday'..'2024-05-01T00:00:00.000Z']",
            FIELDS,
        )
        .unwrap_err();
        assert!(err.message.contains("invalid date 'yesterday'"), "{err}");
    }

    #[test]
    fn rejects_date_time_before_2017() {
        let err = parse("dateTime >= '2016-12-31T00:00:00.000Z'", FIELDS).unwrap_err();
        assert!(err.message.contains("2017-01-01"), "{err}");
    }

    #[test]
    fn rejects_dangling_and() {
        let err = parse("action: Create and", FIELDS).unwrap_err();
        assert!(err.message.contains("ends"), "{err}");
    }

    #[test]
    fn rejects_missing_close_paren() {
        let err = parse("(action: Create", FIELDS).unwrap_err();
        assert!(err.message.contains("')'"), "{err}");
    }

    #[test]
    fn rejects_comparison_with_text() {
        let err = parse("severity > high", FIELDS).unwrap_err();
        assert!(err.message.contains("number or a date"), "{err}");
    }

    #[test]
    fn rejects_reversed_range() {
        let err = parse(
            "processedTime: ['2024-05-02T00:00:00.000Z'..'2024-05-01T00:00:00.000Z']",
            FIELDS,
        )
        .unwrap_err();
        assert!(err.message.contains("ends before it starts"), "{err}");
    }

    #[test]
    fn rejects_two_conditions_without_keyword() {
        let err = parse("action: Create platform: LINUX", FIELDS).unwrap_err();
        assert!(err.message.contains("unexpected"), "{err}");
    }

    #[test]
    fn rejects_deep_nesting() {
        let text = format!("{}action: Create{}", "(".repeat(2_000), ")".repeat(2_000));
        let err = parse(&text, FIELDS).unwrap_err();
        assert!(err.message.contains("deeper than"), "{err}");
    }

    #[test]
    fn rejects_long_not_chain() {
        let text = format!("{}action: Create", "not ".repeat(10_000));
        let err = parse(&text, FIELDS).unwrap_err();
        assert!(err.message.contains("deeper than"), "{err}");
    }

    #[test]
    fn accepts_nesting_at_the_limit() {
        let text = format!(
            "{}action: Create{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(parse(&text, FIELDS).is_ok());
    }

    #[test]
    fn bounds_come_from_top_level_and() {
        let filter = parse_ok(
            "(action: Create) and processedTime: ['2024-05-01T00:00:00.000Z'..'2024-05-01T00:10:00.000Z'] \
             and processedTime > '2024-05-01T00:05:00.000Z'",
        );
        assert_eq!(
            filter.bounds("processedTime"),
            (Some(1_714_521_900_001), Some(1_714_522_200_000))
        );
    }

    #[test]
    fn bounds_ignore_or() {
        let filter = parse_ok("processedTime > '2024-05-01T00:05:00.000Z' or action: Create");
        assert_eq!(filter.bounds("processedTime"), (None, None));
    }
}

//! Names built from a record, such as a Kafka topic or a NATS subject:
//! `qualys.fim.{stream}` puts `{stream}` (the record's stream name, such as
//! `events` or `incidents`) and `{field}` (a top-level field of the record,
//! as text) into fixed text. `{{` and `}}` stand for literal braces.

use std::fmt;

use fim_model::Record;

/// A parsed name template.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Stream,
    Field(String),
}

/// A template that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template {template:?} is empty: give a name such as \"qualys.fim.{{stream}}\"")]
    Empty { template: String },
    #[error(
        "template {template:?} has an unclosed '{{' at byte {offset}: close it with '}}' or write '{{{{' for a literal brace"
    )]
    Unclosed { template: String, offset: usize },
    #[error(
        "template {template:?} has a stray '}}' at byte {offset}: write '}}}}' for a literal brace"
    )]
    StrayClose { template: String, offset: usize },
    #[error(
        "template {template:?} has an empty placeholder '{{}}': name a record field or use {{stream}}"
    )]
    EmptyPlaceholder { template: String },
}

/// A record that lacks a field its template names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record has no field {field:?} for the template {template:?}")]
pub struct RenderError {
    pub template: String,
    pub field: String,
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty {
                template: text.to_owned(),
            });
        }

        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((offset, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, next)| next) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, next)| next) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(TemplateError::StrayClose {
                        template: text.to_owned(),
                        offset,
                    });
                }
                '{' => {
                    let rest = &text[offset + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(TemplateError::Unclosed {
                            template: text.to_owned(),
                            offset,
                        });
                    };
                    let name = rest[..end].trim();
                    if name.is_empty() {
                        return Err(TemplateError::EmptyPlaceholder {
                            template: text.to_owned(),
                        });
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(if name == "stream" {
                        Part::Stream
                    } else {
                        Part::Field(name.to_owned())
                    });
                    // Skips the placeholder's characters and its closing brace.
                    while let Some((index, _)) = chars.peek() {
                        if *index > offset + end + 1 {
                            break;
                        }
                        chars.next();
                    }
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            source: text.to_owned(),
            parts,
        })
    }

    /// Returns the template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Returns whether the template has no placeholder, so every record gets
    /// the same name.
    pub fn is_static(&self) -> bool {
        self.parts
            .iter()
            .all(|part| matches!(part, Part::Literal(_)))
    }

    /// Writes the name for `record` into `out`, which is cleared first. Every
    /// character of a placeholder's value passes through `sanitize`, so a
    /// field value cannot add a separator or wildcard to the name. Literal
    /// text is kept as written.
    pub fn render(
        &self,
        record: &Record,
        sanitize: impl Fn(char) -> char,
        out: &mut String,
    ) -> Result<(), RenderError> {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Stream => out.extend(record.kind().stream_name().chars().map(&sanitize)),
                Part::Field(field) => {
                    let value = record
                        .text(field)
                        .filter(|value| !value.is_empty())
                        .ok_or_else(|| RenderError {
                            template: self.source.clone(),
                            field: field.clone(),
                        })?;
                    out.extend(value.chars().map(&sanitize));
                }
            }
        }
        Ok(())
    }

    /// Returns the template with each placeholder replaced by `wildcard`,
    /// such as `qualys.fim.*` for `qualys.fim.{stream}`.
    pub fn with_wildcards(&self, wildcard: &str) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Stream | Part::Field(_) => wildcard,
            })
            .collect()
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("Template")
            .field(&self.source)
            .finish()
    }
}

impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use fim_model::RecordKind;

    use super::*;

    fn record(kind: RecordKind) -> Record {
        Record::from_json(kind, r#"{"id":"e-1","platform":"Win dows","count":7}"#).unwrap()
    }

    fn render(template: &str, record: &Record) -> Result<String, RenderError> {
        let template = Template::parse(template).unwrap();
        let mut out = String::new();
        template.render(record, |c| if c == ' ' { '_' } else { c }, &mut out)?;
        Ok(out)
    }

    #[test]
    fn stream_placeholder_takes_stream_name() {
        let name = render("qualys.fim.{stream}", &record(RecordKind::Incident)).unwrap();
        assert_eq!(name, "qualys.fim.incidents");
    }

    #[test]
    fn field_placeholder_is_sanitized() {
        let name = render("fim.{platform}.{count}", &record(RecordKind::Event)).unwrap();
        assert_eq!(name, "fim.Win_dows.7");
    }

    #[test]
    fn missing_field_names_the_field() {
        let err = render("fim.{agent}", &record(RecordKind::Event)).unwrap_err();
        assert_eq!(err.field, "agent");
    }

    #[test]
    fn doubled_braces_are_literal() {
        let name = render("a{{b}}", &record(RecordKind::Event)).unwrap();
        assert_eq!(name, "a{b}");
    }

    #[test]
    fn malformed_templates_are_rejected() {
        assert!(matches!(
            Template::parse("fim.{stream"),
            Err(TemplateError::Unclosed { .. })
        ));
        assert!(matches!(
            Template::parse("fim.}"),
            Err(TemplateError::StrayClose { .. })
        ));
        assert!(matches!(
            Template::parse("fim.{}"),
            Err(TemplateError::EmptyPlaceholder { .. })
        ));
        assert!(matches!(
            Template::parse(" "),
            Err(TemplateError::Empty { .. })
        ));
    }

    #[test]
    fn wildcards_replace_placeholders() {
        let template = Template::parse("qualys.fim.{stream}").unwrap();
        assert_eq!(template.with_wildcards("*"), "qualys.fim.*");
        assert!(!template.is_static());
        assert!(Template::parse("fixed").unwrap().is_static());
    }
}

//! Builds the search and count requests the poller sends: QQL time windows
//! combined with the user's filter, the sort strings, and the endpoint of
//! each stream on each API version.

use fim_model::{ApiVersion, RecordKind, Timestamp};

/// The time field a lane windows and sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    /// Events and ignored events: when Qualys processed them, so late
    /// uploads from offline agents are still found.
    ProcessedTime,
    /// New incidents.
    CreatedDate,
    /// Changed incidents (status, approval).
    UpdatedDate,
}

impl OrderField {
    pub fn name(self) -> &'static str {
        match self {
            OrderField::ProcessedTime => "processedTime",
            OrderField::CreatedDate => "createdBy.date",
            OrderField::UpdatedDate => "lastUpdatedBy.date",
        }
    }

    /// Returns the sort: this field ascending, then `id` ascending, so
    /// records that share a millisecond have a fixed order and `searchAfter`
    /// can continue between them.
    pub fn sort(self) -> String {
        format!(r#"[{{"{}":"asc"}},{{"id":"asc"}}]"#, self.name())
    }
}

/// Writes an inclusive QQL range on `field` between two instants in epoch ms.
pub fn time_window(field: OrderField, from_ms: i64, to_ms: i64) -> String {
    format!(
        "{}: ['{}'..'{}']",
        field.name(),
        Timestamp::from_unix_ms(from_ms),
        Timestamp::from_unix_ms(to_ms)
    )
}

/// Checks that `(<filter>)` is one self-contained group, so [`combine`]
/// cannot let the user's filter change what the time window applies to.
/// The filter must be on one line and close every quote. Outside quotes, its
/// parentheses and brackets must open and close in matching pairs. Inside
/// quotes a backslash escapes the next character, as in QQL. The error names
/// the problem and its character position.
///
/// This is not a QQL parser: a filter that passes can still be invalid QQL,
/// which the API then rejects with a 400 naming the problem.
pub fn check_user_filter(filter: &str) -> Result<(), String> {
    // Open parentheses and brackets outside quotes, with their positions.
    let mut open: Vec<(char, usize)> = Vec::new();
    // The open quote character and its position.
    let mut quote: Option<(char, usize)> = None;
    let mut escaped = false;

    for (position, c) in filter.chars().enumerate() {
        if matches!(c, '\n' | '\r') {
            return Err(format!(
                "line break at character {position}: write the filter on one line"
            ));
        }
        if let Some((quote_char, _)) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == quote_char {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some((c, position)),
            '(' | '[' => open.push((c, position)),
            ')' | ']' => {
                let expected = if c == ')' { '(' } else { '[' };
                match open.pop() {
                    Some((opened, _)) if opened == expected => {}
                    Some((opened, at)) => {
                        return Err(format!(
                            "'{c}' at character {position} does not match the '{opened}' at \
                             character {at}"
                        ));
                    }
                    None => {
                        return Err(format!(
                            "'{c}' at character {position} closes a '{expected}' the filter \
                             did not open"
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    if let Some((_, at)) = quote {
        return Err(format!(
            "the quoted value starting at character {at} is not closed (a backslash escapes \
             the next character, so write a trailing backslash as \\\\)"
        ));
    }
    if let Some((opened, at)) = open.pop() {
        return Err(format!("the '{opened}' at character {at} is not closed"));
    }
    Ok(())
}

/// Combines the user's filter with a time window: `(<user>) and <window>`.
/// The user's filter must pass [`check_user_filter`], which configuration
/// validation enforces, so the window applies to every match.
pub fn combine(user_filter: &str, window: &str) -> String {
    let user_filter = user_filter.trim();
    if user_filter.is_empty() {
        window.to_owned()
    } else {
        format!("({user_filter}) and {window}")
    }
}

/// Returns whether `segment` stays one unchanged segment when appended to a
/// URL path. The `url` crate drops `.` and `..` segments and strips ASCII
/// tab, LF and CR (as the WHATWG URL standard does), so such an incident id
/// would send the request to another path.
pub fn is_valid_path_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && !segment.contains(['\t', '\n', '\r'])
}

/// Purpose of a request: the list or the count of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Search,
    Count,
}

/// Returns the HTTP method and path segments of `operation` on `kind`.
/// `incident` is the incident whose events are listed (incident events only).
pub fn endpoint(
    version: ApiVersion,
    kind: RecordKind,
    operation: Operation,
    incident: Option<&str>,
) -> (reqwest::Method, Vec<String>) {
    let owned = |segments: &[&str]| segments.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let incident = incident.unwrap_or_default();
    let count = operation == Operation::Count;
    match version {
        ApiVersion::V1 => {
            let mut segments = match kind {
                RecordKind::Event => owned(&["fim", "v1", "events"]),
                RecordKind::IgnoredEvent => owned(&["fim", "v1", "events", "ignore"]),
                RecordKind::Incident => owned(&["fim", "v1", "incidents"]),
                RecordKind::IncidentEvent => {
                    let mut segments = owned(&["fim", "v1", "incidents"]);
                    segments.push(incident.to_owned());
                    segments.push("events".to_owned());
                    segments
                }
            };
            if count {
                segments.push("count".to_owned());
            }
            (reqwest::Method::GET, segments)
        }
        ApiVersion::V2 | ApiVersion::V3 => {
            let last = if count { "count" } else { "search" };
            let mut segments = match (kind, count) {
                (RecordKind::Event, _) => owned(&["fim", "v2", "events"]),
                (RecordKind::IgnoredEvent, _) => owned(&["fim", "v2", "events", "ignore"]),
                // Incident search moved to v3; its count stayed on v2.
                (RecordKind::Incident, false) => owned(&["fim", "v3", "incidents"]),
                (RecordKind::Incident, true) => owned(&["fim", "v2", "incidents"]),
                (RecordKind::IncidentEvent, _) => {
                    let mut segments = owned(&["fim", "v2", "incidents"]);
                    segments.push(incident.to_owned());
                    segments.push("events".to_owned());
                    segments
                }
            };
            segments.push(last.to_owned());
            (reqwest::Method::POST, segments)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_uses_iso_milliseconds() {
        assert_eq!(
            time_window(
                OrderField::ProcessedTime,
                1_714_521_600_000,
                1_714_522_200_000
            ),
            "processedTime: ['2024-05-01T00:00:00.000Z'..'2024-05-01T00:10:00.000Z']"
        );
    }

    #[test]
    fn user_filter_is_parenthesized() {
        assert_eq!(
            combine("severity >= 4 or platform: LINUX", "dateTime: ['a'..'b']"),
            "(severity >= 4 or platform: LINUX) and dateTime: ['a'..'b']"
        );
    }

    #[test]
    fn blank_user_filter_leaves_window_alone() {
        assert_eq!(combine("  ", "w"), "w");
    }

    #[test]
    fn user_filter_check_accepts_balanced_filters() {
        for filter in [
            "",
            "severity >= 4 and platform: LINUX",
            "(action: Create or action: Delete) and not severity: [1, 2]",
            r"fullPath: 'C:\\temp\\'",
            "fullPath: 'a(b'",
            r#"fullPath: "it's \"quoted\" [x""#,
            "asset.name: 'Zürich ✓'",
        ] {
            assert_eq!(check_user_filter(filter), Ok(()), "{filter}");
        }
    }

    #[test]
    fn user_filter_check_rejects_escape_from_group() {
        let err = check_user_filter("severity: 5) or (action: Create").unwrap_err();
        assert!(err.contains("')' at character 11"), "{err}");
    }

    #[test]
    fn user_filter_check_rejects_open_parenthesis() {
        let err = check_user_filter("(severity: 5").unwrap_err();
        assert!(err.contains("'(' at character 0 is not closed"), "{err}");
    }

    #[test]
    fn user_filter_check_rejects_mismatched_brackets() {
        let err = check_user_filter("severity: [1, 2) or (x").unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn user_filter_check_rejects_open_quote() {
        let err = check_user_filter(r"fullPath: 'C:\temp\'").unwrap_err();
        assert!(err.contains("not closed"), "{err}");
    }

    #[test]
    fn user_filter_check_rejects_line_break() {
        let err = check_user_filter("severity: 5\r or x: 1").unwrap_err();
        assert!(err.contains("one line"), "{err}");
    }

    #[test]
    fn path_segment_check_rejects_altered_ids() {
        for id in ["", ".", "..", "a\tb", "a\nb", "a\rb"] {
            assert!(!is_valid_path_segment(id), "{id:?}");
        }
        for id in ["abc", "...", "a/b", "a%2e", "a?b#c", "Zürich"] {
            assert!(is_valid_path_segment(id), "{id:?}");
        }
    }

    #[test]
    fn sort_breaks_ties_by_id() {
        assert_eq!(
            OrderField::UpdatedDate.sort(),
            r#"[{"lastUpdatedBy.date":"asc"},{"id":"asc"}]"#
        );
    }

    #[test]
    fn incident_search_is_v3_but_count_is_v2() {
        let (_, search) = endpoint(
            ApiVersion::V2,
            RecordKind::Incident,
            Operation::Search,
            None,
        );
        let (_, count) = endpoint(ApiVersion::V2, RecordKind::Incident, Operation::Count, None);
        assert_eq!(search.join("/"), "fim/v3/incidents/search");
        assert_eq!(count.join("/"), "fim/v2/incidents/count");
    }

    #[test]
    fn v1_incident_events_path() {
        let (method, path) = endpoint(
            ApiVersion::V1,
            RecordKind::IncidentEvent,
            Operation::Search,
            Some("abc"),
        );
        assert_eq!(method, reqwest::Method::GET);
        assert_eq!(path.join("/"), "fim/v1/incidents/abc/events");
    }
}

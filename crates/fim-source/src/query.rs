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

/// Combines the user's filter with a time window: `(<user>) and <window>`.
pub fn combine(user_filter: &str, window: &str) -> String {
    let user_filter = user_filter.trim();
    if user_filter.is_empty() {
        window.to_owned()
    } else {
        format!("({user_filter}) and {window}")
    }
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

//! The simulated Qualys data: events, ignored events, incidents and the
//! events of each incident, with the backlog built at start and new records
//! arriving on every tick.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Months;

use crate::config::SimConfig;
use crate::generate::{Generator, NewEvent, incident_json};
use crate::record::{Record, RecordKind, to_utc};
use crate::search::{EVENT_FIELDS, INCIDENT_FIELDS, View};

/// How many months of data the API serves.
pub const RETENTION_MONTHS: u32 = 15;

/// Streams a client can poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Events,
    IgnoredEvents,
    Incidents,
    IncidentEvents,
}

impl Stream {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "events" => Some(Self::Events),
            "ignored_events" => Some(Self::IgnoredEvents),
            "incidents" => Some(Self::Incidents),
            "incident_events" => Some(Self::IncidentEvents),
            _ => None,
        }
    }
}

/// An incident and the changes still ahead of it.
#[derive(Debug)]
struct Incident {
    record: Arc<Record>,
    name: String,
    action: String,
    window_from_ms: i64,
    window_to_ms: i64,
    /// Status changes not yet applied, earliest first: (due time, status,
    /// approval status).
    pending: Vec<(i64, &'static str, Option<&'static str>)>,
}

#[derive(Debug)]
struct OpenIncident {
    id: Arc<str>,
    /// Events still to join, this one included.
    remaining: usize,
    /// `dateTime` of the first event, where the incident's window starts.
    first_date_time_ms: i64,
}

/// All records, ordered for searching.
#[derive(Debug)]
pub struct Data {
    generator: Generator,
    /// Events sorted by (`processedTime`, `id`).
    events: Vec<Arc<Record>>,
    /// Ignored events sorted by (`processedTime`, `id`).
    ignored: Vec<Arc<Record>>,
    /// Incidents sorted by (`createdBy.date`, `id`).
    incidents: Vec<Incident>,
    /// Incident records in the same order as `incidents`, rebuilt on change.
    incident_records: Vec<Arc<Record>>,
    incident_positions: HashMap<Arc<str>, usize>,
    /// Events of each incident, sorted like `events`.
    incident_events: HashMap<Arc<str>, Vec<Arc<Record>>>,
    events_by_id: HashMap<Arc<str>, Arc<Record>>,
    ignored_by_id: HashMap<Arc<str>, Arc<Record>>,
    /// Incident whose events are still being generated; it is created with
    /// its last event, so every event of an incident exists by the time the
    /// incident does, as when an analyst opens one over past changes.
    open_incident: Option<OpenIncident>,
    events_since_incident: usize,
    /// Fraction of an event owed by the arrival rate, carried between ticks.
    arrival_carry: f64,
    last_tick_ms: i64,
}

impl Data {
    /// Builds the backlog: `config.backlog` events processed over the
    /// `backlog-span` that ends at `now_ms`.
    pub fn new(config: &SimConfig, now_ms: i64) -> Self {
        let mut data = Self {
            generator: Generator::new(config.seed),
            events: Vec::with_capacity(config.backlog),
            ignored: Vec::new(),
            incidents: Vec::new(),
            incident_records: Vec::new(),
            incident_positions: HashMap::new(),
            incident_events: HashMap::new(),
            events_by_id: HashMap::with_capacity(config.backlog),
            ignored_by_id: HashMap::new(),
            open_incident: None,
            events_since_incident: 0,
            arrival_carry: 0.0,
            last_tick_ms: now_ms,
        };

        let span_ms = i64::try_from(config.backlog_span.as_millis()).unwrap_or(i64::MAX);
        let start_ms = now_ms.saturating_sub(span_ms);
        let mut times: Vec<i64> = (0..config.backlog)
            .map(|_| data.generator.between(start_ms, now_ms))
            .collect();
        times.sort_unstable();
        // Many events share one millisecond: an agent uploads a burst at once.
        for index in 1..times.len() {
            if data.generator.chance() < 0.4 {
                times[index] = times[index - 1];
            }
        }
        for processed_ms in times {
            data.add_event(config, processed_ms, now_ms);
        }
        data.events.sort_by(|a, b| order(a, b));
        data.ignored.sort_by(|a, b| order(a, b));
        for events in data.incident_events.values_mut() {
            events.sort_by(|a, b| order(a, b));
        }
        data.apply_due_incident_changes(now_ms, config);
        data
    }

    /// Adds the events owed by `config.rate` since the last tick, all
    /// processed in this same millisecond, and applies incident changes
    /// that have come due.
    ///
    /// At most one second of arrivals is added per tick: when the process
    /// stalls longer, the rest is skipped instead of blocking searches
    /// while a huge batch is built.
    pub fn tick(&mut self, config: &SimConfig, now_ms: i64) {
        let elapsed_sec = ((now_ms - self.last_tick_ms).max(0) as f64 / 1000.0).min(1.0);
        self.last_tick_ms = now_ms;
        let owed = config.rate * elapsed_sec + self.arrival_carry;
        let count = owed.floor();
        self.arrival_carry = owed - count;
        for _ in 0..count as u64 {
            self.add_event(config, now_ms, now_ms);
        }
        self.apply_due_incident_changes(now_ms, config);
    }

    /// Searchable view of `stream` at `now_ms`: records visible by then.
    /// `incident` narrows incident events to one incident.
    pub fn view(&self, stream: Stream, incident: Option<&str>, now_ms: i64) -> View<'_> {
        let retained_from_ms = to_utc(now_ms)
            .checked_sub_months(Months::new(RETENTION_MONTHS))
            .map_or(0, |time| time.timestamp_millis());
        let (records, order_field, fields): (&[Arc<Record>], _, _) = match stream {
            Stream::Events => (&self.events, "processedTime", EVENT_FIELDS),
            Stream::IgnoredEvents => (&self.ignored, "processedTime", EVENT_FIELDS),
            Stream::Incidents => (&self.incident_records, "createdBy.date", INCIDENT_FIELDS),
            Stream::IncidentEvents => (
                incident
                    .and_then(|id| self.incident_events.get(id))
                    .map_or(&[][..], Vec::as_slice),
                "processedTime",
                EVENT_FIELDS,
            ),
        };
        // Visibility follows the order time plus a fixed lag, so the visible
        // records are a prefix of the ordered store.
        let visible = records.partition_point(|record| record.visible_at_ms <= now_ms);
        View {
            records: &records[..visible],
            order_field,
            fields,
            retained_from_ms,
        }
    }

    /// Tells whether an incident with this id exists.
    pub fn has_incident(&self, id: &str) -> bool {
        self.incident_positions.contains_key(id)
    }

    /// Lists every id of `stream` a client can see at `now_ms`.
    pub fn visible_ids(&self, stream: Stream, now_ms: i64) -> Vec<Arc<str>> {
        if stream == Stream::IncidentEvents {
            let mut ids: Vec<Arc<str>> = self
                .incident_records
                .iter()
                .filter(|incident| incident.visible_at_ms <= now_ms)
                .flat_map(|incident| self.visible_ids_of_incident(&incident.id, now_ms))
                .collect();
            ids.sort();
            return ids;
        }
        let view = self.view(stream, None, now_ms);
        view.records
            .iter()
            .filter(|record| {
                record.date_time_ms.unwrap_or(record.order_ms) >= view.retained_from_ms
            })
            .map(|record| record.id.clone())
            .collect()
    }

    fn visible_ids_of_incident(&self, incident: &str, now_ms: i64) -> Vec<Arc<str>> {
        let view = self.view(Stream::IncidentEvents, Some(incident), now_ms);
        view.records
            .iter()
            .map(|record| record.id.clone())
            .collect()
    }

    /// Looks up one event (or ignored event) by id, if visible.
    pub fn event_by_id(&self, id: &str, ignored: bool, now_ms: i64) -> Option<Arc<Record>> {
        let index = if ignored {
            &self.ignored_by_id
        } else {
            &self.events_by_id
        };
        index
            .get(id)
            .filter(|record| record.visible_at_ms <= now_ms)
            .cloned()
    }

    fn add_event(&mut self, config: &SimConfig, processed_ms: i64, now_ms: i64) {
        let late_max_ms = i64::try_from(config.late_max.as_millis()).unwrap_or(i64::MAX);
        let date_time_ms = if self.generator.chance() < config.late_share && late_max_ms > 60_000 {
            // An agent that was offline uploads long after the change.
            processed_ms - self.generator.between(60_000, late_max_ms)
        } else {
            processed_ms - self.generator.between(500, 30_000)
        };

        let ignored = self.generator.chance() < config.ignored_share;
        let incident_id = if ignored {
            None
        } else {
            self.incident_for_next_event(config, processed_ms, date_time_ms)
        };
        let ignore_date = ignored.then(|| to_utc(processed_ms).format("%Y-%m-%d").to_string());

        let tricky = self.generator.chance() < config.tricky_share;
        let generated = if tricky {
            self.generator.edge_event(
                processed_ms,
                date_time_ms,
                incident_id.as_deref(),
                ignore_date.clone(),
            )
        } else {
            None
        };
        let NewEvent {
            id,
            json,
            date_time_ms,
        } = match generated {
            Some(event) => event,
            None => self.generator.event(
                processed_ms,
                date_time_ms,
                incident_id.as_deref(),
                ignore_date,
            ),
        };

        let lag_ms = i64::try_from(config.index_lag.as_millis()).unwrap_or(0);
        let record = Arc::new(Record {
            kind: RecordKind::Event,
            id: Arc::from(id),
            json: json.into_boxed_str(),
            order_ms: processed_ms,
            date_time_ms: Some(date_time_ms),
            updated_ms: None,
            incident_id: incident_id.clone(),
            visible_at_ms: processed_ms + lag_ms,
        });

        let live = processed_ms >= now_ms;
        if ignored {
            self.ignored_by_id.insert(record.id.clone(), record.clone());
            insert_ordered(&mut self.ignored, record, live);
            return;
        }
        self.events_by_id.insert(record.id.clone(), record.clone());
        if let Some(incident_id) = incident_id {
            let list = self.incident_events.entry(incident_id).or_default();
            insert_ordered(list, record.clone(), live);
        }
        insert_ordered(&mut self.events, record, live);
    }

    /// Opens an incident every `incident-every` events; the event that
    /// opens it and up to four after it belong to it.
    fn incident_for_next_event(
        &mut self,
        config: &SimConfig,
        processed_ms: i64,
        date_time_ms: i64,
    ) -> Option<Arc<str>> {
        if self.open_incident.is_none() {
            if config.incident_every == 0 {
                return None;
            }
            self.events_since_incident += 1;
            if self.events_since_incident < config.incident_every {
                return None;
            }
            self.events_since_incident = 0;
            self.open_incident = Some(OpenIncident {
                id: Arc::from(self.generator.uuid()),
                remaining: usize::try_from(self.generator.between(1, 5)).unwrap_or(1),
                first_date_time_ms: date_time_ms,
            });
        }

        let open = self.open_incident.as_mut()?;
        open.remaining -= 1;
        let id = open.id.clone();
        if open.remaining == 0 {
            let first_date_time_ms = open.first_date_time_ms;
            self.open_incident = None;
            self.open_new_incident(config, id.clone(), processed_ms, first_date_time_ms);
        }
        Some(id)
    }

    fn open_new_incident(
        &mut self,
        config: &SimConfig,
        id: Arc<str>,
        created_ms: i64,
        date_time_ms: i64,
    ) {
        let actions = ["Security", "Content", "Create", "Delete"];
        let action = actions[usize::try_from(self.generator.between(0, 3)).unwrap_or(0)];
        let window_from_ms = date_time_ms - date_time_ms.rem_euclid(3_600_000);
        let window_to_ms = window_from_ms + 86_400_000 - 1;

        // Later an analyst reviews it (closed, approved or rejected) and
        // sometimes reopens it; each change moves `lastUpdatedBy.date`.
        let update_after_ms = i64::try_from(config.incident_update_after.as_millis())
            .unwrap_or(60_000)
            .max(1);
        let reviewed_ms = created_ms + self.generator.between(1, update_after_ms);
        let verdict = if self.generator.chance() < 0.8 {
            "APPROVED"
        } else {
            "REJECTED"
        };
        let mut pending = vec![(reviewed_ms, "CLOSED", Some(verdict))];
        if self.generator.chance() < 0.3 {
            let reopened_ms = reviewed_ms + self.generator.between(1, update_after_ms);
            pending.push((reopened_ms, "REOPENED", Some(verdict)));
        }

        let name = format!("{action} changes {}", &id[..8]);
        let json = incident_json(
            &id,
            &name,
            created_ms,
            created_ms,
            "OPEN",
            None,
            None,
            window_from_ms,
            window_to_ms,
            action,
        );
        let lag_ms = i64::try_from(config.index_lag.as_millis()).unwrap_or(0);
        let record = Arc::new(Record {
            kind: RecordKind::Incident,
            id: id.clone(),
            json: json.into_boxed_str(),
            order_ms: created_ms,
            date_time_ms: None,
            updated_ms: Some(created_ms),
            incident_id: None,
            visible_at_ms: created_ms + lag_ms,
        });
        // Incidents are opened in processing order, so this appends.
        self.incident_positions.insert(id, self.incidents.len());
        self.incident_records.push(record.clone());
        self.incidents.push(Incident {
            record,
            name,
            action: action.to_owned(),
            window_from_ms,
            window_to_ms,
            pending,
        });
    }

    fn apply_due_incident_changes(&mut self, now_ms: i64, config: &SimConfig) {
        let lag_ms = i64::try_from(config.index_lag.as_millis()).unwrap_or(0);
        for (position, incident) in self.incidents.iter_mut().enumerate() {
            let mut changed = false;
            while incident
                .pending
                .first()
                .is_some_and(|(due_ms, _, _)| due_ms + lag_ms <= now_ms)
            {
                let (due_ms, status, approval) = incident.pending.remove(0);
                let created_ms = incident.record.order_ms;
                let json = incident_json(
                    &incident.record.id,
                    &incident.name,
                    created_ms,
                    due_ms,
                    status,
                    approval,
                    Some(due_ms),
                    incident.window_from_ms,
                    incident.window_to_ms,
                    &incident.action,
                );
                incident.record = Arc::new(Record {
                    kind: RecordKind::Incident,
                    id: incident.record.id.clone(),
                    json: json.into_boxed_str(),
                    order_ms: created_ms,
                    date_time_ms: None,
                    updated_ms: Some(due_ms),
                    incident_id: None,
                    visible_at_ms: incident.record.visible_at_ms,
                });
                changed = true;
            }
            if changed {
                self.incident_records[position] = incident.record.clone();
            }
        }
    }
}

fn order(a: &Record, b: &Record) -> std::cmp::Ordering {
    a.order_ms.cmp(&b.order_ms).then_with(|| a.id.cmp(&b.id))
}

/// Inserts a live record at its place; records of the backlog are pushed
/// and sorted once at the end.
fn insert_ordered(records: &mut Vec<Arc<Record>>, record: Arc<Record>, live: bool) {
    if !live {
        records.push(record);
        return;
    }
    let at = records.partition_point(|other| order(other, &record).is_lt());
    records.insert(at, record);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> SimConfig {
        SimConfig {
            backlog: 2_000,
            incident_every: 20,
            late_share: 0.3,
            ..SimConfig::default()
        }
    }

    #[test]
    fn backlog_is_sorted_by_processed_time_then_id() {
        let data = Data::new(&config(), 1_714_558_601_502);
        assert!(
            data.events
                .windows(2)
                .all(|pair| order(&pair[0], &pair[1]).is_lt())
        );
    }

    #[test]
    fn backlog_has_every_record_visible() {
        let now = 1_714_558_601_502;
        let data = Data::new(&config(), now);
        let events = data.visible_ids(Stream::Events, now).len();
        let ignored = data.visible_ids(Stream::IgnoredEvents, now).len();
        assert_eq!(events + ignored, 2_000);
    }

    #[test]
    fn many_events_share_a_millisecond() {
        let data = Data::new(&config(), 1_714_558_601_502);
        let shared = data
            .events
            .windows(2)
            .filter(|pair| pair[0].order_ms == pair[1].order_ms)
            .count();
        assert!(shared > 200, "only {shared} neighbours share a millisecond");
    }

    #[test]
    fn tick_adds_events_at_the_rate() {
        let config = SimConfig {
            backlog: 0,
            rate: 100.0,
            ..SimConfig::default()
        };
        let mut data = Data::new(&config, 1_000_000);
        data.tick(&config, 1_000_800);
        let added = data.events.len() + data.ignored.len();
        assert_eq!(added, 80);
    }

    #[test]
    fn stalled_tick_adds_at_most_one_second() {
        let config = SimConfig {
            backlog: 0,
            rate: 100.0,
            ..SimConfig::default()
        };
        let mut data = Data::new(&config, 1_000_000);
        data.tick(&config, 1_500_000);
        let added = data.events.len() + data.ignored.len();
        assert_eq!(added, 100);
    }

    #[test]
    fn index_lag_hides_fresh_events() {
        let config = SimConfig {
            backlog: 0,
            rate: 10.0,
            index_lag: Duration::from_secs(5),
            ..SimConfig::default()
        };
        let mut data = Data::new(&config, 1_000_000);
        data.tick(&config, 1_001_000);
        assert!(data.visible_ids(Stream::Events, 1_001_000).is_empty());
        assert!(!data.visible_ids(Stream::Events, 1_006_000).is_empty());
    }

    #[test]
    fn incidents_change_after_creation() {
        let config = SimConfig {
            backlog: 0,
            rate: 100.0,
            incident_every: 10,
            incident_update_after: Duration::from_secs(2),
            ..SimConfig::default()
        };
        let mut data = Data::new(&config, 1_000_000);
        data.tick(&config, 1_001_000);
        let created = data.incident_records[0].updated_ms;
        data.tick(&config, 1_010_000);
        assert_ne!(data.incident_records[0].updated_ms, created);
    }
}

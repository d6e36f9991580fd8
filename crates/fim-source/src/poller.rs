//! The incremental poller: one task per stream turns the API into an ordered
//! stream of records, each with an [`AckToken`] that moves the checkpoint.
//!
//! A stream has one or more lanes, each a time field it windows and sorts
//! on: `processedTime` for events and ignored events (so late uploads from
//! offline agents are found), `createdBy.date` and `lastUpdatedBy.date` for
//! incidents (new ones and changed ones), and `createdBy.date` of incidents
//! for incident events, whose events are fetched per incident. A poll of a
//! lane requests the window from its cursor to now minus the lag, sorted by
//! the field and then `id`, and pages through it: with `searchAfter` on v2,
//! with `pageNumber` on v1 after splitting the window until each part has at
//! most 10,000 rows.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fim_model::{ApiVersion, Record, RecordError, RecordKind, SharedRecord};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::{
    CHECKPOINT_VERSION, CheckpointError, CheckpointStore, Cursor, SourceState,
};
use crate::client::{ApiObserver, FimClient, SearchQuery, now_ms};
use crate::config::SourceConfig;
use crate::dedup::{DedupCache, DedupKey};
use crate::error::SourceError;
use crate::query::{OrderField, combine, time_window};
use crate::rejected::RejectedRecords;
use crate::tracker::{AckToken, Point, StreamTracker};

/// Rows a `pageNumber` search can reach on the Qualys API.
pub const PAGING_WINDOW: usize = 10_000;

/// Oldest data the API serves: 15 months, counted here as 455 days so a
/// clamped start stays inside it.
const RETENTION_MS: i64 = 455 * 86_400_000;

/// A record on its way to the sinks, with the token that acknowledges it.
#[derive(Debug)]
pub struct Polled {
    pub record: SharedRecord,
    pub ack: AckToken,
}

/// Run options of a source, besides its configuration.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub observer: Arc<dyn ApiObserver>,
    /// Save the checkpoint this often while running; `None` saves only on
    /// [`SourceHandle::save`] and [`SourceHandle::stop`].
    pub checkpoint_interval: Option<Duration>,
    /// Stop each stream once it has collected everything up to this time
    /// (epoch ms), for a one-off backfill; `None` polls forever.
    pub stop_at_ms: Option<i64>,
    /// The dead-letter file for records the API sent that cannot be read.
    /// With `None` they are only logged.
    pub rejected: Option<Arc<RejectedRecords>>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            observer: Arc::new(crate::client::NoObserver),
            checkpoint_interval: Some(Duration::from_secs(5)),
            stop_at_ms: None,
            rejected: None,
        }
    }
}

/// A stream's state as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    Running,
    /// The stream stopped for good; the message gives the cause and the fix.
    Failed(String),
    Stopped,
    /// A backfill reached its end time.
    Finished,
}

/// Returns the lanes of a stream: (lane name, field, kind searched).
fn lanes_of(kind: RecordKind) -> Vec<(&'static str, OrderField, RecordKind)> {
    match kind {
        RecordKind::Event => vec![(
            "processedTime",
            OrderField::ProcessedTime,
            RecordKind::Event,
        )],
        RecordKind::IgnoredEvent => {
            vec![(
                "processedTime",
                OrderField::ProcessedTime,
                RecordKind::IgnoredEvent,
            )]
        }
        RecordKind::Incident => vec![
            (
                "createdBy.date",
                OrderField::CreatedDate,
                RecordKind::Incident,
            ),
            (
                "lastUpdatedBy.date",
                OrderField::UpdatedDate,
                RecordKind::Incident,
            ),
        ],
        RecordKind::IncidentEvent => {
            vec![(
                "createdBy.date",
                OrderField::CreatedDate,
                RecordKind::Incident,
            )]
        }
    }
}

#[derive(Debug)]
struct StreamEntry {
    kind: RecordKind,
    tracker: Arc<StreamTracker>,
    lane_names: Vec<&'static str>,
    status: Arc<Mutex<StreamStatus>>,
}

/// The running source. Dropping it stops the polling tasks without saving
/// (as a crash would); [`SourceHandle::stop`] stops cleanly and saves.
#[derive(Debug)]
pub struct SourceHandle {
    streams: Vec<StreamEntry>,
    store: Arc<dyn CheckpointStore>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts polling every configured stream into `sender`.
pub async fn start(
    config: SourceConfig,
    store: Arc<dyn CheckpointStore>,
    sender: mpsc::Sender<Polled>,
    options: SourceOptions,
) -> Result<SourceHandle, SourceError> {
    if let Err(problems) = config.validate() {
        let mut problems = problems.into_iter();
        if let Some(first) = problems.next() {
            return Err(SourceError::Config(first));
        }
    }
    let client = Arc::new(FimClient::new(&config, options.observer.clone())?);
    let saved = store.load()?.unwrap_or_default();

    let now = now_ms();
    let mut first_start = config.start_from.resolve(now);
    if first_start < now - RETENTION_MS {
        tracing::warn!(
            start_from = %fim_model::Timestamp::from_unix_ms(first_start),
            "start_from is older than the 15 months the API keeps; starting at the oldest data instead"
        );
        first_start = now - RETENTION_MS;
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut streams = Vec::new();
    let mut tasks = Vec::new();
    for kind in config.streams.clone() {
        let lanes = lanes_of(kind);
        let saved_stream = saved.streams.get(kind.stream_name());
        let committed: Vec<Cursor> = lanes
            .iter()
            .map(|(name, _, _)| {
                saved_stream
                    .and_then(|stream| stream.lanes.get(*name))
                    .cloned()
                    .unwrap_or_else(|| Cursor::at(first_start))
            })
            .collect();
        let max_age_ms = i64::try_from(config.dedup.max_age.as_millis()).unwrap_or(i64::MAX);
        let mut dedup = DedupCache::new(config.dedup.capacity, max_age_ms);
        for (key, seen) in saved_stream
            .map(|stream| stream.dedup.clone())
            .unwrap_or_default()
        {
            dedup.insert(key, seen);
        }
        let tracker = StreamTracker::new(committed.clone(), dedup);
        let status = Arc::new(Mutex::new(StreamStatus::Running));

        let poller = StreamPoller {
            kind,
            client: client.clone(),
            tracker: tracker.clone(),
            sender: sender.clone(),
            lanes: lanes
                .iter()
                .zip(committed)
                .map(|((_, field, searched), cursor)| Lane {
                    field: *field,
                    searched: *searched,
                    fetch: FetchCursor::from(cursor),
                })
                .collect(),
            user_filter: config.filter.clone(),
            page_size: config.page_size,
            lag_ms: i64::try_from(config.lag.as_millis()).unwrap_or(0),
            poll_interval: config.poll_interval,
            stop_at_ms: options.stop_at_ms,
            rejected: options.rejected.clone(),
            observer: options.observer.clone(),
        };
        tasks.push(tokio::spawn(
            poller.run(shutdown_rx.clone(), status.clone()),
        ));
        streams.push(StreamEntry {
            kind,
            tracker,
            lane_names: lanes.iter().map(|(name, _, _)| *name).collect(),
            status,
        });
    }

    let mut handle = SourceHandle {
        streams,
        store,
        shutdown,
        tasks,
    };
    if let Some(interval) = options.checkpoint_interval {
        let saver = handle.saver();
        let mut shutdown_rx = shutdown_rx;
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = shutdown_rx.changed() => return,
                }
                if let Err(err) = saver.save() {
                    tracing::error!(cause = %err, "failed to save the checkpoint; retrying at the next interval");
                }
            }
        });
        handle.tasks.push(task);
    }
    Ok(handle)
}

/// Read access to the streams of a running source.
#[derive(Debug, Clone)]
pub struct SourceMonitor {
    streams: Vec<(RecordKind, Arc<StreamTracker>, Arc<Mutex<StreamStatus>>)>,
}

impl SourceMonitor {
    /// Lists each stream with its status and tracker.
    pub fn streams(&self) -> Vec<(RecordKind, StreamStatus, Arc<StreamTracker>)> {
        self.streams
            .iter()
            .map(|(kind, tracker, status)| {
                let status = status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                (*kind, status, tracker.clone())
            })
            .collect()
    }
}

/// Saves checkpoints from a background task.
#[derive(Debug, Clone)]
struct Saver {
    streams: Vec<(RecordKind, Arc<StreamTracker>, Vec<&'static str>)>,
    store: Arc<dyn CheckpointStore>,
}

impl Saver {
    fn state(&self) -> SourceState {
        SourceState {
            version: CHECKPOINT_VERSION,
            streams: self
                .streams
                .iter()
                .map(|(kind, tracker, lanes)| {
                    (kind.stream_name().to_owned(), tracker.snapshot(lanes))
                })
                .collect(),
        }
    }

    fn save(&self) -> Result<(), CheckpointError> {
        self.store.save(&self.state())
    }
}

impl SourceHandle {
    fn saver(&self) -> Saver {
        Saver {
            streams: self
                .streams
                .iter()
                .map(|stream| {
                    (
                        stream.kind,
                        stream.tracker.clone(),
                        stream.lane_names.clone(),
                    )
                })
                .collect(),
            store: self.store.clone(),
        }
    }

    /// Returns what a checkpoint would save now.
    pub fn state(&self) -> SourceState {
        self.saver().state()
    }

    /// Saves the checkpoint of everything acknowledged so far.
    pub fn save(&self) -> Result<(), CheckpointError> {
        self.saver().save()
    }

    /// Returns the status of `kind`'s poller.
    pub fn status(&self, kind: RecordKind) -> Option<StreamStatus> {
        self.streams
            .iter()
            .find(|stream| stream.kind == kind)
            .map(|stream| {
                stream
                    .status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            })
    }

    /// Returns a cloneable view of every stream's status and tracker, for
    /// metrics and health checks.
    pub fn monitor(&self) -> SourceMonitor {
        SourceMonitor {
            streams: self
                .streams
                .iter()
                .map(|stream| (stream.kind, stream.tracker.clone(), stream.status.clone()))
                .collect(),
        }
    }

    /// Returns `kind`'s tracker, for acknowledgement counts.
    pub fn tracker(&self, kind: RecordKind) -> Option<&Arc<StreamTracker>> {
        self.streams
            .iter()
            .find(|stream| stream.kind == kind)
            .map(|stream| &stream.tracker)
    }

    /// Returns whether every stream has stopped, failed or finished.
    pub fn all_done(&self) -> bool {
        self.streams.iter().all(|stream| {
            !matches!(
                *stream.status.lock().unwrap_or_else(PoisonError::into_inner),
                StreamStatus::Running
            )
        })
    }

    /// Lists each stream with its status.
    pub fn statuses(&self) -> Vec<(RecordKind, StreamStatus)> {
        self.streams
            .iter()
            .map(|stream| {
                let status = stream
                    .status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                (stream.kind, status)
            })
            .collect()
    }

    /// Stops polling and waits for the polling tasks, without saving: the
    /// caller drains the pipeline first, then calls [`SourceHandle::save`].
    /// Records already emitted stay tracked, so their acknowledgements still
    /// move the checkpoint.
    pub async fn stop_polling(&mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Stops polling, waits for the tasks and saves the checkpoint.
    pub async fn stop(mut self) -> Result<(), CheckpointError> {
        self.stop_polling().await;
        self.save()
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where a lane continues fetching: ahead of the committed cursor by the
/// records emitted and not yet acknowledged.
#[derive(Debug)]
struct FetchCursor {
    time_ms: i64,
    /// Ids emitted (or committed) at `time_ms`.
    ids: HashSet<String>,
    /// The greatest of `ids` in sort order: `searchAfter` continues after
    /// `[time_ms, last_id]`.
    last_id: Option<String>,
}

impl From<Cursor> for FetchCursor {
    fn from(cursor: Cursor) -> Self {
        let last_id = cursor.ids.iter().max().cloned();
        Self {
            time_ms: cursor.time_ms,
            ids: cursor.ids.into_iter().collect(),
            last_id,
        }
    }
}

impl FetchCursor {
    fn advance(&mut self, time_ms: i64, id: &str) {
        if time_ms > self.time_ms {
            self.time_ms = time_ms;
            self.ids.clear();
        }
        if time_ms == self.time_ms {
            self.ids.insert(id.to_owned());
            self.last_id = Some(id.to_owned());
        }
    }

    fn search_after(&self) -> Option<Value> {
        self.last_id.as_ref().map(|id| json!([self.time_ms, id]))
    }
}

#[derive(Debug)]
struct Lane {
    field: OrderField,
    /// The kind the lane searches: incidents for the incident-events stream.
    searched: RecordKind,
    fetch: FetchCursor,
}

struct StreamPoller {
    kind: RecordKind,
    client: Arc<FimClient>,
    tracker: Arc<StreamTracker>,
    sender: mpsc::Sender<Polled>,
    lanes: Vec<Lane>,
    user_filter: String,
    page_size: usize,
    lag_ms: i64,
    poll_interval: Duration,
    stop_at_ms: Option<i64>,
    rejected: Option<Arc<RejectedRecords>>,
    observer: Arc<dyn ApiObserver>,
}

impl StreamPoller {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>, status: Arc<Mutex<StreamStatus>>) {
        let stream = self.kind.stream_name();
        tracing::info!(stream, "polling started");
        let result = tokio::select! {
            result = self.poll_forever() => result,
            _ = shutdown.changed() => Ok(()),
        };
        let next = match result {
            Ok(()) if self.stop_at_ms.is_some() && !*shutdown.borrow() => {
                tracing::info!(stream, "backfill finished");
                StreamStatus::Finished
            }
            Ok(()) => {
                tracing::info!(stream, "polling stopped");
                StreamStatus::Stopped
            }
            Err(err) => {
                tracing::error!(stream, cause = %err, "polling failed; this stream stops, the others go on");
                StreamStatus::Failed(err.to_string())
            }
        };
        *status.lock().unwrap_or_else(PoisonError::into_inner) = next;
    }

    async fn poll_forever(&mut self) -> Result<(), SourceError> {
        loop {
            for index in 0..self.lanes.len() {
                self.poll_lane(index).await?;
            }
            if let Some(stop_at) = self.stop_at_ms
                && now_ms() - self.lag_ms >= stop_at
            {
                // Every lane has now been polled up to the end time.
                return Ok(());
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Fetches and emits everything in the lane's window.
    async fn poll_lane(&mut self, index: usize) -> Result<(), SourceError> {
        let mut end = now_ms() - self.lag_ms;
        if let Some(stop_at) = self.stop_at_ms {
            end = end.min(stop_at);
        }
        let from = self.lanes[index].fetch.time_ms;
        if end < from {
            return Ok(());
        }
        match self.client.api_version() {
            ApiVersion::V1 => {
                for (from, to) in self.v1_windows(index, from, end).await? {
                    self.poll_v1_window(index, from, to).await?;
                }
                Ok(())
            }
            ApiVersion::V2 | ApiVersion::V3 => self.poll_v2_window(index, from, end).await,
        }
    }

    fn lane_filter(&self, index: usize, from: i64, to: i64) -> String {
        let lane = &self.lanes[index];
        let window = time_window(lane.field, from, to);
        // The user filter is written for events; incident searches take only
        // the window.
        if lane.searched.is_incident() {
            window
        } else {
            combine(&self.user_filter, &window)
        }
    }

    async fn poll_v2_window(
        &mut self,
        index: usize,
        from: i64,
        to: i64,
    ) -> Result<(), SourceError> {
        let filter = self.lane_filter(index, from, to);
        let lane = &self.lanes[index];
        let mut query = SearchQuery {
            kind: lane.searched,
            incident: None,
            filter,
            sort: lane.field.sort(),
            page_size: self.page_size,
            page_number: 0,
            search_after: lane.fetch.search_after(),
        };
        loop {
            self.wait_for_room().await?;
            let page = self.client.search(&query).await?;
            let count = page.items.len();
            let mut last_position = None;
            for item in page.items {
                if let Some(position) = self.handle(index, item, &query).await? {
                    last_position = Some(position);
                }
            }
            if count < self.page_size {
                return Ok(());
            }
            let next = page
                .last_sort_values
                .or_else(|| last_position.map(|(time, id)| json!([time, id])));
            if next.is_none() || next == query.search_after {
                return Err(SourceError::Stuck {
                    request: format!("{} search with filter {}", self.kind, query.filter),
                    reason: "a full page gave no sortValues to continue after".to_owned(),
                });
            }
            query.search_after = next;
        }
    }

    /// Splits `[from, to]` until the count of each part fits the paging
    /// window, so `pageNumber` reaches every row.
    async fn v1_windows(
        &self,
        index: usize,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64)>, SourceError> {
        let lane = &self.lanes[index];
        let mut pending = vec![(from, to)];
        let mut windows = Vec::new();
        while let Some((from, to)) = pending.pop() {
            let filter = self.lane_filter(index, from, to);
            let count = self
                .client
                .count(lane.searched, None, &filter, None, None)
                .await?;
            let rows = count.get("count").and_then(Value::as_u64).unwrap_or(0);
            if rows as usize <= PAGING_WINDOW || to <= from {
                if rows as usize > PAGING_WINDOW {
                    // NOTE: more than 10,000 records in one millisecond cannot
                    // be paged on v1; the rows past the window are missed.
                    tracing::error!(
                        stream = self.kind.stream_name(),
                        rows,
                        at = %fim_model::Timestamp::from_unix_ms(from),
                        "one millisecond holds more rows than v1 paging reaches; use api_version = \"v2\""
                    );
                }
                windows.push((from, to));
                continue;
            }
            let middle = from + (to - from) / 2;
            // Later half first onto the stack, so the earlier half is paged first.
            pending.push((middle + 1, to));
            pending.push((from, middle));
        }
        Ok(windows)
    }

    async fn poll_v1_window(
        &mut self,
        index: usize,
        from: i64,
        to: i64,
    ) -> Result<(), SourceError> {
        let filter = self.lane_filter(index, from, to);
        let lane = &self.lanes[index];
        let mut query = SearchQuery {
            kind: lane.searched,
            incident: None,
            filter,
            sort: lane.field.sort(),
            page_size: self.page_size,
            page_number: 0,
            search_after: None,
        };
        while (query.page_number + 1) * self.page_size <= PAGING_WINDOW.max(self.page_size) {
            self.wait_for_room().await?;
            let page = self.client.search(&query).await?;
            let count = page.items.len();
            for item in page.items {
                self.handle(index, item, &query).await?;
            }
            if count < self.page_size {
                break;
            }
            query.page_number += 1;
        }
        Ok(())
    }

    /// Emits one search result unless it was emitted before; returns its
    /// position in the lane.
    async fn handle(
        &mut self,
        index: usize,
        item: Result<Record, RecordError>,
        query: &SearchQuery,
    ) -> Result<Option<(i64, String)>, SourceError> {
        let record = match item {
            Ok(record) => record,
            Err(err) => {
                self.reject(query, &err);
                return Ok(None);
            }
        };
        let lane = &self.lanes[index];
        let time = match lane.field {
            OrderField::ProcessedTime => record.processed_time(),
            OrderField::CreatedDate => record.created_time(),
            OrderField::UpdatedDate => record.updated_time(),
        }
        .map(|time| time.unix_ms());
        let id = record.id().to_owned();

        if let Some(time) = time
            && time == lane.fetch.time_ms
            && lane.fetch.ids.contains(&id)
        {
            return Ok(Some((time, id)));
        }
        let point = time.map(|time_ms| Point {
            time_ms,
            id: id.clone(),
        });

        if self.kind == RecordKind::IncidentEvent {
            if crate::query::is_valid_path_segment(&id) {
                self.emit_incident_events(index, &id).await?;
            } else {
                // NOTE: the events of such an incident are not collected.
                tracing::error!(
                    stream = self.kind.stream_name(),
                    incident = ?id,
                    "skipping the events of an incident whose id cannot be a URL path segment"
                );
            }
            if let Some(point) = point {
                self.tracker.mark(index, point);
            }
        } else {
            let key = DedupKey::from(record.dedup_key());
            if self.tracker.is_duplicate(&key) {
                self.tracker.note_duplicate();
                if let Some(point) = point {
                    self.tracker.mark(index, point);
                }
            } else {
                let ack = self.tracker.emit(index, point, key, now_ms());
                self.send(record.shared(), ack).await?;
            }
        }

        let Some(time) = time else {
            return Ok(None);
        };
        self.lanes[index].fetch.advance(time, &id);
        Ok(Some((time, id)))
    }

    /// Fetches every event of one incident and emits the new ones.
    async fn emit_incident_events(
        &mut self,
        index: usize,
        incident: &str,
    ) -> Result<(), SourceError> {
        let v2 = self.client.api_version() != ApiVersion::V1;
        let mut query = SearchQuery {
            kind: RecordKind::IncidentEvent,
            incident: Some(incident.to_owned()),
            filter: self.user_filter.trim().to_owned(),
            sort: OrderField::ProcessedTime.sort(),
            page_size: self.page_size,
            page_number: 0,
            search_after: None,
        };
        loop {
            self.wait_for_room().await?;
            let page = self.client.search(&query).await?;
            let count = page.items.len();
            let mut last_position = None;
            for item in page.items {
                let record = match item {
                    Ok(record) => record,
                    Err(err) => {
                        self.reject(&query, &err);
                        continue;
                    }
                };
                last_position = record
                    .processed_time()
                    .map(|time| (time.unix_ms(), record.id().to_owned()));
                let key = DedupKey::from(record.dedup_key());
                if self.tracker.is_duplicate(&key) {
                    self.tracker.note_duplicate();
                    continue;
                }
                let ack = self.tracker.emit(index, None, key, now_ms());
                self.send(record.shared(), ack).await?;
            }
            if count < self.page_size {
                return Ok(());
            }
            if v2 {
                let next = page
                    .last_sort_values
                    .or_else(|| last_position.map(|(time, id)| json!([time, id])));
                if next.is_none() || next == query.search_after {
                    return Err(SourceError::Stuck {
                        request: format!("events of incident {incident}"),
                        reason: "a full page gave no sortValues to continue after".to_owned(),
                    });
                }
                query.search_after = next;
            } else {
                query.page_number += 1;
                if (query.page_number + 1) * self.page_size > PAGING_WINDOW {
                    // NOTE: v1 reaches only the first 10,000 events of one incident.
                    tracing::error!(
                        incident,
                        "incident has more events than v1 paging reaches; use api_version = \"v2\""
                    );
                    return Ok(());
                }
            }
        }
    }

    /// Skips a record the API sent that cannot be read: logs it with the
    /// request, counts it and writes it to the dead-letter file.
    fn reject(&self, query: &SearchQuery, err: &RecordError) {
        let stream = self.kind.stream_name();
        let request = query.describe();
        self.observer.rejected(stream);
        let Some(rejected) = &self.rejected else {
            tracing::warn!(stream, request, cause = %err, "skipping a record that cannot be read");
            return;
        };
        match rejected.write(self.kind, &request, err) {
            Ok(()) => tracing::warn!(
                stream,
                request,
                cause = %err,
                dead_letter = %rejected.path().display(),
                "skipping a record that cannot be read; it was written to the dead-letter file"
            ),
            Err(write_err) => tracing::error!(
                stream,
                request,
                cause = %err,
                dead_letter = %rejected.path().display(),
                error = %write_err,
                "skipping a record that cannot be read; writing it to the dead-letter file failed, so this log line is its only trace"
            ),
        }
    }

    async fn send(&self, record: SharedRecord, ack: AckToken) -> Result<(), SourceError> {
        self.sender
            .send(Polled { record, ack })
            .await
            .map_err(|_| SourceError::ChannelClosed)
    }

    /// Waits until the channel is at most half full, or has room for a whole
    /// page when that is less. No API call is made while the pipeline is
    /// full, and a fetched page's records do not wait in the poller for a
    /// channel that has just one free slot.
    async fn wait_for_room(&self) -> Result<(), SourceError> {
        let room = self.page_size.min(self.sender.max_capacity() / 2).max(1);
        self.sender
            .reserve_many(room)
            .await
            .map(drop)
            .map_err(|_| SourceError::ChannelClosed)
    }
}

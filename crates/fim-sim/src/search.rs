//! Search and count over one stream's records: filter, sort, `pageNumber`
//! paging inside the 10,000-row window, `searchAfter` paging, and `groupBy`
//! counts.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{Datelike, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::api_error::ApiError;
use crate::qql::{self, Filter};
use crate::record::{FieldValue, Record, format_zulu, is_date_field, lookup, parse_time_ms};

/// Rows a `pageNumber` search can reach: `(pageNumber + 1) × pageSize` may
/// not pass it, as in the Elasticsearch index behind the API.
pub const PAGING_WINDOW: usize = 10_000;

/// Most fields a `groupBy` may name, and most keys a `sort` may have.
pub const MAX_GROUP_FIELDS: usize = 4;
pub const MAX_SORT_KEYS: usize = 8;

/// Values of one multi-valued field a record is counted under, at most.
const MAX_VALUES_PER_FIELD: usize = 64;

/// `pageSize` when the request gives none, as documented for v1.
pub const DEFAULT_PAGE_SIZE: usize = 10;

/// Top-level fields of event records that filters and sorts may name.
pub const EVENT_FIELDS: &[&str] = &[
    "id",
    "dateTime",
    "processedTime",
    "fullPath",
    "name",
    "type",
    "action",
    "class",
    "severity",
    "platform",
    "changedAttributes",
    "oldContent",
    "newContent",
    "oldHash",
    "newHash",
    "actor",
    "asset",
    "profiles",
    "incidentId",
    "customerId",
    "ignoreDate",
];

/// Top-level fields of incident records that filters and sorts may name.
pub const INCIDENT_FIELDS: &[&str] = &[
    "id",
    "name",
    "type",
    "status",
    "approvalStatus",
    "approvalType",
    "approvalDate",
    "changeType",
    "dispositionCategory",
    "comment",
    "reviewers",
    "filters",
    "filterFromDate",
    "filterToDate",
    "assignDate",
    "createdBy",
    "lastUpdatedBy",
    "customerId",
    "deleted",
    "ruleName",
    "markupStatus",
    "slaViolationDate",
    "dateTime",
];

/// Request parameters from a v1 query string or a v2/v3 JSON body. Both
/// become one JSON object, so the two versions share every rule.
#[derive(Debug, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    pub fn from_query(pairs: Vec<(String, String)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(key, value)| (key, Value::String(value)))
                .collect(),
        )
    }

    pub fn from_body(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::bad_request(
                "the request body must be a JSON object",
            )),
            Err(err) => Err(ApiError::bad_request(format!(
                "invalid JSON request body: {err}"
            ))),
        }
    }

    fn text(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid {key} {other}: expected a string"
            ))),
        }
    }

    fn number(&self, key: &str) -> Result<Option<usize>, ApiError> {
        let invalid = |value: &Value| {
            ApiError::bad_request(format!("invalid {key} {value}: expected a whole number"))
        };
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| invalid(&Value::Number(number.clone()))),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| invalid(&Value::String(text.clone()))),
            Some(other) => Err(invalid(other)),
        }
    }

    /// Reads a list given as a JSON array or a comma-separated string.
    fn list(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    Value::Number(number) => Ok(number.to_string()),
                    other => Err(ApiError::bad_request(format!(
                        "invalid {key} item {other}: expected a string"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid {key} {other}: expected a list"
            ))),
        }
    }
}

/// A parsed search request.
#[derive(Debug)]
pub struct SearchRequest {
    pub filter: Option<Filter>,
    pub sort: Vec<SortKey>,
    pub page_number: usize,
    pub page_size: usize,
    pub search_after: Option<Vec<Value>>,
    pub incident_ids: Option<HashSet<String>>,
    pub attributes: Option<Vec<String>>,
}

/// One key of the `sort` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// One record of a search result, with its `sortValues`.
#[derive(Debug)]
pub struct Hit {
    pub record: Arc<Record>,
    pub sort_values: Vec<Value>,
}

/// The records of one stream that a search reads.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Visible records, sorted by (`order_field`, `id`) ascending.
    pub records: &'a [Arc<Record>],
    /// `processedTime` for events, `createdBy.date` for incidents.
    pub order_field: &'static str,
    pub fields: &'static [&'static str],
    /// Oldest time (epoch ms) served: the retention limit.
    pub retained_from_ms: i64,
}

impl SearchRequest {
    /// Reads a search request; `v2` allows `searchAfter`.
    pub fn parse(
        params: &Params,
        fields: &[&str],
        max_page_size: usize,
        v2: bool,
    ) -> Result<Self, ApiError> {
        let filter = parse_filter(params, fields)?;
        let sort = match params.text("sort")? {
            Some(text) => parse_sort(&text, fields)?,
            None => Vec::new(),
        };
        let page_number = params.number("pageNumber")?.unwrap_or(0);
        let page_size = params.number("pageSize")?.unwrap_or(DEFAULT_PAGE_SIZE);
        if page_size == 0 || page_size > max_page_size {
            return Err(ApiError::bad_request(format!(
                "invalid pageSize {page_size}: it must be between 1 and {max_page_size}"
            )));
        }

        let search_after = match params.0.get("searchAfter") {
            None | Some(Value::Null) => None,
            Some(_) if !v2 => None,
            Some(Value::Array(values)) => Some(values.clone()),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid searchAfter {other}: expected the sortValues array of the last record"
                )));
            }
        };
        if let Some(after) = &search_after {
            if sort.is_empty() {
                return Err(ApiError::bad_request(
                    "searchAfter needs a sort: send the same sort as the search that returned \
                     the sortValues",
                ));
            }
            if after.len() != sort.len() {
                return Err(ApiError::bad_request(format!(
                    "searchAfter has {} values but sort has {} keys: send the sortValues of the \
                     last record unchanged",
                    after.len(),
                    sort.len()
                )));
            }
            if page_number != 0 {
                return Err(ApiError::bad_request(
                    "pageNumber must be 0 when searchAfter is given",
                ));
            }
        }
        let reach = page_number.saturating_add(1).saturating_mul(page_size);
        if search_after.is_none() && reach > PAGING_WINDOW {
            return Err(ApiError::bad_request(format!(
                "Result window is too large: pageNumber {page_number} with pageSize {page_size} \
                 reaches row {reach}, past the first {PAGING_WINDOW} rows. Narrow the time \
                 window or page with searchAfter."
            )));
        }

        Ok(Self {
            filter,
            sort,
            page_number,
            page_size,
            search_after,
            incident_ids: params
                .list("incidentIds")?
                .map(|ids| ids.into_iter().collect()),
            attributes: params.list("attributes")?,
        })
    }

    /// Runs the search over `view`.
    pub fn run(&self, view: View<'_>) -> Result<Vec<Hit>, ApiError> {
        let sort = if self.sort.is_empty() {
            // Without a sort the newest changes come first.
            vec![SortKey {
                field: "dateTime".to_owned(),
                descending: true,
            }]
        } else {
            self.sort.clone()
        };
        let after = match &self.search_after {
            Some(values) => Some(sort_position(values, &sort)?),
            None => None,
        };
        let skip = self.page_number * self.page_size;

        if store_order(&sort, view.order_field) {
            return Ok(self.run_in_store_order(view, &sort, after.as_deref(), skip));
        }

        let mut matches: Vec<(Vec<Option<FieldValue>>, &Arc<Record>)> =
            candidates(view, self.filter.as_ref())
                .filter(|record| self.accepts(record, view))
                .map(|record| (sort_tuple(record, &sort), record))
                .collect();
        matches.sort_by(|a, b| compare_tuples(&a.0, &b.0, &sort));
        Ok(matches
            .into_iter()
            .filter(|(tuple, _)| {
                after
                    .as_ref()
                    .is_none_or(|after| compare_tuples(tuple, after, &sort).is_gt())
            })
            .skip(skip)
            .take(self.page_size)
            .map(|(tuple, record)| Hit {
                record: record.clone(),
                sort_values: tuple.iter().map(sort_value).collect(),
            })
            .collect())
    }

    /// Runs the common search of an incremental client, whose sort is the
    /// store's own order: it starts at a binary-searched position and stops
    /// as soon as the page is full.
    fn run_in_store_order(
        &self,
        view: View<'_>,
        sort: &[SortKey],
        after: Option<&[Option<FieldValue>]>,
        skip: usize,
    ) -> Vec<Hit> {
        let mut records = bounded(view, self.filter.as_ref());
        if let Some(after) = after {
            let start = records.partition_point(|record| {
                compare_tuples(&sort_tuple(record, sort), after, sort).is_le()
            });
            records = &records[start..];
        }
        records
            .iter()
            .filter(|record| self.accepts(record, view))
            .skip(skip)
            .take(self.page_size)
            .map(|record| Hit {
                record: record.clone(),
                sort_values: sort_tuple(record, sort).iter().map(sort_value).collect(),
            })
            .collect()
    }

    fn accepts(&self, record: &Record, view: View<'_>) -> bool {
        retained(record, view)
            && self.incident_ids.as_ref().is_none_or(|ids| {
                record
                    .incident_id
                    .as_deref()
                    .is_some_and(|id| ids.contains(id))
            })
            && self
                .filter
                .as_ref()
                .is_none_or(|filter| filter.matches(record))
    }
}

/// A parsed count request.
#[derive(Debug)]
pub struct CountRequest {
    pub filter: Option<Filter>,
    pub group_by: Vec<String>,
    pub limit: Option<usize>,
    /// Bucket width for date fields in `group_by`.
    pub interval: Option<Interval>,
    pub incident_ids: Option<HashSet<String>>,
}

impl CountRequest {
    pub fn parse(params: &Params, fields: &[&str]) -> Result<Self, ApiError> {
        let filter = parse_filter(params, fields)?;
        let group_by = params.list("groupBy")?.unwrap_or_default();
        if group_by.len() > MAX_GROUP_FIELDS {
            return Err(ApiError::bad_request(format!(
                "groupBy names {} fields; at most {MAX_GROUP_FIELDS} are allowed",
                group_by.len()
            )));
        }
        for field in &group_by {
            check_field(field, fields, "groupBy")?;
        }
        let interval = match params.text("interval")? {
            Some(text) => Some(Interval::parse(&text)?),
            None => None,
        };
        if interval.is_some() && !group_by.iter().any(|field| is_date_field(field)) {
            return Err(ApiError::bad_request(
                "interval needs a date field in groupBy, such as groupBy=dateTime",
            ));
        }
        Ok(Self {
            filter,
            group_by,
            limit: params.number("limit")?,
            interval,
            incident_ids: params
                .list("incidentIds")?
                .map(|ids| ids.into_iter().collect()),
        })
    }

    /// Counts the matching records: `{"count": n}`, or with `groupBy` a map
    /// from group value to count (nested one level per extra field).
    pub fn run(&self, view: View<'_>) -> RawJson {
        let matching = candidates(view, self.filter.as_ref()).filter(|record| {
            retained(record, view)
                && self.incident_ids.as_ref().is_none_or(|ids| {
                    record
                        .incident_id
                        .as_deref()
                        .is_some_and(|id| ids.contains(id))
                })
                && self
                    .filter
                    .as_ref()
                    .is_none_or(|filter| filter.matches(record))
        });
        if self.group_by.is_empty() {
            return RawJson(serde_json::json!({ "count": matching.count() }).to_string());
        }

        let mut groups: BTreeMap<Vec<String>, u64> = BTreeMap::new();
        for record in matching {
            let mut parsed = None;
            // A record counts once in the group of each of its values (each
            // address of a host with two interfaces), as a terms aggregation
            // counts it; with several fields, once per combination.
            let mut keys: Vec<Vec<String>> = vec![Vec::new()];
            for field in &self.group_by {
                let mut values: Vec<String> = lookup(record, field, &mut parsed)
                    .into_iter()
                    .map(|value| self.group_key(Some(value)))
                    .collect();
                values.sort();
                values.dedup();
                if values.is_empty() {
                    values.push(self.group_key(None));
                }
                values.truncate(MAX_VALUES_PER_FIELD);
                keys = keys
                    .into_iter()
                    .flat_map(|prefix| {
                        values.iter().map(move |value| {
                            let mut key = prefix.clone();
                            key.push(value.clone());
                            key
                        })
                    })
                    .collect();
            }
            for key in keys {
                *groups.entry(key).or_default() += 1;
            }
        }

        let mut rows: Vec<(Vec<String>, u64)> = groups.into_iter().collect();
        let by_time = self
            .group_by
            .first()
            .is_some_and(|field| is_date_field(field));
        if !by_time {
            // Largest groups first, as a terms aggregation returns them.
            rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        if let Some(limit) = self.limit {
            rows.truncate(limit);
        }
        let mut out = Groups::default();
        for (key, count) in rows {
            out.insert(&key, count);
        }
        out.into_value()
    }

    fn group_key(&self, value: Option<FieldValue>) -> String {
        match value {
            None => "null".to_owned(),
            Some(FieldValue::Time(ms)) => {
                let start = self
                    .interval
                    .map_or(ms, |interval| interval.bucket_start(ms));
                format_zulu(start)
            }
            Some(FieldValue::Text(text)) => text,
            Some(FieldValue::Number(number)) if number.fract() == 0.0 => {
                format!("{}", number as i64)
            }
            Some(FieldValue::Number(number)) => number.to_string(),
            Some(FieldValue::Bool(flag)) => flag.to_string(),
        }
    }
}

/// Group counts that keep the order rows were inserted in (largest first,
/// or by time), which a `serde_json::Map` would re-sort by key.
/// The nesting is one level per `groupBy` field, so at most
/// [`MAX_GROUP_FIELDS`] deep.
#[derive(Debug, Default)]
struct Groups {
    rows: Vec<(String, GroupNode)>,
    /// Position in `rows` of each nested group.
    index: HashMap<String, usize>,
}

#[derive(Debug)]
enum GroupNode {
    Count(u64),
    Nested(Groups),
}

impl Groups {
    fn insert(&mut self, key: &[String], count: u64) {
        let Some((head, rest)) = key.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.rows.push((head.clone(), GroupNode::Count(count)));
            return;
        }
        let position = match self.index.get(head) {
            Some(position) => *position,
            None => {
                self.rows
                    .push((head.clone(), GroupNode::Nested(Groups::default())));
                self.index.insert(head.clone(), self.rows.len() - 1);
                self.rows.len() - 1
            }
        };
        if let GroupNode::Nested(child) = &mut self.rows[position].1 {
            child.insert(rest, count);
        }
    }

    /// Renders the groups as a JSON object with the keys in order.
    fn into_value(self) -> RawJson {
        let mut out = String::from("{");
        for (index, (key, node)) in self.rows.into_iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(&Value::String(key).to_string());
            out.push(':');
            match node {
                GroupNode::Count(count) => out.push_str(&count.to_string()),
                GroupNode::Nested(child) => out.push_str(&child.into_value().0),
            }
        }
        out.push('}');
        RawJson(out)
    }
}

/// JSON text ready to send.
#[derive(Debug)]
pub struct RawJson(pub String);

impl std::fmt::Display for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A date-histogram bucket width: `1d`, `2h`, `15m`; units `y`, `q`, `M`,
/// `w`, `d`, `h`, `m`, `s`, nothing finer than a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub count: u32,
    pub unit: char,
}

impl Interval {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::bad_request(format!(
                "invalid interval '{text}': write a number and one of y, q, M, w, d, h, m, s, \
                 such as 1d"
            ))
        };
        let text = text.trim();
        let unit = text.chars().last().ok_or_else(invalid)?;
        if !matches!(unit, 'y' | 'q' | 'M' | 'w' | 'd' | 'h' | 'm' | 's') {
            return Err(invalid());
        }
        let digits = &text[..text.len() - unit.len_utf8()];
        let count: u32 = if digits.is_empty() {
            1
        } else if digits.bytes().all(|byte| byte.is_ascii_digit()) {
            digits.parse().map_err(|_| invalid())?
        } else {
            return Err(invalid());
        };
        if count == 0 || count > 10_000 {
            return Err(invalid());
        }
        Ok(Self { count, unit })
    }

    /// Start (epoch ms, UTC) of the bucket holding `ms`.
    pub fn bucket_start(&self, ms: i64) -> i64 {
        let time = crate::record::to_utc(ms);
        let count = i64::from(self.count);
        let fixed = |unit_ms: i64| {
            let width = unit_ms * count;
            ms.div_euclid(width) * width
        };
        match self.unit {
            's' => fixed(1_000),
            'm' => fixed(60_000),
            'h' => fixed(3_600_000),
            'd' => fixed(86_400_000),
            'w' => {
                // Weeks start on Monday, as ISO 8601 counts them.
                let days_from_monday = i64::from(time.weekday().num_days_from_monday());
                let monday = fixed(86_400_000) - days_from_monday * 86_400_000;
                let week_ms = 7 * 86_400_000;
                // 1970-01-05 was a Monday.
                let epoch_monday = 4 * 86_400_000;
                let offset = (monday - epoch_monday).div_euclid(week_ms * count) * week_ms * count;
                epoch_monday + offset
            }
            unit => {
                let months_per_bucket = match unit {
                    'M' => count,
                    'q' => 3 * count,
                    _ => 12 * count,
                };
                let months = i64::from(time.year()) * 12 + i64::from(time.month0());
                let start = months.div_euclid(months_per_bucket) * months_per_bucket;
                let year = i32::try_from(start.div_euclid(12)).unwrap_or(1970);
                let month = u32::try_from(start.rem_euclid(12)).unwrap_or(0) + 1;
                Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
                    .single()
                    .map_or(ms, |start| start.timestamp_millis())
            }
        }
    }
}

fn parse_filter(params: &Params, fields: &[&str]) -> Result<Option<Filter>, ApiError> {
    match params.text("filter")? {
        Some(text) => qql::parse(&text, fields)
            .map(Some)
            .map_err(|err| ApiError::bad_request(format!("{err}; filter: {text}"))),
        None => Ok(None),
    }
}

/// Parses the `sort` parameter: a string holding a JSON array such as
/// `[{"processedTime":"asc"},{"id":"asc"}]`.
fn parse_sort(text: &str, fields: &[&str]) -> Result<Vec<SortKey>, ApiError> {
    let invalid = |why: &str| {
        ApiError::bad_request(format!(
            "invalid sort {text}: {why}; expected a JSON array such as \
             [{{\"processedTime\":\"asc\"}},{{\"id\":\"asc\"}}]"
        ))
    };
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
        return Err(invalid("not a JSON array"));
    };
    let mut keys = Vec::new();
    if items.len() > MAX_SORT_KEYS {
        return Err(invalid(&format!(
            "at most {MAX_SORT_KEYS} sort keys are allowed"
        )));
    }
    for item in items {
        let Value::Object(object) = item else {
            return Err(invalid("each item must be an object"));
        };
        // The object's keys would come back in alphabetical order, losing
        // the order asked for, so each object names one field.
        if object.len() != 1 {
            return Err(invalid("each item must name exactly one field"));
        }
        for (field, direction) in object {
            check_field(&field, fields, "sort")?;
            let descending = match direction.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("asc") => false,
                Some("desc") => true,
                _ => {
                    return Err(invalid(&format!(
                        "direction of '{field}' must be asc or desc"
                    )));
                }
            };
            keys.push(SortKey { field, descending });
        }
    }
    Ok(keys)
}

fn check_field(field: &str, fields: &[&str], parameter: &str) -> Result<(), ApiError> {
    let top = field.split('.').next().unwrap_or(field);
    let well_formed = !field.split('.').any(str::is_empty)
        && field
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    if well_formed && fields.contains(&top) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "unknown field '{field}' in {parameter}"
    )))
}

/// Tells whether `sort` is the store's own order, which the records already have.
fn store_order(sort: &[SortKey], order_field: &str) -> bool {
    match sort {
        [first] => first.field == order_field && !first.descending,
        [first, second] => {
            first.field == order_field
                && !first.descending
                && second.field == "id"
                && !second.descending
        }
        _ => false,
    }
}

/// Returns the part of the store inside the filter's bounds on the order field.
fn bounded<'a>(view: View<'a>, filter: Option<&Filter>) -> &'a [Arc<Record>] {
    let (low, high) = filter.map_or((None, None), |filter| filter.bounds(view.order_field));
    let records = view.records;
    let start = low.map_or(0, |low| {
        records.partition_point(|record| record.order_ms < low)
    });
    let end = high.map_or(records.len(), |high| {
        records.partition_point(|record| record.order_ms <= high)
    });
    records.get(start..end.max(start)).unwrap_or_default()
}

fn candidates<'a>(
    view: View<'a>,
    filter: Option<&Filter>,
) -> impl Iterator<Item = &'a Arc<Record>> {
    bounded(view, filter).iter()
}

/// Records older than the retention limit are no longer served.
fn retained(record: &Record, view: View<'_>) -> bool {
    record.date_time_ms.unwrap_or(record.order_ms) >= view.retained_from_ms
}

fn sort_tuple(record: &Record, sort: &[SortKey]) -> Vec<Option<FieldValue>> {
    let mut parsed = None;
    sort.iter()
        .map(|key| {
            let values = lookup(record, &key.field, &mut parsed);
            // A multi-valued field sorts by its smallest value ascending and
            // its largest descending, as Elasticsearch does.
            if key.descending {
                values.into_iter().max_by(compare_values)
            } else {
                values.into_iter().min_by(compare_values)
            }
        })
        .collect()
}

fn compare_values(a: &FieldValue, b: &FieldValue) -> Ordering {
    match (a, b) {
        (FieldValue::Time(a), FieldValue::Time(b)) => a.cmp(b),
        (FieldValue::Number(a), FieldValue::Number(b)) => a.total_cmp(b),
        (FieldValue::Text(a), FieldValue::Text(b)) => a.cmp(b),
        (FieldValue::Bool(a), FieldValue::Bool(b)) => a.cmp(b),
        (a, b) => rank(a).cmp(&rank(b)),
    }
}

fn rank(value: &FieldValue) -> u8 {
    match value {
        FieldValue::Bool(_) => 0,
        FieldValue::Number(_) => 1,
        FieldValue::Time(_) => 2,
        FieldValue::Text(_) => 3,
    }
}

/// Compares two sort tuples; a missing value sorts last in either direction.
fn compare_tuples(
    a: &[Option<FieldValue>],
    b: &[Option<FieldValue>],
    sort: &[SortKey],
) -> Ordering {
    for ((a, b), key) in a.iter().zip(b).zip(sort) {
        let order = match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => {
                let order = compare_values(a, b);
                if key.descending {
                    order.reverse()
                } else {
                    order
                }
            }
        };
        if order.is_ne() {
            return order;
        }
    }
    Ordering::Equal
}

fn sort_value(value: &Option<FieldValue>) -> Value {
    match value {
        None => Value::Null,
        Some(FieldValue::Time(ms)) => Value::from(*ms),
        // Whole numbers go back as integers, as the record has them.
        Some(FieldValue::Number(number)) if number.fract() == 0.0 && number.abs() < 9.0e15 => {
            Value::from(*number as i64)
        }
        Some(FieldValue::Number(number)) => {
            serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
        }
        Some(FieldValue::Text(text)) => Value::String(text.clone()),
        Some(FieldValue::Bool(flag)) => Value::Bool(*flag),
    }
}

/// Converts a client's `searchAfter` values into a sort tuple.
fn sort_position(values: &[Value], sort: &[SortKey]) -> Result<Vec<Option<FieldValue>>, ApiError> {
    values
        .iter()
        .zip(sort)
        .map(|(value, key)| {
            let invalid = || {
                ApiError::bad_request(format!(
                    "invalid searchAfter value {value} for sort key '{}'",
                    key.field
                ))
            };
            Ok(match value {
                Value::Null => None,
                Value::Number(number) if is_date_field(&key.field) => {
                    Some(FieldValue::Time(number.as_i64().ok_or_else(invalid)?))
                }
                Value::String(text) if is_date_field(&key.field) => {
                    Some(FieldValue::Time(parse_time_ms(text).ok_or_else(invalid)?))
                }
                Value::Number(number) => {
                    Some(FieldValue::Number(number.as_f64().ok_or_else(invalid)?))
                }
                Value::String(text) => Some(FieldValue::Text(text.clone())),
                Value::Bool(flag) => Some(FieldValue::Bool(*flag)),
                Value::Array(_) | Value::Object(_) => return Err(invalid()),
            })
        })
        .collect()
}

/// Keeps only the `attributes` a client asked for (top-level names).
pub fn project(json: &str, attributes: &[String]) -> String {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    let wanted: HashSet<&str> = attributes
        .iter()
        .map(|name| name.split('.').next().unwrap_or(name))
        .collect();
    let kept: Map<String, Value> = object
        .into_iter()
        .filter(|(key, _)| key == "id" || wanted.contains(key.as_str()))
        .collect();
    Value::Object(kept).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_parses_count_and_unit() {
        assert_eq!(
            Interval::parse("15m").unwrap(),
            Interval {
                count: 15,
                unit: 'm'
            }
        );
    }

    #[test]
    fn interval_rejects_milliseconds() {
        assert!(Interval::parse("5ms").is_err());
    }

    #[test]
    fn day_buckets_start_at_midnight() {
        let interval = Interval::parse("1d").unwrap();
        assert_eq!(interval.bucket_start(1_714_558_588_163), 1_714_521_600_000);
    }

    #[test]
    fn month_buckets_start_on_the_first() {
        let interval = Interval::parse("1M").unwrap();
        // 2024-05-01T10:16:28Z falls in the bucket of 2024-05-01T00:00:00Z.
        assert_eq!(interval.bucket_start(1_714_558_588_163), 1_714_521_600_000);
    }

    #[test]
    fn week_buckets_start_on_monday() {
        let interval = Interval::parse("1w").unwrap();
        // 2024-05-01 was a Wednesday; its week starts 2024-04-29.
        assert_eq!(interval.bucket_start(1_714_558_588_163), 1_714_348_800_000);
    }

    #[test]
    fn sort_parses_json_in_a_string() {
        let keys = parse_sort(r#"[{"processedTime":"asc"},{"id":"desc"}]"#, EVENT_FIELDS).unwrap();
        assert_eq!(
            keys,
            vec![
                SortKey {
                    field: "processedTime".to_owned(),
                    descending: false
                },
                SortKey {
                    field: "id".to_owned(),
                    descending: true
                },
            ]
        );
    }

    #[test]
    fn sort_rejects_two_fields_in_one_object() {
        let err = parse_sort(r#"[{"processedTime":"desc","id":"asc"}]"#, EVENT_FIELDS).unwrap_err();
        assert!(err.message.contains("exactly one field"), "{}", err.message);
    }

    #[test]
    fn sort_rejects_too_many_keys() {
        let text = format!("[{}]", [r#"{"id":"asc"}"#; 9].join(","));
        assert!(parse_sort(&text, EVENT_FIELDS).is_err());
    }

    #[test]
    fn sort_rejects_empty_path_segment() {
        assert!(parse_sort(r#"[{"asset..name":"asc"}]"#, EVENT_FIELDS).is_err());
    }

    #[test]
    fn interval_rejects_signs_and_huge_counts() {
        assert!(Interval::parse("+1d").is_err());
        assert!(Interval::parse("4294967295y").is_err());
    }

    #[test]
    fn sort_rejects_unknown_field() {
        let err = parse_sort(r#"[{"colour":"asc"}]"#, EVENT_FIELDS).unwrap_err();
        assert!(err.message.contains("colour"), "{}", err.message);
    }
}

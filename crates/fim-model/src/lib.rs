//! Records of the Qualys FIM API: events, ignored events, incidents and
//! incident events.
//!
//! A [`Record`] keeps the object the API sent, every field included and in
//! received order ([`JsonObject`]), and parses the fields the pipeline orders
//! and deduplicates by (id, `dateTime`, `processedTime`, incident update
//! times) once. The typed views in [`view`] read the rest on demand and
//! accept what the API really sends: numbers as strings, strings as numbers,
//! `null` anywhere, and the several time formats handled by [`Timestamp`].
//!
//! Records are shared between sinks as [`SharedRecord`] (`Arc<Record>`). The
//! poller pairs each one with its stream position. The record itself stores
//! only its [`RecordKind`] (its stream) and, once attached, how it was
//! fetched ([`FetchInfo`]).

pub mod json;
pub mod record;
pub mod time;
pub mod view;

pub use json::{JsonObject, JsonValue};
pub use record::{ApiVersion, FetchInfo, PageError, Record, RecordError, RecordKind, SharedRecord};
pub use time::Timestamp;
pub use view::{HashAlgorithm, MacAddress, Severity};

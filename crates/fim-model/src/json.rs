//! An order-preserving JSON tree for records as the API sent them.
//!
//! `serde_json::Value` sorts object keys unless the `preserve_order` feature is
//! on, and turning that feature on would change key order for every crate in
//! the workspace. This tree keeps keys in the order received (duplicates
//! included), so the "as received" output reproduces the record field by
//! field. It also offers the tolerant look-ups the typed views need: a
//! number where a string was expected, a string where a number was
//! expected, and `null` anywhere.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::thread::LocalKey;

use compact_str::CompactString;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;

/// One JSON value of a record.
///
/// Strings and object keys are [`CompactString`]s, which store up to 24
/// bytes inline. That covers the API's keys and its short values (actions,
/// types, host names), so most members of a record need no allocation of
/// their own.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    Null,
    Bool(bool),
    Number(Number),
    String(CompactString),
    Array(Vec<JsonValue>),
    Object(JsonObject),
}

/// A JSON object whose members stay in the order they were received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonObject {
    members: Vec<(CompactString, JsonValue)>,
}

impl JsonObject {
    /// Creates an empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the value of the first member named `key`.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        self.members
            .iter()
            .find(|(name, _)| name.as_str() == key)
            .map(|(_, value)| value)
    }

    /// Iterates over the members in received order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &JsonValue)> {
        self.members
            .iter()
            .map(|(name, value)| (name.as_str(), value))
    }

    /// Appends a member; an existing member of the same name is kept.
    pub fn push(&mut self, key: impl Into<CompactString>, value: JsonValue) {
        self.members.push((key.into(), value));
    }

    /// Returns the number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Consumes the object into its members, in received order.
    pub fn into_members(self) -> Vec<(CompactString, JsonValue)> {
        self.members
    }

    /// Returns whether the object has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl JsonValue {
    /// Returns the member `key` when this value is an object.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        match self {
            JsonValue::Object(object) => object.get(key),
            _ => None,
        }
    }

    /// Returns the string when this value is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            JsonValue::String(text) => Some(text),
            _ => None,
        }
    }

    /// Returns the elements when this value is an array.
    pub fn as_array(&self) -> Option<&[JsonValue]> {
        match self {
            JsonValue::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Returns the object when this value is one.
    pub fn as_object(&self) -> Option<&JsonObject> {
        match self {
            JsonValue::Object(object) => Some(object),
            _ => None,
        }
    }

    /// Returns whether this value is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, JsonValue::Null)
    }

    /// Returns the value as text: a string as is, a number or a boolean in
    /// its JSON spelling. `null`, arrays, objects and empty strings give
    /// `None`, because the API sends `null` or `""` for "not known".
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            JsonValue::String(text) if text.is_empty() => None,
            JsonValue::String(text) => Some(Cow::Borrowed(text)),
            JsonValue::Number(number) => Some(Cow::Owned(number.to_string())),
            JsonValue::Bool(flag) => Some(Cow::Borrowed(if *flag { "true" } else { "false" })),
            _ => None,
        }
    }

    /// Returns the value as an integer: a JSON integer, a float without a
    /// fraction, or a string holding one (the API sends some numbers as
    /// strings).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            JsonValue::Number(number) => number_to_i64(number),
            JsonValue::String(text) => text.trim().parse::<i64>().ok(),
            _ => None,
        }
    }
}

fn number_to_i64(number: &Number) -> Option<i64> {
    if let Some(value) = number.as_i64() {
        return Some(value);
    }

    let value = number.as_f64()?;
    // Beyond 2^53 an f64 cannot represent every integer, so such a value is
    // not trusted as an id, a pid or a timestamp.
    let in_range = value.abs() <= 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && in_range {
        // The range check above makes the cast exact.
        #[allow(clippy::cast_possible_truncation)]
        return Some(value as i64);
    }
    None
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonValueVisitor)
    }
}

struct JsonValueVisitor;

impl<'de> Visitor<'de> for JsonValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<JsonValue, E> {
        // JSON text cannot spell NaN or infinity, so `from_f64` fails only
        // for values serde_json never produces. `null` stands in for them.
        Ok(Number::from_f64(value).map_or(JsonValue::Null, JsonValue::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::String(value.into()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<JsonValue, E> {
        Ok(JsonValue::String(value.into()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonValue, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        let mut scratch = Scratch::open(&ITEMS);
        while let Some(item) = seq.next_element()? {
            scratch.push(item);
        }
        Ok(JsonValue::Array(scratch.finish()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        let mut scratch = Scratch::open(&MEMBERS);
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value()?;
            scratch.push((key.0, value));
        }
        Ok(JsonValue::Object(JsonObject {
            members: scratch.finish(),
        }))
    }
}

thread_local! {
    /// Elements of the arrays being parsed on this thread, innermost last.
    static ITEMS: RefCell<Vec<JsonValue>> = const { RefCell::new(Vec::new()) };
    /// Members of the objects being parsed on this thread, innermost last.
    static MEMBERS: RefCell<Vec<(CompactString, JsonValue)>> = const { RefCell::new(Vec::new()) };
}

/// Above this many entries, a scratch stack is shrunk once parsing is done,
/// so one huge record does not keep its memory for the life of the thread.
const SCRATCH_KEEP: usize = 4096;

/// The part of a thread's scratch stack that contains one array's elements or
/// one object's members while they are parsed.
///
/// serde_json gives no length hint, so pushing onto the container itself
/// would grow it by doubling: up to twice the memory it needs and a copy
/// per doubling, for every object of every record. The elements go onto a
/// stack shared by all nesting levels instead (an inner container takes
/// its elements off before the outer one continues), and the finished
/// container is allocated once, at its exact size. Dropping the region,
/// also on an error, truncates the stack to where the region began.
enum Scratch<T: 'static> {
    Shared {
        stack: &'static LocalKey<RefCell<Vec<T>>>,
        start: usize,
    },
    /// A vector of its own, used when the thread's stack is unavailable: a
    /// value parsed in another thread-local's destructor, after this
    /// thread's storage was torn down.
    Own(Vec<T>),
}

impl<T> Scratch<T> {
    fn open(stack: &'static LocalKey<RefCell<Vec<T>>>) -> Self {
        match stack.try_with(|cell| cell.try_borrow().map(|items| items.len())) {
            Ok(Ok(start)) => Self::Shared { stack, start },
            _ => Self::Own(Vec::new()),
        }
    }

    fn push(&mut self, value: T) {
        match self {
            Self::Shared { stack, .. } => stack.with_borrow_mut(|items| items.push(value)),
            Self::Own(items) => items.push(value),
        }
    }

    fn finish(mut self) -> Vec<T> {
        match &mut self {
            Self::Shared { stack, start } => stack.with_borrow_mut(|items| items.split_off(*start)),
            Self::Own(items) => std::mem::take(items),
        }
    }
}

impl<T> Drop for Scratch<T> {
    fn drop(&mut self) {
        let Self::Shared { stack, start } = self else {
            return;
        };
        let _ = stack.try_with(|cell| {
            if let Ok(mut items) = cell.try_borrow_mut() {
                items.truncate(*start);
                if *start == 0 && items.capacity() > SCRATCH_KEEP {
                    items.shrink_to(SCRATCH_KEEP);
                }
            }
        });
    }
}

/// An object key, taken borrowed from the input when it has no escapes, so
/// a key of up to 24 bytes is copied inline with no allocation.
struct Key(CompactString);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object key")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Key, E> {
                Ok(Key(value.into()))
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<Key, E> {
                Ok(Key(value.into()))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

impl Serialize for JsonValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonValue::Null => serializer.serialize_unit(),
            JsonValue::Bool(flag) => serializer.serialize_bool(*flag),
            JsonValue::Number(number) => number.serialize(serializer),
            JsonValue::String(text) => serializer.serialize_str(text),
            JsonValue::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            JsonValue::Object(object) => object.serialize(serializer),
        }
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.members.len()))?;
        for (key, value) in &self.members {
            map.serialize_entry(key.as_str(), value)?;
        }
        map.end()
    }
}

impl From<&JsonValue> for serde_json::Value {
    fn from(value: &JsonValue) -> Self {
        match value {
            JsonValue::Null => serde_json::Value::Null,
            JsonValue::Bool(flag) => serde_json::Value::Bool(*flag),
            JsonValue::Number(number) => serde_json::Value::Number(number.clone()),
            JsonValue::String(text) => serde_json::Value::String(text.to_string()),
            JsonValue::Array(items) => items.iter().map(serde_json::Value::from).collect(),
            JsonValue::Object(object) => serde_json::Value::Object(
                object
                    .iter()
                    .map(|(key, value)| (key.to_owned(), serde_json::Value::from(value)))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> JsonValue {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn keeps_member_order() {
        let value = parse(r#"{"z":1,"a":2,"m":3}"#);
        let keys: Vec<&str> = value.as_object().unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn serializes_back_to_the_same_text() {
        let text = r#"{"z":1,"a":[true,null,"x\ny"],"m":{"b":-2.5}}"#;
        assert_eq!(serde_json::to_string(&parse(text)).unwrap(), text);
    }

    #[test]
    fn nested_containers_at_exact_size() {
        let value = parse(r#"{"a":[1,[2,3],{"b":[]}],"c":{"d":{"e":4}},"f":5}"#);
        let object = value.as_object().unwrap();
        assert_eq!(object.members.capacity(), 3);
        let array = object.get("a").unwrap().as_array().unwrap();
        assert_eq!(array.len(), 3);
        assert_eq!(array[1].as_array().unwrap().len(), 2);
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"a":[1,[2,3],{"b":[]}],"c":{"d":{"e":4}},"f":5}"#
        );
    }

    #[test]
    fn failed_parse_leaves_nothing_for_the_next() {
        for broken in [r#"{"a":[1,{"b":2"#, r#"[{"a":1},[2,"#, r#"{"a":{"b":tru}}"#] {
            assert!(serde_json::from_str::<JsonValue>(broken).is_err());
        }
        assert_eq!(parse(r#"{"x":[7]}"#), parse(r#"{"x":[7]}"#));
        assert_eq!(
            serde_json::to_string(&parse(r#"{"x":[7]}"#)).unwrap(),
            r#"{"x":[7]}"#
        );
        MEMBERS.with_borrow(|members| assert!(members.is_empty()));
        ITEMS.with_borrow(|items| assert!(items.is_empty()));
    }

    #[test]
    fn parses_in_a_thread_local_destructor() {
        struct ParseOnDrop;
        impl Drop for ParseOnDrop {
            fn drop(&mut self) {
                let value: JsonValue = serde_json::from_str(r#"{"a":[1,{"b":2}]}"#).unwrap();
                assert_eq!(
                    serde_json::to_string(&value).unwrap(),
                    r#"{"a":[1,{"b":2}]}"#
                );
            }
        }
        thread_local! {
            static LATE: ParseOnDrop = const { ParseOnDrop };
        }
        std::thread::spawn(|| {
            // Registered before the scratch stacks, so destroyed after them.
            LATE.with(|_| {});
            parse(r#"{"x":[1]}"#);
        })
        .join()
        .unwrap();
    }

    /// Found by the api_response fuzz target: with its default features
    /// serde_json read a 124-digit integer one unit in the last place off,
    /// so the shortest text written for it parsed back to another value.
    #[test]
    fn large_numbers_survive_a_round_trip() {
        let long_integer = format!("11745{}52981681", "6".repeat(111));
        for text in [
            &long_integer,
            "1.1745666666666668e+123",
            "2.2250738585072011e-308",
        ] {
            let value = parse(text);
            let again = parse(&serde_json::to_string(&value).unwrap());
            assert_eq!(value, again, "{text}");
        }
    }

    /// A record is mostly members, so their size sets its memory: an inline
    /// key and a value of 32 bytes.
    #[test]
    fn member_is_56_bytes() {
        assert_eq!(std::mem::size_of::<JsonValue>(), 32);
        assert_eq!(std::mem::size_of::<(CompactString, JsonValue)>(), 56);
    }

    #[test]
    fn keeps_long_strings_and_keys() {
        let key = "k".repeat(40);
        let text = format!(r#"{{"{key}":"{}","short":"é\n"}}"#, "v".repeat(100));
        let value = parse(&text);
        assert_eq!(serde_json::to_string(&value).unwrap(), text);
        assert_eq!(value.get(&key).unwrap().as_str().unwrap().len(), 100);
        assert_eq!(value.get("short").unwrap().as_str(), Some("é\n"));
    }

    #[test]
    fn reads_numbers_sent_as_strings() {
        assert_eq!(parse(r#""3311""#).as_i64(), Some(3311));
    }

    #[test]
    fn reads_integral_floats_as_integers() {
        assert_eq!(parse("4.0").as_i64(), Some(4));
    }

    #[test]
    fn rejects_fractional_numbers_as_integers() {
        assert_eq!(parse("4.5").as_i64(), None);
    }

    #[test]
    fn spells_numbers_as_text() {
        assert_eq!(parse("0").as_text().as_deref(), Some("0"));
    }

    #[test]
    fn treats_empty_strings_as_absent_text() {
        assert_eq!(parse(r#""""#).as_text(), None);
    }
}

//! Typed, borrowing views of the fields encoders map.
//!
//! Each accessor reads the source object of a [`Record`] on demand and
//! tolerates what the API really sends: `null` or a missing field gives
//! `None`, a number is accepted where text was expected and the reverse.
//! Nothing here copies the record.

use std::borrow::Cow;

use crate::json::{JsonObject, JsonValue};
use crate::record::Record;
use crate::time::Timestamp;

/// Text read from a record: borrowed when the API sent a string, owned when
/// it sent a number or boolean.
pub type Text<'a> = Cow<'a, str>;

fn text_of<'a>(object: Option<&'a JsonObject>, key: &str) -> Option<Text<'a>> {
    object?.get(key)?.as_text()
}

fn array_of<'a>(object: Option<&'a JsonObject>, key: &str) -> &'a [JsonValue] {
    object
        .and_then(|object| object.get(key))
        .and_then(JsonValue::as_array)
        .unwrap_or(&[])
}

/// Qualys severity, 1 (lowest) to 5 (highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Severity(u8);

impl Severity {
    /// Accepts 1 to 5; anything else is not a Qualys severity.
    pub fn new(level: i64) -> Option<Self> {
        u8::try_from(level)
            .ok()
            .filter(|level| (1..=5).contains(level))
            .map(Self)
    }

    pub fn level(self) -> u8 {
        self.0
    }
}

/// The `actor` of an event: the process and user that made the change.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a>(Option<&'a JsonObject>);

impl<'a> Actor<'a> {
    pub fn process(self) -> Option<Text<'a>> {
        text_of(self.0, "process")
    }

    /// Returns `processID` when it is an integer (or a string holding one).
    pub fn process_id(self) -> Option<i64> {
        self.0?.get("processID")?.as_i64()
    }

    pub fn image_path(self) -> Option<Text<'a>> {
        text_of(self.0, "imagePath")
    }

    /// Returns `userName` as sent, e.g. `NT AUTHORITY\SYSTEM` or `root`.
    pub fn user_name(self) -> Option<Text<'a>> {
        text_of(self.0, "userName")
    }

    /// Returns `userID`: a Windows SID or a Unix uid.
    pub fn user_id(self) -> Option<Text<'a>> {
        text_of(self.0, "userID")
    }

    pub fn object(self) -> Option<&'a JsonObject> {
        self.0
    }
}

/// Splits `DOMAIN\user` into its domain and user; a name without a
/// backslash has no domain.
pub fn split_domain_user(name: &str) -> (Option<&str>, &str) {
    match name.split_once('\\') {
        Some((domain, user)) if !domain.is_empty() => (Some(domain), user),
        Some((_, user)) => (None, user),
        None => (None, name),
    }
}

/// The `asset` of an event: the host the Cloud Agent runs on.
#[derive(Debug, Clone, Copy)]
pub struct Asset<'a>(Option<&'a JsonObject>);

impl<'a> Asset<'a> {
    pub fn agent_id(self) -> Option<Text<'a>> {
        text_of(self.0, "agentId")
    }

    /// Returns the host name: `hostname` when sent, else the asset `name`,
    /// else the NetBIOS name, else the first interface's host name.
    pub fn host_name(self) -> Option<Text<'a>> {
        text_of(self.0, "hostname")
            .or_else(|| text_of(self.0, "name"))
            .or_else(|| text_of(self.0, "netbiosName"))
            .or_else(|| self.interfaces().find_map(Interface::hostname))
    }

    /// Returns the asset `name` (Qualys' display name for the host).
    pub fn name(self) -> Option<Text<'a>> {
        text_of(self.0, "name")
    }

    pub fn netbios_name(self) -> Option<Text<'a>> {
        text_of(self.0, "netbiosName")
    }

    pub fn operating_system(self) -> Option<Text<'a>> {
        text_of(self.0, "operatingSystem")
    }

    pub fn agent_version(self) -> Option<Text<'a>> {
        text_of(self.0, "agentVersion")
    }

    /// Returns the last user logged on to the host; not the actor of the
    /// change.
    pub fn last_logged_on_user(self) -> Option<Text<'a>> {
        text_of(self.0, "lastLoggedOnUser")
    }

    /// Iterates over the asset tags that are text or numbers.
    pub fn tags(self) -> impl Iterator<Item = Text<'a>> {
        array_of(self.0, "tags")
            .iter()
            .filter_map(JsonValue::as_text)
    }

    pub fn interfaces(self) -> impl Iterator<Item = Interface<'a>> {
        array_of(self.0, "interfaces")
            .iter()
            .map(|item| Interface(item.as_object()))
    }

    pub fn object(self) -> Option<&'a JsonObject> {
        self.0
    }
}

/// One network interface of an asset.
#[derive(Debug, Clone, Copy)]
pub struct Interface<'a>(Option<&'a JsonObject>);

impl<'a> Interface<'a> {
    /// Returns the address as sent (IPv4 or IPv6 text).
    pub fn address(self) -> Option<Text<'a>> {
        text_of(self.0, "address")
    }

    pub fn mac_address(self) -> Option<Text<'a>> {
        text_of(self.0, "macAddress")
    }

    pub fn hostname(self) -> Option<Text<'a>> {
        text_of(self.0, "hostname")
    }

    pub fn interface_name(self) -> Option<Text<'a>> {
        text_of(self.0, "interfaceName")
    }
}

/// A monitoring profile that matched an event.
#[derive(Debug, Clone, Copy)]
pub struct Profile<'a>(Option<&'a JsonObject>);

impl<'a> Profile<'a> {
    pub fn id(self) -> Option<Text<'a>> {
        text_of(self.0, "id")
    }

    pub fn name(self) -> Option<Text<'a>> {
        text_of(self.0, "name")
    }

    /// Returns the compliance category name, e.g. `PCI`.
    pub fn category_name(self) -> Option<Text<'a>> {
        self.0?.get("category")?.get("name")?.as_text()
    }

    pub fn rules(self) -> impl Iterator<Item = Rule<'a>> {
        array_of(self.0, "rules")
            .iter()
            .map(|item| Rule(item.as_object()))
    }
}

/// A rule of a monitoring profile.
#[derive(Debug, Clone, Copy)]
pub struct Rule<'a>(Option<&'a JsonObject>);

impl<'a> Rule<'a> {
    pub fn id(self) -> Option<Text<'a>> {
        text_of(self.0, "id")
    }

    /// Returns the rule name; older records have none.
    pub fn name(self) -> Option<Text<'a>> {
        text_of(self.0, "name")
    }

    pub fn severity(self) -> Option<Severity> {
        self.0?.get("severity")?.as_i64().and_then(Severity::new)
    }
}

/// A hash algorithm, identified by the length of a hex digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// Returns the algorithm of a hex digest: 32 digits MD5, 40 SHA-1, 64
    /// SHA-256, 128 SHA-512. Anything else (other lengths, non-hex) is
    /// `None`.
    pub fn of_hex(digest: &str) -> Option<Self> {
        if !digest.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        match digest.len() {
            32 => Some(Self::Md5),
            40 => Some(Self::Sha1),
            64 => Some(Self::Sha256),
            128 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Returns the ECS field name: `md5`, `sha1`, `sha256`, `sha512`.
    pub const fn ecs_name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }
}

/// A 48-bit MAC or 64-bit EUI address parsed from any common spelling
/// (`00:50:56:AA:75:71`, `00-50-56-aa-75-71`, `0050.56aa.7571`,
/// `005056AA7571`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddress {
    octets: [u8; 8],
    len: usize,
}

impl MacAddress {
    pub fn parse(text: &str) -> Option<Self> {
        let mut octets = [0u8; 8];
        let mut nibbles = 0usize;
        for byte in text.trim().bytes() {
            if matches!(byte, b':' | b'-' | b'.') {
                continue;
            }
            let nibble = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                b'A'..=b'F' => byte - b'A' + 10,
                _ => return None,
            };
            let octet = octets.get_mut(nibbles / 2)?;
            *octet = (*octet << 4) | nibble;
            nibbles += 1;
        }
        match nibbles {
            12 => Some(Self { octets, len: 6 }),
            16 => Some(Self { octets, len: 8 }),
            _ => None,
        }
    }

    /// Returns whether this is a 48-bit MAC (six octets), the only size CEF
    /// MAC fields accept.
    pub fn is_eui48(self) -> bool {
        self.len == 6
    }

    pub fn octets(&self) -> &[u8] {
        &self.octets[..self.len]
    }

    /// Appends uppercase hex octets joined by `separator`: `-` gives the
    /// RFC 7042 form that ECS `host.mac` expects, `:` the form CEF expects.
    pub fn write(&self, separator: u8, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for (index, octet) in self.octets().iter().enumerate() {
            if index > 0 {
                out.push(separator);
            }
            out.push(HEX[usize::from(octet >> 4)]);
            out.push(HEX[usize::from(octet & 0x0f)]);
        }
    }
}

/// Incident fields (records of the incidents stream).
#[derive(Debug, Clone, Copy)]
pub struct Incident<'a>(&'a Record);

/// A user named in `createdBy` or `lastUpdatedBy`.
#[derive(Debug, Clone, Copy)]
pub struct IncidentUser<'a>(Option<&'a JsonObject>);

impl<'a> IncidentUser<'a> {
    pub fn id(self) -> Option<Text<'a>> {
        text_of(self.0, "id")
    }

    pub fn name(self) -> Option<Text<'a>> {
        text_of(self.0, "name")
    }
}

impl<'a> Incident<'a> {
    pub fn name(self) -> Option<Text<'a>> {
        self.0.text("name")
    }

    /// Returns the status, e.g. `OPEN`, `CLOSED`, `REOPENED`.
    pub fn status(self) -> Option<Text<'a>> {
        self.0.text("status")
    }

    /// Returns `DEFAULT` (made by a user) or `AUTOMATED` (made by a rule).
    pub fn incident_type(self) -> Option<Text<'a>> {
        self.0.text("type")
    }

    /// Returns whether a correlation rule rather than a user made the
    /// incident.
    pub fn is_rule_generated(self) -> bool {
        let automated = self
            .incident_type()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("AUTOMATED"));
        automated || self.0.text("ruleName").is_some()
    }

    pub fn approval_status(self) -> Option<Text<'a>> {
        self.0.text("approvalStatus")
    }

    pub fn approval_type(self) -> Option<Text<'a>> {
        self.0.text("approvalType")
    }

    pub fn disposition_category(self) -> Option<Text<'a>> {
        self.0.text("dispositionCategory")
    }

    pub fn comment(self) -> Option<Text<'a>> {
        self.0.text("comment")
    }

    pub fn reviewers(self) -> impl Iterator<Item = Text<'a>> {
        array_of(Some(self.0.source()), "reviewers")
            .iter()
            .filter_map(JsonValue::as_text)
    }

    pub fn filter_from(self) -> Option<Timestamp> {
        self.0.get("filterFromDate").and_then(Timestamp::from_json)
    }

    pub fn filter_to(self) -> Option<Timestamp> {
        self.0.get("filterToDate").and_then(Timestamp::from_json)
    }

    pub fn created_by(self) -> IncidentUser<'a> {
        IncidentUser(self.by_user("createdBy"))
    }

    pub fn last_updated_by(self) -> IncidentUser<'a> {
        IncidentUser(self.by_user("lastUpdatedBy"))
    }

    fn by_user(self, key: &str) -> Option<&'a JsonObject> {
        self.0.get(key)?.get("user")?.as_object()
    }
}

impl Record {
    /// Returns `fullPath`: the file, directory or registry path.
    pub fn full_path(&self) -> Option<Text<'_>> {
        self.text("fullPath")
    }

    /// Returns `name`: the file or registry value name.
    pub fn name(&self) -> Option<Text<'_>> {
        self.text("name")
    }

    /// Returns `type`, e.g. `File`, `Directory`, `Registry Key`,
    /// `Registry Value`.
    pub fn object_type(&self) -> Option<Text<'_>> {
        self.text("type")
    }

    /// Returns whether `type` names a registry key or value.
    pub fn is_registry(&self) -> bool {
        self.object_type()
            .is_some_and(|kind| kind.to_ascii_lowercase().starts_with("registry"))
    }

    /// Returns `action`, e.g. `Create`, `Content`, `Delete`, `Rename`,
    /// `Attributes`, `Security`.
    pub fn action(&self) -> Option<Text<'_>> {
        self.text("action")
    }

    /// Returns `severity` when it is 1 to 5 (sent as a number or a string).
    pub fn severity(&self) -> Option<Severity> {
        self.get("severity")?.as_i64().and_then(Severity::new)
    }

    /// Returns `platform`, e.g. `WINDOWS`, `LINUX`.
    pub fn platform(&self) -> Option<Text<'_>> {
        self.text("platform")
    }

    /// Returns whether paths of this record use `\` separators: the
    /// platform is Windows, or the path starts with a drive letter or `\`.
    pub fn has_windows_paths(&self) -> bool {
        if self
            .platform()
            .is_some_and(|platform| platform.eq_ignore_ascii_case("WINDOWS"))
        {
            return true;
        }
        self.full_path().is_some_and(|path| {
            let bytes = path.as_bytes();
            let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
            drive || bytes.first() == Some(&b'\\')
        })
    }

    pub fn actor(&self) -> Actor<'_> {
        Actor(self.get("actor").and_then(JsonValue::as_object))
    }

    pub fn asset(&self) -> Asset<'_> {
        Asset(self.get("asset").and_then(JsonValue::as_object))
    }

    pub fn profiles(&self) -> impl Iterator<Item = Profile<'_>> {
        array_of(Some(self.source()), "profiles")
            .iter()
            .map(|item| Profile(item.as_object()))
    }

    /// Returns `newHash`: the digest of the content after the change.
    pub fn new_hash(&self) -> Option<Text<'_>> {
        self.text("newHash")
    }

    /// Returns `oldHash`: the digest of the content before the change.
    pub fn old_hash(&self) -> Option<Text<'_>> {
        self.text("oldHash")
    }

    /// Iterates over the `changedAttributes` codes that are text or numbers.
    pub fn changed_attributes(&self) -> impl Iterator<Item = Text<'_>> {
        array_of(Some(self.source()), "changedAttributes")
            .iter()
            .filter_map(JsonValue::as_text)
    }

    pub fn incident_id(&self) -> Option<Text<'_>> {
        self.text("incidentId")
    }

    pub fn customer_id(&self) -> Option<Text<'_>> {
        self.text("customerId")
    }

    /// Returns the incident view; its fields are empty for event records.
    pub fn incident(&self) -> Incident<'_> {
        Incident(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;

    fn record(raw: &str) -> Record {
        Record::from_json(RecordKind::Event, raw).unwrap()
    }

    #[test]
    fn splits_windows_domain_users() {
        assert_eq!(
            split_domain_user("NT AUTHORITY\\SYSTEM"),
            (Some("NT AUTHORITY"), "SYSTEM")
        );
    }

    #[test]
    fn leaves_plain_users_without_domain() {
        assert_eq!(split_domain_user("root"), (None, "root"));
    }

    #[test]
    fn reads_process_id_sent_as_string() {
        let event = record(r#"{"id":"a","actor":{"processID":"3311"}}"#);
        assert_eq!(event.actor().process_id(), Some(3311));
    }

    #[test]
    fn reads_user_id_sent_as_number() {
        let event = record(r#"{"id":"a","actor":{"userID":0}}"#);
        assert_eq!(event.actor().user_id().as_deref(), Some("0"));
    }

    #[test]
    fn null_actor_fields_are_absent() {
        let event = record(r#"{"id":"a","actor":{"process":null}}"#);
        assert_eq!(event.actor().process(), None);
    }

    #[test]
    fn reads_severity_sent_as_string() {
        let event = record(r#"{"id":"a","severity":"4"}"#);
        assert_eq!(event.severity().map(Severity::level), Some(4));
    }

    #[test]
    fn rejects_severity_outside_one_to_five() {
        let event = record(r#"{"id":"a","severity":9}"#);
        assert_eq!(event.severity(), None);
    }

    #[test]
    fn parses_hyphenated_mac() {
        let mac = MacAddress::parse("00-50-56-aa-75-71").unwrap();
        let mut out = Vec::new();
        mac.write(b':', &mut out);
        assert_eq!(out, b"00:50:56:AA:75:71");
    }

    #[test]
    fn parses_eui64_as_eight_octets() {
        let mac = MacAddress::parse("00-00-00-00-00-00-00-E0").unwrap();
        assert!(!mac.is_eui48());
    }

    #[test]
    fn rejects_mac_with_odd_digit_count() {
        assert_eq!(MacAddress::parse("00:50:56:AA:75:7"), None);
    }

    #[test]
    fn detects_sha256_by_length() {
        let digest = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
        assert_eq!(HashAlgorithm::of_hex(digest), Some(HashAlgorithm::Sha256));
    }

    #[test]
    fn host_name_falls_back_to_interfaces() {
        let event = record(r#"{"id":"a","asset":{"interfaces":[{"hostname":"h1"}]}}"#);
        assert_eq!(event.asset().host_name().as_deref(), Some("h1"));
    }
}

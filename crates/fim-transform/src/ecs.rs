//! Elastic Common Schema (ECS) documents.
//!
//! Events map to `event.*`, `file.*` (or `registry.*` for registry records),
//! `host.*`, `process.*`, `user.*`, `rule.*` and `related.*`. A source field
//! with no ECS home is copied as received under `qualys.fim.*`, its name in
//! snake_case. So is a value that could not be mapped, such as an unparsable
//! time or a pid that is not a number. The document thus loses nothing but
//! `null` values. Incidents map to an `event.kind` of `alert` or `event`
//! with their own fields under `qualys.fim.incident.*`.
//!
//! References: ECS 8.11 field reference (event, file, registry, host,
//! data_stream), and Elastic Defend's `file.Ext.original.*` for rename
//! sources.

use std::borrow::Cow;
use std::net::IpAddr;

use fim_model::view::{Text, split_domain_user};
use fim_model::{HashAlgorithm, JsonValue, MacAddress, Record, RecordKind, Timestamp};

use crate::config::{ConfigError, EcsOptions};
use crate::json_out::Object;
use crate::policy::{Content, FieldPolicy};
use crate::text::snake_case;
use crate::{EncodeError, Encoder};

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// Encodes records as ECS JSON documents.
#[derive(Debug, Clone)]
pub struct EcsEncoder {
    policy: FieldPolicy,
    namespace: String,
    agent_version: String,
}

impl EcsEncoder {
    pub fn new(policy: FieldPolicy, options: &EcsOptions) -> Result<Self, ConfigError> {
        let namespace = &options.namespace;
        let valid = !namespace.is_empty()
            && namespace.len() <= 100
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(ConfigError::InvalidNamespace(namespace.clone()));
        }

        Ok(Self {
            policy,
            namespace: namespace.clone(),
            agent_version: options.agent_version.clone(),
        })
    }
}

/// Returns `event.dataset` and `data_stream.dataset` for a stream. Datasets
/// may not contain `-`.
pub fn dataset(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Event => "qualys_fim.event",
        RecordKind::IgnoredEvent => "qualys_fim.ignored_event",
        RecordKind::Incident => "qualys_fim.incident",
        RecordKind::IncidentEvent => "qualys_fim.incident_event",
    }
}

impl Encoder for EcsEncoder {
    fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let record = self.policy.apply(record);
        let formattable = record
            .event_time()
            .is_some_and(|time| time.civil().is_some());
        if !formattable {
            return Err(EncodeError::MissingTimestamp {
                id: record.id().to_owned(),
            });
        }

        let mut root = Object::begin(out);
        root.time(out, "@timestamp", record.event_time());
        self.write_common(&record, &mut root, out);
        if record.kind().is_incident() {
            write_incident(&record, &mut root, out);
        } else {
            write_event(&record, &self.policy, &mut root, out);
        }
        root.end(out);
        Ok(())
    }
}

impl EcsEncoder {
    fn write_common(&self, record: &Record, root: &mut Object, out: &mut Vec<u8>) {
        let mut ecs = root.child(out, "ecs");
        ecs.str(out, "version", ECS_VERSION);
        root.end_child(out, ecs);

        let mut stream = root.child(out, "data_stream");
        stream.str(out, "type", "logs");
        stream.str(out, "dataset", dataset(record.kind()));
        stream.str(out, "namespace", &self.namespace);
        root.end_child(out, stream);

        let mut agent = root.child(out, "agent");
        agent.str(out, "type", "fim-forwarder");
        agent.str(out, "version", &self.agent_version);
        root.end_child(out, agent);

        let mut observer = root.child(out, "observer");
        observer.str(out, "vendor", "Qualys");
        observer.str(out, "product", "Cloud Agent FIM");
        observer.opt_str(out, "version", record.asset().agent_version().as_deref());
        root.end_child(out, observer);
    }
}

/// `event.action` and the file `event.type` for a Qualys action. Unknown
/// actions keep their lowercased name and are typed `info`.
fn map_action(action: &str) -> (Cow<'_, str>, &'static str) {
    const KNOWN: [(&str, &str, &str); 6] = [
        ("create", "creation", "creation"),
        ("content", "modification", "change"),
        ("delete", "deletion", "deletion"),
        ("rename", "rename", "change"),
        ("attributes", "attributes_modified", "change"),
        ("security", "permissions_modified", "change"),
    ];
    for (qualys, ecs_action, ecs_type) in KNOWN {
        if action.eq_ignore_ascii_case(qualys) {
            return (Cow::Borrowed(ecs_action), ecs_type);
        }
    }
    (Cow::Owned(action.to_lowercase()), "info")
}

/// `host.os.type` for a Qualys platform, from the values ECS allows.
fn os_type(platform: &str) -> Option<&'static str> {
    match platform.to_ascii_uppercase().as_str() {
        "WINDOWS" => Some("windows"),
        "LINUX" => Some("linux"),
        "UNIX" | "AIX" | "SOLARIS" | "HPUX" => Some("unix"),
        "MAC" | "MACOS" | "DARWIN" | "OSX" => Some("macos"),
        _ => None,
    }
}

/// Splits a path into its directory and final name. Windows paths split on
/// `\` or `/`, others on `/`. A root directory keeps its separator (`/`,
/// `C:\`).
fn split_path(path: &str, windows: bool) -> (Option<&str>, &str) {
    let separator = if windows {
        path.rfind(['\\', '/'])
    } else {
        path.rfind('/')
    };
    let Some(index) = separator else {
        return (None, path);
    };

    let directory = &path[..index];
    let is_drive = windows && directory.len() == 2 && directory.ends_with(':');
    let directory = if directory.is_empty() || is_drive {
        &path[..=index]
    } else {
        directory
    };
    (Some(directory), &path[index + 1..])
}

/// Returns the extension of a file name without the dot. Names without a
/// dot, names that only start with one (`.bashrc`) and names that end with
/// one have none.
fn extension(name: &str) -> Option<&str> {
    let index = name.rfind('.')?;
    (index > 0 && index + 1 < name.len()).then(|| &name[index + 1..])
}

fn drive_letter(path: &str) -> Option<char> {
    let mut chars = path.chars();
    let letter = chars.next()?;
    (letter.is_ascii_alphabetic() && chars.next() == Some(':')).then(|| letter.to_ascii_uppercase())
}

/// Returns a valid hex digest in lowercase with its algorithm.
fn digest(text: Option<Text<'_>>) -> Option<(HashAlgorithm, String)> {
    let text = text?;
    let algorithm = HashAlgorithm::of_hex(&text)?;
    Some((algorithm, text.to_ascii_lowercase()))
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|known| known == value) {
        list.push(value.to_owned());
    }
}

fn write_event(record: &Record, policy: &FieldPolicy, root: &mut Object, out: &mut Vec<u8>) {
    let registry = record.is_registry();
    let action = record.action();
    let mapped_action = action.as_deref().map(map_action);

    let mut event = root.child(out, "event");
    event.str(out, "kind", "event");
    event.str_array(
        out,
        "category",
        [if registry { "registry" } else { "file" }],
    );
    let event_type = match (&mapped_action, registry) {
        // The ECS registry category allows no `info` type.
        (Some((_, "info")) | None, true) => "change",
        (Some((_, event_type)), _) => event_type,
        (None, false) => "info",
    };
    event.str_array(out, "type", [event_type]);
    if let Some((ecs_action, _)) = &mapped_action {
        event.str(out, "action", ecs_action);
    }
    event.str(out, "id", record.id());
    if let Some(severity) = record.severity() {
        event.int(out, "severity", i64::from(severity.level()));
    }
    event.time(out, "created", record.processed_time());
    event.str(out, "module", "qualys_fim");
    event.str(out, "dataset", dataset(record.kind()));
    root.end_child(out, event);

    if registry {
        write_registry(record, root, out);
    } else {
        write_file(record, policy, root, out);
    }

    let host = write_host(record, root, out);
    let user_name = write_actor(record, root, out);
    write_rules(record, root, out);

    let mut related = root.child(out, "related");
    let hashes: Vec<String> = [record.new_hash(), record.old_hash()]
        .into_iter()
        .filter_map(|hash| digest(hash).map(|(_, hex)| hex))
        .collect();
    related.str_array(out, "hash", hashes.iter().map(String::as_str));
    related.str_array(out, "user", user_name.as_deref());
    related.str_array(out, "hosts", host.names.iter().map(String::as_str));
    related.str_array(out, "ip", host.ips.iter().map(String::as_str));
    root.end_child(out, related);

    let mut organization = root.child(out, "organization");
    organization.opt_str(out, "id", record.customer_id().as_deref());
    root.end_child(out, organization);

    write_event_remainder(record, policy, root, out);
}

fn write_file(record: &Record, policy: &FieldPolicy, root: &mut Object, out: &mut Vec<u8>) {
    let windows = record.has_windows_paths();
    let path = record.full_path();
    let (directory, base) = match path.as_deref() {
        Some(path) => split_path(path, windows),
        None => (None, ""),
    };
    let name = record.name();
    let name = name.as_deref().or((!base.is_empty()).then_some(base));
    let object_type = record.object_type();
    let file_type =
        object_type
            .as_deref()
            .and_then(|kind| match kind.to_ascii_lowercase().as_str() {
                "file" => Some("file"),
                "directory" => Some("dir"),
                "symlink" | "symbolic link" => Some("symlink"),
                _ => None,
            });

    let mut file = root.child(out, "file");
    file.opt_str(out, "path", path.as_deref());
    file.opt_str(out, "name", name);
    file.opt_str(out, "directory", directory);
    if file_type != Some("dir") {
        file.opt_str(out, "extension", name.and_then(extension));
    }
    if windows && let Some(letter) = path.as_deref().and_then(drive_letter) {
        file.str(out, "drive_letter", letter.encode_utf8(&mut [0; 4]));
    }
    file.opt_str(out, "type", file_type);

    if let Some((algorithm, hex)) = digest(record.new_hash()) {
        let mut hash = file.child(out, "hash");
        hash.str(out, algorithm.ecs_name(), &hex);
        file.end_child(out, hash);
    }

    let is_rename = record
        .action()
        .is_some_and(|action| action.eq_ignore_ascii_case("Rename"));
    if is_rename && let Some(old_path) = policy.content_text(record, "oldContent") {
        let mut ext = file.child(out, "Ext");
        let mut original = ext.child(out, "original");
        original.str(out, "path", &old_path);
        let (_, old_name) = split_path(&old_path, windows);
        if !old_name.is_empty() {
            original.str(out, "name", old_name);
        }
        ext.end_child(out, original);
        file.end_child(out, ext);
    }
    root.end_child(out, file);
}

/// Standard abbreviations of the registry hives, as `registry.hive` uses.
fn hive_abbreviation(hive: &str) -> &str {
    match hive.to_ascii_uppercase().as_str() {
        "HKEY_LOCAL_MACHINE" => "HKLM",
        "HKEY_CURRENT_USER" => "HKCU",
        "HKEY_USERS" => "HKU",
        "HKEY_CLASSES_ROOT" => "HKCR",
        "HKEY_CURRENT_CONFIG" => "HKCC",
        _ => hive,
    }
}

fn write_registry(record: &Record, root: &mut Object, out: &mut Vec<u8>) {
    let path = record.full_path();
    let name = record.name();
    let is_value = record
        .object_type()
        .is_some_and(|kind| kind.eq_ignore_ascii_case("Registry Value"));

    let mut registry = root.child(out, "registry");
    registry.opt_str(out, "path", path.as_deref());
    if let Some(path) = path.as_deref() {
        let (hive, rest) = path.split_once('\\').unwrap_or((path, ""));
        registry.str(out, "hive", hive_abbreviation(hive));

        let key = match (is_value, name.as_deref()) {
            (true, Some(value_name)) => rest
                .strip_suffix(value_name)
                .and_then(|key| key.strip_suffix('\\'))
                .unwrap_or(rest),
            _ => rest,
        };
        if !key.is_empty() {
            registry.str(out, "key", key);
        }
    }
    if is_value {
        registry.opt_str(out, "value", name.as_deref());
    }
    root.end_child(out, registry);
}

/// Host names and addresses, also used for `related.*`.
struct HostFields {
    names: Vec<String>,
    ips: Vec<String>,
}

fn write_host(record: &Record, root: &mut Object, out: &mut Vec<u8>) -> HostFields {
    let asset = record.asset();
    let hostname = asset.host_name();
    let name = asset.name().or_else(|| hostname.clone());

    let mut names = Vec::new();
    for candidate in [&hostname, &name].into_iter().flatten() {
        push_unique(&mut names, candidate);
    }
    let mut ips = Vec::new();
    let mut macs = Vec::new();
    for interface in asset.interfaces() {
        if let Some(address) = interface.address()
            && address.parse::<IpAddr>().is_ok()
        {
            push_unique(&mut ips, &address);
        }
        if let Some(mac) = interface
            .mac_address()
            .as_deref()
            .and_then(MacAddress::parse)
        {
            let mut text = Vec::with_capacity(23);
            mac.write(b'-', &mut text);
            push_unique(&mut macs, &String::from_utf8_lossy(&text));
        }
    }

    let mut host = root.child(out, "host");
    host.opt_str(out, "id", asset.agent_id().as_deref());
    host.opt_str(out, "hostname", hostname.as_deref());
    host.opt_str(out, "name", name.as_deref());
    host.str_array(out, "ip", ips.iter().map(String::as_str));
    host.str_array(out, "mac", macs.iter().map(String::as_str));
    let mut os = host.child(out, "os");
    os.opt_str(out, "type", record.platform().as_deref().and_then(os_type));
    os.opt_str(out, "full", asset.operating_system().as_deref());
    host.end_child(out, os);
    root.end_child(out, host);

    HostFields { names, ips }
}

/// Writes `process.*` and `user.*`; returns the user name for
/// `related.user`.
fn write_actor(record: &Record, root: &mut Object, out: &mut Vec<u8>) -> Option<String> {
    let actor = record.actor();

    let mut process = root.child(out, "process");
    process.opt_str(out, "name", actor.process().as_deref());
    if let Some(pid) = actor.process_id() {
        process.int(out, "pid", pid);
    }
    process.opt_str(out, "executable", actor.image_path().as_deref());
    root.end_child(out, process);

    let user_name = actor.user_name();
    let (domain, name) = match user_name.as_deref() {
        Some(full) => {
            let (domain, name) = split_domain_user(full);
            (domain, Some(name).filter(|name| !name.is_empty()))
        }
        None => (None, None),
    };
    let mut user = root.child(out, "user");
    user.opt_str(out, "name", name);
    user.opt_str(out, "domain", domain);
    user.opt_str(out, "id", actor.user_id().as_deref());
    root.end_child(out, user);

    name.map(str::to_owned)
}

fn write_rules(record: &Record, root: &mut Object, out: &mut Vec<u8>) {
    let mut rulesets = Vec::new();
    let mut categories = Vec::new();
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for profile in record.profiles() {
        if let Some(name) = profile.name() {
            push_unique(&mut rulesets, &name);
        }
        if let Some(category) = profile.category_name() {
            push_unique(&mut categories, &category);
        }
        for rule in profile.rules() {
            if let Some(id) = rule.id() {
                push_unique(&mut ids, &id);
            }
            if let Some(name) = rule.name() {
                push_unique(&mut names, &name);
            }
        }
    }

    let mut rule = root.child(out, "rule");
    rule.str_array(out, "ruleset", rulesets.iter().map(String::as_str));
    rule.str_array(out, "category", categories.iter().map(String::as_str));
    rule.str_array(out, "id", ids.iter().map(String::as_str));
    rule.str_array(out, "name", names.iter().map(String::as_str));
    root.end_child(out, rule);
}

/// Writes every source field the mapping above did not use to
/// `qualys.fim.*`.
fn write_event_remainder(
    record: &Record,
    policy: &FieldPolicy,
    root: &mut Object,
    out: &mut Vec<u8>,
) {
    let mut qualys = root.child(out, "qualys");
    let mut fim = qualys.child(out, "fim");
    let mut name = String::new();

    for (key, value) in record.source().iter() {
        if value.is_null() {
            continue;
        }
        let is_text = value.as_text().is_some();
        let mapped = match key {
            "id" => true,
            "dateTime" => record.date_time().is_some(),
            "processedTime" => record.processed_time().is_some(),
            "action" | "fullPath" | "name" | "customerId" => is_text,
            "severity" => record.severity().is_some(),
            "platform" => record.platform().as_deref().and_then(os_type).is_some(),
            "newHash" => digest(record.new_hash()).is_some(),
            _ => false,
        };
        if mapped {
            continue;
        }

        match key {
            "oldHash" => match digest(record.old_hash()) {
                Some((algorithm, hex)) => {
                    let mut old_hash = fim.child(out, "old_hash");
                    old_hash.str(out, algorithm.ecs_name(), &hex);
                    fim.end_child(out, old_hash);
                }
                None => fim.value(out, "old_hash", value),
            },
            "actor" => write_unmapped_members(
                &mut fim,
                out,
                "actor",
                value,
                &mut name,
                |member, member_value| match member {
                    "process" | "imagePath" | "userName" | "userID" => {
                        member_value.as_text().is_some()
                    }
                    "processID" => member_value.as_i64().is_some(),
                    _ => false,
                },
            ),
            "asset" => write_unmapped_members(
                &mut fim,
                out,
                "asset",
                value,
                &mut name,
                |member, member_value| {
                    matches!(
                        member,
                        "operatingSystem" | "agentVersion" | "name" | "hostname"
                    ) && member_value.as_text().is_some()
                },
            ),
            _ if FieldPolicy::is_content_key(key) => {
                snake_case(key, &mut name);
                match policy.content(record, value) {
                    Content::Drop => {}
                    Content::Keep(value) => fim.value(out, &name, value),
                    Content::Truncated(text) => fim.str(out, &name, text),
                }
            }
            _ => {
                snake_case(key, &mut name);
                write_remainder_value(&mut fim, out, &name, key, value);
            }
        }
    }

    qualys.end_child(out, fim);
    root.end_child(out, qualys);
}

/// Writes the members of an object that `is_mapped` rejects to
/// `qualys.fim.<section>.*`; a value that is not an object is copied whole.
fn write_unmapped_members(
    fim: &mut Object,
    out: &mut Vec<u8>,
    section: &str,
    value: &JsonValue,
    name: &mut String,
    is_mapped: impl Fn(&str, &JsonValue) -> bool,
) {
    let Some(object) = value.as_object() else {
        fim.value(out, section, value);
        return;
    };
    let mut child = fim.child(out, section);
    for (member, member_value) in object.iter() {
        if member_value.is_null() || is_mapped(member, member_value) {
            continue;
        }
        snake_case(member, name);
        write_remainder_value(&mut child, out, name, member, member_value);
    }
    fim.end_child(out, child);
}

/// Source fields that hold times. The API sends some of them as epoch
/// milliseconds in one record and as text in the next, and Elasticsearch
/// rejects a document whose field type changes, so parsable values are
/// written in one form: RFC 3339 UTC.
const TIME_FIELDS: [&str; 10] = [
    "dateTime",
    "created",
    "updated",
    "lastCheckedIn",
    "assignDate",
    "approvalDate",
    "filterFromDate",
    "filterToDate",
    "slaViolationDate",
    "ignoreDate",
];

fn write_remainder_value(
    object: &mut Object,
    out: &mut Vec<u8>,
    name: &str,
    source_key: &str,
    value: &JsonValue,
) {
    let time = TIME_FIELDS
        .contains(&source_key)
        .then(|| Timestamp::from_json(value))
        .flatten()
        .filter(|time| time.civil().is_some());
    match time {
        Some(time) => object.time(out, name, Some(time)),
        None => object.value(out, name, value),
    }
}

fn write_incident(record: &Record, root: &mut Object, out: &mut Vec<u8>) {
    let incident = record.incident();

    let mut event = root.child(out, "event");
    let kind = if incident.is_rule_generated() {
        "alert"
    } else {
        "event"
    };
    event.str(out, "kind", kind);
    event.str_array(out, "category", ["file"]);
    event.str_array(out, "type", ["info"]);
    event.str(out, "id", record.id());
    event.time(out, "start", incident.filter_from());
    event.time(out, "end", incident.filter_to());
    event.str(out, "module", "qualys_fim");
    event.str(out, "dataset", dataset(record.kind()));
    root.end_child(out, event);

    // The user of the latest change made this version of the incident.
    let updater = incident.last_updated_by();
    let creator = incident.created_by();
    let user_name = updater.name().or_else(|| creator.name());
    let user_id = updater.id().or_else(|| creator.id());
    let (domain, name) = match user_name.as_deref() {
        Some(full) => split_domain_user(full),
        None => (None, ""),
    };
    let name = Some(name).filter(|name| !name.is_empty());

    let mut user = root.child(out, "user");
    user.opt_str(out, "name", name);
    user.opt_str(out, "domain", domain);
    user.opt_str(out, "id", user_id.as_deref());
    root.end_child(out, user);

    let mut related = root.child(out, "related");
    related.str_array(out, "user", name);
    root.end_child(out, related);

    let mut organization = root.child(out, "organization");
    organization.opt_str(out, "id", record.customer_id().as_deref());
    root.end_child(out, organization);

    let mut qualys = root.child(out, "qualys");
    let mut fim = qualys.child(out, "fim");
    let mut section = fim.child(out, "incident");
    let mut snake = String::new();
    for (key, value) in record.source().iter() {
        let mapped = key == "id" || (key == "customerId" && value.as_text().is_some());
        if mapped || value.is_null() {
            continue;
        }
        snake_case(key, &mut snake);
        write_remainder_value(&mut section, out, &snake, key, value);
    }
    fim.end_child(out, section);
    qualys.end_child(out, fim);
    root.end_child(out, qualys);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_windows_paths_on_backslash() {
        assert_eq!(
            split_path("C:\\data\\a|b=c\\report.xlsx", true),
            (Some("C:\\data\\a|b=c"), "report.xlsx")
        );
    }

    #[test]
    fn keeps_backslash_in_linux_names() {
        assert_eq!(
            split_path("/opt/app/back\\slash.conf", false),
            (Some("/opt/app"), "back\\slash.conf")
        );
    }

    #[test]
    fn root_directory_keeps_its_separator() {
        assert_eq!(split_path("C:\\x.tmp", true), (Some("C:\\"), "x.tmp"));
    }

    #[test]
    fn extension_is_the_last_part_without_dot() {
        assert_eq!(extension("archive.tar.gz"), Some("gz"));
    }

    #[test]
    fn dotfiles_have_no_extension() {
        assert_eq!(extension(".bashrc"), None);
    }

    #[test]
    fn drive_letter_is_uppercase() {
        assert_eq!(drive_letter("c:\\x"), Some('C'));
    }

    #[test]
    fn unknown_actions_are_typed_info() {
        assert_eq!(
            map_action("Quarantine"),
            (Cow::Borrowed("quarantine"), "info")
        );
    }

    #[test]
    fn long_hive_names_are_abbreviated() {
        assert_eq!(hive_abbreviation("HKEY_LOCAL_MACHINE"), "HKLM");
    }
}

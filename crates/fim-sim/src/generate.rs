//! Deterministic synthetic FIM data shaped like real Qualys responses.
//!
//! The same seed gives the same assets, paths, actions and ids in the same
//! order; only the times follow the wall clock. The mix covers Windows and
//! Linux assets, files, directories, registry keys and values, every action,
//! severities 1 to 5, profiles with rules, fields sent as numbers in one
//! record and as strings in another, and an occasional large content value.

use std::sync::Arc;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::record::{format_offset, format_zulu};

/// Customer id every synthetic record carries.
pub const CUSTOMER_ID: &str = "0c3f6a52-8b1e-4d2a-9f61-2e7b5d90c114";

const EDGE_FIXTURES: &str = include_str!("../../../fixtures/qualys-fim/edge/tricky_events.json");

/// Source of synthetic events and incidents.
#[derive(Debug)]
pub struct Generator {
    rng: ChaCha8Rng,
    assets: Vec<Arc<Asset>>,
    profiles_windows: Vec<Arc<Vec<Profile>>>,
    profiles_linux: Vec<Arc<Vec<Profile>>>,
    profiles_registry: Vec<Arc<Vec<Profile>>>,
    edge_records: Vec<Value>,
}

/// A new event: its id, JSON text and `dateTime`.
#[derive(Debug)]
pub struct NewEvent {
    pub id: String,
    pub json: String,
    pub date_time_ms: i64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let assets = (0..48)
            .map(|index| Arc::new(make_asset(&mut rng, index)))
            .collect();
        let profiles_windows = profile_sets(&mut rng, WINDOWS_PROFILES, "WINDOWS", "directory");
        let profiles_linux = profile_sets(&mut rng, LINUX_PROFILES, "LINUX", "directory");
        let profiles_registry = profile_sets(&mut rng, REGISTRY_PROFILES, "WINDOWS", "registry");
        // The fixture file ships inside the binary and is valid JSON; an
        // edit that broke it would show as no edge-case records.
        let edge_records = match serde_json::from_str::<Value>(EDGE_FIXTURES) {
            Ok(Value::Array(records)) => records,
            _ => Vec::new(),
        };
        Self {
            rng,
            assets,
            profiles_windows,
            profiles_linux,
            profiles_registry,
            edge_records,
        }
    }

    /// Returns a fresh UUID drawn from the seeded generator.
    pub fn uuid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    /// Draws a number in `0.0..1.0`, for share decisions.
    pub fn chance(&mut self) -> f64 {
        self.rng.random()
    }

    /// Draws a whole number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        self.rng.random_range(low..=high)
    }

    /// Builds an event processed at `processed_ms` that happened at
    /// `date_time_ms`. `extra` fields (`incidentId`, `ignoreDate`) are added.
    pub fn event(
        &mut self,
        processed_ms: i64,
        date_time_ms: i64,
        incident_id: Option<&str>,
        ignore_date: Option<String>,
    ) -> NewEvent {
        let id = self.uuid();
        let asset = self
            .assets
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_else(|| Arc::new(make_asset(&mut self.rng, 0)));
        let windows = asset.platform == "WINDOWS";
        let registry = windows && self.rng.random_bool(0.3);
        let zulu_times = !windows || self.rng.random_bool(0.2);
        let time = |ms| {
            if zulu_times {
                format_zulu(ms)
            } else {
                format_offset(ms)
            }
        };

        let (kind, class) = if registry {
            let kind = if self.rng.random_bool(0.6) {
                "Registry Value"
            } else {
                "Registry Key"
            };
            (kind, "Registry")
        } else {
            let kind = if self.rng.random_bool(0.8) {
                "File"
            } else {
                "Directory"
            };
            (kind, "Disk")
        };
        let action = *if registry {
            REGISTRY_ACTIONS.choose(&mut self.rng)
        } else {
            FILE_ACTIONS.choose(&mut self.rng)
        }
        .unwrap_or(&"Content");

        let (full_path, name) = self.path(windows, registry, kind);
        let severity_number = self.rng.random_range(1..=5u8);
        // About one record in twenty sends its severity as a string.
        let severity = if self.rng.random_bool(0.05) {
            Value::String(severity_number.to_string())
        } else {
            Value::from(severity_number)
        };

        let (old_content, new_content) = self.contents(action, kind, &full_path);
        let (old_hash, new_hash) =
            if kind == "File" && action == "Content" && self.rng.random_bool(0.7) {
                (Some(self.hex(32)), Some(self.hex(32)))
            } else {
                (None, None)
            };
        let changed_attributes = (action == "Attributes" || action == "Security").then(|| {
            let count = self.rng.random_range(1..=3);
            (0..count)
                .map(|_| *[1u16, 2, 4, 8, 16, 32].choose(&mut self.rng).unwrap_or(&1))
                .collect()
        });

        let profiles = if registry {
            self.profiles_registry.choose(&mut self.rng)
        } else if windows {
            self.profiles_windows.choose(&mut self.rng)
        } else {
            self.profiles_linux.choose(&mut self.rng)
        }
        .cloned()
        .unwrap_or_default();

        let actor = self.actor(windows);
        let event = Event {
            date_time: time(date_time_ms),
            processed_time: time(processed_ms),
            full_path,
            severity,
            profiles,
            kind,
            changed_attributes,
            platform: asset.platform,
            old_content,
            actor,
            new_content,
            customer_id: CUSTOMER_ID,
            name,
            action,
            id: &id,
            asset: asset.clone(),
            class,
            old_hash,
            new_hash,
            incident_id,
            ignore_date,
        };
        let json = serde_json::to_string(&event).unwrap_or_default();
        NewEvent {
            id,
            json,
            date_time_ms,
        }
    }

    /// Builds an event from one of the edge-case fixture records, with a
    /// fresh id and fresh times; `None` when no fixture record is available.
    pub fn edge_event(
        &mut self,
        processed_ms: i64,
        date_time_ms: i64,
        incident_id: Option<&str>,
        ignore_date: Option<String>,
    ) -> Option<NewEvent> {
        let mut record = self.edge_records.choose(&mut self.rng)?.clone();
        let id = self.uuid();
        let object = record.as_object_mut()?;
        object.insert("id".to_owned(), Value::String(id.clone()));
        object.insert(
            "dateTime".to_owned(),
            Value::String(format_offset(date_time_ms)),
        );
        object.insert(
            "processedTime".to_owned(),
            Value::String(format_offset(processed_ms)),
        );
        if let Some(incident_id) = incident_id {
            object.insert(
                "incidentId".to_owned(),
                Value::String(incident_id.to_owned()),
            );
        }
        if let Some(ignore_date) = ignore_date {
            object.insert("ignoreDate".to_owned(), Value::String(ignore_date));
        }
        Some(NewEvent {
            id,
            json: record.to_string(),
            date_time_ms,
        })
    }

    fn path(&mut self, windows: bool, registry: bool, kind: &str) -> (String, String) {
        let pick = |rng: &mut ChaCha8Rng, list: &[&'static str]| -> &'static str {
            list.choose(rng).copied().unwrap_or("x")
        };
        if registry {
            let key = pick(&mut self.rng, REGISTRY_KEYS);
            let name = if kind == "Registry Value" {
                pick(&mut self.rng, REGISTRY_VALUES).to_owned()
            } else {
                format!("{{{}}}", self.uuid().to_uppercase())
            };
            return (format!("{key}\\{name}"), name);
        }
        let directory = pick(
            &mut self.rng,
            if windows { WINDOWS_DIRS } else { LINUX_DIRS },
        );
        let separator = if windows { '\\' } else { '/' };
        let name = if kind == "Directory" {
            format!(
                "{}{}",
                pick(&mut self.rng, DIRECTORY_NAMES),
                self.rng.random_range(1..=999)
            )
        } else {
            let stem = pick(&mut self.rng, FILE_STEMS);
            let extension = pick(
                &mut self.rng,
                if windows {
                    WINDOWS_EXTENSIONS
                } else {
                    LINUX_EXTENSIONS
                },
            );
            format!("{stem}{}.{extension}", self.rng.random_range(0..=99))
        };
        (format!("{directory}{separator}{name}"), name)
    }

    fn contents(
        &mut self,
        action: &str,
        kind: &str,
        path: &str,
    ) -> (Option<String>, Option<String>) {
        if action == "Rename" {
            let old = format!("{path}.old{}", self.rng.random_range(1..=9));
            return (Some(old), Some(path.to_owned()));
        }
        if kind != "Registry Value" || action != "Content" {
            return (None, None);
        }
        let old = format!(
            "C:\\Program Files\\Vendor{}\\agent.exe",
            self.rng.random_range(1..=50)
        );
        // One registry value in fifty contains a large script, so pages carry a
        // realistic mix of small and large records.
        let new = if self.rng.random_bool(0.02) {
            let size = self.rng.random_range(4_096..=16_384);
            let mut script = String::from("powershell -enc ");
            while script.len() < size {
                script.push_str(&self.hex(32));
            }
            script
        } else {
            format!(
                "C:\\Users\\Public\\agent{}.exe -silent",
                self.rng.random_range(1..=50)
            )
        };
        (Some(old), Some(new))
    }

    fn actor(&mut self, windows: bool) -> Actor {
        let (process, image, user, user_id) = if windows {
            *WINDOWS_ACTORS
                .choose(&mut self.rng)
                .unwrap_or(&WINDOWS_ACTORS[0])
        } else {
            *LINUX_ACTORS
                .choose(&mut self.rng)
                .unwrap_or(&LINUX_ACTORS[0])
        };
        // Now and then the agent could not attribute the change at all.
        if self.rng.random_bool(0.03) {
            return Actor::default();
        }
        Actor {
            process: Some(process),
            process_id: Some(self.rng.random_range(4..=65_000)),
            image_path: Some(image),
            user_name: Some(user),
            user_id: Some(user_id),
        }
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.rng.random::<u8>()))
            .collect()
    }
}

/// Builds the JSON of an incident in its current state.
#[allow(clippy::too_many_arguments)]
pub fn incident_json(
    id: &str,
    name: &str,
    created_ms: i64,
    updated_ms: i64,
    status: &str,
    approval_status: Option<&str>,
    approval_date_ms: Option<i64>,
    window_from_ms: i64,
    window_to_ms: i64,
    action: &str,
) -> String {
    let analyst = serde_json::json!({
        "name": "Analyst One",
        "id": "5f8eddbd-4c5a-5766-a5e1-6e0e282ed6c0"
    });
    let incident = serde_json::json!({
        "approvalStatus": approval_status,
        "dateTime": format_offset(window_from_ms),
        "lastUpdatedBy": { "date": updated_ms, "user": analyst },
        "filterToDate": format_offset(window_to_ms),
        "approvalDate": approval_date_ms.map(format_offset),
        "assignDate": format_offset(created_ms),
        "changeType": if approval_status.is_some() { Value::from("AUTHORIZED") } else { Value::Null },
        "approvalType": "MANUAL",
        "filters": [format!(
            "dateTime: ['{}'..'{}'] and action:\"{action}\"",
            format_zulu(window_from_ms),
            format_zulu(window_to_ms)
        )],
        "reviewers": ["analyst.one"],
        "deleted": false,
        "filterFromDate": format_offset(window_from_ms),
        "createdBy": { "date": created_ms, "user": analyst },
        "customerId": CUSTOMER_ID,
        "name": name,
        "comment": null,
        "dispositionCategory": approval_status.map(|_| "PATCHING"),
        "id": id,
        "status": status,
        "type": "DEFAULT",
    });
    incident.to_string()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    date_time: String,
    processed_time: String,
    full_path: String,
    severity: Value,
    profiles: Arc<Vec<Profile>>,
    #[serde(rename = "type")]
    kind: &'static str,
    changed_attributes: Option<Vec<u16>>,
    platform: &'static str,
    old_content: Option<String>,
    actor: Actor,
    new_content: Option<String>,
    customer_id: &'static str,
    name: String,
    action: &'static str,
    id: &'a str,
    asset: Arc<Asset>,
    class: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore_date: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Actor {
    process: Option<&'static str>,
    #[serde(rename = "processID")]
    process_id: Option<u32>,
    image_path: Option<&'static str>,
    user_name: Option<&'static str>,
    #[serde(rename = "userID")]
    user_id: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Asset {
    agent_id: String,
    interfaces: Vec<Interface>,
    last_checked_in: String,
    created: Value,
    host_id: Option<String>,
    operating_system: &'static str,
    tags: Vec<String>,
    asset_type: &'static str,
    system: AssetSystem,
    ec2: Option<()>,
    last_logged_on_user: &'static str,
    netbios_name: Option<String>,
    name: String,
    agent_version: &'static str,
    updated: Value,
    #[serde(skip)]
    platform: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AssetSystem {
    last_boot: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Interface {
    hostname: Option<String>,
    mac_address: String,
    address: String,
    interface_name: &'static str,
}

#[derive(Debug, Serialize)]
struct Profile {
    name: &'static str,
    rules: Vec<Rule>,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    category: Category,
}

#[derive(Debug, Serialize)]
struct Rule {
    severity: u8,
    description: Option<&'static str>,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
struct Category {
    id: &'static str,
    name: &'static str,
}

fn make_asset(rng: &mut ChaCha8Rng, index: usize) -> Asset {
    let windows = index.is_multiple_of(2);
    let agent_id = random_uuid(rng);
    let name = if windows {
        format!(
            "{}-{:03}",
            WINDOWS_HOST_PREFIXES[index % WINDOWS_HOST_PREFIXES.len()],
            index
        )
    } else {
        format!(
            "{}-{:02}.corp.example",
            LINUX_HOST_PREFIXES[index % LINUX_HOST_PREFIXES.len()],
            index
        )
    };
    let address = format!("10.20.{}.{}", 30 + index / 16, 10 + index % 200);
    let mac: Vec<String> = (0..6)
        .map(|byte| match byte {
            0 => "00".to_owned(),
            1 => "50".to_owned(),
            2 => "56".to_owned(),
            _ => format!("{:02X}", rng.random::<u8>()),
        })
        .collect();
    let mut interfaces = Vec::new();
    if windows {
        interfaces.push(Interface {
            hostname: None,
            mac_address: "00-00-00-00-00-00-00-E0".to_owned(),
            address: "fe80:0:0:0:1c2d:3e4f:5a6b:7c8d".to_owned(),
            interface_name: "Teredo Tunneling Pseudo-Interface",
        });
    }
    interfaces.push(Interface {
        hostname: Some(name.clone()),
        mac_address: mac.join(":"),
        address,
        interface_name: if windows {
            "Intel(R) 82574L Gigabit Network Connection"
        } else {
            "eth0"
        },
    });

    let created_ms = 1_529_296_486_000 + rng.random_range(0..150_000_000_000i64);
    let updated_ms = 1_714_000_000_000 + rng.random_range(0..1_000_000_000i64);
    // Half the assets send created/updated as epoch ms, half as text: the
    // API really mixes both.
    let (created, updated) = if rng.random_bool(0.5) {
        (Value::from(created_ms), Value::from(updated_ms))
    } else {
        (
            Value::from(format_offset(created_ms)),
            Value::from(format_offset(updated_ms)),
        )
    };
    let tags = (0..rng.random_range(0..=3))
        .map(|_| rng.random_range(7_500_000..8_200_000).to_string())
        .collect();

    Asset {
        agent_id,
        interfaces,
        last_checked_in: format_zulu(updated_ms),
        created,
        host_id: windows.then(|| rng.random_range(10_000..20_000).to_string()),
        operating_system: if windows {
            WINDOWS_OS[index % WINDOWS_OS.len()]
        } else {
            LINUX_OS[index % LINUX_OS.len()]
        },
        tags,
        asset_type: "HOST",
        system: AssetSystem {
            last_boot: format_zulu(updated_ms - 200_000_000),
        },
        ec2: None,
        last_logged_on_user: if windows {
            ".\\Administrator"
        } else {
            "deploy"
        },
        netbios_name: windows.then(|| name.clone()),
        name,
        agent_version: if windows { "6.1.0.28" } else { "6.2.5.4" },
        updated,
        platform: if windows { "WINDOWS" } else { "LINUX" },
    }
}

fn profile_sets(
    rng: &mut ChaCha8Rng,
    names: &[&'static str],
    platform: &'static str,
    rule_type: &'static str,
) -> Vec<Arc<Vec<Profile>>> {
    let profiles: Vec<(&'static str, String, Vec<String>)> = names
        .iter()
        .map(|name| {
            let rules = (0..rng.random_range(1..=3))
                .map(|_| random_uuid(rng))
                .collect();
            (*name, random_uuid(rng), rules)
        })
        .collect();
    // Sets of one or two profiles: an event can match several at once.
    (0..8)
        .map(|_| {
            let count = rng.random_range(1..=2.min(profiles.len()));
            let chosen: Vec<_> = profiles.choose_multiple(rng, count).collect();
            let set = chosen
                .into_iter()
                .map(|(name, id, rules)| Profile {
                    name,
                    rules: rules
                        .iter()
                        .map(|rule_id| Rule {
                            severity: rng.random_range(1..=5),
                            description: None,
                            id: rule_id.clone(),
                            kind: rule_type,
                        })
                        .collect(),
                    id: id.clone(),
                    kind: platform,
                    category: Category {
                        id: "4a06d3ec-f829-5b62-8300-89e5b9d8d8b0",
                        name: "PCI",
                    },
                })
                .collect();
            Arc::new(set)
        })
        .collect()
}

fn random_uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .hyphenated()
        .to_string()
}

const FILE_ACTIONS: &[&str] = &[
    "Create",
    "Content",
    "Delete",
    "Rename",
    "Attributes",
    "Security",
];
const REGISTRY_ACTIONS: &[&str] = &["Create", "Content", "Delete", "Security"];

const WINDOWS_HOST_PREFIXES: &[&str] = &["WIN10-FIN", "WIN2019-DB", "WIN2022-APP", "WIN11-HR"];
const LINUX_HOST_PREFIXES: &[&str] = &["web", "db", "k8s-node", "bastion"];
const WINDOWS_OS: &[&str] = &[
    "Microsoft Windows 10 Pro 10.0.19045 N/A Build 19045",
    "Microsoft Windows Server 2019 Standard 10.0.17763 N/A Build 17763",
    "Microsoft Windows Server 2022 Datacenter 10.0.20348 N/A Build 20348",
];
const LINUX_OS: &[&str] = &[
    "Ubuntu 22.04.4 LTS",
    "Red Hat Enterprise Linux 9.3",
    "Debian GNU/Linux 12",
    "Amazon Linux 2023",
];

const WINDOWS_PROFILES: &[&str] = &[
    "Windows Profile - PCI",
    "Recommended Baseline for Windows OS",
    "Minimum Baseline for PCI for Windows OS",
    "FIM Profile - Servers",
];
const LINUX_PROFILES: &[&str] = &["Linux Baseline - CIS", "Linux Web Servers", "PCI Linux"];
const REGISTRY_PROFILES: &[&str] = &[
    "Windows Registry - Persistence",
    "Windows Registry - Services",
];

const WINDOWS_DIRS: &[&str] = &[
    "\\Device\\HarddiskVolume2\\Windows\\System32",
    "\\Device\\HarddiskVolume2\\Windows\\System32\\drivers",
    "\\Device\\HarddiskVolume2\\Windows\\System32\\downlevel",
    "C:\\Windows\\ServiceProfiles\\LocalService\\AppData\\Local",
    "C:\\Program Files\\Vendor\\Agent",
    "C:\\Program Files (x86)\\Google\\Chrome\\Application\\124.0.6367.91\\Locales",
    "C:\\inetpub\\wwwroot",
    "D:\\Finance\\Reports\\2024",
];
const LINUX_DIRS: &[&str] = &[
    "/etc",
    "/etc/ssh",
    "/etc/systemd/system",
    "/usr/bin",
    "/usr/local/sbin",
    "/var/www/html",
    "/opt/app/conf",
    "/home/deploy/.ssh",
];
const DIRECTORY_NAMES: &[&str] = &["backup", "cache", "release-", "tmp", "logs"];
const FILE_STEMS: &[&str] = &[
    "config",
    "hosts",
    "lastalive",
    "report",
    "service",
    "api-ms-win-core",
    "index",
    "passwd",
];
const WINDOWS_EXTENSIONS: &[&str] = &["dll", "exe", "dat", "xlsx", "ini", "sys"];
const LINUX_EXTENSIONS: &[&str] = &["conf", "sh", "so", "php", "service", "pub"];
const REGISTRY_KEYS: &[&str] = &[
    "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\RunOnce",
    "HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters",
    "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa",
    "HKU\\S-1-5-21-1004336348-1177238915-682003330-1001\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
];
const REGISTRY_VALUES: &[&str] = &[
    "Updater",
    "SecurityHealth",
    "LmCompatibilityLevel",
    "EnableLUA",
    "Domain",
];

type ActorRow = (&'static str, &'static str, &'static str, &'static str);
const WINDOWS_ACTORS: &[ActorRow] = &[
    (
        "powershell.exe",
        "\\Device\\HarddiskVolume2\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "NT AUTHORITY\\SYSTEM",
        "S-1-5-18",
    ),
    (
        "svchost.exe",
        "\\Device\\HarddiskVolume2\\Windows\\System32\\svchost.exe",
        "NT AUTHORITY\\LOCAL SERVICE",
        "S-1-5-19",
    ),
    (
        "explorer.exe",
        "\\Device\\HarddiskVolume2\\Windows\\explorer.exe",
        "CORP\\jdoe",
        "S-1-5-21-1004336348-1177238915-682003330-1001",
    ),
    (
        "msiexec.exe",
        "\\Device\\HarddiskVolume2\\Windows\\System32\\msiexec.exe",
        "NT AUTHORITY\\SYSTEM",
        "S-1-5-18",
    ),
];
const LINUX_ACTORS: &[ActorRow] = &[
    ("vim", "/usr/bin/vim.basic", "root", "0"),
    ("dpkg", "/usr/bin/dpkg", "root", "0"),
    ("sshd", "/usr/sbin/sshd", "root", "0"),
    ("python3", "/usr/bin/python3.11", "deploy", "1001"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_events() {
        let mut first = Generator::new(7);
        let mut second = Generator::new(7);
        for _ in 0..50 {
            let a = first.event(1_714_558_601_502, 1_714_558_588_163, None, None);
            let b = second.event(1_714_558_601_502, 1_714_558_588_163, None, None);
            assert_eq!(a.json, b.json);
        }
    }

    #[test]
    fn events_carry_the_fixture_fields() {
        let mut generator = Generator::new(3);
        let event = generator.event(1_714_558_601_502, 1_714_558_588_163, Some("inc"), None);
        let value: Value = serde_json::from_str(&event.json).unwrap();
        for field in [
            "dateTime",
            "processedTime",
            "fullPath",
            "severity",
            "profiles",
            "type",
            "changedAttributes",
            "platform",
            "oldContent",
            "actor",
            "newContent",
            "customerId",
            "name",
            "action",
            "id",
            "asset",
            "class",
            "incidentId",
        ] {
            assert!(value.get(field).is_some(), "missing {field}");
        }
    }

    #[test]
    fn edge_records_get_fresh_ids() {
        let mut generator = Generator::new(3);
        let event = generator
            .edge_event(1_714_558_601_502, 1_714_558_588_163, None, None)
            .unwrap();
        let value: Value = serde_json::from_str(&event.json).unwrap();
        assert_eq!(value["id"], Value::String(event.id.clone()));
        assert!(value.get("_case").is_some());
    }
}

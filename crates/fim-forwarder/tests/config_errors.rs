//! `fim-forwarder validate` on invalid configurations: each case names the
//! key, the value and the fix, and every problem is reported at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

const VALID: &str = r#"
[source]
base_url = "https://gateway.qg1.apps.qualys.com"
username = "user"
password = "pw"
[state]
dir = "/tmp/fim-state"
[[sinks]]
name = "out"
type = "stdout"
encoding = "json"
"#;

fn validate(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let output = common::forwarder()
        .env_remove("MISSING_VARIABLE")
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn valid_configuration_passes() {
    let (ok, output) = validate(VALID);
    assert!(ok, "{output}");
}

#[test]
fn invalid_configurations_get_the_intended_message() {
    let cases: Vec<(String, &str)> = vec![
        (
            VALID.replace(
                "base_url = \"https://gateway.qg1.apps.qualys.com\"",
                "platform = \"MARS1\"",
            ),
            "unknown platform \"MARS1\"",
        ),
        (
            VALID.replace("base_url = \"https://gateway.qg1.apps.qualys.com\"", ""),
            "source.platform",
        ),
        (VALID.replace("password = \"pw\"", ""), "source.password"),
        (
            VALID.replace("password = \"pw\"", "password = \"${MISSING_VARIABLE}\""),
            "MISSING_VARIABLE is not set",
        ),
        (
            VALID.replace("username = \"user\"", "username = \"user\"\npage_size = 0"),
            "source.page_size",
        ),
        (
            VALID.replace(
                "username = \"user\"",
                "username = \"user\"\nstreams = [\"alerts\"]",
            ),
            "unknown stream \"alerts\"",
        ),
        (
            VALID.replace(
                "username = \"user\"",
                "username = \"user\"\napi_version = \"v9\"",
            ),
            "unknown api_version",
        ),
        (
            VALID.replace(
                "username = \"user\"",
                "username = \"user\"\nstart_from = \"yesterday\"",
            ),
            "invalid start_from",
        ),
        (
            VALID.replace("username = \"user\"", "username = \"user\"\nlag = \"soon\""),
            "lag",
        ),
        (
            VALID.replace("username = \"user\"", "username = \"user\"\npolling = true"),
            "unknown field `polling`",
        ),
        (
            VALID.replace("type = \"stdout\"", "type = \"fax\""),
            "not a known sink type",
        ),
        (
            VALID.replace("encoding = \"json\"", "encoding = \"xml\""),
            "xml",
        ),
        (
            VALID.replace("encoding = \"json\"", ""),
            "encoding is missing",
        ),
        (
            VALID.replace("type = \"stdout\"", "type = \"file\""),
            "path",
        ),
        (
            format!("{VALID}\n[[sinks]]\nname = \"out\"\ntype = \"stdout\"\nencoding = \"json\"\n"),
            "names must be unique",
        ),
        (
            VALID.replace(
                "[[sinks]]\nname = \"out\"\ntype = \"stdout\"\nencoding = \"json\"\n",
                "",
            ),
            "no [[sinks]]",
        ),
        (format!("{VALID}\n[log]\nlevel = \"loud!!\"\n"), "log.level"),
        (
            format!("{VALID}\n[pipeline]\nbuffer = 0\n"),
            "pipeline.buffer",
        ),
        ("[source\nbroken".to_owned(), "invalid configuration"),
    ];
    for (text, expected) in cases {
        let (ok, output) = validate(&text);
        assert!(!ok, "accepted:\n{text}");
        assert!(
            output.contains(expected),
            "expected {expected:?} in:\n{output}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = VALID
        .replace("username = \"user\"", "username = \"user\"\npage_size = 0")
        .replace("type = \"stdout\"", "type = \"fax\"");
    let (ok, output) = validate(&text);
    assert!(!ok);
    assert!(output.contains("source.page_size"), "{output}");
    assert!(output.contains("fax"), "{output}");
}

#[test]
fn shipped_configurations_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    for file in ["demo.toml", "fim-forwarder.toml"] {
        let output = common::forwarder()
            .env("QUALYS_USERNAME", "user")
            .env("QUALYS_PASSWORD", "pw")
            .env("SPLUNK_HEC_TOKEN", "token")
            .args(["validate", "--config"])
            .arg(root.join(file))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

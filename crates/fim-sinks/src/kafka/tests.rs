//! Configuration checks of the Kafka sink; the tests against brokers are
//! in `tests/kafka*.rs`.

use super::*;

const MINIMAL: &str = "brokers = [\"127.0.0.1:9092\"]\ntopic = \"qualys.fim.{stream}\"\n";

fn config(text: &str) -> KafkaConfig {
    toml::from_str(text).unwrap()
}

#[test]
fn defaults_are_idempotent_with_acks_all() {
    let properties = config(MINIMAL).properties().unwrap();
    assert_eq!(properties["enable.idempotence"], "true");
    assert_eq!(properties["acks"], "all");
    assert_eq!(properties["compression.type"], "none");
    assert_eq!(properties["bootstrap.servers"], "127.0.0.1:9092");
    assert_eq!(properties["message.copy.max.bytes"], "0");
}

#[test]
fn pass_through_table_wins() {
    let text = format!(
        "{MINIMAL}compression = \"lz4\"\n[librdkafka]\n\"compression.type\" = \"zstd\"\n\"linger.ms\" = 5\n"
    );
    let properties = config(&text).properties().unwrap();
    assert_eq!(properties["compression.type"], "zstd");
    assert_eq!(properties["linger.ms"], "5");
}

#[test]
fn secret_properties_are_hidden_in_debug() {
    let text = format!("{MINIMAL}[librdkafka]\n\"sasl.password\" = \"hunter2\"\n");
    let shown = format!("{:?}", config(&text));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("sasl.password"), "{shown}");
}

#[test]
fn table_property_is_rejected() {
    let text = format!("{MINIMAL}[librdkafka]\n\"a\" = {{ b = 1 }}\n");
    let err = config(&text).validate().unwrap_err();
    assert!(
        matches!(err, KafkaConfigError::InvalidProperty { .. }),
        "{err}"
    );
}

#[test]
fn broker_without_port_is_rejected() {
    let text = "brokers = [\"kafka\"]\ntopic = \"t\"\n";
    let err = config(text).validate().unwrap_err();
    assert_eq!(err, KafkaConfigError::InvalidBroker("kafka".to_owned()));
}

#[test]
fn unknown_key_is_named() {
    let text = format!("{MINIMAL}topik = \"x\"\n");
    let err = toml::from_str::<KafkaConfig>(&text).unwrap_err();
    assert!(err.message().contains("topik"), "{err}");
}

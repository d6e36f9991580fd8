use serde::Deserialize;

/// Options of the stdout sink; it has none beyond the common ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

//! Arbitrary bytes, read as JSON records, through the `syslog_rfc3164` encoder.

#![no_main]

use fim_transform::config::Encoding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fim_transform_fuzz::run(Encoding::SyslogRfc3164, data));

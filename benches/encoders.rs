//! Encoder benchmarks (filled in below).
fn main() {}

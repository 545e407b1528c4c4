//! Benchmarks of validation against base R4 (filled in below).
fn main() {}

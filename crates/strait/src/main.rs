//! The strait binary: CLI (run, validate, routes, version), process wiring and signals.
fn main() {}

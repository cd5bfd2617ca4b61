//! Control plane: compile configuration into snapshots and publish them; the file provider.
#![forbid(unsafe_code)]

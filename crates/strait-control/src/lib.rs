//! Control plane: compile configuration into snapshots, publish them, and reload from the file provider.
#![forbid(unsafe_code)]

pub mod compile;
pub mod control;
pub mod listeners;
pub mod provider;
pub mod shadow;
pub mod watch;

pub use compile::compile;
pub use control::Control;
pub use provider::{Document, Embedded, FileProvider, Provider};

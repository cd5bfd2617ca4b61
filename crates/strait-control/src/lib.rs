//! Control plane: compile configuration into snapshots, publish them, and reload from a provider (file or etcd).
#![forbid(unsafe_code)]

pub mod admin_listener;
pub mod canonical;
pub mod certs;
pub mod compile;
pub mod control;
pub mod dns;
pub mod etcd;
pub mod files;
pub mod listeners;
pub mod provider;
pub mod restart;
pub mod rollout;
pub mod shadow;
pub mod watch;

pub use compile::compile;
pub use control::Control;
pub use etcd::EtcdProvider;
pub use provider::{Document, Embedded, FileProvider, Provider, StateStore};

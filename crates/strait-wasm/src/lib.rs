//! proxy-wasm plugins on wasmtime: a host for ABI 0.2.0 and 0.2.1 whose plugins are filters of the `wasm` policy kind, sandboxed by a memory cap and a per-callback CPU deadline.
//!
//! [`Runtime`] holds the one engine (pooling allocator, epoch interruption) and compiles each
//! module once per content hash (kept on disk across restarts when given a cache directory,
//! see [`cache`]); a [`Plugin`] is a compiled module with its policy's settings and its
//! instance pool (live state kept by policy name); [`WasmFilter`] runs a plugin's callbacks
//! in a route's chain. See docs/plugins.md for the ABI coverage.

// Denied, not forbidden: `cache::deserialize` loads our own compiled artefacts, the one
// `unsafe` call, allowed there with its reasons.
#![deny(unsafe_code)]

pub mod abi;
pub mod cache;
pub mod engine;
mod filter;
mod host;
mod log;
pub mod metrics;
mod plugin;
pub mod shared;
mod vm;

pub use cache::CacheResult;
pub use engine::{runtime, CompiledModule, Runtime};
pub use filter::WasmFilter;
pub use plugin::{Clients, Counters, Plugin, Settings};
pub use vm::Fault;

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The engine could not be made (address space for the instance pool, say).
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The module is not valid WebAssembly or not a proxy-wasm module.
    #[error("wasm module: {0}")]
    Compile(String),
    /// The module's imports cannot be satisfied.
    #[error("wasm module imports: {0}")]
    Link(String),
    /// The plugin failed to start (trapped, or rejected its configuration).
    #[error("wasm plugin start: {0}")]
    Start(String),
}

//! The on-disk cache of compiled modules: one artefact per module, so a restart (or a second process on the same host) loads a plugin without compiling it again.
//!
//! An entry is `<dir>/<key>.cwasm`, where the key is the SHA-256 of the module bytes, the
//! wasmtime version and the engine's compilation settings; its contents are [`MAGIC`], the
//! SHA-256 of the artefact, then the artefact (`Module::serialize`). The directory is made
//! 0700, and an existing one that others may write to is refused unless we can make it 0700
//! (only its owner can). Entries are written under a temporary name and renamed, so a reader
//! sees a whole file or none. Whatever goes wrong with an entry (unreadable, truncated,
//! checksum mismatch, refused by wasmtime as from another version or configuration) is an
//! [`CacheResult::Error`]: the caller compiles instead and writes a fresh entry.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// The wasmtime this crate is built with (Cargo.toml pins it; a unit test checks the two agree).
/// Part of the key, so an upgraded binary never even opens an older artefact.
pub const WASMTIME_VERSION: &str = "34.0.2";

/// First bytes of every entry (and its format version).
pub const MAGIC: &[u8; 8] = b"STRAITW1";

/// Largest entry read; a compiled plugin is a few times its module, and modules are ≤ 64 MiB.
const MAX_ENTRY: u64 = 512 << 20;

/// What a lookup in the disk cache came to, counted as `strait_wasm_module_cache_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// The module was loaded from its entry, not compiled.
    Hit,
    /// No entry: compiled, and the entry written.
    Miss,
    /// The entry (or the directory) could not be used: compiled instead.
    Error,
}

impl CacheResult {
    /// The metric label: `hit`, `miss` or `error`.
    pub fn label(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Error => "error",
        }
    }
}

/// The cache directory when the configuration names none: `$XDG_CACHE_HOME/strait/wasm`,
/// else `$HOME/.cache/strait/wasm` (Wasmtime keeps its own cache there too, as
/// `wasmtime/`); `None` when neither variable holds an absolute path (no disk cache).
pub fn default_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })
        .map(|d| d.join("strait").join("wasm"))
}

/// A cache directory, checked and ready.
pub(crate) struct DiskCache {
    dir: PathBuf,
}

/// Feeds what `Hash` writes into SHA-256, so the engine's settings hash the same in every process.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        // Never used: the digest is read from the inner SHA-256.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The entry name for a module with SHA-256 `digest` compiled by `engine`.
pub(crate) fn key(engine: &Engine, digest: &[u8; 32]) -> String {
    let mut h = ShaHasher(Sha256::new());
    h.write(MAGIC);
    h.write(digest);
    h.write(WASMTIME_VERSION.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex(&h.0.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[(b >> 4) as usize], DIGITS[(b & 15) as usize]])
        .map(char::from)
        .collect()
}

impl DiskCache {
    /// `dir`, created 0700 if missing; an error when it is not a directory or others may
    /// write to it and we cannot change that.
    pub(crate) fn open(dir: &Path) -> Result<DiskCache, String> {
        let shown = dir.display();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {shown}: {e}"))?;
        let meta = fs::metadata(dir).map_err(|e| format!("{shown}: {e}"))?;
        if !meta.is_dir() {
            return Err(format!("{shown} is not a directory"));
        }
        // Artefacts are run as machine code: nobody else may be able to put one here.
        if meta.permissions().mode() & 0o022 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
                format!("{shown} is writable by others and cannot be made private: {e}")
            })?;
        }
        // A directory nobody else may write to that we can write to is ours (or we are root).
        let probe = dir.join(format!(".probe.{}", std::process::id()));
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&probe)
            .map_err(|e| format!("{shown} is not writable by this process: {e}"))?;
        let _ = fs::remove_file(&probe);
        Ok(DiskCache {
            dir: dir.to_path_buf(),
        })
    }

    /// Where entry `key` lives.
    pub(crate) fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The module stored under `key`: `None` when there is no entry, an error when there
    /// is one that cannot be used.
    pub(crate) fn load(&self, engine: &Engine, key: &str) -> Result<Option<Module>, String> {
        let path = self.path(key);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut bytes = Vec::new();
        file.take(MAX_ENTRY + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let artefact = checked(&bytes).ok_or_else(|| {
            format!(
                "{}: not a whole cache entry (truncated or corrupt)",
                path.display()
            )
        })?;
        deserialize(engine, artefact)
            .map(Some)
            .map_err(|e| format!("{}: {e:#}", path.display()))
    }

    /// Writes `module`'s artefact as entry `key` (through a temporary file and a rename).
    pub(crate) fn store(&self, key: &str, module: &Module) -> Result<(), String> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let artefact = module
            .serialize()
            .map_err(|e| format!("serialize: {e:#}"))?;
        let path = self.path(key);
        // Unique per process and call: two writers never share a temporary file.
        let tmp = self.dir.join(format!(
            ".{key}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&Sha256::digest(&artefact))?;
            f.write_all(&artefact)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("{}: {e}", path.display())
        })
    }
}

/// The artefact in an entry whose magic and checksum match.
fn checked(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC)?;
    if rest.len() < 32 || entry.len() as u64 > MAX_ENTRY {
        return None;
    }
    let (sum, artefact) = rest.split_at(32);
    (Sha256::digest(artefact).as_slice() == sum).then_some(artefact)
}

/// The one place this crate uses `unsafe`.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artefact: &[u8]) -> wasmtime::Result<Module> {
    // SAFETY: `Module::deserialize` trusts its input to be machine code that wasmtime
    // compiled; it checks the format, the wasmtime version and the engine settings, not the
    // code. These bytes come from an entry we wrote with `Module::serialize` (in a directory
    // we made 0700, or whose write access we took back from everyone else, through a
    // temporary file and a rename), named by the SHA-256 of the module bytes, the wasmtime
    // version and this engine's compilation settings, and they matched the SHA-256 stored
    // in front of them, so neither a torn write nor a flipped bit reaches this call. We
    // pass a copy in memory (not a mapping of the file), so a later change to the file
    // cannot change the code under a running module.
    unsafe { Module::deserialize(engine, artefact) }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

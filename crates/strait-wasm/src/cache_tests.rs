//! Tests of the disk cache: entries round-trip, a damaged entry is an error (never a crash), keys follow the module and the engine, directories are kept private.

use super::*;
use crate::engine::Runtime;

/// The smallest proxy-wasm module: one empty function exported as the ABI marker `marker`.
fn module(marker: &str) -> Vec<u8> {
    let name = marker.as_bytes();
    let mut export = vec![1, name.len() as u8];
    export.extend_from_slice(name);
    export.extend_from_slice(&[0, 0]);
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // type: () -> ()
    m.extend_from_slice(&[3, 2, 1, 0]); // one function of that type
    m.extend_from_slice(&[7, export.len() as u8]);
    m.extend_from_slice(&export);
    m.extend_from_slice(&[10, 4, 1, 2, 0, 0x0b]); // its body: end
    m
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "strait-wasm-cache-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// An engine, a cache in a fresh directory, a module and its key.
struct Fixture {
    engine: Engine,
    cache: DiskCache,
    bytes: Vec<u8>,
    key: String,
    _tmp: TempDir,
}

fn fixture(tag: &str) -> Fixture {
    let engine = Engine::default();
    let tmp = TempDir::new(tag);
    let cache = DiskCache::open(&tmp.0).unwrap();
    let bytes = module("proxy_abi_version_0_2_1");
    let key = key(&engine, &digest(&bytes));
    Fixture {
        engine,
        cache,
        bytes,
        key,
        _tmp: tmp,
    }
}

#[test]
fn a_stored_module_loads_from_its_entry() {
    let Fixture {
        engine,
        cache,
        bytes,
        key: k,
        _tmp: tmp,
    } = fixture("roundtrip");
    assert!(cache.load(&engine, &k).unwrap().is_none(), "no entry yet");
    let compiled = Module::new(&engine, &bytes).unwrap();
    cache.store(&k, &compiled).unwrap();
    let loaded = cache.load(&engine, &k).unwrap().expect("entry");
    let names: Vec<&str> = loaded.exports().map(|e| e.name()).collect();
    assert_eq!(names, ["proxy_abi_version_0_2_1"]);
    let mode = fs::metadata(cache.path(&k)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = fs::read_dir(&tmp.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no temporary or probe files left");
}

#[test]
fn a_damaged_entry_is_an_error_not_a_crash() {
    let Fixture {
        engine,
        cache,
        bytes,
        key: k,
        _tmp: _dir,
    } = fixture("damaged");
    cache
        .store(&k, &Module::new(&engine, &bytes).unwrap())
        .unwrap();
    let good = fs::read(cache.path(&k)).unwrap();

    // A flipped bit in the code.
    let mut flipped = good.clone();
    let mid = MAGIC.len() + 32 + (good.len() - MAGIC.len() - 32) / 2;
    flipped[mid] ^= 0x40;
    fs::write(cache.path(&k), &flipped).unwrap();
    assert!(cache.load(&engine, &k).is_err());

    // Cut short, and empty.
    fs::write(cache.path(&k), &good[..good.len() / 2]).unwrap();
    assert!(cache.load(&engine, &k).is_err());
    fs::write(cache.path(&k), b"").unwrap();
    assert!(cache.load(&engine, &k).is_err());

    // A well-formed entry whose artefact wasmtime refuses (not an artefact at all).
    let junk = b"this is not a compiled module".to_vec();
    let mut entry = MAGIC.to_vec();
    entry.extend_from_slice(&Sha256::digest(&junk));
    entry.extend_from_slice(&junk);
    fs::write(cache.path(&k), &entry).unwrap();
    let e = cache.load(&engine, &k).unwrap_err();
    assert!(e.contains(".cwasm"), "{e}");

    // Written again, it loads again.
    cache
        .store(&k, &Module::new(&engine, &bytes).unwrap())
        .unwrap();
    assert!(cache.load(&engine, &k).unwrap().is_some());
}

#[test]
fn keys_follow_the_module_bytes_and_the_engine_settings() {
    let plain = Engine::default();
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    let epochs = Engine::new(&config).unwrap();
    let a = digest(&module("proxy_abi_version_0_2_1"));
    let b = digest(&module("proxy_abi_version_0_2_0"));
    assert_eq!(key(&plain, &a), key(&Engine::default(), &a), "stable");
    assert_ne!(key(&plain, &a), key(&plain, &b));
    assert_ne!(key(&plain, &a), key(&epochs, &a));
    assert_eq!(key(&plain, &a).len(), 64);
}

#[test]
fn a_directory_others_can_write_is_made_private() {
    let tmp = TempDir::new("private");
    fs::create_dir_all(&tmp.0).unwrap();
    fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o777)).unwrap();
    DiskCache::open(&tmp.0).unwrap();
    let mode = fs::metadata(&tmp.0).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let nested = tmp.0.join("a/b");
    DiskCache::open(&nested).unwrap();
    let mode = fs::metadata(&nested).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "created private");
    let file = tmp.0.join("file");
    fs::write(&file, b"x").unwrap();
    assert!(
        DiskCache::open(&file).is_err(),
        "a file is not a cache directory"
    );
}

#[test]
fn the_runtime_reads_the_entry_it_wrote_and_recompiles_a_corrupt_one() {
    let rt = Runtime::new().unwrap();
    let tmp = TempDir::new("runtime");
    let bytes = module("proxy_abi_version_0_2_0");
    let (m, r) = rt.compile_cached(&bytes, Some(tmp.0.as_path())).unwrap();
    assert_eq!((m.abi, r), ("0.2.0", Some(CacheResult::Miss)));
    // While a plugin holds it, the module comes from memory: no disk lookup.
    let (_, r) = rt.compile_cached(&bytes, Some(tmp.0.as_path())).unwrap();
    assert_eq!(r, None);
    drop(m);
    // As after a restart: nothing in memory, the entry on disk.
    let (m, r) = rt.compile_cached(&bytes, Some(tmp.0.as_path())).unwrap();
    assert_eq!((m.abi, r), ("0.2.0", Some(CacheResult::Hit)));
    drop(m);
    let entry = fs::read_dir(&tmp.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .expect("an entry")
        .path();
    let mut damaged = fs::read(&entry).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    fs::write(&entry, damaged).unwrap();
    let (m, r) = rt.compile_cached(&bytes, Some(tmp.0.as_path())).unwrap();
    assert_eq!((m.abi, r), ("0.2.0", Some(CacheResult::Error)));
    drop(m);
    let (_, r) = rt.compile_cached(&bytes, Some(tmp.0.as_path())).unwrap();
    assert_eq!(r, Some(CacheResult::Hit), "the damaged entry was replaced");
    // No cache directory: compiled, nothing counted.
    let other = module("proxy_abi_version_0_2_1");
    let (_, r) = rt.compile_cached(&other, None).unwrap();
    assert_eq!(r, None);
}

#[test]
fn an_unusable_directory_compiles_and_counts_an_error() {
    let rt = Runtime::new().unwrap();
    let tmp = TempDir::new("unusable");
    fs::create_dir_all(&tmp.0).unwrap();
    let file = tmp.0.join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let (m, r) = rt
        .compile_cached(&module("proxy_abi_version_0_2_1"), Some(file.as_path()))
        .unwrap();
    assert_eq!((m.abi, r), ("0.2.1", Some(CacheResult::Error)));
}

#[test]
fn the_pinned_wasmtime_version_is_the_one_in_the_manifest() {
    let manifest = include_str!("../Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("wasmtime ="))
        .expect("wasmtime dependency");
    assert!(
        line.contains(&format!("version = \"{WASMTIME_VERSION}\"")),
        "update cache::WASMTIME_VERSION to match: {line}"
    );
}

//! File watches: the config file (including atomic rename-over) and the certificate files it names, each change asking for a reload.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    path::{Path, PathBuf},
};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Watches `path`; each change sends `()` on the returned channel. Keep the watcher alive while watching.
pub fn watch_file(path: &Path) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    watch_files(std::slice::from_ref(&path.to_path_buf()))
}

/// Watches every file of `paths` the same way; one channel for all of them.
pub fn watch_files(
    paths: &[PathBuf],
) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let names: BTreeSet<OsString> = paths
        .iter()
        .filter_map(|p| p.file_name().map(Into::into))
        .collect();
    // Watch directories: editors, deploy tools and certificate agents replace files by renaming
    // over them, which a watch on the file itself would lose.
    let dirs: BTreeSet<PathBuf> = paths
        .iter()
        .map(|p| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if ev.kind.is_access() {
            return;
        }
        let relevant = ev.paths.iter().any(|p| {
            p.file_name().is_some_and(|n| {
                // Kubernetes secret and configmap volumes swap a `..data` symlink instead.
                names.contains(n) || n.to_string_lossy().starts_with("..data")
            })
        });
        if relevant {
            // A full channel already means "reload pending": bursts coalesce for free.
            let _ = tx.try_send(());
        }
    })?;
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    Ok((watcher, rx))
}

//! The file provider's watcher: notices when the config file changes (including atomic rename-over) and asks for a reload.

use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Watches `path`; each change sends `()` on the returned channel. Keep the watcher alive while watching.
pub fn watch_file(path: &Path) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let file: PathBuf = path.file_name().map(PathBuf::from).unwrap_or_default();
    // Watch the directory: editors and deploy tools replace the file by renaming over it,
    // which a watch on the file itself would lose.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if ev.kind.is_access() {
            return;
        }
        if ev
            .paths
            .iter()
            .any(|p| p.file_name() == Some(file.as_os_str()))
        {
            // A full channel already means "reload pending": bursts coalesce for free.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}

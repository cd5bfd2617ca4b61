//! The git commit a build comes from, found by the build script; "unknown" where there is no git checkout of Strait (a source tarball).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a build without a known commit reports.
pub const UNKNOWN: &str = "unknown";

/// The short commit of the git checkout holding `dir`, and the files whose change means HEAD moved.
///
/// `forced` (from `STRAIT_BUILD_COMMIT`) wins: packagers building from a tarball know the commit.
/// Without git, or when `dir` is not tracked by the repository around it (a tarball unpacked
/// inside some other checkout), the commit is [`UNKNOWN`] and the build goes on.
pub fn describe(dir: &Path, forced: Option<&str>) -> (String, Vec<PathBuf>) {
    if let Some(c) = forced.map(str::trim).filter(|c| !c.is_empty()) {
        return (c.to_string(), Vec::new());
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let text = text.trim();
        (out.status.success() && !text.is_empty()).then(|| text.to_string())
    };
    let unknown = || (UNKNOWN.to_string(), Vec::new());
    if git(&["ls-files", "--error-unmatch", "Cargo.toml"]).is_none() {
        return unknown();
    }
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return unknown();
    };
    // HEAD names the branch; the branch's ref file (or packed-refs) moves on each commit.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    let files = watch
        .iter()
        .filter_map(|name| git(&["rev-parse", "--git-path", name]))
        .map(|p| dir.join(p))
        .filter(|p| p.exists())
        .collect();
    (commit, files)
}

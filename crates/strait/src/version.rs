//! What this binary is: its version and the commit it was built from (set by the build script).

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit (12 hex digits), or "unknown" when built without git.
pub const COMMIT: &str = env!("STRAIT_COMMIT");

/// `VERSION (commit COMMIT)`, as `strait version` and `--version` print it.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("STRAIT_COMMIT"),
    ")"
);

#[cfg(test)]
#[path = "../build/commit.rs"]
mod commit;

#[cfg(test)]
mod tests {
    use super::commit::{describe, UNKNOWN};

    #[test]
    fn a_directory_outside_any_checkout_builds_as_unknown() {
        let dir = std::env::temp_dir().join(format!("strait-no-git-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[package]\n").unwrap();
        let (commit, files) = describe(&dir, None);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(commit, UNKNOWN);
        assert!(files.is_empty());
    }

    #[test]
    fn a_forced_commit_wins_and_blank_is_ignored() {
        let dir = std::env::temp_dir();
        assert_eq!(describe(&dir, Some(" abc123 ")).0, "abc123");
        assert_eq!(describe(&dir, Some("  ")).0, UNKNOWN);
    }
}

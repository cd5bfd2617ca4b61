//! Which configuration a command reads: `-c FILE`, else `$STRAIT_CONFIG`, else `./strait.yaml`, else (for `run`) the embedded default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable naming the config file when `-c` is not given.
pub const ENV: &str = "STRAIT_CONFIG";

/// The file looked for in the working directory when neither `-c` nor `$STRAIT_CONFIG` is given.
pub const CWD_FILE: &str = "strait.yaml";

/// Where the configuration comes from, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `-c FILE`.
    Flag(PathBuf),
    /// `$STRAIT_CONFIG`.
    Env(PathBuf),
    /// `./strait.yaml`, found in the working directory.
    Cwd(PathBuf),
    /// Nothing given or found: the built-in welcome configuration.
    Embedded,
}

impl ConfigSource {
    /// Resolves the source from the `-c` argument, the value of `$STRAIT_CONFIG` and whether
    /// `./strait.yaml` exists. An empty `$STRAIT_CONFIG` counts as unset (as `VAR= strait run`
    /// is the usual way to clear it); a set one is used even when the file is missing, so a
    /// typo is an error rather than a silent fall back to another file.
    pub fn resolve(flag: Option<PathBuf>, env: Option<OsString>, cwd_has_file: bool) -> Self {
        if let Some(p) = flag {
            return ConfigSource::Flag(p);
        }
        if let Some(v) = env.filter(|v| !v.is_empty()) {
            return ConfigSource::Env(PathBuf::from(v));
        }
        if cwd_has_file {
            return ConfigSource::Cwd(Path::new(".").join(CWD_FILE));
        }
        ConfigSource::Embedded
    }

    /// [`ConfigSource::resolve`] against this process's environment and working directory.
    pub fn from_process(flag: Option<PathBuf>) -> Self {
        let cwd_has_file = Path::new(CWD_FILE).is_file();
        Self::resolve(flag, std::env::var_os(ENV), cwd_has_file)
    }

    /// The file to read, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::Cwd(p) => Some(p),
            ConfigSource::Embedded => None,
        }
    }

    /// For the startup log: the file and how it was chosen.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::Flag(p) => format!("{} (-c)", p.display()),
            ConfigSource::Env(p) => format!("{} (${ENV})", p.display()),
            ConfigSource::Cwd(p) => format!("{} (found in the working directory)", p.display()),
            ConfigSource::Embedded => {
                "the embedded default (no -c, no $STRAIT_CONFIG, no ./strait.yaml)".into()
            }
        }
    }
}

/// What `validate` and `routes` say when there is no file to read.
pub const NONE_GIVEN: &str =
    "no configuration file: pass -c FILE, set STRAIT_CONFIG, or create ./strait.yaml";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_environment_then_the_working_directory() {
        let f = || Some(PathBuf::from("a.yaml"));
        let e = || Some(OsString::from("/etc/strait/b.yaml"));
        assert_eq!(
            ConfigSource::resolve(f(), e(), true),
            ConfigSource::Flag("a.yaml".into())
        );
        assert_eq!(
            ConfigSource::resolve(None, e(), true),
            ConfigSource::Env("/etc/strait/b.yaml".into())
        );
        assert_eq!(
            ConfigSource::resolve(None, None, true),
            ConfigSource::Cwd("./strait.yaml".into())
        );
        assert_eq!(
            ConfigSource::resolve(None, None, false),
            ConfigSource::Embedded
        );
    }

    #[test]
    fn an_empty_variable_is_unset_and_a_set_one_is_used_even_if_missing() {
        assert_eq!(
            ConfigSource::resolve(None, Some(OsString::new()), true),
            ConfigSource::Cwd("./strait.yaml".into())
        );
        let s = ConfigSource::resolve(None, Some("missing.yaml".into()), true);
        assert_eq!(s.path(), Some(Path::new("missing.yaml")));
        assert!(s.describe().contains("$STRAIT_CONFIG"));
    }
}

//! Config files for command-line tests: write one, run `strait validate` on it, and find its `FILE:LINE:COL` diagnostics.

use std::path::{Path, PathBuf};
use std::process::Output;

/// Write `yaml` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).expect("write config");
    p
}

/// 1-based line number of the first line containing `needle`.
pub fn line_of(yaml: &str, needle: &str) -> usize {
    yaml.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in yaml"))
        + 1
}

/// 1-based column (in characters) of the first `needle` on the line of `line_needle`.
pub fn column_of(yaml: &str, line_needle: &str, needle: &str) -> usize {
    let line = yaml
        .lines()
        .nth(line_of(yaml, line_needle) - 1)
        .unwrap_or_default();
    let byte = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not on line {line:?}"));
    line[..byte].chars().count() + 1
}

/// Lines of `stderr` that start with `FILE:LINE:COL: ` for `file` and `line`.
pub fn diagnostics_at(stderr: &str, file: &Path, line: usize) -> Vec<String> {
    let prefix = format!("{}:{line}:", file.display());
    stderr
        .lines()
        .filter(|l| {
            l.strip_prefix(&prefix).is_some_and(|rest| {
                let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
                !col.is_empty() && rest[col.len()..].starts_with(": ")
            })
        })
        .map(String::from)
        .collect()
}

/// A config written to a fresh temp dir and `strait validate -c` run on it with `env`.
pub struct Validated {
    /// The config file (its temp dir lives as long as this value).
    pub file: PathBuf,
    /// The process's exit code.
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    _dir: tempfile::TempDir,
}

impl Validated {
    /// Writes `yaml` and validates it.
    pub fn run(yaml: &str, env: &[(&str, &str)]) -> Validated {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(dir.path(), "strait.yaml", yaml);
        let out = crate::strait::run_cli_in(&["validate", "-c", file.to_str().unwrap()], env, None);
        Self::from_output(dir, file, out)
    }

    fn from_output(dir: tempfile::TempDir, file: PathBuf, out: Output) -> Validated {
        Validated {
            file,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            _dir: dir,
        }
    }

    /// The diagnostics at `line`, asserting the exit code was 1.
    pub fn errors_at(&self, line: usize) -> Vec<String> {
        assert_eq!(
            self.code,
            Some(1),
            "validate should fail; stderr:\n{}",
            self.stderr
        );
        diagnostics_at(&self.stderr, &self.file, line)
    }

    /// Asserts the config validated (exit 0).
    pub fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "validate should pass; stderr:\n{}",
            self.stderr
        );
    }
}

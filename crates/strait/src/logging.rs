//! The process log: its level (`--log-level`, else `$STRAIT_LOG`, else `$RUST_LOG`, else `info`) and format, coloured only on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The filter in force and where it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct Level {
    /// An `EnvFilter` directive list: `info`, `debug`, `info,strait_proxy=debug`.
    pub directives: String,
    /// `--log-level`, `STRAIT_LOG`, `RUST_LOG` or `default`.
    pub from: &'static str,
}

/// Picks the first of the flag, `$STRAIT_LOG` and `$RUST_LOG` that is set and not empty.
/// `RUST_LOG` is honoured because Rust users set it by habit; `STRAIT_LOG` wins so that a
/// global `RUST_LOG` meant for other programs can be overridden for Strait alone.
pub fn choose(flag: Option<&str>, strait_log: Option<&str>, rust_log: Option<&str>) -> Level {
    let candidates = [
        (flag, "--log-level"),
        (strait_log, "STRAIT_LOG"),
        (rust_log, "RUST_LOG"),
    ];
    candidates
        .into_iter()
        .find_map(|(v, from)| {
            v.map(str::trim).filter(|v| !v.is_empty()).map(|v| Level {
                directives: v.to_string(),
                from,
            })
        })
        .unwrap_or(Level {
            directives: "info".into(),
            from: "default",
        })
}

/// Colour (ANSI escapes) only when a person reads the terminal: files, pipes and log
/// collectors get plain text. `NO_COLOR` (any non-empty value, see no-color.org) turns it off.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&str>) -> bool {
    stderr_is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the process log on stderr. An invalid `--log-level` is an error (the caller exits
/// with it); an invalid variable falls back to `info` and says so once logging works.
pub fn init(format: LogFormat, flag: Option<&str>) -> Result<(), String> {
    let env = |k| std::env::var(k).ok();
    let level = choose(
        flag,
        env("STRAIT_LOG").as_deref(),
        env("RUST_LOG").as_deref(),
    );
    let (filter, rejected) = match EnvFilter::try_new(&level.directives) {
        Ok(f) => (f, None),
        Err(e) if level.from == "--log-level" => {
            return Err(format!("invalid --log-level `{}`: {e}", level.directives));
        }
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let ansi = colour(std::io::stderr().is_terminal(), env("NO_COLOR").as_deref());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
    if let Some(e) = rejected {
        tracing::warn!(variable = level.from, value = %level.directives, error = %e, "invalid log filter; logging at info");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_strait_log_then_rust_log_then_info() {
        assert_eq!(
            choose(Some("debug"), Some("warn"), Some("trace")).from,
            "--log-level"
        );
        assert_eq!(choose(None, Some("warn"), Some("trace")).directives, "warn");
        assert_eq!(choose(None, Some(" "), Some("trace")).from, "RUST_LOG");
        assert_eq!(
            choose(None, None, None),
            Level {
                directives: "info".into(),
                from: "default"
            }
        );
    }

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("")));
        assert!(!colour(true, Some("1")));
        assert!(!colour(false, None));
    }
}

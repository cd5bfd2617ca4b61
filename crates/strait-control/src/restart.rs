//! Settings a running process cannot change (the runtime's worker threads, the configuration provider): a document that changes them is applied otherwise, and these say what waits for a restart.

use strait_config::{Config, ProviderSettings};

/// What the process was started with, of the settings only a restart changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Started {
    /// `server.worker_threads` the runtime was built from; `None` when the configuration does
    /// not decide it (with etcd the runtime starts before the configuration is known).
    pub worker_threads: Option<usize>,
    /// The `config:` section the provider was chosen by.
    pub provider: ProviderSettings,
}

impl Started {
    /// One line per setting of `config` that differs from what runs: `needs a restart: FIELD (why)`.
    pub fn pending(&self, config: &Config) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(running) = self.worker_threads {
            let wanted = config.server.worker_threads;
            if wanted != running {
                out.push(format!(
                    "needs a restart: server.worker_threads (running with {}, configured {})",
                    threads(running),
                    threads(wanted)
                ));
            }
        }
        if config.provider != self.provider {
            out.push(
                "needs a restart: config (the configuration provider is chosen at start)"
                    .to_string(),
            );
        }
        out
    }
}

fn threads(n: usize) -> String {
    if n == 0 {
        "0 (one per core)".to_string()
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!("{extra}listeners:\n  - name: web\n    listen: 127.0.0.1:0\n");
        strait_config::parse("t", &text, None).unwrap().config
    }

    #[test]
    fn only_settings_that_differ_from_the_running_ones_are_pending() {
        let started = Started {
            worker_threads: Some(2),
            provider: ProviderSettings::default(),
        };
        assert!(started
            .pending(&config("server: { worker_threads: 2 }\n"))
            .is_empty());
        let p = started.pending(&config("server: { worker_threads: 4 }\n"));
        assert_eq!(
            p,
            ["needs a restart: server.worker_threads (running with 2, configured 4)"]
        );
        let p = started.pending(&config(""));
        assert!(p[0].contains("configured 0 (one per core)"), "{p:?}");
    }

    #[test]
    fn worker_threads_the_configuration_does_not_decide_are_never_pending() {
        let started = Started::default();
        assert!(started
            .pending(&config("server: { worker_threads: 4 }\n"))
            .is_empty());
    }
}

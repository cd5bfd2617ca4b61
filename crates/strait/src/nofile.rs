//! The open-file limit (RLIMIT_NOFILE): raised to the hard limit at start, since every connection is a file descriptor, with a warning when it cannot cover the listeners' `max_connections`.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The kernel's cap on a process's file descriptors; an unlimited hard limit still stops there.
const NR_OPEN: &str = "/proc/sys/fs/nr_open";

/// The soft limit to set, or `None` to leave it: the hard limit (or, when that is unlimited,
/// the kernel's `nr_open`), when above the soft one. `None` in a limit means unlimited.
pub fn target(soft: Option<u64>, hard: Option<u64>, nr_open: Option<u64>) -> Option<u64> {
    let soft = soft?;
    hard.or(nr_open).filter(|&t| t > soft)
}

/// Why `limit` open files may not be enough for `needed` connections, if they may not.
pub fn shortfall(limit: Option<u64>, needed: u64) -> Option<String> {
    let limit = limit?;
    (limit < needed).then(|| {
        format!(
            "the open-file limit ({limit}) is below the {needed} connections the listeners accept (the sum of their max_connections); \
             connections past it fail with EMFILE. Raise the hard limit (systemd LimitNOFILE=, ulimit -Hn, docker --ulimit nofile=) \
             or lower max_connections; a proxy also holds upstream connections, so allow about twice the sum"
        )
    })
}

/// Raises the soft limit as far as the hard limit allows; logs what it did.
pub fn raise() {
    let now = getrlimit(Resource::Nofile);
    let nr_open = std::fs::read_to_string(NR_OPEN)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let Some(to) = target(now.current, now.maximum, nr_open) else {
        return;
    };
    let new = Rlimit {
        current: Some(to),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, new) {
        Ok(()) => tracing::info!(
            from = now.current,
            to,
            "raised the open-file limit to the hard limit"
        ),
        Err(e) => {
            tracing::warn!(soft = now.current, hard = now.maximum, error = %e, "cannot raise the open-file limit")
        }
    }
}

/// Warns when the open-file limit in force is below what `config`'s listeners may accept.
pub fn check(config: &strait_config::Config) {
    let needed = config.listeners.iter().fold(0u64, |n, l| {
        n.saturating_add(l.limits.max_connections as u64)
    });
    let limit = getrlimit(Resource::Nofile).current;
    if let Some(why) = shortfall(limit, needed) {
        tracing::warn!(limit, needed, "{why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one_never_down() {
        assert_eq!(target(Some(1024), Some(524_288), None), Some(524_288));
        assert_eq!(target(Some(4096), Some(4096), None), None);
        assert_eq!(target(Some(8192), Some(4096), None), None);
        // Unlimited soft: nothing to raise.
        assert_eq!(target(None, None, Some(1 << 20)), None);
    }

    #[test]
    fn an_unlimited_hard_limit_stops_at_nr_open() {
        assert_eq!(target(Some(1024), None, Some(1_048_576)), Some(1_048_576));
        assert_eq!(target(Some(1024), None, None), None);
    }

    #[test]
    fn a_limit_below_the_connections_allowed_is_a_shortfall() {
        let why = shortfall(Some(1024), 10_000).unwrap();
        assert!(why.contains("(1024) is below the 10000"), "{why}");
        assert_eq!(shortfall(Some(10_000), 10_000), None);
        assert_eq!(shortfall(None, u64::MAX), None);
    }
}

//! `strait run`: build the runtime, start the control plane from its provider, bind admin, handle signals, file watches and upgrades, drain.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use strait_admin::AdminState;
use strait_config::PathPolicy;
use strait_control::{control::Options, Control, Embedded, FileProvider, Provider};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

use crate::{cli::RunArgs, source::ConfigSource, upgrade, version};

/// Runs the gateway until SIGTERM/SIGINT (or an upgrade hand-off), then drains and exits 0.
pub fn run(args: RunArgs) -> ExitCode {
    if let Err(e) = crate::logging::init(args.log_format, args.log_level.as_deref()) {
        eprintln!("strait: {e}");
        return ExitCode::from(2);
    }
    let source = ConfigSource::from_process(args.config.clone());
    tracing::info!(
        version = version::VERSION,
        commit = version::COMMIT,
        config = %source.describe(),
        "strait starting"
    );
    crate::nofile::raise();
    let config_path = source.path().map(std::path::Path::to_path_buf);
    let paths = match path_policy(&args, config_path.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("--allow-dir: {e}");
            return ExitCode::from(1);
        }
    };
    // A bootstrap file with `config: { provider: etcd }`: the configuration comes from etcd.
    if let Some(path) = &config_path {
        match crate::providers::bootstrap_of(path) {
            Ok(Some(bootstrap)) => return run_etcd(path, bootstrap, args.upgrade_socket, paths),
            Ok(None) => {}
            Err(code) => return code,
        }
    }
    // Read the configuration once before the runtime exists: its errors end the process with
    // diagnostics, and it says how many worker threads to start.
    let provider: Arc<dyn Provider> = match &config_path {
        Some(path) => Arc::new(FileProvider::new(path)),
        None => Arc::new(Embedded),
    };
    let first = provider.load().and_then(|doc| doc.parse());
    let config = match first {
        Ok(l) => l.config,
        Err(errors) => {
            for d in &errors.0 {
                eprintln!("{d}");
            }
            return ExitCode::from(1);
        }
    };
    crate::nofile::check(&config);
    let threads = match config.server.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.worker_threads(threads);
    let options = Options {
        paths,
        worker_threads: Some(config.server.worker_threads),
    };
    match runtime(rt) {
        Ok(rt) => rt.block_on(serve(provider, args.upgrade_socket, options)),
        Err(code) => code,
    }
}

/// Where file paths in configurations from the admin API or etcd may point: `--allow-dir`, or
/// the config file's directory. Only the operator sets it (a flag, not a config field), so
/// neither the admin API nor etcd can widen it, even across a restart.
fn path_policy(args: &RunArgs, config: Option<&std::path::Path>) -> Result<PathPolicy, String> {
    let mut dirs = args.allow_dirs.clone();
    if dirs.is_empty() {
        if let Some(c) = config {
            dirs.push(match c.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            });
        }
    }
    let protected: Vec<PathBuf> = config.iter().map(|c| c.to_path_buf()).collect();
    PathPolicy::new(&dirs, &protected)
}

/// `strait run -c BOOTSTRAP` with `provider: etcd`. `server.worker_threads` is not known before
/// etcd answers, so the runtime uses one worker per core.
fn run_etcd(
    path: &std::path::Path,
    bootstrap: strait_config::Bootstrap,
    upgrade_socket: Option<PathBuf>,
    paths: PathPolicy,
) -> ExitCode {
    let rt = match runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        // The client lives on this runtime: its watch task keeps the provider current.
        match crate::providers::etcd_provider(path, bootstrap).await {
            Ok(provider) => {
                let options = Options {
                    paths,
                    worker_threads: None,
                };
                serve(provider, upgrade_socket, options).await
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                ExitCode::from(1)
            }
        }
    })
}

async fn serve(
    provider: Arc<dyn Provider>,
    upgrade_socket: Option<PathBuf>,
    options: Options,
) -> ExitCode {
    let inherited = match &upgrade_socket {
        Some(path) => match upgrade::receive(path) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "socket hand-off from the running process failed");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let sockets = inherited
        .as_ref()
        .map_or_else(Vec::new, |i| clone_all(&i.sockets));
    // The allocator returns freed pages only inside its own calls: an idle process would
    // keep the last burst's memory (see `strait_profile::heap::collect`).
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            strait_profile::heap::collect(false);
        }
    });
    let handle = tokio::runtime::Handle::current();
    let p = provider.clone();
    // Compiling reads certificate files: keep it off the runtime's worker threads. The control
    // plane binds the admin listener too, before the traffic listeners start accepting.
    let started =
        tokio::task::spawn_blocking(move || Control::start(p, handle, sockets, options)).await;
    let control = match started {
        Ok(Ok(c)) => c,
        Ok(Err(errors)) => {
            for d in &errors.0 {
                eprintln!("{d}");
            }
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("start failed: {e}");
            return ExitCode::from(1);
        }
    };
    control
        .metrics
        .set_build_info(version::VERSION, version::COMMIT);
    // Watch for changes before the admin listener answers: once /readyz says 200, a change to
    // the file (or a SIGHUP) is seen.
    let (Ok(mut hup), Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::from(1);
    };
    let mut changed = control
        .provider()
        .subscribe()
        .unwrap_or_else(|| mpsc::channel(1).1);
    let settle = control.provider().kind() == "file";
    let mut certs = CertWatch::new(&control);
    let env_token = std::env::var("STRAIT_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let admin_state = AdminState::new(control.clone(), env_token);
    let (admin_stop, mut admin_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(strait_admin::serve(admin_state.clone(), async move {
        let _ = admin_stopped.wait_for(|s| *s).await;
    }));

    control.start_health_checks();
    tokio::spawn(strait_control::dns::run(Arc::downgrade(&control)));
    tokio::spawn(strait_control::rollout::run(Arc::downgrade(&control)));
    let shared = control.shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(strait_proxy::pool::REST_AFTER);
        loop {
            tick.tick().await;
            shared.pools.tend();
        }
    });

    let (upgraded_tx, mut upgraded) = mpsc::channel(1);
    if let Some(i) = inherited {
        i.ready();
    }
    if let Some(path) = upgrade_socket {
        let c = control.clone();
        tokio::spawn(upgrade::serve(
            path,
            move || c.handoff_sockets(),
            upgraded_tx,
        ));
    }

    loop {
        // (force: re-read files even if the document is unchanged, origin in the history)
        let (force, origin) = tokio::select! {
            _ = hup.recv() => (true, Some("sighup")),
            Some(()) = changed.recv() => {
                // Let a burst of file writes settle briefly, then reload once; a SIGHUP cuts the
                // wait (and keeps its meaning). Other providers notify once per complete change
                // (an etcd watch batch).
                let mut hupped = false;
                if settle {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                        _ = hup.recv() => hupped = true,
                    }
                }
                while changed.try_recv().is_ok() {}
                (hupped, None)
            }
            Some(()) = certs.rx.recv() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                while certs.rx.try_recv().is_ok() {}
                (true, Some("certificates"))
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            Some(()) = upgraded.recv() => {
                // The new process owns the admin socket now: stop answering on it, so probes
                // see the new process only.
                let _ = admin_stop.send(true);
                break;
            }
            _ = usr1.recv() => {
                // logrotate renamed the access log: the writer opens a fresh file at the path.
                control.observe.reopen_logs();
                continue;
            }
        };
        let c = control.clone();
        // Compiling may read certificate files: keep it off the runtime's worker threads.
        let r = tokio::task::spawn_blocking(move || c.reload(force, origin)).await;
        match r {
            Ok(Ok(v)) => tracing::debug!(version = v, "reload done"),
            Ok(Err(errors)) => {
                for d in &errors.0 {
                    tracing::error!(error = %d, "reload rejected; keeping the running configuration");
                }
            }
            Err(e) => tracing::error!(error = %e, "reload task failed"),
        }
        certs.refresh(&control);
    }

    let drain = control.snapshot().drain_timeout;
    tracing::info!(open = control.tracker.open(), timeout = ?drain, "draining");
    admin_state
        .ready
        .store(false, std::sync::atomic::Ordering::Release);
    control.stop();
    // Before draining: another instance can lead the fleet's rollouts while this one drains.
    let c = control.clone();
    let _ = tokio::task::spawn_blocking(move || c.rollout_release()).await;
    if tokio::time::timeout(drain, control.tracker.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            open = control.tracker.open(),
            "drain timeout reached; closing remaining connections"
        );
    }
    // The access log writer runs on its own thread: let it write the last requests' lines.
    let c = control.clone();
    let _ = tokio::task::spawn_blocking(move || c.observe.flush_wait()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Watches the certificate files the running configuration reads; re-created when that set changes.
struct CertWatch {
    files: Vec<PathBuf>,
    _watcher: Option<notify::RecommendedWatcher>,
    rx: mpsc::Receiver<()>,
}

impl CertWatch {
    fn new(control: &Control) -> Self {
        let files = control.certificate_files();
        Self::watch(files)
    }

    fn watch(files: Vec<PathBuf>) -> Self {
        if files.is_empty() {
            return CertWatch {
                files,
                _watcher: None,
                rx: mpsc::channel(1).1,
            };
        }
        match strait_control::watch::watch_files(&files) {
            Ok((w, rx)) => CertWatch {
                files,
                _watcher: Some(w),
                rx,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch certificate files; reload with SIGHUP after rotating them");
                CertWatch {
                    files,
                    _watcher: None,
                    rx: mpsc::channel(1).1,
                }
            }
        }
    }

    fn refresh(&mut self, control: &Control) {
        let files = control.certificate_files();
        if files != self.files {
            *self = Self::watch(files);
        }
    }
}

type Sockets = Vec<(String, std::net::SocketAddr, std::net::TcpListener)>;

fn clone_all(sockets: &Sockets) -> Sockets {
    sockets
        .iter()
        .filter_map(|(n, a, s)| s.try_clone().ok().map(|s| (n.clone(), *a, s)))
        .collect()
}

/// Builds a runtime with I/O and timers; on failure says why and gives the exit code.
pub(crate) fn runtime(mut b: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    b.enable_all().build().map_err(|e| {
        eprintln!("cannot start runtime: {e}");
        ExitCode::from(1)
    })
}

//! `strait run`: build the runtime, compile the first snapshot, bind listeners and admin, handle signals, drain.

use std::{process::ExitCode, sync::Arc, time::Duration};

use strait_admin::AdminState;
use strait_config::Config;
use strait_control::{control::Source, Control};
use strait_proxy::server::{self, Tracker};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::watch,
};

use crate::cli::{LogFormat, RunArgs};

/// Runs the gateway until SIGTERM/SIGINT, then drains and exits 0.
pub fn run(args: RunArgs) -> ExitCode {
    init_logging(args.log_format);
    let (config, source) = match &args.config {
        Some(path) => match strait_config::load_file(path) {
            Ok(l) => {
                let shadowed = strait_control::shadow::shadow_warnings(&l.config);
                for w in l.warnings.iter().chain(&shadowed) {
                    tracing::warn!(%w, "configuration warning");
                }
                (l.config, Source::File(path.clone()))
            }
            Err(errors) => {
                for d in &errors.0 {
                    eprintln!("{d}");
                }
                return ExitCode::from(1);
            }
        },
        None => {
            match strait_config::parse("<embedded default>", strait_config::DEFAULT_CONFIG, None) {
                Ok(l) => (l.config, Source::Embedded),
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let threads = match config.server.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.worker_threads(threads).enable_all();
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(serve(config, source))
}

async fn serve(config: Config, source: Source) -> ExitCode {
    let admin_addr = config.admin.listen;
    let watched = match &source {
        Source::File(p) => Some(p.clone()),
        Source::Embedded => None,
    };
    let control = match Control::new(config, source) {
        Ok(c) => c,
        Err(errors) => {
            for d in &errors.0 {
                eprintln!("{d}");
            }
            return ExitCode::from(1);
        }
    };
    let snap = control.snapshot();
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker = Arc::new(Tracker::default());

    let mut bound = Vec::new();
    for spec in &snap.listeners {
        match server::bind(spec.addr) {
            Ok(l) => {
                let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                tracing::info!(listener = %spec.name, address = %addr, "listener bound");
                bound.push((spec.clone(), l));
            }
            Err(e) => {
                tracing::error!(listener = %spec.name, address = %spec.addr, error = %e, "cannot bind listener");
                return ExitCode::from(1);
            }
        }
    }
    let admin_state = AdminState::new(control.metrics.clone());
    let admin = match server::bind(admin_addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %admin_addr, error = %e, "cannot bind admin listener");
            return ExitCode::from(1);
        }
    };
    let addr = admin
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(address = %addr, "admin bound");
    tokio::spawn(strait_admin::serve(admin, admin_state.clone()));

    for (spec, l) in bound {
        tokio::spawn(server::serve_listener(
            control.shared.clone(),
            spec,
            l,
            stop_rx.clone(),
            tracker.clone(),
        ));
    }
    control.start_health_checks();
    let shared = control.shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            shared.pools.evict_idle();
        }
    });

    let (Ok(mut hup), Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::from(1);
    };
    let (_watcher, mut changed) = match &watched {
        Some(path) => match strait_control::watch::watch_file(path) {
            Ok((w, rx)) => (Some(w), rx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the configuration file; reload with SIGHUP");
                (None, tokio::sync::mpsc::channel(1).1)
            }
        },
        None => (None, tokio::sync::mpsc::channel(1).1),
    };
    loop {
        let reload = tokio::select! {
            _ = hup.recv() => true,
            Some(()) = changed.recv() => {
                // Let a burst of writes settle briefly, then reload once; a SIGHUP cuts the wait.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = hup.recv() => {}
                }
                while changed.try_recv().is_ok() {}
                true
            }
            _ = term.recv() => false,
            _ = int.recv() => false,
            _ = usr1.recv() => {
                // logrotate renamed the access log: the writer opens a fresh file at the path.
                control.observe.reopen_logs();
                continue;
            }
        };
        if !reload {
            break;
        }
        let c = control.clone();
        // Compiling may read certificate files: keep it off the runtime's worker threads.
        let r = tokio::task::spawn_blocking(move || c.reload()).await;
        match r {
            Ok(Ok(v)) => tracing::info!(version = v, "reload applied"),
            Ok(Err(errors)) => {
                for d in &errors.0 {
                    tracing::error!(error = %d, "reload rejected; keeping the running configuration");
                }
            }
            Err(e) => tracing::error!(error = %e, "reload task failed"),
        }
    }

    let drain = control.snapshot().drain_timeout;
    tracing::info!(open = tracker.open(), timeout = ?drain, "draining");
    admin_state
        .ready
        .store(false, std::sync::atomic::Ordering::Release);
    let _ = stop_tx.send(true);
    control.stop_health_checks();
    if tokio::time::timeout(drain, tracker.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.open(),
            "drain timeout reached; closing remaining connections"
        );
    }
    // The access log writer runs on its own thread: let it write the last requests' lines.
    let c = control.clone();
    let _ = tokio::task::spawn_blocking(move || c.observe.flush_wait()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRAIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

//! `strait config push` and `strait config pull`: seed etcd from a file, and print what etcd holds; and reading what an etcd bootstrap serves, for `strait routes`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use strait_config::provider::{Bootstrap, EtcdSettings, EtcdTls, Password, PASSWORD_ENV};
use strait_config::Config;
use strait_control::etcd::{self, layout};

use crate::cli::{ConfigCommand, EtcdArgs, PushArgs};

/// How long the commands wait for etcd: longer than a server's start, as a person is waiting.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a `strait config` subcommand.
pub fn config(cmd: ConfigCommand) -> ExitCode {
    let rt = match crate::run::runtime(tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = match cmd {
        ConfigCommand::Push(args) => match checked_values(&args) {
            Some(values) => rt.block_on(push(&args, &values)),
            None => return ExitCode::from(1),
        },
        ConfigCommand::Pull(args) => rt.block_on(pull(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The configuration the etcd bootstrap file at `path` serves, read from etcd with its
/// settings and within its `dial_timeout`; `None` (the reason printed) when etcd cannot be
/// read or holds an invalid configuration.
pub fn served_from_etcd(path: &Path, bootstrap: &Bootstrap) -> Option<Config> {
    let rt = crate::run::runtime(tokio::runtime::Builder::new_current_thread()).ok()?;
    match rt.block_on(etcd::read_served(bootstrap, path)) {
        Ok(served) => {
            eprintln!(
                "{}: etcd bootstrap: routes read from {} under {} at revision {}",
                path.display(),
                bootstrap.etcd.endpoints.join(","),
                bootstrap.etcd.prefix,
                served.revision
            );
            // As `validate` prints them, naming the key (`etcd:/strait/routes/api:1:1: ...`).
            for w in &served.warnings {
                let (src, line, col) = (&w.source, w.line, w.column);
                eprintln!("{src}:{line}:{col}: warning: {}", w.message);
            }
            Some(served.config)
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            None
        }
    }
}

/// The file's keys, after the checks `strait validate` makes; `None` (diagnostics printed) when invalid.
fn checked_values(args: &PushArgs) -> Option<layout::Values> {
    crate::cli::load_checked(&args.config)?;
    // What reaches etcd is served as stored: references are expanded here, from the
    // environment of `config push`.
    let source = args.config.display().to_string();
    let read = strait_config::read_file(&args.config)
        .and_then(|t| strait_config::env::expand_env(&source, &t));
    let text = match read {
        Ok(t) => t.text,
        Err(errors) => {
            eprintln!("{errors}");
            return None;
        }
    };
    match layout::split(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("{}: {e}", args.config.display());
            None
        }
    }
}

async fn push(args: &PushArgs, values: &layout::Values) -> Result<(), String> {
    let settings = settings(&args.etcd)?;
    let client = connect(&settings).await?;
    let (revision, puts, deletes) =
        etcd::push(&client, &settings.prefix, values, args.replace).await?;
    if puts == 0 && deletes == 0 {
        println!(
            "{}: etcd under {} already holds this configuration",
            args.config.display(),
            settings.prefix
        );
    } else {
        println!(
            "{}: {puts} keys written, {deletes} deleted under {} (revision {revision})",
            args.config.display(),
            settings.prefix
        );
    }
    Ok(())
}

async fn pull(args: &EtcdArgs) -> Result<(), String> {
    let settings = settings(args)?;
    let client = connect(&settings).await?;
    let (values, revision) = etcd::read(&client, &settings.prefix).await?;
    let assembled = layout::assemble(&settings.prefix, "", &values).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        lines.join("\n")
    })?;
    println!("# etcd {} at revision {revision}", settings.prefix);
    print!("{}", assembled.text);
    Ok(())
}

async fn connect(settings: &EtcdSettings) -> Result<etcd::Client, String> {
    match tokio::time::timeout(DIAL_TIMEOUT, etcd::client(settings)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "etcd at {} did not answer within {DIAL_TIMEOUT:?}",
            settings.endpoints.join(",")
        )),
    }
}

/// Settings from the flags, checked the way `config:` in a file is.
fn settings(args: &EtcdArgs) -> Result<EtcdSettings, String> {
    let prefix = &args.prefix;
    if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.len() < 2 {
        return Err(format!(
            "--prefix `{prefix}` must start and end with `/` (e.g. /strait/)"
        ));
    }
    let readable = |p: &Path| {
        if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{}: not found", p.display()))
        }
    };
    let tls = if args.ca.is_some() || args.cert.is_some() {
        Some(EtcdTls {
            ca: args.ca.as_deref().map(readable).transpose()?,
            cert: args.cert.as_deref().map(readable).transpose()?,
            key: args.key.as_deref().map(readable).transpose()?,
        })
    } else {
        None
    };
    Ok(EtcdSettings {
        endpoints: args.endpoints.clone(),
        prefix: prefix.clone(),
        username: args.user.clone(),
        password: args
            .user
            .as_ref()
            .map(|_| Password::Env(PASSWORD_ENV.into())),
        tls,
        dial_timeout: DIAL_TIMEOUT,
        cache: None,
    })
}

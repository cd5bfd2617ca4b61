//! Command-line parsing and the offline commands (`validate`, `routes`).

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use strait_config::{Config, PathMatch, RouteAction, ValueMatch};

/// Strait: API gateway and service proxy.
#[derive(Parser)]
#[command(name = "strait", version = crate::version::LONG, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve a configuration: -c FILE, else $STRAIT_CONFIG, else ./strait.yaml, else the embedded default.
    Run(RunArgs),
    /// Check a configuration: prints FILE:LINE:COL: reason per error, exits 1 on errors.
    Validate(ValidateArgs),
    /// Print the compiled route table in match order.
    Routes(FileArgs),
    /// Work with a configuration stored in etcd (`config push`, `config pull`).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version and the commit it was built from.
    Version,
    /// Print a shell completion script: `strait completions bash > /etc/bash_completion.d/strait`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `strait completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "strait", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// `strait config ...`: move a configuration between a file and etcd.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE (as `strait validate` does) and write its resources to etcd, one key each.
    Push(PushArgs),
    /// Print the configuration stored in etcd as one YAML document.
    Pull(EtcdArgs),
}

/// Arguments of `config push`.
#[derive(clap::Args)]
pub struct PushArgs {
    /// Configuration file to push (its `admin:` and `config:` sections stay local and are not pushed).
    #[arg(short, long)]
    pub config: PathBuf,
    /// Also delete keys under the prefix that FILE does not have (in the same transaction).
    #[arg(long)]
    pub replace: bool,
    /// Where etcd is.
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// How to reach etcd from the command line.
#[derive(clap::Args)]
pub struct EtcdArgs {
    /// etcd client URL; repeat for several members.
    #[arg(long = "etcd", required = true, value_name = "URL")]
    pub endpoints: Vec<String>,
    /// Key prefix the configuration lives under.
    #[arg(long, default_value = "/strait/")]
    pub prefix: String,
    /// etcd user; the password is read from $STRAIT_ETCD_PASSWORD.
    #[arg(long)]
    pub user: Option<String>,
    /// CA bundle (PEM) for https:// endpoints.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with --key.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client certificate's private key (PEM), with --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
}

/// Arguments of `run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Configuration file, reloaded when it changes and on SIGHUP [default: $STRAIT_CONFIG, else ./strait.yaml, else the embedded default].
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Process log format on stderr (text is coloured only on a terminal, and not with NO_COLOR set).
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Process log filter: a level (error, warn, info, debug, trace) or directives such as
    /// `info,strait_proxy=debug` [default: $STRAIT_LOG, else $RUST_LOG, else info].
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Unix socket for zero-downtime upgrades: a new process started with the same path takes
    /// over the listening sockets of the one serving there, which then drains and exits.
    #[arg(long, value_name = "PATH")]
    pub upgrade_socket: Option<PathBuf>,
    /// A directory that configurations from the admin API or etcd may name files in
    /// (certificates, keys, CAs, logs); repeatable. Default: the config file's directory.
    #[arg(long = "allow-dir", value_name = "DIR")]
    pub allow_dirs: Vec<PathBuf>,
}

/// Process log formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Arguments of `validate`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The file to check.
    #[command(flatten)]
    pub file: FileArgs,
    /// Print the effective configuration on stdout instead of `ok`: every setting with its
    /// value, defaults filled in, secrets left out (YAML that validates to the same config).
    #[arg(long)]
    pub print: bool,
}

/// A configuration file argument.
#[derive(clap::Args)]
pub struct FileArgs {
    /// Configuration file [default: $STRAIT_CONFIG, else ./strait.yaml].
    #[arg(short, long)]
    pub config: Option<PathBuf>,
}

impl FileArgs {
    /// The file to read (`-c`, `$STRAIT_CONFIG` or `./strait.yaml`); says why and gives the
    /// exit code when there is none.
    pub fn path(self) -> Result<PathBuf, ExitCode> {
        match crate::source::ConfigSource::from_process(self.config).path() {
            Some(p) => Ok(p.to_path_buf()),
            None => {
                eprintln!("strait: {}", crate::source::NONE_GIVEN);
                Err(ExitCode::from(2))
            }
        }
    }
}

/// Loads and compiles `path` the way `run` would, printing diagnostics; `None` on errors.
pub fn load_checked(path: &std::path::Path) -> Option<Config> {
    let loaded = match strait_config::load_file(path) {
        Ok(l) => l,
        Err(errors) => {
            for d in &errors.0 {
                eprintln!("{d}");
            }
            return None;
        }
    };
    let mut warnings = loaded.warnings.clone();
    warnings.extend(strait_control::shadow::shadow_warnings(&loaded.config));
    warnings.extend(strait_control::certs::expiry_warnings(
        &loaded.config,
        std::time::SystemTime::now(),
    ));
    warnings.sort_by_key(|d| (d.line, d.column));
    for w in &warnings {
        eprintln!(
            "{}:{}:{}: warning: {}",
            w.source, w.line, w.column, w.message
        );
    }
    // Compiling catches what only building finds (certificate contents, for example).
    let live = strait_core::LiveState::new();
    let metrics = std::sync::Arc::new(strait_observe::Metrics::new());
    if let Err(errors) = strait_control::compile(&loaded.config, 0, &live, &metrics) {
        for d in &errors.0 {
            eprintln!("{d}");
        }
        return None;
    }
    Some(loaded.config)
}

/// `strait validate` (`print`: the effective configuration instead of `ok`).
pub fn validate(path: &std::path::Path, print: bool) -> ExitCode {
    // An etcd bootstrap holds no listeners or routes; those are checked when they are pushed.
    match crate::providers::bootstrap_of(path) {
        Ok(Some(_)) if print => {
            eprintln!(
                "{}: an etcd bootstrap is not a whole configuration; read the effective one from a running instance (GET /api/config?effective=true)",
                path.display()
            );
            return ExitCode::from(1);
        }
        Ok(Some(b)) => {
            println!(
                "{}: ok (etcd bootstrap: the configuration is read from {} under {})",
                path.display(),
                b.etcd.endpoints.join(","),
                b.etcd.prefix
            );
            return ExitCode::SUCCESS;
        }
        Ok(None) => {}
        Err(code) => return code,
    }
    match load_checked(path) {
        Some(config) if print => {
            print!("{}", strait_config::effective_yaml(&config));
            ExitCode::SUCCESS
        }
        Some(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        None => ExitCode::from(1),
    }
}

/// `strait routes`: one line per route in match order (for an etcd bootstrap, the routes
/// etcd holds).
pub fn routes(path: &std::path::Path) -> ExitCode {
    let cfg = match crate::providers::bootstrap_of(path) {
        Ok(Some(b)) => crate::push::served_from_etcd(path, &b),
        Ok(None) => load_checked(path),
        Err(code) => return code,
    };
    let Some(cfg) = cfg else {
        return ExitCode::from(1);
    };
    println!(
        "{:<5} {:<24} {:<16} {:>8}  {:<48} ACTION",
        "ORDER", "ROUTE", "LISTENERS", "PRIORITY", "MATCH"
    );
    for (n, i) in cfg.route_order().into_iter().enumerate() {
        let r = &cfg.routes[i];
        let listeners = r
            .listeners
            .as_ref()
            .map_or_else(|| "*".to_string(), |l| l.join(","));
        let action = match &r.action {
            RouteAction::Forward { backends } => match backends.as_slice() {
                [one] => format!("upstream {}", one.upstream),
                many => {
                    let parts: Vec<String> = many
                        .iter()
                        .map(|b| format!("{}={}", b.upstream, b.weight))
                        .collect();
                    format!("upstreams {}", parts.join(","))
                }
            },
            RouteAction::Respond(resp) => format!("respond {}", resp.status.as_u16()),
            RouteAction::Redirect(rd) => format!("redirect {}", rd.status.as_u16()),
        };
        let action = match &r.split {
            Some(sp) => format!("{action} {}", split_summary(sp)),
            None => action,
        };
        println!(
            "{:<5} {:<24} {:<16} {:>8}  {:<48} {}",
            n + 1,
            r.name,
            listeners,
            r.priority,
            match_summary(r),
            action
        );
    }
    ExitCode::SUCCESS
}

/// A route's split in one word group: how many overrides, and the sticky key.
fn split_summary(s: &strait_config::Split) -> String {
    let mut parts = Vec::new();
    if !s.overrides.is_empty() {
        parts.push(format!("overrides={}", s.overrides.len()));
    }
    if let Some(k) = &s.sticky {
        parts.push(format!("sticky={k}"));
    }
    format!("split({})", parts.join(","))
}

fn match_summary(r: &strait_config::Route) -> String {
    let m = &r.matcher;
    let mut parts = Vec::new();
    if !m.hosts.is_empty() {
        parts.push(format!("host={}", m.hosts.join("|")));
    }
    match &m.path {
        PathMatch::Any => {}
        PathMatch::Exact(p) => parts.push(format!("path={p}")),
        PathMatch::Prefix(p) => parts.push(format!("prefix={p}")),
        PathMatch::Template(p) => parts.push(format!("template={p}")),
        PathMatch::Regex(p) => parts.push(format!("regex={p}")),
    }
    if !m.methods.is_empty() {
        let ms: Vec<&str> = m.methods.iter().map(|x| x.as_str()).collect();
        parts.push(format!("methods={}", ms.join(",")));
    }
    let value = |v: &ValueMatch| match v {
        ValueMatch::Exact(s) => s.clone(),
        ValueMatch::Regex(s) => format!("~{s}"),
        ValueMatch::Present(b) => format!("present={b}"),
    };
    for (n, v) in &m.headers {
        parts.push(format!("header:{n}={}", value(v)));
    }
    for (n, v) in &m.query {
        parts.push(format!("query:{n}={}", value(v)));
    }
    if !m.client_cert.is_empty() {
        parts.push(format!("client_cert={}", m.client_cert.join(",")));
    }
    if parts.is_empty() {
        "*".into()
    } else {
        parts.join(" ")
    }
}

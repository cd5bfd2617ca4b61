//! The strait binary: CLI (run, validate, routes, config push/pull, version), process wiring and signals.
#![forbid(unsafe_code)]

mod cli;
mod logging;
mod nofile;
mod providers;
mod push;
mod run;
mod source;
mod upgrade;
mod version;

use std::process::ExitCode;

use clap::Parser;

// glibc's and musl's allocators cost several percent of CPU per request and fragment under
// connection churn; mimalloc measured faster on the benchmark (see bench/RESULTS.md). It is
// built without transparent huge pages: with THP its arenas doubled the idle RSS (8.5 → 16 MB).
#[global_allocator]
static GLOBAL: strait_profile::heap::Allocator = strait_profile::heap::Allocator;

fn main() -> ExitCode {
    strait_profile::heap::return_freed_memory_promptly();
    let args = cli::Cli::parse();
    match args.command {
        cli::Command::Run(a) => run::run(a),
        cli::Command::Validate(a) => {
            let print = a.print;
            a.file
                .path()
                .map_or_else(|c| c, |p| cli::validate(&p, print))
        }
        cli::Command::Routes(a) => a.path().map_or_else(|c| c, |p| cli::routes(&p)),
        cli::Command::Config(c) => push::config(c),
        cli::Command::Completions { shell } => cli::completions(shell),
        cli::Command::Version => {
            println!("strait {}", version::LONG);
            ExitCode::SUCCESS
        }
    }
}

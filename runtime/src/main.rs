//! The `hookd` binary: parses the command line and dispatches to the command modules.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Logs go to stderr: human-readable by default, one JSON object per line with
/// `HOOKD_LOG_FORMAT=json`. `HOOKD_LOG` sets the filter (default `info` for the server,
/// `warn` for one-shot commands), e.g. `HOOKD_LOG=hookd=debug`. Colour only when stderr is a
/// terminal (and `NO_COLOR` is unset): a log file or a pipe gets plain text.
fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    if cli::json_logs() {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    // Everything hookd creates (the database, key files, compiled hooks) is its user's alone.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let args = cli::Cli::parse();
    init_logging(if args.is_server() { "info" } else { "warn" });
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hookd: {error:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}

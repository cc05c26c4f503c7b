//! Command-line types (clap) and dispatch. Each command's action lives in its own module.

mod hooks_test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit status for a command that could not do its job (bad arguments, unreadable files,
/// a module hookd refuses).
pub const EXIT_USAGE: u8 = 2;

/// hookd: an OAuth 2.0 token server whose token hooks run as sandboxed WebAssembly
/// components.
#[derive(Debug, Parser)]
#[command(name = "hookd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with hook modules.
    #[command(subcommand)]
    Hooks(HooksCommand),
}

#[derive(Debug, Subcommand)]
enum HooksCommand {
    /// Run a hook on an event locally, with no server, and print what it did.
    ///
    /// Prints the resulting scope and claims (or the denial or failure), the hook's log, the
    /// fuel it burned and how long it took. Exit status: 0 when the hook ran to an answer
    /// (allowed or denied), 1 when it failed (trap, fuel, memory, time, invalid output),
    /// 2 when the module or event could not be used.
    #[command(after_help = "\
Examples:
  hookd hooks test seed.wasm --event guest-examples/events/credentials-exchange.json
  hookd hooks test seed.wasm --event event.json --fuel 1000000 --timeout-ms 50 --json")]
    Test(HooksTestArgs),
}

/// Arguments of `hookd hooks test`.
#[derive(Debug, Args)]
pub struct HooksTestArgs {
    /// The hook component (`.wasm`).
    pub module: PathBuf,
    /// The event as JSON: `{"client": {...}, "scope": [...], "audience": "...",
    /// "context": {...}}`, the shape the token endpoint passes.
    #[arg(long)]
    pub event: PathBuf,
    /// Fuel limit for the call (default 100000000).
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Memory limit in bytes (default 67108864).
    #[arg(long)]
    pub memory_bytes: Option<u64>,
    /// Wall-clock limit in milliseconds (default 1000).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
    /// Where compiled hooks are cached between runs.
    #[arg(long, env = "HOOKD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the module even if a cached artifact exists, and cache nothing.
    #[arg(long)]
    pub no_cache: bool,
}

/// Runs the parsed command, returning the process's exit status.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Hooks(HooksCommand::Test(args)) => hooks_test::run(args),
    }
}

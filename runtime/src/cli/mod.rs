//! Command-line types (clap) and dispatch. Each command's action lives in its own module.

mod demo;
mod hooks_test;
mod serve;

use std::net::SocketAddr;
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
    /// Run the token server.
    #[command(after_help = "\
Examples:
  hookd serve --data-dir /var/lib/hookd --listen 0.0.0.0:8080 --issuer https://auth.example.com/
  HOOKD_DATA_DIR=./data hookd serve")]
    Serve(ServeArgs),
    /// Run a token server with a demo client, API, grant and the given hook enabled, and
    /// print a curl command that gets a token.
    #[command(after_help = "\
Example:
  hookd demo --hook guest-examples/target/wasm32-wasip2/release/seed.wasm")]
    Demo(DemoArgs),
    /// Work with hook modules.
    #[command(subcommand)]
    Hooks(HooksCommand),
}

/// Where and how the server runs.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "HOOKD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Issuer URL: the tokens' `iss` and the base of the discovery documents
    /// (default: http://<listen>/).
    #[arg(long, env = "HOOKD_ISSUER")]
    pub issuer: Option<String>,
}

/// Arguments of `hookd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory: the store, signing keys and the compiled-hook cache.
    #[arg(long, env = "HOOKD_DATA_DIR", default_value = "hookd-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `hookd demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The hook to enable (a component for the credentials-exchange world).
    #[arg(long)]
    pub hook: PathBuf,
    /// Data directory for the demo (created and seeded on first use).
    #[arg(long, default_value = "hookd-demo")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
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

impl Cli {
    /// Whether the command runs a long-lived server (which logs at `info` by default).
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Demo(_))
    }
}

/// Runs the parsed command, returning the process's exit status.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Hooks(HooksCommand::Test(args)) => hooks_test::run(args),
    }
}

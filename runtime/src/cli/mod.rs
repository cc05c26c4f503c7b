//! Command-line types (clap) and dispatch. Each command's action lives in its own module.

mod admin;
mod api;
mod demo;
mod hook_source;
mod hooks_test;
mod replay;
mod serve;
mod terminal;

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
    /// Work with hooks: test locally, deploy, enable, roll back, secrets, logs.
    Hooks {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: HooksCommand,
    },
    /// Manage applications (OAuth clients).
    Clients {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Manage APIs (resource servers).
    Apis {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: ApisCommand,
    },
    /// Manage client grants.
    Grants {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: GrantsCommand,
    },
    /// Manage signing keys.
    Keys {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// See the nodes that share the server's database.
    Cluster {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

/// Whether logs are JSON lines (`HOOKD_LOG_FORMAT=json`): then nothing else may be written
/// to stderr, or a log shipper would meet a line that is not JSON.
pub(crate) fn json_logs() -> bool {
    std::env::var("HOOKD_LOG_FORMAT").is_ok_and(|format| format == "json")
}

/// Where and how the server runs.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "HOOKD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Issuer URL: the tokens' `iss` and the base of the discovery documents. A new data
    /// directory takes it (default: http://<the address listened on>/) and keeps it; see
    /// --change-issuer.
    #[arg(long, env = "HOOKD_ISSUER")]
    pub issuer: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`) on this address, e.g. 127.0.0.1:9090. Off
    /// unless given; keep it private.
    #[arg(long, env = "HOOKD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Arguments of `hookd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory: the store, signing keys and the compiled-hook cache.
    #[arg(long, env = "HOOKD_DATA_DIR", default_value = "hookd-data")]
    pub data_dir: PathBuf,
    /// Where compiled hooks are cached (default: DATA_DIR/compiled). Servers of the same
    /// hookd version may share one: a JavaScript hook then compiles once, not once each.
    #[arg(long, env = "HOOKD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Move the data directory to the issuer given with --issuer. The Management API's
    /// audience, its grants and admin.json follow; every token issued before stops verifying.
    /// Without it, an issuer other than the stored one refuses to start.
    #[arg(long, requires = "issuer")]
    pub change_issuer: bool,
    /// Keep the store in this PostgreSQL database (`postgres://user:password@host/db`)
    /// instead of sled in the data directory, so that several nodes can share it. Needs the
    /// shared secrets key (HOOKD_SECRETS_KEY or --secrets-key-file); the data directory then
    /// holds only the compiled-hook cache.
    #[arg(long, env = "HOOKD_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// With --database: refuse tokens (503) once this node has not heard from the database
    /// for this many seconds, instead of serving from what it last knew (the default).
    #[arg(
        long,
        env = "HOOKD_MAX_STALENESS",
        requires = "database",
        value_name = "SECONDS"
    )]
    pub max_staleness: Option<u64>,
    /// With --database: how many revisions of the change feed to keep. A node further behind
    /// than that (stopped, or cut off from the database) reloads everything when it returns.
    #[arg(
        long,
        env = "HOOKD_CHANGE_HISTORY",
        requires = "database",
        value_name = "REVISIONS",
        default_value_t = hookd::store::postgres::CHANGE_HISTORY,
        value_parser = clap::value_parser!(i64).range(1..)
    )]
    pub change_history: i64,
    /// With --database: CA certificates (PEM) that may sign the database's TLS certificate,
    /// besides the system's. TLS follows the URL's sslmode (prefer, the default, uses it when
    /// the server offers it; require insists); the certificate is always verified.
    #[arg(long, env = "HOOKD_DATABASE_CA_FILE", requires = "database")]
    pub database_ca_file: Option<PathBuf>,
    /// This node's name in `hookd cluster status` (default: host name and port).
    #[arg(long, env = "HOOKD_NODE_NAME")]
    pub node_name: Option<String>,
    /// Read the secrets key (base64url of 32 bytes) from this file instead of
    /// HOOKD_SECRETS_KEY.
    #[arg(long, env = "HOOKD_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
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
pub(crate) enum HooksCommand {
    /// Run a hook on an event locally, with no server, and print what it did.
    ///
    /// Prints the resulting scope and claims (or the denial or failure), the hook's log, the
    /// fuel it burned and how long it took. Exit status: 0 when the hook ran to an answer
    /// (allowed or denied), 1 when it failed (trap, fuel, memory, time, invalid output),
    /// 2 when the module or event could not be used.
    #[command(after_help = "\
Examples:
  hookd hooks test seed.wasm --event guest-examples/events/credentials-exchange.json
  hookd hooks test seed.wasm --event event.json --fuel 1000000 --timeout-ms 50 --json
  hookd hooks test hook.js --event guest-examples/events/credentials-exchange.json")]
    Test(HooksTestArgs),
    /// Upload a module as a hook's new version (creating the hook if needed); it runs at once
    /// if the hook is enabled.
    #[command(after_help = "\
Examples:
  hookd hooks deploy seed.wasm --name add-claims --enable
  hookd hooks deploy hook.js --name add-claims --enable
  hookd hooks deploy seed.wasm --name add-claims --server https://auth.example.com --data-dir /var/lib/hookd")]
    Deploy {
        /// The component (`.wasm`), or a JavaScript or TypeScript hook (`.js`, `.mjs`, `.cjs`,
        /// `.ts`), which is built with the JavaScript SDK first (needs Node.js).
        module: PathBuf,
        /// The hook's name.
        #[arg(long)]
        name: String,
        /// Enable it (disabling the trigger's other hooks).
        #[arg(long)]
        enable: bool,
        /// The extensibility point.
        #[arg(long, default_value = "credentials-exchange")]
        trigger: String,
    },
    /// List hooks.
    #[command(after_help = "Example:\n  hookd hooks list --json")]
    List,
    /// List a hook's versions.
    #[command(after_help = "Example:\n  hookd hooks versions add-claims")]
    Versions {
        /// Hook name or id.
        hook: String,
    },
    /// Enable a hook (its active version runs for every token request).
    #[command(after_help = "Example:\n  hookd hooks enable add-claims")]
    Enable {
        /// Hook name or id.
        hook: String,
    },
    /// Disable a hook.
    #[command(after_help = "Example:\n  hookd hooks disable add-claims")]
    Disable {
        /// Hook name or id.
        hook: String,
    },
    /// Make an earlier version the active one.
    #[command(after_help = "Example:\n  hookd hooks rollback add-claims --version 15a2961503f9...")]
    Rollback {
        /// Hook name or id.
        hook: String,
        /// The version's sha256 (see `hookd hooks versions`).
        #[arg(long)]
        version: String,
    },
    /// Show one hook: its state, versions, settings and canary.
    #[command(after_help = "Example:\n  hookd hooks get add-claims --json")]
    Get {
        /// Hook name or id.
        hook: String,
    },
    /// Run another version for a share of clients beside the active one (chosen by client
    /// id, so a client keeps its version), withdrawn automatically when it fails more often
    /// than the active version; or withdraw the running canary.
    #[command(after_help = "\
Examples:
  hookd hooks canary add-claims 15a2961503f9... --percent 10
  hookd hooks canary add-claims 15a2961503f9... --percent 25 --min-calls 50 --margin 2
  hookd hooks canary add-claims --withdraw")]
    Canary {
        /// Hook name or id.
        hook: String,
        /// The version's sha256 (see `hookd hooks versions`).
        #[arg(required_unless_present = "withdraw")]
        version: Option<String>,
        /// The share of clients that run it, 1 to 100.
        #[arg(long, required_unless_present = "withdraw")]
        percent: Option<u8>,
        /// Calls the canary makes before it is judged (default 20).
        #[arg(long)]
        min_calls: Option<u32>,
        /// How many percentage points more often than the active version it may fail
        /// (default 5).
        #[arg(long)]
        margin: Option<u8>,
        /// How many recent calls of each version are compared (default 200).
        #[arg(long)]
        window: Option<u32>,
        /// Withdraw the running canary: every client runs the active version.
        #[arg(long, conflicts_with_all = ["version", "percent", "min_calls", "margin", "window"])]
        withdraw: bool,
    },
    /// Run another version in shadow for a share of requests: after each sampled token is
    /// decided, the candidate runs on the same event and the hook log records where it
    /// decided differently. Clients never see its answers.
    #[command(after_help = "\
Examples:
  hookd hooks shadow add-claims 15a2961503f9... --percent 20
  hookd hooks logs add-claims --json | jq 'select(.shadow)'
  hookd hooks shadow add-claims --stop")]
    Shadow {
        /// Hook name or id.
        hook: String,
        /// The version's sha256 (see `hookd hooks versions`).
        #[arg(required_unless_present = "stop")]
        version: Option<String>,
        /// The share of requests sampled, 1 to 100.
        #[arg(long, required_unless_present = "stop")]
        percent: Option<u8>,
        /// Stop the shadow run.
        #[arg(long, conflicts_with_all = ["version", "percent"])]
        stop: bool,
    },
    /// Make the running canary's version the active one, for every client.
    #[command(after_help = "Example:\n  hookd hooks promote add-claims")]
    Promote {
        /// Hook name or id.
        hook: String,
    },
    /// Run a recorded invocation again and show both outcomes side by side: on the server
    /// against a version of the hook (default: the active one), or locally against a module
    /// file, to reproduce a production failure and check a fix before deploying it. The last
    /// 200 invocations of each hook are kept, in memory, on the node that ran them; their
    /// secret values are redacted (a server replay puts the hook's secrets back; a local one
    /// takes `--secret`).
    #[command(after_help = "\
Examples:
  hookd hooks replay 6f1c9a0e-...                       # the active version, on the server
  hookd hooks replay 6f1c9a0e-... --version 15a2961503f9...
  hookd hooks replay 6f1c9a0e-... --module fixed.js --secret API_TOKEN=abc")]
    Replay {
        /// The token request's id (`x-request-id`, or REQUEST ID in `hookd hooks logs`).
        request_id: String,
        /// The hook (name or id); without it every hook is searched.
        #[arg(long)]
        hook: Option<String>,
        /// Run this module (`.wasm` or a JavaScript hook) locally instead.
        #[arg(long, conflicts_with = "version")]
        module: Option<PathBuf>,
        /// Run this version of the hook on the server.
        #[arg(long)]
        version: Option<String>,
        /// `NAME=VALUE` secrets for a local run (recorded values are redacted).
        #[arg(long = "secret", requires = "module")]
        secrets: Vec<String>,
    },
    /// Show a hook's recent invocations, or follow new ones as they happen.
    #[command(
        after_help = "Examples:\n  hookd hooks logs add-claims\n  hookd hooks logs add-claims --follow --json"
    )]
    Logs {
        /// Hook name or id.
        hook: String,
        /// Keep printing new invocations until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Manage a hook's secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// Add or change secrets.
    #[command(
        after_help = "Example:\n  hookd hooks secrets set add-claims KEY_ID=k-2026 API_TOKEN=abc"
    )]
    Set {
        /// Hook name or id.
        hook: String,
        /// `NAME=VALUE` pairs.
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Remove secrets.
    #[command(after_help = "Example:\n  hookd hooks secrets unset add-claims API_TOKEN")]
    Unset {
        /// Hook name or id.
        hook: String,
        /// Secret names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List secret names (values are never shown).
    #[command(after_help = "Example:\n  hookd hooks secrets list add-claims")]
    List {
        /// Hook name or id.
        hook: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientsCommand {
    /// Create an application; prints its secret once.
    #[command(
        after_help = "Example:\n  hookd clients create --name billing-worker --metadata tier=gold"
    )]
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// `KEY=VALUE` client metadata.
        #[arg(long = "metadata")]
        metadata: Vec<String>,
    },
    /// List applications.
    #[command(after_help = "Example:\n  hookd clients list")]
    List,
    /// Delete an application (and its grants).
    #[command(after_help = "Example:\n  hookd clients delete 4bM9yXc0ZK1eLr7uTqv2")]
    Delete {
        /// The client_id.
        client_id: String,
    },
    /// Give an application a new secret; the old one stops working.
    #[command(after_help = "Example:\n  hookd clients rotate-secret 4bM9yXc0ZK1eLr7uTqv2")]
    RotateSecret {
        /// The client_id.
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApisCommand {
    /// Create an API.
    #[command(
        after_help = "Example:\n  hookd apis create --identifier https://api.example.com/ --scope read:reports --scope write:reports"
    )]
    Create {
        /// The audience clients ask for.
        #[arg(long)]
        identifier: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// A scope it defines (repeat).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// RS256, PS256, ES256 or HS256.
        #[arg(long)]
        signing_alg: Option<String>,
        /// access_token (Auth0) or rfc9068_profile.
        #[arg(long)]
        dialect: Option<String>,
        /// Token lifetime in seconds.
        #[arg(long)]
        token_lifetime: Option<u64>,
    },
    /// List APIs.
    #[command(after_help = "Example:\n  hookd apis list")]
    List,
    /// Delete an API (and its grants).
    #[command(after_help = "Example:\n  hookd apis delete Vw3...")]
    Delete {
        /// The API's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GrantsCommand {
    /// Grant a client scopes on an API.
    #[command(
        after_help = "Example:\n  hookd grants create --client-id 4bM9... --audience https://api.example.com/ --scope read:reports"
    )]
    Create {
        /// The client.
        #[arg(long)]
        client_id: String,
        /// The API identifier.
        #[arg(long)]
        audience: String,
        /// A scope (repeat).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List grants.
    #[command(after_help = "Example:\n  hookd grants list")]
    List,
    /// Delete a grant.
    #[command(after_help = "Example:\n  hookd grants delete cgr_...")]
    Delete {
        /// The grant's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// List every node with the revision of the change feed it has applied, how far behind
    /// it is, and when it last reported (nodes silent for a day are forgotten).
    #[command(after_help = "Example:\n  hookd cluster status --server http://127.0.0.1:8080")]
    Status,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List signing keys and their rotation state.
    #[command(after_help = "Example:\n  hookd keys list")]
    List,
    /// Rotate: next keys sign from now on; current ones stay published as previous.
    #[command(after_help = "Example:\n  hookd keys rotate")]
    Rotate,
}

/// How admin commands reach the Management API.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The hookd server.
    #[arg(
        long,
        global = true,
        env = "HOOKD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// The server's data directory, for its `admin.json` credentials.
    #[arg(
        long,
        global = true,
        env = "HOOKD_DATA_DIR",
        default_value = "hookd-data"
    )]
    pub data_dir: PathBuf,
    /// Admin client id (instead of admin.json).
    #[arg(long, global = true, env = "HOOKD_ADMIN_CLIENT_ID")]
    pub admin_client_id: Option<String>,
    /// Admin client secret (instead of admin.json). Prefer the environment variable or
    /// --admin-client-secret-stdin: other local users can read a command line.
    #[arg(
        long,
        global = true,
        env = "HOOKD_ADMIN_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub admin_client_secret: Option<String>,
    /// Read the admin client secret from the first line of standard input.
    #[arg(long, global = true, conflicts_with = "admin_client_secret")]
    pub admin_client_secret_stdin: bool,
    /// PEM file of CA certificates to trust for an https:// server, besides the system's.
    #[arg(long, global = true, env = "HOOKD_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Arguments of `hookd hooks test`.
#[derive(Debug, Args)]
pub struct HooksTestArgs {
    /// The hook component (`.wasm`), or a JavaScript or TypeScript hook, built with the
    /// JavaScript SDK first (needs Node.js).
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
        Command::Hooks {
            admin,
            command: HooksCommand::Test(args),
        } => hooks_test::run(args, admin.json),
        Command::Hooks { admin, command } => admin::run(admin, admin::Action::Hooks(command)),
        Command::Clients { admin, command } => admin::run(admin, admin::Action::Clients(command)),
        Command::Apis { admin, command } => admin::run(admin, admin::Action::Apis(command)),
        Command::Grants { admin, command } => admin::run(admin, admin::Action::Grants(command)),
        Command::Keys { admin, command } => admin::run(admin, admin::Action::Keys(command)),
        Command::Cluster { admin, command } => admin::run(admin, admin::Action::Cluster(command)),
    }
}

//! Typed errors of the hook engine: module rejections at load time, failures of one
//! invocation, and engine setup errors.

use super::Denial;

/// Why a hook invocation did not produce token changes. Each sandbox limit has its own
/// variant so callers match on the type, never on a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The hook burned all the fuel it was given.
    #[error("the hook ran out of fuel (limit {limit})")]
    OutOfFuel {
        /// The fuel limit that was exceeded.
        limit: u64,
    },
    /// The hook ran past its wall-clock limit.
    #[error("the hook ran past its time limit of {limit_ms} ms")]
    Timeout {
        /// The time limit in milliseconds.
        limit_ms: u64,
    },
    /// The hook tried to grow its memory past its limit.
    #[error("the hook tried to grow its memory to {requested} bytes, above its limit of {limit}")]
    MemoryLimit {
        /// The size the hook asked for.
        requested: u64,
        /// The memory limit in bytes.
        limit: u64,
    },
    /// The hook trapped: a panic, `unreachable`, a stack overflow, an out-of-bounds access.
    #[error("the hook trapped: {reason}")]
    Trap {
        /// What the trap was, e.g. "wasm `unreachable` instruction executed".
        reason: String,
    },
    /// The hook reported a failure of its own, e.g. a JavaScript exception nobody caught.
    /// The message is for the hook log; it never reaches the client.
    #[error("the hook failed: {message}")]
    Failed {
        /// What the hook said went wrong (at most 4 KiB).
        message: String,
    },
    /// The hook returned something hookd does not accept.
    #[error("the hook returned invalid output: {0}")]
    InvalidOutput(#[from] OutputViolation),
    /// The hook refused to issue the token.
    #[error("the hook denied the request: {} {}", .0.code, .0.description)]
    Denied(Denial),
    /// The event was larger than the hook's input limit; the hook was not called.
    #[error("the event is {size} bytes, above the hook's input limit of {limit}")]
    InputTooLarge {
        /// The event's size in bytes.
        size: u64,
        /// The input limit in bytes.
        limit: u64,
    },
    /// The host failed to run the hook for a reason that is not the hook's fault.
    #[error("the host could not run the hook: {0}")]
    Host(String),
    /// The enabled hook could not be loaded (a module missing from the store, a secret that
    /// will not open), so it never ran.
    #[error("the enabled hook could not be loaded: {0}")]
    Unavailable(String),
}

impl HookError {
    /// A stable, machine-readable name for the variant, e.g. `out_of_fuel`, for logs and
    /// JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            HookError::OutOfFuel { .. } => "out_of_fuel",
            HookError::Timeout { .. } => "timeout",
            HookError::MemoryLimit { .. } => "memory_limit",
            HookError::Trap { .. } => "trap",
            HookError::Failed { .. } => "failed",
            HookError::InvalidOutput(_) => "invalid_output",
            HookError::Denied(_) => "denied",
            HookError::InputTooLarge { .. } => "input_too_large",
            HookError::Host(_) => "host",
            HookError::Unavailable(_) => "unavailable",
        }
    }
}

/// What is wrong with a hook's output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputViolation {
    /// Claims and scopes add up to more than the output limit.
    #[error("output is {size} bytes, above the limit of {limit}")]
    TooLarge {
        /// The output's size in bytes.
        size: u64,
        /// The output limit in bytes.
        limit: u64,
    },
    /// A claim's value is not valid JSON text.
    #[error("claim `{name}` is not valid JSON: {error}")]
    ClaimNotJson {
        /// The claim's name.
        name: String,
        /// What the JSON parser said.
        error: String,
    },
    /// A claim has an empty name.
    #[error("a claim has an empty name")]
    EmptyClaimName,
    /// Two claims have the same name.
    #[error("claim `{name}` is set twice")]
    DuplicateClaim {
        /// The repeated name.
        name: String,
    },
    /// An `exchange-json` answer that is not JSON of the documented form.
    #[error("the answer is not an `exchange-json` answer: {error}")]
    MalformedAnswer {
        /// What the JSON parser said.
        error: String,
    },
    /// A scope is empty or has characters RFC 6749 does not allow in a scope token.
    #[error("scope {value:?} is not a valid scope token")]
    InvalidScope {
        /// The offending scope.
        value: String,
    },
}

/// Why a module was refused when it was loaded. Nothing is stored or run for a refused
/// module; the message says what is wrong and, where it can, what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleRejected {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly binary (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component; build hooks as components \
         (Rust: `cargo build --target wasm32-wasip2`, JavaScript: the hookd JS SDK)"
    )]
    CoreModule,
    /// A WebAssembly encoding hookd does not know.
    #[error("unsupported WebAssembly binary encoding (version bytes {version:02x?})")]
    UnknownEncoding {
        /// The four version/layer bytes after the magic.
        version: [u8; 4],
    },
    /// The component does not compile.
    #[error("the component is invalid: {0}")]
    Invalid(String),
    /// The component imports an interface hookd does not provide to hooks.
    #[error(
        "the component imports `{name}`, which hookd does not provide to hooks (hooks get WASI \
         clocks, random and stdio only: no network, filesystem or host services)"
    )]
    UnsupportedImport {
        /// The import's name, e.g. `wasi:http/outgoing-handler@0.2.10`.
        name: String,
    },
    /// The component does not export the world's function.
    #[error(
        "the component exports neither `{export}` nor `{export}-json`: it is not built for \
         the `hookd:hooks/{world}` world (or `{world}-json`)"
    )]
    MissingExport {
        /// The world the hook was loaded for.
        world: &'static str,
        /// The missing export.
        export: &'static str,
    },
    /// The component's exports or imports do not have the types the world requires.
    #[error("the component does not match the `hookd:hooks/{world}` world: {detail}")]
    WrongWorld {
        /// The world the hook was loaded for.
        world: &'static str,
        /// What wasmtime found wrong.
        detail: String,
    },
    /// The limits given with the module are unusable.
    #[error("invalid limits: {0}")]
    InvalidLimits(String),
}

/// Why the engine could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("could not configure the WebAssembly engine: {0}")]
    Config(String),
    /// The compiled-artifact cache directory could not be created.
    #[error("could not create the compiled hook cache at {path}: {source}")]
    Cache {
        /// The cache directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

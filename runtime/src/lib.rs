//! hookd: a self-hosted OAuth 2.0 token server whose token hooks run as sandboxed
//! WebAssembly components.
//!
//! This crate holds the host library and the `hookd` binary. The [`hooks`] module is the hook
//! engine: it validates, compiles, caches and runs hook components against the canonical WIT
//! contract in `wit/` under fuel, memory, time and size limits.
#![deny(missing_docs)]

pub mod hooks;

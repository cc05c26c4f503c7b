//! hookd: a self-hosted OAuth 2.0 token server whose token hooks run as sandboxed
//! WebAssembly components.
//!
//! This crate holds the host library and the `hookd` binary:
//!
//! - [`hooks`]: the hook engine. It validates, compiles, caches and runs hook components
//!   against the canonical WIT contract in `wit/` under fuel, memory, time and size limits.
//! - [`token`]: the client-credentials flow and JWT signing (no HTTP or storage types).
//! - [`http`]: the hyper front end; the only module that knows hyper.
//! - [`store`]: the embedded sled database; the only module that knows sled.
//! - [`model`], [`manage`], [`secrets`], [`app`]: records, their creation, secret handling,
//!   and server startup.
//! - [`files`]: private, atomic, durable writes of the files beside the store.
#![deny(missing_docs)]

pub mod app;
pub mod files;
pub mod hooklog;
pub mod hooks;
pub mod http;
pub mod manage;
pub mod model;
pub mod secrets;
pub mod store;
pub mod token;

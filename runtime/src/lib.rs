//! hookd: a self-hosted OAuth 2.0 token server whose token hooks run as sandboxed
//! WebAssembly components.
//!
//! This crate holds the server library and the `hookd` binary. Modules depend only downward
//! (`docs/ARCHITECTURE.md` draws it):
//!
//! - [`app`]: startup. Opens the store, settles the tenant and the admin, loads keys and
//!   hooks, and wires the services below to the HTTP server.
//! - [`http`]: the hyper front end, the only module that knows hyper: parsing, the route
//!   tables, body limits, admission, and rendering OAuth and Management errors (one place
//!   each).
//! - [`token`]: the client-credentials flow with `now` as a parameter: client
//!   authentication, grants, the hook call and its failure policy, claims, signing.
//! - [`management`]: every Management API rule (authorization, validation, conflicts, the
//!   guards on the Management API's own resources, the one-enabled-hook rule) and applying
//!   hook changes to the live [`registry`]; `http` reaches the store only through it.
//! - [`proto`]: the Management API's wire types, shared by the server and the CLI.
//! - [`registry`], [`hooklog`]: what each trigger runs right now, and every hook's recent
//!   invocations, shared by `token` and `management`.
//! - [`store`] (the embedded sled database; the only module that knows sled), [`keys`]
//!   (signing keys and the live key ring), [`secrets`] (sealing and hashing).
//! - [`model`]: the domain records and the constants both sides of the server share.
//! - [`metrics`]: what the server counts and measures, for Prometheus.
//! - [`clock`]: the one place the wall clock is read.
//! - [`hooks`]: the hook engine, the `hookd-engine` crate: components, limits, sandbox.
#![deny(missing_docs)]

pub use hookd_engine as hooks;
pub use hookd_engine::files;

pub mod app;
pub mod clock;
pub mod hooklog;
pub mod http;
pub mod keys;
pub mod management;
pub mod metrics;
pub mod model;
pub mod proto;
pub mod registry;
pub mod secrets;
pub mod store;
pub mod token;

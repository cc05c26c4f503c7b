//! hookd's integration tests, in one binary: real components compiled from source by
//! `build.rs`, run by the real engine.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test"
)]

mod cli;
mod hooks;
mod js;
mod layers;
mod management;
mod metrics;
mod postgres;
mod rollouts;
mod store_contract;
mod token;
mod trust;

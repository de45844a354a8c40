#![allow(
    clippy::missing_panics_doc,
    reason = "a test harness: failing loudly is its job"
)]

//! Harness for Omnia's integration tests.
//!
//! Tests drive real `omnia` processes (the binaries cargo built, see [`bin`]) serving real guest
//! components ([`guests`]), and talk to them over loopback HTTP ([`client`]). Backends the guests
//! use (Redis, NATS) are real servers too, owned by each test ([`services`]). Nothing is mocked:
//! what passes here is what a user gets from `omnia run`.
//!
//! Telemetry goes to a real OTLP receiver on loopback ([`otlp`]), over gRPC or HTTP/protobuf.

pub mod bin;
pub mod client;
pub mod guests;
pub mod otlp;
pub mod process;
pub mod services;

pub use bin::{omnia, omnia_aot};
pub use client::{Response, get, request, spawn_gets};
pub use process::{Omnia, run_to_end};

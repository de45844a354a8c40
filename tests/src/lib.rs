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

/// Runs the test `async fn $name(echo: &str)` twice, as `$name::p2` with the WASI 0.2 echo
/// guest (`http-echo`, an instance per request) and as `$name::p3` with its WASI 0.3 twin
/// (`p3-http-echo`, instances reused), so every HTTP guarantee is checked on both paths.
#[macro_export]
macro_rules! p2_and_p3 {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn p2() {
                super::$name("http-echo").await
            }
            #[tokio::test]
            async fn p3() {
                super::$name("p3-http-echo").await
            }
        }
    )+};
}

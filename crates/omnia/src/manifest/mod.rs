//! Applications of many components: the manifest (`omnia.toml`) that lists them, with their
//! routes and grants, and the tables the triggers route by.
//!
//! One process runs one *application*: components, each with its own source, routes, grants and
//! limits, sharing one listener, one memory budget and one connection per backend. A single
//! component (`omnia run app.wasm`) is the application of one component that takes every route.
//!
//! * [`file`]: the manifest, read and checked ([`Manifest`]).
//! * [`routes`]: the HTTP route table (path prefixes on segment boundaries, longest wins, an
//!   optional host).
//!
//! This module is being built in steps (issue "Applications of many components"); `omnia run`
//! does not read manifests yet.

pub mod file;
pub mod routes;

pub use file::{Guest, Manifest};

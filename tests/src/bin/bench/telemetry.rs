//! The cost of telemetry: the same `omnia` on the same guest with OTLP export off and on.
//!
//! "On" exports every request's span and the metrics over gRPC to a real OTLP receiver
//! (`omnia_tests::otlp::OtlpReceiver`) in this process, with the default batching (`OTEL_BSP_*` unset); the
//! receiver decodes and keeps what it gets, so it does real work on the same cores, as a local
//! collector agent would. "Off" sets no endpoint: request spans are disabled `tracing` spans.

use std::path::Path;
use std::process::Command;

/// `omnia run` for `guest` on `addr` (see [`super::omnia_run`]), exporting to `endpoint` if any.
pub fn command(omnia: &Path, guest: &Path, addr: &str, endpoint: Option<&str>) -> Command {
    let mut cmd = super::omnia_run(omnia, guest, addr, None);
    if let Some(endpoint) = endpoint {
        cmd.env("OTEL_GRPC_URL", endpoint);
    }
    cmd
}

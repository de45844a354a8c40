//! Where telemetry goes: the OTLP endpoint and protocol, from the standard OpenTelemetry
//! variables (and `OTEL_GRPC_URL`, Omnia's shorthand for a gRPC collector).
//!
//! Export is on when an endpoint is set: `OTEL_GRPC_URL`, `OTEL_EXPORTER_OTLP_ENDPOINT`, or a
//! signal's own `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`; `OTEL_SDK_DISABLED=true` turns
//! it off whatever is set. Everything else the exporters read themselves, as the specification
//! says (`OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `OTEL_METRIC_EXPORT_INTERVAL`), or the
//! resource does (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).

use std::time::Duration;

use anyhow::{Result, bail};
use omnia::FromEnv;
use omnia::config::{Setting, parse_bool, parse_count, parse_positive_count, url_var, var};

/// The OTLP wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`, the specification's default).
    HttpProtobuf,
}

impl Protocol {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => bail!("http/json is not supported: use grpc or http/protobuf"),
            _ => bail!("expected grpc or http/protobuf, got {s:?}"),
        }
    }
}

/// The export settings of the `"otel"` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelOptions {
    /// Where spans and metrics go; `None`: no export (logs only, nothing recorded).
    pub export: Option<Export>,
}

/// An OTLP destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The protocol.
    pub protocol: Protocol,
    /// The endpoint given by `OTEL_GRPC_URL`, which wins over the standard variables; `None`
    /// leaves the endpoint to the exporters, which read the standard ones.
    pub grpc_url: Option<String>,
    /// Spans buffered for export at most (`OTEL_BSP_MAX_QUEUE_SIZE`); past it they are dropped
    /// and counted, so a slow collector never holds up a request.
    pub max_queue: usize,
    /// Spans sent in one export at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_batch: usize,
    /// How long a span may wait for a batch to fill (`OTEL_BSP_SCHEDULE_DELAY`).
    pub delay: Duration,
}

const ENDPOINTS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
];

impl FromEnv for OtelOptions {
    fn from_env() -> Result<Self> {
        if var("OTEL_SDK_DISABLED", parse_bool)?.unwrap_or(false) {
            return Ok(Self { export: None });
        }
        let grpc_url = url_var("OTEL_GRPC_URL", parse_endpoint)?;
        let mut standard = false;
        for name in ENDPOINTS {
            standard |= url_var(name, parse_endpoint)?.is_some();
        }
        if grpc_url.is_none() && !standard {
            return Ok(Self { export: None });
        }
        let protocol = if grpc_url.is_some() {
            Protocol::Grpc
        } else {
            var("OTEL_EXPORTER_OTLP_PROTOCOL", Protocol::parse)?.unwrap_or(Protocol::HttpProtobuf)
        };
        let max_queue = var("OTEL_BSP_MAX_QUEUE_SIZE", parse_positive_count)?.unwrap_or(2048);
        let max_batch = var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", parse_positive_count)?
            .unwrap_or(512)
            .min(max_queue);
        let delay = var("OTEL_BSP_SCHEDULE_DELAY", |s| {
            Ok(Duration::from_millis(parse_count(s)? as u64))
        })?
        .unwrap_or(Duration::from_secs(5));
        Ok(Self {
            export: Some(Export {
                protocol,
                grpc_url,
                max_queue,
                max_batch,
                delay,
            }),
        })
    }

    fn settings() -> Vec<Setting> {
        let env_only = Setting::env_only;
        vec![
            env_only(
                "OTEL_GRPC_URL",
                "URL",
                "unset",
                "an OTLP/gRPC collector (e.g. http://127.0.0.1:4317): export spans and metrics there",
            ),
            env_only(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "URL",
                "unset",
                "an OTLP collector, by the OpenTelemetry standard (also ..._TRACES_ / ..._METRICS_ / ..._LOGS_ENDPOINT)",
            ),
            env_only(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "PROTOCOL",
                "http/protobuf",
                "grpc or http/protobuf, for OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            env_only(
                "OTEL_SERVICE_NAME",
                "NAME",
                "omnia",
                "the service.name of everything exported",
            ),
            env_only(
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "N",
                "2048",
                "spans waiting for export at most; more are dropped and counted",
            ),
            env_only(
                "OTEL_BSP_SCHEDULE_DELAY",
                "MS",
                "5000",
                "how long a span may wait for its batch, in milliseconds",
            ),
            env_only(
                "OTEL_SDK_DISABLED",
                "BOOL",
                "false",
                "true turns export off whatever endpoint is set",
            ),
        ]
    }
}

/// The exporters' timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds; 10 s by default), for
/// the clients that do not read it themselves.
pub(crate) fn export_timeout() -> Duration {
    std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// An `http://` or `https://` URL with a host.
fn parse_endpoint(s: &str) -> Result<String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|err| anyhow::anyhow!("{err}: expected a URL such as http://127.0.0.1:4317"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        bail!("expected an http:// or https:// URL with a host, such as http://127.0.0.1:4317");
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(Protocol::parse("grpc").unwrap(), Protocol::Grpc);
        assert_eq!(
            Protocol::parse("http/protobuf").unwrap(),
            Protocol::HttpProtobuf
        );
        assert!(Protocol::parse("http/json").is_err());
        assert!(Protocol::parse("udp").is_err());
    }

    #[test]
    fn endpoints() {
        assert!(parse_endpoint("http://127.0.0.1:4317").is_ok());
        assert!(parse_endpoint("https://collector.example.com").is_ok());
        assert!(parse_endpoint("127.0.0.1:4317").is_err());
        assert!(parse_endpoint("ftp://x").is_err());
    }
}

//! Where telemetry goes: the OTLP endpoint and protocol, from the standard OpenTelemetry
//! variables (and `OTEL_GRPC_URL`, Omnia's shorthand for a gRPC collector).
//!
//! Export is on when an endpoint is set: `OTEL_GRPC_URL`, `OTEL_EXPORTER_OTLP_ENDPOINT`, or a
//! signal's own `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`; `OTEL_SDK_DISABLED=true` turns
//! it off whatever is set.
//!
//! Every variable this crate uses is read here, once, at start-up, and a bad value is a
//! start-up error naming the variable, the value and the expected form: the pipeline and the
//! sink of guest records take what they need from [`Export`] and read nothing themselves. The
//! SDK's exporters also read the standard variables (`OTEL_EXPORTER_OTLP_HEADERS`,
//! `..._TIMEOUT` and the per-signal ones, `OTEL_METRIC_EXPORT_INTERVAL`), and the resource
//! reads `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, as the specification says; a value
//! they would silently replace with their default (a timeout that is not a number) is refused
//! here first.

use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use http::{HeaderMap, HeaderName, HeaderValue};
use omnia::FromEnv;
use omnia::config::{Setting, parse_bool, parse_count, parse_positive_count, url_var, var};
use omnia::secrets::percent_decode;

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
    /// Whether `OTEL_SERVICE_NAME` or a `service.name` in `OTEL_RESOURCE_ATTRIBUTES` names the
    /// service (the resource reads the name itself); if not, it is `omnia`. The resource is
    /// the runtime's with or without export: guests read it (`omnia:otel/resource`).
    pub service_named: bool,
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
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds; 10 s by
    /// default), for the clients that do not read it themselves.
    pub timeout: Duration,
    /// The collector of every signal (`OTEL_EXPORTER_OTLP_ENDPOINT`); for HTTP, each signal's
    /// path (`/v1/metrics`, ...) is appended.
    pub endpoint: Option<String>,
    /// The collector of metrics (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`), used as is.
    pub metrics_endpoint: Option<String>,
    /// The collector of log records (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`), used as is.
    pub logs_endpoint: Option<String>,
    /// The headers sent with each export (`OTEL_EXPORTER_OTLP_HEADERS`); their values are
    /// marked sensitive, so `Debug` does not show them.
    pub headers: HeaderMap,
}

/// The exporters' timeout when `OTEL_EXPORTER_OTLP_TIMEOUT` is not set (the specification's).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl FromEnv for OtelOptions {
    fn from_env() -> Result<Self> {
        let service_named = var("OTEL_SERVICE_NAME", |_| Ok(()))?.is_some()
            || var("OTEL_RESOURCE_ATTRIBUTES", |attrs| {
                Ok(attrs
                    .split(',')
                    .any(|kv| kv.trim().starts_with("service.name=")))
            })?
            .unwrap_or(false);
        let no_export = Self {
            export: None,
            service_named,
        };
        if var("OTEL_SDK_DISABLED", parse_bool)?.unwrap_or(false) {
            return Ok(no_export);
        }
        let grpc_url = url_var("OTEL_GRPC_URL", parse_endpoint)?;
        let endpoint = url_var("OTEL_EXPORTER_OTLP_ENDPOINT", parse_endpoint)?;
        // Read by the SDK's span exporter; checked here, and it turns export on.
        let traces_endpoint = url_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", parse_endpoint)?;
        let metrics_endpoint = url_var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", parse_endpoint)?;
        let logs_endpoint = url_var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", parse_endpoint)?;
        let standard = endpoint.is_some()
            || traces_endpoint.is_some()
            || metrics_endpoint.is_some()
            || logs_endpoint.is_some();
        if grpc_url.is_none() && !standard {
            return Ok(no_export);
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
        let timeout = var("OTEL_EXPORTER_OTLP_TIMEOUT", parse_timeout)?.unwrap_or(DEFAULT_TIMEOUT);
        // Credentials (`authorization=Bearer%20...`): read as text, never shown in an error.
        let headers = match var("OTEL_EXPORTER_OTLP_HEADERS", |s| Ok(s.to_owned()))? {
            Some(text) => parse_headers(&text)?,
            None => HeaderMap::new(),
        };
        Ok(Self {
            export: Some(Export {
                protocol,
                grpc_url,
                max_queue,
                max_batch,
                delay,
                timeout,
                endpoint,
                metrics_endpoint,
                logs_endpoint,
                headers,
            }),
            service_named,
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
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "MS",
                "10000",
                "how long one export may take, in milliseconds",
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

/// `OTEL_EXPORTER_OTLP_TIMEOUT`: a whole number of milliseconds above zero (a zero timeout
/// would fail every export).
fn parse_timeout(s: &str) -> Result<Duration> {
    s.parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .with_context(|| {
            format!(
                "expected a whole number of milliseconds above zero, such as 10000 (10 s), \
                 got {s:?}"
            )
        })
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs, comma-separated, values percent-decoded.
fn parse_headers(text: &str) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    // The values are credentials (`authorization=Bearer%20...`): errors name the entry by its
    // position and never show its text, which may be a value with the `=` missing.
    for (n, pair) in text.split(',').filter(|p| !p.trim().is_empty()).enumerate() {
        let entry = n + 1;
        let (name, value) = pair.split_once('=').with_context(|| {
            format!(
                "OTEL_EXPORTER_OTLP_HEADERS: entry {entry} is not name=value (e.g. \
                 authorization=Bearer%20<token>; entries are separated by commas)"
            )
        })?;
        let name = HeaderName::from_str(name.trim()).with_context(|| {
            format!("OTEL_EXPORTER_OTLP_HEADERS: the name of entry {entry} is not a header name")
        })?;
        let mut value =
            HeaderValue::from_str(&percent_decode(value.trim())).with_context(|| {
                format!("OTEL_EXPORTER_OTLP_HEADERS: the value of {name} is not a header value")
            })?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
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
    fn timeouts() {
        assert_eq!(parse_timeout("2500").unwrap(), Duration::from_millis(2500));
        for bad in ["abc", "-5", "0", "10s"] {
            let err = format!("{:#}", parse_timeout(bad).unwrap_err());
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("milliseconds above zero"),
                "{err}"
            );
        }
    }

    /// The error names the variable and the value, as every setting's does. The overrides are
    /// the process's (set once): no other test of this crate may set them.
    #[test]
    fn a_bad_timeout_fails_start_up() {
        let setting = |env| Setting::env_only(env, "", "", "");
        omnia::config::set_overrides(vec![
            (setting("OTEL_GRPC_URL"), "http://127.0.0.1:4317".into()),
            (setting("OTEL_EXPORTER_OTLP_TIMEOUT"), "abc".into()),
        ]);
        let err = format!("{:#}", OtelOptions::from_env().unwrap_err());
        assert!(
            err.starts_with(
                "OTEL_EXPORTER_OTLP_TIMEOUT=\"abc\" is not valid: expected a whole \
                 number of milliseconds above zero"
            ),
            "{err}"
        );
    }

    #[test]
    fn headers_are_decoded_and_hidden() {
        let headers = parse_headers("authorization=Bearer%20t0k3n, x-tenant = a").unwrap();
        assert_eq!(headers["authorization"], "Bearer t0k3n");
        assert_eq!(headers["x-tenant"], "a");
        assert!(!format!("{headers:?}").contains("t0k3n"));
        let err = format!("{:#}", parse_headers("a=b,t0k3n").unwrap_err());
        assert!(err.contains("entry 2") && !err.contains("t0k3n"), "{err}");
    }

    #[test]
    fn endpoints() {
        assert!(parse_endpoint("http://127.0.0.1:4317").is_ok());
        assert!(parse_endpoint("https://collector.example.com").is_ok());
        assert!(parse_endpoint("127.0.0.1:4317").is_err());
        assert!(parse_endpoint("ftp://x").is_err());
    }
}

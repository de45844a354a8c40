//! Guests' metrics and log records, sent to the collector as OTLP protobuf messages.
//!
//! A guest's `wasi:otel/metrics.export` hands over metrics it has already aggregated, and its
//! log records carry what the guest chose (severity text, event name): the SDK's exporters
//! only take data its own instruments and loggers made, so these go to the collector as the
//! protocol's own messages, over the same transport and endpoint as the spans (gRPC with
//! `tonic`, or HTTP/protobuf with the same hyper client), through their own bounded queue
//! ([`crate::queue`]).
//!
//! Endpoints are resolved as the OpenTelemetry exporters resolve them: `OTEL_GRPC_URL`, else
//! `OTEL_EXPORTER_OTLP_{METRICS,LOGS}_ENDPOINT` (used as is), else
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/metrics` or `/v1/logs` appended for HTTP), else
//! the local default; `OTEL_EXPORTER_OTLP_HEADERS` are sent with each export. All of them are
//! read and checked by [`crate::options`]; this module reads no variable itself.

use std::str::FromStr as _;

use anyhow::{Context as _, Result};
use http::{HeaderMap, Request, Uri};
use opentelemetry_http::HttpClient as _;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::Channel;

use crate::options::{Export, Protocol};
use crate::queue::Sink;
use crate::record::GuestRecord;

/// Sends guest records to the collector.
pub struct GuestSink {
    /// The runtime's resource, which guest telemetry is exported under.
    resource: Resource,
    transport: Transport,
}

enum Transport {
    Grpc {
        metrics: MetricsServiceClient<Channel>,
        logs: LogsServiceClient<Channel>,
        headers: MetadataMap,
    },
    Http {
        client: HyperClient,
        metrics: Uri,
        logs: Uri,
        headers: HeaderMap,
    },
}

impl GuestSink {
    /// A sink for `export`'s collector (connecting lazily, on the current tokio runtime).
    pub fn new(export: &Export, resource: Resource) -> Result<Self> {
        let headers = export.headers.clone();
        let transport = match export.protocol {
            Protocol::Grpc => {
                let url = export
                    .grpc_url
                    .clone()
                    .or_else(|| export.endpoint.clone())
                    .unwrap_or_else(|| "http://localhost:4317".to_owned());
                let channel = |signal: &Option<String>| -> Result<Channel> {
                    let url = export
                        .grpc_url
                        .clone()
                        .or_else(|| signal.clone())
                        .unwrap_or_else(|| url.clone());
                    Ok(Channel::from_shared(url.clone())
                        .with_context(|| format!("OTLP endpoint {url}"))?
                        .timeout(export.timeout)
                        .connect_lazy())
                };
                let mut metadata = MetadataMap::new();
                for (name, value) in &headers {
                    if let (Ok(key), Ok(value)) = (
                        MetadataKey::from_str(name.as_str()),
                        MetadataValue::try_from(value.as_bytes()),
                    ) {
                        metadata.insert(key, value);
                    }
                }
                Transport::Grpc {
                    metrics: MetricsServiceClient::new(channel(&export.metrics_endpoint)?),
                    logs: LogsServiceClient::new(channel(&export.logs_endpoint)?),
                    headers: metadata,
                }
            }
            Protocol::HttpProtobuf => {
                let url = |signal: &Option<String>, path: &str| -> Result<Uri> {
                    let url = signal
                        .clone()
                        .or_else(|| {
                            export
                                .endpoint
                                .as_ref()
                                .map(|base| format!("{}/{path}", base.trim_end_matches('/')))
                        })
                        .unwrap_or_else(|| format!("http://localhost:4318/{path}"));
                    url.parse()
                        .with_context(|| format!("OTLP endpoint {url} is not a URL"))
                };
                Transport::Http {
                    client: HyperClient::with_default_connector(export.timeout, None),
                    metrics: url(&export.metrics_endpoint, "v1/metrics")?,
                    logs: url(&export.logs_endpoint, "v1/logs")?,
                    headers,
                }
            }
        };
        Ok(Self {
            resource,
            transport,
        })
    }

    async fn send_metrics(&self, request: ExportMetricsServiceRequest) -> Result<(), String> {
        match &self.transport {
            Transport::Grpc {
                metrics, headers, ..
            } => sent(metrics.clone().export(grpc(request, headers)).await),
            Transport::Http {
                client,
                metrics,
                headers,
                ..
            } => post(client, metrics, headers, request.encode_to_vec()).await,
        }
    }

    async fn send_logs(&self, request: ExportLogsServiceRequest) -> Result<(), String> {
        match &self.transport {
            Transport::Grpc { logs, headers, .. } => {
                sent(logs.clone().export(grpc(request, headers)).await)
            }
            Transport::Http {
                client,
                logs,
                headers,
                ..
            } => post(client, logs, headers, request.encode_to_vec()).await,
        }
    }
}

/// A gRPC request with the configured headers.
fn grpc<R>(message: R, headers: &MetadataMap) -> tonic::Request<R> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = headers.clone();
    request
}

/// Whether a gRPC export went through.
fn sent<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<(), String> {
    result.map(drop).map_err(|status| status.to_string())
}

impl Sink<GuestRecord> for GuestSink {
    const WHAT: &'static str = "guest metrics and logs";

    /// One metrics request with every metrics export of the batch, one logs request with every
    /// log record, grouped by scope; both under the runtime's resource.
    async fn send(&self, batch: Vec<GuestRecord>) -> Result<(), String> {
        let mut metrics = Vec::new();
        let mut scopes: Vec<ScopeLogs> = Vec::new();
        for record in batch {
            match record {
                GuestRecord::Metrics(mut resource_metrics) => {
                    resource_metrics.resource = Some(self.resource.clone());
                    metrics.push(resource_metrics);
                }
                GuestRecord::Log(scope, record) => {
                    match scopes.iter_mut().find(|s| s.scope == scope) {
                        Some(logs) => logs.log_records.push(record),
                        None => scopes.push(ScopeLogs {
                            scope,
                            log_records: vec![record],
                            ..ScopeLogs::default()
                        }),
                    }
                }
            }
        }
        let mut failed = Vec::new();
        if !metrics.is_empty() {
            let request = ExportMetricsServiceRequest {
                resource_metrics: metrics,
            };
            if let Err(err) = self.send_metrics(request).await {
                failed.push(format!("metrics: {err}"));
            }
        }
        if !scopes.is_empty() {
            let request = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(self.resource.clone()),
                    scope_logs: scopes,
                    ..ResourceLogs::default()
                }],
            };
            if let Err(err) = self.send_logs(request).await {
                failed.push(format!("logs: {err}"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// POSTs an OTLP/HTTP protobuf body.
async fn post(
    client: &HyperClient,
    url: &Uri,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut request = Request::post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body.into())
        .map_err(|err| err.to_string())?;
    request.headers_mut().extend(headers.clone());
    let response = client
        .send_bytes(request)
        .await
        .map_err(|err| format!("{url}: {err}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url}: HTTP {}", response.status()))
    }
}

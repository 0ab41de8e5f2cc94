//! Prometheus metrics: the node's [`Metrics`] registry, the RPC server's own
//! metrics ([`RpcMetrics`]), the RPC middleware that records them (and
//! enforces the batch-size cap), and the HTTP middleware that answers
//! `GET /metrics` on the RPC port in the Prometheus text format.
//!
//! Metrics declared by the RPC server (prefix `wake_`):
//! * `wake_rpc_requests_total{method}`: calls by method (batch entries one by one);
//! * `wake_rpc_errors_total{method}`: calls answered with an error;
//! * `wake_rpc_request_duration_seconds{method}`: latency histogram;
//! * `wake_rpc_batches_total`: batch requests.
//!
//! The `method` label takes only the names the server serves, and `other`
//! for anything else, so clients cannot grow the label set without bound.

use super::error::LIMIT_EXCEEDED_CODE;
use jsonrpsee::core::BoxError;
use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, MethodResponse};
use jsonrpsee::types::{ErrorObjectOwned, Id, Request};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The path metrics are served on.
pub const METRICS_PATH: &str = "/metrics";
/// Content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The node's metrics registry (prefix `wake_`). Any part of the node may
/// register its counters and gauges here; the RPC server serves them all.
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics { registry: Mutex::new(Registry::with_prefix("wake")) }
    }

    /// Registers one metric (a `Counter`, `Gauge`, `Histogram`, `Family`
    /// ...); keep a clone of it to update it.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().register(name, help, metric);
    }

    /// Every metric, in the Prometheus / OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry.lock());
        text
    }
}

/// The `method` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: &'static str,
}

/// The RPC server's metrics.
#[derive(Clone, Debug)]
pub struct RpcMetrics {
    requests: Family<MethodLabels, Counter>,
    errors: Family<MethodLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    batches: Counter,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl RpcMetrics {
    /// Creates the RPC metrics and registers them in `metrics`.
    pub fn register(metrics: &Metrics) -> RpcMetrics {
        let rpc = RpcMetrics {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            batches: Counter::default(),
        };
        metrics.register("rpc_requests", "JSON-RPC calls by method", rpc.requests.clone());
        metrics.register("rpc_errors", "JSON-RPC calls answered with an error", rpc.errors.clone());
        metrics.register(
            "rpc_request_duration_seconds",
            "JSON-RPC call latency by method",
            rpc.latency.clone(),
        );
        metrics.register("rpc_batches", "JSON-RPC batch requests", rpc.batches.clone());
        rpc
    }

    fn record(&self, method: &'static str, started: Instant, error: bool) {
        let labels = MethodLabels { method };
        self.requests.get_or_create(&labels).inc();
        if error {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }
}

/// The label of a method name: itself if served, else `other`.
pub fn method_label(name: &str) -> &'static str {
    super::METHODS.iter().find(|m| **m == name).copied().unwrap_or("other")
}

/// RPC middleware: metrics per call, and the batch-size cap (`-32005`).
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer {
    metrics: RpcMetrics,
    batch_requests_max: usize,
    response_bytes_max: usize,
}

impl RpcMetricsLayer {
    /// `response_bytes_max` bounds a batch's response, as the server's
    /// limit does.
    pub fn new(metrics: RpcMetrics, batch_requests_max: usize, response_bytes_max: usize) -> Self {
        RpcMetricsLayer { metrics, batch_requests_max, response_bytes_max }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
            batch_requests_max: self.batch_requests_max,
            response_bytes_max: self.response_bytes_max,
        }
    }
}

/// See [`RpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: RpcMetrics,
    batch_requests_max: usize,
    response_bytes_max: usize,
}

impl<S> RpcServiceT for RpcMetricsService<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let method = method_label(request.method_name());
        let inner = self.inner.clone();
        let metrics = self.metrics.clone();
        async move {
            let started = Instant::now();
            let response = inner.call(request).await;
            metrics.record(method, started, response.is_error());
            response
        }
    }

    /// Runs the calls of a batch concurrently and answers them in order
    /// (jsonrpsee's own batch runs them one after another). Transactions
    /// sent in one batch thus reach the pool's admission together, as one
    /// batch of signature recoveries and state reads.
    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let service = self.clone();
        async move {
            service.metrics.batches.inc();
            let max = service.batch_requests_max;
            if batch.len() > max {
                let message =
                    format!("batch of {} requests exceeds the limit of {max}", batch.len());
                let error = ErrorObjectOwned::owned(LIMIT_EXCEEDED_CODE, message, None::<()>);
                return MethodResponse::error(Id::Null, error);
            }
            let calls = batch.into_iter().map(|entry| {
                let service = service.clone();
                async move {
                    match entry {
                        Ok(BatchEntry::Call(request)) => Some(service.call(request).await),
                        Ok(BatchEntry::Notification(notification)) => {
                            service.inner.notification(notification).await;
                            None
                        }
                        Err(error) => {
                            let (error, id) = error.into_parts();
                            Some(MethodResponse::error(id, error))
                        }
                    }
                }
            });
            let responses = futures::future::join_all(calls).await;
            let mut got_notification = false;
            let mut builder = BatchResponseBuilder::new_with_limit(service.response_bytes_max);
            for response in responses {
                match response {
                    Some(response) => {
                        if let Err(too_big) = builder.append(response) {
                            return too_big;
                        }
                    }
                    None => got_notification = true,
                }
            }
            if builder.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(builder.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

/// HTTP middleware answering `GET /metrics` from a [`Metrics`] registry.
#[derive(Clone, Debug)]
pub struct MetricsHttpLayer {
    metrics: Arc<Metrics>,
}

impl MetricsHttpLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        MetricsHttpLayer { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsHttpLayer {
    type Service = MetricsHttp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsHttp { inner, metrics: Arc::clone(&self.metrics) }
    }
}

/// See [`MetricsHttpLayer`].
#[derive(Clone, Debug)]
pub struct MetricsHttp<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type BoxedResponse = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

impl<S, B> tower::Service<HttpRequest<B>> for MetricsHttp<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxedResponse;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.method() == http::Method::GET && request.uri().path() == METRICS_PATH {
            let body = self.metrics.encode();
            let response = HttpResponse::builder()
                .status(http::StatusCode::OK)
                .header(http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)
                .body(HttpBody::from(body))
                .map_err(BoxError::from);
            return Box::pin(std::future::ready(response));
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

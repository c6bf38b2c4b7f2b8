//! What an operator watches: Prometheus metrics on their own address (`metrics_listen`, off by
//! default), and the health the load balancer reads (`grpc.health.v1`), which turns NOT_SERVING
//! while the database cannot be reached.
//!
//! Metrics go through the `metrics` facade: the code records them where things happen (RPCs in
//! the auth layer, batches in the intake writer, levels in the SLA scan), and a sampler sets
//! the gauges that are read rather than counted (the SLA backlog, the database pool, streams,
//! versions) every few seconds. Without `metrics_listen` no recorder is installed and every
//! recording is a no-op.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

/// The process's recorder, installed once (several servers in one process share it).
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets for RPCs, in seconds: from a cached lookup to a slow write.
const RPC_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Whether metrics are being recorded (the recorder is installed): callers skip building
/// labels otherwise.
pub fn recording() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "gridcase_rpc_duration_seconds".into(),
                    ),
                    RPC_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            "gridcase_intake_batch_size".into(),
                        ),
                        BATCH_BUCKETS,
                    )
                })
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was installed already");
                    }
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the metrics recorder");
                    None
                }
            }
        })
        .clone()
}

/// Every metric gridcase exports (the Grafana dashboard in `monitoring/` may use only these).
pub const NAMES: &[&str] = &[
    "gridcase_rpc_requests_total",
    "gridcase_rpc_duration_seconds",
    "gridcase_rpc_refused_total",
    "gridcase_rpc_in_flight",
    "gridcase_intake_queue_depth",
    "gridcase_intake_batch_size",
    "gridcase_intake_abandoned_total",
    "gridcase_sla_levels_due",
    "gridcase_sla_oldest_due_seconds",
    "gridcase_sla_levels_fired_total",
    "gridcase_event_streams",
    "gridcase_event_feed_lag",
    "gridcase_event_streams_ended_total",
    "gridcase_db_pool_connections",
    "gridcase_db_unavailable_total",
    "gridcase_directory_version",
    "gridcase_rules_version",
    "gridcase_database_up",
];

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "gridcase_rpc_requests_total",
        "RPCs answered, by method and gRPC code"
    );
    describe_histogram!(
        "gridcase_rpc_duration_seconds",
        Unit::Seconds,
        "time to answer an RPC (to the response headers for streams), by method"
    );
    describe_counter!(
        "gridcase_rpc_refused_total",
        "calls refused before any work: by reason (rate, in_flight) and role"
    );
    describe_gauge!("gridcase_rpc_in_flight", "requests in flight now");
    describe_gauge!(
        "gridcase_intake_queue_depth",
        "reports and tickets waiting for the intake writer"
    );
    describe_histogram!(
        "gridcase_intake_batch_size",
        "drafts per intake batch (group commit)"
    );
    describe_counter!(
        "gridcase_intake_abandoned_total",
        "drafts whose caller gave up before the writer took them: not stored"
    );
    describe_gauge!(
        "gridcase_sla_levels_due",
        "SLA levels that have come and are not fired yet"
    );
    describe_gauge!(
        "gridcase_sla_oldest_due_seconds",
        Unit::Seconds,
        "how long the oldest level waiting has been due"
    );
    describe_counter!("gridcase_sla_levels_fired_total", "SLA levels fired");
    describe_gauge!("gridcase_event_streams", "WatchEvents streams open now");
    describe_gauge!(
        "gridcase_event_feed_lag",
        "events committed that the event feed has not read yet"
    );
    describe_counter!(
        "gridcase_event_streams_ended_total",
        "streams ended by the server, by reason (behind, shutdown, storage)"
    );
    describe_gauge!(
        "gridcase_db_pool_connections",
        "database pool connections, by state (in_use, idle) and the pool's max"
    );
    describe_counter!(
        "gridcase_db_unavailable_total",
        "database errors that made a call answer UNAVAILABLE (pool timeouts, lost connections)"
    );
    describe_gauge!("gridcase_directory_version", "the directory version served");
    describe_gauge!("gridcase_rules_version", "the rules version applied");
    describe_gauge!(
        "gridcase_database_up",
        "1 while the database answers, 0 while it does not"
    );
}

/// Serves `GET /metrics` (and any path) with the Prometheus text until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) {
    use hyper::{Response, body::Incoming, server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request: hyper::Request<Incoming>| {
                let body = handle.render();
                async move {
                    let mut response = Response::new(body);
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                    );
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection");
            }
        });
    }
}

/// Binds the metrics address (a clear error at start-up when it cannot).
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {listen}: {e}"))
}

/// How often the sampler reads the gauges, and health checks the database.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a PromQL expression uses (`_bucket` etc. folded into the histogram's name).
    fn used(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("gridcase_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(name.to_owned());
            rest = &tail[end..];
        }
        names
    }

    #[test]
    fn the_dashboard_shows_only_metrics_gridcase_exports() {
        let dashboard = include_str!("../monitoring/grafana-gridcase.json");
        let used = used(dashboard);
        assert!(used.len() >= 15, "{used:?}");
        for name in &used {
            assert!(NAMES.contains(&name.as_str()), "the dashboard uses {name}");
        }
        // And every metric gridcase exports has a panel.
        for name in NAMES {
            assert!(used.contains(*name), "no panel shows {name}");
        }
    }

    #[test]
    fn every_exported_metric_is_described() {
        let source = include_str!("monitoring.rs");
        let described = source.split("fn describe()").nth(1).unwrap_or_default();
        for name in NAMES {
            assert!(
                described.contains(&format!("\"{name}\"")),
                "{name} is not described"
            );
        }
    }
}

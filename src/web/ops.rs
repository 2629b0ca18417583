//! Endpoints for operators and proxies: liveness and readiness.

use poem::{Response, handler, http::StatusCode};

use crate::auth::AppData;

/// `GET /healthz`: the process is alive and serving (what Caddy health-checks); 503 while it
/// drains on its way out, so the proxy sends new requests elsewhere.
#[handler]
pub fn healthz(state: AppData<'_>) -> Response {
    if state.shutdown.is_cancelled() {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .content_type("text/plain; charset=utf-8")
            .body("draining\n");
    }
    Response::builder()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// `GET /readyz`: the database answers; 503 otherwise. A second line says when NATS is away
/// (still ready: live updates between instances then come by the poll).
#[handler]
pub async fn readyz(state: AppData<'_>) -> Response {
    let check = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    match check {
        // Still ready without the bus: live updates between instances come by the poll.
        Ok(Ok(())) => Response::builder()
            .content_type("text/plain; charset=utf-8")
            .body(match state.chat.bus_trouble() {
                Some(trouble) => format!("ready\nbus: {trouble}\n"),
                None => "ready\n".to_string(),
            }),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            not_ready()
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            not_ready()
        }
    }
}

fn not_ready() -> Response {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .content_type("text/plain; charset=utf-8")
        .body("database unavailable\n")
}

/// `GET /metrics`: Prometheus text format (0.0.4), which every Prometheus-compatible scraper
/// reads.
#[handler]
pub fn metrics(state: AppData<'_>) -> Response {
    match state.metrics.render() {
        Ok(text) => Response::builder()
            .content_type(crate::metrics::CONTENT_TYPE)
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be written");
            StatusCode::INTERNAL_SERVER_ERROR.into()
        }
    }
}

//! `/metrics` (Prometheus text), `/healthz` (the process answers) and
//! `/readyz` (it should be sent work).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

/// Whether the process is ready, and a line saying why (or why not).
pub type Readiness = Arc<dyn Fn() -> (bool, String) + Send + Sync>;

#[derive(Clone)]
struct Probes {
    registry: Arc<Registry>,
    ready: Readiness,
}

/// The three probe routes over `registry` and `ready`.
pub fn router(registry: Registry, ready: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Probes { registry: Arc::new(registry), ready })
}

async fn metrics(State(probes): State<Probes>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &probes.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {err}\n")).into_response(),
    }
}

async fn readyz(State(probes): State<Probes>) -> Response {
    let (ready, why) = (probes.ready)();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, format!("{why}\n")).into_response()
}

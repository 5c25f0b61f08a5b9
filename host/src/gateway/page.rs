//! The live seat-map page at `/`: plain HTML, CSS and JavaScript compiled
//! into the binary (no build step), drawing the venue from the public
//! availability endpoints and booking through the API.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tower_http::set_header::SetResponseHeaderLayer;

use super::Gateway;
use crate::config::GatewayAuth;

const INDEX: &str = include_str!("page/index.html");
const STYLE: &str = include_str!("page/style.css");
const SCRIPT: &str = include_str!("page/app.js");

/// What the page needs to know about this gateway (`GET /about`).
#[derive(Debug, Serialize)]
struct About {
    event_id: u64,
    auth: GatewayAuth,
}

/// The page loads its own script, style and data, from here only, and is
/// never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router(gateway: Arc<Gateway>) -> Router {
    let set = |name, value| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
    Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/about", get(about))
        .layer(set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .with_state(gateway)
}

async fn about(State(g): State<Arc<Gateway>>) -> impl IntoResponse {
    Json(About { event_id: g.event_id, auth: g.config.gateway.auth })
}

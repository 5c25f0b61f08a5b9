//! The live seat-map page at `/`: plain HTML, CSS and JavaScript compiled
//! into the binary (no build step), drawing the venue from the public
//! availability endpoints and booking through the API.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

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

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/about", get(about))
        .with_state(gateway)
}

async fn about(State(g): State<Arc<Gateway>>) -> impl IntoResponse {
    Json(About { event_id: g.event_id, auth: g.config.gateway.auth })
}

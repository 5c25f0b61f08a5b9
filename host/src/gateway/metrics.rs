//! The gateway's instruments: requests by route and status, their
//! latency, and what was published or refused for back-pressure.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: &'static str,
}

#[derive(Debug)]
pub struct GatewayMetrics {
    requests: Family<RouteLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    /// Commands published, by action (`create`, `pay`, `cancel`).
    pub published: Family<ActionLabel, Counter>,
    /// Requests answered 503 because the publisher's queue was full.
    pub queue_full: Counter,
    /// Creates refused by a buyer's cap, by the cap's name.
    pub limited: Family<LimitLabel, Counter>,
    /// Age of the oldest venue change in each snapshot published once
    /// ready, from its record's producer timestamp: how far the reads trail
    /// the topics.
    pub view_lag: Histogram,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            requests: Family::default(),
            // 50 µs … ~13 s.
            latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.00005, 2.0, 19))),
            published: Family::default(),
            queue_full: Counter::default(),
            limited: Family::default(),
            // 1 ms … ~33 s.
            view_lag: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        }
    }
}

impl GatewayMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("http_requests", "HTTP requests answered, by route and status", self.requests.clone());
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (server-sent event streams: to the first byte)",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register("commands_published", "Booking commands published, by action", self.published.clone());
        registry.register(
            "publish_queue_full",
            "Requests refused with 503 because the publisher's queue was full",
            self.queue_full.clone(),
        );
        registry.register("buyer_limited", "Creates refused by a per-buyer cap, by cap", self.limited.clone());
        registry.register_with_unit(
            "view_lag",
            "Age of the oldest venue change in each published seat snapshot, since its record was produced",
            Unit::Seconds,
            self.view_lag.clone(),
        );
    }
}

/// Counts and times every request by its route template.
pub async fn track(State(gateway): State<std::sync::Arc<super::Gateway>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    // A fixed set: any other method must not mint a series.
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        _ => "other",
    }
    .to_owned();
    let response = next.run(request).await;
    let m = &gateway.metrics;
    m.requests.get_or_create(&RouteLabels { method, route: route.clone(), status: response.status().as_u16() }).inc();
    m.latency.get_or_create(&RouteLabel { route }).observe(started.elapsed().as_secs_f64());
    response
}

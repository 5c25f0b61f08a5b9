//! The booking gateway: buyers' HTTP front door on the batched publisher.
//!
//! Writes (create, pay, cancel) are validated, then published to the
//! event's `booking-command` topic with the host's partitioning and answered
//! `202` without waiting for the services, but only once the broker has
//! acknowledged the command (`acks=all`): creates and cancels ride the next
//! batch, pays are sent at once. Reads come from views of the public
//! topics ([`feed`]), never from a plugin's state. ARCHITECTURE.md, "The
//! gateway", has the flow.

pub mod api;
pub mod auth;
pub mod bookings;
pub mod error;
pub mod feed;
pub mod idempotency;
pub mod metrics;
pub mod page;
pub mod refresh;
pub mod requests;
pub mod snapshot;
pub mod sse;
pub mod streams;
pub mod venue;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::client::ClientSettings;
use crate::config::Config;
use crate::publisher::{self, Publisher};
pub use auth::{AuthError, Authenticator};
pub use feed::{FeedError, Views};

/// What every request handler shares.
pub struct Gateway {
    pub event_id: u64,
    /// Partition count of the event's topics.
    pub partitions: i32,
    pub config: Config,
    /// The batched publisher: creates and cancels fire-and-forget, pays
    /// acknowledged one by one.
    pub publisher: Publisher,
    pub auth: Authenticator,
    pub views: Arc<Views>,
    pub metrics: metrics::GatewayMetrics,
    /// Open server-sent event streams, capped.
    pub streams: Arc<streams::Streams>,
}

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Publish(#[from] crate::publisher::PublishError),
    #[error("cannot start the snapshot thread: {0}")]
    Snapshot(std::io::Error),
}

/// The gateway's producer: the configured one, but a `202` promises what
/// only `acks=all` with idempotence delivers, and answers wait for their
/// batch, so it lingers `gateway.linger_ms`.
fn producer_properties(config: &Config) -> ClientSettings {
    let mut properties = publisher::producer_properties(config);
    if config.producer.acks != "all" && config.producer.acks != "-1" || !config.producer.enable_idempotence {
        tracing::warn!(
            acks = %config.producer.acks,
            idempotence = config.producer.enable_idempotence,
            "the gateway publishes with acks=all and idempotence whatever [producer] says"
        );
    }
    properties
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", config.gateway.linger_ms.to_string());
    properties
}

impl Gateway {
    /// Connects the publisher and starts the views' feed (which runs until `stop`).
    pub fn start(
        config: &Config,
        event_id: u64,
        partitions: i32,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Self>, GatewayError> {
        let auth = Authenticator::from_config(&config.gateway)?;
        let publisher = Publisher::from_properties(producer_properties(config))?;
        let views = Arc::new(Views::new(Duration::from_secs(config.gateway.idempotency_ttl_s)));
        let metrics = metrics::GatewayMetrics::default();
        let interval = Duration::from_millis(config.gateway.seat_events_interval_ms);
        let stream_interval = Duration::from_millis(config.gateway.stream_interval_ms);
        refresh::spawn(views.clone(), interval, stream_interval, metrics.view_lag.clone(), stop.clone())
            .map_err(GatewayError::Snapshot)?;
        // Keys live `idempotency_ttl_s`; an hour more covers creates still undecided.
        let commands_since = std::time::SystemTime::now()
            .checked_sub(Duration::from_secs(config.gateway.idempotency_ttl_s + 3_600))
            .unwrap_or(std::time::UNIX_EPOCH);
        feed::spawn(&config.kafka, event_id, partitions, commands_since, views.clone(), stop)?;
        Ok(Arc::new(Gateway {
            event_id,
            partitions,
            config: config.clone(),
            publisher,
            auth,
            views,
            metrics,
            streams: Arc::new(streams::Streams::new(config.gateway.max_streams, config.gateway.max_streams_per_client)),
        }))
    }
}

/// The gateway's routes (API and page) with what every answer carries:
/// bodies capped at `gateway.max_body_bytes` (refused by their declared
/// length before any of it is read, so before `100 Continue`) and read
/// within `gateway.body_timeout_ms`, and no content sniffing.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let g = &gateway.config.gateway;
    let (max_body, body_timeout) = (g.max_body_bytes, Duration::from_millis(g.body_timeout_ms));
    api::router(gateway.clone())
        .merge(page::router(gateway))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
}

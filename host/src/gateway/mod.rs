//! The booking gateway: buyers' HTTP front door on the batched publisher.
//!
//! Writes (create, pay, cancel) are validated, then published to the
//! event's `booking-command` topic with the host's partitioning and answered
//! `202` without waiting for the services; pays are critical (sent at once,
//! acknowledged before the answer). Reads come from views of the public
//! topics ([`feed`]), never from a plugin's state. ARCHITECTURE.md, "The
//! gateway", has the flow.

pub mod api;
pub mod auth;
pub mod bookings;
pub mod error;
pub mod feed;
pub mod metrics;
pub mod page;
pub mod refresh;
pub mod requests;
pub mod snapshot;
pub mod sse;
pub mod venue;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::config::Config;
use crate::publisher::Publisher;
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

impl Gateway {
    /// Connects the publisher and starts the views' feed (which runs until `stop`).
    pub fn start(
        config: &Config,
        event_id: u64,
        partitions: i32,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Self>, GatewayError> {
        let auth = Authenticator::from_config(&config.gateway)?;
        let publisher = Publisher::new(config)?;
        let views = Arc::new(Views::default());
        let metrics = metrics::GatewayMetrics::default();
        let interval = std::time::Duration::from_millis(config.gateway.seat_events_interval_ms);
        refresh::spawn(views.clone(), interval, metrics.view_lag.clone(), stop.clone())
            .map_err(GatewayError::Snapshot)?;
        feed::spawn(&config.kafka, event_id, partitions, views.clone(), stop)?;
        Ok(Arc::new(Gateway { event_id, partitions, config: config.clone(), publisher, auth, views, metrics }))
    }
}

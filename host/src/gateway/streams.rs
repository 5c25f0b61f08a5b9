//! The cap on open server-sent event streams, overall and per client
//! address: a stream holds a connection for as long as its viewer wants,
//! so without a cap a few clients could hold them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::error::ApiError;
use crate::http::pressure::Pressure;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusedLabel {
    limit: &'static str,
}

/// Open streams, by client address.
#[derive(Debug)]
pub struct Streams {
    max: usize,
    max_per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    gauge: Gauge,
    refused: Family<RefusedLabel, Counter>,
    pressure: Pressure,
}

/// One open stream; dropping it (the stream ends or its peer leaves)
/// gives its place back.
#[derive(Debug)]
pub struct StreamPermit {
    streams: Arc<Streams>,
    client: IpAddr,
}

impl Streams {
    /// At most `max` streams, `max_per_client` from one address (0: none).
    pub fn new(max: usize, max_per_client: usize) -> Self {
        Streams {
            max,
            max_per_client,
            open: Mutex::new((0, HashMap::new())),
            gauge: Gauge::default(),
            refused: Family::default(),
            pressure: Pressure::new("streams"),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register("streams_open", "Server-sent event streams open now", self.gauge.clone());
        registry.register(
            "streams_refused",
            "Streams answered 503 at a limit (max_streams, max_streams_per_client)",
            self.refused.clone(),
        );
    }

    /// A place for a stream from `client`, or a 503 naming the limit.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<StreamPermit, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let from_client = open.1.get(&client).copied().unwrap_or(0);
        let refused = if open.0 >= self.max {
            Some(("max_streams", format!("the gateway has {} streams open, its limit", open.0)))
        } else if from_client >= self.max_per_client {
            Some((
                "max_streams_per_client",
                format!("{from_client} streams are open from your address, the limit per client"),
            ))
        } else {
            None
        };
        if let Some((limit, why)) = refused {
            drop(open);
            self.refused.get_or_create(&RefusedLabel { limit }).inc();
            self.pressure.warn(|suppressed| {
                tracing::warn!(limit, %client, suppressed, "refusing server-sent event streams at a limit");
            });
            return Err(ApiError::unavailable(format!("{why} (gateway.{limit}); close one or retry later"), 5));
        }
        open.0 += 1;
        *open.1.entry(client).or_default() += 1;
        self.gauge.inc();
        Ok(StreamPermit { streams: self.clone(), client })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.client);
            }
        }
        self.streams.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_capped_overall_and_per_client_and_given_back_when_dropped() {
        let streams = Arc::new(Streams::new(3, 2));
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let first = streams.admit(a).unwrap();
        let _second = streams.admit(a).unwrap();
        let refused = streams.admit(a).unwrap_err();
        assert_eq!(refused.status.as_u16(), 503);
        assert!(refused.message.contains("max_streams_per_client"), "{}", refused.message);
        let _third = streams.admit(b).unwrap();
        assert!(streams.admit(b).unwrap_err().message.contains("gateway.max_streams)"));
        drop(first);
        assert!(streams.admit(b).is_ok(), "a closed stream's place is free again");
    }
}

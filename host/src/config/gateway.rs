//! `[gateway]`: the HTTP front door (`turnstile gateway`).

use serde::{Deserialize, Serialize};

/// How buyers prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayAuth {
    /// `Authorization: Bearer <HS256 JWT>` whose subject is the buyer id.
    Jwt,
    /// No authentication: the buyer is whoever `X-Buyer-Id` names (default
    /// 1). For local demos only; the gateway says so at start.
    None,
}

/// The booking gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// `host:port` to listen on (`gateway --listen`).
    pub listen: String,
    pub auth: GatewayAuth,
    /// The HS256 secret of buyers' tokens (`TURNSTILE_GATEWAY__JWT_SECRET`);
    /// at least 32 bytes. Never printed: `turnstile config` shows it redacted.
    #[serde(serialize_with = "redacted")]
    pub jwt_secret: Option<String>,
    /// Lifetime of tokens `gateway token` prints; at most
    /// `max_token_lifetime_s`, or the gateway would refuse its own tokens.
    pub token_ttl_s: u64,
    /// Clock skew allowed between the token's issuer and the gateway, on
    /// `exp`, `nbf` and `iat`. Small: it extends every token's life.
    pub token_leeway_s: u64,
    /// When set, tokens must carry this `iss`, and `gateway token` puts it
    /// in; so tokens minted for another system with the same secret fail.
    pub token_issuer: Option<String>,
    /// When set, tokens must name this in `aud`, and `gateway token` puts it
    /// in. When unset, a token with any `aud` is refused (RFC 7519 §4.1.3:
    /// it is meant for someone else).
    pub token_audience: Option<String>,
    /// Longest `exp - iat` accepted: a leaked token is good for at most this
    /// long. Tokens without `iat` are refused, as their age is unknown.
    pub max_token_lifetime_s: u64,
    /// Seat reads (the snapshot) are refreshed at most this often while
    /// changes keep coming (at once after a quiet spell).
    pub seat_events_interval_ms: u64,
    /// Availability streams get the changes at most this often, each at its
    /// own offset within half an interval: thousands of streams cost a few
    /// writes a second each, not one per snapshot.
    pub stream_interval_ms: u64,
    /// How long a create or pay may wait for the broker's acknowledgement
    /// before the request answers 503 (its outcome is then settled later:
    /// a retry with the same `Idempotency-Key` learns it).
    #[serde(alias = "critical_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// `linger.ms` of the gateway's producer: a create is answered when its
    /// batch is acknowledged, so batches wait little (`producer.linger_ms`
    /// is for bulk publishing).
    pub linger_ms: u32,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_s: u64,
    /// Bookings a buyer may have in `processing` or `pending_payment` at
    /// once (0: no limit); one more is 429.
    pub max_open_bookings_per_buyer: u32,
    /// Tickets a buyer may hold in this event, in bookings not failed or
    /// cancelled (0: no limit); a create past it is 422 naming the limit.
    pub max_tickets_per_buyer: u32,
    /// `host:port` of a separate listener for `/metrics`, `/healthz` and
    /// `/readyz`; unset, they are served with the API.
    pub admin_listen: Option<String>,
    /// A connection must send a request's headers within this; a keep-alive
    /// connection idle this long between requests is closed too.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this.
    pub body_timeout_ms: u64,
    /// A request (but a stream) must be answered within this.
    pub request_timeout_ms: u64,
    /// Largest request head (request line and headers).
    pub max_header_bytes: usize,
    /// Largest request body; larger is 413 before any of it is read.
    pub max_body_bytes: usize,
    /// Open connections; past it a new one is answered 503 and closed.
    pub max_connections: usize,
    /// Open server-sent event streams; past it a new one is 503.
    pub max_streams: usize,
    /// Open server-sent event streams from one client address.
    pub max_streams_per_client: usize,
    /// A comment is sent on an idle stream this often, so dead peers are noticed.
    pub stream_keepalive_ms: u64,
}

/// Shortest `gateway.jwt_secret` accepted: HS256 wants 256 bits of key.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:8080".into(),
            auth: GatewayAuth::Jwt,
            jwt_secret: None,
            token_ttl_s: 86_400,
            token_leeway_s: 5,
            token_issuer: None,
            token_audience: None,
            max_token_lifetime_s: 86_400,
            seat_events_interval_ms: 100,
            stream_interval_ms: 500,
            ack_timeout_ms: 5_000,
            linger_ms: 5,
            idempotency_ttl_s: 86_400,
            max_open_bookings_per_buyer: 4,
            max_tickets_per_buyer: 8,
            admin_listen: None,
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_header_bytes: 16_384,
            max_body_bytes: 16_384,
            max_connections: 16_384,
            max_streams: 12_000,
            max_streams_per_client: 32,
            stream_keepalive_ms: 15_000,
        }
    }
}

fn redacted<S: serde::Serializer>(secret: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some("<redacted>"),
        None => serializer.serialize_none(),
    }
}

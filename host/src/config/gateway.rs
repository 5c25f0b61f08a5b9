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
    /// Lifetime of tokens `gateway token` prints.
    pub token_ttl_s: u64,
    /// Seat reads and availability events are refreshed at most this often
    /// while changes keep coming (at once after a quiet spell).
    pub seat_events_interval_ms: u64,
    /// How long a pay (a critical command) may wait for the broker's
    /// acknowledgement before the request answers 503.
    pub critical_timeout_ms: u64,
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
            seat_events_interval_ms: 100,
            critical_timeout_ms: 5_000,
        }
    }
}

fn redacted<S: serde::Serializer>(secret: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some("<redacted>"),
        None => serializer.serialize_none(),
    }
}

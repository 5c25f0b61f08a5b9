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
    /// Availability events of one event are sent at most this often.
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
            token_leeway_s: 5,
            token_issuer: None,
            token_audience: None,
            max_token_lifetime_s: 86_400,
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

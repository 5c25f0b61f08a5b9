//! Buyers' identity: HS256 bearer tokens whose subject is the buyer id, or
//! no authentication at all for local demos (`gateway.auth = "none"`).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{GatewayAuth, GatewayConfig};

/// Why a request is not authenticated (401), or a token cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("invalid token: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("the token's subject {0:?} is not a buyer id")]
    Subject(String),
    #[error("X-Buyer-Id {0:?} is not a buyer id")]
    BuyerHeader(String),
    #[error("gateway.jwt_secret cannot be used as an HS256 key: {0}")]
    Key(#[source] jsonwebtoken::errors::Error),
    #[error("gateway.jwt_secret is not set (TURNSTILE_GATEWAY__JWT_SECRET); set it or use gateway.auth = \"none\"")]
    NoSecret,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

/// Checks who a request comes from.
#[derive(Clone)]
pub enum Authenticator {
    Jwt { decoding: DecodingKey, validation: Box<Validation> },
    None,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authenticator::Jwt { .. } => "Authenticator::Jwt",
            Authenticator::None => "Authenticator::None",
        })
    }
}

impl Authenticator {
    pub fn from_config(config: &GatewayConfig) -> Result<Self, AuthError> {
        match config.auth {
            GatewayAuth::None => Ok(Authenticator::None),
            GatewayAuth::Jwt => {
                let secret = config.jwt_secret.as_deref().ok_or(AuthError::NoSecret)?;
                let mut validation = Validation::new(Algorithm::HS256);
                validation.set_required_spec_claims(&["exp", "sub"]);
                Ok(Authenticator::Jwt {
                    decoding: DecodingKey::from_secret(secret.as_bytes()).map_err(AuthError::Key)?,
                    validation: Box::new(validation),
                })
            }
        }
    }

    /// The buyer a request speaks for.
    pub fn buyer(&self, headers: &HeaderMap) -> Result<u64, AuthError> {
        match self {
            Authenticator::None => match headers.get("x-buyer-id") {
                None => Ok(1),
                Some(v) => {
                    let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    text.trim().parse().map_err(|_| AuthError::BuyerHeader(text))
                }
            },
            Authenticator::Jwt { decoding, validation } => {
                let header = headers.get(axum::http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
                    .map(str::trim)
                    .ok_or(AuthError::NotBearer)?;
                let data = jsonwebtoken::decode::<Claims>(token, decoding, validation).map_err(AuthError::Invalid)?;
                data.claims.sub.parse().map_err(|_| AuthError::Subject(data.claims.sub))
            }
        }
    }
}

/// A token for `buyer`, valid for `gateway.token_ttl_s`.
pub fn issue(config: &GatewayConfig, buyer: u64) -> Result<String, AuthError> {
    let secret = config.jwt_secret.as_deref().ok_or(AuthError::NoSecret)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = Claims { sub: buyer.to_string(), iat: now, exp: now + config.token_ttl_s };
    let key = EncodingKey::from_secret(secret.as_bytes()).map_err(AuthError::Key)?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(AuthError::Key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GatewayConfig {
        GatewayConfig { jwt_secret: Some("a-test-secret-of-at-least-32-bytes!!".into()), ..Default::default() }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn an_issued_token_names_its_buyer() {
        let auth = Authenticator::from_config(&config()).unwrap();
        let token = issue(&config(), 42).unwrap();
        assert_eq!(auth.buyer(&bearer(&token)).unwrap(), 42);
    }

    #[test]
    fn missing_forged_and_expired_tokens_are_refused() {
        let auth = Authenticator::from_config(&config()).unwrap();
        assert!(matches!(auth.buyer(&HeaderMap::new()), Err(AuthError::Missing)));
        let other = GatewayConfig { jwt_secret: Some("another-secret-of-at-least-32-bytes!".into()), ..config() };
        let forged = issue(&other, 42).unwrap();
        assert!(matches!(auth.buyer(&bearer(&forged)), Err(AuthError::Invalid(_))));
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(matches!(auth.buyer(&headers), Err(AuthError::NotBearer)));
        let claims = Claims { sub: "42".into(), iat: 1, exp: 2 };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(config().jwt_secret.unwrap().as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(matches!(auth.buyer(&bearer(&expired)), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn without_auth_the_buyer_header_names_the_buyer() {
        let auth = Authenticator::None;
        assert_eq!(auth.buyer(&HeaderMap::new()).unwrap(), 1);
        let mut headers = HeaderMap::new();
        headers.insert("x-buyer-id", "7".parse().unwrap());
        assert_eq!(auth.buyer(&headers).unwrap(), 7);
        headers.insert("x-buyer-id", "seven".parse().unwrap());
        assert!(matches!(auth.buyer(&headers), Err(AuthError::BuyerHeader(_))));
    }
}

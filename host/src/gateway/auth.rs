//! Buyers' identity: HS256 bearer tokens whose subject is the buyer id, or
//! no authentication at all for local demos (`gateway.auth = "none"`).
//!
//! jsonwebtoken checks only the signature and algorithm; the claims are
//! checked here, against one clock reading, so each refusal names its
//! reason and the tests can fix the time.

use std::collections::HashSet;
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
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("the token has no `iat` claim: its lifetime cannot be checked against gateway.max_token_lifetime_s")]
    NoIssuedAt,
    #[error("token expired (exp {exp}, now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("token not valid yet (nbf {nbf}, now {now})")]
    NotYetValid { nbf: u64, now: u64 },
    #[error("token issued in the future (iat {iat}, now {now}); is the issuer's clock ahead?")]
    IssuedInFuture { iat: u64, now: u64 },
    #[error("token expires (exp {exp}) before it was issued (iat {iat})")]
    ExpiresBeforeIssued { iat: u64, exp: u64 },
    #[error("token lifetime {lifetime} s exceeds gateway.max_token_lifetime_s ({max} s)")]
    Lifetime { lifetime: u64, max: u64 },
    #[error("issuer {} not accepted: gateway.token_issuer is {expected:?}", quoted(.got.as_slice()))]
    Issuer { got: Option<String>, expected: String },
    #[error("audience {} not accepted: {}", quoted(.got), audience_setting(.expected))]
    Audience { got: Vec<String>, expected: Option<String> },
    #[error("the token's subject {0:?} is not a buyer id")]
    Subject(String),
    #[error("X-Buyer-Id {0:?} is not a buyer id")]
    BuyerHeader(String),
    #[error("gateway.jwt_secret cannot be used as an HS256 key: {0}")]
    Key(#[source] jsonwebtoken::errors::Error),
    #[error("gateway.jwt_secret is not set (TURNSTILE_GATEWAY__JWT_SECRET); set it or use gateway.auth = \"none\"")]
    NoSecret,
}

/// `"a"`, `"a", "b"`, or `(none)` for a claim's values in a message.
fn quoted(values: &[String]) -> String {
    if values.is_empty() {
        return "(none)".to_owned();
    }
    values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
}

fn audience_setting(expected: &Option<String>) -> String {
    match expected {
        Some(e) => format!("gateway.token_audience is {e:?}"),
        None => "gateway.token_audience is not set".to_owned(),
    }
}

/// A token's claims. All optional, so that a missing one is refused by
/// name rather than as a JSON error. Times are integer Unix seconds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

/// `aud` is one string or an array of them (RFC 7519 §4.1.3).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn into_vec(self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a],
            Audience::Many(a) => a,
        }
    }
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
struct TokenRules {
    leeway_s: u64,
    issuer: Option<String>,
    audience: Option<String>,
    max_lifetime_s: u64,
}

impl TokenRules {
    fn from_config(config: &GatewayConfig) -> Self {
        TokenRules {
            leeway_s: config.token_leeway_s,
            issuer: config.token_issuer.clone(),
            audience: config.token_audience.clone(),
            max_lifetime_s: config.max_token_lifetime_s,
        }
    }

    /// The token's subject, if its claims hold at `now`.
    fn check(&self, claims: Claims, now: u64) -> Result<String, AuthError> {
        let sub = claims.sub.ok_or(AuthError::MissingClaim("sub"))?;
        let exp = claims.exp.ok_or(AuthError::MissingClaim("exp"))?;
        let iat = claims.iat.ok_or(AuthError::NoIssuedAt)?;
        let leeway = self.leeway_s;
        // RFC 7519 §4.1.4: valid only *before* exp.
        if now >= exp.saturating_add(leeway) {
            return Err(AuthError::Expired { exp, now });
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid { nbf, now });
        }
        // A future iat would stretch the lifetime bound past `now + max`.
        if iat > now.saturating_add(leeway) {
            return Err(AuthError::IssuedInFuture { iat, now });
        }
        let lifetime = exp.checked_sub(iat).ok_or(AuthError::ExpiresBeforeIssued { iat, exp })?;
        if lifetime > self.max_lifetime_s {
            return Err(AuthError::Lifetime { lifetime, max: self.max_lifetime_s });
        }
        if let Some(expected) = &self.issuer
            && claims.iss.as_ref() != Some(expected)
        {
            return Err(AuthError::Issuer { got: claims.iss, expected: expected.clone() });
        }
        let aud = claims.aud.map(Audience::into_vec).unwrap_or_default();
        let accepted = match &self.audience {
            Some(expected) => aud.contains(expected),
            // Meant for someone else: RFC 7519 §4.1.3 says refuse.
            None => aud.is_empty(),
        };
        if !accepted {
            return Err(AuthError::Audience { got: aud, expected: self.audience.clone() });
        }
        Ok(sub)
    }
}

/// Checks who a request comes from.
#[derive(Clone)]
pub enum Authenticator {
    Jwt(Box<JwtAuth>),
    None,
}

/// The key and rules of `gateway.auth = "jwt"`.
#[derive(Clone)]
pub struct JwtAuth {
    decoding: DecodingKey,
    validation: Validation,
    rules: TokenRules,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authenticator::Jwt(_) => "Authenticator::Jwt",
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
                // Signature and algorithm only: `TokenRules::check` does the claims.
                let mut validation = Validation::new(Algorithm::HS256);
                validation.required_spec_claims = HashSet::new();
                validation.validate_exp = false;
                validation.validate_nbf = false;
                validation.validate_aud = false;
                validation.leeway = 0;
                Ok(Authenticator::Jwt(Box::new(JwtAuth {
                    decoding: DecodingKey::from_secret(secret.as_bytes()).map_err(AuthError::Key)?,
                    validation,
                    rules: TokenRules::from_config(config),
                })))
            }
        }
    }

    /// The buyer a request speaks for.
    pub fn buyer(&self, headers: &HeaderMap) -> Result<u64, AuthError> {
        self.buyer_at(headers, unix_now())
    }

    fn buyer_at(&self, headers: &HeaderMap, now: u64) -> Result<u64, AuthError> {
        match self {
            Authenticator::None => match headers.get("x-buyer-id") {
                None => Ok(1),
                Some(v) => {
                    let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    text.trim().parse().map_err(|_| AuthError::BuyerHeader(text))
                }
            },
            Authenticator::Jwt(jwt) => {
                let header = headers.get(axum::http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
                    .map(str::trim)
                    .ok_or(AuthError::NotBearer)?;
                let data = jsonwebtoken::decode::<Claims>(token, &jwt.decoding, &jwt.validation)
                    .map_err(AuthError::Invalid)?;
                let sub = jwt.rules.check(data.claims, now)?;
                sub.parse().map_err(|_| AuthError::Subject(sub))
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A token for `buyer`, valid for `gateway.token_ttl_s`, with the
/// configured issuer and audience: one the gateway accepts.
pub fn issue(config: &GatewayConfig, buyer: u64) -> Result<String, AuthError> {
    issue_at(config, buyer, unix_now())
}

fn issue_at(config: &GatewayConfig, buyer: u64, now: u64) -> Result<String, AuthError> {
    let secret = config.jwt_secret.as_deref().ok_or(AuthError::NoSecret)?;
    // Config validation refuses this too; `issue` may get an unchecked config.
    if config.token_ttl_s > config.max_token_lifetime_s {
        return Err(AuthError::Lifetime { lifetime: config.token_ttl_s, max: config.max_token_lifetime_s });
    }
    let claims = Claims {
        sub: Some(buyer.to_string()),
        iss: config.token_issuer.clone(),
        aud: config.token_audience.clone().map(Audience::One),
        iat: Some(now),
        nbf: None,
        exp: Some(now.saturating_add(config.token_ttl_s)),
    };
    let key = EncodingKey::from_secret(secret.as_bytes()).map_err(AuthError::Key)?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(AuthError::Key)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
    const NOW: u64 = 1_700_000_000;

    fn config() -> GatewayConfig {
        GatewayConfig { jwt_secret: Some(SECRET.into()), ..Default::default() }
    }

    fn strict() -> GatewayConfig {
        GatewayConfig {
            token_leeway_s: 0,
            token_issuer: Some("tickets".into()),
            token_audience: Some("gateway".into()),
            max_token_lifetime_s: 3_600,
            token_ttl_s: 600,
            ..config()
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    fn sign(claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    /// A token the strict config accepts at `NOW`, with `changes` applied
    /// (`null` removes a claim).
    fn claims(changes: Value) -> Value {
        let mut claims = json!({"sub": "42", "iss": "tickets", "aud": "gateway", "iat": NOW - 10, "exp": NOW + 600});
        for (k, v) in changes.as_object().unwrap() {
            match v {
                Value::Null => claims.as_object_mut().unwrap().remove(k),
                v => claims.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        claims
    }

    fn check(config: &GatewayConfig, changes: Value) -> Result<u64, AuthError> {
        let auth = Authenticator::from_config(config).unwrap();
        auth.buyer_at(&bearer(&sign(&claims(changes))), NOW)
    }

    #[test]
    fn an_issued_token_names_its_buyer() {
        for config in [config(), strict()] {
            let auth = Authenticator::from_config(&config).unwrap();
            let token = issue(&config, 42).unwrap();
            assert_eq!(auth.buyer(&bearer(&token)).unwrap(), 42);
        }
        // Accepted up to token_ttl_s later, then expired.
        let auth = Authenticator::from_config(&strict()).unwrap();
        let token = issue_at(&strict(), 7, NOW).unwrap();
        assert_eq!(auth.buyer_at(&bearer(&token), NOW + 599).unwrap(), 7);
        assert!(matches!(auth.buyer_at(&bearer(&token), NOW + 600), Err(AuthError::Expired { .. })));
    }

    #[test]
    fn a_ttl_above_the_lifetime_bound_issues_nothing() {
        let config = GatewayConfig { token_ttl_s: 3_601, ..strict() };
        let err = issue(&config, 42).unwrap_err();
        assert!(err.to_string().contains("gateway.max_token_lifetime_s"), "{err}");
    }

    #[test]
    fn a_valid_token_is_accepted() {
        assert_eq!(check(&strict(), json!({})).unwrap(), 42);
        // aud may be an array naming the gateway among others.
        assert_eq!(check(&strict(), json!({"aud": ["billing", "gateway"]})).unwrap(), 42);
        // nbf in the past, and a lifetime of exactly the bound.
        assert_eq!(check(&strict(), json!({"nbf": NOW - 10, "iat": NOW - 3_000, "exp": NOW + 600})).unwrap(), 42);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let err = check(&strict(), json!({"exp": NOW - 2})).unwrap_err();
        assert!(matches!(err, AuthError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("token expired"), "{err}");
        // exp is the first second it is no longer valid.
        assert!(matches!(check(&strict(), json!({"exp": NOW})), Err(AuthError::Expired { .. })));
        // The leeway forgives a little skew, and no more.
        let lenient = GatewayConfig { token_leeway_s: 5, ..strict() };
        assert_eq!(check(&lenient, json!({"exp": NOW - 2})).unwrap(), 42);
        assert!(matches!(check(&lenient, json!({"exp": NOW - 5})), Err(AuthError::Expired { .. })));
    }

    #[test]
    fn a_token_from_the_future_is_refused() {
        let err = check(&strict(), json!({"nbf": NOW + 60})).unwrap_err();
        assert!(err.to_string().contains("token not valid yet (nbf"), "{err}");
        let err = check(&strict(), json!({"iat": NOW + 60})).unwrap_err();
        assert!(matches!(err, AuthError::IssuedInFuture { .. }), "{err}");
        // Within the leeway: a clock slightly ahead.
        let lenient = GatewayConfig { token_leeway_s: 5, ..strict() };
        assert_eq!(check(&lenient, json!({"nbf": NOW + 5, "iat": NOW + 5})).unwrap(), 42);
        assert!(matches!(check(&lenient, json!({"nbf": NOW + 6})), Err(AuthError::NotYetValid { .. })));
        assert!(matches!(check(&lenient, json!({"iat": NOW + 6})), Err(AuthError::IssuedInFuture { .. })));
    }

    #[test]
    fn a_token_living_too_long_is_refused() {
        let err = check(&strict(), json!({"iat": NOW - 10, "exp": NOW - 10 + 3_601})).unwrap_err();
        assert!(matches!(err, AuthError::Lifetime { lifetime: 3_601, max: 3_600 }), "{err}");
        assert!(err.to_string().contains("token lifetime 3601 s exceeds gateway.max_token_lifetime_s"), "{err}");
        // Without iat its lifetime is unknown.
        let err = check(&strict(), json!({"iat": null})).unwrap_err();
        assert!(matches!(err, AuthError::NoIssuedAt), "{err}");
        let err = check(&strict(), json!({"iat": NOW + 600, "exp": NOW + 500})).unwrap_err();
        assert!(matches!(err, AuthError::IssuedInFuture { .. }), "{err}");
        let lenient = GatewayConfig { token_leeway_s: 300, ..strict() };
        let err = check(&lenient, json!({"iat": NOW + 200, "exp": NOW + 100})).unwrap_err();
        assert!(matches!(err, AuthError::ExpiresBeforeIssued { .. }), "{err}");
    }

    #[test]
    fn missing_claims_are_named() {
        for claim in ["sub", "exp"] {
            let err = check(&strict(), json!({ claim: null })).unwrap_err();
            assert!(err.to_string().contains(&format!("`{claim}`")), "{err}");
        }
    }

    #[test]
    fn the_issuer_must_match_when_configured() {
        let err = check(&strict(), json!({"iss": "elsewhere"})).unwrap_err();
        assert_eq!(err.to_string(), r#"issuer "elsewhere" not accepted: gateway.token_issuer is "tickets""#);
        let err = check(&strict(), json!({"iss": null})).unwrap_err();
        assert!(err.to_string().starts_with("issuer (none) not accepted"), "{err}");
        // Not configured: any issuer, or none.
        let open = GatewayConfig { token_issuer: None, ..strict() };
        assert_eq!(check(&open, json!({"iss": "elsewhere"})).unwrap(), 42);
        assert_eq!(check(&open, json!({"iss": null})).unwrap(), 42);
    }

    #[test]
    fn the_audience_must_match_when_configured() {
        let err = check(&strict(), json!({"aud": "billing"})).unwrap_err();
        assert_eq!(err.to_string(), r#"audience "billing" not accepted: gateway.token_audience is "gateway""#);
        let err = check(&strict(), json!({"aud": null})).unwrap_err();
        assert!(err.to_string().starts_with("audience (none) not accepted"), "{err}");
        assert!(matches!(check(&strict(), json!({"aud": []})), Err(AuthError::Audience { .. })));
        // Not configured: a token meant for someone else is still refused.
        let open = GatewayConfig { token_audience: None, ..strict() };
        assert_eq!(check(&open, json!({"aud": null})).unwrap(), 42);
        let err = check(&open, json!({"aud": "billing"})).unwrap_err();
        assert!(err.to_string().contains("gateway.token_audience is not set"), "{err}");
    }

    #[test]
    fn missing_forged_and_malformed_tokens_are_refused() {
        let auth = Authenticator::from_config(&config()).unwrap();
        assert!(matches!(auth.buyer(&HeaderMap::new()), Err(AuthError::Missing)));
        let other = GatewayConfig { jwt_secret: Some("another-secret-of-at-least-32-bytes!".into()), ..config() };
        let forged = issue(&other, 42).unwrap();
        assert!(matches!(auth.buyer(&bearer(&forged)), Err(AuthError::Invalid(_))));
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(matches!(auth.buyer(&headers), Err(AuthError::NotBearer)));
        assert!(matches!(check(&strict(), json!({"exp": "tomorrow"})), Err(AuthError::Invalid(_))));
        assert!(matches!(check(&strict(), json!({"sub": "buyer-42"})), Err(AuthError::Subject(_))));
        // Another algorithm, even with the right secret.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(json!({})),
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap();
        let auth = Authenticator::from_config(&strict()).unwrap();
        assert!(matches!(auth.buyer_at(&bearer(&hs512), NOW), Err(AuthError::Invalid(_))));
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

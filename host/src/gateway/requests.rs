//! Request bodies, parsed and checked against DOMAIN.md §5 and the venue
//! before anything is published: a body that is not JSON is 400; JSON of
//! the wrong shape (a field of the wrong type, missing, unknown, or
//! breaking a rule; a body that is not an object) is 422, naming the field.

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny};
use sha2::{Digest, Sha256};
use turnstile_protocol::rules;
use turnstile_protocol::{SeatPosition, SeatSelectionMode};

use super::error::ApiError;
use super::venue::Venue;
use axum::http::StatusCode;

/// `POST /events/{id}/bookings`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    pub section: String,
    pub subsection: u32,
    pub quantity: u32,
    #[serde(deserialize_with = "selection_mode")]
    pub seat_selection_mode: SeatSelectionMode,
    #[serde(default)]
    pub seat_positions: Vec<SeatPosition>,
}

/// Version of [`BookingRequest::digest`]'s encoding: digests are kept in
/// Kafka headers, so a change of encoding must change this.
const DIGEST_DOMAIN: &[u8] = b"turnstile.booking-request.v1\0";

impl BookingRequest {
    /// Parses `body`, naming the field a type error is in.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let Some(&first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "the request body is empty"));
        };
        // serde would also read a struct from an array of its fields.
        if first != b'{' {
            well_formed(body)?;
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "the request body must be a JSON object",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed: Result<Self, _> = serde_path_to_error::deserialize(&mut de);
        let request = parsed.map_err(|err| {
            // The error's category does not tell: serde_json reports some
            // type errors (a number for an enum) as syntax errors. A body
            // that is JSON has the wrong shape, whatever the error says.
            if let Err(malformed) = well_formed(body) {
                return malformed;
            }
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            let field = (path != ".").then_some(path).or_else(|| named_field(&message));
            ApiError { field, ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message) }
        })?;
        // Anything after the object is not JSON we understand.
        de.end().map_err(malformed)?;
        Ok(request)
    }

    /// SHA-256 of the request as parsed, for idempotency: the same request
    /// with keys in another order, other whitespace or escapes, or its
    /// positions in another order (a set, DOMAIN.md §5) has the same digest.
    pub fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(DIGEST_DOMAIN);
        // Length-prefixed, so no two requests encode alike.
        hash.update((self.section.len() as u64).to_be_bytes());
        hash.update(self.section.as_bytes());
        hash.update(self.subsection.to_be_bytes());
        hash.update(self.quantity.to_be_bytes());
        hash.update([match self.seat_selection_mode {
            SeatSelectionMode::BestAvailable => 0u8,
            SeatSelectionMode::Manual => 1,
        }]);
        let mut positions = self.seat_positions.clone();
        positions.sort_unstable();
        hash.update((positions.len() as u64).to_be_bytes());
        for p in positions {
            hash.update(p.row.to_be_bytes());
            hash.update(p.seat.to_be_bytes());
        }
        hash.finalize().into()
    }

    /// Checks the rules and that the subsection and seats exist.
    pub fn check(&self, venue: &Venue) -> Result<(), ApiError> {
        rules::validate_section(&self.section).map_err(|m| ApiError::field("section", m))?;
        if !venue.has_section(&self.section) {
            return Err(ApiError::field("section", format!("unknown section {:?}", self.section)));
        }
        let Some((rows, seats_per_row)) = venue.dimensions(&self.section, self.subsection) else {
            return Err(ApiError::field(
                "subsection",
                format!("section {} has no subsection {}", self.section, self.subsection),
            ));
        };
        rules::validate_selection(self.quantity, self.seat_selection_mode, &self.seat_positions).map_err(|m| {
            let field = if m.starts_with("quantity") { "quantity" } else { "seat_positions" };
            ApiError::field(field, m)
        })?;
        if let Some((i, p)) =
            self.seat_positions.iter().enumerate().find(|(_, p)| p.row > rows || p.seat > seats_per_row)
        {
            return Err(ApiError::field(
                format!("seat_positions[{i}]"),
                format!("seat {p} is outside the subsection's {rows} rows of {seats_per_row} seats"),
            ));
        }
        Ok(())
    }
}

/// 400 unless `body` is one JSON value, whatever its shape.
fn well_formed(body: &[u8]) -> Result<(), ApiError> {
    serde_json::from_slice::<IgnoredAny>(body).map(drop).map_err(malformed)
}

fn malformed(e: serde_json::Error) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("malformed JSON: {e}"))
}

/// serde names a missing, duplicate or unknown field only in its message.
fn named_field(message: &str) -> Option<String> {
    let rest = ["missing field `", "duplicate field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))?;
    Some(rest.split('`').next()?.to_owned())
}

/// The protocol's names, but read as a string: serde_json reads an enum
/// from a number or array as a syntax error ("expected value"), which
/// would name neither the field nor what it should be.
fn selection_mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SeatSelectionMode, D::Error> {
    struct Mode;

    impl de::Visitor<'_> for Mode {
        type Value = SeatSelectionMode;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("\"best_available\" or \"manual\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<SeatSelectionMode, E> {
            SeatSelectionMode::deserialize(de::value::StrDeserializer::<E>::new(v))
        }
    }

    deserializer.deserialize_str(Mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnstile_protocol::ConfigureSubsection;

    fn venue() -> Venue {
        let mut venue = Venue::default();
        venue.configure(&ConfigureSubsection {
            section: "A".into(),
            subsection: 1,
            rows: 2,
            seats_per_row: 3,
            price: 10,
        });
        venue
    }

    fn refused(body: &str) -> ApiError {
        match BookingRequest::parse(body.as_bytes()).and_then(|r| r.check(&venue()).map(|()| r)) {
            Ok(r) => panic!("accepted {body}: {r:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_valid_request_passes() {
        let ok = r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1","2-3"]}"#;
        BookingRequest::parse(ok.as_bytes()).unwrap().check(&venue()).unwrap();
        let best = r#"{"section":"A","subsection":1,"quantity":4,"seat_selection_mode":"best_available"}"#;
        BookingRequest::parse(best.as_bytes()).unwrap().check(&venue()).unwrap();
    }

    #[test]
    fn each_malformed_request_names_its_problem() {
        let cases: &[(&str, u16, Option<&str>)] = &[
            ("", 400, None),
            ("{not json", 400, None),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available"} trailing"#,
                400,
                None,
            ),
            (
                r#"{"section":"A","subsection":"one","quantity":1,"seat_selection_mode":"best_available"}"#,
                422,
                Some("subsection"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":-1,"seat_selection_mode":"best_available"}"#,
                422,
                Some("quantity"),
            ),
            (r#"{"subsection":1,"quantity":1,"seat_selection_mode":"best_available"}"#, 422, Some("section")),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"cheapest"}"#,
                422,
                Some("seat_selection_mode"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"manual","seat_positions":["x"]}"#,
                422,
                Some("seat_positions[0]"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available","colour":"red"}"#,
                422,
                None,
            ),
            (
                r#"{"section":"Z","subsection":1,"quantity":1,"seat_selection_mode":"best_available"}"#,
                422,
                Some("section"),
            ),
            (
                r#"{"section":"A","subsection":9,"quantity":1,"seat_selection_mode":"best_available"}"#,
                422,
                Some("subsection"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":5,"seat_selection_mode":"best_available"}"#,
                422,
                Some("quantity"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":0,"seat_selection_mode":"best_available"}"#,
                422,
                Some("quantity"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1"]}"#,
                422,
                Some("seat_positions"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1","1-1"]}"#,
                422,
                Some("seat_positions"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available","seat_positions":["1-1"]}"#,
                422,
                Some("seat_positions"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"manual","seat_positions":["3-1"]}"#,
                422,
                Some("seat_positions[0]"),
            ),
            // Every wrong type names its field, enums included.
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":5}"#,
                422,
                Some("seat_selection_mode"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":[]}"#,
                422,
                Some("seat_selection_mode"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":{}}"#,
                422,
                Some("seat_selection_mode"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":{"manual":null}}"#,
                422,
                Some("seat_selection_mode"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":null}"#,
                422,
                Some("seat_selection_mode"),
            ),
            (r#"{"section":7,"subsection":1,"quantity":1,"seat_selection_mode":"manual"}"#, 422, Some("section")),
            (
                r#"{"section":"A","subsection":1.5,"quantity":1,"seat_selection_mode":"manual"}"#,
                422,
                Some("subsection"),
            ),
            (r#"{"section":"A","subsection":1,"quantity":"2","seat_selection_mode":"manual"}"#, 422, Some("quantity")),
            (
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"manual","seat_positions":"1-1"}"#,
                422,
                Some("seat_positions"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1",[1,2]]}"#,
                422,
                Some("seat_positions[1]"),
            ),
            (
                r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1",12]}"#,
                422,
                Some("seat_positions[1]"),
            ),
            (
                r#"{"section":"A","section":"B","subsection":1,"quantity":1,"seat_selection_mode":"manual"}"#,
                422,
                Some("section"),
            ),
            // Syntax errors stay 400, even after a type error.
            (r#"{"section":"A","subsection":"one","quantity":1,"seat_selection_mode":"best_available""#, 400, None),
            (r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":5,}"#, 400, None),
            (r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":manual}"#, 400, None),
            (r#"["A",1,1,"best_available"] x"#, 400, None),
            // JSON that is not an object: the whole body has the wrong shape.
            ("[]", 422, None),
            (r#"["A",1,1,"best_available"]"#, 422, None),
            (r#""x""#, 422, None),
            ("5", 422, None),
            ("null", 422, None),
        ];
        for (body, status, field) in cases {
            let err = refused(body);
            assert_eq!(err.status.as_u16(), *status, "{body}: {err:?}");
            if let Some(field) = field {
                assert_eq!(err.field.as_deref(), Some(*field), "{body}: {err:?}");
            }
            assert!(!err.message.is_empty());
        }
        let unknown = refused(
            r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available","colour":"red"}"#,
        );
        assert!(unknown.message.contains("colour"));
        let mode = refused(r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":5}"#);
        assert!(mode.message.contains(r#""best_available" or "manual""#), "{mode:?}");
        let mode = refused(r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"cheapest"}"#);
        assert!(mode.message.contains("cheapest") && mode.message.contains("best_available"), "{mode:?}");
        assert_eq!(refused("[]").error, "invalid_body");
    }

    fn digest(body: &str) -> [u8; 32] {
        BookingRequest::parse(body.as_bytes()).unwrap().digest()
    }

    #[test]
    fn the_digest_is_of_the_request_not_its_bytes() {
        let base = digest(
            r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1","2-3"]}"#,
        );
        // Key order, whitespace, escapes and the positions' order do not count.
        for same in [
            r#"{"seat_positions":["1-1","2-3"],"quantity":2,"seat_selection_mode":"manual","subsection":1,"section":"A"}"#,
            "{ \"section\" : \"\\u0041\",\n\t\"subsection\":1, \"quantity\":2,\"seat_selection_mode\":\"manual\",\"seat_positions\":[\"1-1\", \"2-3\"] }\n",
            r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["2-3","1-1"]}"#,
        ] {
            assert_eq!(digest(same), base, "{same}");
        }
        for other in [
            r#"{"section":"A","subsection":1,"quantity":3,"seat_selection_mode":"manual","seat_positions":["1-1","2-3"]}"#,
            r#"{"section":"B","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1","2-3"]}"#,
            r#"{"section":"A","subsection":2,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1","2-3"]}"#,
            r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1","2-2"]}"#,
            r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"manual","seat_positions":["1-1"]}"#,
            r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"best_available"}"#,
        ] {
            assert_ne!(digest(other), base, "{other}");
        }
        // An absent seat_positions is the empty list it is read as.
        assert_eq!(
            digest(r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"best_available"}"#),
            digest(
                r#"{"section":"A","subsection":1,"quantity":2,"seat_selection_mode":"best_available","seat_positions":[]}"#
            ),
        );
    }
}

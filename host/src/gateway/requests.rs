//! Request bodies, parsed and checked against DOMAIN.md §5 and the venue
//! before anything is published: malformed JSON is 400, a field of the
//! wrong type, missing, unknown or breaking a rule is 422 naming it.

use serde::Deserialize;
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
    pub seat_selection_mode: SeatSelectionMode,
    #[serde(default)]
    pub seat_positions: Vec<SeatPosition>,
}

impl BookingRequest {
    /// Parses `body`, naming the field a type error is in.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "the request body is empty"));
        }
        let malformed = |e: serde_json::Error| {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("malformed JSON: {e}"))
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed: Result<Self, _> = serde_path_to_error::deserialize(&mut de);
        let parsed = parsed.map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                malformed(inner)
            } else {
                let field = (path != ".").then_some(path).or_else(|| missing_field(&inner.to_string()));
                ApiError {
                    field,
                    ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", inner.to_string())
                }
            }
        })?;
        // Anything after the object is not JSON we understand.
        de.end().map_err(malformed)?;
        Ok(parsed)
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

/// serde names a missing field only in its message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
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
        ];
        for (body, status, field) in cases {
            let err = refused(body);
            assert_eq!(err.status.as_u16(), *status, "{body}: {err:?}");
            if let Some(field) = field {
                assert_eq!(err.field.as_deref(), Some(*field), "{body}: {err:?}");
            }
            assert!(!err.message.is_empty());
        }
        assert!(
            refused(
                r#"{"section":"A","subsection":1,"quantity":1,"seat_selection_mode":"best_available","colour":"red"}"#
            )
            .message
            .contains("colour")
        );
    }
}

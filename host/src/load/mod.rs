//! Load generation and checking, shared by the main job (`turnstile
//! sellout`), the chaos test and the integration tests: booking plans for a
//! seating chart, deterministic input for drain benchmarks, the live tally of the statuses that come back, an
//! independent `read_committed` reader of a topic, and the checker that
//! holds what it read against the contract.

pub mod check;
pub mod fill;
pub mod front;
pub mod passthrough;
pub mod plan;
pub mod read;
pub mod tally;

pub use check::{Outcome, check_outcome};
pub use plan::{Buyer, Planned, plan_bookings, plan_single_seats};
pub use read::{Record, read_back};

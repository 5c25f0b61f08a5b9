//! The sellout load: a booking plan for a seating chart and the tally of the
//! statuses that come back. The orchestration (provisioning, services,
//! Kafka I/O) lives in the `sellout` subcommand; this part is pure so that
//! its arithmetic is tested without a broker.

pub mod plan;
pub mod tally;

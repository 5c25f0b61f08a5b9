//! Write a [Turnstile](https://example.invalid/turnstile) plugin in Rust.
//!
//! A plugin is a WebAssembly component of the `turnstile:plugin` world (its
//! WIT ships inside this crate). This crate is the only dependency a plugin
//! needs: implement [`Plugin`], call [`export!`], and build for
//! `wasm32-wasip2` (`turnstile build`). The same crate runs natively under
//! `cargo test` through [`testing::TestDriver`], with no broker and no wasm.
//!
//! ```
//! // A plugin crate starts with `#![no_std]`: on wasm32 std would import WASI,
//! // which the host does not grant (the SDK supplies what std would).
//! use turnstile_plugin::prelude::*;
//!
//! /// Counts each booking's status changes and emits one `booking-audit` per change.
//! pub struct Audit;
//!
//! impl Plugin for Audit {
//!     const SERVICE: &'static str = "audit-service";
//!     const CONSUMES: &'static [&'static str] = &["booking-status-changed"];
//!     const EMITS: &'static [&'static str] = &["booking-audit"];
//!
//!     fn handle(message: &Message, state: &mut State<'_>) -> Result<Vec<Output>, HandleError> {
//!         let status: Value = message.json()?;
//!         let booking = status["booking_id"].as_str().ok_or_else(|| HandleError::invalid("no booking_id"))?;
//!         let key = format!("changes/{booking}");
//!         let change = state.get_json::<u64>(&key)?.unwrap_or(0) + 1;
//!         state.put_json(&key, &change)?;
//!         let audit = json!({ "booking_id": booking, "status": status["status"], "change": change });
//!         Ok(vec![Output::json("booking-audit", Routing::booking(booking), &audit)?])
//!     }
//! }
//!
//! turnstile_plugin::export!(Audit);
//!
//! # let mut driver = turnstile_plugin::testing::TestDriver::<Audit>::new();
//! # let out = driver.send_json("booking-status-changed", &json!({"booking_id": "b1", "status": "completed"})).unwrap();
//! # assert_eq!(out[0].payload_json().unwrap()["change"], 1);
//! ```
//!
//! What the crate handles so the plugin does not: the bindings of the world,
//! the batched `handle` call (each message sees the state writes of the
//! batch's earlier successful messages, a failed message's writes are
//! dropped, nothing is handled after a `transient` failure), and on wasm32
//! the allocator, panic handler, `cabi_realloc` and libc link a `no_std`
//! component needs.
#![no_std]

extern crate alloc;
#[cfg(not(target_arch = "wasm32"))]
extern crate std;
// So that paths written for plugin crates (`turnstile_plugin::…`) also
// resolve inside this one, where the bindings are generated.
extern crate self as turnstile_plugin;

mod message;
mod plugin;
mod state;
pub mod testing;

#[doc(hidden)]
pub mod __private;
#[cfg(target_arch = "wasm32")]
mod guest;

pub use message::{Header, Message};
pub use plugin::Plugin;
/// serde, so that a plugin needs no direct dependency on it. Deriving
/// through the re-export needs serde told where it is:
///
/// ```
/// use turnstile_plugin::serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// #[serde(crate = "turnstile_plugin::serde")]
/// struct Audit {
///     booking_id: String,
///     seen: u64,
/// }
///
/// let audit: Audit = turnstile_plugin::serde_json::from_str(r#"{"booking_id":"b-1","seen":2}"#).unwrap();
/// assert_eq!(audit.seen, 2);
/// ```
///
/// (Or depend on `serde` with its `derive` feature yourself.)
pub use serde;
/// serde_json, so that a plugin needs no direct dependency on it.
pub use serde_json;
/// `json!` from serde_json, so that a plugin needs no direct dependency on it.
pub use serde_json::json;
pub use state::State;
/// The domain's messages and names (`BookingStatusChanged`, action names, …).
pub use turnstile_protocol as domain;
pub use turnstile_protocol::{HandleError, LogLevel, MemoryStore, Output, Routing, Store};

/// Everything a handler usually names, and the `alloc` items a `no_std`
/// crate would otherwise import one by one.
pub mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};

    pub use serde_json::{Value, json};

    pub use crate::{HandleError, LogLevel, Message, Output, Plugin, Routing, State};
}

/// Exports a [`Plugin`] as the component: the crate's one line of glue.
///
/// ```ignore
/// turnstile_plugin::export!(MyPlugin);
/// ```
///
/// Expands to nothing off wasm32, so native builds and `cargo test` need no
/// `cfg`. The manifest's version is the plugin crate's `CARGO_PKG_VERSION`
/// unless [`Plugin::VERSION`] says otherwise.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::wit;

            struct TurnstileComponent;

            impl wit::Guest for TurnstileComponent {
                fn manifest() -> wit::Manifest {
                    $crate::__private::manifest::<$plugin>(env!("CARGO_PKG_VERSION"))
                }

                fn handle(
                    messages: $crate::__private::Vec<wit::Message>,
                ) -> $crate::__private::Vec<::core::result::Result<wit::Handled, wit::Error>> {
                    $crate::__private::handle::<$plugin>(messages)
                }

                fn route(message: wit::Message) -> ::core::option::Option<wit::Routing> {
                    $crate::__private::route::<$plugin>(message)
                }
            }

    $crate::__private::wit::export_world!(TurnstileComponent with_types_in $crate::__private::wit);
        };
    };
}

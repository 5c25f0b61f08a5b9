//! Deploying plugins: a versioned store of checked components per service,
//! and a cheap watcher that tells a running service when to hot-swap.
//!
//! On disk, under `plugin.plugins_dir`:
//!
//! ```text
//! DIR/SERVICE/
//!   .lock               flock(2)ed by every writer (install, rollback)
//!   v1/plugin.wasm      the component, byte for byte as deployed
//!   v1/metadata.json    number, sha256, size, deployed_at, manifest
//!   v2/…
//!   current -> v2       relative symlink: the version a service runs
//! ```
//!
//! A version directory is written under a temporary name and renamed into
//! place complete, so readers never see half a version; numbers only grow,
//! so a rollback never rewrites history. `current` is a symlink replaced by
//! `rename(2)` of a fresh one: readers see the old or the new target, never
//! neither, and a watcher learns of a change with one `readlink(2)`.
//!
//! - [`check`]: load a component in the host's engine (which refuses
//!   anything that is not a plugin of the world, and leaves the compiled code
//!   in the engine's cache) and require the manifest to name the service.
//! - [`Store`]: open, list, [`install`](Store::install),
//!   [`rollback`](Store::rollback).
//! - [`Watcher`]: reports a new `current` since the last poll.

mod check;
mod clock;
mod error;
mod fsutil;
mod store;
mod version;
mod watch;

pub use check::{Checked, check};
pub use error::DeployError;
pub use store::{Installed, Rollback, Store};
pub use version::Version;
pub use watch::Watcher;

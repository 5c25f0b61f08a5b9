//! HTTP endpoints on axum: the probes and metrics a running service serves
//! (`run --metrics ADDR`), and the accept loop every server runs on.

pub mod pressure;
pub mod probes;
pub mod server;

pub use server::{ServerLimits, ServerMetrics, ignore_sigpipe, raise_descriptor_limit, serve};

/// An address that cannot be listened on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: String,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` (`host:port`) now, so that a taken port is reported before
/// anything else starts rather than from inside a server task.
pub fn bind(addr: &str) -> Result<std::net::TcpListener, BindError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|source| BindError { addr: addr.to_owned(), source })?;
    listener.set_nonblocking(true).map_err(|source| BindError { addr: addr.to_owned(), source })?;
    Ok(listener)
}

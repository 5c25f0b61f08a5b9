//! HTTP endpoints on axum: the probes and metrics a running service serves
//! (`run --metrics ADDR`).

pub mod probes;

use std::net::SocketAddr;

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

/// Serves `router` on `listener` until `stop` resolves. Must run inside a
/// tokio runtime.
pub async fn serve(
    listener: std::net::TcpListener,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?local, "serving HTTP");
    axum::serve(listener, router).with_graceful_shutdown(stop).await
}

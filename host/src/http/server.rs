//! The accept loop of Turnstile's HTTP servers (the gateway, `run
//! --metrics`): hyper with a timer, so a peer that is slow to send its
//! headers, or idle between requests, is dropped; a cap on open connections,
//! past which a new one is answered `503` and closed rather than left to
//! exhaust descriptors; and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;

use super::pressure::Pressure;

/// What one server allows its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request's head must arrive within this; it also bounds how long a
    /// keep-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Largest request head; larger is answered `431`.
    pub max_header_bytes: usize,
    /// Open connections; one more is answered `503` and closed.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits { header_read_timeout: Duration::from_secs(10), max_header_bytes: 16_384, max_connections: 1_024 }
    }
}

/// A server's connection instruments.
#[derive(Debug, Clone, Default)]
pub struct ServerMetrics {
    open: Gauge,
    refused: Counter,
    accept_errors: Counter,
}

impl ServerMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("http_connections_open", "HTTP connections open now", self.open.clone());
        registry.register(
            "http_connections_refused",
            "HTTP connections answered 503 and closed because the server was at its connection limit",
            self.refused.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Connections that could not be accepted (out of descriptors, say)",
            self.accept_errors.clone(),
        );
    }
}

/// The answer to a connection over the limit: complete, so a client sees
/// why, and closing, so it costs nothing after.
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n\
Cache-Control: no-store\r\nConnection: close\r\nContent-Length: 88\r\n\r\n\
{\"error\":\"unavailable\",\"message\":\"too many open connections; retry in a second please\"}";

/// Counts a connection open until dropped.
struct Open {
    count: Arc<AtomicUsize>,
    gauge: Gauge,
}

impl Open {
    fn new(count: &Arc<AtomicUsize>, gauge: &Gauge) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        gauge.inc();
        Open { count: count.clone(), gauge: gauge.clone() }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

/// Serves `router` on `listener` until `stop` resolves, then waits for the
/// requests in progress (streams never end by themselves: callers bound
/// the wait). Must run inside a tokio runtime. Requests carry the peer's
/// [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    limits: ServerLimits,
    metrics: ServerMetrics,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(addr = ?listener.local_addr().ok(), max_connections = limits.max_connections, "serving HTTP");
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    let (full, failing) = (Pressure::new("connection limit"), Pressure::new("accept"));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors, typically: the peer waits in the
                    // backlog; pausing keeps this loop from spinning.
                    metrics.accept_errors.inc();
                    failing.warn(|suppressed| {
                        tracing::warn!(error = %err, suppressed, "cannot accept a connection");
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            metrics.refused.inc();
            full.warn(|suppressed| {
                tracing::warn!(
                    limit = limits.max_connections,
                    suppressed,
                    "at the connection limit; answering new connections 503"
                );
            });
            tokio::spawn(refuse(stream));
            continue;
        }
        let guard = Open::new(&open, &metrics.open);
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // Timeouts and resets by peers: theirs to mind.
                tracing::debug!(%peer, error = %err, "connection ended");
            }
            drop(guard);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn refuse(mut stream: tokio::net::TcpStream) {
    let answer = async {
        stream.write_all(FULL).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// Raises this process's soft descriptor limit to its hard limit, and
/// returns the soft limit now in force (`None` if it cannot be read).
pub fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write and read the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Ignores SIGPIPE in a server process: hyper writes with `writev`, which
/// (unlike `send` with `MSG_NOSIGNAL`) raises it when a peer has reset, and
/// the default action would kill the server for one impatient client.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no handler to race.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

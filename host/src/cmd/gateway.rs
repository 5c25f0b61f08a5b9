//! `turnstile gateway`: the booking gateway, until SIGTERM or SIGINT; and
//! `turnstile gateway token`: a buyer's bearer token.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use turnstile::admin::Cluster;
use turnstile::config::{GatewayAuth, GatewayConfig, Overrides};
use turnstile::gateway::{self, Gateway};
use turnstile::http::{self, probes::Readiness};
use turnstile::naming;

use crate::cli::{GatewayArgs, GatewayCommand, GlobalArgs};

/// How long requests in progress get after SIGTERM before the gateway stops.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

async fn wait_for_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot watch SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub fn run(global: &GlobalArgs, args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides::default();
    overrides.set("service.event_id", args.event).set("gateway.listen", args.listen.clone());
    let config = super::load_config(global, overrides)?.config;
    if let Some(GatewayCommand::Token { buyer }) = args.command {
        let token = gateway::auth::issue(&config.gateway, buyer).map_err(|e| super::UsageError(e.to_string()))?;
        println!("{token}");
        return Ok(ExitCode::SUCCESS);
    }
    let event_id =
        config.service.event_id.ok_or_else(|| super::UsageError("which event? give --event or set EVENT_ID".into()))?;
    if config.gateway.auth == GatewayAuth::None {
        tracing::warn!(
            "gateway.auth = \"none\": NO AUTHENTICATION, any caller acts as whichever buyer X-Buyer-Id names; for local demos only"
        );
    }
    let cluster = Cluster::connect(&config)?;
    let commands = naming::booking_command_topic(event_id).to_string();
    let partitions = *cluster.topics()?.get(&commands).ok_or_else(|| {
        super::UsageError(format!(
            "event {event_id} is not provisioned ({commands} is missing); run `turnstile provision --event {event_id}`"
        ))
    })?;
    let listener = http::bind(&config.gateway.listen).map_err(|e| super::UsageError(format!("--listen: {e}")))?;
    let admin = match &config.gateway.admin_listen {
        Some(addr) => Some(http::bind(addr).map_err(|e| super::UsageError(format!("gateway.admin_listen: {e}")))?),
        None => None,
    };
    http::ignore_sigpipe();
    let limits = server_limits(&config.gateway);

    let stop = Arc::new(AtomicBool::new(false));
    let gateway = Gateway::start(&config, event_id, partitions, stop.clone()).map_err(|e| match e {
        gateway::GatewayError::Auth(e) => anyhow::Error::new(super::UsageError(e.to_string())),
        other => other.into(),
    })?;
    let mut registry = Registry::with_prefix_and_labels(
        "turnstile_gateway",
        [("event_id".into(), event_id.to_string().into())].into_iter(),
    );
    gateway.metrics.register(&mut registry);
    gateway.streams.register(&mut registry);
    let server_metrics = http::ServerMetrics::default();
    server_metrics.register(&mut registry);
    let views = gateway.views.clone();
    let ready: Readiness = Arc::new(move || {
        if views.is_ready() { (true, "ready".into()) } else { (false, "catching up with the event's topics".into()) }
    });
    let probes = http::probes::router(registry, ready);
    let (router, admin) = match admin {
        Some(listener) => (gateway::router(gateway.clone()), Some((listener, probes))),
        None => (gateway::router(gateway.clone()).merge(probes), None),
    };
    tracing::info!(event = event_id, listen = %config.gateway.listen, admin = ?config.gateway.admin_listen, partitions, "gateway starting");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (signalled, drained) = tokio::sync::watch::channel(false);
    let until_signalled = move || {
        let mut drained = drained.clone();
        async move {
            let _ = drained.wait_for(|s| *s).await;
        }
    };
    let served = runtime.block_on(async move {
        if let Some((listener, probes)) = admin {
            let limits = http::ServerLimits { max_connections: 64, ..limits };
            let stopped = until_signalled();
            tokio::spawn(async move {
                if let Err(err) = http::serve(listener, probes, limits, http::ServerMetrics::default(), stopped).await {
                    tracing::error!(error = %err, "the admin listener stopped");
                }
            });
        }
        let server = http::serve(listener, router, limits, server_metrics, until_signalled());
        tokio::select! {
            served = server => served,
            () = async {
                wait_for_signal().await;
                tracing::info!("signal received; stopping the gateway");
                let _ = signalled.send(true);
                // Open server-sent event streams never finish by themselves:
                // give requests in progress a moment, then stop anyway.
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => Ok(()),
        }
    });
    stop.store(true, Ordering::Relaxed);
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    // Dropping the gateway flushes what was published.
    drop(gateway);
    Ok(ExitCode::SUCCESS)
}

/// The server's limits from `[gateway]`, its connection cap kept below the
/// descriptors this process may open (raised to the hard limit first), so
/// that a flood is refused with a 503 instead of starving `accept`.
fn server_limits(g: &GatewayConfig) -> http::ServerLimits {
    /// Descriptors kept for Kafka clients, log files and refusals.
    const RESERVED: u64 = 256;
    let mut max_connections = g.max_connections;
    if let Some(descriptors) = http::raise_descriptor_limit() {
        let room = usize::try_from(descriptors.saturating_sub(RESERVED)).unwrap_or(usize::MAX).max(1);
        if room < max_connections {
            tracing::warn!(
                configured = max_connections,
                descriptors,
                allowed = room,
                "gateway.max_connections is more than this process may open; raise `ulimit -n` or lower it"
            );
            max_connections = room;
        }
    }
    http::ServerLimits {
        header_read_timeout: std::time::Duration::from_millis(g.header_read_timeout_ms),
        max_header_bytes: g.max_header_bytes,
        max_connections,
    }
}

//! `turnstile gateway`: the booking gateway, until SIGTERM or SIGINT; and
//! `turnstile gateway token`: a buyer's bearer token.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use turnstile::admin::Cluster;
use turnstile::config::{GatewayAuth, Overrides};
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
    let views = gateway.views.clone();
    let ready: Readiness = Arc::new(move || {
        if views.is_ready() { (true, "ready".into()) } else { (false, "catching up with the event's topics".into()) }
    });
    let router = gateway::api::router(gateway.clone())
        .merge(gateway::page::router(gateway.clone()))
        .merge(http::probes::router(registry, ready));
    tracing::info!(event = event_id, listen = %config.gateway.listen, partitions, "gateway starting");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (signalled, mut drained) = tokio::sync::watch::channel(false);
    let served = runtime.block_on(async move {
        let server = http::serve(listener, router, async move {
            let _ = drained.wait_for(|s| *s).await;
        });
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

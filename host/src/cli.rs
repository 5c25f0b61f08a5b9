//! Command-line arguments. Every flag that is also configuration is applied
//! as the highest figment layer (see `turnstile::config`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Turnstile: exactly-once event ticketing on Kafka, with business logic in
/// WebAssembly plugins.
///
/// Start a local broker with `scripts/local-kafka start`, provision an event
/// with `turnstile provision --event 1 --seating examples/default.json`, and
/// run the services with `turnstile run`. `turnstile config` shows the
/// effective configuration and where each value came from.
#[derive(Debug, Parser)]
#[command(name = "turnstile", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: ./turnstile.toml if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers, overriding `kafka.bootstrap`.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    /// More logging (-v debug, -vv trace); `TURNSTILE_LOG` takes a full filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration as TOML, with where each value came from.
    Config(ConfigArgs),
    /// Show which partition each section maps to, or the load of a seating chart.
    Partitions(PartitionsArgs),
    /// Create every topic of an event and optionally publish its seating chart.
    Provision(ProvisionArgs),
    /// Delete the topics and consumer groups of every unprotected event.
    Reset(ResetArgs),
    /// Show an event's topics, consumer groups and lag.
    Status(StatusArgs),
    /// Publish JSON lines to an event topic with the host's partitioning.
    Publish(PublishArgs),
    /// Print every committed record of an event topic as JSON lines.
    Consume(ConsumeArgs),
    /// Feed messages through a plugin without Kafka and print its outputs.
    Replay(ReplayArgs),
    /// Run one instance of a service until SIGTERM or SIGINT.
    Run(RunArgs),
    /// The booking gateway: buyers' HTTP API in front of an event, until SIGTERM or SIGINT.
    Gateway(GatewayArgs),
    /// The main job: provision an event, run both services, sell it out, print a summary.
    Sellout(SelloutArgs),
    /// Scaffold a new plugin crate (Rust, on the turnstile-plugin SDK) in a new directory.
    Init(InitArgs),
    /// Build a plugin crate for wasm32-wasip2 and check it as `deploy` would.
    Build(BuildArgs),
    /// Check a plugin, precompile it and install it as the next version of a service.
    Deploy(DeployArgs),
    /// List the deployed versions of a service's plugin.
    Plugins(PluginsArgs),
    /// Point a service back at an earlier deployed version.
    Rollback(RollbackArgs),
    /// Benchmarks against the configured Kafka (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Pre-fill one service's inputs on a fresh event, start the service and
    /// time how fast it drains them; then move the same records through a
    /// plain consume → produce passthrough (no plugin, no transactions) on
    /// the same broker, the limit to compare with.
    Drain(DrainArgs),
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The service to drain: ticketing-service or seat-reservation-service.
    #[arg(long)]
    pub service: String,
    /// Event id; it must not exist yet [default: a fresh one].
    #[arg(long)]
    pub event: Option<u64>,
    /// Input records to pre-fill (besides the seating chart's configure commands).
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Seating chart [default: sections A–J, 10 subsections of 25 × 20 seats].
    #[arg(long, value_name = "FILE")]
    pub seating: Option<PathBuf>,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Directory holding the plugin builds [default: target/wasm32-wasip2/release].
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Seed of the deterministic input.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Give up on either drain after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {}

#[derive(Debug, Args)]
pub struct PartitionsArgs {
    /// Event id.
    #[arg(long)]
    pub event: u64,
    /// Partition count [default: kafka.partitions].
    #[arg(long)]
    pub partitions: Option<i32>,
    /// A section to map (repeatable).
    #[arg(long = "section", value_name = "S")]
    pub sections: Vec<String>,
    /// A seating chart whose load per partition to analyse.
    #[arg(long, value_name = "FILE")]
    pub seating: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Event id.
    #[arg(long)]
    pub event: u64,
    /// Partitions per topic [default: kafka.partitions].
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor [default: kafka.replication_factor, else from the
    /// cluster: 3 on three or more brokers, 2 on two, 1 on one].
    #[arg(long)]
    pub replication: Option<i32>,
    /// `min.insync.replicas` of the topics [default: kafka.min_insync_replicas,
    /// else 2 for a replication factor of 3 or more, 1 below].
    #[arg(long, value_name = "N")]
    pub min_insync_replicas: Option<i32>,
    /// Seating chart to publish as `configure_subsection` commands.
    #[arg(long, value_name = "FILE")]
    pub seating: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Event ids to keep (repeatable) [default: 1].
    #[arg(long = "protect", value_name = "ID")]
    pub protect: Vec<u64>,
    /// Show what would be deleted and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this event [default: every event found].
    #[arg(long)]
    pub event: Option<u64>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Event id.
    #[arg(long)]
    pub event: u64,
    /// Topic action, e.g. `booking-command`.
    #[arg(long)]
    pub action: String,
    /// JSON lines to publish (`-` for stdin).
    #[arg(long, value_name = "FILE.jsonl")]
    pub file: PathBuf,
    /// Partition count of the topic [default: read from the broker].
    #[arg(long)]
    pub partitions: Option<i32>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The plugin component (`.wasm`).
    #[arg(long, value_name = "FILE.wasm")]
    pub plugin: PathBuf,
    /// Event id the messages belong to.
    #[arg(long)]
    pub event: u64,
    /// Input messages, one JSON object per line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub input: PathBuf,
    /// Partition count used for routing [default: kafka.partitions].
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Start from this state snapshot (JSON).
    #[arg(long, value_name = "FILE")]
    pub state_in: Option<PathBuf>,
    /// Write the final state snapshot here (JSON).
    #[arg(long, value_name = "FILE")]
    pub state_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Any service whose plugin is deployed and fits the topology, e.g.
    /// `ticketing-service` [default: service.name].
    #[arg(long)]
    pub service: Option<String>,
    /// Event id [default: service.event_id, or EVENT_ID].
    #[arg(long)]
    pub event: Option<u64>,
    /// Run this component file (development; no hot reload).
    #[arg(long, value_name = "FILE.wasm", conflicts_with = "plugins")]
    pub plugin: Option<PathBuf>,
    /// Run the current deployed version from this directory and hot-reload
    /// new ones [default: plugin.plugins_dir]; used when --plugin is absent.
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Instance id within the service's group [default: service.consumer_instance_id].
    #[arg(long)]
    pub instance: Option<String>,
    /// Serve Prometheus `/metrics`, `/healthz` and `/readyz` on this
    /// host:port [default: metrics.listen, unset: none].
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    /// Event id [default: service.event_id, or EVENT_ID].
    #[arg(long)]
    pub event: Option<u64>,
    /// host:port to listen on [default: gateway.listen].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Print a bearer token for a buyer (signed with gateway.jwt_secret).
    Token {
        /// The buyer id the token names.
        #[arg(long)]
        buyer: u64,
    },
}

#[derive(Debug, Args)]
pub struct SelloutArgs {
    /// Event id [default: a fresh one].
    #[arg(long)]
    pub event: Option<u64>,
    /// Booking commands to send [default: 1.2 × the seats of the chart].
    #[arg(long)]
    pub bookings: Option<usize>,
    /// Seating chart [default: sections A–J, 10 subsections of 25 × 20 seats].
    #[arg(long, value_name = "FILE")]
    pub seating: Option<PathBuf>,
    /// Directory holding turnstile_reservation.wasm and turnstile_ticketing.wasm
    /// [default: target/wasm32-wasip2/release].
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Seed of the booking plan [default: the event id].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Give up when no status arrives for this many seconds.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// Send creates at this steady rate (bookings/s, open loop) instead of
    /// one burst, and report latency per hop; needs --duration.
    #[arg(long, requires = "duration", conflicts_with = "bookings")]
    pub rate: Option<u32>,
    /// Seconds to send at --rate (bookings = rate × duration).
    #[arg(long, requires = "rate")]
    pub duration: Option<u32>,
    /// With --rate: leave the bookings of the first SECONDS out of the
    /// latency percentiles (a fresh event's first produce to each partition
    /// is slow).
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    pub warmup: u32,
    /// Send every command through a booking gateway (started as a child,
    /// with a fresh token secret) over HTTP instead of straight to Kafka,
    /// and report the HTTP request rate and latency too.
    #[arg(long)]
    pub via_gateway: bool,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Event id.
    #[arg(long)]
    pub event: u64,
    /// The topic's action, e.g. `booking-status-changed` (configured topics too).
    #[arg(long)]
    pub action: String,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The crate's name, e.g. `audit`; the service is `NAME-service`.
    pub name: String,
    /// Actions of the topics the plugin consumes.
    #[arg(long, num_args = 1.., value_name = "ACTION", required = true)]
    pub consumes: Vec<String>,
    /// Actions of the topics it emits to; the first gets the scaffold's output.
    #[arg(long, num_args = 1.., value_name = "ACTION", required = true)]
    pub emits: Vec<String>,
    /// Directory to create [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The turnstile-plugin SDK to depend on [default: plugins/sdk of the
    /// checkout this binary was built from].
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin crate [default: the current directory].
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The plugin component to deploy.
    #[arg(value_name = "FILE.wasm")]
    pub file: PathBuf,
    /// The service it implements; its manifest must name the same.
    #[arg(long)]
    pub service: String,
    /// Deployment directory [default: plugin.plugins_dir].
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// The service whose versions to list.
    #[arg(long)]
    pub service: String,
    /// Deployment directory [default: plugin.plugins_dir].
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The service to roll back.
    #[arg(long)]
    pub service: String,
    /// The version to make current, `N` or `vN` [default: the one below current].
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    pub to: Option<u32>,
    /// Deployment directory [default: plugin.plugins_dir].
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
}

/// A version number as `turnstile plugins` prints it (`v3`) or bare (`3`).
fn parse_version(text: &str) -> Result<u32, String> {
    text.strip_prefix('v').unwrap_or(text).parse().map_err(|_| format!("{text:?} is not a version like `3` or `v3`"))
}

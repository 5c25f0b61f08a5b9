//! The `turnstile` command line: the binary edge, where library errors become
//! messages and exit codes.
//!
//! Exit codes: 0 success; 1 the command ran but its goal was not met (a topic
//! that would not delete, a sellout that oversold); 2 bad usage or
//! configuration (including an unreachable bootstrap); 3 any other failure.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

use cli::{BenchCommand, Cli, Command};

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`turnstile status | head`) like other
    // Unix tools, instead of panicking inside println!.
    // SAFETY: restoring the default disposition of a signal at start-up,
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            cmd::exit_code_for(&err)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Config(args) => cmd::config::run(&global, args),
        Command::Partitions(args) => cmd::partitions::run(&global, args),
        Command::Provision(args) => cmd::provision::run(&global, args),
        Command::Reset(args) => cmd::reset::run(&global, args),
        Command::Status(args) => cmd::status::run(&global, args),
        Command::Publish(args) => cmd::publish::run(&global, args),
        Command::Consume(args) => cmd::consume::run(&global, args),
        Command::Replay(args) => cmd::replay::run(&global, args),
        Command::Run(args) => cmd::run::run(&global, args),
        Command::Gateway(args) => cmd::gateway::run(&global, args),
        Command::Sellout(args) => cmd::sellout::run(&global, args),
        Command::Init(args) => cmd::init::run(args),
        Command::Build(args) => cmd::build::run(&global, args),
        Command::Deploy(args) => cmd::deploy::run(&global, args),
        Command::Plugins(args) => cmd::plugins::run(&global, args),
        Command::Rollback(args) => cmd::rollback::run(&global, args),
        Command::Bench(BenchCommand::Drain(args)) => cmd::bench::drain(&global, args),
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "turnstile=info,warn",
        1 => "turnstile=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("TURNSTILE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

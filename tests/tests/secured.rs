//! Turnstile on a secured cluster: SASL_SSL with SCRAM, or mutual TLS.
//!
//! These run against the cluster the environment describes (the
//! `TURNSTILE_KAFKA__*` settings of `scripts/local-kafka client-env`, which
//! the services under test inherit); on a plaintext cluster they print
//! SKIPPED. `KAFKA_TLS_DIR` names the directory with the test CA's
//! certificates (`untrusted-ca.pem`). CI runs them on
//! `KAFKA_SECURITY=sasl_ssl` and on `KAFKA_SECURITY=ssl`:
//!
//! ```text
//! KAFKA_SECURITY=sasl_ssl KAFKA_PORT=39092 scripts/local-kafka start
//! source <(KAFKA_PORT=39092 scripts/local-kafka client-env)
//! scripts/test --test secured
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use turnstile_tests::*;

/// The security protocol of the cluster under test, if it is secured.
fn secured() -> Option<String> {
    let protocol = std::env::var("TURNSTILE_KAFKA__SECURITY_PROTOCOL").ok()?.to_ascii_lowercase();
    if protocol == "plaintext" {
        return None;
    }
    Some(protocol)
}

macro_rules! require_secured {
    () => {
        match secured() {
            Some(protocol) => protocol,
            None => {
                eprintln!("SKIPPED: the cluster under test is not secured (source scripts/local-kafka client-env)");
                return;
            }
        }
    };
}

fn tls_dir() -> PathBuf {
    PathBuf::from(std::env::var("KAFKA_TLS_DIR").expect("KAFKA_TLS_DIR names the test CA's directory"))
}

/// Runs `turnstile status` with `env` on top of the secured settings and
/// checks it is refused with exit 2, quickly, by a message containing
/// every one of `names`.
fn refused(env: &[(&str, &str)], names: &[&str]) {
    refused_command(&["status"], env, names);
}

/// [`refused`] for the command `args`.
fn refused_command(args: &[&str], env: &[(&str, &str)], names: &[&str]) {
    let mut cmd = turnstile_command(args);
    cmd.envs(env.iter().copied());
    let started = Instant::now();
    let run = run(cmd);
    let took = started.elapsed();
    assert_eq!(run.code, 2, "a refused connection is the configuration's fault\n{run}");
    for name in names {
        assert!(run.stderr.contains(name), "the message names {name:?}\n{run}");
    }
    assert!(took < Duration::from_secs(15), "refused after {took:?}: named at once, not after retrying\n{run}");
}

/// The README's main job end to end: provision, both services, a sellout
/// with its contract check; then `status` over the same settings.
#[test]
fn the_main_job_runs_on_the_secured_cluster() {
    let protocol = require_secured!();
    main_job(&protocol, &[], &[]);
}

/// The same with an OAUTHBEARER token file instead of a password: every
/// client (admin, services, publisher, readers) logs in with the token.
#[test]
fn the_main_job_runs_with_an_oauthbearer_token() {
    let protocol = require_secured!();
    if !protocol.starts_with("sasl") {
        eprintln!("SKIPPED: {protocol} uses no SASL");
        return;
    }
    let token = tls_dir().join("oauth.token");
    let token = token.to_string_lossy();
    main_job(
        &protocol,
        &[("TURNSTILE_KAFKA__SASL_MECHANISM", "OAUTHBEARER"), ("TURNSTILE_KAFKA__SASL_OAUTHBEARER_TOKEN_FILE", &token)],
        &["TURNSTILE_KAFKA__SASL_USERNAME", "TURNSTILE_KAFKA__SASL_PASSWORD"],
    );
    // A token the broker does not accept is a refusal, named at once.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let forged = dir.path().join("forged.token");
    std::fs::write(&forged, "eyJhbGciOiJub25lIn0.bm90IGpzb24.").expect("write a token");
    let forged = forged.to_string_lossy();
    let mut cmd = turnstile_command(["status"]);
    cmd.env("TURNSTILE_KAFKA__SASL_MECHANISM", "OAUTHBEARER")
        .env("TURNSTILE_KAFKA__SASL_OAUTHBEARER_TOKEN_FILE", &*forged)
        .env_remove("TURNSTILE_KAFKA__SASL_USERNAME")
        .env_remove("TURNSTILE_KAFKA__SASL_PASSWORD");
    let refused = run(cmd);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.stderr.contains("refused"), "{refused}");
}

/// Provision, both services and a sellout of 600 bookings with its
/// contract check, then `status`, with `env` set and `unset` removed.
fn main_job(protocol: &str, env: &[(&str, &str)], unset: &[&str]) {
    let id = unique_event_id();
    let seating = std::env::temp_dir().join(format!("secured-seating-{id}.json"));
    std::fs::write(
        &seating,
        r#"{"rows":10,"cols":10,"sections":[{"name":"A","price":100,"subsections":2},{"name":"B","price":80,"subsections":2}]}"#,
    )
    .expect("write a seating chart");
    let plugin_dir = plugin_path(turnstile::naming::TICKETING_SERVICE).parent().expect("a plugin directory").to_owned();
    let settings = |mut cmd: std::process::Command| {
        cmd.envs(env.iter().copied());
        for name in unset {
            cmd.env_remove(name);
        }
        cmd
    };
    let mut cmd = settings(turnstile_command(["sellout", "--event", &id.to_string(), "--bookings", "600"]));
    cmd.arg("--seating").arg(&seating).arg("--plugin-dir").arg(&plugin_dir);
    let sellout = run(cmd);
    sellout.expect_success();
    assert!(sellout.stdout.contains("PASS"), "the contract check passes over {protocol}\n{sellout}");
    run(settings(turnstile_command(["status", "--event", &id.to_string()]))).expect_success();
    cleanup(id);
}

#[test]
fn a_wrong_password_is_refused_naming_the_cause() {
    let protocol = require_secured!();
    if !protocol.starts_with("sasl") {
        eprintln!("SKIPPED: {protocol} uses no password");
        return;
    }
    let wrong = [("TURNSTILE_KAFKA__SASL_PASSWORD", "not-the-password")];
    refused(&wrong, &["refused", "uthentication", "kafka.sasl"]);
    // A service does not ride it out as an outage: it exits at once too.
    let plugin = plugin_path(turnstile::naming::TICKETING_SERVICE);
    let plugin = plugin.to_string_lossy();
    let service = ["run", "--service", turnstile::naming::TICKETING_SERVICE, "--event", "1", "--plugin", &plugin];
    refused_command(&service, &wrong, &["refused", "uthentication"]);
}

#[test]
fn an_untrusted_ca_is_refused_naming_the_cause() {
    require_secured!();
    let untrusted = tls_dir().join("untrusted-ca.pem");
    let untrusted = untrusted.to_string_lossy();
    refused(&[("TURNSTILE_KAFKA__SSL_CA_LOCATION", &untrusted)], &["refused", "certificate", "kafka.ssl_ca_location"]);
}

/// Mutual TLS: a client certificate from a CA the broker does not trust.
#[test]
fn an_untrusted_client_certificate_is_refused_naming_the_cause() {
    let protocol = require_secured!();
    if protocol != "ssl" {
        eprintln!("SKIPPED: {protocol} asks for no client certificate");
        return;
    }
    let (cert, key) = (tls_dir().join("untrusted-client.pem"), tls_dir().join("untrusted-client.key"));
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    refused(
        &[("TURNSTILE_KAFKA__SSL_CERTIFICATE_LOCATION", &cert), ("TURNSTILE_KAFKA__SSL_KEY_LOCATION", &key)],
        &["refused", "bad certificate", "kafka.ssl_certificate_location"],
    );
}

/// The test broker's certificate names `localhost` only: reached as
/// 127.0.0.1 it does not match, unless host-name verification is off.
#[test]
fn a_host_name_mismatch_is_refused_naming_the_cause() {
    require_secured!();
    let by_address = bootstrap().replace("localhost", "127.0.0.1");
    assert_ne!(by_address, bootstrap(), "the secured test cluster is reached as localhost");
    refused(&[("KAFKA_BOOTSTRAP_SERVERS", &by_address)], &["refused", "certificate", "host"]);
    // The same address with verification off: the name was the only problem.
    let mut cmd = turnstile_command(["status"]);
    cmd.env("KAFKA_BOOTSTRAP_SERVERS", &by_address).env("TURNSTILE_KAFKA__SSL_ENDPOINT_IDENTIFICATION", "false");
    let run = run(cmd);
    assert_ne!(run.code, 2, "without host-name verification the cluster answers\n{run}");
}

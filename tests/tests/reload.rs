//! Deploying compiled plugins into running services: both services run from
//! a deployment directory (`turnstile run --plugins DIR`) while a booking
//! load flows, and new versions, a broken file and a rollback are deployed
//! under them. The committed output (read back `read_committed`) must be
//! exactly what one uninterrupted run would produce, the processes must
//! never restart and their consumer groups must never rebalance.

use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use turnstile::admin::GroupMember;
use turnstile::naming::{SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile::runner::report;
use turnstile_tests::*;

const PARTITIONS: i32 = 4;
/// 4 subsections of 3 × 6 seats: 72 seats for a few hundred bookings.
const CHART: &str = r#"{"rows":3,"cols":6,"sections":[
    {"name":"A","price":100,"subsections":2},
    {"name":"B","price":250,"subsections":1},
    {"name":"VIP","price":900,"subsections":1}]}"#;
const SERVICES: [&str; 2] = [TICKETING_SERVICE, SEAT_RESERVATION_SERVICE];
const WAIT: Duration = Duration::from_secs(120);

/// One event with both services running from a deployment directory.
struct Setup {
    id: u64,
    /// `--plugins` of every command.
    plugins: TempDir,
    /// `runner.status_dir` of the services and of `turnstile status`.
    status: TempDir,
    ticketing: Service,
    seats: Service,
    sellout: Sellout,
    /// pid and group members of each service once it first ran.
    pids: Vec<u32>,
    members: Vec<Vec<GroupMember>>,
}

impl Setup {
    /// Provisions, deploys the release builds as v1 of both services, starts
    /// them with `--plugins` and waits until each owns its partitions.
    fn start(bookings: usize) -> Setup {
        Setup::start_with_env(bookings, &[])
    }

    /// [`start`](Self::start) with extra environment for both services.
    fn start_with_env(bookings: usize, extra: &[(&str, &str)]) -> Setup {
        let id = unique_event_id();
        let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
        let plugins = tempfile::tempdir().unwrap();
        let status = tempfile::tempdir().unwrap();
        for service in SERVICES {
            let run = deploy_plugin(&plugin_path(service), service, plugins.path());
            run.expect_success();
            assert!(run.stdout.contains(&format!("deployed {service} v1")), "{run}");
        }
        let mut env = vec![("TURNSTILE_RUNNER__STATUS_DIR", status.path().to_str().unwrap())];
        env.extend_from_slice(extra);
        let mut ticketing = Service::start_deployed(TICKETING_SERVICE, id, "1", plugins.path(), &env);
        let mut seats = Service::start_deployed(SEAT_RESERVATION_SERVICE, id, "1", plugins.path(), &env);
        let members = SERVICES
            .iter()
            .map(|service| wait_for_group(id, service, 1, PARTITIONS, WAIT, &mut [&mut ticketing, &mut seats]))
            .collect();
        let pids = vec![ticketing.pid().unwrap(), seats.pid().unwrap()];
        let plan = plan_bookings(&chart, bookings, id);
        let sellout = Sellout::new(id, PARTITIONS, chart, plan);
        let mut setup = Setup { id, plugins, status, ticketing, seats, sellout, pids, members };
        for service in SERVICES {
            setup.wait_for_deployment(service, 1);
        }
        setup
    }

    fn service(&self, service: &str) -> &Service {
        if service == TICKETING_SERVICE { &self.ticketing } else { &self.seats }
    }

    fn logs(&self) -> String {
        describe(&[&self.ticketing, &self.seats])
    }

    /// The service's instance report (written by the runner every second).
    fn report(&self, service: &str) -> Option<report::InstanceReport> {
        report::read_all(self.status.path(), self.id).into_iter().find(|r| r.service == service)
    }

    /// Keeps the load going (follow-ups sent as statuses arrive) until the
    /// service reports running deployment `version`.
    fn wait_for_deployment(&mut self, service: &str, version: u32) {
        let status = self.status.path().to_owned();
        let id = self.id;
        let reached = move |_: &Sellout| {
            report::read_all(&status, id)
                .iter()
                .any(|r| r.service == service && r.state == "running" && r.deployment == Some(version))
        };
        let Setup { ticketing, seats, sellout, .. } = self;
        sellout
            .drive_until(&format!("{service} running v{version}"), WAIT, &mut [ticketing, seats], reached)
            .unwrap_or_else(|e| panic!("{e}\nreport: {:?}", self.report(service)));
    }

    /// `turnstile deploy` of `bytes` (written to a file named `name`).
    fn deploy(&self, service: &str, name: &str, bytes: &[u8]) -> Run {
        let file = self.plugins.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        deploy_plugin(&file, service, self.plugins.path())
    }

    /// Deploys the release build of `service` made distinct by a custom
    /// section, and returns the deployment number printed.
    fn deploy_variant(&self, service: &str, tag: &str) -> u32 {
        let bytes = std::fs::read(plugin_path(service)).unwrap();
        let run = self.deploy(service, &format!("{service}-{tag}.wasm"), &variant(&bytes, tag));
        run.expect_success();
        let number = run
            .stdout
            .split_once(&format!("deployed {service} v"))
            .and_then(|(_, rest)| rest.split(':').next())
            .and_then(|n| n.parse().ok());
        number.unwrap_or_else(|| panic!("no version number in the deploy output: {run}"))
    }

    fn plugins_cmd(&self, args: &[&str]) -> Run {
        let mut cmd = turnstile_command(args);
        cmd.arg("--plugins").arg(self.plugins.path());
        run(cmd)
    }

    /// `turnstile status --event ID --json`: deployment per service.
    fn status_deployments(&self) -> Vec<(String, Option<u64>, Option<u64>)> {
        let mut cmd = turnstile_command(["status", "--event", &self.id.to_string(), "--json"]);
        cmd.env("TURNSTILE_RUNNER__STATUS_DIR", self.status.path());
        let run = run(cmd);
        run.expect_success();
        let status: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
        let event = status["events"]
            .as_array()
            .and_then(|events| events.iter().find(|e| e["event_id"].as_u64() == Some(self.id)))
            .unwrap_or_else(|| panic!("event {} missing from the status: {run}", self.id));
        let instances = event["instances"].as_array().cloned().unwrap_or_default();
        instances
            .iter()
            .map(|i| (i["service"].as_str().unwrap_or("?").to_owned(), i["deployment"].as_u64(), i["pid"].as_u64()))
            .collect()
    }

    /// Publishes the rest of the plan, lets every booking settle and checks
    /// the committed output, then checks that the processes and groups
    /// survived every reload untouched and stops the services.
    fn finish(mut self) {
        self.sellout.publish_rest();
        let Setup { ticketing, seats, sellout, .. } = &mut self;
        sellout
            .drive_until("all bookings settled", WAIT, &mut [ticketing, seats], |s| s.all_settled())
            .unwrap_or_else(|e| panic!("{e}"));
        let logs = self.logs();
        self.sellout.verify_eventually(Duration::from_secs(60)).assert_clean(&logs);

        for (i, service) in SERVICES.iter().enumerate() {
            let s = self.service(service);
            assert_eq!(s.pid(), Some(self.pids[i]), "{s} was restarted\n{logs}");
            let reported = self.report(service).map(|r| r.pid);
            assert_eq!(reported, Some(self.pids[i]), "{s} reports another process\n{logs}");
            // A reload swaps the plugin inside the running consumer: the group
            // keeps its member and never revokes a partition.
            let members = stable_members(self.id, service).expect("the group is stable");
            let ids = |m: &[GroupMember]| m.iter().map(|m| m.member_id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&members), ids(&self.members[i]), "the {service} group rebalanced\n{logs}");
            let revoked = s.log_lines_containing("partitions revoked");
            assert!(revoked.is_empty(), "{s} gave partitions up:\n{}\n{logs}", revoked.join("\n"));
        }
        self.ticketing.stop();
        self.seats.stop();
        let outcome = self.sellout.verify();
        outcome.assert_clean(&logs);
        eprintln!("final statuses {:?}", outcome.counts);
        assert!(outcome.count(turnstile_protocol::BookingStatus::Completed) > 0, "nobody paid: {:?}", outcome.counts);
        cleanup(self.id);
    }
}

/// `bytes` with a custom section `turnstile-test-build` holding `tag`.
fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    with_custom_section(bytes, "turnstile-test-build", tag.as_bytes())
}

/// Lines of the service's log with `needle`.
fn count(service: &Service, needle: &str) -> usize {
    service.log_lines_containing(needle).len()
}

fn current_version(setup: &Setup, service: &str) -> Value {
    let run = setup.plugins_cmd(&["plugins", "--service", service, "--json"]);
    run.expect_success();
    let listing: Value = serde_json::from_str(&run.stdout).unwrap();
    listing["current"].clone()
}

/// Four new versions, alternating between the services, each deployed while
/// a batch of bookings is in flight: every booking is still decided exactly
/// once, no status message is repeated, no seat is held twice, and each
/// service reports (and logs) running the latest version.
#[test]
fn versions_deployed_under_load_lose_and_duplicate_nothing() {
    let mut setup = Setup::start(320);
    let rounds = [TICKETING_SERVICE, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE, SEAT_RESERVATION_SERVICE];
    for (round, service) in rounds.iter().enumerate() {
        // Bookings published on both sides of the deploy: the swap happens
        // while they are being processed.
        setup.sellout.publish(40);
        let version = setup.deploy_variant(service, &format!("round-{round}"));
        setup.sellout.publish(40);
        setup.wait_for_deployment(service, version);
    }
    let logs = setup.logs();
    let reported = setup.status_deployments();
    for service in SERVICES {
        let s = setup.service(service);
        assert_eq!(current_version(&setup, service), 3, "{logs}");
        assert!(
            reported.iter().any(|(name, deployment, pid)| name == service
                && *deployment == Some(3)
                && *pid == s.pid().map(u64::from)),
            "`turnstile status` must show {service} running v3 in the same process: {reported:?}"
        );
        assert_eq!(count(s, "plugin reloaded"), 2, "{s} must log two reloads\n{logs}");
        assert_eq!(count(s, "new plugin version rejected"), 0, "{logs}");
    }
    setup.finish();
}

/// A file that is not a plugin of the world, and a plugin of the other
/// service, are refused by `turnstile deploy` (exit 2) without touching
/// `current`; the running service never hears of them and goes on with v1.
#[test]
fn a_broken_plugin_is_refused_and_the_old_version_keeps_processing() {
    let mut setup = Setup::start(200);
    setup.sellout.publish(100);
    let release = std::fs::read(plugin_path(TICKETING_SERVICE)).unwrap();

    let truncated = setup.deploy(TICKETING_SERVICE, "truncated.wasm", &release[..release.len() / 2]);
    truncated.expect_code(2);
    assert!(truncated.stderr.contains("plugin refused"), "{truncated}");
    let garbage = setup.deploy(TICKETING_SERVICE, "garbage.wasm", b"\0asm but not really");
    garbage.expect_code(2);
    let reservation = std::fs::read(plugin_path(SEAT_RESERVATION_SERVICE)).unwrap();
    let wrong = setup.deploy(TICKETING_SERVICE, "wrong-service.wasm", &reservation);
    wrong.expect_code(2);
    assert!(wrong.stderr.contains("manifest names service `seat-reservation-service`"), "{wrong}");

    assert_eq!(current_version(&setup, TICKETING_SERVICE), 1);
    assert!(!setup.plugins.path().join(TICKETING_SERVICE).join("v2").exists());
    // Let the service's watcher poll a few times over the refused deploys.
    let settled_half = |s: &Sellout| s.all_settled();
    let Setup { ticketing, seats, sellout, .. } = &mut setup;
    sellout
        .drive_until("the first half settled", WAIT, &mut [ticketing, seats], settled_half)
        .unwrap_or_else(|e| panic!("{e}"));

    let logs = setup.logs();
    let ticketing = &setup.ticketing;
    assert_eq!(setup.report(TICKETING_SERVICE).and_then(|r| r.deployment), Some(1), "{logs}");
    assert_eq!(count(ticketing, "plugin reloaded") + count(ticketing, "new plugin version"), 0, "{logs}");
    setup.finish();
}

/// Rolling a running service back from v2 to v1 swaps v1 back in: the report
/// shows deployment 1 again and bookings go on being processed.
#[test]
fn rollback_swaps_the_earlier_version_back_into_a_running_service() {
    let mut setup = Setup::start(240);
    setup.sellout.publish(80);
    let v2 = setup.deploy_variant(TICKETING_SERVICE, "v2");
    assert_eq!(v2, 2);
    setup.wait_for_deployment(TICKETING_SERVICE, 2);

    setup.sellout.publish(80);
    let run = setup.plugins_cmd(&["rollback", "--service", TICKETING_SERVICE]);
    run.expect_success();
    assert!(run.stdout.contains("current v2 → v1"), "{run}");
    assert_eq!(current_version(&setup, TICKETING_SERVICE), 1);
    setup.wait_for_deployment(TICKETING_SERVICE, 1);

    let logs = setup.logs();
    let reported = setup.status_deployments();
    assert!(
        reported.iter().any(|(name, deployment, _)| name == TICKETING_SERVICE && *deployment == Some(1)),
        "`turnstile status` must show the rollback: {reported:?}"
    );
    let reloads = setup.ticketing.log_lines_containing("plugin reloaded");
    assert_eq!(reloads.len(), 2, "{logs}");
    assert!(reloads[1].contains("to=v1"), "the second reload must go back to v1: {}\n{logs}", reloads[1]);
    setup.finish();
}

/// A rollback issued while the service is still compiling the version it
/// rolls back from must win: the service ends on the version `current`
/// names. The services compile into their own cache here (as on a host
/// other than the one that ran `turnstile deploy`), so v2 takes seconds to
/// compile while v1, already compiled, loads at once. The slow v2 compile
/// finishes last and must be discarded, not swapped in.
#[test]
fn a_rollback_during_a_slow_compile_wins() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_owned();
    let mut setup = Setup::start_with_env(120, &[("TURNSTILE_PLUGIN__CACHE_DIR", &cache_dir)]);
    setup.sellout.publish(60);
    assert_eq!(setup.deploy_variant(TICKETING_SERVICE, "slow"), 2);
    let compiling = eventually(WAIT, || count(&setup.ticketing, "compiling version=2") > 0);
    assert!(compiling, "{} never noticed v2\n{}", setup.ticketing, setup.logs());
    setup.plugins_cmd(&["rollback", "--service", TICKETING_SERVICE]).expect_success();
    // Both compiles end in a swap, a rejection, or (the slow, superseded
    // one) a discard; then nothing else is coming.
    let swaps = |s: &Service| {
        count(s, "plugin reloaded") + count(s, "new plugin version rejected") + count(s, "superseded while it compiled")
    };
    let deadline = std::time::Instant::now() + WAIT;
    while swaps(&setup.ticketing) < 2 && std::time::Instant::now() < deadline {
        setup.sellout.pump(Duration::from_millis(200));
    }
    assert_eq!(swaps(&setup.ticketing), 2, "{}", setup.logs());
    // Past any report written before the last swap.
    setup.sellout.pump(Duration::from_millis(1500));
    let reloads = setup.ticketing.log_lines_containing("plugin reloaded");
    assert_eq!(current_version(&setup, TICKETING_SERVICE), 1);
    assert_eq!(
        setup.report(TICKETING_SERVICE).and_then(|r| r.deployment),
        Some(1),
        "`current` is v1 but the service runs another version; reloads:\n{}\n{}",
        reloads.join("\n"),
        setup.logs()
    );
    setup.finish();
}

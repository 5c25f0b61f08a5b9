//! The chaos test: the real flow with two instances of each service while
//! instances are killed (-9) and frozen (SIGSTOP past their transaction
//! timeout), plugins are deployed and rolled back, the broker is killed and
//! relaunched with its data and paused, poison is mixed into
//! `booking-command`, and some bookings come from a client that partitions
//! wrongly (CRC32). Afterwards independent `read_committed` readers check
//! every invariant and a table of actions and invariants is printed.
//!
//! Short and seeded in CI. A long run (see README, "Chaos"):
//! `TURNSTILE_CHAOS_SEED=42 TURNSTILE_CHAOS_BOOKINGS=5000 TURNSTILE_CHAOS_FAULTS=40 scripts/chaos`.
//! Broker faults need a broker started by `scripts/local-kafka` on the
//! bootstrap's port; against any other cluster they are skipped (and the
//! table says so).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile::runner::report;
use turnstile_protocol::{BookingStatus, BookingStatusChanged};
use turnstile_tests::*;

const PARTITIONS: i32 = 6;
const CHART: &str = r#"{"rows":10,"cols":16,"sections":[{"name":"A","price":100,"subsections":3},{"name":"B","price":80,"subsections":3},{"name":"Balcony","price":50,"subsections":2}]}"#;
const SERVICES: [&str; 2] = [TICKETING_SERVICE, SEAT_RESERVATION_SERVICE];
const INSTANCES: [&str; 2] = ["1", "2"];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillInstance,
    FreezeInstance,
    Deploy,
    Rollback,
    KillBroker,
    PauseBroker,
    Poison,
}

/// A broker this test may kill: one started by `scripts/local-kafka`.
struct Broker {
    script: PathBuf,
    port: String,
}

impl Broker {
    fn find() -> Option<Broker> {
        let bootstrap = bootstrap();
        let port = bootstrap.strip_prefix("127.0.0.1:").or_else(|| bootstrap.strip_prefix("localhost:"))?.to_owned();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-kafka");
        let status = Command::new(&script).arg("status").env("KAFKA_PORT", &port).output().ok()?;
        let text = String::from_utf8_lossy(&status.stdout);
        (status.status.success() && text.contains("(pid ")).then_some(Broker { script, port })
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new(&self.script).args(args).env("KAFKA_PORT", &self.port).output().expect("local-kafka");
        assert!(out.status.success(), "local-kafka {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Both services, two instances each, run from a deployment directory.
struct Fleet {
    id: u64,
    plugins: tempfile::TempDir,
    status: tempfile::TempDir,
    running: Vec<Service>,
    /// Stopped processes, kept for their logs.
    gone: Vec<Service>,
    /// The deployment each service's `current` names.
    current: HashMap<&'static str, u32>,
    variants: u32,
}

impl Fleet {
    fn env(&self) -> Vec<(String, String)> {
        vec![("TURNSTILE_RUNNER__STATUS_DIR".into(), self.status.path().display().to_string())]
    }

    fn spawn(&self, service: &str, instance: &str) -> Service {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Service::start_deployed(service, self.id, instance, self.plugins.path(), &env)
    }

    fn start(id: u64) -> Fleet {
        let mut fleet = Fleet {
            id,
            plugins: tempfile::tempdir().expect("plugins dir"),
            status: tempfile::tempdir().expect("status dir"),
            running: Vec::new(),
            gone: Vec::new(),
            current: HashMap::new(),
            variants: 0,
        };
        for service in SERVICES {
            deploy_plugin(&plugin_path(service), service, fleet.plugins.path()).expect_success();
            fleet.current.insert(service, 1);
        }
        for service in SERVICES {
            for instance in INSTANCES {
                let s = fleet.spawn(service, instance);
                fleet.running.push(s);
            }
        }
        fleet
    }

    fn services(&mut self) -> Vec<&mut Service> {
        self.running.iter_mut().collect()
    }

    fn logs(&self) -> String {
        let all: Vec<&Service> = self.running.iter().chain(&self.gone).collect();
        describe(&all)
    }

    /// Deploys a distinct build of `service`; returns its number.
    fn deploy(&mut self, service: &'static str) -> u32 {
        self.variants += 1;
        let bytes = std::fs::read(plugin_path(service)).expect("read the plugin");
        let file = self.plugins.path().join(format!("{service}-chaos-{}.wasm", self.variants));
        std::fs::write(&file, with_custom_section(&bytes, "turnstile-chaos", &self.variants.to_le_bytes()))
            .expect("write the variant");
        let run = deploy_plugin(&file, service, self.plugins.path());
        run.expect_success();
        let number = run
            .stdout
            .split_once(&format!("deployed {service} v"))
            .and_then(|(_, rest)| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no version in {run}"));
        self.current.insert(service, number);
        number
    }

    fn rollback(&mut self, service: &'static str) -> Option<u32> {
        let now = self.current[service];
        if now <= 1 {
            return None;
        }
        let mut cmd = turnstile_command(["rollback", "--service", service, "--plugins"]);
        cmd.arg(self.plugins.path());
        run(cmd).expect_success();
        self.current.insert(service, now - 1);
        Some(now - 1)
    }

    /// Every instance alive, reporting `running` on the current deployment.
    fn on_current(&self) -> Result<(), String> {
        let reports = report::read_all(self.status.path(), self.id);
        for service in SERVICES {
            for instance in INSTANCES {
                let r = reports
                    .iter()
                    .find(|r| r.service == service && r.instance_id == instance)
                    .ok_or_else(|| format!("{service}/{instance}: no report"))?;
                if r.state != "running" || r.deployment != Some(self.current[service]) {
                    return Err(format!(
                        "{service}/{instance}: {} on {:?}, expected running on v{}",
                        r.state, r.deployment, self.current[service]
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A poison record sent during the run and what must become of it.
struct Poison {
    payload: Vec<u8>,
    /// Dead-lettered (`true`) or a failed booking (`false`).
    dead_lettered: bool,
    booking_id: Option<String>,
}

fn send_poison(id: u64, rng: &mut StdRng, sent: &mut Vec<Poison>) {
    let topic = naming::booking_command_topic(id).to_string();
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config().set("acks", "all").set("message.max.bytes", "2000000").create().expect("producer");
    let n = sent.len();
    let booking = format!("poison-{n}-{}", rng.random::<u32>());
    let key = naming::booking_key(id, &booking);
    let partition = rng.random_range(0..PARTITIONS);
    let keyed = |payload: String, dead_lettered| (key.clone().into_bytes(), payload.into_bytes(), dead_lettered);
    let (k, payload, dead_lettered) = match rng.random_range(0..5) {
        0 => keyed("\u{1} not json".into(), true),
        1 => keyed(format!(r#"{{"type":"refund","booking_id":"{booking}"}}"#), true),
        2 => (Vec::new(), br#"{"type":"pay_booking","buyer_id":1}"#.to_vec(), true),
        3 => keyed(format!(r#"{{"type":"pay_booking","booking_id":"{booking}","buyer_id":1}}"#), true),
        // A buyer's mistake: a failed booking with a reason.
        _ => keyed(
            format!(
                r#"{{"type":"create_booking","booking_id":"{booking}","buyer_id":1,"section":"{}","subsection":1,"quantity":1,"seat_selection_mode":"best_available","seat_positions":[]}}"#,
                "Z".repeat(300 * 1024)
            ),
            false,
        ),
    };
    let booking_id = (!dead_lettered).then(|| booking.clone());
    let k = k.as_slice();
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic).partition(partition).payload(&payload);
    if !k.is_empty() {
        record = record.key(k);
    }
    record = record.headers(raw_headers(&[(b"turnstile.error", b"forged"), (b"\xfe\xff", b"x")]));
    producer.send(record).map_err(|(e, _)| e).expect("queue poison");
    producer.flush(TIMEOUT).expect("deliver poison");
    sent.push(Poison { payload: payload.clone(), dead_lettered, booking_id });
}

/// Keeps the load moving for `wait` (statuses read, follow-ups sent),
/// ignoring instances that are meant to be down.
fn pump_for(sellout: &mut Sellout, wait: Duration) {
    let end = Instant::now() + wait;
    while Instant::now() < end {
        sellout.pump(Duration::from_millis(200));
    }
}

#[test]
fn chaos() {
    let seed: u64 = env_or("TURNSTILE_CHAOS_SEED", 7);
    let bookings: usize = env_or("TURNSTILE_CHAOS_BOOKINGS", 900);
    let faults: usize = env_or("TURNSTILE_CHAOS_FAULTS", 8);
    let mut rng = StdRng::seed_from_u64(seed);
    let broker = Broker::find();
    let id = unique_event_id();
    let (_, chart) = provision_with_chart(id, PARTITIONS, CHART);
    let mut fleet = Fleet::start(id);
    let mut sellout = Sellout::new(id, PARTITIONS, chart.clone(), plan_bookings(&chart, bookings, seed));

    // Every kind once, in a seeded order, then seeded extras.
    let mut schedule = vec![
        Fault::KillInstance,
        Fault::FreezeInstance,
        Fault::Deploy,
        Fault::Rollback,
        Fault::KillBroker,
        Fault::PauseBroker,
        Fault::Poison,
    ];
    schedule.shuffle(&mut rng);
    while schedule.len() < faults {
        schedule.push(schedule[rng.random_range(0..7)]);
    }
    schedule.truncate(faults.max(1));

    let mut actions: BTreeMap<String, usize> = BTreeMap::new();
    let mut note = |what: String| *actions.entry(what).or_default() += 1;
    let mut poisons = Vec::new();
    let chunk = bookings.div_ceil(schedule.len() + 1);
    sellout.publish(chunk);
    for fault in &schedule {
        // A freeze lands while the last chunk is still flowing, so that the
        // frozen instance holds an open transaction the broker times out.
        if *fault != Fault::FreezeInstance {
            pump_for(&mut sellout, Duration::from_secs(2));
        }
        match fault {
            Fault::KillInstance => {
                let i = rng.random_range(0..fleet.running.len());
                let mut victim = fleet.running.remove(i);
                let (service, instance) = (victim.service.clone(), victim.instance.clone());
                victim.sigkill();
                fleet.gone.push(victim);
                pump_for(&mut sellout, Duration::from_secs(rng.random_range(1..5)));
                let fresh = fleet.spawn(&service, &instance);
                fleet.running.insert(i, fresh);
                note("kill -9 an instance, restart it".into());
            }
            Fault::FreezeInstance => {
                // Past the 15 s transaction timeout: the broker aborts its
                // transaction, a rebalance gives its partitions away, and on
                // SIGCONT it finds itself fenced and must rejoin.
                let i = rng.random_range(0..fleet.running.len());
                fleet.running[i].signal("STOP");
                pump_for(&mut sellout, Duration::from_secs(17));
                fleet.running[i].signal("CONT");
                note("SIGSTOP an instance 17 s (zombie), SIGCONT".into());
            }
            Fault::Deploy => {
                let service = SERVICES[rng.random_range(0..2)];
                let v = fleet.deploy(service);
                note(format!("hot deploy (v{v})"));
            }
            Fault::Rollback => {
                let service = SERVICES[rng.random_range(0..2)];
                if fleet.current[service] == 1 {
                    fleet.deploy(service);
                    pump_for(&mut sellout, Duration::from_secs(1));
                }
                fleet.rollback(service);
                note("rollback".into());
            }
            Fault::KillBroker => match &broker {
                Some(b) => {
                    b.run(&["kill", "1"]);
                    std::thread::sleep(Duration::from_secs(rng.random_range(2..6)));
                    b.run(&["start", "1"]);
                    note("kill -9 the broker, relaunch with its data".into());
                }
                None => note("broker kill SKIPPED (broker not from scripts/local-kafka)".into()),
            },
            Fault::PauseBroker => match &broker {
                Some(b) => {
                    b.run(&["pause", "1"]);
                    std::thread::sleep(Duration::from_secs(rng.random_range(3..8)));
                    b.run(&["resume", "1"]);
                    note("pause the broker, resume".into());
                }
                None => note("broker pause SKIPPED (broker not from scripts/local-kafka)".into()),
            },
            Fault::Poison => {
                for _ in 0..3 {
                    send_poison(id, &mut rng, &mut poisons);
                }
                note("poison records (3)".into());
            }
        }
        // Some chunks come from a client that partitions wrongly (librdkafka's
        // CRC32 default): the host forwards them. (Keyless clients, whose
        // immediate cancels can overtake their creates, are tested apart.)
        let client = if rng.random_bool(0.3) { ClientPartitioner::Crc32 } else { ClientPartitioner::Murmur2 };
        if client != ClientPartitioner::Murmur2 {
            note(format!("a chunk of bookings from a {client:?} client"));
        }
        sellout.client.set_partitioner(client);
        sellout.publish(chunk);
    }
    sellout.client.set_partitioner(ClientPartitioner::Murmur2);
    sellout.publish_rest();
    let mut services = fleet.services();
    let settled = sellout.drive_until(
        "every booking settles after the chaos",
        Duration::from_secs(420),
        &mut services,
        Sellout::all_settled,
    );
    drop(services);
    let mut outcome = sellout.verify_eventually(Duration::from_secs(30));
    // The checker knows the planned bookings; poisons are checked below.
    outcome.problems.retain(|p| !p.contains("booking poison-"));

    // Invariants beyond the sellout checker.
    let mut checks: Vec<(&str, Result<(), String>)> = Vec::new();
    checks.push(("every valid create decided, every booking settled", settled));
    checks.push((
        "statuses: decided once, legal transitions, none twice, seats never double-held, sold = completed, seat service agrees",
        if outcome.problems.is_empty() {
            Ok(())
        } else {
            Err(outcome.problems.iter().take(10).cloned().collect::<Vec<_>>().join("\n    "))
        },
    ));
    let finals = final_statuses(id);
    checks.push(("ticketing changelog agrees with the final statuses", ticketing_changelog_agrees(id, &finals)));
    checks.push(("seat changelog agrees with the seats of the final statuses", seat_changelog_agrees(id, &finals)));
    checks.push((
        "every poison dead-lettered or failed with a reason, no valid record in a DLQ",
        poisons_accounted(id, &poisons, &finals),
    ));
    checks.push(("every service alive, on the current deployment", {
        let mut result = Ok(());
        for s in &mut fleet.running {
            if let Err(e) = s.check_running() {
                result = Err(e);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        result.and_then(|()| {
            loop {
                match fleet.on_current() {
                    Ok(()) => break Ok(()),
                    Err(e) if Instant::now() > deadline => break Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(500)),
                }
            }
        })
    }));

    let mut table = format!(
        "\nchaos: seed {seed}, {bookings} bookings, {} faults, event {id}\n\n  {:<62} {:>5}\n",
        schedule.len(),
        "action",
        "count"
    );
    for (what, n) in &actions {
        table.push_str(&format!("  {what:<62} {n:>5}\n"));
    }
    table.push_str(&format!("\n  final statuses: {:?}\n\n  {:<6} invariant\n", outcome.counts, "result"));
    let mut failed = 0;
    for (what, result) in &checks {
        match result {
            Ok(()) => table.push_str(&format!("  {:<6} {what}\n", "PASS")),
            Err(why) => {
                failed += 1;
                table.push_str(&format!("  {:<6} {what}\n    {why}\n", "FAIL"));
            }
        }
    }
    println!("{table}");
    if failed > 0 {
        panic!("{failed} chaos invariant(s) failed:{table}\n{}", fleet.logs());
    }
    for s in &mut fleet.running {
        s.stop();
    }
    cleanup(id);
}

fn poisons_accounted(
    id: u64,
    poisons: &[Poison],
    finals: &HashMap<String, BookingStatusChanged>,
) -> Result<(), String> {
    let dlq = read_back(&naming::dlq_topic(id, TICKETING_SERVICE).to_string());
    let seat_dlq = read_back(&naming::dlq_topic(id, SEAT_RESERVATION_SERVICE).to_string());
    if !seat_dlq.is_empty() {
        return Err(format!("{} records in the seat DLQ, none expected", seat_dlq.len()));
    }
    for letter in &dlq {
        if header(letter, "turnstile.error").is_none() || header(letter, "turnstile.reason").is_none_or(str::is_empty) {
            return Err(format!("a dead letter without reason: {letter:?}"));
        }
        if letter.headers.iter().filter(|(k, _)| k == "turnstile.error").count() != 1 {
            return Err(format!("a forged turnstile.* header was copied: {:?}", letter.headers));
        }
        if !poisons.iter().any(|p| p.dead_lettered && p.payload == letter.value) {
            return Err(format!(
                "a record that is no poison was dead-lettered: {}",
                String::from_utf8_lossy(&letter.value)
            ));
        }
    }
    for p in poisons {
        if p.dead_lettered {
            if !dlq.iter().any(|l| l.value == p.payload) {
                return Err(format!("poison not dead-lettered: {}", String::from_utf8_lossy(&p.payload)));
            }
        } else if let Some(b) = &p.booking_id {
            match finals.get(b) {
                Some(s) if s.status == BookingStatus::Failed && s.reason.as_deref().is_some_and(|r| !r.is_empty()) => {}
                other => return Err(format!("{b} should be failed with a reason, is {other:?}")),
            }
        }
    }
    Ok(())
}

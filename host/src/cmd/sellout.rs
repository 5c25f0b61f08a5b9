//! `turnstile sellout`: the main job. Provisions an event, starts both
//! services as child processes, sells more bookings than there are seats,
//! pays and cancels part of the reserved ones, and prints a summary read back
//! with a `read_committed` consumer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use turnstile::client::{ClientSettings, QuietEof};
use turnstile::config::{Config, Overrides};
use turnstile::load::front::{FrontReport, HttpFront};
use turnstile::load::plan::{self, Buyer, Mix, Planned};
use turnstile::load::tally::{Milestone, Summary, Tally};
use turnstile::load::{check_outcome, read_back};
use turnstile::naming::{self, SEAT_RESERVATION_SERVICE, TICKETING_SERVICE};
use turnstile::publisher::{Publisher, producer_properties};
use turnstile::routing;
use turnstile::seating::SeatingChart;
use turnstile_protocol::{BookingCommand, BookingStatus, BookingStatusChanged, CancelBooking, PayBooking};

use super::children::{self, PluginPaths, Services, fresh_event_id, seating_file, wait_for_groups};
use crate::cli::{GlobalArgs, SelloutArgs};

pub fn run(global: &GlobalArgs, args: SelloutArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(global, Overrides::default())?.config;
    let chart = children::chart(args.seating.as_deref())?;
    let plugins = PluginPaths::find(args.plugin_dir.as_deref())?;
    let event_id = args.event.unwrap_or_else(fresh_event_id);
    let bookings = match (args.rate, args.duration) {
        (Some(rate), Some(seconds)) => rate as usize * seconds as usize,
        _ => args.bookings.unwrap_or_else(|| chart.total_seats() as usize * 6 / 5),
    };
    let work_dir = PathBuf::from(".turnstile").join("sellout").join(format!("event-{event_id}"));
    std::fs::create_dir_all(&work_dir).with_context(|| format!("cannot create {}", work_dir.display()))?;

    eprintln!(
        "sellout: event {event_id}, {} seats in {} sections, {bookings} bookings, Kafka at {}",
        chart.total_seats(),
        chart.sections.len(),
        config.kafka.bootstrap
    );

    let seating = seating_file(args.seating.as_deref(), &chart, &work_dir)?;
    children::provision(global, event_id, &seating)?;

    let mut services = Services::default();
    for (service, plugin) in [(TICKETING_SERVICE, &plugins.ticketing), (SEAT_RESERVATION_SERVICE, &plugins.reservation)]
    {
        services.start(global, service, event_id, plugin, &work_dir, &[])?;
    }
    wait_for_groups(
        &config,
        event_id,
        &mut services,
        &[TICKETING_SERVICE, SEAT_RESERVATION_SERVICE],
        Duration::from_secs(120),
    )?;

    let front = match args.via_gateway {
        true => Some(start_gateway(global, &config, event_id, &work_dir, &mut services)?),
        false => None,
    };
    let plan = plan::plan(&chart, bookings, Mix::default(), args.seed.unwrap_or(event_id));
    let result = drive(&config, &chart, event_id, &plan, &args, &mut services, front);
    let cpu = services.cpu_seconds();
    services.stop();
    let Driven { summary, front, plan, unexpected_refusals } = result?;
    println!("{summary}");
    if let Some(front) = &front {
        println!("{front}");
    }
    if args.rate.is_some() {
        println!("(latency per hop: bookings sent after the first {} s of warm-up)", args.warmup);
    }
    let cpu: Vec<String> = cpu.iter().map(|(name, secs)| format!("{name} {secs:.2} s")).collect();
    println!("cpu time: {}", cpu.join(", "));
    let problems = check(&config, &chart, event_id, &plan)? + unexpected_refusals;
    eprintln!("service logs: {}", work_dir.display());
    Ok(if summary.is_clean() && problems == 0 { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_INCOMPLETE) })
}

/// Reads the public topics back with fresh `read_committed` readers and
/// holds them against the contract (the checker the chaos test uses);
/// prints the verdict and returns the number of problems.
fn check(config: &Config, chart: &SeatingChart, event_id: u64, plan: &[Planned]) -> anyhow::Result<usize> {
    let timeout = Duration::from_secs(60);
    let statuses = read_back(
        &config.kafka,
        &naming::booking_status_changed_topic(event_id).to_string(),
        "read_committed",
        timeout,
    )?;
    let results = read_back(
        &config.kafka,
        &naming::seat_reservation_result_topic(event_id).to_string(),
        "read_committed",
        timeout,
    )?;
    let outcome = check_outcome(event_id, config.kafka.partitions, chart, plan, &statuses, &results);
    if outcome.problems.is_empty() {
        println!(
            "contract check: PASS ({} status messages and {} seat results read back)",
            statuses.len(),
            results.len()
        );
    } else {
        println!("contract check: FAIL, {} problem(s):", outcome.problems.len());
        for problem in outcome.problems.iter().take(20) {
            println!("  {problem}");
        }
    }
    Ok(outcome.problems.len())
}

/// Starts a gateway for the event on a free loopback port with a fresh
/// token secret, waits until it is ready, and returns a front sending to it.
fn start_gateway(
    global: &GlobalArgs,
    config: &Config,
    event_id: u64,
    work_dir: &std::path::Path,
    services: &mut Services,
) -> anyhow::Result<HttpFront> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let mut gateway = config.gateway.clone();
    gateway.auth = turnstile::config::GatewayAuth::Jwt;
    gateway.jwt_secret = Some(secret.clone());
    services.start_gateway(
        global,
        event_id,
        &addr,
        work_dir,
        &[("TURNSTILE_GATEWAY__JWT_SECRET", secret), ("TURNSTILE_GATEWAY__AUTH", "jwt".into())],
    )?;
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = agent.get(&format!("http://{addr}/readyz")).call().is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        if let Some(exited) = services.exited() {
            bail!("{exited} exited before it was ready; see its log");
        }
        if Instant::now() > deadline {
            bail!("the gateway on {addr} was not ready within 60 s; see its log");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("sellout: through the gateway at http://{addr}");
    Ok(HttpFront::start(&addr, event_id, &gateway)?)
}

/// What a sellout run produced.
struct Driven {
    summary: Summary,
    /// Through a gateway: its requests.
    front: Option<FrontReport>,
    /// The plan as sent: through a gateway, under the gateway's booking ids
    /// and without the creates it refused.
    plan: Vec<Planned>,
    /// Creates the gateway refused that the rules allow.
    unexpected_refusals: usize,
}

/// Publishes the plan (or sends it through `front`) and tallies statuses
/// until every booking is settled or nothing has moved for `--idle-timeout`.
fn drive(
    config: &Config,
    chart: &SeatingChart,
    event_id: u64,
    plan: &[Planned],
    args: &SelloutArgs,
    services: &mut Services,
    mut front: Option<HttpFront>,
) -> anyhow::Result<Driven> {
    let partitions = config.kafka.partitions;
    let bookings = plan.len();
    let mut early: HashMap<String, Vec<(BookingStatusChanged, Instant)>> = HashMap::new();
    let mut follow: HashMap<String, (Buyer, u64)> = match front {
        Some(_) => HashMap::new(),
        None => plan.iter().map(|p| (p.command.booking_id.clone(), (p.buyer, p.command.buyer_id))).collect(),
    };
    // Through a gateway: the id it gave each planned booking, or its refusal.
    let mut answers: Vec<Option<Result<String, String>>> = vec![None; plan.len()];
    let commands_topic = naming::booking_command_topic(event_id).to_string();
    let requests_topic = naming::ticket_command_request_topic(event_id).to_string();
    let statuses_topic = naming::booking_status_changed_topic(event_id).to_string();
    let rate = args.rate.map(|r| f64::from(r.max(1)));
    let publisher = match rate {
        // A steady rate measures the services: the client lingers no longer
        // than they do (the seed's 50 ms is for bursts).
        Some(_) => Publisher::from_properties({
            let mut properties = producer_properties(config);
            properties.set("linger.ms", config.runner.linger_ms.to_string());
            properties
        })?,
        None => Publisher::new(config)?,
    };
    // At a steady rate the two inner hops are timed too.
    let statuses = status_consumer(config, event_id, partitions, rate.is_some())?;

    let progress = ProgressBar::new(bookings as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} settled ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut tally = Tally::default();
    let send = |command: &BookingCommand, booking_id: &str| -> anyhow::Result<()> {
        let payload = serde_json::to_vec(command)?;
        let (partition, key) = routing::by_booking(event_id, booking_id, partitions);
        publisher.publish(&commands_topic, partition, &key, &payload)?;
        Ok(())
    };

    let idle_timeout = Duration::from_secs(args.idle_timeout);
    let mut last_progress = Instant::now();
    let mut next = 0;
    let mut pending_payments = 0u64;
    let start = Instant::now();
    if rate.is_some() {
        tally.measure_from(start + Duration::from_secs(u64::from(args.warmup)));
    }
    // Open loop: booking i is due at start + i / rate whether or not the
    // system keeps up, and its latency counts from then.
    let due_at = |i: usize| rate.map(|r| start + Duration::from_secs_f64(i as f64 / r));
    while !tally.is_done() || next < plan.len() || front.as_ref().is_some_and(|f| f.outstanding() > 0) {
        // Interleave sending with reading so statuses are timed when they arrive.
        let burst_end = match rate {
            Some(r) => ((start.elapsed().as_secs_f64() * r) as usize + 1).min(plan.len()),
            None => (next + 2000).min(plan.len()),
        };
        for (i, planned) in plan.iter().enumerate().take(burst_end).skip(next) {
            let c = &planned.command;
            match front.as_mut() {
                Some(front) => front.create(i, c.clone()),
                None => {
                    tally.sent(&c.booking_id, &c.section, c.subsection, due_at(i).unwrap_or_else(Instant::now));
                    send(&BookingCommand::CreateBooking(c.clone()), &c.booking_id)?;
                }
            }
        }
        next = next.max(burst_end);
        if book_answers(&mut front, plan, &mut tally, &mut follow, &mut answers, &due_at) {
            last_progress = Instant::now();
        }
        // Statuses read before their create's answer, whose id is known now.
        let known: Vec<String> = early.keys().filter(|id| tally.knows(id)).cloned().collect();
        for id in known {
            for (msg, at) in early.remove(&id).unwrap_or_default() {
                let mut follow_up = Follow { tally: &mut tally, follow: &follow, front: &front, send: &send };
                if follow_up.status(&msg, at)? {
                    pending_payments += 1;
                }
            }
        }

        let poll_until = match due_at(next).filter(|_| next < plan.len()) {
            Some(due) => due.min(Instant::now() + Duration::from_millis(5)),
            None => Instant::now() + Duration::from_millis(if next < plan.len() { 5 } else { 100 }),
        };
        while let Some(result) = statuses.poll(poll_until.saturating_duration_since(Instant::now())) {
            let record = result?;
            // Answers first, so that no status is read before its booking's id is known.
            book_answers(&mut front, plan, &mut tally, &mut follow, &mut answers, &due_at);
            let now = Instant::now();
            if record.topic() != statuses_topic {
                if let Some((booking_id, milestone)) =
                    record.payload().and_then(|p| hop(p, record.topic() == requests_topic))
                {
                    tally.reached(&booking_id, milestone, now);
                }
                if now >= poll_until {
                    break;
                }
                continue;
            }
            let Some(msg) = record.payload().and_then(|p| serde_json::from_slice::<BookingStatusChanged>(p).ok())
            else {
                continue;
            };
            // Through a gateway, a status may come before the create's
            // answer (a 202 waits for the broker, and the services may be
            // quicker than the answer's way back): kept until the id is known.
            if front.is_some() && !tally.knows(&msg.booking_id) {
                early.entry(msg.booking_id.clone()).or_default().push((msg, now));
            } else {
                let mut follow_up = Follow { tally: &mut tally, follow: &follow, front: &front, send: &send };
                if follow_up.status(&msg, now)? {
                    pending_payments += 1;
                }
            }
            last_progress = now;
            if Instant::now() >= poll_until {
                break;
            }
        }
        progress.set_position(tally.settled() as u64);
        progress.set_message(format!("{pending_payments} reserved"));
        if let Some(exited) = services.exited() {
            progress.abandon();
            bail!("{exited} exited during the sellout; see its log");
        }
        if last_progress.elapsed() > idle_timeout {
            progress.abandon_with_message("stalled");
            eprintln!(
                "no status for {idle_timeout:?}; stopping with {} bookings unsettled",
                tally.len() - tally.settled()
            );
            break;
        }
    }
    progress.finish();
    let summary = tally.summary(chart);
    let Some(front) = front else {
        return Ok(Driven { summary, front: None, plan: plan.to_vec(), unexpected_refusals: 0 });
    };
    let report = front.finish();
    let mut sent = Vec::new();
    let mut unexpected_refusals = 0;
    for (planned, answer) in plan.iter().zip(answers) {
        match answer {
            Some(Ok(id)) => {
                let mut planned = planned.clone();
                planned.command.booking_id = id;
                sent.push(planned);
            }
            // The gateway refuses what the rules refuse, before publishing.
            Some(Err(_)) if planned.breaks_rules(chart) => {}
            Some(Err(reason)) => {
                unexpected_refusals += 1;
                eprintln!("the gateway refused a valid booking: {reason}");
            }
            None => {
                unexpected_refusals += 1;
                eprintln!("no answer from the gateway for booking {}", planned.command.booking_id);
            }
        }
    }
    Ok(Driven { summary, front: Some(report), plan: sent, unexpected_refusals })
}

/// What a status read back sets off: the tally, and the buyer's follow-up.
struct Follow<'a> {
    tally: &'a mut Tally,
    /// Who sends what after `pending_payment`, by booking id.
    follow: &'a HashMap<String, (Buyer, u64)>,
    front: &'a Option<HttpFront>,
    /// Publishes a command straight to Kafka (without a gateway).
    send: &'a dyn Fn(&BookingCommand, &str) -> anyhow::Result<()>,
}

impl Follow<'_> {
    /// Tallies `msg`, read at `now`, and sends the buyer's pay or cancel
    /// when it is the booking's `pending_payment`; whether it was.
    fn status(&mut self, msg: &BookingStatusChanged, now: Instant) -> anyhow::Result<bool> {
        if self.tally.observe(msg, now) != Some(BookingStatus::PendingPayment) {
            return Ok(false);
        }
        let Some(&(action, buyer_id)) = self.follow.get(msg.booking_id.as_str()) else { return Ok(true) };
        let booking_id = msg.booking_id.clone();
        let command = match action {
            Buyer::Pays => BookingCommand::PayBooking(PayBooking { booking_id, buyer_id }),
            Buyer::Cancels => BookingCommand::CancelBooking(CancelBooking { booking_id, buyer_id }),
            Buyer::Abandons | Buyer::CancelsAtOnce | Buyer::Invalid => return Ok(true),
        };
        self.tally.follow_up_sent(&msg.booking_id);
        match (self.front, &command) {
            (Some(front), BookingCommand::PayBooking(_)) => front.follow_up(&msg.booking_id, buyer_id, "pay"),
            (Some(front), _) => front.follow_up(&msg.booking_id, buyer_id, "cancel"),
            (None, _) => (self.send)(&command, &msg.booking_id)?,
        }
        Ok(true)
    }
}

/// Books the creates the gateway has answered: each counts from when it
/// was due (in a burst: when answered), and its statuses come under the
/// gateway's id. Whether any was answered.
fn book_answers(
    front: &mut Option<HttpFront>,
    plan: &[Planned],
    tally: &mut Tally,
    follow: &mut HashMap<String, (Buyer, u64)>,
    answers: &mut [Option<Result<String, String>>],
    due_at: &dyn Fn(usize) -> Option<Instant>,
) -> bool {
    let Some(front) = front.as_mut() else { return false };
    let answered = front.take_created();
    for created in &answered {
        let planned = &plan[created.index];
        if let Ok(id) = &created.result {
            let c = &planned.command;
            tally.sent(id, &c.section, c.subsection, due_at(created.index).unwrap_or_else(Instant::now));
            follow.insert(id.clone(), (planned.buyer, c.buyer_id));
        }
    }
    let any = !answered.is_empty();
    for created in answered {
        answers[created.index] = Some(created.result);
    }
    any
}

/// The booking and milestone an inner-hop record shows: a `reserve_seats`
/// on the request topic, or a reservation's answer on the result topic.
fn hop(payload: &[u8], is_request: bool) -> Option<(String, Milestone)> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        kind: String,
        booking_id: Option<String>,
    }
    let probe: Probe = serde_json::from_slice(payload).ok()?;
    let milestone = match (is_request, probe.kind.as_str()) {
        (true, "reserve_seats") => Milestone::Request,
        (false, "seats_reserved" | "reservation_failed") => Milestone::Result,
        _ => return None,
    };
    Some((probe.booking_id?, milestone))
}

/// A `read_committed` reader of every partition of `booking-status-changed`
/// (and, with `hops`, of the seat requests and results between the services).
fn status_consumer(
    config: &Config,
    event_id: u64,
    partitions: i32,
    hops: bool,
) -> anyhow::Result<BaseConsumer<QuietEof>> {
    let consumer: BaseConsumer<QuietEof> = ClientSettings::new(&config.kafka)
        .set("group.id", format!("sellout-{event_id}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create_with_context(QuietEof)?;
    let mut topics = vec![naming::booking_status_changed_topic(event_id)];
    if hops {
        topics.push(naming::ticket_command_request_topic(event_id));
        topics.push(naming::seat_reservation_result_topic(event_id));
    }
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        for p in 0..partitions {
            tpl.add_partition_offset(&topic.to_string(), p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

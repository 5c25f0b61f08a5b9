//! The load generator's HTTP front: bookings sent through a booking
//! gateway instead of straight to Kafka (`sellout --via-gateway`), by a few
//! worker threads with keep-alive connections, timing every request.
//!
//! A create is answered once the broker has it, so many workers keep
//! requests in flight while the gateway batches them. A `503` (back-pressure)
//! or a failed connection is retried after a short pause, never dropped:
//! creates carry an `Idempotency-Key`, so a retry never books twice. A `4xx`
//! is a refusal, reported with its body.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use turnstile_protocol::CreateBooking;

use crate::config::GatewayConfig;
use crate::gateway::auth;

/// Worker threads, each with one request in flight at a time: enough to
/// fill the gateway's batches while each create waits for its own.
const WORKERS: usize = 64;
/// How long a request is retried while the gateway answers 503 or cannot be reached.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// A create's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The plan index the create was submitted with.
    pub index: usize,
    /// The gateway's booking id, or the refusal (status and body).
    pub result: Result<String, String>,
}

enum Job {
    Create { index: usize, command: CreateBooking },
    FollowUp { booking_id: String, buyer_id: u64, action: &'static str },
}

/// Request counts and latencies so far.
#[derive(Debug, Clone, Default)]
pub struct FrontReport {
    pub requests: u64,
    pub retried_503: u64,
    pub refused: u64,
    /// Every request's latency, sorted once the front has finished.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl FrontReport {
    pub fn requests_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.requests as f64 / secs } else { 0.0 }
    }

    /// The `q` quantile of request latency (`q` in 0..=1).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        super::tally::percentile(&self.latencies, q)
    }
}

impl std::fmt::Display for FrontReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.2} ms", d.as_secs_f64() * 1000.0));
        writeln!(
            f,
            "http: {} requests, {:.0} requests/s, {} refused (4xx), {} retried after 503",
            self.requests,
            self.requests_per_second(),
            self.refused,
            self.retried_503
        )?;
        write!(
            f,
            "http latency: p50 {}, p99 {}, p99.9 {}",
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            ms(self.quantile(0.999))
        )
    }
}

/// Worker threads sending to one gateway.
pub struct HttpFront {
    jobs: Option<Sender<Job>>,
    created: Receiver<Created>,
    report: Arc<Mutex<FrontReport>>,
    outstanding: usize,
    started: Instant,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// Why the front cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error(transparent)]
    Token(#[from] auth::AuthError),
    #[error("cannot start an HTTP worker: {0}")]
    Thread(#[from] std::io::Error),
}

impl HttpFront {
    /// Workers for the gateway at `addr` (`host:port`) of `event_id`,
    /// signing buyers' tokens with `gateway.jwt_secret`.
    pub fn start(addr: &str, event_id: u64, gateway: &GatewayConfig) -> Result<Self, FrontError> {
        // Fail now, not in a worker, if tokens cannot be made.
        auth::issue(gateway, 1)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (done, created) = mpsc::channel();
        let report = Arc::new(Mutex::new(FrontReport::default()));
        let mut workers = Vec::new();
        let run = uuid::Uuid::now_v7();
        for n in 0..WORKERS {
            let worker = Worker {
                run,
                base: format!("http://{addr}"),
                event_id,
                gateway: gateway.clone(),
                tokens: HashMap::new(),
                agent: ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .into(),
                report: report.clone(),
            };
            let (queue, done) = (queue.clone(), done.clone());
            workers.push(std::thread::Builder::new().name(format!("http-front-{n}")).spawn(move || {
                worker.run(&queue, &done);
            })?);
        }
        Ok(HttpFront { jobs: Some(jobs), created, report, outstanding: 0, started: Instant::now(), workers })
    }

    /// Queues a create; its answer comes from [`HttpFront::take_created`].
    pub fn create(&mut self, index: usize, command: CreateBooking) {
        self.outstanding += 1;
        self.send(Job::Create { index, command });
    }

    /// Queues a pay or cancel (`action`) of a booking the gateway made.
    pub fn follow_up(&self, booking_id: &str, buyer_id: u64, action: &'static str) {
        self.send(Job::FollowUp { booking_id: booking_id.to_owned(), buyer_id, action });
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs
            && jobs.send(job).is_err()
        {
            tracing::error!("every HTTP worker has stopped");
        }
    }

    /// The creates answered since the last call.
    pub fn take_created(&mut self) -> Vec<Created> {
        let answered: Vec<Created> = self.created.try_iter().collect();
        self.outstanding -= answered.len().min(self.outstanding);
        answered
    }

    /// Creates queued and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Waits for the queued requests, stops the workers and reports.
    pub fn finish(mut self) -> FrontReport {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        let mut report = std::mem::take(&mut *self.report.lock().unwrap_or_else(|p| p.into_inner()));
        report.elapsed = self.started.elapsed();
        report.latencies.sort_unstable();
        report
    }
}

struct Worker {
    /// Tells this run's idempotency keys from an earlier run's.
    run: uuid::Uuid,
    base: String,
    event_id: u64,
    gateway: GatewayConfig,
    tokens: HashMap<u64, String>,
    agent: ureq::Agent,
    report: Arc<Mutex<FrontReport>>,
}

impl Worker {
    fn run(mut self, queue: &Mutex<Receiver<Job>>, done: &Sender<Created>) {
        loop {
            let job = match queue.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            match job {
                Job::Create { index, command } => {
                    let body = serde_json::json!({
                        "section": command.section,
                        "subsection": command.subsection,
                        "quantity": command.quantity,
                        "seat_selection_mode": command.seat_selection_mode,
                        "seat_positions": command.seat_positions,
                    })
                    .to_string();
                    let path = format!("/events/{}/bookings", self.event_id);
                    let key = format!("sellout-{}-{index}", self.run);
                    let result = self.post(&path, command.buyer_id, Some(&key), &body).and_then(|answer| {
                        let value: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
                        value["booking_id"].as_str().map(str::to_owned).ok_or(answer)
                    });
                    let _ = done.send(Created { index, result });
                }
                Job::FollowUp { booking_id, buyer_id, action } => {
                    if let Err(err) = self.post(&format!("/bookings/{booking_id}/{action}"), buyer_id, None, "") {
                        tracing::warn!(%booking_id, action, error = %err, "follow-up refused");
                    }
                }
            }
        }
    }

    /// POSTs until the answer is not a 503 and the gateway was reached;
    /// `Ok(body)` for a 2xx.
    fn post(&mut self, path: &str, buyer: u64, key: Option<&str>, body: &str) -> Result<String, String> {
        let token = match self.tokens.get(&buyer) {
            Some(t) => t.clone(),
            None => {
                let t = auth::issue(&self.gateway, buyer).map_err(|e| e.to_string())?;
                self.tokens.insert(buyer, t.clone());
                t
            }
        };
        let url = format!("{}{path}", self.base);
        let mut pause = Duration::from_millis(5);
        let give_up = Instant::now() + RETRY_FOR;
        loop {
            let started = Instant::now();
            let mut request = self
                .agent
                .post(&url)
                .header("Authorization", &format!("Bearer {token}"))
                .content_type("application/json");
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            let response = request.send(body);
            let took = started.elapsed();
            let mut response = match response {
                Ok(r) => r,
                Err(e) if Instant::now() < give_up => {
                    tracing::debug!(error = %e, path, "retrying a request the gateway did not answer");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                    continue;
                }
                Err(e) => return Err(format!("POST {path}: {e}")),
            };
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
            report.requests += 1;
            report.latencies.push(took);
            match status {
                503 if Instant::now() < give_up => {
                    report.retried_503 += 1;
                    drop(report);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                200..=299 => return Ok(text),
                _ => {
                    report.refused += 1;
                    return Err(format!("{status} {text}"));
                }
            }
        }
    }
}

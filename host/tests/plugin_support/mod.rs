//! Shared by the `plugin_*` component tests: the real release builds of the
//! plugins, a test engine, and an in-process "cluster" that routes outputs
//! between the two services exactly as the host would.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use turnstile::naming::{self, CLIENT, TopicName};
use turnstile::plugin::{
    EngineSettings, HandleError, LoadedPlugin, MemoryState, Message, PluginEngine, PluginInstance, StateAccess,
};
use turnstile::routing::Router;
use turnstile::topology::Topology;

/// The release `.wasm` of `turnstile_{name}`; fails with the fix when absent.
pub fn wasm_path(name: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    let path = target.join("wasm32-wasip2/release").join(format!("turnstile_{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run scripts/build-plugins first", path.display());
    path
}

/// Settings for tests: a short deadline, a small memory cap, no disk cache.
pub fn test_settings() -> EngineSettings {
    EngineSettings {
        deadline: Duration::from_millis(200),
        memory_limit: 32 << 20,
        cache_dir: None,
        ..EngineSettings::default()
    }
}

/// One engine and the three plugins, loaded once per test binary.
pub struct Plugins {
    pub engine: PluginEngine,
    pub ticketing: LoadedPlugin,
    pub reservation: LoadedPlugin,
    pub misbehave: LoadedPlugin,
}

pub fn plugins() -> &'static Plugins {
    static PLUGINS: OnceLock<Plugins> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        let engine = PluginEngine::new(test_settings()).expect("engine");
        let load = |name: &str| engine.load_file(&wasm_path(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"));
        Plugins { ticketing: load("ticketing"), reservation: load("reservation"), misbehave: load("misbehave"), engine }
    })
}

/// A message on `topic` with the event id and action parsed from the name.
pub fn message<'a>(
    topic: &'a TopicName,
    topic_text: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a str>,
    payload: &'a [u8],
) -> Message<'a> {
    Message {
        topic: topic_text,
        partition,
        offset,
        key,
        payload,
        headers: &[],
        timestamp: Some(1_700_000_000_000),
        event_id: topic.event_id,
        action: &topic.action,
    }
}

/// Hands `payload` to an instance of the `misbehave` plugin as the record
/// at `offset` of its (nominal) input topic.
pub fn send_misbehave<S: StateAccess>(
    instance: &mut PluginInstance<S>,
    offset: i64,
    payload: &str,
) -> Result<Vec<turnstile::plugin::Output>, HandleError> {
    let topic = TopicName::flow(1, "misbehave", "client", "misbehave");
    let text = topic.to_string();
    instance.handle(&Message {
        topic: &text,
        partition: 0,
        offset,
        key: None,
        payload: payload.as_bytes(),
        headers: &[],
        timestamp: None,
        event_id: 1,
        action: &topic.action,
    })
}

/// The `misbehave` plugin's echo counter in `state`.
pub fn misbehave_count(state: &MemoryState) -> Option<String> {
    state.map.get(&b"count"[..]).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A record waiting in a topic partition.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub payload: Vec<u8>,
    pub critical: bool,
}

/// Both services of one event in one process: one plugin instance per
/// (service, partition), records routed by `turnstile::routing` into
/// per-partition FIFO queues, client-bound records collected.
pub struct Cluster {
    pub event: u64,
    pub partitions: i32,
    instances: HashMap<(String, i32), PluginInstance<MemoryState>>,
    routers: HashMap<String, Router>,
    /// (topic, partition) → records not yet consumed.
    queues: BTreeMap<(String, i32), VecDeque<Record>>,
    offsets: HashMap<(String, i32), i64>,
    /// Every record produced, in production order: (topic action, record).
    pub log: Vec<(String, Record)>,
    /// Values of booking-status-changed records, in order.
    pub statuses: Vec<Value>,
    /// Plugin errors: none are expected in domain tests.
    pub errors: Vec<HandleError>,
}

impl Cluster {
    pub fn new(event: u64, partitions: i32) -> Self {
        Cluster {
            event,
            partitions,
            instances: HashMap::new(),
            routers: HashMap::new(),
            queues: BTreeMap::new(),
            offsets: HashMap::new(),
            log: Vec::new(),
            statuses: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Publishes as a client would (booking key or section partitioning).
    pub fn send(&mut self, action: &str, value: Value) {
        let spec = turnstile::topology::Topology::builtin()
            .event_topics(self.event)
            .into_iter()
            .find(|s| s.name.action == action)
            .expect("known action");
        let (partition, key) = match spec.kind {
            naming::TopicKind::BySection => {
                let section = value["section"].as_str().expect("section");
                let p = turnstile::partition::section_partition(self.event, section, self.partitions);
                (p, naming::section_key(self.event, section, p))
            }
            _ => {
                let id = value["booking_id"].as_str().expect("booking_id");
                (
                    turnstile::partition::booking_partition(self.event, id, self.partitions),
                    naming::booking_key(self.event, id),
                )
            }
        };
        let record = Record { key, payload: serde_json::to_vec(&value).expect("json"), critical: false };
        self.queues.entry((spec.name.to_string(), partition)).or_default().push_back(record);
    }

    /// Shorthands for client commands.
    pub fn create(&mut self, booking: &str, buyer: u64, section: &str, sub: u32, quantity: u32, manual: &[&str]) {
        let mode = if manual.is_empty() { "best_available" } else { "manual" };
        self.send(
            naming::action::BOOKING_COMMAND,
            json!({"type": "create_booking", "booking_id": booking, "buyer_id": buyer, "section": section,
                   "subsection": sub, "quantity": quantity, "seat_selection_mode": mode, "seat_positions": manual}),
        );
    }

    pub fn pay(&mut self, booking: &str, buyer: u64) {
        self.send(
            naming::action::BOOKING_COMMAND,
            json!({"type": "pay_booking", "booking_id": booking, "buyer_id": buyer}),
        );
    }

    pub fn cancel(&mut self, booking: &str, buyer: u64) {
        self.send(
            naming::action::BOOKING_COMMAND,
            json!({"type": "cancel_booking", "booking_id": booking, "buyer_id": buyer}),
        );
    }

    pub fn configure(&mut self, section: &str, sub: u32, rows: u32, seats: u32, price: u64) {
        self.send(
            naming::action::TICKET_COMMAND_REQUEST,
            json!({"type": "configure_subsection", "section": section, "subsection": sub,
                   "rows": rows, "seats_per_row": seats, "price": price}),
        );
    }

    /// Non-empty queues of topics with `action`.
    fn ready(&self, action: Option<&str>) -> Vec<(String, i32)> {
        self.queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| k.clone())
            .filter(|(topic, _)| action.is_none_or(|a| TopicName::parse(topic).is_some_and(|t| t.action == a)))
            .collect()
    }

    /// Delivers the oldest record of the first non-empty queue of `action`;
    /// `false` when there is none.
    pub fn step(&mut self, action: &str) -> bool {
        match self.ready(Some(action)).into_iter().next() {
            Some(queue) => {
                self.deliver(queue);
                true
            }
            None => false,
        }
    }

    /// Delivers everything, queue by queue, until nothing is left.
    pub fn run(&mut self) {
        while let Some(queue) = self.ready(None).into_iter().next() {
            self.deliver(queue);
        }
    }

    /// Delivers everything, picking a random non-empty partition each time:
    /// any interleaving Kafka allows (order holds within a partition only).
    pub fn run_shuffled(&mut self, rng: &mut impl rand::Rng) {
        loop {
            let ready = self.ready(None);
            if ready.is_empty() {
                return;
            }
            let pick = ready[rng.random_range(0..ready.len())].clone();
            self.deliver(pick);
        }
    }

    fn deliver(&mut self, (topic_text, partition): (String, i32)) {
        let Some(record) = self.queues.get_mut(&(topic_text.clone(), partition)).and_then(VecDeque::pop_front) else {
            return;
        };
        let topic = TopicName::parse(&topic_text).expect("topic");
        let service = topic.to.clone().expect("flow topic");
        let offset = self.offsets.entry((topic_text.clone(), partition)).or_insert(0);
        let msg = message(&topic, &topic_text, partition, *offset, Some(&record.key), &record.payload);
        *offset += 1;
        let p = plugins();
        let plugin = match service.as_str() {
            naming::TICKETING_SERVICE => &p.ticketing,
            naming::SEAT_RESERVATION_SERVICE => &p.reservation,
            other => panic!("no plugin for {other}"),
        };
        let instance = self
            .instances
            .entry((service.clone(), partition))
            .or_insert_with(|| plugin.instantiate(MemoryState::new()).expect("instantiate"));
        let outputs = match instance.handle(&msg) {
            Ok(outputs) => outputs,
            Err(err) => {
                self.errors.push(err);
                return;
            }
        };
        let router = self.routers.entry(service.clone()).or_insert_with(|| {
            Router::new(&Topology::builtin(), self.event, &service, self.partitions).expect("router")
        });
        for output in outputs {
            let dest = router.route(&output).expect("routable output");
            let record = Record { key: dest.key, payload: output.payload, critical: output.critical };
            let dest_topic = TopicName::parse(&dest.topic).expect("topic");
            self.log.push((dest_topic.action.clone(), record.clone()));
            if dest_topic.to.as_deref() == Some(CLIENT) {
                self.statuses.push(serde_json::from_slice(&record.payload).expect("status json"));
            } else {
                self.queues.entry((dest.topic, dest.partition)).or_default().push_back(record);
            }
        }
    }

    /// Values of every produced record with `action`, in order.
    pub fn values(&self, action: &str) -> Vec<Value> {
        self.log
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, r)| serde_json::from_slice(&r.payload).expect("json"))
            .collect()
    }

    /// Status messages of one booking, in order.
    pub fn statuses_of(&self, booking: &str) -> Vec<Value> {
        self.statuses.iter().filter(|s| s["booking_id"] == booking).cloned().collect()
    }

    /// The latest status message of a booking.
    pub fn last_status(&self, booking: &str) -> Value {
        self.statuses_of(booking).pop().unwrap_or_else(|| panic!("no status for {booking}"))
    }
}

/// Seat positions of a JSON array, sorted.
pub fn seats(value: &Value) -> Vec<String> {
    let mut seats: Vec<String> =
        value.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    seats.sort();
    seats
}

//! `turnstile replay`: feeds JSON lines through a plugin without Kafka and
//! prints each output as one JSON line, routed exactly as production would.
//!
//! Input, one object per line (blank lines are skipped):
//! `{"action": "...", "value": {...}, "partition": 0, "key": "..."}`.
//! `value` is the record value: an object is sent as its JSON text, a string
//! as its raw bytes. `partition` and `key` are optional; when missing they
//! are derived as a producer in production derives them: by `section` on a
//! section-partitioned topic (`ticket-command-request`), by `booking_id` on a
//! booking-keyed one (`booking-command`, `seat-reservation-result`); when the
//! value lacks that field, partition 0 and no key. The topic is the event's
//! topic with that action (for a plugin outside the topology,
//! `{action}______client___to___{service}`); offsets count per partition
//! from 0. State is kept per partition, as the runner scopes it.
//!
//! Output, one line per produced record:
//! `{"topic", "partition", "key", "value", "critical"}` with `value` the
//! parsed JSON payload (a string when it is not JSON). A failed message
//! prints `{"error": KIND, "reason", "input": LINE}` with KIND `invalid`,
//! `transient`, `trap`, `timeout` or `unavailable` (`invalid` also for an
//! input line that is not a valid message), and replay goes on; an output
//! that cannot be routed prints KIND `routing`.
//!
//! State files (`--state-in`, `--state-out`):
//! `{"event": ID, "service": "...", "partitions": {"0": [{"key": .., "value": ..}]}}`
//! where each key and value is a UTF-8 string under `key`/`value`, or, when
//! it is not UTF-8 text, lowercase hex under `key_hex`/`value_hex`: readable
//! where possible and lossless always.
//!
//! Exit codes: 0 when every line was fed (failed messages included); 2 when
//! the plugin or the state file cannot be read or is refused; 3 when the
//! input cannot be read.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use turnstile::config::Overrides;
use turnstile::naming::{self, CLIENT, TopicKind, TopicName};

use turnstile::plugin::{MemoryState, Message, PluginEngine, PluginInstance};
use turnstile::routing::{self, Router};
use turnstile::topology::Topology;

use super::UsageError;
use crate::cli::{GlobalArgs, ReplayArgs};

pub fn run(global: &GlobalArgs, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides::default();
    overrides.set("kafka.partitions", args.partitions);
    let config = super::load_config(global, overrides)?.config;
    let partitions = config.kafka.partitions;
    let event_id = args.event;

    let engine = PluginEngine::new(config.plugin.engine_settings())?;
    let plugin =
        engine.load_file(&args.plugin).map_err(|e| UsageError(format!("plugin {}: {e}", args.plugin.display())))?;
    let service = plugin.service().to_owned();
    tracing::info!(service, version = %plugin.manifest().version, sha256 = plugin.sha256(), "replaying");

    let mut states: BTreeMap<i32, MemoryState> = match &args.state_in {
        Some(path) => read_state(path, event_id, &service).map_err(|e| UsageError(format!("{e:#}")))?,
        None => BTreeMap::new(),
    };
    let file =
        std::fs::File::open(&args.input).with_context(|| format!("cannot open input {}", args.input.display()))?;

    let mut instance = plugin
        .instantiate(MemoryState::new())
        .map_err(|e| UsageError(format!("plugin {}: {e}", args.plugin.display())))?;
    let mut current: Option<i32> = None;
    let topology = config.topology();
    let router = Router::new(&topology, event_id, &service, partitions)?;
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());

    for (index, line) in BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("cannot read input {}", args.input.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let input = match parse_input(&line, &topology, event_id, &service, partitions) {
            Ok(input) => input,
            Err(reason) => {
                write_line(&mut out, &ErrorLine { error: "invalid", reason, input: number })?;
                continue;
            }
        };
        switch_partition(&mut instance, &mut states, &mut current, input.partition);
        let offset = offsets.entry(input.partition).or_insert(0);
        let msg = Message {
            topic: &input.topic,
            partition: input.partition,
            offset: *offset,
            key: input.key.as_deref(),
            payload: &input.payload,
            headers: &[],
            timestamp: None,
            event_id,
            action: &input.action,
        };
        *offset += 1;
        match instance.handle(&msg) {
            Ok(outputs) => {
                for output in outputs {
                    match router.route(&output) {
                        Ok(dest) => write_line(
                            &mut out,
                            &OutputLine {
                                topic: dest.topic,
                                partition: dest.partition,
                                key: dest.key,
                                value: payload_value(output.payload),
                                critical: output.critical,
                            },
                        )?,
                        Err(err) => write_line(
                            &mut out,
                            &ErrorLine { error: "routing", reason: err.to_string(), input: number },
                        )?,
                    }
                }
            }
            Err(err) => write_line(&mut out, &ErrorLine { error: err.kind(), reason: err.reason(), input: number })?,
        }
    }
    out.flush().context("cannot write to stdout")?;

    if let Some(path) = &args.state_out {
        if let Some(p) = current {
            states.insert(p, instance.into_state());
        }
        write_state(path, event_id, &service, &states)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts the state of `partition` into the instance, parking the previous one.
fn switch_partition(
    instance: &mut PluginInstance<MemoryState>,
    states: &mut BTreeMap<i32, MemoryState>,
    current: &mut Option<i32>,
    partition: i32,
) {
    if *current == Some(partition) {
        return;
    }
    let incoming = states.remove(&partition).unwrap_or_default();
    let outgoing = std::mem::replace(instance.state_mut(), incoming);
    if let Some(previous) = current.replace(partition) {
        states.insert(previous, outgoing);
    }
}

struct Input {
    action: String,
    topic: String,
    partition: i32,
    key: Option<String>,
    payload: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    action: String,
    value: Value,
    partition: Option<i32>,
    key: Option<String>,
}

#[derive(Serialize)]
struct OutputLine {
    topic: String,
    partition: i32,
    key: String,
    value: Value,
    critical: bool,
}

#[derive(Serialize)]
struct ErrorLine {
    error: &'static str,
    reason: String,
    input: usize,
}

fn write_line<T: Serialize>(out: &mut impl Write, line: &T) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, line).context("cannot write to stdout")?;
    out.write_all(b"\n").context("cannot write to stdout")
}

fn payload_value(payload: Vec<u8>) -> Value {
    match serde_json::from_slice(&payload) {
        Ok(value) => value,
        Err(_) => Value::String(String::from_utf8_lossy(&payload).into_owned()),
    }
}

fn parse_input(
    line: &str,
    topology: &Topology,
    event_id: u64,
    service: &str,
    partitions: i32,
) -> Result<Input, String> {
    let input: InputLine = serde_json::from_str(line).map_err(|e| format!("not a replay input line: {e}"))?;
    let (topic, kind) = input_topic(topology, event_id, service, &input.action);
    let field = |name: &str| input.value.get(name).and_then(Value::as_str);
    let derived = match kind {
        Some(TopicKind::BySection) => field("section").map(|section| {
            let (p, key) = routing::by_section(event_id, section, partitions);
            match input.partition {
                Some(given) => (given, naming::section_key(event_id, section, given)),
                None => (p, key),
            }
        }),
        Some(TopicKind::ByBooking) => field("booking_id").map(|id| routing::by_booking(event_id, id, partitions)),
        _ => None,
    };
    let partition = input.partition.or(derived.as_ref().map(|d| d.0)).unwrap_or(0);
    if !(0..partitions).contains(&partition) {
        return Err(format!("partition {partition} is outside 0..{partitions}"));
    }
    let key = input.key.or(derived.map(|d| d.1));
    let payload = match input.value {
        Value::String(s) => s.into_bytes(),
        other => serde_json::to_vec(&other).map_err(|e| e.to_string())?,
    };
    Ok(Input { action: input.action, topic, partition, key, payload })
}

/// The topic a record with `action` is consumed from by `service`, and how
/// that topic is partitioned.
fn input_topic(topology: &Topology, event_id: u64, service: &str, action: &str) -> (String, Option<TopicKind>) {
    let specs = topology.event_topics(event_id);
    let spec = specs
        .iter()
        .find(|s| s.name.action == action && s.name.to.as_deref() == Some(service))
        .or_else(|| specs.iter().find(|s| s.name.action == action));
    match spec {
        Some(spec) => (spec.name.to_string(), Some(spec.kind)),
        None => (TopicName::flow(event_id, action, CLIENT, service).to_string(), None),
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    #[serde(default)]
    event: Option<u64>,
    #[serde(default)]
    service: Option<String>,
    partitions: BTreeMap<i32, Vec<Entry>>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_hex: Option<String>,
}

/// Text when it reads as text, hex otherwise.
fn encode(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => (Some(s.to_owned()), None),
        _ => (None, Some(hex::encode(bytes))),
    }
}

fn decode(text: Option<String>, hex_text: Option<String>, what: &str) -> anyhow::Result<Vec<u8>> {
    match (text, hex_text) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(h)) => hex::decode(&h).with_context(|| format!("{what}_hex {h:?} is not hex")),
        _ => anyhow::bail!("an entry needs exactly one of `{what}` and `{what}_hex`"),
    }
}

fn read_state(path: &Path, event_id: u64, service: &str) -> anyhow::Result<BTreeMap<i32, MemoryState>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read state {}", path.display()))?;
    let file: StateFile =
        serde_json::from_str(&text).with_context(|| format!("state {} is not a state snapshot", path.display()))?;
    if file.event.is_some_and(|e| e != event_id) || file.service.as_deref().is_some_and(|s| s != service) {
        tracing::warn!(
            path = %path.display(),
            "state snapshot was taken for event {:?} / {:?}, replaying event {event_id} / {service}",
            file.event,
            file.service
        );
    }
    let mut states = BTreeMap::new();
    for (partition, entries) in file.partitions {
        let mut state = MemoryState::new();
        for entry in entries {
            let key = decode(entry.key, entry.key_hex, "key").with_context(|| format!("state {}", path.display()))?;
            let value =
                decode(entry.value, entry.value_hex, "value").with_context(|| format!("state {}", path.display()))?;
            state.map.insert(key, value);
        }
        states.insert(partition, state);
    }
    Ok(states)
}

fn write_state(path: &Path, event_id: u64, service: &str, states: &BTreeMap<i32, MemoryState>) -> anyhow::Result<()> {
    let partitions = states
        .iter()
        .map(|(p, state)| {
            let entries = state
                .map
                .iter()
                .map(|(k, v)| {
                    let (key, key_hex) = encode(k);
                    let (value, value_hex) = encode(v);
                    Entry { key, key_hex, value, value_hex }
                })
                .collect();
            (*p, entries)
        })
        .collect();
    let file = StateFile { event: Some(event_id), service: Some(service.to_owned()), partitions };
    let mut text = serde_json::to_string_pretty(&file)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write state {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_partition_and_key_like_production() {
        let topology = Topology::builtin();
        let svc = naming::SEAT_RESERVATION_SERVICE;
        let i = parse_input(
            r#"{"action":"ticket-command-request","value":{"type":"reserve_seats","section":"C"}}"#,
            &topology,
            1,
            svc,
            10,
        )
        .unwrap();
        assert_eq!((i.partition, i.key.as_deref()), (2, Some("event-1-section-C-partition-2")));
        assert_eq!(i.topic, naming::ticket_command_request_topic(1).to_string());

        let t = naming::TICKETING_SERVICE;
        let i =
            parse_input(r#"{"action":"booking-command","value":{"booking_id":"b1"}}"#, &topology, 1, t, 10).unwrap();
        assert_eq!(i.partition, turnstile::partition::booking_partition(1, "b1", 10));
        assert_eq!(i.key.as_deref(), Some("event-1-booking-b1"));

        let i =
            parse_input(r#"{"action":"booking-command","partition":3,"key":"k","value":"raw"}"#, &topology, 1, t, 10)
                .unwrap();
        assert_eq!((i.partition, i.key.as_deref(), i.payload.as_slice()), (3, Some("k"), &b"raw"[..]));
        assert!(parse_input(r#"{"action":"x","partition":10,"value":{}}"#, &topology, 1, t, 10).is_err());
        assert!(parse_input("{", &topology, 1, t, 10).is_err());
    }

    #[test]
    fn state_encoding_is_lossless() {
        for bytes in [&b"plain"[..], b"", &[0, 159, 146, 150], b"tab\there"] {
            let (text, hex_text) = encode(bytes);
            assert_eq!(decode(text, hex_text, "key").unwrap(), bytes);
        }
        assert!(decode(Some("a".into()), Some("61".into()), "key").is_err());
    }
}

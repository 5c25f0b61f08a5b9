//! Native testing for plugin authors: a [`TestDriver`] runs a [`Plugin`]'s
//! handler against in-memory state, the way the host would, without a broker
//! and without wasm (like Kafka Streams' `TopologyTestDriver`).
//!
//! ```
//! # use turnstile_plugin::prelude::*;
//! # struct Echo;
//! # impl Plugin for Echo {
//! #     const SERVICE: &'static str = "echo-service";
//! #     const CONSUMES: &'static [&'static str] = &["ping"];
//! #     const EMITS: &'static [&'static str] = &["pong"];
//! #     fn handle(m: &Message, state: &mut State<'_>) -> Result<Vec<Output>, HandleError> {
//! #         state.put("last", &m.value);
//! #         Ok(vec![Output::new("pong", Routing::Event, m.value.clone())])
//! #     }
//! # }
//! use turnstile_plugin::testing::TestDriver;
//!
//! let mut driver = TestDriver::<Echo>::new();
//! let outputs = driver.send("ping", "hello").unwrap();
//! assert_eq!(outputs[0].payload, b"hello");
//! assert_eq!(driver.get("last").as_deref(), Some(&b"hello"[..]));
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;

use serde::Serialize;
use turnstile_protocol::batch::{Backend, Batch};

use crate::{HandleError, LogLevel, MemoryStore, Message, Output, Plugin, State, Store};

/// Feeds records to a plugin one at a time over a [`MemoryStore`] that
/// keeps only the writes of records that were handled, as the host does.
///
/// It also holds the plugin to its manifest, and panics (the test fails)
/// when a record's action is not one the plugin consumes or an output's
/// action is not one it emits: the host would never deliver the first and
/// refuses the second.
pub struct TestDriver<P> {
    store: MemoryStore,
    event_id: u64,
    partition: i32,
    next_offset: i64,
    plugin: PhantomData<P>,
}

impl<P: Plugin> Default for TestDriver<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Plugin> TestDriver<P> {
    /// A driver for event 1, partition 0, with empty state.
    pub fn new() -> Self {
        TestDriver { store: MemoryStore::new(), event_id: 1, partition: 0, next_offset: 0, plugin: PhantomData }
    }

    /// The event the records belong to.
    pub fn event(mut self, event_id: u64) -> Self {
        self.event_id = event_id;
        self
    }

    /// Hands one record of `action` with `value` to the plugin, at the next
    /// offset, and returns what it returned.
    pub fn send(&mut self, action: &str, value: impl Into<Vec<u8>>) -> Result<Vec<Output>, HandleError> {
        let message = Message {
            topic: alloc::format!("event-id-{}______{action}______test-driver___to___{}", self.event_id, P::SERVICE),
            partition: self.partition,
            offset: self.next_offset,
            event_id: self.event_id,
            ..Message::new(action, value)
        };
        self.send_message(message)
    }

    /// [`Self::send`] with `value` encoded as JSON.
    pub fn send_json<T: Serialize + ?Sized>(&mut self, action: &str, value: &T) -> Result<Vec<Output>, HandleError> {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.send(action, bytes),
            Err(e) => panic!("the test's value does not encode as JSON: {e}"),
        }
    }

    /// Hands a record built by the test (key, headers, timestamp, …).
    pub fn send_message(&mut self, message: Message) -> Result<Vec<Output>, HandleError> {
        assert!(
            P::CONSUMES.contains(&message.action.as_str()),
            "{} does not consume action {:?} (its manifest consumes {:?})",
            P::SERVICE,
            message.action,
            P::CONSUMES
        );
        self.next_offset = self.next_offset.max(message.offset) + 1;
        let mut batch = Batch::new(Committed(&mut self.store));
        let result = P::handle(&message, &mut State::new(&mut batch));
        batch.end_message(result.is_ok(), false);
        let writes = batch.into_writes().pop().unwrap_or_default();
        for (key, value) in writes {
            match value {
                Some(value) => self.store.put_owned(key, value),
                None => self.store.delete(&key),
            }
        }
        if let Ok(outputs) = &result {
            for output in outputs {
                assert!(
                    P::EMITS.contains(&output.action.as_str()),
                    "{} emitted action {:?}, which its manifest does not declare (it emits {:?})",
                    P::SERVICE,
                    output.action,
                    P::EMITS
                );
            }
        }
        result
    }

    /// The committed bytes under `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        self.store.get(key.as_ref())
    }

    /// The committed state.
    pub fn state(&self) -> &MemoryStore {
        &self.store
    }

    /// Every line the plugin logged, in order.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.store.logs
    }
}

/// Reads what earlier records committed; logs are kept.
struct Committed<'a>(&'a mut MemoryStore);

impl Backend for Committed<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        self.0.log(level, message);
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::Routing;

    struct Counter;

    impl Plugin for Counter {
        const SERVICE: &'static str = "counter-service";
        const CONSUMES: &'static [&'static str] = &["tick"];
        const EMITS: &'static [&'static str] = &["count"];

        fn handle(message: &Message, state: &mut State<'_>) -> Result<Vec<Output>, HandleError> {
            let n = state.get_json::<u64>("n")?.unwrap_or(0) + 1;
            state.put_json("n", &n)?;
            match message.text()? {
                "fail" => Err(HandleError::invalid("asked to fail")),
                "stray" => Ok(vec![Output::new("elsewhere", Routing::Event, "x")]),
                _ => Ok(vec![Output::json("count", Routing::Event, &n)?]),
            }
        }
    }

    #[test]
    fn keeps_the_writes_of_handled_records_only() {
        let mut driver = TestDriver::<Counter>::new();
        assert_eq!(driver.send("tick", "a").unwrap()[0].payload, b"1");
        assert!(matches!(driver.send("tick", "fail"), Err(HandleError::Invalid(_))));
        assert_eq!(driver.send("tick", "b").unwrap()[0].payload, b"2", "the failed record's write is gone");
        assert_eq!(driver.get("n").as_deref(), Some(&b"2"[..]));
    }

    #[test]
    #[should_panic(expected = "does not consume action \"tock\"")]
    fn refuses_an_action_the_plugin_does_not_consume() {
        let _ = TestDriver::<Counter>::new().send("tock", "a");
    }

    #[test]
    #[should_panic(expected = "emitted action \"elsewhere\"")]
    fn refuses_an_output_the_manifest_does_not_declare() {
        let _ = TestDriver::<Counter>::new().send("tick", "stray");
    }
}

//! What [`export!`](crate::export) expands to call. Not part of the API.

pub use alloc::vec::Vec;

#[cfg(target_arch = "wasm32")]
pub use self::component::*;

#[cfg(target_arch = "wasm32")]
mod component {
    use alloc::string::ToString;
    use alloc::vec::Vec;

    use turnstile_protocol::batch::{Backend, Batch};

    use super::wit::{self, log, state};
    use crate::{HandleError, LogLevel, Message, Plugin, Routing, State};

    /// The manifest of `P`; `crate_version` is the plugin crate's own.
    pub fn manifest<P: Plugin>(crate_version: &str) -> wit::Manifest {
        wit::Manifest {
            service: P::SERVICE.into(),
            version: P::VERSION.unwrap_or(crate_version).into(),
            consumes: P::CONSUMES.iter().map(ToString::to_string).collect(),
            emits: P::EMITS.iter().map(ToString::to_string).collect(),
        }
    }

    /// One batched `handle` call, per the world's contract: message k sees
    /// the writes of the earlier messages that succeeded, a failed message
    /// leaves none, and nothing is handled after a transient failure (the
    /// host hands those messages again once it has retried).
    pub fn handle<P: Plugin>(messages: Vec<wit::Message>) -> Vec<Result<wit::Handled, wit::Error>> {
        let count = messages.len();
        let mut batch = Batch::new(HostState);
        let mut results = Vec::with_capacity(count);
        for (i, message) in messages.into_iter().enumerate() {
            let message = from_wit(message);
            let result = P::handle(&message, &mut State::new(&mut batch));
            batch.end_message(result.is_ok(), i + 1 < count);
            let transient = matches!(result, Err(HandleError::Transient(_)));
            results.push(result);
            if transient {
                break;
            }
        }
        let mut writes = batch.into_writes().into_iter();
        let mut out: Vec<Result<wit::Handled, wit::Error>> = results
            .into_iter()
            .map(|result| {
                let writes = writes.next().unwrap_or_default();
                match result {
                    Ok(outputs) => Ok(wit::Handled {
                        outputs: outputs.into_iter().map(output).collect(),
                        writes: writes.into_iter().map(|(key, value)| wit::Write { key, value }).collect(),
                    }),
                    Err(HandleError::Invalid(reason)) => Err(wit::Error::Invalid(reason)),
                    Err(HandleError::Transient(reason)) => Err(wit::Error::Transient(reason)),
                }
            })
            .collect();
        while out.len() < count {
            out.push(Err(wit::Error::Transient(
                "not handled: an earlier message of the batch failed transiently".into(),
            )));
        }
        out
    }

    /// The routing of a record whose key does not give it.
    pub fn route<P: Plugin>(message: wit::Message) -> Option<wit::Routing> {
        P::route(&from_wit(message)).map(routing)
    }

    fn from_wit(m: wit::Message) -> Message {
        Message {
            topic: m.topic,
            partition: m.partition,
            offset: m.offset,
            key: m.key,
            value: m.payload,
            headers: m.headers.into_iter().map(|h| crate::Header { key: h.key, value: h.value }).collect(),
            timestamp: m.timestamp,
            event_id: m.event_id,
            action: m.action,
        }
    }

    fn routing(r: Routing) -> wit::Routing {
        match r {
            Routing::Section { section, subsection } => {
                wit::Routing::Section(wit::SectionRoute { section, subsection })
            }
            Routing::Booking(id) => wit::Routing::Booking(id),
            Routing::Event => wit::Routing::Event,
        }
    }

    fn output(o: crate::Output) -> wit::Output {
        wit::Output { action: o.action, routing: routing(o.routing), payload: o.payload, critical: o.critical }
    }

    /// The host's `state` and `log` imports, under a batch's overlay.
    struct HostState;

    impl Backend for HostState {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            state::get(key)
        }

        fn log(&mut self, level: LogLevel, message: &str) {
            let level = match level {
                LogLevel::Trace => log::Level::Trace,
                LogLevel::Debug => log::Level::Debug,
                LogLevel::Info => log::Level::Info,
                LogLevel::Warn => log::Level::Warn,
                LogLevel::Error => log::Level::Error,
            };
            log::log(level, message);
        }
    }
}

/// The generated bindings of the embedded world.
#[cfg(target_arch = "wasm32")]
pub mod wit {
    // Generated code: `std_feature` guards std-only impls with a feature
    // that is never set, and the canonical ABI flattens a message into many
    // parameters.
    #[allow(unexpected_cfgs, clippy::too_many_arguments, missing_docs)]
    mod generated {
        wit_bindgen::generate!({
            path: "wit",
            world: "plugin",
            std_feature,
            pub_export_macro: true,
            export_macro_name: "export_world",
            default_bindings_module: "turnstile_plugin::__private::wit",
            runtime_path: "turnstile_plugin::__private::wit::rt",
        });
    }

    pub use generated::turnstile::plugin::types::{
        Error, Handled, Manifest, Message, Output, Routing, SectionRoute, Write,
    };
    pub use generated::turnstile::plugin::{log, state};
    pub use generated::*;
    /// The bindings' runtime, reached through this crate.
    pub use wit_bindgen::rt;
}

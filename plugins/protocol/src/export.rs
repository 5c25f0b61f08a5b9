//! [`export_plugin!`]: the component glue every Rust plugin needs, written
//! once. A plugin crate keeps its logic in plain Rust (native tests, the
//! host's benchmark) and exports it as a component with one line.

/// Exports the calling crate as a component of the plugin world.
///
/// The crate must define `SERVICE: &str`, `CONSUMES: &[&str]`,
/// `EMITS: &[&str]` and
/// `fn handle(&mut impl Store, event_id: u64, action: &str, payload: &[u8]) -> Result<Vec<Output>, HandleError>`,
/// depend on `wit-bindgen` and on this crate with the `guest` feature (the
/// allocator, panic handler and `cabi_realloc` of a `no_std` guest), and
/// live at `plugins/<name>/` so that the world is at `../../wit`:
///
/// ```ignore
/// #[cfg(target_arch = "wasm32")]
/// turnstile_protocol::export_plugin!();
/// ```
// `crate::` is meant: it names the plugin crate that calls the macro.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! export_plugin {
    () => {
        mod component {
            use alloc::string::ToString;
            use alloc::vec::Vec;

            use $crate as proto;

            // Generated code: `std_feature` guards std-only impls with a
            // feature we never set, and the canonical ABI flattens a message
            // into many parameters.
            #[allow(unexpected_cfgs, clippy::too_many_arguments)]
            mod bindings {
                wit_bindgen::generate!({ path: "../../wit", world: "plugin", std_feature });
            }

            use bindings::Guest;
            use bindings::turnstile::plugin::types::{
                Error, Handled, Manifest, Message, Output, Routing, SectionRoute, Write,
            };
            use bindings::turnstile::plugin::{log, state};

            struct Plugin;

            impl Guest for Plugin {
                fn manifest() -> Manifest {
                    Manifest {
                        service: crate::SERVICE.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        consumes: crate::CONSUMES.iter().map(ToString::to_string).collect(),
                        emits: crate::EMITS.iter().map(ToString::to_string).collect(),
                    }
                }

                fn handle(messages: Vec<Message>) -> Vec<Result<Handled, Error>> {
                    let mut store = proto::batch::Batch::new(HostState);
                    let count = messages.len();
                    let mut results = Vec::with_capacity(count);
                    for (i, message) in messages.into_iter().enumerate() {
                        let result = crate::handle(&mut store, message.event_id, &message.action, &message.payload);
                        store.end_message(result.is_ok(), i + 1 < count);
                        // The host hands what follows a transient failure again,
                        // after retrying it: handling it now would be wasted.
                        let transient = matches!(result, Err(proto::HandleError::Transient(_)));
                        results.push(result);
                        if transient {
                            break;
                        }
                    }
                    let mut writes = store.into_writes().into_iter();
                    let mut out: Vec<Result<Handled, Error>> = results
                        .into_iter()
                        .map(|result| {
                            let writes = writes.next().unwrap_or_default();
                            match result {
                                Ok(outputs) => Ok(Handled {
                                    outputs: outputs.into_iter().map(output).collect(),
                                    writes: writes.into_iter().map(|(key, value)| Write { key, value }).collect(),
                                }),
                                Err(proto::HandleError::Invalid(r)) => Err(Error::Invalid(r)),
                                Err(proto::HandleError::Transient(r)) => Err(Error::Transient(r)),
                            }
                        })
                        .collect();
                    while out.len() < count {
                        out.push(Err(Error::Transient("not handled: an earlier message of the batch failed transiently".into())));
                    }
                    out
                }

                fn route(message: Message) -> Option<Routing> {
                    proto::route_by_value(&message.action, &message.payload).map(routing)
                }
            }

            bindings::export!(Plugin with_types_in bindings);

            fn routing(r: proto::Routing) -> Routing {
                match r {
                    proto::Routing::Section { section, subsection } => Routing::Section(SectionRoute { section, subsection }),
                    proto::Routing::Booking(id) => Routing::Booking(id),
                    proto::Routing::Event => Routing::Event,
                }
            }

            fn output(o: proto::Output) -> Output {
                Output { action: o.action, routing: routing(o.routing), payload: o.payload, critical: o.critical }
            }

            /// The host's `state` and `log` imports, under a batch's overlay.
            struct HostState;

            impl proto::batch::Backend for HostState {
                fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
                    state::get(key)
                }

                fn log(&mut self, level: proto::LogLevel, message: &str) {
                    let level = match level {
                        proto::LogLevel::Trace => log::Level::Trace,
                        proto::LogLevel::Debug => log::Level::Debug,
                        proto::LogLevel::Info => log::Level::Info,
                        proto::LogLevel::Warn => log::Level::Warn,
                        proto::LogLevel::Error => log::Level::Error,
                    };
                    log::log(level, message);
                }
            }
        }
    };
}

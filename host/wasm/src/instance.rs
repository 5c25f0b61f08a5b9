//! A live plugin instance: one store holding the caller's state, the call
//! deadline and memory cap, batches with per-message outcomes, and recovery
//! from guest failures.

use std::sync::Arc;

use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};

use super::bindings::{Plugin, PluginPre, types as wit};
use super::engine::EngineInner;
use super::limits::{PluginLimits, Usage};
use super::load::LoadedPlugin;
use super::state::{StateAccess, Write};
use super::{HandleError, Message, Output, PluginError, Routing};

/// The data of a plugin's store: the caller's state plus what the host
/// functions need.
pub(crate) struct HostState<S> {
    pub(crate) state: S,
    pub(crate) service: Arc<str>,
    limits: Limits,
    /// What one message may cost outside the guest's memory.
    pub(crate) budget: PluginLimits,
    /// What the call being made has logged so far.
    pub(crate) usage: Usage,
}

impl<S: StateAccess> HostState<S> {
    pub(crate) fn new(state: S, service: Arc<str>, engine: &EngineInner) -> Self {
        let budget = engine.settings.limits.clone();
        HostState {
            state,
            service,
            limits: Limits::new(engine.settings.memory_limit, budget.max_table_elements),
            budget,
            usage: Usage::default(),
        }
    }

    /// Whether the call may log `len` more bytes; counts what it may not.
    /// The budget is per message, so a call handling n messages gets n times it.
    pub(crate) fn admit_log(&mut self, len: usize) -> Option<usize> {
        let (b, u) = (&self.budget, &mut self.usage);
        let lines = b.max_log_lines.saturating_mul(u.messages.max(1));
        let bytes = b.max_log_bytes.saturating_mul(u.messages.max(1) as usize);
        if u.log_lines >= lines || u.log_bytes >= bytes {
            u.dropped_log_lines += 1;
            return None;
        }
        u.log_lines += 1;
        let allowed = len.min(bytes - u.log_bytes);
        u.log_bytes += allowed;
        Some(allowed)
    }

    /// Starts a call's accounting afresh.
    fn begin(&mut self, messages: usize) {
        self.usage = Usage { messages: u32::try_from(messages).unwrap_or(u32::MAX), ..Usage::default() };
        self.limits.exceeded = false;
    }

    /// Ends a call's accounting: reports dropped log lines once.
    fn finish(&mut self) {
        if self.usage.dropped_log_lines > 0 {
            tracing::warn!(
                target: "turnstile::plugin::guest",
                service = %self.service,
                dropped = self.usage.dropped_log_lines,
                "plugin log lines over plugin.max_log_lines/max_log_bytes for one message were dropped"
            );
        }
    }
}

/// [`StoreLimits`] plus a note of whether the guest hit the memory cap, so
/// that the trap that follows can say why.
struct Limits {
    inner: StoreLimits,
    cap: usize,
    exceeded: bool,
}

impl Limits {
    fn new(cap: usize, table_elements: usize) -> Self {
        Limits {
            inner: StoreLimitsBuilder::new().memory_size(cap).table_elements(table_elements).build(),
            cap,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Refusing (rather than trapping here) keeps wasm semantics: the
        // guest sees `memory.grow` fail and may recover; most abort.
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        self.exceeded |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A fresh store for `data`, with the limiter and a deadline already set
/// (an epoch deadline of 0 would interrupt instantiation itself).
pub(crate) fn new_store<S: StateAccess>(engine: &EngineInner, data: HostState<S>) -> Store<HostState<S>> {
    let mut store = Store::new(&engine.engine, data);
    store.limiter(|data| &mut data.limits);
    store.set_epoch_deadline(engine.deadline_ticks);
    // What one call may make the host copy out of the guest (a batch's
    // results, a log line): no more than the plugin's memory could hold,
    // not wasmtime's default 128 MiB, even if the guest points many list
    // elements at the same bytes.
    store.set_hostcall_fuel(engine.settings.memory_limit);
    store
}

/// What handling one message produced: the outputs to send and the state
/// writes to apply, both only if the message is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    pub outputs: Vec<Output>,
    pub writes: Vec<Write>,
}

/// One running plugin with the state of one partition.
///
/// [`handle_batch`](Self::handle_batch) hands the plugin several messages at
/// once and returns one outcome per message, its state writes *not* applied:
/// the caller decides which messages it keeps. [`handle`](Self::handle) is
/// the one-message form that applies the writes itself. A trap or timeout
/// leaves the guest's memory in an unknown state, so the instance is
/// replaced (fresh store, same `S`) before the error is returned.
pub struct PluginInstance<S: StateAccess> {
    plugin: LoadedPlugin,
    pre: PluginPre<HostState<S>>,
    /// `None` only inside [`Self::rebuild`], which always puts it back.
    store: Option<Store<HostState<S>>>,
    /// `None` when the last instantiation failed; retried on the next message.
    bindings: Option<Plugin>,
    /// Reused for every call so that lowering does not allocate.
    scratch: Vec<wit::Message>,
    /// Messages still to be handed one per call because the batch that held
    /// them trapped or timed out: that isolates the one at fault.
    isolate: usize,
}

impl<S: StateAccess> std::fmt::Debug for PluginInstance<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("service", &self.plugin.service())
            .field("sha256", &self.plugin.sha256())
            .field("live", &self.bindings.is_some())
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// A new instance owning `state`.
    pub fn instantiate<S: StateAccess>(&self, state: S) -> Result<PluginInstance<S>, PluginError> {
        PluginInstance::new(self, state)
    }
}

impl<S: StateAccess> PluginInstance<S> {
    /// A new instance of `plugin` owning `state`.
    pub fn new(plugin: &LoadedPlugin, state: S) -> Result<Self, PluginError> {
        let engine = &plugin.inner.engine.inner;
        let pre = plugin.pre::<S>()?;
        let mut store = new_store(engine, HostState::new(state, plugin.inner.service.clone(), engine));
        let bindings = pre.instantiate(&mut store).map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        Ok(PluginInstance {
            plugin: plugin.clone(),
            pre,
            store: Some(store),
            bindings: Some(bindings),
            scratch: Vec::new(),
            isolate: 0,
        })
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    /// The state, as of the last message that succeeded.
    pub fn state(&self) -> &S {
        &self.store_ref().data().state
    }

    /// The state, mutably (e.g. to restore a snapshot between messages).
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.store_mut().data_mut().state
    }

    /// Ends the instance and hands back its state.
    pub fn into_state(mut self) -> S {
        let store = self.store.take().unwrap_or_else(|| unreachable!("store is always present"));
        store.into_data().state
    }

    /// Hot swap: runs `plugin` from now on, with the same state. On failure
    /// the instance keeps running the old plugin and the error is returned.
    /// A plugin of a different service is refused: its state would be
    /// meaningless to it.
    pub fn reload(&mut self, plugin: &LoadedPlugin) -> Result<(), PluginError> {
        if plugin.service() != self.plugin.service() {
            return Err(PluginError::Incompatible(format!(
                "the new plugin implements `{}`, this instance runs `{}`",
                plugin.service(),
                self.plugin.service()
            )));
        }
        let pre = plugin.pre::<S>()?;
        let old_pre = std::mem::replace(&mut self.pre, pre);
        let old_plugin = std::mem::replace(&mut self.plugin, plugin.clone());
        match self.rebuild() {
            Ok(()) => Ok(()),
            Err(err) => {
                self.pre = old_pre;
                self.plugin = old_plugin;
                if let Err(again) = self.rebuild() {
                    tracing::error!(service = %self.plugin.service(), "cannot restore the previous plugin either: {again}");
                }
                Err(err)
            }
        }
    }

    /// Hands one message to the plugin and returns its outputs, its state
    /// writes applied to `S`; on any error `S` is untouched.
    pub fn handle(&mut self, msg: &Message<'_>) -> Result<Vec<Output>, HandleError> {
        let outcome = self.handle_batch(std::slice::from_ref(msg))?.pop();
        let handled = outcome.unwrap_or_else(|| Err(HandleError::Invalid("the plugin returned no result".into())))?;
        self.state_mut().apply(handled.writes);
        Ok(handled.outputs)
    }

    /// Hands the plugin a run of messages of one partition, in offset order,
    /// and returns the outcomes of a prefix of them (at least the first),
    /// in order; none of their writes are applied to `S`. Outcome k assumes
    /// that the writes of every earlier `Ok` were applied and no others, so:
    ///
    /// - the caller applies the writes of the outcomes it keeps, in order;
    /// - if it does not keep an `Ok` as returned, it discards the outcomes
    ///   after it and hands those messages again;
    /// - the prefix already ends after a [`HandleError::Limit`] (an `Ok` the
    ///   host refused) or a [`HandleError::Transient`] (to be retried
    ///   before anything after it is handled).
    ///
    /// A trap or timeout of a batch replaces the instance and hands its
    /// messages one per call from then on, so that only the message at fault
    /// fails. `Err` only when there is no instance to call
    /// ([`HandleError::Unavailable`]).
    pub fn handle_batch(&mut self, msgs: &[Message<'_>]) -> Result<Vec<Result<Handled, HandleError>>, HandleError> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let n = if self.isolate > 0 { 1 } else { msgs.len() };
        let batch = &msgs[..n];
        let returned =
            match self.call(batch, "handling", |bindings, store, messages| bindings.call_handle(store, messages)) {
                Ok(results) if results.len() == n => results,
                Ok(results) if n == 1 => {
                    let reason = format!("the plugin returned {} results for one message", results.len());
                    return Ok(vec![Err(HandleError::Invalid(reason))]);
                }
                Err(failure @ HandleError::Unavailable(_)) => return Err(failure),
                Err(failure) if n == 1 => {
                    self.isolate = self.isolate.saturating_sub(1);
                    return Ok(vec![Err(failure)]);
                }
                outcome => {
                    let what = match outcome {
                        Ok(results) => format!("returned {} results", results.len()),
                        Err(failure) => super::loggable(&failure.to_string()).into_owned(),
                    };
                    tracing::warn!(
                        service = %self.plugin.service(),
                        messages = n,
                        "a batch {what}; handing its messages one per call to find the one at fault"
                    );
                    self.isolate = n;
                    return self.handle_batch(msgs);
                }
            };
        let budget = &self.store_ref().data().budget;
        let mut outcomes = Vec::with_capacity(n);
        for result in returned {
            let outcome = match result {
                Ok(handled) => match check_handled(&handled, budget) {
                    None => Ok(Handled {
                        outputs: handled.outputs.into_iter().map(Output::from).collect(),
                        writes: handled.writes.into_iter().map(|w| (w.key, w.value)).collect(),
                    }),
                    Some(reason) => Err(HandleError::Limit(reason)),
                },
                Err(wit::Error::Invalid(reason)) => Err(HandleError::Invalid(reason)),
                Err(wit::Error::Transient(reason)) => Err(HandleError::Transient(reason)),
            };
            // What the plugin assumed about the next message no longer holds.
            let last = matches!(outcome, Err(HandleError::Limit(_) | HandleError::Transient(_)));
            outcomes.push(outcome);
            if last {
                break;
            }
        }
        self.isolate = self.isolate.saturating_sub(outcomes.len());
        Ok(outcomes)
    }

    /// Asks the plugin for the routing it reads from a record's value (WIT
    /// `route`). Runs under the same deadline and memory cap as `handle`.
    pub fn route(&mut self, msg: &Message<'_>) -> Result<Option<Routing>, HandleError> {
        let routing = self.call(std::slice::from_ref(msg), "routing", |bindings, store, messages| {
            bindings.call_route(store, &messages[0])
        })?;
        Ok(routing.map(routing_from_wit))
    }

    /// Calls one export on `msgs` under one deadline and their log budget.
    /// A trap or timeout is the error (instance replaced); otherwise the
    /// export's result is returned.
    fn call<T>(
        &mut self,
        msgs: &[Message<'_>],
        what: &str,
        export: impl FnOnce(&Plugin, &mut Store<HostState<S>>, &[wit::Message]) -> wasmtime::Result<T>,
    ) -> Result<T, HandleError> {
        if self.bindings.is_none() {
            self.rebuild().map_err(|e| HandleError::Unavailable(e.to_string()))?;
        }
        if self.scratch.len() < msgs.len() {
            self.scratch.resize_with(msgs.len(), empty_message);
        }
        for (slot, msg) in self.scratch.iter_mut().zip(msgs) {
            fill_message(slot, msg);
        }
        let engine = &self.plugin.inner.engine.inner;
        let (Some(store), Some(bindings)) = (self.store.as_mut(), self.bindings.as_ref()) else {
            return Err(HandleError::Unavailable("no live instance".into()));
        };
        store.set_epoch_deadline(engine.deadline_ticks);
        store.data_mut().begin(msgs.len());
        let result = export(bindings, &mut *store, &self.scratch[..msgs.len()]);
        let data = store.data_mut();
        data.finish();
        match result {
            Ok(value) => Ok(value),
            Err(err) => {
                let failure = classify(&err, &data.limits, engine);
                let offset = msgs.first().map(|m| m.offset);
                let shown = super::loggable(&failure.to_string()).into_owned();
                tracing::warn!(service = %self.plugin.service(), offset, messages = msgs.len(), "plugin failed while {what}, replacing the instance: {shown}");
                if let Err(again) = self.rebuild() {
                    tracing::error!(service = %self.plugin.service(), "cannot re-instantiate the plugin: {again}");
                }
                Err(failure)
            }
        }
    }

    /// Starts a fresh instance of the same plugin with the same state:
    /// after an abort or a revoke, so that guest globals (caches, counters)
    /// never outlive the state they were derived from.
    pub fn reset(&mut self) -> Result<(), PluginError> {
        self.isolate = 0;
        self.rebuild()
    }

    /// Replaces the store and instance with fresh ones, moving the state
    /// across. The old store is dropped first so that its pool slot is free.
    fn rebuild(&mut self) -> Result<(), PluginError> {
        self.bindings = None;
        let Some(old) = self.store.take() else {
            return Err(PluginError::Instantiate("instance has no store".into()));
        };
        let mut data = old.into_data();
        data.service = self.plugin.inner.service.clone();
        let engine = &self.plugin.inner.engine.inner;
        let mut store = new_store(engine, data);
        let result = self.pre.instantiate(&mut store);
        self.store = Some(store);
        self.bindings = Some(result.map_err(|e| PluginError::Instantiate(format!("{e:#}")))?);
        Ok(())
    }

    fn store_ref(&self) -> &Store<HostState<S>> {
        self.store.as_ref().unwrap_or_else(|| unreachable!("store is always present"))
    }

    fn store_mut(&mut self) -> &mut Store<HostState<S>> {
        self.store.as_mut().unwrap_or_else(|| unreachable!("store is always present"))
    }
}

fn classify(err: &wasmtime::Error, limits: &Limits, engine: &EngineInner) -> HandleError {
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            HandleError::Timeout(u64::try_from(engine.settings.deadline.as_millis()).unwrap_or(u64::MAX))
        }
        _ if limits.exceeded => HandleError::Trap(format!("memory limit of {} MiB exceeded ({err})", limits.cap >> 20)),
        Some(trap) => HandleError::Trap(trap.to_string()),
        None => HandleError::Trap(format!("{err:#}")),
    }
}

fn empty_message() -> wit::Message {
    wit::Message {
        topic: String::new(),
        partition: 0,
        offset: 0,
        key: None,
        payload: Vec::new(),
        headers: Vec::new(),
        timestamp: None,
        event_id: 0,
        action: String::new(),
    }
}

/// Copies `msg` into the reusable bindings message, keeping its buffers.
fn fill_message(out: &mut wit::Message, msg: &Message<'_>) {
    fn set(dst: &mut String, src: &str) {
        dst.clear();
        dst.push_str(src);
    }
    set(&mut out.topic, msg.topic);
    set(&mut out.action, msg.action);
    out.partition = msg.partition;
    out.offset = msg.offset;
    out.timestamp = msg.timestamp;
    out.event_id = msg.event_id;
    out.payload.clear();
    out.payload.extend_from_slice(msg.payload);
    match (&mut out.key, msg.key) {
        (Some(dst), Some(src)) => set(dst, src),
        (slot, src) => *slot = src.map(str::to_owned),
    }
    out.headers.truncate(msg.headers.len());
    for (i, h) in msg.headers.iter().enumerate() {
        match out.headers.get_mut(i) {
            Some(dst) => {
                set(&mut dst.key, h.key);
                dst.value.clear();
                dst.value.extend_from_slice(h.value);
            }
            None => out.headers.push(wit::Header { key: h.key.to_owned(), value: h.value.to_vec() }),
        }
    }
}

/// The limits on what one message returned, checked before anything of it
/// is kept.
fn check_handled(handled: &wit::Handled, budget: &PluginLimits) -> Option<String> {
    let outputs = &handled.outputs;
    if outputs.len() > budget.max_outputs {
        return Some(format!("{} outputs exceed plugin.max_outputs ({})", outputs.len(), budget.max_outputs));
    }
    let bytes: usize = outputs.iter().map(|o| o.payload.len()).sum();
    if bytes > budget.max_output_bytes {
        return Some(format!("{bytes} bytes of outputs exceed plugin.max_output_bytes ({})", budget.max_output_bytes));
    }
    // Each write also costs the host an entry, whatever its size: without
    // this, empty writes would be free.
    const ENTRY_OVERHEAD: usize = 64;
    let mut total = 0usize;
    for write in &handled.writes {
        let (key, value) = (write.key.len(), write.value.as_ref().map_or(0, Vec::len));
        if key > budget.max_key_bytes {
            return Some(format!("a state key of {key} bytes exceeds plugin.max_key_bytes ({})", budget.max_key_bytes));
        }
        if value > budget.max_value_bytes {
            return Some(format!(
                "a state value of {value} bytes exceeds plugin.max_value_bytes ({})",
                budget.max_value_bytes
            ));
        }
        total = total.saturating_add(key + value + ENTRY_OVERHEAD);
    }
    (total > budget.max_pending_state_bytes).then(|| {
        format!(
            "{total} bytes of state writes exceed plugin.max_pending_state_bytes ({})",
            budget.max_pending_state_bytes
        )
    })
}

fn routing_from_wit(r: wit::Routing) -> Routing {
    match r {
        wit::Routing::Section(r) => Routing::Section { section: r.section, subsection: r.subsection },
        wit::Routing::Booking(id) => Routing::Booking(id),
        wit::Routing::Event => Routing::Event,
    }
}

impl From<wit::Output> for Output {
    fn from(o: wit::Output) -> Self {
        Output { action: o.action, routing: routing_from_wit(o.routing), payload: o.payload, critical: o.critical }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineSettings, MemoryState, PluginEngine};

    #[test]
    fn a_call_copies_out_no_more_than_the_plugin_memory_holds() {
        let settings = EngineSettings { memory_limit: 3 << 20, pool_instances: None, ..EngineSettings::default() };
        let engine = PluginEngine::new(settings).expect("an engine");
        let store = new_store(&engine.inner, HostState::new(MemoryState::default(), "s".into(), &engine.inner));
        assert_eq!(store.hostcall_fuel(), 3 << 20);
    }
}

//! A live plugin instance: one store holding the caller's state, the
//! per-message deadline and memory cap, and recovery from guest failures.

use std::sync::Arc;

use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};

use super::bindings::{Plugin, PluginPre, types as wit};
use super::engine::EngineInner;
use super::limits::{PluginLimits, Usage};
use super::load::LoadedPlugin;
use super::state::StateAccess;
use super::{HandleError, Message, Output, PluginError, Routing};

/// The data of a plugin's store: the caller's state plus what the host
/// functions need.
pub(crate) struct HostState<S> {
    pub(crate) state: S,
    pub(crate) service: Arc<str>,
    limits: Limits,
    /// What one message may cost outside the guest's memory.
    pub(crate) budget: PluginLimits,
    /// What the message being handled has cost so far.
    pub(crate) usage: Usage,
    /// Writes of the message being handled, applied to `state` only when the
    /// message succeeds: a failed message leaves no trace.
    pending: Vec<(Vec<u8>, Option<Vec<u8>>)>,
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
            pending: Vec::new(),
        }
    }

    /// Charges a write to the message's budget; a write past it is not
    /// buffered at all (so a loop of huge puts cannot grow the host heap)
    /// and fails the message once the call returns.
    fn charge(&mut self, key: &[u8], value: Option<&[u8]>) -> bool {
        let b = &self.budget;
        let u = &mut self.usage;
        if u.violation.is_some() {
            return false;
        }
        if key.len() > b.max_key_bytes {
            u.violate(|| {
                format!("a state key of {} bytes exceeds plugin.max_key_bytes ({})", key.len(), b.max_key_bytes)
            });
            return false;
        }
        let value_len = value.map_or(0, <[u8]>::len);
        if value_len > b.max_value_bytes {
            u.violate(|| {
                format!("a state value of {value_len} bytes exceeds plugin.max_value_bytes ({})", b.max_value_bytes)
            });
            return false;
        }
        // Each buffered write also costs the host an entry, whatever its size:
        // without this, empty puts would be free.
        const ENTRY_OVERHEAD: usize = 64;
        u.pending_state_bytes = u.pending_state_bytes.saturating_add(key.len() + value_len + ENTRY_OVERHEAD);
        if u.pending_state_bytes > b.max_pending_state_bytes {
            let used = u.pending_state_bytes;
            u.violate(|| {
                format!(
                    "{used} bytes of pending state writes exceed plugin.max_pending_state_bytes ({})",
                    b.max_pending_state_bytes
                )
            });
            return false;
        }
        true
    }

    /// Whether the message may log `len` more bytes; counts what it may not.
    pub(crate) fn admit_log(&mut self, len: usize) -> Option<usize> {
        let (b, u) = (&self.budget, &mut self.usage);
        if u.log_lines >= b.max_log_lines || u.log_bytes >= b.max_log_bytes {
            u.dropped_log_lines += 1;
            return None;
        }
        u.log_lines += 1;
        let allowed = len.min(b.max_log_bytes - u.log_bytes);
        u.log_bytes += allowed;
        Some(allowed)
    }

    /// Starts a message's accounting afresh.
    fn begin(&mut self) {
        self.usage = Usage::default();
        self.limits.exceeded = false;
    }

    /// Ends a message's accounting: reports dropped log lines once and
    /// returns the limit it broke, if any.
    fn finish(&mut self) -> Option<String> {
        if self.usage.dropped_log_lines > 0 {
            tracing::warn!(
                target: "turnstile::plugin::guest",
                service = %self.service,
                dropped = self.usage.dropped_log_lines,
                "plugin log lines over plugin.max_log_lines/max_log_bytes for one message were dropped"
            );
        }
        self.usage.violation.take()
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        // A message writes a handful of keys at most; a scan beats a map.
        match self.pending.iter().rev().find(|(k, _)| k == key) {
            Some((_, value)) => value.clone(),
            None => self.state.get(key),
        }
    }

    /// Buffers a write; `false` when it is over the message's budget.
    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let ok = self.charge(&key, Some(&value));
        if ok {
            self.pending.push((key, Some(value)));
        }
        ok
    }

    /// Buffers a delete; `false` when it is over the message's budget.
    pub(crate) fn delete(&mut self, key: Vec<u8>) -> bool {
        let ok = self.charge(&key, None);
        if ok {
            self.pending.push((key, None));
        }
        ok
    }

    fn commit(&mut self) {
        for (key, value) in self.pending.drain(..) {
            match value {
                Some(value) => self.state.put(&key, &value),
                None => self.state.delete(&key),
            }
        }
    }

    fn rollback(&mut self) {
        self.pending.clear();
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
    store
}

/// One running plugin with the state of one partition.
///
/// Each [`handle`](Self::handle) is atomic: its state writes reach `S` only
/// if the plugin returns outputs; on any error they are discarded. A trap or
/// timeout leaves the guest's memory in an unknown state, so the instance is
/// replaced (fresh store, same `S`) before the error is returned.
pub struct PluginInstance<S: StateAccess> {
    plugin: LoadedPlugin,
    pre: PluginPre<HostState<S>>,
    /// `None` only inside [`Self::rebuild`], which always puts it back.
    store: Option<Store<HostState<S>>>,
    /// `None` when the last instantiation failed; retried on the next message.
    bindings: Option<Plugin>,
    /// Reused for every message so that lowering does not allocate.
    scratch: wit::Message,
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
            scratch: empty_message(),
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

    /// Hands one message to the plugin and returns its outputs.
    pub fn handle(&mut self, msg: &Message<'_>) -> Result<Vec<Output>, HandleError> {
        let result = self.call(msg, "handling", |bindings, store, message| bindings.call_handle(store, message))?;
        let Some(store) = self.store.as_mut() else {
            return Err(HandleError::Unavailable("no live instance".into()));
        };
        let data = store.data_mut();
        match result {
            Ok(outputs) => {
                if let Some(reason) = check_outputs(&outputs, &data.budget) {
                    data.rollback();
                    return Err(HandleError::Limit(reason));
                }
                data.commit();
                Ok(outputs.into_iter().map(Output::from).collect())
            }
            Err(err) => {
                data.rollback();
                Err(match err {
                    wit::Error::Invalid(reason) => HandleError::Invalid(reason),
                    wit::Error::Transient(reason) => HandleError::Transient(reason),
                })
            }
        }
    }

    /// Asks the plugin for the routing it reads from a record's value (WIT
    /// `route`). Runs under the same deadline and memory cap as `handle`;
    /// state writes are not allowed and fail the call.
    pub fn route(&mut self, msg: &Message<'_>) -> Result<Option<Routing>, HandleError> {
        let routing = self.call(msg, "routing", |bindings, store, message| bindings.call_route(store, message))?;
        let Some(store) = self.store.as_mut() else {
            return Err(HandleError::Unavailable("no live instance".into()));
        };
        let wrote = !store.data().pending.is_empty();
        store.data_mut().rollback();
        if wrote {
            return Err(HandleError::Invalid("the plugin wrote state while routing a record".into()));
        }
        Ok(routing.map(routing_from_wit))
    }

    /// Calls one export on `msg` under the message's deadline and budget.
    /// A limit broken during the call, or a trap or timeout, is the error
    /// (writes dropped, instance replaced); otherwise the export's result
    /// is returned with the message's writes still pending, for the caller
    /// to commit or roll back.
    fn call<T>(
        &mut self,
        msg: &Message<'_>,
        what: &str,
        export: impl FnOnce(&Plugin, &mut Store<HostState<S>>, &wit::Message) -> wasmtime::Result<T>,
    ) -> Result<T, HandleError> {
        if self.bindings.is_none() {
            self.rebuild().map_err(|e| HandleError::Unavailable(e.to_string()))?;
        }
        fill_message(&mut self.scratch, msg);
        let engine = &self.plugin.inner.engine.inner;
        let (Some(store), Some(bindings)) = (self.store.as_mut(), self.bindings.as_ref()) else {
            return Err(HandleError::Unavailable("no live instance".into()));
        };
        store.set_epoch_deadline(engine.deadline_ticks);
        store.data_mut().begin();
        let result = export(bindings, &mut *store, &self.scratch);
        let data = store.data_mut();
        let violation = data.finish();
        match (result, violation) {
            (Ok(value), None) => Ok(value),
            (Ok(_), Some(reason)) => {
                data.rollback();
                Err(HandleError::Limit(reason))
            }
            (Err(err), violation) => {
                data.rollback();
                let failure = match violation {
                    Some(reason) => HandleError::Limit(reason),
                    None => classify(&err, &data.limits, engine),
                };
                tracing::warn!(service = %self.plugin.service(), offset = msg.offset, "plugin failed while {what} a message, replacing the instance: {failure}");
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

/// The output limits of one message, checked before anything is routed.
fn check_outputs(outputs: &[wit::Output], budget: &PluginLimits) -> Option<String> {
    if outputs.len() > budget.max_outputs {
        return Some(format!("{} outputs exceed plugin.max_outputs ({})", outputs.len(), budget.max_outputs));
    }
    let bytes: usize = outputs.iter().map(|o| o.payload.len()).sum();
    (bytes > budget.max_output_bytes)
        .then(|| format!("{bytes} bytes of outputs exceed plugin.max_output_bytes ({})", budget.max_output_bytes))
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

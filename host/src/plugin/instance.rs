//! A live plugin instance: one store holding the caller's state, the
//! per-message deadline and memory cap, and recovery from guest failures.

use std::sync::Arc;

use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};

use super::bindings::{Plugin, PluginPre, types as wit};
use super::engine::EngineInner;
use super::load::LoadedPlugin;
use super::state::StateAccess;
use super::{HandleError, Message, Output, PluginError, Routing};

/// The data of a plugin's store: the caller's state plus what the host
/// functions need.
pub(crate) struct HostState<S> {
    pub(crate) state: S,
    pub(crate) service: Arc<str>,
    limits: Limits,
    /// Writes of the message being handled, applied to `state` only when the
    /// message succeeds: a failed message leaves no trace.
    pending: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl<S: StateAccess> HostState<S> {
    pub(crate) fn new(state: S, service: Arc<str>, engine: &EngineInner) -> Self {
        HostState { state, service, limits: Limits::new(engine.settings.memory_limit), pending: Vec::new() }
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        // A message writes a handful of keys at most; a scan beats a map.
        match self.pending.iter().rev().find(|(k, _)| k == key) {
            Some((_, value)) => value.clone(),
            None => self.state.get(key),
        }
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.push((key, Some(value)));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.pending.push((key, None));
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
    fn new(cap: usize) -> Self {
        Limits { inner: StoreLimitsBuilder::new().memory_size(cap).build(), cap, exceeded: false }
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
        if self.bindings.is_none() {
            self.rebuild().map_err(|e| HandleError::Unavailable(e.to_string()))?;
        }
        fill_message(&mut self.scratch, msg);
        let engine = &self.plugin.inner.engine.inner;
        let (Some(store), Some(bindings)) = (self.store.as_mut(), self.bindings.as_ref()) else {
            return Err(HandleError::Unavailable("no live instance".into()));
        };
        store.set_epoch_deadline(engine.deadline_ticks);
        store.data_mut().limits.exceeded = false;
        match bindings.call_handle(&mut *store, &self.scratch) {
            Ok(Ok(outputs)) => {
                store.data_mut().commit();
                Ok(outputs.into_iter().map(Output::from).collect())
            }
            Ok(Err(err)) => {
                store.data_mut().rollback();
                Err(match err {
                    wit::Error::Invalid(reason) => HandleError::Invalid(reason),
                    wit::Error::Transient(reason) => HandleError::Transient(reason),
                })
            }
            Err(err) => {
                let data = store.data_mut();
                data.rollback();
                let failure = classify(&err, &data.limits, engine);
                tracing::warn!(service = %self.plugin.service(), offset = msg.offset, "plugin failed, replacing the instance: {failure}");
                if let Err(again) = self.rebuild() {
                    tracing::error!(service = %self.plugin.service(), "cannot re-instantiate the plugin: {again}");
                }
                Err(failure)
            }
        }
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

impl From<wit::Output> for Output {
    fn from(o: wit::Output) -> Self {
        Output {
            action: o.action,
            routing: match o.routing {
                wit::Routing::Section(r) => Routing::Section { section: r.section, subsection: r.subsection },
                wit::Routing::Booking(id) => Routing::Booking(id),
                wit::Routing::Event => Routing::Event,
            },
            payload: o.payload,
            critical: o.critical,
        }
    }
}

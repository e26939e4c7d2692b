//! WebAssembly component plugins, run by wasmtime.
//!
//! Each plugin is compiled once into an `InstancePre`; each event gets a
//! fresh `Store` with its own limits: fuel for CPU, a memory cap, an epoch
//! deadline for wall-clock time (checked again in every host call), and
//! bounded stdout/stderr, which become the plugin's log lines. WASI is linked
//! with nothing granted: no preopened directory, no socket, no environment
//! variable. Of the query interfaces, only those the plugin declares in its
//! metadata are linked; a plugin importing one it did not declare, asking
//! for an unknown capability or built against another WIT version is refused
//! when it loads.

//!
//! - [`limits`]: what one event may use, and `limits.yaml`;
//! - [`runtime`]: the shared engine, its ticker and the compile cache;
//! - [`sandbox`]: one event's store, the linker, the host functions;
//! - this module: loading a plugin (its checks) and calling it.

mod error;
mod limits;
mod runtime;
mod sandbox;

use std::fmt;
use std::sync::Arc;

use relais_sdk::{CAPABILITIES, Effect, Event, Host, Level, Metadata, WIT_VERSION};
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentType, Instance, InstancePre, Lower, TypedFunc,
};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::convert;
use super::{Failure, Origin, Plugin, PluginInfo};
use crate::rules::RuleConfig;
use crate::triggers::{self, CallWith, HostEvent, Trigger, Unit, WithEvent};
pub use error::{EngineError, LoadError};
pub use limits::{Limits, LimitsFile, LimitsSpec, MAX_MEMORY_MIB};
pub use runtime::{Runtime, default_cache_dir};
use sandbox::{HostFault, NoQueries, State, WallClock, linker, new_store, new_store_with_output};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "plugin",
        imports: { default: trappable },
    });
}

use bindings::relais::plugin::types as wit;

/// The package every plugin import and export belongs to.
const PACKAGE: &str = "relais:plugin/";

/// A loaded, checked plugin.
pub struct WasmPlugin {
    info: PluginInfo,
    metadata: Metadata,
    engine: Engine,
    limits: Limits,
    pre: InstancePre<State>,
    /// The `handle` function of each trigger it handles, found once.
    handlers: Vec<(Trigger, ComponentExportIndex)>,
}

/// What every handler answers.
type Answer = (Result<Vec<wit::Effect>, String>,);

/// A handler typed with the SDK's own type of its event (`Mail`...): the
/// host lowers the event it holds straight into the guest's memory, one
/// copy, with no intermediate binding types built for each event.
fn handler<'a, T: ComponentType + Lower + Sync + 'a>(
    store: &mut Store<State>,
    instance: &Instance,
    index: &ComponentExportIndex,
) -> wasmtime::Result<TypedFunc<(&'a T, &'a str), Answer>> {
    instance.get_typed_func(store, index)
}

/// Calls the handler at `index` with `data` and the rule's config.
fn call_handler<T: ComponentType + Lower + Sync>(
    store: &mut Store<State>,
    instance: &Instance,
    index: &ComponentExportIndex,
    data: &T,
    config: &str,
) -> wasmtime::Result<Result<Vec<wit::Effect>, String>> {
    let func = handler::<T>(store, instance, index)?;
    Ok(func.call(store, (data, config))?.0)
}

/// A call of the handler at `index` with an event and the rule's config,
/// typed by the event's trigger (`triggers::with_payload`).
struct HandlerCall<'a> {
    store: &'a mut Store<State>,
    instance: &'a Instance,
    index: &'a ComponentExportIndex,
    config: &'a str,
}

impl CallWith for HandlerCall<'_> {
    type Output = wasmtime::Result<Result<Vec<wit::Effect>, String>>;

    fn call<U: Unit>(self, event: &U::Event) -> Self::Output
    where
        U::Event: HostEvent,
    {
        call_handler(self.store, self.instance, self.index, event, self.config)
    }
}

/// The check that the handler at `index` takes its trigger's event type
/// (`Trigger::with_event`).
struct HandlerCheck<'a> {
    store: &'a mut Store<State>,
    instance: &'a Instance,
    index: &'a ComponentExportIndex,
}

impl WithEvent for HandlerCheck<'_> {
    type Output = wasmtime::Result<()>;

    fn with<U: Unit>(self) -> Self::Output
    where
        U::Event: HostEvent,
    {
        handler::<U::Event>(self.store, self.instance, self.index).map(drop)
    }
}

/// The `handle` function of the handler interface of `trigger`
/// (`relais:plugin/on-mail-received@1.x`), when the component exports it.
fn handler_index(
    component: &Component,
    engine: &Engine,
    trigger: &str,
) -> Option<ComponentExportIndex> {
    let prefix = format!("{PACKAGE}on-{trigger}@");
    let name = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .find(|name| name.strip_prefix(&prefix).is_some_and(compatible))?;
    let interface = component.get_export_index(None, &name)?;
    component.get_export_index(Some(&interface), "handle")
}

impl fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("info", &self.info)
            .finish()
    }
}

/// Whether a plugin built against WIT `version` can run on this host: same
/// major version, and for 0.x the same minor version (semver).
fn compatible(version: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(version), parse(WIT_VERSION)) {
        (Some((0, minor)), Some((0, ours))) => minor == ours,
        (Some((major, _)), Some((ours, _))) => major == ours,
        _ => false,
    }
}

impl WasmPlugin {
    pub(super) fn load(
        runtime: &Runtime,
        bytes: &[u8],
        origin: Origin,
        overrides: &LimitsFile,
    ) -> Result<WasmPlugin, LoadError> {
        let engine = &runtime.engine;
        let component = runtime.compile(bytes)?;

        // What the component imports from our package, by interface.
        let mut imported = Vec::new();
        for (name, _) in component.component_type().imports(engine) {
            let Some(rest) = name.strip_prefix(PACKAGE) else {
                if name.starts_with("wasi:") {
                    continue;
                }
                return Err(LoadError::ForeignImport(name.to_string()));
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if !compatible(version) {
                return Err(LoadError::ImportsAnotherVersion(version.to_string()));
            }
            imported.push(interface.to_string());
        }

        // Read the metadata from a probe instance that can answer no query.
        let all: Vec<String> = CAPABILITIES.iter().map(|c| c.to_string()).collect();
        let probe = linker(engine, &all)?;
        let pre = probe
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let metadata_index = component
            .get_export_index(None, "metadata")
            .ok_or(LoadError::NoMetadata)?;
        let mut store = new_store(engine, &runtime.limits, Arc::new(NoQueries))?;
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| LoadError::Instantiate(describe(&e, &runtime.limits, "")))?;
        let metadata_func: TypedFunc<(), (wit::Metadata,)> = instance
            .get_typed_func(&mut store, metadata_index)
            .map_err(|e| LoadError::MetadataMismatch(format!("{e:#}")))?;
        let (metadata,) = metadata_func
            .call(&mut store, ())
            .map_err(|e| LoadError::Metadata(describe(&e, &runtime.limits, "")))?;
        let metadata = convert::metadata(metadata);

        if !compatible(&metadata.wit_version) {
            return Err(LoadError::BuiltAgainst {
                name: metadata.name,
                version: metadata.wit_version,
            });
        }
        if metadata.name.is_empty()
            || !metadata
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(LoadError::InvalidName(metadata.name));
        }
        for capability in &metadata.capabilities {
            if !CAPABILITIES.contains(&capability.as_str()) {
                return Err(LoadError::UnknownCapability {
                    name: metadata.name.clone(),
                    capability: capability.clone(),
                    granted: CAPABILITIES.join(", "),
                });
            }
        }
        if metadata.triggers.is_empty() {
            return Err(LoadError::NoTrigger(metadata.name));
        }
        let mut handlers = Vec::new();
        for trigger in &metadata.triggers {
            let Some(known) = Trigger::ALL.iter().find(|known| known.as_str() == trigger) else {
                return Err(LoadError::UnknownTrigger {
                    name: metadata.name.clone(),
                    trigger: trigger.clone(),
                    known: relais_sdk::TRIGGERS.join(", "),
                });
            };
            let index = handler_index(&component, engine, known.as_str()).ok_or_else(|| {
                LoadError::NoHandler {
                    name: metadata.name.clone(),
                    trigger: trigger.clone(),
                }
            })?;
            let check = HandlerCheck {
                store: &mut store,
                instance: &instance,
                index: &index,
            };
            known
                .with_event(check)
                .map_err(|e| LoadError::HandlerMismatch {
                    trigger: trigger.clone(),
                    detail: format!("{e:#}"),
                })?;
            handlers.push((*known, index));
        }
        for interface in &imported {
            let always = interface == "log" || interface == "types";
            if !always && !metadata.capabilities.contains(interface) {
                return Err(LoadError::Undeclared {
                    name: metadata.name.clone(),
                    interface: interface.clone(),
                    declared: if metadata.capabilities.is_empty() {
                        "none".to_string()
                    } else {
                        metadata.capabilities.join(", ")
                    },
                });
            }
        }

        // The real linker: only what was declared.
        let granted = linker(engine, &metadata.capabilities)?;
        let pre = granted
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let info = PluginInfo {
            name: metadata.name.clone(),
            version: metadata.version.clone(),
            origin,
            capabilities: metadata.capabilities.clone(),
            triggers: metadata.triggers.clone(),
        };
        let mut limits = overrides.default.over(&runtime.limits);
        if let Some(own) = overrides.plugins.get(&metadata.name) {
            limits = own.over(&limits);
        }
        Ok(WasmPlugin {
            info,
            metadata,
            engine: engine.clone(),
            limits,
            pre,
            handlers,
        })
    }

    /// What the plugin declared.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The limits each of its events runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// A clear reason for a failed call: which limit, which trap, or the host.
fn describe(error: &wasmtime::Error, limits: &Limits, stderr: &str) -> String {
    if let Some(fault) = error.downcast_ref::<HostFault>() {
        return format!("host error: {fault}");
    }
    if error.downcast_ref::<WallClock>().is_some() {
        return format!(
            "wall-clock limit of {:?} exceeded (during a host call)",
            limits.wall_clock
        );
    }
    let text = format!("{error:#}");
    let mut reason = match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!(
            "CPU limit exceeded: ran out of fuel ({} units)",
            limits.fuel
        ),
        Some(Trap::Interrupt) => format!("wall-clock limit of {:?} exceeded", limits.wall_clock),
        Some(trap) => format!("trapped: {trap}"),
        None if text.contains("forcing trap when growing memory")
            || text.contains("memory minimum size") =>
        {
            format!("memory limit of {} MiB exceeded", limits.memory_bytes >> 20)
        }
        None => format!("failed: {text}"),
    };
    // A Rust panic prints its message to stderr just before the trap.
    if let Some(panic) = stderr
        .lines()
        .rev()
        .find(|line| line.contains("panicked at"))
    {
        reason.push_str(&format!(" ({panic})"));
    }
    reason
}

impl Plugin for WasmPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn check_config(&self, config: &serde_json::Value) -> Result<(), String> {
        // The plugin's published schema, when it has one: unknown keys and
        // wrong types are caught before the rule goes live.
        let Some(schema) = &self.metadata.config_schema else {
            return Ok(());
        };
        let schema: serde_json::Value = serde_json::from_str(schema)
            .map_err(|e| format!("the plugin's config schema is not JSON: {e}"))?;
        super::schema::check(&schema, config)
    }

    fn handle(
        &self,
        event: &Event,
        config: &RuleConfig,
        host: Arc<dyn Host + Send + Sync>,
    ) -> Result<Vec<Effect>, Failure> {
        let stdout = MemoryOutputPipe::new(self.limits.output_bytes);
        let stderr = MemoryOutputPipe::new(self.limits.output_bytes);
        let mut store = new_store_with_output(
            &self.engine,
            &self.limits,
            host.clone(),
            Some((stdout.clone(), stderr.clone())),
        )
        .map_err(|error| Failure::Fault(error.to_string()))?;
        let trigger = Trigger::of(event);
        let Some((_, index)) = self.handlers.iter().find(|(t, _)| *t == trigger) else {
            return Err(Failure::Fault(format!(
                "plugin `{}` does not handle `{}` (it handles {})",
                self.info.name,
                trigger.as_str(),
                self.info.triggers.join(", ")
            )));
        };
        let result = self.pre.instantiate(&mut store).and_then(|instance| {
            let call = HandlerCall {
                store: &mut store,
                instance: &instance,
                index,
                config: config.json(),
            };
            triggers::with_payload(event, call)
        });
        drop(store);
        let stderr_text = String::from_utf8_lossy(&stderr.contents()).into_owned();
        for (stream, level, text) in [
            (
                "stdout",
                Level::Info,
                String::from_utf8_lossy(&stdout.contents()).into_owned(),
            ),
            ("stderr", Level::Warn, stderr_text.clone()),
        ] {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                host.log(level, &format!("[{stream}] {line}"));
            }
        }
        match result {
            Ok(Ok(effects)) if effects.len() > self.limits.max_effects => {
                Err(Failure::Fault(format!(
                    "returned {} effects, more than the limit of {}",
                    effects.len(),
                    self.limits.max_effects
                )))
            }
            Ok(Ok(effects)) => Ok(effects.into_iter().map(convert::effect).collect()),
            Ok(Err(message)) => Err(Failure::Refused(message)),
            Err(error) if error.downcast_ref::<HostFault>().is_some() => {
                Err(Failure::Host(describe(&error, &self.limits, &stderr_text)))
            }
            Err(error) => Err(Failure::Fault(describe(&error, &self.limits, &stderr_text))),
        }
    }
}

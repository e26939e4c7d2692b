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

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use relais_sdk::{CAPABILITIES, Effect, Event, Host, HostError, Level, Metadata, WIT_VERSION};
use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, Instance, Linker, ResourceTable, TypedFunc,
};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::convert;
use super::{Failure, Origin, Plugin, PluginInfo};
use crate::rules::RuleConfig;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "plugin",
        imports: { default: trappable },
    });
}

use bindings::relais::plugin::{
    contracts, directory, log, mail, requests, settings, templates, types as wit,
};

/// Per-event limits of a plugin. What each protects is the engine and the
/// other events from one plugin's fault.
#[derive(Debug, Clone)]
pub struct Limits {
    /// CPU: wasm instructions (fuel units) one event may run; an endless
    /// loop runs out of it.
    pub fuel: u64,
    /// Memory: linear memory one event may grow to, in bytes.
    pub memory_bytes: usize,
    /// Wall clock: time one event may take, host calls included.
    pub wall_clock: Duration,
    /// Output: bytes of stdout and of stderr kept as log lines.
    pub output_bytes: usize,
    /// Effects one event may return.
    pub max_effects: usize,
}

/// Per-plugin limits, from `limits.yaml` in the plugins directory:
///
/// ```yaml
/// default:   { fuel: 2000000000, memory-mib: 64, timeout-ms: 2000, max-effects: 1000, output-kib: 64 }
/// plugins:
///   catchmail: { memory-mib: 32 }
/// ```
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// `default: { ... }`: every plugin's limits.
    #[serde(default)]
    pub default: LimitsSpec,
    /// `plugins: { NAME: { ... } }`: one plugin's, over the default.
    #[serde(default)]
    pub plugins: std::collections::BTreeMap<String, LimitsSpec>,
}

/// Limits as written; a key left out keeps the value below it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsSpec {
    /// `fuel: 2000000000`: wasm instructions per event.
    pub fuel: Option<u64>,
    /// `memory-mib: 64`: linear memory per event, at most 1024.
    pub memory_mib: Option<usize>,
    /// `timeout-ms: 2000`: wall clock per event.
    pub timeout_ms: Option<u64>,
    /// `max-effects: 1000`: effects per event.
    pub max_effects: Option<usize>,
    /// `output-kib: 64`: stdout and stderr kept per event.
    pub output_kib: Option<usize>,
}

/// The ceiling of `memory-mib`: the pooling allocator reserves slots of
/// this size.
pub const MAX_MEMORY_MIB: usize = 1024;

impl LimitsSpec {
    /// These limits over `base`.
    pub fn over(&self, base: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(base.fuel),
            memory_bytes: self
                .memory_mib
                .map(|m| m.min(MAX_MEMORY_MIB) << 20)
                .unwrap_or(base.memory_bytes),
            wall_clock: self
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(base.wall_clock),
            output_bytes: self
                .output_kib
                .map(|k| k << 10)
                .unwrap_or(base.output_bytes),
            max_effects: self.max_effects.unwrap_or(base.max_effects),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 2_000_000_000,
            memory_bytes: 64 << 20,
            wall_clock: Duration::from_secs(2),
            output_bytes: 64 << 10,
            max_effects: 1_000,
        }
    }
}

/// Bytes of each linear memory and table kept mapped between events.
const KEEP_RESIDENT: usize = 2 << 20;

/// Whether the kernel has the `PAGEMAP_SCAN` ioctl (Linux 6.7 and later).
fn pagemap_scan_available() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release.trim().split(['.', '-']);
    let mut number = || parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((number(), number()), (Some(major), Some(minor)) if (major, minor) >= (6, 7))
}

/// How often the wall-clock deadline is looked at.
const TICK: Duration = Duration::from_millis(10);

/// The wasmtime engine shared by all plugins, with its epoch ticker.
pub struct Runtime {
    engine: Engine,
    limits: Limits,
    ticking: Arc<AtomicBool>,
    /// Compiled components by the SHA-256 of their bytes: a reload
    /// compiles only the plugins whose file changed.
    compiled: std::sync::Mutex<std::collections::HashMap<String, Component>>,
}

/// How many compiled components the runtime keeps for reloads.
const COMPILED_KEPT: usize = 64;

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

/// Where compiled plugins are kept between runs: `RELAIS_CACHE_DIR`
/// (`off` for nowhere), else `$XDG_CACHE_HOME/relais`, else
/// `~/.cache/relais`.
pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("RELAIS_CACHE_DIR") {
        Some(dir) if dir.is_empty() || dir == "off" => return None,
        Some(dir) => std::path::PathBuf::from(dir),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            Some(base) => std::path::PathBuf::from(base).join("relais"),
            None => std::path::PathBuf::from(std::env::var_os("HOME")?)
                .join(".cache")
                .join("relais"),
        },
    };
    if dir.is_absolute() {
        Some(dir)
    } else {
        std::env::current_dir().ok().map(|cwd| cwd.join(dir))
    }
}

impl Runtime {
    /// An engine with these limits, keeping compiled plugins in
    /// [`default_cache_dir`].
    pub fn new(limits: Limits) -> Result<Runtime, String> {
        Self::with_cache(limits, default_cache_dir().as_deref())
    }

    /// An engine with these limits, keeping compiled plugins in `cache`
    /// (none: every start compiles them). A cache that cannot be used is
    /// said in the log and done without. The pooling allocator makes the
    /// fresh instance of every event cheap; where the machine cannot
    /// reserve its address space, instances are allocated on demand
    /// instead.
    pub fn with_cache(limits: Limits, cache: Option<&Path>) -> Result<Runtime, String> {
        let cache = cache.and_then(|dir| {
            let mut config = wasmtime::CacheConfig::new();
            config.with_directory(dir);
            wasmtime::Cache::new(config)
                .map_err(|error| {
                    tracing::warn!(dir = %dir.display(), error = %format!("{error:#}"),
                        "cannot keep compiled plugins there; compiling them at every start");
                })
                .ok()
        });
        let engine = Self::engine(&limits, true, cache.clone()).or_else(|error| {
            tracing::warn!(error = %error, "pooling allocator unavailable; allocating instances on demand");
            Self::engine(&limits, false, cache)
        })?;
        let ticking = Arc::new(AtomicBool::new(true));
        let weak_engine = engine.weak();
        let running = ticking.clone();
        std::thread::Builder::new()
            .name("relais-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        Ok(Runtime {
            engine,
            limits,
            ticking,
            compiled: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn engine(
        limits: &Limits,
        pooling: bool,
        cache: Option<wasmtime::Cache>,
    ) -> Result<Engine, String> {
        let mut config = Config::new();
        // Keyed by the component's bytes and this engine's settings: an
        // entry from another version or configuration is never used, and
        // one that does not read back is compiled again.
        config.cache(cache);
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        if pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(64)
                .total_core_instances(128)
                .total_memories(64)
                .total_tables(128)
                .max_memory_size(limits.memory_bytes.max(MAX_MEMORY_MIB << 20));
            if pagemap_scan_available() {
                // Reset only the pages an event dirtied, in place, rather
                // than unmapping them and faulting them back in on the
                // next event. Without the ioctl, the kept region would be
                // zeroed whole, which costs more than it saves.
                pool.pagemap_scan(wasmtime::Enabled::Auto)
                    .linear_memory_keep_resident(KEEP_RESIDENT)
                    .table_keep_resident(KEEP_RESIDENT);
            }
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        Engine::new(&config).map_err(|e| e.to_string())
    }

    /// The limits every event runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The component of `bytes`, compiled once per content.
    fn compile(&self, bytes: &[u8]) -> Result<Component, String> {
        let key = crate::store::sha256_hex(bytes);
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(component) = compiled.get(&key) {
            return Ok(component.clone());
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            let detail = format!("{e:#}");
            format!("not a valid WebAssembly component: {detail}")
        })?;
        if compiled.len() >= COMPILED_KEPT {
            compiled.clear();
        }
        compiled.insert(key, component.clone());
        Ok(component)
    }

    /// Compiles and checks a plugin; it runs under the default limits, or
    /// those `overrides` give for its name.
    pub fn load(
        &self,
        bytes: &[u8],
        origin: Origin,
        overrides: &LimitsFile,
    ) -> Result<WasmPlugin, String> {
        WasmPlugin::load(self, bytes, origin, overrides)
    }

    /// Compiles and checks the plugin file at `path`.
    pub fn load_file(&self, path: &Path, overrides: &LimitsFile) -> Result<WasmPlugin, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        self.load(&bytes, Origin::File(path.to_path_buf()), overrides)
    }
}

/// A fault of the host during a query: the event fails and can be retried.
#[derive(Debug)]
struct HostFault(String);

impl fmt::Display for HostFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostFault {}

/// The wall clock ran out while the host was answering a query.
#[derive(Debug)]
struct WallClock;

impl fmt::Display for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wall-clock limit reached during a host call")
    }
}

impl std::error::Error for WallClock {}

/// Store data of one event.
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    host: Arc<dyn Host + Send + Sync>,
    deadline: Instant,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl State {
    /// Every query first checks the wall clock: epoch interruption only
    /// stops wasm code, not a slow host call.
    fn query<T, U>(
        &mut self,
        ask: impl FnOnce(&dyn Host) -> Result<T, HostError>,
        convert: impl FnOnce(T) -> U,
    ) -> wasmtime::Result<Result<U, String>> {
        if Instant::now() > self.deadline {
            return Err(wasmtime::Error::new(WallClock));
        }
        match ask(self.host.as_ref()) {
            Ok(value) => Ok(Ok(convert(value))),
            // A store failure is ours, not the plugin's: trap with a fault
            // the host recognises, rather than hand the guest an error.
            Err(error) => Err(wasmtime::Error::new(HostFault(error.0))),
        }
    }
}

impl wit::Host for State {}

impl requests::Host for State {
    fn get_request(
        &mut self,
        number: u64,
    ) -> wasmtime::Result<Result<Option<wit::Request>, String>> {
        self.query(|h| h.request(number), |r| r.map(convert::request_out))
    }

    fn get_request_type(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Option<wit::RequestType>, String>> {
        self.query(|h| h.request_type(&code), |t| t.map(convert::request_type))
    }

    fn find_requests(
        &mut self,
        query: wit::RequestQuery,
    ) -> wasmtime::Result<Result<Vec<wit::RequestActivity>, String>> {
        let query = convert::request_query(query);
        self.query(
            |h| h.find_requests(&query),
            |found| found.into_iter().map(convert::request_activity).collect(),
        )
    }
}

impl directory::Host for State {
    fn address_owners(
        &mut self,
        email: String,
    ) -> wasmtime::Result<Result<Vec<wit::AddressOwner>, String>> {
        self.query(
            |h| h.address_owners(&email),
            |o| o.into_iter().map(convert::address_owner).collect(),
        )
    }

    fn get_contact(
        &mut self,
        id: String,
    ) -> wasmtime::Result<Result<Option<wit::Recipient>, String>> {
        self.query(|h| h.contact(&id), |c| c.map(convert::recipient))
    }
}

impl settings::Host for State {
    fn get_settings(&mut self) -> wasmtime::Result<Result<wit::Settings, String>> {
        self.query(|h| h.settings(), convert::settings)
    }
}

impl contracts::Host for State {
    fn get_contract(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Option<wit::ContractDetails>, String>> {
        self.query(|h| h.contract(&code), |c| c.map(convert::contract))
    }

    fn get_customer(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Option<wit::Customer>, String>> {
        self.query(|h| h.customer(&code), |c| c.map(convert::customer))
    }
}

impl templates::Host for State {
    fn render(
        &mut self,
        name: String,
        language: Option<String>,
        context: String,
    ) -> wasmtime::Result<Result<wit::Rendered, String>> {
        // The context is the plugin's own data: JSON it cannot write is
        // its error, answered as such rather than as a host fault.
        let context: serde_json::Value = match serde_json::from_str(&context) {
            Ok(context) => context,
            Err(error) => return Ok(Err(format!("template context is not JSON: {error}"))),
        };
        self.query(
            |h| h.render(&name, language.as_deref(), &context),
            convert::rendered,
        )
    }
}

impl mail::Host for State {
    fn thread(
        &mut self,
        message_id: String,
    ) -> wasmtime::Result<Result<Vec<wit::ThreadMail>, String>> {
        self.query(
            |h| h.thread(&message_id),
            |t| t.into_iter().map(convert::thread_mail).collect(),
        )
    }

    fn linked_ticket(
        &mut self,
        message_id: String,
    ) -> wasmtime::Result<Result<Option<u64>, String>> {
        self.query(|h| h.linked_ticket(&message_id), |t| t)
    }
}

impl log::Host for State {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        // A log line is bounded like stdout: a plugin must not fill the
        // trace with one enormous line.
        let message: String = message.chars().take(4096).collect();
        self.host.log(level, &message);
        Ok(())
    }
}

/// Answers nothing: the host of the probe instance that reads metadata.
struct NoQueries;

impl Host for NoQueries {
    fn request(&self, _: u64) -> Result<Option<relais_sdk::Request>, HostError> {
        Err(unavailable())
    }
    fn request_type(&self, _: &str) -> Result<Option<relais_sdk::RequestType>, HostError> {
        Err(unavailable())
    }
    fn find_requests(
        &self,
        _: &relais_sdk::RequestQuery,
    ) -> Result<Vec<relais_sdk::RequestActivity>, HostError> {
        Err(unavailable())
    }
    fn address_owners(&self, _: &str) -> Result<Vec<relais_sdk::AddressOwner>, HostError> {
        Err(unavailable())
    }
    fn contact(&self, _: &str) -> Result<Option<relais_sdk::Recipient>, HostError> {
        Err(unavailable())
    }
    fn settings(&self) -> Result<relais_sdk::Settings, HostError> {
        Err(unavailable())
    }
    fn contract(&self, _: &str) -> Result<Option<relais_sdk::ContractDetails>, HostError> {
        Err(unavailable())
    }
    fn customer(&self, _: &str) -> Result<Option<relais_sdk::Customer>, HostError> {
        Err(unavailable())
    }
    fn render(
        &self,
        _: &str,
        _: Option<&str>,
        _: &serde_json::Value,
    ) -> Result<relais_sdk::Rendered, HostError> {
        Err(unavailable())
    }
    fn thread(&self, _: &str) -> Result<Vec<relais_sdk::ThreadMail>, HostError> {
        Err(unavailable())
    }
    fn linked_ticket(&self, _: &str) -> Result<Option<u64>, HostError> {
        Err(unavailable())
    }
    fn log(&self, _: Level, _: &str) {}
}

fn unavailable() -> HostError {
    HostError("queries are not available while a plugin loads".to_string())
}

/// The package every plugin import and export belongs to.
const PACKAGE: &str = "relais:plugin/";

/// A loaded, checked plugin.
pub struct WasmPlugin {
    info: PluginInfo,
    metadata: Metadata,
    engine: Engine,
    limits: Limits,
    pre: bindings::PluginPre<State>,
    /// The `handle` export, found once.
    handle: ComponentExportIndex,
}

/// The `handle` export, typed with the SDK's own event: the host lowers
/// the event it holds straight into the guest's memory, one copy, with no
/// intermediate binding types built for each event.
type Handle<'a> = TypedFunc<(&'a Event, &'a str), (Result<Vec<wit::Effect>, String>,)>;

/// Finds `handle` in `instance`, checked against the SDK's event type.
fn handle_func<'a>(
    store: &mut Store<State>,
    instance: &Instance,
    index: &ComponentExportIndex,
) -> wasmtime::Result<Handle<'a>> {
    instance.get_typed_func(store, index)
}

impl fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("info", &self.info)
            .finish()
    }
}

/// A linker with WASI (nothing granted), `log`, and the given query
/// interfaces.
fn linker(engine: &Engine, capabilities: &[String]) -> Result<Linker<State>, String> {
    let mut linker = Linker::<State>::new(engine);
    let failed = |e: wasmtime::Error| format!("cannot link: {e}");
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(failed)?;
    log::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(failed)?;
    wit::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(failed)?;
    for capability in capabilities {
        match capability.as_str() {
            "requests" => requests::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "directory" => directory::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "settings" => settings::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "contracts" => contracts::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "mail" => mail::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "templates" => templates::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            _ => Ok(()),
        }
        .map_err(failed)?;
    }
    Ok(linker)
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
    fn load(
        runtime: &Runtime,
        bytes: &[u8],
        origin: Origin,
        overrides: &LimitsFile,
    ) -> Result<WasmPlugin, String> {
        let engine = &runtime.engine;
        let component = runtime.compile(bytes)?;

        // What the component imports from our package, by interface.
        let mut imported = Vec::new();
        for (name, _) in component.component_type().imports(engine) {
            let Some(rest) = name.strip_prefix(PACKAGE) else {
                if name.starts_with("wasi:") {
                    continue;
                }
                return Err(format!("imports `{name}`, which Relais does not provide"));
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if !compatible(version) {
                return Err(format!(
                    "built against relais:plugin@{version}; this Relais speaks relais:plugin@{WIT_VERSION}: rebuild it with a matching SDK"
                ));
            }
            imported.push(interface.to_string());
        }

        // Read the metadata from a probe instance that can answer no query.
        let all: Vec<String> = CAPABILITIES.iter().map(|c| c.to_string()).collect();
        let probe = linker(engine, &all)?;
        let pre = probe
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot be instantiated: {e:#}"))?;
        let pre = bindings::PluginPre::new(pre)
            .map_err(|e| format!("does not export the `plugin` world: {e:#}"))?;
        let handle = component
            .get_export_index(None, "handle")
            .ok_or("does not export `handle`")?;
        let mut store = new_store(engine, &runtime.limits, Arc::new(NoQueries))?;
        let instance = pre.instance_pre().instantiate(&mut store).map_err(|e| {
            format!(
                "cannot be instantiated: {}",
                describe(&e, &runtime.limits, "")
            )
        })?;
        handle_func(&mut store, &instance, &handle)
            .map_err(|e| format!("its `handle` export does not match the contract: {e:#}"))?;
        let metadata = bindings::Plugin::new(&mut store, &instance)
            .and_then(|plugin| plugin.call_metadata(&mut store))
            .map_err(|e| format!("metadata() failed: {}", describe(&e, &runtime.limits, "")))?;
        let metadata = convert::metadata(metadata);

        if !compatible(&metadata.wit_version) {
            return Err(format!(
                "plugin `{}` was built against relais:plugin@{}; this Relais speaks relais:plugin@{WIT_VERSION}: rebuild it with a matching SDK",
                metadata.name, metadata.wit_version
            ));
        }
        if metadata.name.is_empty()
            || !metadata
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "invalid plugin name `{}`: use letters, digits, `-` and `_`",
                metadata.name
            ));
        }
        for capability in &metadata.capabilities {
            if !CAPABILITIES.contains(&capability.as_str()) {
                return Err(format!(
                    "plugin `{}` asks for unknown capability `{capability}` (Relais grants: {})",
                    metadata.name,
                    CAPABILITIES.join(", ")
                ));
            }
        }
        for interface in &imported {
            let always = interface == "log" || interface == "types";
            if !always && !metadata.capabilities.contains(interface) {
                return Err(format!(
                    "plugin `{}` imports the `{interface}` capability without declaring it (declared: {})",
                    metadata.name,
                    if metadata.capabilities.is_empty() {
                        "none".to_string()
                    } else {
                        metadata.capabilities.join(", ")
                    }
                ));
            }
        }

        // The real linker: only what was declared.
        let granted = linker(engine, &metadata.capabilities)?;
        let pre = granted
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot be instantiated: {e:#}"))?;
        let pre = bindings::PluginPre::new(pre)
            .map_err(|e| format!("does not export the `plugin` world: {e:#}"))?;
        let info = PluginInfo {
            name: metadata.name.clone(),
            version: metadata.version.clone(),
            origin,
            capabilities: metadata.capabilities.clone(),
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
            handle,
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

/// A store for one event, with its limits set.
fn new_store(
    engine: &Engine,
    limits: &Limits,
    host: Arc<dyn Host + Send + Sync>,
) -> Result<Store<State>, String> {
    new_store_with_output(engine, limits, host, None)
}

fn new_store_with_output(
    engine: &Engine,
    limits: &Limits,
    host: Arc<dyn Host + Send + Sync>,
    output: Option<(MemoryOutputPipe, MemoryOutputPipe)>,
) -> Result<Store<State>, String> {
    let mut wasi = WasiCtxBuilder::new();
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if let Some((stdout, stderr)) = output {
        wasi.stdout(stdout).stderr(stderr);
    }
    let state = State {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .trap_on_grow_failure(true)
            .instances(16)
            .memories(16)
            .tables(32)
            .build(),
        host,
        deadline: Instant::now() + limits.wall_clock,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    store.set_fuel(limits.fuel).map_err(|e| e.to_string())?;
    let ticks = (limits.wall_clock.as_millis() / TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    Ok(store)
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
        .map_err(Failure::Fault)?;
        let result = self
            .pre
            .instance_pre()
            .instantiate(&mut store)
            .and_then(|instance| handle_func(&mut store, &instance, &self.handle))
            .and_then(|handle| handle.call(&mut store, (event, config.json())))
            .map(|(result,)| result);
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

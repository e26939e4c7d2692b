//! The wasmtime engine every plugin shares: its configuration (fuel, epoch
//! interruption, the pooling allocator), its epoch ticker, the compile
//! cache on disk and the compiled components kept in memory.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::{EngineError, Limits, LimitsFile, LoadError, MAX_MEMORY_MIB, WasmPlugin};
use crate::plugins::Origin;

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
pub(super) const TICK: Duration = Duration::from_millis(10);

/// The wasmtime engine shared by all plugins, with its epoch ticker.
pub struct Runtime {
    pub(super) engine: Engine,
    pub(super) limits: Limits,
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
    pub fn new(limits: Limits) -> Result<Runtime, EngineError> {
        Self::with_cache(limits, default_cache_dir().as_deref())
    }

    /// An engine with these limits, keeping compiled plugins in `cache`
    /// (none: every start compiles them). A cache that cannot be used is
    /// said in the log and done without. The pooling allocator makes the
    /// fresh instance of every event cheap; where the machine cannot
    /// reserve its address space, instances are allocated on demand
    /// instead.
    pub fn with_cache(limits: Limits, cache: Option<&Path>) -> Result<Runtime, EngineError> {
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
            .map_err(EngineError::EpochThread)?;
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
    ) -> Result<Engine, EngineError> {
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
        Engine::new(&config).map_err(|e| EngineError::Config(e.to_string()))
    }

    /// The limits every event runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The component of `bytes`, compiled once per content.
    pub(super) fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let key = crate::store::sha256_hex(bytes);
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(component) = compiled.get(&key) {
            return Ok(component.clone());
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
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
    ) -> Result<WasmPlugin, LoadError> {
        WasmPlugin::load(self, bytes, origin, overrides)
    }

    /// Compiles and checks the plugin file at `path`.
    pub fn load_file(&self, path: &Path, overrides: &LimitsFile) -> Result<WasmPlugin, LoadError> {
        let bytes = std::fs::read(path)?;
        self.load(&bytes, Origin::File(path.to_path_buf()), overrides)
    }
}

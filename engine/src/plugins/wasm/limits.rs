//! What one event of a plugin may use: fuel, memory, wall clock, output,
//! effects; and `limits.yaml`, which sets them per plugin.

use std::time::Duration;

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

//! The plugin host: the plugins a rule can run, by name.
//!
//! Every plugin implements [`Plugin`]: it receives the event, its rule's
//! config and a read-only [`Host`], and returns effects; it never writes.
//! Plugins are WebAssembly components ([`wasm`]): the bundled ones are built
//! from `plugins/` by this crate's build script and embedded in the binary;
//! customers' plugins load from the plugins directory, and one with a
//! bundled plugin's name replaces it.

mod convert;
mod schema;
pub mod wasm;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use relais_sdk::{Effect, Event, Host};

pub use wasm::{Limits, LimitsFile, LimitsSpec, Runtime, WasmPlugin, default_cache_dir};

use crate::rules::{PluginCatalog, RuleConfig};
use crate::yaml::{Diagnostic, Document};

/// Reads `limits.yaml`; a missing file means the defaults.
fn read_limits(path: &Path) -> Result<LimitsFile, Diagnostic> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LimitsFile::default());
        }
        Err(error) => return Err(Diagnostic::file(path, format!("cannot read: {error}"))),
    };
    let doc = Document::parse(path, &text)?;
    if doc.value().is_null() {
        return Ok(LimitsFile::default());
    }
    doc.deserialize_at(&[])
}

/// The plugins `limits.yaml` names that are not loaded: a typo there
/// would leave a plugin on the default limits without a word.
fn unknown_limits(path: &Path, limits: &LimitsFile, plugins: &Plugins) -> Vec<Diagnostic> {
    let unknown: Vec<&String> = limits
        .plugins
        .keys()
        .filter(|name| plugins.get(name).is_none())
        .collect();
    if unknown.is_empty() {
        return Vec::new();
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(doc) = Document::parse(path, &text) else {
        return Vec::new();
    };
    let names = plugins.names();
    unknown
        .into_iter()
        .map(|name| {
            let mut message = format!("limits for unknown plugin `{name}`");
            match crate::yaml::did_you_mean(name, names.iter().map(String::as_str)) {
                Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
                None => message.push_str(&format!(" (loaded: {})", names.join(", "))),
            }
            doc.key_diagnostic(
                &[
                    crate::yaml::Segment::Key("plugins".into()),
                    crate::yaml::Segment::Key(name.clone()),
                ],
                message,
            )
        })
        .collect()
}

/// A plugin shipped inside Relais.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// Its name, as rules write it.
    pub name: &'static str,
    /// The component, built from its source.
    pub component: &'static [u8],
    /// The JSON Schema of its rules' `config:`.
    pub config_schema: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The bundled plugins.
pub fn bundled() -> &'static [Bundled] {
    BUNDLED
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum Origin {
    /// Shipped inside Relais.
    Bundled,
    /// Loaded from a file of the plugins directory.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Bundled => f.write_str("bundled"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a plugin says of itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    /// Its name, as rules write it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where it came from.
    pub origin: Origin,
    /// The query capabilities it was granted.
    pub capabilities: Vec<String>,
    /// The triggers it handles: rules may run it on those only.
    pub triggers: Vec<String>,
}

/// Why a plugin produced no effects for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The plugin returned an error: it refuses the event (a business
    /// outcome, not a fault).
    Refused(String),
    /// The plugin trapped, looped, exhausted its memory or broke a limit.
    Fault(String),
    /// The host failed while answering the plugin (the store...): retry.
    Host(String),
}

impl Failure {
    /// `refused`, `fault` or `host`, for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Refused(_) => "refused",
            Failure::Fault(_) => "fault",
            Failure::Host(_) => "host",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(message) => write!(f, "refused the event: {message}"),
            Failure::Fault(message) => write!(f, "plugin fault: {message}"),
            Failure::Host(message) => write!(f, "{message}"),
        }
    }
}

/// A plugin: decides effects from an event, never acts itself.
pub trait Plugin: Send + Sync {
    /// Name, version, origin and capabilities.
    fn info(&self) -> &PluginInfo;
    /// Checks a rule's config before the rule set goes live.
    fn check_config(&self, config: &serde_json::Value) -> Result<(), String>;
    /// Decides what to do about `event`.
    fn handle(
        &self,
        event: &Event,
        config: &RuleConfig,
        host: Arc<dyn Host + Send + Sync>,
    ) -> Result<Vec<Effect>, Failure>;
}

/// The file of per-plugin limits, in the plugins directory.
pub const LIMITS_FILE: &str = "limits.yaml";

/// The plugins rules can run, by name.
#[derive(Clone, Default)]
pub struct Plugins {
    by_name: BTreeMap<String, Arc<dyn Plugin>>,
}

impl fmt::Debug for Plugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Plugins {
    /// The bundled plugins, under these limits.
    pub fn bundled(runtime: &Runtime, limits: &LimitsFile) -> Result<Plugins, Diagnostic> {
        let mut plugins = Plugins::default();
        for Bundled {
            name,
            component: bytes,
            ..
        } in BUNDLED
        {
            let plugin = runtime
                .load(bytes, Origin::Bundled, limits)
                .map_err(|reason| {
                    Diagnostic::file(Path::new(&format!("(bundled {name})")), reason.to_string())
                })?;
            plugins.add(Arc::new(plugin));
        }
        Ok(plugins)
    }

    /// The bundled plugins, plus the `*.wasm` files of `dir` (a missing
    /// directory adds none), under the limits of `dir/limits.yaml`. A file
    /// with a bundled plugin's name replaces it. What cannot be loaded is
    /// returned apart, each with why; the rest loads.
    pub fn load(runtime: &Runtime, dir: &Path) -> (Plugins, Vec<Diagnostic>) {
        let mut errors = Vec::new();
        let limits = match read_limits(&dir.join(LIMITS_FILE)) {
            Ok(limits) => limits,
            Err(error) => {
                errors.push(error);
                LimitsFile::default()
            }
        };
        let mut plugins = match Plugins::bundled(runtime, &limits) {
            Ok(plugins) => plugins,
            Err(error) => {
                errors.push(error);
                Plugins::default()
            }
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return (plugins, errors),
            Err(error) => {
                errors.push(Diagnostic::file(
                    dir,
                    format!("cannot read the plugins directory: {error}"),
                ));
                return (plugins, errors);
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        files.sort();
        let mut from_files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            match runtime.load_file(&path, &limits) {
                Ok(plugin) => {
                    let name = plugin.info().name.clone();
                    if let Some(first) = from_files.insert(name.clone(), path.clone()) {
                        let reason =
                            format!("plugin `{name}` is already loaded from {}", first.display());
                        errors.push(Diagnostic::file(&path, reason));
                        continue;
                    }
                    if plugins
                        .get(&name)
                        .is_some_and(|p| p.info().origin == Origin::Bundled)
                    {
                        tracing::info!(plugin = %name, path = %path.display(), "replaces the bundled plugin");
                    }
                    plugins.add(Arc::new(plugin));
                }
                Err(reason) => errors.push(Diagnostic::file(&path, reason.to_string())),
            }
        }
        errors.extend(unknown_limits(&dir.join(LIMITS_FILE), &limits, &plugins));
        (plugins, errors)
    }

    /// Adds or replaces a plugin.
    pub fn add(&mut self, plugin: Arc<dyn Plugin>) {
        self.by_name.insert(plugin.info().name.clone(), plugin);
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.by_name.get(name)
    }

    /// Every plugin's info, by name.
    pub fn infos(&self) -> Vec<&PluginInfo> {
        self.by_name.values().map(|p| p.info()).collect()
    }
}

impl PluginCatalog for Plugins {
    fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    fn triggers(&self, plugin: &str) -> Vec<String> {
        self.get(plugin)
            .map(|plugin| plugin.info().triggers.clone())
            .unwrap_or_default()
    }

    fn check_config(&self, plugin: &str, config: &serde_json::Value) -> Result<(), String> {
        match self.get(plugin) {
            Some(plugin) => plugin.check_config(config),
            None => Err(format!("unknown plugin `{plugin}`")),
        }
    }
}

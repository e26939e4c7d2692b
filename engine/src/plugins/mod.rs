//! The plugin host: the plugins a rule can run, by name.
//!
//! Every plugin implements [`Plugin`]: it receives the event, its rule's
//! config and a read-only [`Host`], and returns effects; it never writes.
//! The bundled plugins are registered here; customers' plugins load from
//! the plugins directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use relais_sdk::{Effect, Event, Host, PluginError};

use crate::rules::PluginCatalog;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum Origin {
    /// Shipped inside Relais.
    Bundled,
    /// Loaded from a file of the plugins directory.
    File(PathBuf),
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
    /// The host queries it uses.
    pub capabilities: Vec<String>,
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
        config: &serde_json::Value,
        host: &dyn Host,
    ) -> Result<Vec<Effect>, PluginError>;
}

/// Failure to load the plugins directory.
#[derive(Debug, thiserror::Error)]
pub enum PluginLoadError {
    /// The directory exists but cannot be read.
    #[error("cannot read the plugins directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A plugin file that this build cannot load.
    #[error("{path}: {reason}")]
    Unloadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The plugins rules can run, by name.
#[derive(Clone, Default)]
pub struct Plugins {
    by_name: BTreeMap<String, Arc<dyn Plugin>>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Plugins {
    /// The bundled plugins.
    pub fn bundled() -> Plugins {
        let mut plugins = Plugins::default();
        plugins.add(Arc::new(bundled::Catchmail::new()));
        plugins
    }

    /// The bundled plugins, plus those of `dir` (a missing directory adds
    /// none). A plugin of `dir` with a bundled plugin's name replaces it.
    pub fn load(dir: &Path) -> Result<Plugins, PluginLoadError> {
        let plugins = Plugins::bundled();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(plugins),
            Err(source) => {
                return Err(PluginLoadError::Directory {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        if let Some(path) = files
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "wasm"))
        {
            return Err(PluginLoadError::Unloadable {
                path,
                reason: "WebAssembly plugins are not supported by this build of Relais".to_string(),
            });
        }
        Ok(plugins)
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

    fn check_config(&self, plugin: &str, config: &serde_json::Value) -> Result<(), String> {
        match self.get(plugin) {
            Some(plugin) => plugin.check_config(config),
            None => Err(format!("unknown plugin `{plugin}`")),
        }
    }
}

mod bundled {
    //! Bundled plugins linked into the engine.

    use super::*;

    /// CatchMail: a mail with `#NUMBER *message*` in its subject becomes a
    /// direct message on that request.
    pub struct Catchmail {
        info: PluginInfo,
    }

    impl Catchmail {
        pub fn new() -> Self {
            Catchmail {
                info: PluginInfo {
                    name: relais_plugin_catchmail::NAME.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    origin: Origin::Bundled,
                    capabilities: vec![
                        "requests".into(),
                        "directory".into(),
                        "settings".into(),
                        "log".into(),
                    ],
                },
            }
        }
    }

    impl Plugin for Catchmail {
        fn info(&self) -> &PluginInfo {
            &self.info
        }

        fn check_config(&self, config: &serde_json::Value) -> Result<(), String> {
            relais_plugin_catchmail::Config::from_value(config)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }

        fn handle(
            &self,
            event: &Event,
            config: &serde_json::Value,
            host: &dyn Host,
        ) -> Result<Vec<Effect>, PluginError> {
            relais_plugin_catchmail::decide(event, config, host)
        }
    }
}

//! What `relais status` and `GET /status` show of a running engine: the
//! rule set in use (version, hash, files), its plugins and templates, the
//! last reload and why it failed, and each source's state. The daemon
//! writes it into the store when it changes (and every half minute), so
//! that `relais status` reads it with no API configured.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::reload::Active;
use crate::store::prelude::*;
use crate::tasks::{Call, Task};

/// State of an account, for `relais status` and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// Connecting or reconnecting.
    Connecting,
    /// Connected and waiting for mail.
    Connected,
    /// The last attempt failed; retrying.
    Failing(String),
}

/// How often the status is written even when it did not change: readers
/// tell a stopped engine from a quiet one by it.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// A source of mail, as the status shows it.
#[derive(Debug)]
pub struct Source {
    kind: &'static str,
    name: String,
    state: Option<Arc<Mutex<SourceState>>>,
}

impl Source {
    /// The spool folder.
    pub fn spool(dir: &Path) -> Source {
        Source {
            kind: "spool",
            name: dir.display().to_string(),
            state: None,
        }
    }

    /// An IMAP account and its live state.
    pub fn imap(name: &str, state: Arc<Mutex<SourceState>>) -> Source {
        Source {
            kind: "imap",
            name: name.to_string(),
            state: Some(state),
        }
    }

    fn view(&self) -> SourceView {
        let (state, error) = match &self.state {
            None => ("watching", None),
            Some(state) => match &*state.lock().unwrap_or_else(PoisonError::into_inner) {
                SourceState::Connecting => ("connecting", None),
                SourceState::Connected => ("connected", None),
                SourceState::Failing(why) => ("failing", Some(why.clone())),
            },
        };
        SourceView {
            kind: self.kind,
            name: self.name.clone(),
            state,
            error,
        }
    }
}

/// The engine's status, read live.
#[derive(Debug)]
pub struct Status {
    active: Arc<Active>,
    sources: Vec<Source>,
    started_at: String,
}

impl Status {
    /// The status of an engine running `active` with these sources.
    pub fn new(active: Arc<Active>, sources: Vec<Source>) -> Status {
        Status {
            active,
            sources,
            started_at: crate::store::now(),
        }
    }

    /// The status, `state` being `running` or `stopped`.
    pub fn snapshot(&self, state: &'static str) -> StatusView {
        let generation = self.active.current();
        let plugins = generation
            .plugins
            .infos()
            .into_iter()
            .map(|info| PluginView {
                name: info.name.clone(),
                version: info.version.clone(),
                from: info.origin.to_string(),
                capabilities: info.capabilities.clone(),
            })
            .collect();
        let rules = generation
            .rules
            .rules
            .iter()
            .map(|r| RuleView {
                id: r.id.clone(),
                on: r.trigger.as_str().to_string(),
                source: r.source.clone(),
                schedule: r.schedule_key(),
            })
            .collect();
        StatusView {
            state,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_at.clone(),
            rule_set: RuleSetView {
                version: generation.version,
                hash: generation.rules.hash.clone(),
                fingerprint: generation.fingerprint.clone(),
                loaded_at: generation.loaded_at.clone(),
                rules,
                templates: generation.templates.files().len(),
            },
            plugins,
            last_reload: self.active.last_attempt(),
            sources: self.sources.iter().map(Source::view).collect(),
        }
    }
}

/// What `GET /status` answers and `relais status` reads.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct StatusView {
    /// `running`, or `stopped` once the engine stopped.
    pub state: &'static str,
    /// The engine's process id.
    pub pid: u32,
    /// Relais's version.
    pub version: &'static str,
    /// When the engine started (RFC 3339).
    pub started_at: String,
    /// The rule set in use.
    pub rule_set: RuleSetView,
    /// The plugins loaded.
    pub plugins: Vec<PluginView>,
    /// The last reload attempt, when there was one.
    pub last_reload: Option<crate::reload::Attempt>,
    /// Each mail source and its state.
    pub sources: Vec<SourceView>,
}

/// The rule set in use.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RuleSetView {
    /// Counts the sets loaded since start, from 1.
    pub version: u64,
    /// The hash of the rule files.
    pub hash: String,
    /// The hash of every file the set was read from (rules, plugins,
    /// templates).
    pub fingerprint: String,
    /// When it went live (RFC 3339).
    pub loaded_at: String,
    /// Its rules, in order.
    pub rules: Vec<RuleView>,
    /// How many templates it has.
    pub templates: usize,
}

/// A rule of the set in use.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RuleView {
    /// Its id.
    pub id: String,
    /// Its trigger.
    pub on: String,
    /// Where it is defined (`file:line`).
    pub source: String,
    /// For a scheduled rule, its schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// A loaded plugin.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct PluginView {
    /// Its name, as rules write it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where it came from: `bundled` or its file.
    pub from: String,
    /// The query capabilities it was granted.
    pub capabilities: Vec<String>,
}

/// A mail source.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SourceView {
    /// `spool` or `imap`.
    pub kind: &'static str,
    /// The spool folder, or the account's name.
    pub name: String,
    /// `watching` (a spool), `connecting`, `connected` or `failing`.
    pub state: &'static str,
    /// Why it is failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Writes the status into the store, through the dispatcher (the store's
/// one writer), whenever it changes, and at least every half minute,
/// until `shutdown`; then once more, as stopped.
pub async fn report(
    status: Arc<Status>,
    tasks: mpsc::Sender<Task>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last: Option<Value> = None;
    let mut written = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => true,
            _ = ticks.tick() => false,
        };
        let snapshot =
            serde_json::to_value(status.snapshot(if stopping { "stopped" } else { "running" }))
                .unwrap_or_default();
        let due = written.elapsed() >= HEARTBEAT;
        if stopping || due || last.as_ref() != Some(&snapshot) {
            let mut stamped = snapshot.clone();
            stamped["updated-at"] = json!(crate::store::now());
            if write(&tasks, stamped).await {
                written = tokio::time::Instant::now();
                last = Some(snapshot);
            }
        }
        if stopping {
            break;
        }
    }
}

async fn write(tasks: &mpsc::Sender<Task>, status: Value) -> bool {
    let (done, answer) = oneshot::channel();
    let text = status.to_string();
    let call = Call {
        work: Box::new(move |dispatcher| {
            dispatcher.store.set_engine_status(&text)?;
            Ok(Value::Null)
        }),
        done,
    };
    if tasks.send(Task::Call(call)).await.is_err() {
        return false;
    }
    match answer.await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "cannot record the engine's status");
            false
        }
        Err(_) => false,
    }
}

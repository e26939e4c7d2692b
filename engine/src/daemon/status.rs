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

use super::dispatcher::{Call, Task};
use super::imap::SourceState;
use crate::reload::Active;

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

    fn view(&self) -> Value {
        let (state, error) = match &self.state {
            None => ("watching".to_string(), None),
            Some(state) => match &*state.lock().unwrap_or_else(PoisonError::into_inner) {
                SourceState::Connecting => ("connecting".to_string(), None),
                SourceState::Connected => ("connected".to_string(), None),
                SourceState::Failing(why) => ("failing".to_string(), Some(why.clone())),
            },
        };
        let mut view = json!({ "kind": self.kind, "name": self.name, "state": state });
        if let Some(error) = error {
            view["error"] = Value::String(error);
        }
        view
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

    /// The status as JSON.
    pub fn snapshot(&self) -> Value {
        let generation = self.active.current();
        let plugins: Vec<Value> = generation
            .plugins
            .infos()
            .into_iter()
            .map(|info| {
                json!({
                    "name": info.name,
                    "version": info.version,
                    "from": info.origin.to_string(),
                    "capabilities": info.capabilities,
                })
            })
            .collect();
        json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "started-at": self.started_at,
            "rule-set": {
                "version": generation.version,
                "hash": generation.rules.hash,
                "fingerprint": generation.fingerprint,
                "loaded-at": generation.loaded_at,
                "rules": generation.rules.rules.iter().map(|r| {
                    let mut rule = json!({
                        "id": r.id, "on": r.trigger.as_str(), "source": r.source,
                    });
                    if let Some(schedule) = r.schedule_key() {
                        rule["schedule"] = json!(schedule);
                    }
                    rule
                }).collect::<Vec<_>>(),
                "templates": generation.templates.files().len(),
            },
            "plugins": plugins,
            "last-reload": self.active.last_attempt(),
            "sources": self.sources.iter().map(Source::view).collect::<Vec<_>>(),
        })
    }
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
        let mut snapshot = status.snapshot();
        snapshot["state"] = json!(if stopping { "stopped" } else { "running" });
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

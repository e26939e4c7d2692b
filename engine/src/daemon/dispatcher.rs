//! The dispatcher thread: the one writer of the store. Sources hand it mails
//! as jobs, and the HTTP API hands it calls (a request saved, a message
//! posted...); each waits for the answer, which comes only once what it
//! wrote is committed. When work arrives faster than one commit per event
//! allows, the tasks waiting are processed as a batch that shares one
//! commit (each event still in its own savepoint, all or nothing), so a
//! disk sync is paid per batch, not per event.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::dispatch::{Dispatcher, Options, Report};
use crate::reload::Active;
use crate::sources::mail::{MailError, ParsedMail};
use crate::store::{ImapReceipt, Store};

/// One mail to process.
#[derive(Debug)]
pub struct Job {
    /// The raw message.
    pub raw: Vec<u8>,
    /// The message parsed, by the source (so parsing runs beside the
    /// dispatcher rather than on its thread).
    pub parsed: Result<ParsedMail, MailError>,
    /// Where it came from, for the trace (a file, `imap://account/uid`).
    pub source: String,
    /// Its IMAP origin, recorded with its processing.
    pub receipt: Option<ImapReceipt>,
    /// Where the outcome goes: the report once committed, or why nothing
    /// was committed (then the source must not acknowledge the mail).
    pub done: oneshot::Sender<Result<Report, String>>,
}

/// Why a call was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The input is wrong (`field` names what, when one field is); nothing
    /// was written.
    Invalid {
        /// The field at fault.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// What the call names does not exist.
    NotFound(String),
    /// The data does not allow it now (a locked conversation...).
    Conflict(String),
    /// The engine failed (the store...); nothing was written.
    Internal(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Invalid {
                field: Some(field),
                message,
            } => write!(f, "{field}: {message}"),
            CallError::Invalid {
                field: None,
                message,
            }
            | CallError::NotFound(message)
            | CallError::Conflict(message)
            | CallError::Internal(message) => f.write_str(message),
        }
    }
}

impl From<crate::store::StoreError> for CallError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Refused(message) => CallError::Conflict(message),
            other => CallError::Internal(other.to_string()),
        }
    }
}

/// What a call answers: a JSON document.
pub type CallResult = Result<serde_json::Value, CallError>;

/// Work the HTTP API (or another caller) runs on the dispatcher thread.
pub type Work = Box<dyn FnOnce(&mut Dispatcher<'_>) -> CallResult + Send>;

/// One call: its work and where its answer goes, once committed.
pub struct Call {
    /// The work.
    pub work: Work,
    /// The answer.
    pub done: oneshot::Sender<CallResult>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Call")
    }
}

/// A task for the dispatcher.
#[derive(Debug)]
pub enum Task {
    /// A mail from a source.
    Mail(Box<Job>),
    /// A call.
    Call(Call),
}

/// What the dispatcher runs with.
#[derive(Debug)]
pub struct Engine {
    /// The store it writes.
    pub store: Store,
    /// The rule set, plugins and templates in use, swapped on reload.
    pub active: Arc<Active>,
    /// Counts what was processed.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Limits and identity.
    pub options: Options,
    /// Most events per commit.
    pub batch: usize,
    /// Told after each commit: the outbox sender, which may have mail.
    pub wake: Arc<Notify>,
}

/// Starts the dispatcher thread. It stops when every sender of the returned
/// channel is dropped, after finishing the tasks already handed to it.
pub fn spawn(engine: Engine) -> std::io::Result<(mpsc::Sender<Task>, JoinHandle<()>)> {
    let (sender, receiver) = mpsc::channel(engine.batch.max(1) * 4);
    let handle = std::thread::Builder::new()
        .name("relais-dispatch".into())
        .spawn(move || run(engine, receiver))?;
    Ok((sender, handle))
}

fn run(mut engine: Engine, mut tasks: mpsc::Receiver<Task>) {
    while let Some(first) = tasks.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < engine.batch {
            match tasks.try_recv() {
                Ok(task) => batch.push(task),
                Err(_) => break,
            }
        }
        let results = process(&mut engine, &mut batch);
        engine.wake.notify_one();
        for (task, result) in batch.into_iter().zip(results) {
            // A caller that gave up waiting will ask again.
            match (task, result) {
                (Task::Mail(job), Outcome::Mail(result)) => {
                    let _ = job.done.send(result);
                }
                (Task::Call(call), Outcome::Call(result)) => {
                    let _ = call.done.send(result);
                }
                _ => unreachable!("each task gets an outcome of its own kind"),
            }
        }
    }
}

// Short-lived, one per task of a batch: not worth boxing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Mail(Result<Report, String>),
    Call(CallResult),
}

impl Outcome {
    fn failed(task: &Task, error: &str) -> Outcome {
        match task {
            Task::Mail(_) => Outcome::Mail(Err(error.to_string())),
            Task::Call(_) => Outcome::Call(Err(CallError::Internal(error.to_string()))),
        }
    }
}

fn process(engine: &mut Engine, batch: &mut [Task]) -> Vec<Outcome> {
    let batched = batch.len() > 1;
    if batched && let Err(error) = engine.store.begin_batch() {
        let error = format!("cannot start a transaction: {error}");
        return batch.iter().map(|t| Outcome::failed(t, &error)).collect();
    }
    // The batch runs on the set in use when it starts, to its end: a
    // reload meanwhile applies to the next batch.
    let generation = engine.active.current();
    let mut dispatcher = Dispatcher {
        store: &mut engine.store,
        rules: &generation.rules,
        plugins: &generation.plugins,
        templates: &generation.templates,
        options: &engine.options,
    };
    let mut results: Vec<Outcome> = batch
        .iter_mut()
        .map(|task| match task {
            Task::Mail(job) => {
                let parsed = std::mem::replace(&mut job.parsed, Err(MailError::Empty));
                let result = dispatcher
                    .handle_received(
                        &job.raw,
                        parsed,
                        Some(&job.source),
                        job.receipt.as_ref(),
                        false,
                    )
                    .map_err(|e| e.to_string());
                if let Ok(report) = &result {
                    log_report(report);
                    engine.metrics.record(report);
                }
                Outcome::Mail(result)
            }
            Task::Call(call) => {
                let work =
                    std::mem::replace(&mut call.work, Box::new(|_| Ok(serde_json::Value::Null)));
                Outcome::Call(work(&mut dispatcher))
            }
        })
        .collect();
    if batched && let Err(error) = engine.store.commit_batch() {
        engine.store.rollback_batch();
        tracing::error!(error = %error, events = batch.len(), "batch commit failed; nothing of it was written");
        let error = format!("commit failed: {error}");
        results = batch.iter().map(|t| Outcome::failed(t, &error)).collect();
    }
    results
}

/// One log line per event, for those who follow the daemon's output.
pub fn log_report(report: &Report) {
    tracing::info!(
        run = report.run,
        trigger = %report.trigger,
        outcome = report.outcome.as_str(),
        summary = %report.summary,
        "event processed"
    );
}

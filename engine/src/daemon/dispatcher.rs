//! The dispatcher thread: the one writer of the store. Sources hand it mails
//! as jobs and wait for the answer before they acknowledge anything. When
//! mail arrives faster than one commit per mail allows, the jobs waiting are
//! processed as a batch that shares one commit (each event still in its own
//! savepoint, all or nothing), so a disk sync is paid per batch, not per
//! mail.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::dispatch::{Dispatcher, Options, Report};
use crate::plugins::Plugins;
use crate::rules::RuleSet;
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

/// What the dispatcher runs with.
#[derive(Debug)]
pub struct Engine {
    /// The store it writes.
    pub store: Store,
    /// The rule set.
    pub rules: Arc<RuleSet>,
    /// The plugins.
    pub plugins: Arc<Plugins>,
    /// Limits and identity.
    pub options: Options,
    /// Most events per commit.
    pub batch: usize,
    /// Told after each commit: the outbox sender, which may have mail.
    pub wake: Arc<Notify>,
}

/// Starts the dispatcher thread. It stops when every sender of the returned
/// channel is dropped, after finishing the jobs already handed to it.
pub fn spawn(engine: Engine) -> std::io::Result<(mpsc::Sender<Job>, JoinHandle<()>)> {
    let (sender, receiver) = mpsc::channel(engine.batch.max(1) * 4);
    let handle = std::thread::Builder::new()
        .name("relais-dispatch".into())
        .spawn(move || run(engine, receiver))?;
    Ok((sender, handle))
}

fn run(mut engine: Engine, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < engine.batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = process(&mut engine, &mut batch);
        engine.wake.notify_one();
        for (job, result) in batch.into_iter().zip(results) {
            // A source that gave up waiting will fetch the mail again.
            let _ = job.done.send(result);
        }
    }
}

fn process(engine: &mut Engine, batch: &mut [Job]) -> Vec<Result<Report, String>> {
    let batched = batch.len() > 1;
    if batched && let Err(error) = engine.store.begin_batch() {
        let error = format!("cannot start a transaction: {error}");
        return batch.iter().map(|_| Err(error.clone())).collect();
    }
    let mut dispatcher = Dispatcher {
        store: &mut engine.store,
        rules: &engine.rules,
        plugins: &engine.plugins,
        options: &engine.options,
    };
    let mut results: Vec<Result<Report, String>> = batch
        .iter_mut()
        .map(|job| {
            let parsed = std::mem::replace(&mut job.parsed, Err(MailError::Empty));
            dispatcher
                .handle_received(
                    &job.raw,
                    parsed,
                    Some(&job.source),
                    job.receipt.as_ref(),
                    false,
                )
                .map_err(|e| e.to_string())
        })
        .collect();
    if batched && let Err(error) = engine.store.commit_batch() {
        engine.store.rollback_batch();
        tracing::error!(error = %error, events = batch.len(), "batch commit failed; nothing of it was written");
        let error = format!("commit failed: {error}");
        results = batch.iter().map(|_| Err(error.clone())).collect();
    }
    for report in results.iter().flatten() {
        tracing::info!(
            run = report.run,
            outcome = report.outcome.as_str(),
            summary = %report.summary,
            "event processed"
        );
    }
    results
}

//! The dispatcher thread: the one writer of the store. Sources hand it mails
//! as jobs, and the HTTP API hands it calls (a request saved, a message
//! posted...); each waits for the answer, which comes only once what it
//! wrote is committed. When work arrives faster than one commit per event
//! allows, the tasks waiting are processed as a batch that shares one
//! commit (each event still in its own savepoint, all or nothing), so a
//! disk sync is paid per batch, not per event.
//!
//! With reader connections (`Engine::readers`), plugins decide about mail
//! on worker threads, one per reader, and the writer only commits: a slow
//! plugin holds up the mails that share a key with its own (its thread, its
//! sender, its request; see [`super::order`]), not the others nor the
//! calls.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use tokio::sync::{Notify, mpsc};

use super::order::{Order, Ticket, mail_keys};
use crate::dispatch::{DecidedMail, Decider, Dispatcher, Options, Report};
use crate::reload::Active;
use crate::sources::mail::MailError;
use crate::store::Store;

pub use crate::tasks::{Call, CallError, CallResult, Job, Task, Work};

/// What the dispatcher runs with.
#[derive(Debug)]
pub struct Engine {
    /// The store it writes.
    pub store: Store,
    /// Read-only connections to the same store, one per worker thread on
    /// which plugins decide about mail. None: mail is decided on the
    /// writer, one at a time.
    pub readers: Vec<Store>,
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
        .spawn(move || {
            if engine.readers.is_empty() {
                run(engine, receiver);
            } else {
                run_beside_deciders(engine, receiver);
            }
        })?;
    Ok((sender, handle))
}

fn run(mut engine: Engine, mut tasks: mpsc::Receiver<Task>) {
    let item = |task: Task| match task {
        Task::Mail(job) => Item::Job(job),
        Task::Call(call) => Item::Call(call),
    };
    while let Some(first) = tasks.blocking_recv() {
        let mut batch = vec![item(first)];
        while batch.len() < engine.batch {
            match tasks.try_recv() {
                Ok(task) => batch.push(item(task)),
                Err(_) => break,
            }
        }
        let results = process(&mut engine, &mut batch, None);
        engine.wake.notify_one();
        for (item, result) in batch.into_iter().zip(results) {
            // A caller that gave up waiting will ask again.
            match (item, result) {
                (Item::Job(job), Outcome::Mail(result)) => {
                    let _ = job.done.send(result);
                }
                (Item::Call(call), Outcome::Call(result)) => {
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
    fn failed(item: &Item, error: &str) -> Outcome {
        match item {
            Item::Job(_) | Item::Decided(_) | Item::Inline(..) => {
                Outcome::Mail(Err(error.to_string()))
            }
            Item::Call(_) => Outcome::Call(Err(CallError::Internal(error.to_string()))),
        }
    }
}

/// A decision quicker than this lets the mails that wait for it be decided
/// by the writer in the same batch ([`Order::follower`]).
const QUICK: Duration = Duration::from_millis(10);

/// Runs a batch in one transaction: each mail decided here (or by a
/// worker) and committed, each call run. With `order`, the mails parked
/// behind quick ones of the batch join it, decided here.
fn process(
    engine: &mut Engine,
    batch: &mut Vec<Item>,
    mut order: Option<&mut Order<Box<Job>, Decided>>,
) -> Vec<Outcome> {
    let batched = batch.len() > 1 || order.is_some();
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
    let mut results = Vec::with_capacity(batch.len());
    let mut index = 0;
    while index < batch.len() {
        let started = Instant::now();
        let result = match &mut batch[index] {
            Item::Call(call) => {
                let work =
                    std::mem::replace(&mut call.work, Box::new(|_| Ok(serde_json::Value::Null)));
                results.push(Outcome::Call(work(&mut dispatcher)));
                index += 1;
                continue;
            }
            Item::Job(job) | Item::Inline(_, job) => {
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
            }
            Item::Decided(decided) => {
                let decision = std::mem::replace(&mut decided.decision, Err(String::new()));
                let job = &decided.job;
                decision.and_then(|decision| {
                    dispatcher
                        .commit_mail(decision, &job.raw, job.receipt.as_ref(), false)
                        .map_err(|e| e.to_string())
                })
            }
        };
        if let Ok(report) = &result {
            log_report(report);
            engine.metrics.record(report);
        }
        if let Some(order) = order.as_deref_mut()
            && result.is_ok()
        {
            let written = match &batch[index] {
                Item::Decided(decided) => Some((decided.ticket.clone(), decided.took < QUICK)),
                Item::Inline(ticket, _) => Some((ticket.clone(), started.elapsed() < QUICK)),
                Item::Job(_) | Item::Call(_) => None,
            };
            if let Some((ticket, quick)) = written {
                order.in_batch(&ticket, quick);
                while batch.len() < engine.batch {
                    let Some((ticket, job)) = order.follower() else {
                        break;
                    };
                    batch.push(Item::Inline(ticket, job));
                }
            }
        }
        results.push(Outcome::Mail(result));
        index += 1;
    }
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

/// A mail handed to a worker.
struct ToDecide {
    ticket: Ticket,
    job: Box<Job>,
}

/// A mail decided by a worker, for the writer to commit.
struct Decided {
    ticket: Ticket,
    job: Box<Job>,
    decision: Result<DecidedMail, String>,
    /// How long the decision took.
    took: Duration,
}

/// What the writer commits in one batch.
enum Item {
    /// A call, run on the writer.
    Call(Call),
    /// A mail, decided on the writer then committed.
    Job(Box<Job>),
    /// A mail a worker decided, committed.
    Decided(Box<Decided>),
    /// A mail that waited for quick ones of the batch, decided on the
    /// writer after them.
    Inline(Ticket, Box<Job>),
}

/// The writer with workers beside it: it admits mail in arrival order
/// ([`Order`]), hands each mail to a worker when the mails it waits for
/// are committed, commits what the workers decided and the calls, in
/// batches, and answers each once committed.
fn run_beside_deciders(mut engine: Engine, mut tasks: mpsc::Receiver<Task>) {
    let (input, inputs) = crossbeam_channel::bounded::<Task>(engine.batch.max(1));
    // The sources' channel is tokio's: a thread of its own moves what
    // arrives to where the writer can wait for it and for decisions alike.
    let forwarder = std::thread::Builder::new()
        .name("relais-intake".into())
        .spawn(move || {
            while let Some(task) = tasks.blocking_recv() {
                if input.send(task).is_err() {
                    break;
                }
            }
        });
    let Ok(forwarder) = forwarder else {
        tracing::error!("cannot start the intake thread");
        return;
    };
    let (work, works) = crossbeam_channel::unbounded::<ToDecide>();
    let (done, decisions) = crossbeam_channel::unbounded::<Decided>();
    let mut workers = Vec::new();
    for (n, reader) in std::mem::take(&mut engine.readers).into_iter().enumerate() {
        let works = works.clone();
        let done = done.clone();
        let active = engine.active.clone();
        let options = engine.options.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("relais-decide-{n}"))
            .spawn(move || decide_on(&reader, &active, &options, &works, &done));
        match spawned {
            Ok(worker) => workers.push(worker),
            Err(error) => tracing::error!(error = %error, "cannot start a plugin worker"),
        }
    }
    drop(done);
    drop(works);
    if workers.is_empty() {
        tracing::error!("no plugin worker could start");
        return;
    }

    let mut order: Order<Box<Job>, Decided> = Order::default();
    let mut inputs = Some(inputs);
    let never = crossbeam_channel::never();
    let mut ready: Vec<Item> = Vec::new();
    loop {
        if ready.is_empty() {
            if inputs.is_none() && order.is_idle() {
                break;
            }
            let open = inputs.as_ref().unwrap_or(&never);
            select! {
                recv(open) -> task => match task {
                    Ok(task) => admit(&mut order, task, &work, &mut ready),
                    Err(_) => inputs = None,
                },
                recv(decisions) -> decided => match decided {
                    Ok(decided) => arrive(&mut order, decided, &mut ready),
                    Err(_) => break,
                },
            }
        }
        // Whatever else is there joins the batch.
        while ready.len() < engine.batch {
            let task = inputs.as_ref().map(Receiver::try_recv);
            if let Some(Ok(task)) = task {
                admit(&mut order, task, &work, &mut ready);
                continue;
            }
            if let Some(Err(crossbeam_channel::TryRecvError::Disconnected)) = task {
                inputs = None;
            }
            match decisions.try_recv() {
                Ok(decided) => arrive(&mut order, decided, &mut ready),
                Err(_) => break,
            }
        }
        if ready.is_empty() {
            continue;
        }
        let mut batch = std::mem::take(&mut ready);
        let results = process(&mut engine, &mut batch, Some(&mut order));
        order.end_batch();
        engine.wake.notify_one();
        for (item, result) in batch.into_iter().zip(results) {
            let (ticket, job) = match item {
                Item::Call(call) => {
                    if let Outcome::Call(result) = result {
                        let _ = call.done.send(result);
                    }
                    continue;
                }
                Item::Decided(decided) => (decided.ticket, decided.job),
                Item::Inline(ticket, job) => (ticket, job),
                Item::Job(_) => unreachable!("mail is decided by workers or inline here"),
            };
            let released = order.committed(&ticket);
            if let Outcome::Mail(result) = result {
                let _ = job.done.send(result);
            }
            for (ticket, job) in released.to_decide {
                send_to_workers(&work, ticket, job, &mut order, &mut ready);
            }
            ready.extend(
                released
                    .to_commit
                    .into_iter()
                    .map(|(_, decided)| Item::Decided(Box::new(decided))),
            );
        }
    }
    drop(work);
    for worker in workers {
        let _ = worker.join();
    }
    let _ = forwarder.join();
}

/// A worker: decides each mail it is handed, on the rule set in use, and
/// hands the decision back.
fn decide_on(
    reader: &Store,
    active: &crate::reload::Active,
    options: &Options,
    works: &Receiver<ToDecide>,
    done: &Sender<Decided>,
) {
    for ToDecide { ticket, mut job } in works.iter() {
        let generation = active.current();
        let decider = Decider {
            store: reader,
            rules: &generation.rules,
            plugins: &generation.plugins,
            templates: &generation.templates,
            options,
        };
        let parsed = std::mem::replace(&mut job.parsed, Err(MailError::Empty));
        let started = Instant::now();
        let decision = decider
            .decide_mail(&job.raw, parsed, Some(&job.source))
            .map_err(|e| e.to_string());
        if done
            .send(Decided {
                ticket,
                job,
                decision,
                took: started.elapsed(),
            })
            .is_err()
        {
            break;
        }
    }
}

/// Takes a task in: a call is ready to commit; a mail goes to the workers
/// or waits for the mails it shares a key with.
fn admit(
    order: &mut Order<Box<Job>, Decided>,
    task: Task,
    work: &Sender<ToDecide>,
    ready: &mut Vec<Item>,
) {
    match task {
        Task::Call(call) => ready.push(Item::Call(call)),
        Task::Mail(job) => {
            let keys = match &job.parsed {
                Ok(parsed) => mail_keys(&parsed.mail),
                Err(_) => vec![format!(
                    "id:{}",
                    crate::sources::mail::derived_message_id(&job.raw)
                )],
            };
            let turn = job
                .receipt
                .as_ref()
                .map(|receipt| format!("imap:{}", receipt.account));
            if let Some((ticket, job)) = order.admit(keys, turn, job) {
                send_to_workers(work, ticket, job, order, ready);
            }
        }
    }
}

fn send_to_workers(
    work: &Sender<ToDecide>,
    ticket: Ticket,
    job: Box<Job>,
    order: &mut Order<Box<Job>, Decided>,
    ready: &mut Vec<Item>,
) {
    if let Err(crossbeam_channel::SendError(ToDecide { ticket, job })) =
        work.send(ToDecide { ticket, job })
    {
        // No worker left: the mail is given up, for its source to retry.
        arrive(
            order,
            Decided {
                ticket,
                job,
                decision: Err("no plugin worker is running".into()),
                took: Duration::ZERO,
            },
            ready,
        );
    }
}

/// A decision came back: committed when its turn comes.
fn arrive(order: &mut Order<Box<Job>, Decided>, decided: Decided, ready: &mut Vec<Item>) {
    let ticket = decided.ticket.clone();
    if let Some((_, decided)) = order.decided(ticket, decided) {
        ready.push(Item::Decided(Box::new(decided)));
    }
}

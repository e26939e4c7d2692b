//! The dispatcher thread: the one writer of the store. Sources hand it mails
//! as jobs, and the HTTP API hands it calls (a request saved, a message
//! posted...); each waits for the answer, which comes only once what it
//! wrote is committed. When work arrives faster than one commit per event
//! allows, the tasks waiting are processed as a batch that shares one
//! commit (each event still in its own savepoint, all or nothing), so a
//! disk sync is paid per batch, not per event.
//!
//! With reader connections (`Engine::readers`), plugins decide about mail
//! and commands (a request saved) on worker threads, one per reader, and
//! the writer only commits: a slow plugin holds up the events that share a
//! key with its own (a mail's thread, its sender, a request; see
//! [`super::order`]), not the others nor the calls.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use tokio::sync::{Notify, mpsc};

use super::order::{Order, Ticket};
use crate::app::mail_keys;
use crate::dispatch::{DecidedEvent, DecidedMail, Decider, Dispatcher, Options, Report};
use crate::reload::Active;
use crate::sources::mail::MailError;
use crate::store::Store;

use crate::app::manual::{self, Written};
use crate::store::prelude::*;
pub use crate::tasks::{
    Call, CallError, CallResult, Command, CommandTask, Job, Task, Work, WriteTask,
};

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
        Task::Mail(job) => Item::Here(None, Pending::Mail(job)),
        Task::Command(task) => Item::Here(None, Pending::Command(task)),
        Task::Call(call) => Item::Writer(OnWriter::Call(call)),
        Task::Write(task) => Item::Writer(OnWriter::Write(task)),
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
            match item {
                Item::Writer(work) => answer_call(work, result),
                Item::Here(_, pending) => answer(pending, result),
                Item::Decided(decided) => answer(decided.pending, result),
            }
        }
    }
}

/// Something to decide: a mail, or a command.
#[derive(Debug)]
enum Pending {
    Mail(Box<Job>),
    Command(Box<CommandTask>),
}

/// What a worker decided.
// One per event, moved once from its worker to the writer: not worth boxing.
#[allow(clippy::large_enum_variant)]
enum Decision {
    Mail(Result<DecidedMail, String>),
    Command(Result<DecidedEvent, CallError>),
}

/// What came of one item of a batch.
// Short-lived, one per task of a batch: not worth boxing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Mail(Result<Report, String>),
    Command(Result<Report, CallError>),
    Call(CallResult),
    Write(Result<Written, CallError>),
}

impl Outcome {
    fn failed(item: &Item, error: &str) -> Outcome {
        let pending = match item {
            Item::Writer(OnWriter::Call(_)) => {
                return Outcome::Call(Err(CallError::Internal(error.to_string())));
            }
            Item::Writer(OnWriter::Write(_)) => {
                return Outcome::Write(Err(CallError::Internal(error.to_string())));
            }
            Item::Here(_, pending) => pending,
            Item::Decided(decided) => &decided.pending,
        };
        match pending {
            Pending::Mail(_) => Outcome::Mail(Err(error.to_string())),
            Pending::Command(_) => Outcome::Command(Err(CallError::Internal(error.to_string()))),
        }
    }

    fn report(&self) -> Option<&Report> {
        match self {
            Outcome::Mail(Ok(report)) | Outcome::Command(Ok(report)) => Some(report),
            _ => None,
        }
    }
}

/// Sends a mail's or a command's outcome to whoever waits for it.
fn answer(pending: Pending, outcome: Outcome) {
    match (pending, outcome) {
        (Pending::Mail(job), Outcome::Mail(result)) => {
            let _ = job.done.send(result);
        }
        (Pending::Command(task), Outcome::Command(result)) => {
            let _ = task.done.send(result);
        }
        _ => unreachable!("each task gets an outcome of its own kind"),
    }
}

fn answer_call(work: OnWriter, outcome: Outcome) {
    match (work, outcome) {
        (OnWriter::Call(call), Outcome::Call(result)) => {
            let _ = call.done.send(result);
        }
        (OnWriter::Write(task), Outcome::Write(result)) => {
            let _ = task.done.send(result);
        }
        _ => unreachable!("each task gets an outcome of its own kind"),
    }
}

/// A decision quicker than this lets the events that wait for it be
/// decided by the writer in the same batch ([`Order::follower`]).
const QUICK: Duration = Duration::from_millis(10);

/// Runs a batch in one transaction: each mail or command decided here (or
/// by a worker) and committed, each call run. With `order`, the events
/// parked behind quick ones of the batch join it, decided here.
fn process(
    engine: &mut Engine,
    batch: &mut Vec<Item>,
    mut order: Option<&mut Order<Pending, Decided>>,
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
        let outcome = match &mut batch[index] {
            Item::Writer(OnWriter::Call(call)) => {
                let work =
                    std::mem::replace(&mut call.work, Box::new(|_| Ok(serde_json::Value::Null)));
                results.push(Outcome::Call(work(&mut dispatcher)));
                index += 1;
                continue;
            }
            Item::Writer(OnWriter::Write(task)) => {
                let context = manual::Context {
                    identity: &dispatcher.options.identity,
                    templates: Some(dispatcher.templates),
                    via: task.via,
                };
                results.push(Outcome::Write(task.write.run(dispatcher.store, &context)));
                index += 1;
                continue;
            }
            Item::Here(_, Pending::Mail(job)) => {
                let parsed = std::mem::replace(&mut job.parsed, Err(MailError::Empty));
                Outcome::Mail(
                    dispatcher
                        .handle_received(
                            &job.raw,
                            parsed,
                            Some(&job.source),
                            job.receipt.as_ref(),
                            false,
                        )
                        .map_err(|e| e.to_string()),
                )
            }
            Item::Here(_, Pending::Command(task)) => {
                Outcome::Command(task.command.run(&mut dispatcher))
            }
            Item::Decided(decided) => {
                let decision = std::mem::replace(
                    &mut decided.decision,
                    Decision::Mail(Err("already committed".into())),
                );
                match (&decided.pending, decision) {
                    (Pending::Mail(job), Decision::Mail(decision)) => {
                        Outcome::Mail(decision.and_then(|decision| {
                            dispatcher
                                .commit_mail(decision, &job.raw, job.receipt.as_ref(), false)
                                .map_err(|e| e.to_string())
                        }))
                    }
                    (Pending::Command(task), Decision::Command(decision)) => Outcome::Command(
                        decision
                            .and_then(|decision| task.command.commit(&mut dispatcher, decision)),
                    ),
                    _ => unreachable!("a decision is of its task's kind"),
                }
            }
        };
        if let Some(report) = outcome.report() {
            log_report(report);
            engine.metrics.record(report);
        }
        if let Some(order) = order.as_deref_mut()
            && outcome.report().is_some()
        {
            let written = match &batch[index] {
                Item::Decided(decided) => Some((decided.ticket.clone(), decided.took < QUICK)),
                Item::Here(Some(ticket), _) => Some((ticket.clone(), started.elapsed() < QUICK)),
                Item::Here(None, _) | Item::Writer(_) => None,
            };
            if let Some((ticket, quick)) = written {
                order.in_batch(&ticket, quick);
                while batch.len() < engine.batch {
                    let Some((ticket, pending)) = order.follower() else {
                        break;
                    };
                    batch.push(Item::Here(Some(ticket), pending));
                }
            }
        }
        results.push(outcome);
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

/// An event handed to a worker.
struct ToDecide {
    ticket: Ticket,
    pending: Pending,
}

/// An event decided by a worker, for the writer to commit.
struct Decided {
    ticket: Ticket,
    pending: Pending,
    decision: Decision,
    /// How long the decision took.
    took: Duration,
}

/// What runs on the writer and decides nothing.
#[derive(Debug)]
enum OnWriter {
    /// A call.
    Call(Call),
    /// A person's write.
    Write(Box<WriteTask>),
}

/// What the writer commits in one batch.
enum Item {
    /// A call or a person's write, run on the writer.
    Writer(OnWriter),
    /// A mail or a command decided on the writer, then committed: on the
    /// writer alone, or (with its ticket) after quick ones of the batch it
    /// waited for.
    Here(Option<Ticket>, Pending),
    /// A mail or a command a worker decided, committed.
    Decided(Box<Decided>),
}

/// The writer with workers beside it: it admits mail and commands in
/// arrival order ([`Order`]), hands each to a worker when the events it
/// waits for are committed, commits what the workers decided and the
/// calls, in batches, and answers each once committed.
fn run_beside_deciders(mut engine: Engine, mut tasks: mpsc::Receiver<Task>) {
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
        tracing::error!("no plugin worker could start: plugins decide on the writer");
        return run(engine, tasks);
    }
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

    let mut order: Order<Pending, Decided> = Order::default();
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
            let (ticket, pending) = match item {
                Item::Writer(work) => {
                    answer_call(work, result);
                    continue;
                }
                Item::Decided(decided) => (decided.ticket, decided.pending),
                Item::Here(Some(ticket), pending) => (ticket, pending),
                Item::Here(None, _) => unreachable!("every event here has its ticket"),
            };
            let released = order.committed(&ticket);
            answer(pending, result);
            for (ticket, pending) in released.to_decide {
                send_to_workers(&work, ticket, pending, &mut order, &mut ready);
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

/// A worker: decides each event it is handed, on the rule set in use, and
/// hands the decision back.
fn decide_on(
    reader: &Store,
    active: &crate::reload::Active,
    options: &Options,
    works: &Receiver<ToDecide>,
    done: &Sender<Decided>,
) {
    for ToDecide {
        ticket,
        mut pending,
    } in works.iter()
    {
        let generation = active.current();
        let decider = Decider {
            store: reader,
            rules: &generation.rules,
            plugins: &generation.plugins,
            templates: &generation.templates,
            options,
        };
        let started = Instant::now();
        // A panic here is a fault of the engine, not of a plugin (a trap is
        // an error): the event fails, for its source to retry, and what
        // waits behind it goes on.
        let decided =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &mut pending {
                Pending::Mail(job) => {
                    let parsed = std::mem::replace(&mut job.parsed, Err(MailError::Empty));
                    Decision::Mail(
                        decider
                            .decide_mail(&job.raw, parsed, Some(&job.source))
                            .map_err(|e| e.to_string()),
                    )
                }
                Pending::Command(task) => Decision::Command(task.command.decide(&decider)),
            }));
        let decision = decided.unwrap_or_else(|_| {
            let fault = "the plugin worker failed while deciding";
            tracing::error!("{fault}");
            match &pending {
                Pending::Mail(_) => Decision::Mail(Err(fault.into())),
                Pending::Command(_) => Decision::Command(Err(CallError::Internal(fault.into()))),
            }
        });
        let decided = Decided {
            ticket,
            pending,
            decision,
            took: started.elapsed(),
        };
        if done.send(decided).is_err() {
            break;
        }
    }
}

/// Takes a task in: a call is ready to commit; a mail or a command goes to
/// the workers, or waits for the events it shares a key with.
fn admit(
    order: &mut Order<Pending, Decided>,
    task: Task,
    work: &Sender<ToDecide>,
    ready: &mut Vec<Item>,
) {
    let (keys, turn, pending) = match task {
        Task::Call(call) => {
            ready.push(Item::Writer(OnWriter::Call(call)));
            return;
        }
        Task::Write(task) => {
            ready.push(Item::Writer(OnWriter::Write(task)));
            return;
        }
        Task::Command(task) => (task.command.keys(), None, Pending::Command(task)),
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
            (keys, turn, Pending::Mail(job))
        }
    };
    if let Some((ticket, pending)) = order.admit(keys, turn, pending) {
        send_to_workers(work, ticket, pending, order, ready);
    }
}

fn send_to_workers(
    work: &Sender<ToDecide>,
    ticket: Ticket,
    pending: Pending,
    order: &mut Order<Pending, Decided>,
    ready: &mut Vec<Item>,
) {
    if let Err(crossbeam_channel::SendError(ToDecide { ticket, pending })) =
        work.send(ToDecide { ticket, pending })
    {
        // No worker left: given up, for its source to retry.
        let no_worker = "no plugin worker is running";
        let decision = match pending {
            Pending::Mail(_) => Decision::Mail(Err(no_worker.into())),
            Pending::Command(_) => Decision::Command(Err(CallError::Internal(no_worker.into()))),
        };
        arrive(
            order,
            Decided {
                ticket,
                pending,
                decision,
                took: Duration::ZERO,
            },
            ready,
        );
    }
}

/// A decision came back: committed when its turn comes.
fn arrive(order: &mut Order<Pending, Decided>, decided: Decided, ready: &mut Vec<Item>) {
    let ticket = decided.ticket.clone();
    if let Some((_, decided)) = order.decided(ticket, decided) {
        ready.push(Item::Decided(Box::new(decided)));
    }
}

//! Throughput of the whole CatchMail path in the daemon: a spool of mails
//! (read, parse, store, rules, the wasm plugin, effects, outbox rows, run
//! traces, file removed) on a real SQLite file with
//! `synchronous=FULL`. Half the mails post a direct message, half (from
//! unknown senders) get a failure notice queued in the outbox.
//!
//! Three runs: plugins deciding on the writer thread (the floor of the
//! design before plugin workers), on workers beside it (the daemon's
//! way), and on workers with one mail in a hundred held 20 ms by a slow
//! plugin, against the same on the writer thread.
//!
//! Run: `cargo bench -p relais --bench spool` (`MAILS=N` to change the
//! spool size, 10,000 by default; `WORKERS=N` the plugin workers, one per
//! core by default; `RELAIS_BENCH_SHORT=1` runs 40, as CI does).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relais::daemon::{dispatcher, spool};
use relais::plugins::{Limits, Runtime};
use relais::store::prelude::*;
use relais::{Options, Plugins, Store};
use tokio::sync::{Notify, watch};

/// How long the slow plugin holds one mail in a hundred.
const SLOW_MS: u64 = 20;

/// What one run measured.
struct Measured {
    elapsed: Duration,
    /// Each run's duration (µs), newest first.
    durations: Vec<u64>,
}

/// Fills a spool with `mails` mails and runs the dispatcher with
/// `workers` plugin workers (0: plugins decide on the writer) until every
/// mail is processed; with `slow`, one mail in a hundred is held
/// [`SLOW_MS`] by the `sleepy` test plugin.
fn run(mails: usize, workers: usize, slow: bool) -> Measured {
    let root = common::root();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("relais.db");
    let mut store = Store::open(&db).expect("store");
    common::import_demo(&mut store);

    let spool_dir = dir.path().join("spool");
    std::fs::create_dir_all(&spool_dir).expect("spool");
    let good = common::demo_mail("01-contact-message.eml");
    let unknown = common::demo_mail("04-unknown-sender.eml");
    for n in 0..mails {
        // Refused mails come from senders of their own (each gets its
        // notice: the per-sender rate limit holds back repeats) and name
        // requests of their own, so they share no ordering key.
        let text = if n % 2 == 0 {
            good.clone()
        } else {
            let subject = if slow && n % 100 == 1 {
                format!("Subject: sleep {SLOW_MS} #{:08} *message*", 30_000_000 + n)
            } else {
                format!("Subject: #{:08} *message*", 30_000_000 + n)
            };
            unknown
                .replace("someone@", &format!("someone-{n}@"))
                .replace("Subject: #23010203 *message*", &subject)
        };
        let text = common::with_message_id(&text, &format!("bench-{n}@dupont.example"));
        std::fs::write(spool_dir.join(format!("{n:06}.eml")), text).expect("write mail");
    }

    let runtime = Runtime::new(Limits::default()).expect("runtime");
    let plugins_dir = dir.path().join("plugins");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&plugins_dir).expect("plugins dir");
    std::fs::create_dir_all(&rules_dir).expect("rules dir");
    for file in ["catchmail.yaml", "ticket-linking.yaml", "alerts.yaml"] {
        std::fs::copy(root.join("rules").join(file), rules_dir.join(file)).expect("rules");
    }
    if slow {
        std::fs::copy(
            common::test_plugin("sleepy"),
            plugins_dir.join("sleepy.wasm"),
        )
        .expect("sleepy");
        std::fs::write(
            rules_dir.join("slow.yaml"),
            "rules:\n  - id: slow\n    on: mail-received\n    when: { subject: { matches: '^sleep ' } }\n    run: { plugin: sleepy }\n",
        )
        .expect("slow rule");
    }
    let plugins = Plugins::load(&runtime, &plugins_dir).0;
    let rules = relais::rules::load_dir(&rules_dir, &plugins).expect("rules");
    // The demo mails carry the receiving server's verdict.
    let options = Options {
        trusted_authserv_ids: vec!["mx.acme.example".to_string()],
        ..Options::default()
    };
    let readers = (0..workers)
        .map(|_| Store::open(&db).expect("reader"))
        .collect();
    let (jobs, thread) = dispatcher::spawn(dispatcher::Engine {
        store,
        readers,
        active: Arc::new(relais::reload::Active::new(
            relais::reload::Generation::new(rules, plugins, Arc::new(relais::Templates::new())),
        )),
        metrics: Arc::new(relais::metrics::Metrics::new()),
        options,
        batch: 256,
        wake: Arc::new(Notify::new()),
    })
    .expect("dispatcher");

    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let (stop, shutdown) = watch::channel(false);
    let started = Instant::now();
    let source = io.spawn(spool::run(
        spool_dir.clone(),
        jobs,
        None,
        spool::Settings::default(),
        shutdown,
    ));
    // Done when every mail has its run and has left the spool folder; the
    // store is polled, not the folder.
    let progress = Store::open(&db).expect("store");
    loop {
        let runs = progress
            .runs(1)
            .ok()
            .and_then(|r| r.first().map(|r| r.id))
            .unwrap_or(0);
        if runs as usize >= mails && spool::list(&spool_dir).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    io.block_on(source).expect("source stops");
    thread.join().expect("dispatcher stops");

    check(&db, mails);
    let durations = Store::open(&db)
        .expect("store")
        .runs(mails)
        .expect("runs")
        .iter()
        .map(|r| r.duration_us)
        .collect();
    Measured { elapsed, durations }
}

/// Each good mail posted its message, each refused one queued its notice.
fn check(db: &Path, mails: usize) {
    let check = Store::open(db).expect("store");
    let messages = check.message_count().expect("count");
    let queued = check.outbox_depth().expect("depth");
    assert_eq!(
        messages as usize,
        mails.div_ceil(2),
        "one message per good mail"
    );
    assert_eq!(queued as usize, mails / 2, "one notice per refused mail");
}

fn rate(mails: usize, measured: &Measured) -> f64 {
    mails as f64 / measured.elapsed.as_secs_f64()
}

fn main() {
    let mails = common::sized("MAILS", 10_000, 40);
    // The daemon's default, one per core; `WORKERS=N` to compare.
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let writer = run(mails, 0, false);
    let beside = run(mails, workers, false);
    let slow_writer = run(mails, 0, true);
    let slow_beside = run(mails, workers, true);

    // Newest first: the last tenth of the spool against its first tenth,
    // to see what a growing store costs each event.
    let durations = &writer.durations;
    let busy: u64 = durations.iter().sum();
    let tenth = (durations.len() / 10).max(1);
    let mean = |slice: &[u64]| slice.iter().sum::<u64>() as f64 / slice.len().max(1) as f64;
    let (last, first) = (
        mean(&durations[..tenth]),
        mean(&durations[durations.len() - tenth..]),
    );
    println!("spool of {mails} CatchMail mails (half messages, half failure notices)");
    println!(
        "dispatcher time per event before commit, plugins on the writer: {:.0} µs",
        busy as f64 / mails as f64
    );
    println!(
        "  first tenth of the spool {first:.0} µs, last tenth {last:.0} µs ({:+.0}%)",
        (last / first - 1.0) * 100.0
    );
    println!("{:<52} {:>8} {:>10}", "", "seconds", "mails/s");
    let row = |name: &str, measured: &Measured| {
        println!(
            "{name:<52} {:>8.2} {:>10.0}",
            measured.elapsed.as_secs_f64(),
            rate(mails, measured)
        );
    };
    row("floor: plugins decide on the writer thread", &writer);
    row(
        &format!("plugins decide on {workers} workers (the daemon)"),
        &beside,
    );
    row(
        &format!("1 mail in 100 held {SLOW_MS} ms, plugins on the writer"),
        &slow_writer,
    );
    row(
        &format!("1 mail in 100 held {SLOW_MS} ms, {workers} workers"),
        &slow_beside,
    );
    println!(
        "throughput with a slow plugin among fast ones: {:.2}x on workers against the writer",
        rate(mails, &slow_beside) / rate(mails, &slow_writer)
    );
}

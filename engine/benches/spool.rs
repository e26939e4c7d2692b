//! Throughput of the whole CatchMail path in the daemon: a spool of mails
//! (read, parse, store, rules, the wasm plugin, effects, outbox rows, run
//! traces, file removed) on a real SQLite file with
//! `synchronous=FULL`. Half the mails post a direct message, half (from
//! unknown senders) get a failure notice queued in the outbox.
//!
//! Run: `cargo bench -p relais --bench spool` (`MAILS=N` to change the
//! spool size, 10,000 by default; `RELAIS_BENCH_SHORT=1` runs 40, as CI
//! does).

mod common;

use std::sync::Arc;
use std::time::Instant;

use relais::daemon::{dispatcher, spool};
use relais::plugins::{Limits, Runtime};
use relais::{Options, Plugins, Store};
use tokio::sync::{Notify, watch};

fn main() {
    let mails = common::sized("MAILS", 10_000, 40);
    let root = common::root();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("relais.db")).expect("store");
    common::import_demo(&mut store);

    let spool_dir = dir.path().join("spool");
    std::fs::create_dir_all(&spool_dir).expect("spool");
    let good = common::demo_mail("01-contact-message.eml");
    let unknown = common::demo_mail("04-unknown-sender.eml");
    for n in 0..mails {
        // Refused mails come from senders of their own: each gets its
        // notice (the per-sender rate limit holds back repeats).
        let text = if n % 2 == 0 {
            good.clone()
        } else {
            unknown.replace("someone@", &format!("someone-{n}@"))
        };
        let text = common::with_message_id(&text, &format!("bench-{n}@dupont.example"));
        std::fs::write(spool_dir.join(format!("{n:06}.eml")), text).expect("write mail");
    }

    let runtime = Runtime::new(Limits::default()).expect("runtime");
    let plugins = Plugins::load(&runtime, &dir.path().join("plugins")).0;
    let rules = relais::rules::load_dir(&root.join("rules"), &plugins).expect("shipped rules");
    // The demo mails carry the receiving server's verdict.
    let options = Options {
        trusted_authserv_ids: vec!["mx.acme.example".to_string()],
        ..Options::default()
    };
    let (jobs, thread) = dispatcher::spawn(dispatcher::Engine {
        store,
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
    // store is polled, not the 10,000-entry `done/` folder, which would
    // cost the machine more than the engine.
    let progress = Store::open(&dir.path().join("relais.db")).expect("store");
    loop {
        let runs = progress
            .runs(1)
            .ok()
            .and_then(|r| r.first().map(|r| r.id))
            .unwrap_or(0);
        if runs as usize >= mails && spool::list(&spool_dir).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    io.block_on(source).expect("source stops");
    thread.join().expect("dispatcher stops");

    let check = Store::open(&dir.path().join("relais.db")).expect("store");
    let messages = check.message_count().expect("count");
    let queued = check.outbox_depth().expect("depth");
    assert_eq!(
        messages as usize,
        mails.div_ceil(2),
        "one message per good mail"
    );
    assert_eq!(queued as usize, mails / 2, "one notice per refused mail");
    // Newest first: the last tenth of the spool against its first tenth,
    // to see what a growing store costs each event.
    let durations: Vec<u64> = check
        .runs(mails)
        .expect("runs")
        .iter()
        .map(|r| r.duration_us)
        .collect();
    let busy: u64 = durations.iter().sum();
    let tenth = (durations.len() / 10).max(1);
    let mean = |slice: &[u64]| slice.iter().sum::<u64>() as f64 / slice.len().max(1) as f64;
    let (last, first) = (
        mean(&durations[..tenth]),
        mean(&durations[durations.len() - tenth..]),
    );
    println!("spool of {mails} CatchMail mails (half messages, half failure notices)");
    println!(
        "dispatcher time per event before commit: {:.0} µs",
        busy as f64 / mails as f64
    );
    println!(
        "dispatcher time per event, first tenth of the spool {first:.0} µs, last tenth {last:.0} µs ({:+.0}%)",
        (last / first - 1.0) * 100.0
    );
    println!(
        "processed in {:.2} s: {:.0} mails/s ({:.0} µs per mail)",
        elapsed.as_secs_f64(),
        mails as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / mails as f64
    );
}

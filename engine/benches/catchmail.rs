//! Per-event cost of the bundled CatchMail plugin: a fresh wasm store,
//! instantiation, the call with its host queries (an in-memory SQLite
//! store), and the effects back, beside its floor in the same engine (a
//! component that decides nothing: a fresh sandbox, the event in, nothing
//! out) and the same decision logic linked natively.
//!
//! Run: `cargo bench -p relais --bench catchmail` (set `ITERATIONS` to
//! change the sample count; `RELAIS_BENCH_SHORT=1` runs 50, as CI does).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use relais::plugins::{Limits, Runtime};
use relais::rules::RuleConfig;
use relais::{Plugins, Store, StoreHost};
use relais_sdk::Event;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn measure(iterations: usize, mut call: impl FnMut()) -> (Duration, Duration, Duration) {
    for _ in 0..iterations / 10 {
        call();
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        call();
        samples.push(started.elapsed());
    }
    samples.sort();
    (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.iter().sum::<Duration>() / iterations as u32,
    )
}

fn main() {
    let iterations = common::sized("ITERATIONS", 20_000, 50);
    let mut store = Store::open_in_memory().expect("store");
    common::import_demo(&mut store);
    let raw = common::demo_mail("01-contact-message.eml").into_bytes();
    // Received as the daemon receives it: the receiving server's verdict
    // (a DMARC pass) read from the server it trusts.
    let mut parsed = relais::sources::mail::parse(&raw, "catchmail").expect("mail");
    parsed.mail.authentication = relais::sources::auth::verdict(
        parsed.own_results.as_deref(),
        &parsed.auth_headers,
        &["mx.acme.example".to_string()],
        parsed.mail.from.as_ref().map(|from| from.email.as_str()),
    );
    let event = Event::MailReceived(parsed.mail);
    let config = RuleConfig::new(
        serde_json::json!({ "max-body-chars": 4000, "language": "fr", "own-addresses": ["catchmail@acme.example"] }),
    );

    let runtime = Runtime::new(Limits::default()).expect("runtime");
    let plugins = Plugins::bundled(&runtime, &Default::default()).expect("bundled plugins");
    let plugin = plugins.get("catchmail").expect("catchmail").clone();
    let host = Arc::new(StoreHost::new(
        store.clone(),
        Arc::new(relais::Templates::new()),
        "catchmail",
    ));

    // Both ways decide the same: the message posted, the mail linked to
    // its request.
    let effects = plugin
        .handle(&event, &config, host.clone())
        .expect("CatchMail decides");
    let kinds: Vec<&str> = effects.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, ["post-message", "link-mail"], "{effects:?}");
    let native =
        relais_plugin_catchmail::decide(&event, config.value(), host.as_ref()).expect("decides");
    assert_eq!(native, effects, "the component decides as the native code");
    let wasm = measure(iterations, || {
        let effects = plugin
            .handle(&event, &config, host.clone())
            .expect("decides");
        std::hint::black_box(effects);
        host.take_logs();
    });
    // The same without a `config:` block: what reading the config costs
    // the guest, once per event in its fresh sandbox.
    let defaults = RuleConfig::default();
    let kinds_by_default: Vec<&str> = plugin
        .handle(&event, &defaults, host.clone())
        .expect("CatchMail decides on its defaults")
        .iter()
        .map(|e| e.kind())
        .collect();
    assert_eq!(kinds_by_default, kinds, "the defaults decide the same");
    let unconfigured = measure(iterations, || {
        let effects = plugin
            .handle(&event, &defaults, host.clone())
            .expect("decides");
        std::hint::black_box(effects);
        host.take_logs();
    });
    // The floor: a plugin that decides nothing, on the same event, in the
    // same engine: a fresh sandbox, the event in, nothing out.
    let plugins_dir = tempfile::tempdir().expect("plugins dir");
    std::fs::copy(
        common::test_plugin("noop"),
        plugins_dir.path().join("noop.wasm"),
    )
    .expect("copy");
    let (loaded, errors) = Plugins::load(&runtime, plugins_dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    let noop = loaded.get("noop").expect("noop").clone();
    let empty = RuleConfig::new(serde_json::json!({}));
    assert!(
        noop.handle(&event, &empty, host.clone())
            .expect("noop")
            .is_empty()
    );
    let floor = measure(iterations, || {
        let effects = noop.handle(&event, &empty, host.clone()).expect("decides");
        std::hint::black_box(effects);
        host.take_logs();
    });
    let native = measure(iterations, || {
        let effects = relais_plugin_catchmail::decide(&event, config.value(), host.as_ref())
            .expect("decides");
        std::hint::black_box(effects);
        host.take_logs();
    });

    println!("CatchMail, one typical mail (post-message), {iterations} events each");
    println!("{:<34} {:>10} {:>10} {:>10}", "", "median", "p99", "mean");
    let row = |name: &str, (median, p99, mean): (Duration, Duration, Duration)| {
        println!(
            "{name:<34} {:>8.1}µs {:>8.1}µs {:>8.1}µs",
            micros(median),
            micros(p99),
            micros(mean)
        );
    };
    row("wasm component (fresh store)", wasm);
    row("  the same, no config block", unconfigured);
    row("floor: a component deciding nothing", floor);
    row("native (same logic, linked)", native);
    println!(
        "CatchMail's call, median: {:.1} µs, {:.1} µs over the floor (target ≤ 15 µs: {})",
        micros(wasm.0),
        micros(wasm.0) - micros(floor.0),
        if micros(wasm.0) <= 15.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "ratio wasm/native (median): {:.1}x",
        micros(wasm.0) / micros(native.0)
    );
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

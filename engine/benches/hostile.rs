//! Hostile input costs what ordinary input costs: each case is measured
//! beside its floor, in the same run, through the same code (the
//! dispatcher with the shipped rules and the bundled plugins on a real
//! SQLite file; the loader of `relais check` and reloads).
//!
//! - a mail whose References names 100,000 ids (1 MB) against an ordinary
//!   reply of the same thread;
//! - a 23 MB text mail to CatchMail against the demo's CatchMail mail;
//! - an import nested 200,000 deep (400 KB) against the demo directory;
//! - a template with nested `range(100000)` loops against a shipped one.
//!
//! Run: `cargo bench -p relais --bench hostile` (`ITERATIONS` changes the
//! sample count; `RELAIS_BENCH_SHORT=1` runs a few of each, as CI does, to
//! check that every case still behaves, not how fast).

mod common;

use std::time::{Duration, Instant};

use relais::{Dispatcher, Outcome};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median of `iterations` runs of `call`, after one to warm up.
fn measure(iterations: usize, mut call: impl FnMut(usize)) -> Duration {
    call(usize::MAX);
    median(
        (0..iterations)
            .map(|i| {
                let started = Instant::now();
                call(i);
                started.elapsed()
            })
            .collect(),
    )
}

fn line(what: &str, floor: Duration, hostile: Duration) {
    println!(
        "  {what:<44} {:>10.2?}  floor {:>10.2?}  ratio {:>6.2}",
        hostile,
        floor,
        hostile.as_secs_f64() / floor.as_secs_f64().max(1e-9)
    );
}

fn main() {
    let iterations = common::sized("ITERATIONS", 30, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, loaded, options) =
        common::demo_engine(dir.path(), &common::root().join("rules"));
    let mut dispatcher = Dispatcher {
        store: &mut store,
        rules: &loaded.rules,
        plugins: &loaded.plugins,
        templates: &loaded.templates,
        options: &options,
    };
    println!(
        "hostile input beside its floor, median of {iterations} (dispatcher, shipped rules, SQLite file):"
    );

    // References: an ordinary reply against one naming 100,000 ids.
    let references: String = (0..100_000)
        .map(|i| format!("<r{i}@x.example>"))
        .collect::<Vec<_>>()
        .join("\r\n ");
    let reply = |id: String, refs: &str| {
        format!(
            "From: jeanne@dupont.example\r\nTo: support@acme.example\r\nSubject: Re: [#23010203] Imprimante\r\n\
             Message-ID: <{id}>\r\nReferences: {refs}\r\n\r\nToujours en panne.\r\n"
        )
    };
    let mut processed = |raw: String| {
        let report = dispatcher
            .handle_mail(raw.as_bytes(), "support", None, false)
            .expect("store");
        assert_eq!(report.outcome, Outcome::Applied, "{report:?}");
        report
    };
    let floor = measure(iterations, |i| {
        processed(reply(format!("plain-{i}@dupont.example"), "<r0@x.example>"));
    });
    let hostile = measure(iterations, |i| {
        let report = processed(reply(format!("refs-{i}@dupont.example"), &references));
        assert!(report.warnings.iter().any(|w| w.contains("100000 ids")));
    });
    line("mail with 100,000 References (1 MB)", floor, hostile);
    // The same megabyte as text: what reading and storing 1 MB costs.
    let same_size = measure(iterations, |i| {
        let mut raw = reply(format!("sized-{i}@dupont.example"), "<r0@x.example>");
        raw.push_str(&"x".repeat(references.len()));
        processed(raw);
    });
    line(
        "  beside a 1 MB mail with one reference",
        same_size,
        hostile,
    );

    // A 23 MB text to CatchMail: refused as too long, the plugin given a
    // bounded text.
    let catchmail = |id: String, body: &str| {
        format!(
            "Authentication-Results: mx.acme.example; dmarc=pass header.from=dupont.example\r\n\
             From: jeanne@dupont.example\r\nTo: catchmail@acme.example\r\nSubject: #23010203 *message*\r\n\
             Message-ID: <{id}>\r\n\r\n{body}\r\n"
        )
    };
    let big = "Une ligne de texte assez longue pour peser.\r\n".repeat(530_000);
    let floor = measure(iterations, |i| {
        processed(catchmail(format!("small-{i}@dupont.example"), "Bonjour"));
    });
    let hostile = measure(iterations.min(5), |i| {
        let report = processed(catchmail(format!("big-{i}@dupont.example"), &big));
        assert!(
            report
                .effects
                .iter()
                .any(|e| matches!(e, relais_sdk::Effect::ReplyFailure { reason, .. } if reason == "body-too-long"))
        );
    });
    line(
        &format!("{} MB text mail to CatchMail", big.len() / 1_000_000),
        floor,
        hostile,
    );
    println!(
        "  (the 23 MB mail's floor is its size: parsing and storing 23 MB; what matters is that it ends with body-too-long)"
    );

    // Import: the demo directory against 400 KB nested 200,000 deep.
    let demo = std::fs::read_to_string(common::root().join("demo/directory.yaml")).expect("demo");
    let deep = format!(
        "companies: {}{}\n",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let path = std::path::Path::new("import.yaml");
    let floor = measure(iterations, |_| {
        relais::directory::parse(path, &demo, dispatcher.store).expect("valid");
    });
    let hostile = measure(iterations, |_| {
        let errors = relais::directory::parse(path, &deep, dispatcher.store).expect_err("refused");
        assert!(errors[0].message.contains("nesting deeper"));
    });
    line("import nested 200,000 deep (400 KB)", floor, hostile);

    // Templates: a shipped one against nested range(100000) loops, as
    // `relais check` and a reload load them.
    let shipped = std::fs::read_to_string(common::root().join("templates/alert-opened.fr.jinja"))
        .expect("template");
    let bomb =
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}";
    let file = std::path::Path::new("t.jinja");
    let floor = measure(iterations, |_| {
        relais::Templates::new()
            .add("t", shipped.clone(), file)
            .expect("valid");
    });
    let hostile = measure(iterations.min(5), |_| {
        let error = relais::Templates::new()
            .add("t", bomb.to_string(), file)
            .expect_err("refused");
        assert!(error.message.contains("too much work"));
    });
    line("template with nested range(100000) loops", floor, hostile);
    println!(
        "  (a template's floor is one rendering; the bomb is stopped at its fuel, 2,000,000 steps)"
    );
}

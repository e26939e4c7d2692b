//! What rules that do not match cost: the dispatcher's time per CatchMail
//! mail with the shipped rules (4), its floor, and with 1,000 more that do
//! not match the mail (half for other desks' addresses, which the index
//! leaves out unseen, half on subject words, which are evaluated), on the
//! same store, in the same run.
//!
//! Target: 1,000 non-matching rules cost at most 2x what 4 rules cost.
//!
//! Run: `cargo bench -p relais --bench rules_scale` (`MAILS=N` per rule
//! set, 2,000 by default; `RELAIS_BENCH_SHORT=1` runs 20, as CI does).

mod common;

use std::time::{Duration, Instant};

use relais::{Dispatcher, Outcome};

/// Median and mean dispatcher time per mail for `mails` CatchMail mails
/// through the rules of `rules_dir`; every mail posts one message.
fn per_mail(rules_dir: &std::path::Path, mails: usize, tag: &str) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, loaded, options) = common::demo_engine(dir.path(), rules_dir);
    let rule_count = loaded
        .rules
        .for_trigger(relais::rules::Trigger::MailReceived)
        .count();
    let mut dispatcher = Dispatcher {
        store: &mut store,
        rules: &loaded.rules,
        plugins: &loaded.plugins,
        templates: &loaded.templates,
        options: &options,
    };
    let template = common::demo_mail("01-contact-message.eml");
    let mut samples = Vec::with_capacity(mails);
    for n in 0..mails {
        let raw = common::with_message_id(&template, &format!("{tag}-{n}@dupont.example"));
        let started = Instant::now();
        let report = dispatcher
            .handle_mail(raw.as_bytes(), "catchmail", None, false)
            .expect("store");
        samples.push(started.elapsed());
        assert_eq!(report.outcome, Outcome::Applied, "{report:?}");
        assert_eq!(report.rules, ["catchmail"], "only CatchMail matches");
        assert_eq!(report.not_matched, rule_count - 1, "the others counted");
    }
    let mean = samples.iter().sum::<Duration>() / mails as u32;
    samples.sort();
    (samples[mails / 2], mean, rule_count)
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn main() {
    let mails = common::sized("MAILS", 2_000, 20).max(1);
    let extra = common::sized("RULES", 1_000, 1_000);
    let root = common::root();
    let many = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(root.join("rules")).expect("rules") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, many.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let mut text = String::from("rules:\n");
    for n in 0..extra {
        let when = if n % 2 == 0 {
            format!("{{ recipient: desk-{n}@acme.example }}")
        } else {
            format!("{{ subject: {{ contains: \"word-{n}\", case: insensitive }} }}")
        };
        text.push_str(&format!(
            "  - {{ id: other-{n}, on: mail-received, when: {when}, run: {{ plugin: catchmail }} }}\n"
        ));
    }
    std::fs::write(many.path().join("others.yaml"), text).expect("write rules");

    let (floor, floor_mean, few) = per_mail(&root.join("rules"), mails, "few");
    let (median, mean, all) = per_mail(many.path(), mails, "many");
    println!("rules that do not match, {mails} CatchMail mails each (dispatcher, SQLite file)");
    println!("{:<40} {:>10} {:>10}", "", "median", "mean");
    println!(
        "{:<40} {:>8.0}µs {:>8.0}µs",
        format!("floor: the shipped {few} mail rules"),
        micros(floor),
        micros(floor_mean)
    );
    println!(
        "{:<40} {:>8.0}µs {:>8.0}µs",
        format!("{all} mail rules ({} more, none matching)", all - few),
        micros(median),
        micros(mean)
    );
    let ratio = micros(median) / micros(floor);
    println!(
        "ratio (median): {ratio:.2}x (target ≤ 2x: {})",
        if ratio <= 2.0 { "met" } else { "MISSED" }
    );
}

//! Scheduled rules in a running engine: fired at their cron times, re-armed
//! by a reload, and a run missed while stopped either run once at start or
//! skipped, as each rule says.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::{Engine, Setup, wait_for};
use relais::store::prelude::*;

/// A set-up whose rules directory holds `rules` (one file), and the engine
/// config that runs it with no mail source; the `noop` test plugin, which
/// handles every trigger and decides nothing, is installed.
fn setup_with(rules: &str) -> (Setup, PathBuf) {
    let mut setup = Setup::new();
    setup.install_plugin(&crate::support::test_plugin("noop"), "noop.wasm");
    let dir = setup.dir.path().join("rules");
    std::fs::create_dir_all(&dir).expect("rules dir");
    std::fs::write(dir.join("schedule.yaml"), rules).expect("rules");
    setup.rules = dir.clone();
    let config = setup.dir.path().join("relais.yaml");
    std::fs::write(
        &config,
        format!(
            "database: relais.db\nrules: {}\nplugins: plugins\ntemplates: {}\nspool: ~\n\
             outbox: {{ pickup: outbox }}\nreload: {{ debounce-ms: 50, poll-seconds: 1 }}\n",
            dir.display(),
            crate::support::root().join("templates").display()
        ),
    )
    .expect("config");
    (setup, config)
}

/// The schedule runs recorded for `rule`.
fn schedule_runs(setup: &Setup, rule: &str) -> usize {
    setup
        .store()
        .runs(1000)
        .expect("runs")
        .iter()
        .filter(|run| run.trigger == "schedule" && run.summary.contains(rule))
        .count()
}

fn rule(id: &str, cron: &str, extra: &str) -> String {
    format!(
        "rules:\n  - id: {id}\n    on: schedule\n    cron: \"{cron}\"\n{extra}    run: {{ plugin: noop }}\n"
    )
}

#[test]
fn a_rule_fires_at_its_times_and_a_reload_rearms_it() {
    let (setup, config) = setup_with(&rule("every-second", "* * * * * *", ""));
    let mut engine = Engine::start(&setup, &config);
    wait_for(&mut engine, Duration::from_secs(20), "three runs", || {
        schedule_runs(&setup, "every-second") >= 3
    });
    // Replaced by a rule of another id: the old one stops, the new fires.
    std::fs::write(
        setup.rules.join("schedule.yaml"),
        rule("renamed", "* * * * * *", "    timezone: Europe/Paris\n"),
    )
    .expect("rewrite");
    wait_for(
        &mut engine,
        Duration::from_secs(20),
        "the new rule's runs",
        || schedule_runs(&setup, "renamed") >= 2,
    );
    let old = schedule_runs(&setup, "every-second");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        schedule_runs(&setup, "every-second"),
        old,
        "the old rule stopped"
    );
    assert!(engine.stop().success(), "{}", engine.log());
}

#[test]
fn a_run_missed_while_stopped_runs_once_or_is_skipped() {
    let rules = format!(
        "{}{}",
        rule("catch-up", "0 0 3 * * *", ""),
        rule("skipper", "0 0 3 * * *", "    missed: skip\n").replace("rules:\n", "")
    );
    let (setup, config) = setup_with(&rules);
    // Both last fired three days ago: 3 a.m. passed (at least) twice since.
    let three_days_ago = chrono::Utc::now() - chrono::TimeDelta::days(3);
    let store = setup.store();
    store
        .set_last_fired("catch-up", three_days_ago, "0 0 3 * * * UTC")
        .expect("record");
    store
        .set_last_fired("skipper", three_days_ago, "0 0 3 * * * UTC")
        .expect("record");
    drop(store);
    let mut engine = Engine::start(&setup, &config);
    wait_for(
        &mut engine,
        Duration::from_secs(20),
        "the catch-up run",
        || schedule_runs(&setup, "catch-up") == 1,
    );
    wait_for(
        &mut engine,
        Duration::from_secs(20),
        "the skip recorded",
        || {
            setup
                .store()
                .last_fired("skipper")
                .expect("query")
                .is_some_and(|(at, _)| at > three_days_ago)
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        schedule_runs(&setup, "catch-up"),
        1,
        "once, not once per missed day"
    );
    assert_eq!(schedule_runs(&setup, "skipper"), 0);
    assert!(engine.stop().success(), "{}", engine.log());
}

/// Starts of `rule`'s runs in the engine's log (the plugin's "sleeping").
fn sleeping(setup: &Setup, rule: &str) -> Vec<String> {
    setup
        .store()
        .runs(1000)
        .expect("runs")
        .into_iter()
        .filter(|run| run.trigger == "schedule" && run.summary.contains(rule))
        .map(|run| run.started_at)
        .collect()
}

#[test]
fn a_single_rule_skips_its_times_while_it_runs_even_across_a_reload() {
    // `slow` fires every second and runs 2.5 s: with `mode: single`, the
    // times that come while it runs are skipped, not queued.
    let slow = "rules:\n  - id: slow\n    on: schedule\n    cron: \"* * * * * *\"\n    mode: single\n    \
                run: { plugin: misbehave, config: { do: sleep, ms: 2500 } }\n";
    let (setup, config) = setup_with(slow);
    setup.install_plugin(&crate::support::test_plugin("misbehave"), "misbehave.wasm");
    let other = setup.rules.join("other.yaml");
    std::fs::write(&other, rule("hourly", "0 0 * * * *", "")).expect("other");
    let mut engine = Engine::start(&setup, &config);
    wait_for(&mut engine, Duration::from_secs(30), "a first run", || {
        !sleeping(&setup, "slow").is_empty()
    });
    let first = std::time::Instant::now();
    // Another file changes while `slow` runs: a reload, `slow` unchanged,
    // so its run in flight still counts and the next times are skipped.
    std::fs::write(&other, rule("hourly", "0 30 * * * *", "")).expect("rewrite");
    wait_for(&mut engine, Duration::from_secs(30), "the reload", || {
        reloaded(&setup)
    });
    std::thread::sleep(Duration::from_secs(8));
    let runs = sleeping(&setup, "slow").len();
    let elapsed = first.elapsed().as_secs_f64();
    // One run per 2.5 s at most (plus the one in flight at the start);
    // queued times would have made one per second.
    assert!(
        (runs as f64) <= elapsed / 2.5 + 2.0,
        "{runs} runs in {elapsed:.1} s:\n{}",
        engine.log()
    );
    let log = engine.log();
    assert!(log.contains("skipped (mode Single, max 1)"), "{log}");
    assert!(engine.stop().success(), "{}", engine.log());
}

/// Whether `relais status` shows the rewritten `hourly` (the reload landed).
fn reloaded(setup: &Setup) -> bool {
    let status = setup.relais(&["status", "--json"]);
    status.stdout.contains("0 30 * * * * UTC")
}

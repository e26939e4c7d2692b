//! What a start costs: `relais check` on the shipped rules, and `relais
//! run` from its start to the first mail of its spool committed, with the
//! plugin cache cold (a fresh folder: every bundled plugin compiled) and
//! warm (read back), beside their floor measured in the same run: the
//! same binary starting and exiting (`relais --version`).
//!
//! Targets: `relais check` at most 50 ms of CPU, `relais run` to the first
//! mail committed at most 100 ms, warm.
//!
//! Run: `cargo bench -p relais --bench startup` (`RUNS=N` samples of each,
//! 10 by default; `RELAIS_BENCH_SHORT=1` runs 2, as CI does).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Wall time and the CPU the children used, user and system.
#[derive(Debug, Clone, Copy)]
struct Cost {
    wall: Duration,
    cpu: Duration,
}

/// The CPU every waited-for child used so far (`cutime` + `cstime` of
/// `/proc/self/stat`, in clock ticks of 10 ms).
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // cutime and cstime are fields 16 and 17 of the whole line, 14 and 15
    // after the name and state.
    let ticks: u64 = [13, 14]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn median(mut costs: Vec<Cost>) -> Cost {
    costs.sort_by_key(|c| c.wall);
    let wall = costs[costs.len() / 2].wall;
    let cpu = costs.iter().map(|c| c.cpu).sum::<Duration>() / costs.len() as u32;
    Cost { wall, cpu }
}

/// Runs `relais ARGS` in `dir` `runs` times.
fn measure(dir: &Path, cache: &dyn Fn(usize) -> String, args: &[&str], runs: usize) -> Cost {
    let costs = (0..runs)
        .map(|run| {
            let cpu = children_cpu();
            let started = Instant::now();
            let output = Command::new(env!("CARGO_BIN_EXE_relais"))
                .current_dir(dir)
                .env("RELAIS_CACHE_DIR", cache(run))
                .args(args)
                .output()
                .expect("relais runs");
            let wall = started.elapsed();
            assert!(
                output.status.success(),
                "relais {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            Cost {
                wall,
                cpu: children_cpu().saturating_sub(cpu),
            }
        })
        .collect();
    median(costs)
}

/// `relais run` with one mail in its spool, until that mail is committed
/// (its file removed), then stopped.
fn first_mail(dir: &Path, cache: &str, tag: &str, mail: &str, runs: usize) -> Cost {
    let costs = (0..runs)
        .map(|run| {
            let spool = dir.join(format!("spool-{tag}-{run}"));
            std::fs::create_dir_all(&spool).expect("spool");
            std::fs::write(
                spool.join("first.eml"),
                common::with_message_id(mail, &format!("first-{tag}-{run}@dupont.example")),
            )
            .expect("mail");
            let config = dir.join("relais.yaml");
            std::fs::write(
                &config,
                format!(
                    "database: relais.db\nrules: {rules}\ntemplates: {templates}\nplugins: plugins\n\
                     spool: {spool}\noutbox: {{ pickup: outbox }}\n\
                     authentication: {{ trusted-authserv-ids: [mx.acme.example] }}\n",
                    rules = common::root().join("rules").display(),
                    templates = common::root().join("templates").display(),
                    spool = spool.display(),
                ),
            )
            .expect("config");
            let cpu = children_cpu();
            let started = Instant::now();
            let mut server = common::Server::start(dir, &config, &[("RELAIS_CACHE_DIR", cache)]);
            let child = server.child.as_mut().expect("relais run");
            let first = spool.join("first.eml");
            while first.exists() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the first mail was not committed"
                );
                std::thread::sleep(Duration::from_micros(500));
            }
            let wall = started.elapsed();
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill");
            child.wait().expect("relais run stops");
            Cost {
                wall,
                cpu: children_cpu().saturating_sub(cpu),
            }
        })
        .collect();
    median(costs)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn main() {
    let runs = common::sized("RUNS", 10, 2).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = common::root();
    let rules = root.join("rules");
    let templates = root.join("templates");
    common::import_demo_in(dir.path());
    let check_args = [
        "--rules",
        rules.to_str().expect("utf-8"),
        "--templates",
        templates.to_str().expect("utf-8"),
        "check",
    ];
    let warm_dir = dir.path().join("cache-warm");
    let warm = warm_dir.display().to_string();
    let cold = |run: usize| {
        dir.path()
            .join(format!("cache-cold-{run}"))
            .display()
            .to_string()
    };
    let mail = common::demo_mail("01-contact-message.eml");

    let floor = measure(dir.path(), &|_| warm.clone(), &["--version"], runs);
    let check_cold = measure(dir.path(), &cold, &check_args, runs);
    // Each cold run had a folder of its own; this fills the warm one.
    measure(dir.path(), &|_| warm.clone(), &check_args, 1);
    let check_warm = measure(dir.path(), &|_| warm.clone(), &check_args, runs);
    let run_cold = first_mail(dir.path(), &cold(runs), "cold", &mail, 1);
    let run_warm = first_mail(dir.path(), &warm, "warm", &mail, runs);

    println!("start-up, median of {runs} (CPU: mean, 10 ms ticks), shipped rules, demo directory");
    println!("{:<44} {:>10} {:>10}", "", "wall", "CPU");
    let row = |name: &str, cost: Cost| {
        println!(
            "{name:<44} {:>8.1}ms {:>8.1}ms",
            ms(cost.wall),
            ms(cost.cpu)
        );
    };
    row("floor: relais --version", floor);
    row("relais check, plugin cache cold", check_cold);
    row("relais check, plugin cache warm", check_warm);
    row("relais run to first mail committed, cold", run_cold);
    row("relais run to first mail committed, warm", run_warm);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: relais check ≤ 50 ms CPU warm: {:.1} ms ({}); first mail ≤ 100 ms warm: {:.1} ms ({})",
        ms(check_warm.cpu),
        verdict(check_warm.cpu <= Duration::from_millis(50)),
        ms(run_warm.wall),
        verdict(run_warm.wall <= Duration::from_millis(100)),
    );
    // What the cache is for: a warm start does not compile.
    assert!(
        check_warm.cpu < check_cold.cpu,
        "a warm check costs less than a cold one"
    );
}

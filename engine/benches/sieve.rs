//! Relais beside Dovecot's Sieve on the same mails: `relais ingest` (every
//! mail stored, its rules run, effects applied, durable) against
//! `sieve-filter -e -W` (every mail filed into its folder, `mail_fsync =
//! always`), and `relais ingest --dry-run` against `sieve-filter` without
//! `-e` (evaluation only), as ratios. The Sieve script routes as the
//! shipped rules do: CatchMail's address with `*message*` in the subject,
//! then the support address. `sieve-filter` comes with Debian's
//! `dovecot-sieve`, which `tests/mail-servers.sh` installs.
//!
//! Run: `cargo bench -p relais --bench sieve` (`MAILS=N`, 5,000 by
//! default; `RELAIS_BENCH_SHORT=1` runs 60, as CI does).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"require ["fileinto"];
if address :is "to" "catchmail@acme.example" {
  if header :contains "subject" "*message*" { fileinto "catchmail"; stop; }
}
if address :is "to" "support@acme.example" { fileinto "support"; stop; }
"#;

/// The demo mails, `count` of them in turn, each with an id of its own.
fn corpus(count: usize) -> Vec<String> {
    let mut demo: Vec<_> = std::fs::read_dir(common::root().join("demo/mails"))
        .expect("demo mails")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    demo.sort();
    let texts: Vec<String> = demo
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect();
    (0..count)
        .map(|n| {
            common::with_message_id(
                &texts[n % texts.len()],
                &format!("sieve-{n}@dupont.example"),
            )
        })
        .collect()
}

/// Writes `mails` as a Maildir's `new/` under `dir`.
fn maildir(dir: &Path, mails: &[String]) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("maildir");
    }
    for (n, mail) in mails.iter().enumerate() {
        std::fs::write(dir.join("new").join(format!("{n:06}.bench:2,")), mail).expect("mail");
    }
}

fn run(command: &mut Command) -> Duration {
    let started = Instant::now();
    let output = command.output().expect("runs");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

/// `relais ingest` of the Maildir `mail` on a fresh store, with `extra`.
fn relais(dir: &Path, mail: &Path, extra: &[&str]) -> Duration {
    let store = tempfile::tempdir_in(dir).expect("store dir");
    let root = common::root();
    let base = |command: &mut Command| {
        command
            .current_dir(store.path())
            .args(["--rules"])
            .arg(root.join("rules"))
            .args(["--templates"])
            .arg(root.join("templates"));
    };
    let mut import = Command::new(env!("CARGO_BIN_EXE_relais"));
    base(&mut import);
    run(import.arg("import").arg(root.join("demo/directory.yaml")));
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_relais"));
    base(&mut ingest);
    ingest.arg("ingest").args(extra).arg(mail);
    // Mails that fail their rules (a notice refused...) exit 1; the run
    // is what is measured.
    let started = Instant::now();
    let output = ingest.output().expect("relais ingest");
    let elapsed = started.elapsed();
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary
            .lines()
            .last()
            .is_some_and(|l| l.contains(" mails: ")),
        "{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

/// `sieve-filter` over the Maildir `mail`, filing (`-e -W`) or only
/// evaluating. Dovecot refuses mail access as root: then it runs as
/// `nobody`, owning the mail.
fn sieve(dir: &Path, mail: &Path, file: bool) -> Duration {
    let root = nix_uid() == 0;
    let (uid, gid) = if root {
        (65534, 65534)
    } else {
        (nix_uid(), nix_gid())
    };
    for folder in ["catchmail", "support"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(mail.join(format!(".{folder}")).join(sub)).expect("folder");
        }
    }
    let script = dir.join("route.sieve");
    std::fs::write(&script, SCRIPT).expect("script");
    let config = dir.join("dovecot.conf");
    let state = dir.join("dovecot");
    std::fs::create_dir_all(state.join("run")).expect("state");
    std::fs::write(
        &config,
        format!(
            "mail_location = maildir:{mail}\nmail_home = {home}\nmail_uid = {uid}\nmail_gid = {gid}\n\
             first_valid_uid = 0\nfirst_valid_gid = 0\nmail_fsync = always\nprotocols =\nssl = no\n\
             log_path = {home}/dovecot.log\nbase_dir = {home}/run\nstate_dir = {home}\n\
             namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n",
            mail = mail.display(),
            home = state.display(),
        ),
    )
    .expect("config");
    if root {
        run(Command::new("chown").args(["-R", "65534:65534"]).arg(dir));
    }
    let mut command = if root {
        let mut command = Command::new("setpriv");
        command.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sieve-filter",
        ]);
        command
    } else {
        Command::new("sieve-filter")
    };
    command
        .env("USER", if root { "nobody" } else { "bench" })
        .env("HOME", &state)
        .arg("-c")
        .arg(&config);
    if file {
        command.args(["-e", "-W"]);
    }
    command.arg(&script).arg("INBOX");
    let elapsed = run(&mut command);
    if file {
        let filed = std::fs::read_dir(mail.join(".catchmail/cur"))
            .map(|d| d.count())
            .unwrap_or(0)
            + std::fs::read_dir(mail.join(".catchmail/new"))
                .map(|d| d.count())
                .unwrap_or(0);
        assert!(filed > 0, "Sieve filed nothing into catchmail");
    }
    elapsed
}

fn nix_uid() -> u32 {
    id("-u")
}

fn nix_gid() -> u32 {
    id("-g")
}

fn id(flag: &str) -> u32 {
    Command::new("id")
        .arg(flag)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mails = common::sized("MAILS", 5_000, 60).max(1);
    if Command::new("sieve-filter").arg("-h").output().is_err() {
        println!(
            "sieve-filter is not installed (Debian's dovecot-sieve; tests/mail-servers.sh installs it): nothing compared"
        );
        assert!(
            !common::short() || std::env::var_os("CI").is_none(),
            "CI installs dovecot-sieve"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let texts = corpus(mails);
    // The plugin cache warm, as in production after the first start.
    let empty = dir.path().join("empty");
    maildir(&empty, &[]);
    relais(dir.path(), &empty, &["--dry-run"]);

    let take = |name: &str| {
        let path = dir.path().join(name);
        maildir(&path, &texts);
        path
    };
    let relais_durable = relais(dir.path(), &take("relais-durable"), &[]);
    let relais_dry = relais(dir.path(), &take("relais-dry"), &["--dry-run"]);
    let sieve_durable = sieve(
        &dir.path().join("sieve-durable"),
        &take("sieve-durable/mail"),
        true,
    );
    let sieve_eval = sieve(
        &dir.path().join("sieve-eval"),
        &take("sieve-eval/mail"),
        false,
    );

    let per_mail = |d: Duration| d.as_secs_f64() * 1e6 / mails as f64;
    println!(
        "Relais beside Dovecot's Sieve (sieve-filter), {mails} mails (the demo mails in turn)"
    );
    println!("{:<44} {:>9} {:>12}", "", "total", "per mail");
    for (name, d) in [
        ("relais ingest (stored, rules, effects)", relais_durable),
        (
            "sieve-filter -e -W (filed, mail_fsync=always)",
            sieve_durable,
        ),
        ("relais ingest --dry-run", relais_dry),
        ("sieve-filter (evaluation only)", sieve_eval),
    ] {
        println!(
            "{name:<44} {:>7.2} s {:>9.0} µs",
            d.as_secs_f64(),
            per_mail(d)
        );
    }
    println!(
        "ratios: durable Relais/Sieve {:.2}x; dry run Relais/Sieve evaluation {:.2}x (below 1: Relais is faster)",
        relais_durable.as_secs_f64() / sieve_durable.as_secs_f64(),
        relais_dry.as_secs_f64() / sieve_eval.as_secs_f64()
    );
}

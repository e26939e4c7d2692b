//! Hot reload, end to end: `relais run` as a child process, real rule,
//! plugin and link files changed under it, the real watcher. Each test
//! asserts WHICH rule set processed each mail: every version of a rule has
//! an id of its own (`v1-echo`, `v2-echo`), and the run of each mail
//! dropped in the spool folder records the ids of the rules that matched.
//!
//! Files are saved the way careful tools save them (written elsewhere, then
//! renamed in), unless the test is about something else: a rename is one
//! file system event, so no check can see a file half-written by the test
//! itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Engine, Setup, build_wasm, root, wait_for};
use relais::store::prelude::*;

/// How long any wait may take; never a timing assertion.
const LIMIT: Duration = Duration::from_secs(30);
/// The reload settings of most tests: fast events, a periodic check too.
const FAST: &str = "reload: { debounce-ms: 50, poll-seconds: 1 }";
/// Events only: the periodic check does not come back within a test.
const EVENTS_ONLY: &str = "reload: { debounce-ms: 50, poll-seconds: 3600 }";
const TOKEN: &str = "reload-test-token-0123456789abcdef";

/// A rule file with one rule, `id`, that matches every mail and runs the
/// bundled ticket-link plugin (which leaves the mail unlinked: no effect,
/// but the run records the rule).
fn rule_file(id: &str) -> String {
    format!(
        "rules:
  - id: {id}
    on: mail-received
    run: {{ plugin: ticket-link, config: {{ policy: leave-unlinked }} }}
"
    )
}

/// Writes `text` to `path` the atomic way: into a staging folder on the
/// same file system, then renamed over `path`.
fn save(path: &Path, text: impl AsRef<[u8]>) {
    let staging = path
        .ancestors()
        .find(|dir| dir.join("staging").is_dir())
        .map(|dir| dir.join("staging"))
        .unwrap_or_else(|| panic!("no staging folder above {}", path.display()));
    let name = path.file_name().expect("a file name").to_string_lossy();
    let temporary = staging.join(format!("{name}.{}", std::process::id()));
    std::fs::write(&temporary, text).expect("write staged file");
    std::fs::rename(&temporary, path).expect("rename into place");
}

/// `link` made to point at `target`, atomically: a new link renamed over
/// the old one (what Kubernetes does to a ConfigMap volume).
fn swap_link(target: &str, link: &Path) {
    let staged = link.with_file_name(format!(
        "{}.tmp",
        link.file_name().expect("a name").to_string_lossy()
    ));
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(target, &staged).expect("symlink");
    std::fs::rename(&staged, link).expect("rename the link over the old one");
}

/// A scratch set-up for a daemon: the demo directory imported, an empty
/// plugins folder, a spool folder and a staging folder (for atomic saves).
fn desk_setup() -> Setup {
    let setup = Setup::new();
    let import = setup.relais(&[
        "import",
        root().join("demo/directory.yaml").to_str().expect("utf-8"),
    ]);
    assert_eq!(import.code, 0, "{import:?}");
    for dir in ["plugins", "spool", "staging"] {
        std::fs::create_dir_all(setup.dir.path().join(dir)).expect("mkdir");
    }
    setup
}

/// A rules folder `name` in the set-up, with these files.
fn rules_dir(setup: &Setup, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = setup.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir rules");
    for (file, text) in files {
        std::fs::write(dir.join(file), text).expect("write rule file");
    }
    dir
}

/// A running daemon on its own store, rules, plugins and spool folder.
struct Desk {
    setup: Setup,
    engine: Engine,
    port: Option<u16>,
    mails: usize,
}

impl Desk {
    /// Starts `relais run` on `rules` with these reload settings (and the
    /// HTTP API when `http`); waits until it recorded its first status.
    fn start(setup: Setup, rules: &Path, reload: &str, http: bool) -> Desk {
        let port = http.then(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        });
        let http = match port {
            Some(port) => {
                std::fs::write(setup.dir.path().join("api-token"), TOKEN).expect("token");
                format!("http: {{ listen: 127.0.0.1:{port}, token: {{ file: api-token }} }}\n")
            }
            None => String::new(),
        };
        let config = format!(
            "database: relais.db
rules: {rules}
templates: {templates}
plugins: plugins
spool: spool
outbox: {{ pickup: outbox }}
{reload}
{http}",
            rules = rules.display(),
            templates = root().join("templates").display(),
        );
        let path = setup.dir.path().join("relais.yaml");
        std::fs::write(&path, config).expect("config");
        let engine = Engine::start(&setup, &path);
        let mut desk = Desk {
            setup,
            engine,
            port,
            mails: 0,
        };
        desk.wait_status("the first status of the engine", |s| {
            s["state"] == "running" && s["rule-set"]["version"] == 1
        });
        desk
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.setup.dir.path().join(relative)
    }

    /// `relais status --json`: its exit code and the status (null when
    /// there is none yet).
    fn status(&self) -> (i32, Value) {
        let run = self.setup.relais(&["status", "--json"]);
        let status = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
        (run.code, status)
    }

    /// Waits until the recorded status satisfies `ready`; returns it.
    fn wait_status(&mut self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let setup = &self.setup;
        let mut last = Value::Null;
        wait_for(&mut self.engine, LIMIT, what, || {
            let run = setup.relais(&["status", "--json"]);
            last = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
            ready(&last)
        });
        last
    }

    /// Waits until rule set `version` is in use and recorded as such.
    fn wait_version(&mut self, version: u64) -> Value {
        self.wait_status(&format!("rule set version {version}"), |s| {
            s["rule-set"]["version"] == version && s["last-reload"]["ok"] == true
        })
    }

    /// Drops a mail with this subject in the spool folder (written aside,
    /// then renamed in); returns its Message-ID.
    fn drop_mail(&mut self, subject: &str) -> String {
        self.mails += 1;
        let id = format!("reload-{}@test.example", self.mails);
        let text = format!(
            "From: someone@nowhere.example\r\nTo: support@acme.example\r\nMessage-ID: <{id}>\r\nSubject: {subject}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello.\r\n"
        );
        let staged = self.path("staging").join(format!("{}.eml", self.mails));
        std::fs::write(&staged, text).expect("write mail");
        std::fs::rename(
            &staged,
            self.path("spool").join(format!("{:04}.eml", self.mails)),
        )
        .expect("drop mail");
        id
    }

    /// Waits for the run of mail `id`; returns its trace.
    fn trace(&mut self, id: &str) -> Value {
        let store = self.setup.store();
        wait_for(&mut self.engine, LIMIT, &format!("the run of {id}"), || {
            store.runs_of_mail(id).is_ok_and(|runs| !runs.is_empty())
        });
        let runs = store.runs_of_mail(id).expect("runs");
        assert_eq!(runs.len(), 1, "mail {id} processed once: runs {runs:?}");
        let run = store.run(runs[0]).expect("query").expect("the run");
        assert_eq!(run.outcome, "applied", "{run:?}");
        run.trace
    }

    /// The ids of the rules that matched mail `id`, once it is processed.
    fn matched(&mut self, id: &str) -> Vec<String> {
        matched_rules(&self.trace(id))
    }

    /// How many times the log says a rule set went live by reload.
    fn reloads(&self) -> usize {
        self.engine.log().matches("rule set reloaded").count()
    }

    /// An authorized HTTP call to the daemon's API.
    fn get(&self, path: &str) -> crate::api::Answer {
        let port = self.port.expect("the API is on");
        crate::api::call(port, "GET", path, Some(TOKEN), None)
            .unwrap_or_else(|| panic!("GET {path}: no answer; log:\n{}", self.engine.log()))
    }
}

/// The ids of the rules of a run trace that matched.
fn matched_rules(trace: &Value) -> Vec<String> {
    trace["rules"]
        .as_array()
        .expect("rules in the trace")
        .iter()
        .filter(|rule| rule["matched"] == true)
        .map(|rule| rule["id"].as_str().expect("id").to_string())
        .collect()
}

/// The log lines of the reloads.
fn reload_lines(log: &str) -> String {
    log.lines()
        .filter(|line| line.contains("rule set reloaded") || line.contains("reload refused"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rule ids of a status's rule set.
fn status_rules(status: &Value) -> Vec<String> {
    status["rule-set"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| rule["id"].as_str().expect("id").to_string())
        .collect()
}

/// `file:line:col: message`, with `file` ending in `name`.
fn names_position(error: &str, name: &str) -> bool {
    let Some(at) = error.find(name) else {
        return false;
    };
    let mut rest = error[at + name.len()..].split(':');
    rest.next() == Some("")
        && rest.next().is_some_and(|l| l.parse::<u32>().is_ok())
        && rest.next().is_some_and(|c| c.parse::<u32>().is_ok())
}

#[test]
fn a_half_written_rule_file_is_refused_then_taken_once_complete() {
    let setup = desk_setup();
    let rules = rules_dir(&setup, "rules", &[("echo.yaml", &rule_file("v1-echo"))]);
    let mut desk = Desk::start(setup, &rules, FAST, false);
    let first = desk.drop_mail("before any change");
    assert_eq!(desk.matched(&first), ["v1-echo"]);

    // Saved half-way: the flow mapping is never closed.
    let complete = rule_file("v2-echo");
    let half = &complete[..complete.find("leave-unlinked").expect("in the rule")];
    save(&rules.join("echo.yaml"), half);
    let status = desk.wait_status("the half-written file refused", |s| {
        s["last-reload"]["ok"] == false
    });
    let errors: Vec<&str> = status["last-reload"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e.as_str().expect("text"))
        .collect();
    assert!(
        errors.iter().any(|e| names_position(e, "echo.yaml")),
        "an error names echo.yaml:line:col: {errors:?}"
    );
    assert_eq!(status["rule-set"]["version"], 1, "the old set stays");
    assert_eq!(status_rules(&status), ["v1-echo"]);
    let (code, _) = desk.status();
    assert_eq!(
        code, 1,
        "`relais status --json` exits 1 after a failed reload"
    );
    let text = desk.setup.relais(&["status"]);
    assert_eq!(text.code, 1, "{text:?}");
    assert!(
        text.stdout.contains("FAILED") && text.stdout.contains("echo.yaml:"),
        "{}",
        text.stdout
    );
    let during = desk.drop_mail("while half-written");
    assert_eq!(
        desk.matched(&during),
        ["v1-echo"],
        "a mail while the file is broken runs on the old set"
    );

    save(&rules.join("echo.yaml"), &complete);
    let status = desk.wait_version(2);
    assert_eq!(status_rules(&status), ["v2-echo"]);
    assert!(status["last-reload"].get("errors").is_none(), "{status}");
    let (code, _) = desk.status();
    assert_eq!(code, 0, "`relais status` exits 0 again");
    let after = desk.drop_mail("once complete");
    assert_eq!(desk.matched(&after), ["v2-echo"]);
    assert_eq!(desk.engine.stop().code(), Some(0));
}

#[test]
fn a_removed_rule_file_stops_applying() {
    let setup = desk_setup();
    let rules = rules_dir(
        &setup,
        "rules",
        &[
            ("keep.yaml", &rule_file("keep")),
            ("extra.yaml", &rule_file("extra")),
        ],
    );
    let mut desk = Desk::start(setup, &rules, FAST, false);
    let before = desk.drop_mail("both files");
    let mut matched = desk.matched(&before);
    matched.sort();
    assert_eq!(matched, ["extra", "keep"]);

    std::fs::remove_file(rules.join("extra.yaml")).expect("remove");
    let status = desk.wait_version(2);
    assert_eq!(status_rules(&status), ["keep"]);
    let after = desk.drop_mail("one file left");
    assert_eq!(desk.matched(&after), ["keep"]);
}

#[test]
fn an_invalid_plugin_is_refused_and_the_old_set_stays() {
    let setup = desk_setup();
    let rules = rules_dir(&setup, "rules", &[("echo.yaml", &rule_file("v1-echo"))]);
    let mut desk = Desk::start(setup, &rules, FAST, false);
    let plugins_before = desk.status().1["plugins"].clone();

    let bad = desk.path("plugins/bad.wasm");
    save(&bad, b"\0asm this is not a component \xff\xfe garbage");
    let status = desk.wait_status("the bad plugin refused", |s| {
        s["last-reload"]["ok"] == false
    });
    let errors = status["last-reload"]["errors"].to_string();
    assert!(
        errors.contains("bad.wasm"),
        "the status names the file: {errors}"
    );
    assert_eq!(status["rule-set"]["version"], 1, "the old set stays");
    assert_eq!(status["plugins"], plugins_before, "and its plugins");
    assert_eq!(desk.status().0, 1, "`relais status` exits 1");
    let during = desk.drop_mail("bad plugin present");
    assert_eq!(desk.matched(&during), ["v1-echo"]);

    std::fs::remove_file(&bad).expect("remove");
    let status = desk.wait_version(2);
    assert_eq!(status_rules(&status), ["v1-echo"]);
    assert_eq!(desk.status().0, 0, "`relais status` exits 0 again");
    let after = desk.drop_mail("bad plugin gone");
    assert_eq!(desk.matched(&after), ["v1-echo"]);
}

/// The source of `slowpoke`, a test plugin of two versions: on a mail whose
/// subject is `hold N ...` it sleeps N ms (in the host: no fuel burnt); it
/// logs its version when it starts and when it ends.
const SLOWPOKE: &str = r#"use relais_sdk::{Effect, Event, Host, Level, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Slowpoke;

impl Plugin for Slowpoke {
    fn metadata() -> Metadata {
        Metadata::new("slowpoke", env!("CARGO_PKG_VERSION"), &[]).handles(&["mail-received"])
    }

    fn handle(
        event: &Event,
        _config: &Value,
        host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        let Event::MailReceived(mail) = event else {
            return Ok(Vec::new());
        };
        let version = env!("CARGO_PKG_VERSION");
        host.log(Level::Info, &format!("slowpoke {version} started: {}", mail.subject));
        let hold = mail
            .subject
            .strip_prefix("hold ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|ms| ms.parse::<u64>().ok());
        if let Some(ms) = hold {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        host.log(Level::Info, &format!("slowpoke {version} finished: {}", mail.subject));
        Ok(Vec::new())
    }
}

relais_sdk::export_plugin!(Slowpoke);
"#;

/// Builds slowpoke 0.1.0 and 0.2.0 (a workspace written in `dir`, built
/// into a target folder kept between runs); returns their `.wasm` files.
fn build_slowpoke(dir: &Path) -> (PathBuf, PathBuf) {
    let sdk = root().join("sdk");
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"v1\", \"v2\"]\n\n[profile.release]\nstrip = \"debuginfo\"\n",
    )
    .expect("workspace");
    std::fs::copy(
        root().join("sdk/template/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .expect("the template's lock file: no network needed");
    std::fs::write(dir.join("lib.rs"), SLOWPOKE).expect("source");
    for (member, version) in [("v1", "0.1.0"), ("v2", "0.2.0")] {
        std::fs::create_dir_all(dir.join(member)).expect("mkdir");
        std::fs::write(
            dir.join(member).join("Cargo.toml"),
            format!(
                "[package]
name = \"slowpoke-{member}\"
version = \"{version}\"
edition = \"2024\"
publish = false

[lib]
crate-type = [\"cdylib\"]
path = \"../lib.rs\"

[dependencies]
relais-sdk = {{ path = {sdk:?} }}
serde_json = \"1\"
",
                sdk = sdk.display().to_string(),
            ),
        )
        .expect("member");
    }
    let built = build_wasm(&dir.join("Cargo.toml"), &root().join("target/wasm-reload"));
    (
        built.join("slowpoke_v1.wasm"),
        built.join("slowpoke_v2.wasm"),
    )
}

/// The log messages of a run trace's rules.
fn plugin_logs(trace: &Value) -> Vec<String> {
    trace["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .flat_map(|rule| rule["logs"].as_array().cloned().unwrap_or_default())
        .map(|log| log["message"].as_str().expect("message").to_string())
        .collect()
}

#[test]
fn a_plugin_replaced_mid_event_finishes_that_event_and_serves_the_next() {
    let setup = desk_setup();
    let (v1, v2) = build_slowpoke(&setup.dir.path().join("slowpoke"));
    std::fs::copy(&v1, setup.dir.path().join("plugins/slowpoke.wasm")).expect("install v1");
    // The held event sleeps longer than the default wall-clock limit.
    std::fs::write(
        setup.dir.path().join("plugins/limits.yaml"),
        "plugins:\n  slowpoke: { timeout-ms: 120000 }\n",
    )
    .expect("limits");
    let rules = rules_dir(
        &setup,
        "rules",
        &[(
            "slow.yaml",
            "rules:\n  - id: slow\n    on: mail-received\n    run: { plugin: slowpoke }\n",
        )],
    );
    let mut desk = Desk::start(setup, &rules, FAST, false);
    let status = desk.status().1;
    let slowpoke = |status: &Value| {
        status["plugins"]
            .as_array()
            .expect("plugins")
            .iter()
            .find(|p| p["name"] == "slowpoke")
            .map(|p| p["version"].as_str().expect("version").to_string())
    };
    assert_eq!(slowpoke(&status).as_deref(), Some("0.1.0"));

    // An event that holds the dispatcher long enough for a whole reload
    // (compiling the new plugin included) to happen while it runs.
    let held = desk.drop_mail("hold 8000 the long one");
    let log = desk.engine.log.clone();
    wait_for(&mut desk.engine, LIMIT, "the held event to start", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("slowpoke 0.1.0 started: hold 8000"))
    });
    save(
        &desk.path("plugins/slowpoke.wasm"),
        std::fs::read(&v2).expect("v2"),
    );
    wait_for(&mut desk.engine, LIMIT, "the plugin reloaded", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("rule set reloaded"))
    });
    let store = desk.setup.store();
    assert!(
        store.runs_of_mail(&held).expect("runs").is_empty(),
        "the reload happened while the held event ran (it is not committed yet); \
         if this fails, the machine took more than 8 s to reload: log:\n{}",
        desk.engine.log()
    );
    let next = desk.drop_mail("quick, after the reload");

    let held_logs = plugin_logs(&desk.trace(&held));
    assert_eq!(
        held_logs,
        [
            "slowpoke 0.1.0 started: hold 8000 the long one",
            "slowpoke 0.1.0 finished: hold 8000 the long one"
        ],
        "the event that started on the old plugin finished on it"
    );
    let next_logs = plugin_logs(&desk.trace(&next));
    assert_eq!(
        next_logs,
        [
            "slowpoke 0.2.0 started: quick, after the reload",
            "slowpoke 0.2.0 finished: quick, after the reload"
        ],
        "the next event runs the new plugin"
    );
    let status = desk.wait_version(2);
    assert_eq!(slowpoke(&status).as_deref(), Some("0.2.0"));
    // Nothing lost, nothing processed twice.
    let runs = crate::support::event_runs(&store, 100);
    assert_eq!(runs.len(), 2, "{runs:?}");
    for id in [&held, &next] {
        assert_eq!(store.runs_of_mail(id).expect("runs").len(), 1, "{id}");
        assert_eq!(
            store.mail(id).expect("query").expect("kept").status,
            "processed"
        );
    }
    assert_eq!(desk.engine.stop().code(), Some(0));
}

#[test]
fn a_burst_of_changes_to_one_file_makes_one_reload() {
    // Events only: a periodic check landing mid-burst would load the state
    // of that instant, a reload of its own that says nothing of the
    // debounce.
    let setup = desk_setup();
    let rules = rules_dir(&setup, "rules", &[("echo.yaml", &rule_file("burst-000"))]);
    let mut desk = Desk::start(setup, &rules, EVENTS_ONLY, false);
    // 100 saves in one second: 10 ms apart, each closer to the next than
    // the debounce (50 ms) -- one burst for the watcher.
    for n in 1..=100 {
        save(
            &rules.join("echo.yaml"),
            rule_file(&format!("burst-{n:03}")),
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = desk.wait_status("the last save live", |s| {
        s["last-reload"]["ok"] == true && status_rules(s) == ["burst-100"]
    });
    // Nothing more comes once the set is in force.
    std::thread::sleep(Duration::from_secs(2));
    let version = desk.status().1["rule-set"]["version"]
        .as_u64()
        .expect("version");
    let reloads = desk.reloads();
    assert_eq!(version as usize, 1 + reloads, "{status}");
    // One reload once the burst is over; a second one at most, when the
    // check the first events asked for runs before the last save lands
    // (the burst straddling the edge of a debounce window).
    assert!(
        reloads <= 2,
        "100 saves, each within the debounce of the previous one, made {reloads} reloads, \
         not 1:\n{}",
        reload_lines(&desk.engine.log())
    );
    let mail = desk.drop_mail("after the burst");
    assert_eq!(desk.matched(&mail), ["burst-100"]);
}

#[test]
fn a_burst_of_new_files_makes_one_reload() {
    let setup = desk_setup();
    let rules = rules_dir(&setup, "rules", &[("echo.yaml", &rule_file("v1-echo"))]);
    let mut desk = Desk::start(setup, &rules, EVENTS_ONLY, false);
    // 100 files as fast as they can be written: well inside one debounce
    // window, unless the machine stalls for 50 ms in the middle (then the
    // first part may load on its own: two reloads).
    for n in 0..100 {
        save(
            &rules.join(format!("r{n:03}.yaml")),
            rule_file(&format!("file-{n:03}")),
        );
    }
    let status = desk.wait_status("the 101 rules live", |s| {
        s["last-reload"]["ok"] == true
            && s["rule-set"]["rules"].as_array().map(Vec::len) == Some(101)
    });
    std::thread::sleep(Duration::from_secs(2));
    let version = desk.status().1["rule-set"]["version"]
        .as_u64()
        .expect("version");
    let reloads = desk.reloads();
    assert_eq!(version as usize, 1 + reloads, "{status}");
    assert!(
        (1..=2).contains(&reloads),
        "100 files written at once made {reloads} reloads:\n{}",
        reload_lines(&desk.engine.log())
    );
    let mail = desk.drop_mail("after the files");
    assert_eq!(desk.matched(&mail).len(), 101);
}

#[test]
fn a_rules_dir_swapped_by_a_symlink_is_picked_up() {
    let setup = desk_setup();
    rules_dir(&setup, "rules-v1", &[("echo.yaml", &rule_file("v1-echo"))]);
    let link = setup.dir.path().join("rules");
    std::os::unix::fs::symlink("rules-v1", &link).expect("symlink");
    let mut desk = Desk::start(setup, &link, FAST, false);
    let before = desk.drop_mail("before the swap");
    assert_eq!(desk.matched(&before), ["v1-echo"]);

    rules_dir(
        &desk.setup,
        "rules-v2",
        &[("echo.yaml", &rule_file("v2-echo"))],
    );
    swap_link("rules-v2", &link);
    let status = desk.wait_version(2);
    assert_eq!(status_rules(&status), ["v2-echo"]);
    let after = desk.drop_mail("after the swap");
    assert_eq!(desk.matched(&after), ["v2-echo"]);

    // The new target is watched in turn: an edit inside it is picked up.
    save(
        &desk.path("rules-v2").join("echo.yaml"),
        rule_file("v2-edited"),
    );
    let status = desk.wait_version(3);
    assert_eq!(status_rules(&status), ["v2-edited"]);
    let edited = desk.drop_mail("after the edit");
    assert_eq!(desk.matched(&edited), ["v2-edited"]);
}

#[test]
fn a_link_swap_to_identical_files_still_watches_the_new_target() {
    // The swap changes no file's content: nothing reloads. The folder
    // behind the link did change, and an edit in it must still be seen by
    // the events (the periodic check is an hour away).
    let setup = desk_setup();
    rules_dir(&setup, "rules-v1", &[("echo.yaml", &rule_file("v1-echo"))]);
    let link = setup.dir.path().join("rules");
    std::os::unix::fs::symlink("rules-v1", &link).expect("symlink");
    let mut desk = Desk::start(setup, &link, EVENTS_ONLY, false);
    rules_dir(
        &desk.setup,
        "rules-v2",
        &[("echo.yaml", &rule_file("v1-echo"))],
    );
    swap_link("rules-v2", &link);
    let mail = desk.drop_mail("after the swap");
    assert_eq!(desk.matched(&mail), ["v1-echo"]);

    save(
        &desk.path("rules-v2").join("echo.yaml"),
        rule_file("v2-edited"),
    );
    let status = desk.wait_status("the edit behind the new link live", |s| {
        s["last-reload"]["ok"] == true && status_rules(s) == ["v2-edited"]
    });
    let edited = desk.drop_mail("after the edit");
    assert_eq!(desk.matched(&edited), ["v2-edited"], "{status}");
}

#[test]
fn a_configmap_data_link_swap_is_picked_up() {
    // The layout of a Kubernetes ConfigMap volume: the files are links
    // through `..data`, a link to the current timestamped folder.
    let setup = desk_setup();
    let rules = setup.dir.path().join("rules");
    std::fs::create_dir_all(rules.join("..2026_03_02_10_00_00.1")).expect("mkdir");
    std::fs::write(
        rules.join("..2026_03_02_10_00_00.1/echo.yaml"),
        rule_file("v1-echo"),
    )
    .expect("write");
    std::os::unix::fs::symlink("..2026_03_02_10_00_00.1", rules.join("..data")).expect("link");
    std::os::unix::fs::symlink("..data/echo.yaml", rules.join("echo.yaml")).expect("link");
    let mut desk = Desk::start(setup, &rules, FAST, false);
    let before = desk.drop_mail("before the update");
    assert_eq!(desk.matched(&before), ["v1-echo"]);

    std::fs::create_dir_all(rules.join("..2026_03_02_10_05_00.2")).expect("mkdir");
    std::fs::write(
        rules.join("..2026_03_02_10_05_00.2/echo.yaml"),
        rule_file("v2-echo"),
    )
    .expect("write");
    swap_link("..2026_03_02_10_05_00.2", &rules.join("..data"));
    std::fs::remove_dir_all(rules.join("..2026_03_02_10_00_00.1")).expect("old folder");
    let status = desk.wait_version(2);
    assert_eq!(status_rules(&status), ["v2-echo"]);
    let after = desk.drop_mail("after the update");
    assert_eq!(desk.matched(&after), ["v2-echo"]);
}

#[test]
fn file_system_events_alone_trigger_a_reload() {
    // The periodic check runs at start-up, then not for an hour: only the
    // events can bring the change in.
    let setup = desk_setup();
    let rules = rules_dir(&setup, "rules", &[("echo.yaml", &rule_file("v1-echo"))]);
    let mut desk = Desk::start(setup, &rules, EVENTS_ONLY, false);
    save(&rules.join("echo.yaml"), rule_file("v2-echo"));
    let status = desk.wait_version(2);
    assert_eq!(status_rules(&status), ["v2-echo"]);
    let mail = desk.drop_mail("after the event");
    assert_eq!(desk.matched(&mail), ["v2-echo"]);
    // An edit in place (no rename) is seen too.
    std::fs::write(rules.join("echo.yaml"), rule_file("v3-echo")).expect("write in place");
    let status = desk.wait_status("the edit in place live", |s| {
        s["last-reload"]["ok"] == true && status_rules(s) == ["v3-echo"]
    });
    assert!(
        status["rule-set"]["version"].as_u64() >= Some(3),
        "{status}"
    );
}

#[test]
fn the_periodic_check_alone_picks_up_a_change_no_event_reports() {
    // A change the watches cannot see: the rule file's content rewritten
    // through a hard link in a folder nobody watches. No event names the
    // rules folder, so only the periodic check can find it.
    let setup = desk_setup();
    let rules = rules_dir(&setup, "rules", &[("echo.yaml", &rule_file("v1-echo"))]);
    let elsewhere = setup.dir.path().join("staging/elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::hard_link(rules.join("echo.yaml"), elsewhere.join("echo.yaml")).expect("hard link");
    let mut desk = Desk::start(setup, &rules, FAST, false);
    // Same length, written in place over the same bytes: the file is
    // never seen truncated.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(elsewhere.join("echo.yaml"))
        .expect("open through the other link");
    std::io::Write::write_all(&mut file, rule_file("v2-echo").as_bytes()).expect("write");
    drop(file);
    assert_eq!(
        std::fs::read_to_string(rules.join("echo.yaml")).expect("read"),
        rule_file("v2-echo")
    );
    let status = desk.wait_version(2);
    assert_eq!(status_rules(&status), ["v2-echo"]);
    let mail = desk.drop_mail("after the silent change");
    assert_eq!(desk.matched(&mail), ["v2-echo"]);
}

/// The value of a metric without labels in the Prometheus text.
fn metric(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        rest.strip_prefix(' ').map(|v| v.trim().to_string())
    })
}

#[test]
fn the_api_status_and_metrics_follow_reloads() {
    let setup = desk_setup();
    let rules = rules_dir(&setup, "rules", &[("echo.yaml", &rule_file("v1-echo"))]);
    let mut desk = Desk::start(setup, &rules, FAST, true);
    let port = desk.port.expect("API");
    wait_for(&mut desk.engine, LIMIT, "the API", || {
        crate::api::call(port, "GET", "/health", None, None).is_some_and(|a| a.status == 200)
    });
    assert_eq!(
        crate::api::call(port, "GET", "/status", None, None)
            .expect("answer")
            .status,
        401,
        "the status needs the token"
    );
    let live = desk.get("/status");
    assert_eq!(live.status, 200, "{live:?}");
    let live = live.json();
    let recorded = desk.status().1;
    assert_eq!(live["rule-set"]["version"], 1);
    assert_eq!(live["rule-set"]["version"], recorded["rule-set"]["version"]);
    assert_eq!(live["rule-set"]["hash"], recorded["rule-set"]["hash"]);
    let metrics = desk.get("/metrics").body;
    assert_eq!(
        metric(&metrics, "relais_reload_success").as_deref(),
        Some("1")
    );

    // A refused reload.
    save(&rules.join("echo.yaml"), "rules:\n  - id: [unclosed\n");
    let recorded = desk.wait_status("the refused reload", |s| s["last-reload"]["ok"] == false);
    let live = desk.get("/status").json();
    assert_eq!(live["last-reload"]["ok"], false, "{live}");
    assert_eq!(
        live["last-reload"]["errors"],
        recorded["last-reload"]["errors"]
    );
    assert_eq!(live["rule-set"]["version"], 1);
    assert_eq!(live["rule-set"]["version"], recorded["rule-set"]["version"]);
    let metrics = desk.get("/metrics").body;
    assert_eq!(
        metric(&metrics, "relais_reload_success").as_deref(),
        Some("0"),
        "{metrics}"
    );
    let hash = live["rule-set"]["hash"].as_str().expect("hash");
    assert!(
        metrics.contains(&format!("relais_rule_set{{hash=\"{hash}\"}} 1")),
        "the old set is still the one in force: {metrics}"
    );

    // A good one.
    save(&rules.join("echo.yaml"), rule_file("v2-echo"));
    let recorded = desk.wait_version(2);
    let live = desk.get("/status").json();
    assert_eq!(live["rule-set"]["version"], 2);
    assert_eq!(live["rule-set"]["hash"], recorded["rule-set"]["hash"]);
    assert_eq!(live["last-reload"]["ok"], true);
    let metrics = desk.get("/metrics").body;
    assert_eq!(
        metric(&metrics, "relais_reload_success").as_deref(),
        Some("1")
    );
    let hash = live["rule-set"]["hash"].as_str().expect("hash");
    assert!(
        metrics.contains(&format!("relais_rule_set{{hash=\"{hash}\"}} 1")),
        "{metrics}"
    );
    let mail = desk.drop_mail("after the good reload");
    assert_eq!(desk.matched(&mail), ["v2-echo"]);
}

#[test]
fn an_idle_engine_does_not_keep_reading_its_sources() {
    // Nothing changes and the periodic check is an hour away: the engine
    // has no reason to open its rule file, nor to list its spool folder
    // more than its few-second rescan does. Its own reads must not count
    // as changes (to a watcher, a read is an `open` event).
    use notify::Watcher;
    let setup = desk_setup();
    let rules = rules_dir(&setup, "rules", &[("echo.yaml", &rule_file("v1-echo"))]);
    let mut desk = Desk::start(setup, &rules, EVENTS_ONLY, false);
    let first = desk.drop_mail("start-up done");
    assert_eq!(desk.matched(&first), ["v1-echo"]);
    std::thread::sleep(Duration::from_secs(1));

    let spool = desk.path("spool");
    let (events, received) = std::sync::mpsc::channel();
    let mut spy = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let _ = events.send(event);
        }
    })
    .expect("a watcher");
    for dir in [&rules, &spool] {
        spy.watch(dir, notify::RecursiveMode::NonRecursive)
            .expect("watch");
    }
    std::thread::sleep(Duration::from_secs(3));
    drop(spy);
    let events: Vec<notify::Event> = received.try_iter().collect();
    let opens = |what: &dyn Fn(&Path) -> bool| {
        events
            .iter()
            .filter(|event| {
                matches!(
                    event.kind,
                    notify::EventKind::Access(notify::event::AccessKind::Open(_))
                ) && event.paths.iter().any(|p| what(p))
            })
            .count()
    };
    let rule_file_opens = opens(&|p| p.ends_with("echo.yaml"));
    let spool_listings = opens(&|p| p == spool.as_path());
    assert!(
        rule_file_opens <= 1 && spool_listings <= 3,
        "in 3 s idle, the engine opened its unchanged rule file {rule_file_opens} times \
         (the reload watcher) and listed its empty spool folder {spool_listings} times \
         (the spool watcher)"
    );
    assert_eq!(desk.reloads(), 0, "and nothing reloaded");
}

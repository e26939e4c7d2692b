//! Helpers shared by the integration tests.

use relais::store::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine/ has a parent")
        .to_path_buf()
}

/// A file under `tests/fixtures/`.
/// The runs of `store`, newest first, but those of the directory imports
/// that set a test up: an import is a write of its own, traced as a run
/// marked manual.
pub fn event_runs(store: &relais::Store, limit: usize) -> Vec<relais::store::RunSummary> {
    store
        .runs(limit + 100)
        .expect("runs")
        .into_iter()
        .filter(|run| !(run.trigger == "manual" && run.summary.starts_with("directory imported")))
        .take(limit)
        .collect()
}

pub fn fixture(path: &str) -> PathBuf {
    root().join("tests/fixtures").join(path)
}

/// The result of one `relais` command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The `relais.yaml` of every set-up: the server whose
/// `Authentication-Results` the fixtures carry is trusted.
pub const TEST_CONFIG: &str = "authentication: { trusted-authserv-ids: [mx.acme.example] }\n";

/// A scratch set-up: its own store, and the shipped rules unless replaced.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub rules: PathBuf,
}

impl Setup {
    /// A fresh store with the shipped rules.
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        // Every command runs in the set-up's folder and reads its
        // relais.yaml: the fixtures' mails carry the verdict of this
        // receiving server.
        std::fs::write(dir.path().join("relais.yaml"), TEST_CONFIG).expect("relais.yaml");
        Setup {
            dir,
            rules: root().join("rules"),
        }
    }

    /// A fresh store with the DESIGN.md example directory imported.
    pub fn with_directory() -> Setup {
        let setup = Setup::new();
        let run = setup.relais(&[
            "import",
            fixture("design-example.yaml").to_str().expect("utf-8"),
        ]);
        assert_eq!(run.code, 0, "{run:?}");
        setup
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("relais.db")
    }

    /// Runs `relais` with this set-up's store, rules and an empty plugins dir.
    pub fn relais(&self, args: &[&str]) -> Run {
        self.relais_env(&[], args)
    }

    /// `relais` with these environment variables set, the set-up's paths
    /// given.
    pub fn relais_env(&self, env: &[(&str, &std::ffi::OsStr)], args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relais"));
        command
            .current_dir(self.dir.path())
            .envs(env.iter().copied())
            .env_remove("RELAIS_LOG")
            .arg("--db")
            .arg(self.db())
            .arg("--rules")
            .arg(&self.rules)
            .arg("--plugins")
            .arg(self.dir.path().join("plugins"))
            .arg("--templates")
            .arg(root().join("templates"))
            .args(args);
        command.output().expect("relais runs").into()
    }

    /// `relais ingest` of one mail file on account `support`, which must
    /// succeed.
    pub fn ingest_support(&self, path: &Path) {
        let run = self.relais(&[
            "ingest",
            "--account",
            "support",
            path.to_str().expect("utf-8"),
        ]);
        assert_eq!(run.code, 0, "{run:?}");
    }

    /// `relais ingest --json` of these paths; one JSON value per mail.
    pub fn ingest_json(&self, extra: &[&str], paths: &[&Path]) -> (Run, Vec<serde_json::Value>) {
        let mut args = vec!["ingest", "--json"];
        args.extend_from_slice(extra);
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        args.extend(paths.iter().map(String::as_str));
        let run = self.relais(&args);
        let lines = run
            .stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
            })
            .collect();
        (run, lines)
    }

    /// A run's trace as `relais runs show --json` gives it: the rules that
    /// did not match spelled out, each with why.
    pub fn explained_trace(&self, run: i64) -> serde_json::Value {
        let show = self.relais(&["runs", "show", &run.to_string(), "--json"]);
        assert_eq!(show.code, 0, "{show:?}");
        let run: serde_json::Value = serde_json::from_str(&show.stdout).expect("json");
        run["trace"].clone()
    }

    /// Opens the store for assertions.
    pub fn store(&self) -> relais::Store {
        relais::Store::open(&self.db()).expect("store opens")
    }
}

/// The test plugins of `tests/plugins/`, built from source once per test
/// run for `wasm32-wasip2`; returns the `.wasm` of `name`.
pub fn test_plugin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        build_wasm(
            &root().join("tests/plugins/Cargo.toml"),
            &root().join("target/wasm-tests"),
        )
    });
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

/// Builds the crate or workspace of `manifest` for `wasm32-wasip2`
/// (release) into `target_dir`; returns the folder of the `.wasm` files.
pub fn build_wasm(manifest: &Path, target_dir: &Path) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {} failed", manifest.display());
    target_dir.join("wasm32-wasip2/release")
}

/// Writes a mail file with these headers and body; returns its path.
pub fn write_mail(dir: &Path, name: &str, headers: &[(&str, &str)], body: &str) -> PathBuf {
    let mut text = String::new();
    for (header, value) in headers {
        text.push_str(&format!("{header}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write mail");
    path
}

impl Setup {
    /// Uses a rules directory of its own, with these files.
    pub fn with_rules(mut self, files: &[(&str, &str)]) -> Setup {
        let rules = self.dir.path().join("rules");
        std::fs::create_dir_all(&rules).expect("mkdir rules");
        for (name, text) in files {
            std::fs::write(rules.join(name), text).expect("write rule file");
        }
        self.rules = rules;
        self
    }

    /// The plugins directory of this set-up (created on demand).
    pub fn plugins_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("plugins");
        std::fs::create_dir_all(&dir).expect("mkdir plugins");
        dir
    }

    /// Copies a plugin file into the plugins directory.
    pub fn install_plugin(&self, wasm: &Path, as_name: &str) {
        std::fs::copy(wasm, self.plugins_dir().join(as_name)).expect("copy plugin");
    }
}

/// `relais run` as a child process, with its log kept.
pub struct Engine {
    pub child: Option<Child>,
    pub config: PathBuf,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Engine {
    pub fn start(setup: &Setup, config: &Path) -> Engine {
        let mut engine = Engine {
            child: None,
            config: config.to_path_buf(),
            dir: setup.dir.path().to_path_buf(),
            log: setup.dir.path().join("relais.log"),
        };
        engine.spawn();
        engine
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_relais"))
            .current_dir(&self.dir)
            .env("RELAIS_LOG", "info,relais=debug")
            .env("NO_COLOR", "1")
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("relais run starts");
        self.child = Some(child);
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("reaped");
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        child.wait().expect("exits")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for `ready`, up to `limit`; panics with `what` and the log.
pub fn wait_for(engine: &mut Engine, limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(child) = engine.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "relais exited ({status}) while waiting for {what}:\n{}",
                engine.log()
            );
        }
        assert!(
            started.elapsed() < limit,
            "timed out waiting for {what}; relais log:\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

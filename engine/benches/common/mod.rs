//! What the benchmarks share: the demo directory in a store, and demo mails
//! with Message-IDs of their own. Each benchmark uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use relais::Store;
use relais::store::prelude::*;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `store` with the demo directory imported.
pub fn import_demo(store: &mut Store) {
    let file = root().join("demo/directory.yaml");
    let text = std::fs::read_to_string(&file).expect("demo directory");
    let data = relais::directory::parse(&file, &text, store).expect("valid directory");
    store.import_directory(&data).expect("import");
}

/// `relais import` of the demo directory, run in `dir` (its `relais.db`).
pub fn import_demo_in(dir: &Path) {
    let import = Command::new(env!("CARGO_BIN_EXE_relais"))
        .current_dir(dir)
        .arg("import")
        .arg(root().join("demo/directory.yaml"))
        .output()
        .expect("relais import runs");
    assert!(
        import.status.success(),
        "relais import failed: {}",
        String::from_utf8_lossy(&import.stderr)
    );
}

/// A store file in `dir` with the demo directory, the rules of `rules`
/// loaded with the bundled plugins and the shipped templates, and the
/// dispatcher options the demo mails need (they carry the verdict of
/// `mx.acme.example`).
pub fn demo_engine(
    dir: &Path,
    rules: &Path,
) -> (Store, relais::reload::Generation, relais::Options) {
    let mut store = Store::open(&dir.join("relais.db")).expect("store");
    import_demo(&mut store);
    let runtime =
        relais::plugins::Runtime::new(relais::plugins::Limits::default()).expect("runtime");
    let loaded = relais::reload::load_set(
        &runtime,
        &dir.join("plugins"),
        rules,
        &root().join("templates"),
        &[relais::config::DEFAULT_IDENTITY.to_string()],
    )
    .expect("the rules load");
    let options = relais::Options {
        trusted_authserv_ids: vec!["mx.acme.example".to_string()],
        ..relais::Options::default()
    };
    (store, loaded, options)
}

/// A demo mail's text.
pub fn demo_mail(name: &str) -> String {
    std::fs::read_to_string(root().join("demo/mails").join(name)).expect("demo mail")
}

/// `text` with its Message-ID replaced by `id`, lines ending in CRLF.
pub fn with_message_id(text: &str, id: &str) -> String {
    text.lines()
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("message-id:") {
                format!("Message-ID: <{id}>")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Whether the bench runs in its short mode (`RELAIS_BENCH_SHORT=1`, as
/// CI does): a few samples, its own assertions checked, its timings not
/// worth reading.
pub fn short() -> bool {
    std::env::var("RELAIS_BENCH_SHORT").is_ok_and(|v| v == "1")
}

/// A bench setting from the environment, or its default: `full`, or
/// `quick` in the short mode.
pub fn sized(name: &str, full: usize, quick: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if short() { quick } else { full })
}

/// A bench setting from the environment, or its default.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The test plugins of `tests/plugins/`, built from source for
/// `wasm32-wasip2` as the integration tests build them; the `.wasm` of
/// `name`.
pub fn test_plugin(name: &str) -> PathBuf {
    let target = root().join("target/wasm-tests");
    let status = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(root().join("tests/plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the test plugins failed");
    target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `relais run` as a child process, its log kept in a file; killed if the
/// bench panics. Each bench adds what it needs of it.
pub struct Server {
    /// The process, until stopped.
    pub child: Option<Child>,
    /// Its log file.
    pub log: PathBuf,
}

impl Server {
    /// Starts `relais run --config config` in `dir`, with `env` set.
    pub fn start(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Server {
        let log = dir.join("relais.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_relais"))
            .current_dir(dir)
            .env("RELAIS_LOG", "warn")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("relais run starts");
        Server {
            child: Some(child),
            log,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! Request saves per second through the HTTP API of `relais run`, with the
//! shipped alert rules: each `PUT /requests/{number}` saves the request,
//! runs `request-saved` through the bundled alert-dispatch plugin and
//! queues its alert mails in the outbox, all committed before the answer.
//! The server is a child process (`relais run`, demo directory imported,
//! a real SQLite file, the outbox delivered as files to a pickup folder);
//! this process is the load generator (one thread): keep-alive HTTP/1.1
//! connections on loopback, each owning its own request numbers and taking
//! each through open (2 alert mails), resolved (1) and closed (2), in
//! order. A few hundred saves warm up first and are not counted. Every
//! answer must be 201 (open) or 200 with outcome `applied`, and the outbox
//! must hold the mails the answers announced: anything else makes the bench
//! fail.
//!
//! Run: `cargo bench -p relais --bench http_saves` (`BENCH_SAVES=N`, 20,000
//! by default; `BENCH_CONNECTIONS=C`, 32 by default; `BENCH_WARMUP=N`, 300
//! by default; `BENCH_DRAIN=1` to also wait, after the measured saves, for
//! the outbox sender to deliver every queued mail, and show its rate). The
//! target is 2,000 saves/s or better.

mod common;

use common::{Server, free_port};

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use relais::Store;
use relais::store::prelude::*;
use serde_json::{Value, json};

/// The bearer token, handed to the server through its environment.
const TOKEN: &str = "http-saves-bench-token-0123456789";
const TOKEN_VAR: &str = "RELAIS_BENCH_API_TOKEN";
/// Request numbers of the warm-up and of the measured saves.
const WARMUP_BASE: u64 = 90_000_000;
const MEASURED_BASE: u64 = 91_000_000;
/// How many failures are shown in full.
const SHOWN: usize = 10;

/// One save of a request's lifecycle.
#[derive(Debug, Clone, Copy)]
enum Step {
    Open,
    Resolve,
    Close,
}

impl Step {
    const ALL: [Step; 3] = [Step::Open, Step::Resolve, Step::Close];

    fn state(self) -> &'static str {
        match self {
            Step::Open => "open",
            Step::Resolve => "resolved",
            Step::Close => "closed",
        }
    }

    fn expected(self) -> StatusCode {
        match self {
            Step::Open => StatusCode::CREATED,
            Step::Resolve | Step::Close => StatusCode::OK,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

fn main() {
    let saves = common::sized("BENCH_SAVES", 20_000, 100);
    let connections = common::sized("BENCH_CONNECTIONS", 32, 4).max(1);
    let warmup = common::sized("BENCH_WARMUP", 300, 10);
    let root = common::root();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("relais.db");
    let pickup = dir.path().join("outbox");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");

    let import = Command::new(env!("CARGO_BIN_EXE_relais"))
        .current_dir(dir.path())
        .arg("--db")
        .arg(&db)
        .arg("import")
        .arg(root.join("demo/directory.yaml"))
        .output()
        .expect("relais import runs");
    assert!(
        import.status.success(),
        "relais import failed: {}",
        String::from_utf8_lossy(&import.stderr)
    );

    let port = free_port();
    let config = dir.path().join("relais.yaml");
    std::fs::write(
        &config,
        format!(
            "database: {db}
rules: {rules}
plugins: {plugins}
templates: {templates}
spool: ~
outbox:
  pickup: {pickup}
http:
  listen: 127.0.0.1:{port}
  token: {{ env: {TOKEN_VAR} }}
",
            db = db.display(),
            rules = root.join("rules").display(),
            plugins = plugins.display(),
            templates = root.join("templates").display(),
            pickup = pickup.display(),
        ),
    )
    .expect("write config");

    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut server = Server::start_with_token(dir.path(), &config);
    io.block_on(server.wait_healthy(port));

    let (elapsed, warm, mut measured) = io.block_on(load(port, connections, warmup, saves));
    let drained = std::env::var_os("BENCH_DRAIN").map(|_| io.block_on(drain(port)));

    let stopping = Instant::now();
    let status = server.stop();
    let stop_time = stopping.elapsed();
    let log = server.log();

    let store = Store::open(&db).expect("store");
    let outbox = store.outbox_counts().expect("outbox counts");
    let rows: u64 = outbox.iter().map(|(_, n)| n).sum();
    let count = |status: &str| {
        outbox
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    };
    let files = std::fs::read_dir(&pickup)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0);

    let mut latencies = std::mem::take(&mut measured.latencies_us);
    latencies.sort_unstable();
    let percentile = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let at = ((latencies.len() - 1) as f64 * q).round() as usize;
        f64::from(latencies[at]) / 1000.0
    };
    let per = |step: Step| {
        let n = measured.per_step_saves[step.index()];
        if n == 0 {
            0.0
        } else {
            measured.per_step_mails[step.index()] as f64 / n as f64
        }
    };

    println!(
        "HTTP API: {saves} request saves (PUT /requests/{{n}}: open, resolved, closed) \
         over {connections} keep-alive connections, alert-dispatch on; \
         {warmup} saves of warm-up not counted"
    );
    println!("target: 2,000 saves/s or better");
    println!(
        "saved in {:.2} s: {:.0} saves/s ({:.0} µs per save)",
        elapsed.as_secs_f64(),
        measured.saves as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / measured.saves.max(1) as f64
    );
    println!(
        "latency of a save: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(0.50),
        percentile(0.99),
        percentile(1.0)
    );
    println!(
        "alert mails queued by the measured saves: {} to {} recipients \
         (per save: open {:.1}, resolved {:.1}, closed {:.1})",
        measured.mails,
        measured.recipients,
        per(Step::Open),
        per(Step::Resolve),
        per(Step::Close)
    );
    println!(
        "outbox after stop ({:.1} s to stop): {rows} mails, {} queued, {} sent ({files} files), \
         {} failed, {} suppressed",
        stop_time.as_secs_f64(),
        count("queued"),
        count("sent"),
        count("failed"),
        count("suppressed")
    );

    if let Some((queued, time)) = drained {
        match time {
            Some(time) => println!(
                "outbox drained after the saves: {queued} mails in {:.1} s ({:.0} mails/s)",
                time.as_secs_f64(),
                queued as f64 / time.as_secs_f64()
            ),
            None => {
                println!("outbox not drained after {DRAIN_LIMIT:?}: {queued} mails were queued")
            }
        }
    }

    let mut problems = Vec::new();
    let failures = warm.failures + measured.failures;
    if failures > 0 {
        problems.push(format!(
            "{failures} saves failed ({} in the warm-up); the first ones:\n  {}",
            warm.failures,
            warm.shown
                .iter()
                .chain(&measured.shown)
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    let announced = warm.mails + measured.mails;
    if rows != announced {
        problems.push(format!(
            "the answers announced {announced} mails, the outbox holds {rows}"
        ));
    }
    if !status.success() {
        problems.push(format!("relais run exited with {status} after SIGTERM"));
    }
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if !lines.is_empty() {
        println!("server log ({} warning or error lines):", lines.len());
        for line in lines.iter().take(SHOWN) {
            println!("  {line}");
        }
    }
    if !problems.is_empty() {
        eprintln!("http_saves FAILED:\n{}", problems.join("\n"));
        drop(dir);
        std::process::exit(1);
    }
}

/// How long [`drain`] waits.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// Waits for `/health` to show an empty outbox; answers how many mails were
/// queued when it started and how long they took to leave (none if not
/// within [`DRAIN_LIMIT`]).
async fn drain(port: u16) -> (u64, Option<Duration>) {
    let started = Instant::now();
    let mut first = None;
    let mut client = Client::connect(port).await.ok();
    while started.elapsed() < DRAIN_LIMIT {
        if client.is_none() {
            client = Client::connect(port).await.ok();
        }
        if let Some(c) = client.as_mut() {
            match c.send(Method::GET, "/health", None).await {
                Ok((StatusCode::OK, body)) => {
                    let health: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if let Some(queued) = health["outbox-queued"].as_u64() {
                        let first = *first.get_or_insert(queued);
                        if queued == 0 {
                            return (first, Some(started.elapsed()));
                        }
                    }
                }
                _ => client = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (first.unwrap_or(0), None)
}

impl Server {
    fn start_with_token(dir: &Path, config: &Path) -> Server {
        Server::start(dir, config, &[(TOKEN_VAR, TOKEN)])
    }

    /// Waits for `GET /health` to answer 200.
    async fn wait_healthy(&mut self, port: u16) {
        let started = Instant::now();
        loop {
            if let Ok(mut client) = Client::connect(port).await
                && let Ok((StatusCode::OK, _)) = client.send(Method::GET, "/health", None).await
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "relais run exited ({status}) before answering:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "relais run did not answer /health within 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and the exit status.
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        child.wait().expect("relais run exits")
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    async fn connect(port: u16) -> Result<Client, String> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Client {
            sender,
            host: format!("127.0.0.1:{port}"),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host)
            .header(AUTHORIZATION, format!("Bearer {TOKEN}"));
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| format!("{e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("{e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// What one phase's saves did.
#[derive(Debug, Default)]
struct Tally {
    saves: u64,
    latencies_us: Vec<u32>,
    /// `send-mail` effects in the answers.
    mails: u64,
    recipients: u64,
    per_step_saves: [u64; 3],
    per_step_mails: [u64; 3],
    failures: u64,
    shown: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.saves += other.saves;
        self.latencies_us.extend(other.latencies_us);
        self.mails += other.mails;
        self.recipients += other.recipients;
        for i in 0..3 {
            self.per_step_saves[i] += other.per_step_saves[i];
            self.per_step_mails[i] += other.per_step_mails[i];
        }
        self.failures += other.failures;
        self.shown.extend(other.shown);
        self.shown.truncate(SHOWN);
    }

    fn fail(&mut self, message: String) {
        self.failures += 1;
        if self.shown.len() < SHOWN {
            self.shown.push(message);
        }
    }
}

/// The saves of `total` in all, as lifecycles of three numbered from
/// `base`, dealt to `connections` connections: lifecycle `l` belongs to
/// connection `l % connections`, which sends its saves in order.
fn plan(base: u64, total: usize, connections: usize) -> Vec<Vec<(u64, Step)>> {
    let mut plans = vec![Vec::new(); connections];
    for i in 0..total {
        let lifecycle = i / 3;
        plans[lifecycle % connections].push((base + lifecycle as u64, Step::ALL[i % 3]));
    }
    plans
}

/// Warms up, then runs the measured saves; answers the measured phase's
/// elapsed time and both phases' tallies.
async fn load(
    port: u16,
    connections: usize,
    warmup: usize,
    saves: usize,
) -> (Duration, Tally, Tally) {
    let warm_plans = plan(WARMUP_BASE, warmup, connections);
    let plans = plan(MEASURED_BASE, saves, connections);
    let barrier = Arc::new(tokio::sync::Barrier::new(connections + 1));
    let mut workers = Vec::new();
    for (warm_plan, plan) in warm_plans.into_iter().zip(plans) {
        let barrier = barrier.clone();
        workers.push(tokio::spawn(async move {
            let mut client = Client::connect(port).await.ok();
            let warm = run(port, &mut client, warm_plan).await;
            barrier.wait().await;
            let measured = run(port, &mut client, plan).await;
            (warm, measured)
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut warm = Tally::default();
    let mut measured = Tally::default();
    for worker in workers {
        let (w, m) = worker.await.expect("worker");
        warm.add(w);
        measured.add(m);
    }
    (started.elapsed(), warm, measured)
}

/// One connection's saves, in order; a broken connection is opened again.
async fn run(port: u16, client: &mut Option<Client>, plan: Vec<(u64, Step)>) -> Tally {
    let mut tally = Tally::default();
    for (number, step) in plan {
        let body = json!({
            "company": "ACME-FR",
            "customer": "C001",
            "type": "INCIDENT",
            "requester": "ct-jeanne",
            "state": step.state(),
            "publishable": true,
            "conversation-locked": false,
            "contract": "K-2026-001",
            "subject": format!("Bench request {number}"),
        });
        let body = serde_json::to_vec(&body).expect("JSON");
        let path = format!("/requests/{number}");
        let started = Instant::now();
        if client.is_none() {
            *client = Client::connect(port).await.ok();
        }
        let answer = match client.as_mut() {
            Some(c) => c.send(Method::PUT, &path, Some(body)).await,
            None => Err("cannot connect".to_string()),
        };
        let latency = started.elapsed();
        tally.saves += 1;
        tally.per_step_saves[step.index()] += 1;
        tally
            .latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        let (status, bytes) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                *client = None;
                tally.fail(format!("PUT {path} ({}): {error}", step.state()));
                continue;
            }
        };
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let outcome = value["outcome"].as_str().unwrap_or("");
        if status != step.expected() || outcome != "applied" {
            tally.fail(format!(
                "PUT {path} ({}): {status}, outcome `{outcome}`: {}",
                step.state(),
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
            continue;
        }
        let mails: Vec<&Value> = value["effects"]
            .as_array()
            .map(|effects| {
                effects
                    .iter()
                    .filter(|e| e["kind"] == "send-mail")
                    .collect()
            })
            .unwrap_or_default();
        tally.mails += mails.len() as u64;
        tally.per_step_mails[step.index()] += mails.len() as u64;
        tally.recipients += mails
            .iter()
            .map(|m| m["to"].as_array().map_or(0, Vec::len) as u64)
            .sum::<u64>();
    }
    tally
}

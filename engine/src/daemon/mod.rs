//! `relais run`: the daemon. It starts every source (the spool folder, each
//! IMAP account), the dispatcher thread and the outbox sender, and stops
//! them cleanly on SIGINT or SIGTERM: sources stop taking mail, the
//! dispatcher finishes the events already handed to it (each commits whole
//! or not at all), and a mail not committed is not acknowledged, so it is
//! taken again at the next start.

pub mod dispatcher;
pub mod imap;
pub mod lock;
pub mod order;
pub mod retention;
pub mod schedule;
pub mod sender;
pub mod spool;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::sync::{Notify, watch};

use crate::Store;
use crate::config::Config;
use crate::plugins::{Limits, Runtime};
use crate::status;

/// How long sources get to finish their in-flight mail at shutdown.
const GRACE: Duration = Duration::from_secs(20);

/// Runs the daemon until a stop signal.
pub fn run(config: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("relais-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(config));
    // A reload still loading (a plugin compiling, a template checking)
    // must not hold the exit: every event it could affect has finished.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(config: Config) -> Result<()> {
    config.check_secrets()?;
    // Before anything reads or writes: a second engine stops here.
    let lock = lock::EngineLock::acquire(&config.database)?;
    tracing::debug!(lock = %lock.path().display(), "store locked");
    let config = Arc::new(config);
    let plugin_runtime = Arc::new(
        Runtime::new(Limits::default())
            .map_err(|e| anyhow!("cannot start the plugin runtime: {e}"))?,
    );
    let sources = crate::reload::Sources {
        rules: config.rules.clone(),
        templates: config.templates.clone(),
        plugins: config.plugins.clone(),
        identities: config.identity_names(),
    };
    let generation = crate::reload::load(&plugin_runtime, &sources, 1)
        .map_err(|diagnostics| invalid(&diagnostics))?;
    tracing::info!(
        rules = generation.rules.rules.len(),
        set = %generation.rules.hash,
        plugins = generation.plugins.infos().len(),
        templates = generation.templates.files().len(),
        "rule set loaded"
    );
    let metrics = Arc::new(crate::metrics::Metrics::new());
    metrics.loaded(Some(&generation.rules.hash));
    metrics.know(&generation.rules, &generation.plugins);
    let store = Store::open(&config.database)?;
    for problem in crate::templates::unknown_alert_templates(&store, &generation.templates)? {
        tracing::warn!("{problem}");
    }
    let active = Arc::new(crate::reload::Active::new(generation));
    let reloader = Arc::new(crate::reload::Reloader::new(
        sources,
        plugin_runtime,
        active.clone(),
        metrics.clone(),
    ));
    let transport = sender::Transport::from_config(&config)?;
    let wake = Arc::new(Notify::new());
    let options = crate::dispatch::Options::of(&config);
    // Plugins decide about mail on workers, each reading through a
    // connection of its own; the dispatcher thread only commits.
    let readers = (0..config.limits.plugin_workers())
        .map(|_| Store::open(&config.database))
        .collect::<Result<Vec<_>, _>>()?;
    let (jobs, dispatcher) = dispatcher::spawn(dispatcher::Engine {
        store,
        readers,
        active: active.clone(),
        metrics: metrics.clone(),
        options,
        batch: config.limits.batch,
        wake: wake.clone(),
    })
    .context("cannot start the dispatcher")?;

    let (stop, shutdown) = watch::channel(false);
    let watcher = tokio::spawn(crate::reload::watch(
        reloader,
        Duration::from_millis(config.reload.debounce_ms.max(1)),
        Duration::from_secs(config.reload.poll_seconds.max(1)),
        shutdown.clone(),
    ));
    let verifier = config.verifier().map_err(|e| anyhow!(e))?;
    let mut sources = Vec::new();
    let mut source_states = Vec::new();
    if let Some(dir) = &config.spool {
        source_states.push(status::Source::spool(dir));
        sources.push(tokio::spawn(spool::run(
            dir.clone(),
            jobs.clone(),
            verifier.clone(),
            spool::Settings {
                keep_done: config.spool_done == crate::config::SpoolDone::Keep,
                max_in_flight_bytes: config.limits.max_in_flight_bytes(),
            },
            shutdown.clone(),
        )));
    }
    for account in &config.accounts {
        // Each source reads through its own connection: it sees only what
        // the dispatcher committed.
        let store = Store::open(&config.database)?;
        let state = Arc::new(Mutex::new(imap::SourceState::Connecting));
        source_states.push(status::Source::imap(&account.name, state.clone()));
        sources.push(tokio::spawn(imap::run(
            account.clone(),
            store,
            jobs.clone(),
            verifier.clone(),
            state,
            config.limits.max_in_flight_bytes(),
            shutdown.clone(),
        )));
    }
    let scheduler = tokio::spawn(schedule::run(
        active.clone(),
        Store::open(&config.database)?,
        jobs.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let status = Arc::new(status::Status::new(active.clone(), source_states));
    let reporter = tokio::spawn(status::report(
        status.clone(),
        jobs.clone(),
        shutdown.clone(),
    ));
    let api = match &config.http {
        Some(http) => {
            let listener = tokio::net::TcpListener::bind(&http.listen)
                .await
                .with_context(|| format!("cannot listen on {}", http.listen))?;
            let state = Arc::new(crate::api::ApiState {
                tasks: jobs.clone(),
                store: Store::open(&config.database)?,
                token: http.token.resolve().map_err(|e| e.at("http.token"))?,
                metrics: metrics.clone(),
                states: config.requests.clone(),
                status: Some(status.clone()),
            });
            tracing::info!(listen = %http.listen, "HTTP API listening");
            Some(tokio::spawn(crate::api::serve(
                listener,
                state,
                Duration::from_secs(http.header_timeout_seconds.max(1)),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let keeper = tokio::spawn(retention::run(
        config.retention.clone(),
        jobs.clone(),
        shutdown.clone(),
    ));
    let ledger = sender::Ledger::Dispatcher(jobs.clone());
    drop(jobs);
    let sender = tokio::spawn(sender::run(
        Store::open(&config.database)?,
        ledger,
        config.clone(),
        transport,
        wake,
        Some(metrics.clone()),
        shutdown.clone(),
    ));
    tracing::info!(
        accounts = config.accounts.len(),
        spool = ?config.spool,
        "relais is running; stop with Ctrl-C or SIGTERM"
    );
    // Under systemd (`Type=notify`): ready once every source is started.
    notify_service("READY=1");

    wait_for_signal().await;
    notify_service("STOPPING=1");
    tracing::info!("stopping: finishing the mail in flight");
    let _ = stop.send(true);
    if let Some(api) = api {
        // In-flight calls finish; new connections are refused.
        let _ = tokio::time::timeout(GRACE, api).await;
    }
    let finished = tokio::time::timeout(GRACE, futures::future::join_all(sources)).await;
    if finished.is_err() {
        tracing::warn!(
            "sources did not stop in time; their mail not committed will be fetched again"
        );
    }
    let _ = tokio::time::timeout(GRACE, sender).await;
    // The watcher may be in the middle of a reload: nothing waits on it.
    watcher.abort();
    for task in [scheduler, reporter, keeper] {
        let _ = tokio::time::timeout(GRACE, task).await;
    }
    // Every job sender is gone now: the dispatcher ends after its queue.
    tokio::task::spawn_blocking(move || dispatcher.join())
        .await
        .ok();
    tracing::info!("stopped");
    drop(lock);
    Ok(())
}

/// Tells the service manager `state` (`READY=1`, `STOPPING=1`) through
/// `$NOTIFY_SOCKET`, as `sd_notify` does; nothing without one.
fn notify_service(state: &str) {
    #[cfg(unix)]
    {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        let sent = std::os::unix::net::UnixDatagram::unbound().and_then(|datagram| {
            let bytes = socket.as_encoded_bytes();
            match bytes.strip_prefix(b"@") {
                // An abstract socket (Linux).
                #[cfg(target_os = "linux")]
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                    datagram.send_to_addr(state.as_bytes(), &address)
                }
                _ => datagram.send_to(state.as_bytes(), &socket),
            }
        });
        if let Err(error) = sent {
            tracing::warn!(state, error = %error, "cannot notify the service manager");
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}

fn invalid(diagnostics: &[crate::yaml::Diagnostic]) -> anyhow::Error {
    let lines: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
    anyhow!(
        "the rule set is invalid; nothing started:\n{}",
        lines.join("\n")
    )
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

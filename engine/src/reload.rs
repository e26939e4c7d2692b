//! Hot reload: the rules, templates and plugins a running engine uses are
//! replaced, whole and at once, when their files change; never by a set
//! that does not load.
//!
//! File system events are only hints. On any of them (debounced), and on a
//! periodic check for file systems that send none, the three directories
//! are read and hashed; when the hash moved, the whole set is loaded and
//! checked by the same code as start-up and `relais check`, plugins whose
//! bytes did not change are not compiled again, and the new set replaces
//! the old in one pointer swap. An event takes the set once, when it
//! starts, and finishes on it. A set that does not load is rejected whole:
//! the last good one stays, and the errors are kept for `relais status`,
//! the API and the metrics.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::plugins::{Plugins, Runtime};
use crate::rules::RuleSet;
use crate::templates::Templates;

/// The directories a rule set is loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Rule files (`*.yaml`).
    pub rules: PathBuf,
    /// Mail templates (`*.jinja`).
    pub templates: PathBuf,
    /// Customer plugins (`*.wasm`, `limits.yaml`).
    pub plugins: PathBuf,
    /// The identities of `relais.yaml` rules may name (`run.identity`).
    pub identities: Vec<String>,
}

impl Sources {
    fn dirs(&self) -> [(&'static str, &Path, &'static [&'static str]); 3] {
        [
            ("rules", &self.rules, &["yaml", "yml"]),
            ("templates", &self.templates, &["jinja"]),
            ("plugins", &self.plugins, &["wasm", "yaml"]),
        ]
    }

    /// A hash of every file a load reads, by directory, name and content,
    /// through symbolic links (a directory swapped by renaming a link, as
    /// a Kubernetes ConfigMap does, changes it).
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for (label, dir, extensions) in self.dirs() {
            hash.update(label.as_bytes());
            let Ok(entries) = std::fs::read_dir(dir) else {
                hash.update(b"\0absent\0");
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| extensions.contains(&e))
                })
                .collect();
            files.sort();
            for file in files {
                hash.update(b"\0");
                hash.update(file.file_name().unwrap_or_default().as_encoded_bytes());
                hash.update(b"\0");
                match std::fs::read(&file) {
                    Ok(content) => hash.update(&content),
                    // Gone between listing and reading: the next check sees.
                    Err(_) => hash.update(b"\0unreadable\0"),
                }
            }
        }
        hex::encode(hash.finalize())[..16].to_string()
    }
}

/// One loaded set: what events run with.
#[derive(Debug)]
pub struct Generation {
    /// Counts the sets this engine loaded, from 1.
    pub version: u64,
    /// The hash of the files it was loaded from.
    pub fingerprint: String,
    /// The rules.
    pub rules: Arc<RuleSet>,
    /// The plugins.
    pub plugins: Arc<Plugins>,
    /// The mail templates.
    pub templates: Arc<Templates>,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
}

impl Generation {
    /// A first set, from parts loaded elsewhere (benchmarks, tools).
    pub fn new(rules: RuleSet, plugins: Plugins, templates: Arc<Templates>) -> Generation {
        Generation {
            version: 1,
            fingerprint: String::new(),
            rules: Arc::new(rules),
            plugins: Arc::new(plugins),
            templates,
            loaded_at: crate::store::now(),
        }
    }
}

/// What a reload attempt gave.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Attempt {
    /// When it ended (RFC 3339).
    pub at: String,
    /// Whether the new set went live.
    pub ok: bool,
    /// The set's version when it went live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why it did not: every problem, `file:line:col: message`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// How long reading, checking and swapping took.
    pub duration_ms: u64,
}

/// The set in use, swapped whole on reload.
#[derive(Debug)]
pub struct Active {
    current: RwLock<Arc<Generation>>,
    last: Mutex<Option<Attempt>>,
}

impl Active {
    /// Starts with `generation`.
    pub fn new(generation: Generation) -> Active {
        Active {
            current: RwLock::new(Arc::new(generation)),
            last: Mutex::new(None),
        }
    }

    /// The set in use now: an event takes it once and keeps it to its end.
    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last reload attempt, if there was one.
    pub fn last_attempt(&self) -> Option<Attempt> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, generation: Generation) {
        // The write lock is held for a pointer swap only: events starting
        // meanwhile wait that long, and those running keep the old set.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(generation);
    }

    fn record(&self, attempt: Attempt) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(attempt);
    }
}

/// Loads `sources` as start-up does; `version` numbers the result.
pub fn load(
    runtime: &Runtime,
    sources: &Sources,
    version: u64,
) -> Result<Generation, Vec<crate::yaml::Diagnostic>> {
    let fingerprint = sources.fingerprint();
    let loaded = load_set(
        runtime,
        &sources.plugins,
        &sources.rules,
        &sources.templates,
        &sources.identities,
    )?;
    Ok(Generation {
        version,
        fingerprint,
        ..loaded
    })
}

/// Loads the plugins, the templates and the rules, and checks them
/// together: every problem (a plugin file that cannot load, a template
/// error, a rule error, a template a rule names that does not exist, an
/// identity no config defines) is returned, each with its file and
/// position. What loads is a first generation.
pub fn load_set(
    runtime: &Runtime,
    plugins_dir: &Path,
    rules_dir: &Path,
    templates_dir: &Path,
    identities: &[String],
) -> Result<Generation, Vec<crate::yaml::Diagnostic>> {
    let (plugins, mut diagnostics) = Plugins::load(runtime, plugins_dir);
    let templates = match Templates::load(templates_dir) {
        Ok(templates) => Some(templates),
        Err(errors) => {
            diagnostics.extend(errors);
            None
        }
    };
    let rules = match crate::rules::load_dir(rules_dir, &plugins) {
        Ok(rules) => rules,
        Err(rule_errors) => {
            diagnostics.extend(rule_errors);
            return Err(diagnostics);
        }
    };
    if let Some(templates) = &templates {
        diagnostics.extend(crate::rules::missing_templates(
            &rules,
            templates,
            templates_dir,
        ));
    }
    diagnostics.extend(crate::rules::unknown_identities(&rules, identities));
    match templates {
        Some(templates) if diagnostics.is_empty() => {
            Ok(Generation::new(rules, plugins, Arc::new(templates)))
        }
        _ => Err(diagnostics),
    }
}

/// Reloads `active` from `sources` when their files changed.
#[derive(Debug)]
pub struct Reloader {
    /// Where the set is loaded from.
    pub sources: Sources,
    /// Compiles plugins (and keeps those already compiled).
    pub runtime: Arc<Runtime>,
    /// The set in use.
    pub active: Arc<Active>,
    /// Where reloads are counted.
    pub metrics: Arc<Metrics>,
    /// The fingerprint of the last set tried, good or bad: a bad set is
    /// not tried again until its files change.
    tried: Mutex<String>,
}

impl Reloader {
    /// A reloader of `active`, whose set was loaded from `sources`.
    pub fn new(
        sources: Sources,
        runtime: Arc<Runtime>,
        active: Arc<Active>,
        metrics: Arc<Metrics>,
    ) -> Reloader {
        let tried = active.current().fingerprint.clone();
        Reloader {
            sources,
            runtime,
            active,
            metrics,
            tried: Mutex::new(tried),
        }
    }

    /// Reads the files; when they changed since the last attempt, loads
    /// the whole set and makes it live if it loads. `None` when nothing
    /// changed.
    pub fn check(&self) -> Option<Attempt> {
        let started = Instant::now();
        let fingerprint = self.sources.fingerprint();
        {
            let mut tried = self.tried.lock().unwrap_or_else(PoisonError::into_inner);
            if *tried == fingerprint {
                return None;
            }
            tried.clone_from(&fingerprint);
        }
        let version = self.active.current().version + 1;
        let loaded = load(&self.runtime, &self.sources, version);
        if self.sources.fingerprint() != fingerprint {
            // Changed while it loaded: what was read may mix two states.
            // The next check loads the files as they are then.
            *self.tried.lock().unwrap_or_else(PoisonError::into_inner) = String::new();
            return None;
        }
        let attempt = match loaded {
            Ok(generation) => {
                let hash = generation.rules.hash.clone();
                let rules = generation.rules.rules.len();
                self.metrics.know(&generation.rules, &generation.plugins);
                self.active.replace(generation);
                self.metrics.loaded(Some(&hash));
                tracing::info!(version, set = %hash, rules, "rule set reloaded");
                Attempt {
                    at: crate::store::now(),
                    ok: true,
                    version: Some(version),
                    errors: Vec::new(),
                    duration_ms: started.elapsed().as_millis() as u64,
                }
            }
            Err(diagnostics) => {
                self.metrics.loaded(None);
                let errors: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
                for error in &errors {
                    tracing::error!("reload refused, the last good rule set stays: {error}");
                }
                Attempt {
                    at: crate::store::now(),
                    ok: false,
                    version: None,
                    errors,
                    duration_ms: started.elapsed().as_millis() as u64,
                }
            }
        };
        self.active.record(attempt.clone());
        Some(attempt)
    }
}

/// Whether a file system event may change content: not an open or a read.
pub fn is_change(kind: &notify::EventKind) -> bool {
    !matches!(kind, notify::EventKind::Access(_))
}

/// Watches the sources' directories and reloads on change until
/// `shutdown`: file system events, debounced by `debounce`, and a check
/// every `poll` whatever the events.
pub async fn watch(
    reloader: Arc<Reloader>,
    debounce: Duration,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let (hints, mut hinted) = mpsc::unbounded_channel::<()>();
    let mut watches = Watches::start(&reloader.sources, debounce, hints);
    let mut ticks = tokio::time::interval(poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // SIGHUP, as daemons take it: look at the sources now.
    let mut hangups = hangups();
    loop {
        let hint = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(()) = hinted.recv() => true,
            _ = ticks.tick() => false,
            Some(()) = next_hangup(&mut hangups) => {
                tracing::info!("SIGHUP: checking the rules, templates and plugins now");
                false
            }
        };
        if hint {
            // A burst makes one reload: wait for `debounce` of quiet (the
            // debouncer releases each event on its own), at most a few
            // seconds, so a file rewritten without end still loads.
            let limit = tokio::time::Instant::now() + QUIET_LIMIT;
            while let Ok(Some(())) = tokio::time::timeout_at(
                limit.min(tokio::time::Instant::now() + debounce),
                hinted.recv(),
            )
            .await
            {}
        }
        let checking = reloader.clone();
        let refreshing = watches.take();
        // Reading, loading and re-watching block: off the async workers.
        let done = tokio::task::spawn_blocking(move || {
            checking.check();
            // A directory replaced by a link swap is watched anew, whether
            // or not its content changed.
            refreshing.map(|mut watches| {
                watches.refresh(&checking.sources);
                watches
            })
        })
        .await;
        match done {
            Ok(back) => watches = back,
            Err(error) => tracing::error!(error = %error, "a reload check failed"),
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

/// The SIGHUP stream, when the platform has one.
fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The next SIGHUP; never, without the stream.
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(stream) = hangups {
        return stream.recv().await;
    }
    #[cfg(not(unix))]
    let _ = hangups;
    std::future::pending().await
}

/// The longest a burst of changes delays its reload.
const QUIET_LIMIT: Duration = Duration::from_secs(3);

/// The debounced watches on the three directories and their parents (to
/// see a directory or a link to it replaced). Only events about the
/// directories count: the parent may hold the store, written all the time.
struct Watches {
    debouncer: notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    watched: Vec<PathBuf>,
    relevant: Arc<Mutex<Vec<PathBuf>>>,
}

impl Watches {
    fn start(
        sources: &Sources,
        debounce: Duration,
        hints: mpsc::UnboundedSender<()>,
    ) -> Option<Watches> {
        let relevant: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let filter = relevant.clone();
        let debouncer = notify_debouncer_full::new_debouncer(
            debounce,
            None,
            move |result: notify_debouncer_full::DebounceEventResult| {
                let Ok(events) = result else {
                    // The watcher lost track (overflow...): rescan.
                    let _ = hints.send(());
                    return;
                };
                let relevant = filter.lock().unwrap_or_else(PoisonError::into_inner);
                // A check reads the files: their opens must not trigger
                // the next check.
                let about_sources = events
                    .iter()
                    .filter(|event| is_change(&event.kind))
                    .flat_map(|event| event.paths.iter())
                    .any(|path| relevant.iter().any(|dir| path.starts_with(dir)));
                if about_sources {
                    let _ = hints.send(());
                }
            },
        );
        let debouncer = match debouncer {
            Ok(debouncer) => debouncer,
            Err(error) => {
                tracing::warn!(error = %error, "no file system events: reloads rely on the periodic check");
                return None;
            }
        };
        let mut watches = Watches {
            debouncer,
            watched: Vec::new(),
            relevant,
        };
        watches.refresh(sources);
        Some(watches)
    }

    fn refresh(&mut self, sources: &Sources) {
        let mut wanted: Vec<PathBuf> = Vec::new();
        let mut relevant: Vec<PathBuf> = Vec::new();
        for (_, dir, _) in sources.dirs() {
            // The directory itself, through its link when it is one.
            let target = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
            relevant.push(dir.to_path_buf());
            relevant.push(target.clone());
            wanted.push(target);
            let parent = match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if let (Ok(parent), Some(name)) = (parent.canonicalize(), dir.file_name()) {
                relevant.push(parent.join(name));
                wanted.push(parent);
            }
        }
        *self.relevant.lock().unwrap_or_else(PoisonError::into_inner) = relevant;
        let mut sorted = wanted.clone();
        sorted.sort();
        sorted.dedup();
        let mut current = self.watched.clone();
        current.sort();
        if sorted == current {
            return;
        }
        for old in std::mem::take(&mut self.watched) {
            let _ = self.debouncer.unwatch(&old);
        }
        for path in wanted {
            if self.watched.contains(&path) {
                continue;
            }
            match self
                .debouncer
                .watch(&path, notify::RecursiveMode::NonRecursive)
            {
                Ok(()) => self.watched.push(path),
                Err(error) => {
                    tracing::debug!(path = %path.display(), error = %error, "not watched; the periodic check covers it");
                }
            }
        }
    }
}

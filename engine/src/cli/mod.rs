//! Command-line glue: parses arguments, calls the library, prints results.

mod demo;
mod mail_cmd;
mod output;
mod plugin_cmd;
mod test_cmd;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use relais::plugins::{Limits, Runtime};
use relais::reload::Generation;
use relais::store::prelude::*;
use relais::yaml::Diagnostic;
use relais::{Dispatcher, Options, Outcome, Plugins, Store};

/// Relais: an automation engine for support desks.
#[derive(Debug, Parser)]
#[command(name = "relais", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    paths: PathArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the set-up lives: `--config` (or `RELAIS_CONFIG`, else
/// `relais.yaml` in the current directory when there is one) names the
/// config whose paths, identities and limits every command uses;
/// a path given here or by its environment variable wins over the file's.
/// Without a file, every default is relative to the current directory.
#[derive(Debug, Args)]
struct PathArgs {
    /// Engine config file (`relais.yaml`): its store, rules, plugins,
    /// templates, identities and limits apply to every command.
    #[arg(long, global = true, env = "RELAIS_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite store file [default: relais.db, or the config's `database`].
    #[arg(long, global = true, env = "RELAIS_DB")]
    db: Option<PathBuf>,
    /// Directory of rule files (`*.yaml`) [default: rules].
    #[arg(long, global = true, env = "RELAIS_RULES")]
    rules: Option<PathBuf>,
    /// Directory of customer plugins; bundled plugins are always available
    /// [default: plugins].
    #[arg(long, global = true, env = "RELAIS_PLUGINS")]
    plugins: Option<PathBuf>,
    /// Directory of mail templates (`*.jinja`) [default: templates].
    #[arg(long, global = true, env = "RELAIS_TEMPLATES")]
    templates: Option<PathBuf>,
}

/// The config file a command reads from the current directory when no
/// `--config` is given.
const DEFAULT_CONFIG: &str = "relais.yaml";

/// What a command works on: the config file's (or the defaults'), with the
/// paths given on the command line in place of its own.
#[derive(Debug)]
struct Paths {
    /// SQLite store file.
    db: PathBuf,
    /// Directory of rule files.
    rules: PathBuf,
    /// Directory of customer plugins.
    plugins: PathBuf,
    /// Directory of mail templates.
    templates: PathBuf,
    /// The config file, when one was given.
    file: Option<PathBuf>,
    /// The whole config, its paths replaced by the above.
    config: relais::config::Config,
}

impl Paths {
    /// Reads the config file, if any; its problems are printed.
    fn resolve(args: PathArgs) -> Result<Paths> {
        // `relais.yaml` of the current directory, when there is one: run
        // in a set-up's folder, every command uses its config.
        let file = args.config.clone().or_else(|| {
            let here = PathBuf::from(DEFAULT_CONFIG);
            here.is_file().then_some(here)
        });
        let mut config = match &file {
            Some(file) => relais::config::Config::load(file).map_err(|diagnostics| {
                print_diagnostics(&diagnostics);
                anyhow::anyhow!("{}: invalid config", file.display())
            })?,
            None => relais::config::Config::default(),
        };
        if let Some(db) = args.db {
            config.database = db;
        }
        if let Some(rules) = args.rules {
            config.rules = rules;
        }
        if let Some(plugins) = args.plugins {
            config.plugins = plugins;
        }
        if let Some(templates) = args.templates {
            config.templates = templates;
        }
        Ok(Paths {
            db: config.database.clone(),
            rules: config.rules.clone(),
            plugins: config.plugins.clone(),
            templates: config.templates.clone(),
            file,
            config,
        })
    }

    /// The dispatcher's limits and identities, from the config.
    fn options(&self) -> Options {
        relais::Options::of(&self.config)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import directory data (companies, customers, contacts, users, requests...).
    Import {
        /// Import files, each written in one transaction.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate the rule set and the plugins it names. Exit 0 when valid, 1 when not.
    Check,
    /// Print a JSON Schema: of rule files (the default), of `relais.yaml`
    /// (`config`) or of directory import files (`import`), for editors
    /// (`# yaml-language-server: $schema=...`) and scripts; or the HTTP
    /// API's OpenAPI document (`openapi`), as `/openapi.json` serves it.
    Schema {
        /// Which files.
        #[arg(value_enum, default_value = "rules")]
        kind: SchemaKind,
    },
    /// Process mails from `.eml` files, directories of them, or Maildir folders.
    Ingest {
        /// Show what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object per mail, one per line.
        #[arg(long)]
        json: bool,
        /// The account the mails are taken as received on (rules can match it).
        #[arg(long, default_value = "cli")]
        account: String,
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List recent runs, or show one trace in full.
    Runs {
        #[command(subcommand)]
        show: Option<RunsCommand>,
        /// Only runs that ended so: applied, no-match, failed, rejected,
        /// duplicate, dry-run.
        #[arg(long)]
        outcome: Option<String>,
        /// Only runs of this trigger (mail-received, request-saved,
        /// contract-event, schedule, or manual).
        #[arg(long)]
        trigger: Option<String>,
        /// Only runs in which this rule matched.
        #[arg(long)]
        rule: Option<String>,
        /// Only runs in which this plugin ran.
        #[arg(long)]
        plugin: Option<String>,
        /// Started at or after this time (RFC 3339, or a date).
        #[arg(long)]
        since: Option<String>,
        /// Started before this time (RFC 3339, or a date).
        #[arg(long)]
        until: Option<String>,
        /// The page after the one whose last run this is.
        #[arg(long)]
        before: Option<i64>,
        /// How many runs to list (at most 500).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// JSON output: one run per line.
        #[arg(long)]
        json: bool,
    },
    /// Show the direct messages on a request.
    Messages {
        /// Request number.
        request: u64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show the exchanges on a request (mail received from the customer,
    /// mail sent as an exchange, reminders), and who spoke last.
    Exchanges {
        /// Request number.
        request: u64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Run a `schedule` rule now, as its schedule would (a daily check, to
    /// see what it does today); its schedule goes on unchanged.
    Fire {
        /// Run it in a transaction that is rolled back: what it would do,
        /// failing where the real run would; nothing written.
        #[arg(long)]
        dry_run: bool,
        /// The rule's id.
        rule: String,
        /// The time the run is for (RFC 3339); now by default.
        #[arg(long)]
        at: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Save a support request, as the support system would through the API:
    /// fires `request-saved` (opened, resolved, closed, state-changed).
    Request {
        #[command(subcommand)]
        command: RequestCommand,
    },
    /// Fire a `contract-event` for a contract.
    ContractEvent {
        /// Run it in a transaction that is rolled back; nothing written.
        #[arg(long)]
        dry_run: bool,
        /// The contract's code.
        contract: String,
        /// The event kind, e.g. `expiring`.
        kind: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Run the engine: watch the spool folder and the IMAP accounts, process
    /// mail, deliver the outbox; stop with Ctrl-C or SIGTERM.
    Run,
    /// Show what the engine running on this store uses: the rule set
    /// (version, hash, rules), plugins, the last reload and its errors, and
    /// each source's state. Exit 1 when the last reload failed or no
    /// engine is running (`stopped`, or `gone` after a crash).
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show a mail's thread: the mails it answers, its replies and
    /// receipts, received and sent, across accounts, as a tree.
    Thread {
        /// Message-ID of any mail of the thread (angle brackets optional).
        message_id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Link a stored mail to a ticket by hand, to a new ticket made from
    /// it, or list the open tickets it could go to.
    #[command(
        group(clap::ArgGroup::new("target").required(true).args(["ticket", "new", "candidates"])),
        override_usage = "relais link [OPTIONS] <MESSAGE_ID> <TICKET|--new|--candidates>"
    )]
    Link {
        /// Message-ID of the mail (angle brackets optional).
        message_id: String,
        /// The ticket's number.
        ticket: Option<u64>,
        /// Create a ticket from the mail: its subject without prefixes,
        /// the sender's contact as requester.
        #[arg(long)]
        new: bool,
        /// With --new: the requesting contact, when the sender is not
        /// exactly one known contact.
        #[arg(long, requires = "new")]
        requester: Option<String>,
        /// With --new: the request type, when there is more than one.
        #[arg(long = "type", requires = "new")]
        request_type: Option<String>,
        /// Move a mail that is already on another ticket.
        #[arg(long = "move")]
        replace: bool,
        /// List the open tickets of the sender and of its customer.
        #[arg(long)]
        candidates: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Search the mail store, newest first: the mail left to link by hand
    /// (`--unlinked`), a ticket's, a sender's, the mail holding words or a
    /// file; each with its ticket and the run that processed it.
    Mails {
        /// Only mail on no ticket (left to link by hand).
        #[arg(long, conflicts_with_all = ["linked", "ticket"])]
        unlinked: bool,
        /// Only mail on a ticket.
        #[arg(long)]
        linked: bool,
        /// Only mail on this ticket.
        #[arg(long)]
        ticket: Option<u64>,
        /// Only mail of this account.
        #[arg(long)]
        account: Option<String>,
        /// The sender's address contains this.
        #[arg(long = "from")]
        sender: Option<String>,
        /// The subject contains this.
        #[arg(long)]
        subject: Option<String>,
        /// The subject or the text holds these words (case and accents do
        /// not matter).
        #[arg(long)]
        text: Option<String>,
        /// An attachment's file name contains this.
        #[arg(long)]
        attachment: Option<String>,
        /// Only mail whose sender is in no directory record.
        #[arg(long)]
        unknown_sender: bool,
        /// Leave out automatic mail (out-of-office, lists, bounces).
        #[arg(long)]
        no_automatic: bool,
        /// Received at or after this time (RFC 3339, or a date).
        #[arg(long)]
        since: Option<String>,
        /// Received before this time (RFC 3339, or a date).
        #[arg(long)]
        until: Option<String>,
        /// The page after the one whose last row had this id.
        #[arg(long)]
        before: Option<i64>,
        /// Rows per page.
        #[arg(long, default_value_t = relais::app::mails::DEFAULT_PAGE)]
        limit: usize,
        /// JSON output (one mail per line).
        #[arg(long)]
        json: bool,
    },
    /// List outbound mail (queued, sent, failed, suppressed), or retry failed mail.
    Outbox {
        #[command(subcommand)]
        retry: Option<OutboxCommand>,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// List the plugins rules can run.
    Plugins {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Plugin authors' tools: run a plugin on one event, start a new plugin.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Run rule unit tests: YAML files (or folders of them) giving a
    /// directory, inputs (mails, request saves, contract events, schedule
    /// fires) and what must come of each, against a throwaway store with
    /// the real rule set and plugins. Exit 0 when every test passes.
    Test {
        /// Test files, or folders of them (`rules/tests`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per test, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell's completion script: `relais completions bash >
    /// /etc/bash_completion.d/relais` (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `relais man > relais.1`.
    Man,
    /// Copy the store, consistent while the engine runs (SQLite's VACUUM
    /// INTO): restore by stopping the engine and putting the copy in the
    /// store's place.
    Backup {
        /// Where the copy goes; it must not exist.
        file: PathBuf,
    },
    /// Set up a demo in DIR (store, rules, sample directory and mails) and process its mails.
    Demo {
        /// Where to set up the demo; its store is recreated each time.
        #[arg(value_name = "DIR", default_value = "relais-demo")]
        place: PathBuf,
        /// The same, as an option.
        #[arg(long, conflicts_with = "place", hide = true)]
        dir: Option<PathBuf>,
    },
}

/// The files `relais schema` describes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SchemaKind {
    /// Rule files (`rules/*.yaml`).
    Rules,
    /// The engine config, `relais.yaml`.
    Config,
    /// Directory import files (`relais import`).
    Import,
    /// The HTTP API (OpenAPI 3.1).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run one plugin on one event and print its effects and logs; nothing is applied.
    Run {
        /// The plugin's `.wasm` file, or the name of a bundled plugin
        /// (`catchmail`, `alert-dispatch`, `ticket-link`, `reminders`).
        plugin: PathBuf,
        /// The event: an `.eml` file (mail-received) or a YAML/JSON event.
        #[arg(long)]
        event: PathBuf,
        /// The rule config, YAML or JSON (what a rule's `run.config` holds).
        #[arg(long = "rule-config")]
        rule_config: Option<PathBuf>,
        /// For an `.eml` event: the account it is taken as received on.
        #[arg(long, default_value = "cli")]
        account: String,
    },
    /// Install a plugin: check it as the engine will (its WIT version,
    /// metadata, triggers, capabilities and imports), then copy it into
    /// the plugins directory as NAME.wasm, where a running engine loads it
    /// on its next reload.
    Install {
        /// The plugin's `.wasm` file.
        file: PathBuf,
    },
    /// Create a new plugin from the template, ready to build.
    New {
        /// The plugin's name (letters, digits, `-`).
        name: String,
        /// Where to create its folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to the Relais SDK crate the plugin builds against.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RequestCommand {
    /// A request's whole story, oldest first: direct messages, exchanges,
    /// mail received and mail sent about it (alerts, notices, replies).
    Show {
        /// The request number.
        number: u64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Save the request(s) of a YAML or JSON file: one request (the fields
    /// of the import format's `requests` items) or a list of them.
    Save {
        /// Save and run in a transaction that is rolled back; nothing
        /// written.
        #[arg(long)]
        dry_run: bool,
        /// The file.
        file: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Queue failed mail again: one by id, or all with `--all`.
    Retry {
        /// Outbox id (see `relais outbox --status failed`).
        #[arg(required_unless_present = "all")]
        id: Option<i64>,
        /// Every failed mail.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Show one run's trace.
    Show {
        /// Run id.
        id: i64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Retry a failed run: its event through the rule set of the
    /// directories, as a new run (the failed one is kept).
    Retry {
        /// Run id.
        id: i64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line; exit 0 on success, 1 on failure (invalid input,
/// a mail that failed), 2 on usage errors (from clap).
pub fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RELAIS_LOG").unwrap_or_else(|_| "warn".into());
    // Colours for a person at a terminal only: never in a file, a pipe or
    // a journal, nor with NO_COLOR set.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match std::env::var("RELAIS_LOG_FORMAT").as_deref() {
        // One JSON object a line, for a log collector.
        Ok("json") => logs.json().flatten_event(true).init(),
        _ => logs.init(),
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `bytes` to standard output; a reader that stopped early (a
/// closed pipe) is no failure.
fn print_all(bytes: &[u8]) -> Result<ExitCode> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write to standard output")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// A listing piped into `head` ends quietly when `head` has read enough:
/// writing to a closed pipe is the reader's choice, not a failure.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn run(cli: Cli) -> Result<ExitCode> {
    let paths = &Paths::resolve(cli.paths)?;
    match cli.command {
        Command::Import { files } => import(paths, &files),
        Command::Check => check(paths),
        Command::Schema { kind } => {
            let schema = match kind {
                SchemaKind::Rules => relais::rules::json_schema(
                    relais::plugins::bundled()
                        .iter()
                        .map(|plugin| (plugin.name, plugin.config_schema)),
                ),
                SchemaKind::Config => relais::config::json_schema(),
                SchemaKind::Import => relais::directory::json_schema(),
                SchemaKind::Openapi => serde_json::from_str(relais::api::document())?,
            };
            let mut text = serde_json::to_string_pretty(&schema)?;
            text.push('\n');
            print_all(text.as_bytes())
        }
        Command::Ingest {
            dry_run,
            json,
            account,
            paths: inputs,
        } => ingest(paths, &inputs, &account, dry_run, json),
        Command::Runs {
            show: Some(RunsCommand::Show { id, json }),
            ..
        } => {
            let store = open_store(&paths.db)?;
            let run = store.run(id)?.with_context(|| format!("no run {id}"))?;
            // The rules that did not match are counted in the run; why
            // each did not is recomputed from its event, against the rule
            // set as it is now.
            let run = match runtime().ok().and_then(|r| load_config(&r, paths).ok()) {
                Some(loaded) => relais::explain::explained(&store, &loaded.rules, run)?,
                None => run,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                output::print_run(&run);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs {
            show: Some(RunsCommand::Retry { id, json }),
            ..
        } => run_event(paths, json, "nothing retried", |dispatcher, metrics| {
            relais::app::actions::retry(dispatcher, id, metrics)
        }),
        Command::Runs {
            show: None,
            outcome,
            trigger,
            rule,
            plugin,
            since,
            until,
            before,
            limit,
            json,
        } => {
            let filters = relais::app::runs::RunFilters {
                outcome,
                trigger,
                rule,
                plugin,
                since,
                until,
                before,
                limit: Some(limit),
            };
            let Some(query) = or_usage(filters.query()) else {
                return Ok(ExitCode::from(2));
            };
            let store = open_store(&paths.db)?;
            let runs = store.find_runs(&query)?.runs;
            if json {
                for run in &runs {
                    println!("{}", serde_json::to_string(run)?);
                }
            } else {
                output::print_runs(&runs);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Messages { request, json } => {
            let store = open_store(&paths.db)?;
            store
                .request(request)?
                .with_context(|| format!("no request {request}"))?;
            let messages = store.messages(request)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&messages)?);
            } else {
                output::print_messages(request, &messages);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Exchanges { request, json } => {
            let store = open_store(&paths.db)?;
            store
                .request(request)?
                .with_context(|| format!("no request {request}"))?;
            let exchanges = store.exchanges(request)?;
            let summary = store.exchange_summary(request)?;
            if json {
                let answer = serde_json::json!({
                    "request": request,
                    "summary": summary,
                    "exchanges": exchanges,
                });
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                output::print_exchanges(request, &summary, &exchanges);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Fire {
            rule,
            at,
            json,
            dry_run,
        } => fire(paths, &rule, at.as_deref(), json, dry_run),
        Command::Request {
            command: RequestCommand::Show { number, json },
        } => {
            let store = open_store(&paths.db)?;
            match relais::app::activity::activity(&store, number) {
                Ok(activity) if json => {
                    println!("{}", serde_json::to_string_pretty(&activity)?);
                    Ok(ExitCode::SUCCESS)
                }
                Ok(activity) => {
                    output::print_activity(&activity);
                    Ok(ExitCode::SUCCESS)
                }
                Err(relais::app::CallError::NotFound(message)) => {
                    eprintln!("error: {message}");
                    Ok(ExitCode::FAILURE)
                }
                Err(error) => Err(anyhow::anyhow!("{error}")),
            }
        }
        Command::Request {
            command:
                RequestCommand::Save {
                    file,
                    json,
                    dry_run,
                },
        } => save_requests(paths, &file, &paths.config.requests, json, dry_run),
        Command::ContractEvent {
            contract,
            kind,
            json,
            dry_run,
        } => contract_event(paths, &contract, &kind, json, dry_run),
        Command::Run => {
            bound_malloc_arenas();
            relais::daemon::run(paths.config.clone())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox {
            retry: Some(OutboxCommand::Retry { id, all: _ }),
            ..
        } => {
            let store = open_store(&paths.db)?;
            let queued = store.retry_mail(id)?;
            println!(
                "{queued} mail{} queued again",
                if queued == 1 { "" } else { "s" }
            );
            Ok(if queued == 0 && id.is_some() {
                eprintln!("no failed mail with that id");
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Outbox {
            retry: None,
            status,
            limit,
            json,
        } => {
            let store = open_store(&paths.db)?;
            let mails = store.outbox(status.as_deref(), limit)?;
            if json {
                for mail in &mails {
                    println!("{}", serde_json::to_string(mail)?);
                }
            } else {
                output::print_outbox(&mails);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugins { json } => {
            let runtime = runtime()?;
            let (plugins, errors) = Plugins::load(&runtime, &paths.plugins);
            if json {
                println!("{}", serde_json::to_string_pretty(&plugins.infos())?);
            } else {
                println!(
                    "{:<16} {:<8} {:<32} {:<30} capabilities",
                    "name", "version", "from", "triggers"
                );
                for info in plugins.infos() {
                    let capabilities = if info.capabilities.is_empty() {
                        "-".to_string()
                    } else {
                        info.capabilities.join(", ")
                    };
                    let origin = info.origin.to_string();
                    let triggers = info.triggers.join(", ");
                    println!(
                        "{:<16} {:<8} {origin:<32} {triggers:<30} {capabilities}",
                        info.name, info.version
                    );
                }
            }
            for error in &errors {
                eprintln!("refused: {error}");
            }
            Ok(if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Plugin {
            command:
                PluginCommand::Run {
                    plugin,
                    event,
                    rule_config,
                    account,
                },
        } => plugin_cmd::run(paths, &plugin, &event, rule_config.as_deref(), &account),
        Command::Plugin {
            command: PluginCommand::Install { file },
        } => plugin_cmd::install(paths, &file),
        Command::Plugin {
            command: PluginCommand::New { name, dir, sdk },
        } => plugin_cmd::new(&name, &dir, sdk.as_deref()),
        Command::Demo { place, dir } => demo::run(&dir.unwrap_or(place)),
        Command::Test { files, json } => test_cmd::run(paths, &files, json),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "relais", &mut text);
            print_all(&text)
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut text = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut text)
                .context("cannot render the manual page")?;
            print_all(&text)
        }
        Command::Backup { file } => {
            if file.exists() {
                anyhow::bail!("{} exists: give a new file", file.display());
            }
            let store = open_store(&paths.db)?;
            store.backup_to(&file)?;
            println!("{}: a copy of {}", file.display(), paths.db.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Thread { message_id, json } => mail_cmd::thread(paths, &message_id, json),
        Command::Status { json } => status(paths, json),
        Command::Mails {
            unlinked,
            linked,
            ticket,
            account,
            sender,
            subject,
            text,
            attachment,
            unknown_sender,
            no_automatic,
            since,
            until,
            before,
            limit,
            json,
        } => {
            let filters = relais::app::mails::MailFilters {
                linked: match (unlinked, linked) {
                    (true, _) => Some(false),
                    (false, true) => Some(true),
                    (false, false) => None,
                },
                ticket,
                account,
                sender,
                subject,
                text,
                attachment,
                unknown_sender,
                automatic: no_automatic.then_some(false),
                since,
                until,
                before,
                limit: Some(limit),
            };
            let Some(query) = or_usage(filters.query()) else {
                return Ok(ExitCode::from(2));
            };
            let store = open_store(&paths.db)?;
            let page = store.search_mails(&query)?;
            if json {
                for mail in &page.mails {
                    println!("{}", serde_json::to_string(mail)?);
                }
            } else {
                output::print_mails(&page);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Link {
            message_id,
            ticket,
            new,
            requester,
            request_type,
            replace,
            candidates,
            json,
        } => {
            let request = if candidates {
                mail_cmd::LinkRequest::Candidates
            } else if new {
                let target = relais::app::links::Target::New {
                    requester,
                    request_type,
                };
                mail_cmd::LinkRequest::Link(target, replace)
            } else {
                let ticket = ticket.context("name a ticket, --new or --candidates")?;
                mail_cmd::LinkRequest::Link(relais::app::links::Target::Ticket(ticket), replace)
            };
            mail_cmd::link(paths, &message_id, request, json)
        }
    }
}

/// Prints what the engine last recorded of itself in the store.
fn status(paths: &Paths, json: bool) -> Result<ExitCode> {
    let store = open_store(&paths.db)?;
    let Some((text, updated_at)) = store.engine_status()? else {
        anyhow::bail!(
            "no engine has run on {} yet (`relais run` records its status there)",
            paths.db.display()
        );
    };
    let mut status: serde_json::Value = serde_json::from_str(&text)?;
    // Whether an engine holds the store's lock says whether one runs: a
    // process that died without saying so is `gone`, one that stopped
    // cleanly recorded `stopped`.
    let alive = relais::daemon::lock::holder(&paths.db).is_some();
    if !alive && status["state"] == "running" {
        status["state"] = serde_json::json!("gone");
    }
    let failed = status["last-reload"]["ok"] == false || !alive;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        output::print_status(&status, &updated_at);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn open_store(path: &Path) -> Result<Store> {
    Ok(Store::open(path)?)
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for diagnostic in diagnostics {
        let _ = writeln!(err, "{diagnostic}");
    }
    let n = diagnostics.len();
    let _ = writeln!(err, "{n} error{}", if n == 1 { "" } else { "s" });
}

/// Imports each file in its own transaction, each a run marked manual;
/// stops at the first invalid one.
fn import(paths: &Paths, files: &[PathBuf]) -> Result<ExitCode> {
    let mut store = open_store(&paths.db)?;
    let options = paths.options();
    let context = relais::app::manual::Context {
        identity: &options.identity,
        templates: None,
        via: relais::app::manual::Via::Cli,
    };
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let import = relais::app::manual::Write::Import {
            name: file.display().to_string(),
            text,
        };
        match import.run(&mut store, &context) {
            Ok(relais::app::manual::Written::Imported(answer)) => {
                let counts = answer.imported;
                println!(
                    "{}: imported {} companies, {} customers, {} contacts, {} collaborators, {} users, {} request types, {} contracts, {} requests",
                    file.display(),
                    counts.companies,
                    counts.customers,
                    counts.contacts,
                    counts.collaborators,
                    counts.users,
                    counts.request_types,
                    counts.contracts,
                    counts.requests
                );
            }
            Ok(_) => unreachable!("an import answers what it imported"),
            Err(relais::app::CallError::Invalid { message, .. }) => {
                eprintln!("{message}");
                eprintln!("{}: nothing imported", file.display());
                return Ok(ExitCode::FAILURE);
            }
            Err(error) => return Err(anyhow::anyhow!("{error}")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon runs with one malloc arena: with the system allocator's
/// default (eight per core), each thread that handles a big mail keeps its
/// own high-water mark, and peak memory grows with the number of threads
/// rather than with the mails in flight (the memory bench measured 125 to
/// 165 MiB with 24 MiB mails, against 80 to 87 MiB with one arena, and no
/// loss of throughput: the engine has one writer). The variable is read once, at the
/// process's start: when it is not set, `relais run` starts itself again
/// with it (the same process, by `exec`, before it opened anything).
fn bound_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", "1")
        .exec();
    // Only reached when the exec failed: run as we are.
    tracing::debug!(error = %error, "could not bound the malloc arenas");
}

/// The plugin runtime with the default limits.
fn runtime() -> Result<Runtime> {
    Runtime::new(Limits::default())
        .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e}"))
}

/// Loads plugins, templates and rules; every problem (a plugin file that
/// cannot load, a template or rule error) as a diagnostic.
fn load_config(runtime: &Runtime, paths: &Paths) -> Result<Generation, Vec<Diagnostic>> {
    relais::reload::load_set(
        runtime,
        &paths.plugins,
        &paths.rules,
        &paths.templates,
        &paths.config.identity_names(),
    )
}

/// Loads everything, or prints why not and says nothing was done.
fn load_or_explain(runtime: &Runtime, paths: &Paths, what: &str) -> Option<Generation> {
    match load_config(runtime, paths) {
        Ok(loaded) => Some(loaded),
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            eprintln!("the rule set is invalid: {what}");
            None
        }
    }
}

fn check(paths: &Paths) -> Result<ExitCode> {
    match load_config(&runtime()?, paths) {
        Ok(loaded) => {
            // The directory's alert formats name templates: with a store,
            // check they exist too.
            if paths.db.exists() {
                let store = open_store(&paths.db)?;
                let problems =
                    relais::templates::unknown_alert_templates(&store, &loaded.templates)?;
                if !problems.is_empty() {
                    for problem in &problems {
                        eprintln!("{}: {problem}", paths.db.display());
                    }
                    eprintln!(
                        "{} error{}",
                        problems.len(),
                        if problems.len() == 1 { "" } else { "s" }
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            if let Some(file) = &paths.file {
                println!(
                    "ok: config {} ({} identit{}, {} account{})",
                    file.display(),
                    paths.config.identity_names().len(),
                    if paths.config.identity_names().len() == 1 {
                        "y"
                    } else {
                        "ies"
                    },
                    paths.config.accounts.len(),
                    if paths.config.accounts.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                );
            }
            let rules = &loaded.rules;
            let n = rules.rules.len();
            let t = loaded.templates.files().len();
            println!(
                "ok: {n} rule{} in {} file{}, {t} template{} (rule set {})",
                if n == 1 { "" } else { "s" },
                rules.files.len(),
                if rules.files.len() == 1 { "" } else { "s" },
                if t == 1 { "" } else { "s" },
                rules.hash
            );
            for info in loaded.plugins.infos() {
                if info
                    .capabilities
                    .iter()
                    .any(|c| c == relais_sdk::MAIL_ANYONE)
                {
                    println!(
                        "note: plugin `{}` may mail addresses outside the directory (capability {})",
                        info.name,
                        relais_sdk::MAIL_ANYONE
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `relais request save FILE`: each request checked then saved, in order.
fn save_requests(
    paths: &Paths,
    file: &Path,
    states: &relais::config::RequestStates,
    json: bool,
    dry_run: bool,
) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: serde_json::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: not YAML or JSON", file.display()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    let mut requests = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let request: relais::directory::RequestSpec = serde_path_to_error::deserialize(item)
            .map_err(|e| anyhow::anyhow!("{}: request {}: {e}", file.display(), index + 1))?;
        requests.push(request);
    }
    let runtime = runtime()?;
    let Some(loaded) = load_or_explain(&runtime, paths, "nothing saved") else {
        return Ok(ExitCode::FAILURE);
    };
    let mut store = open_store(&paths.db)?;
    let metrics = relais::metrics::Metrics::new();
    let options = paths.options();
    let mut dispatcher = dispatcher(&mut store, &loaded, &options);
    let mut failed = false;
    for request in &requests {
        match relais::app::actions::save_request(
            &mut dispatcher,
            request,
            states,
            &metrics,
            dry_run,
        ) {
            Ok(answer) => {
                failed |= answer.outcome == relais::dispatch::Outcome::Failed;
                if json {
                    println!("{}", serde_json::to_string(&answer)?);
                } else {
                    output::print_event_answer(&answer);
                }
            }
            Err(error) => {
                eprintln!("request {}: {error}: not saved", request.number);
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `relais contract-event CONTRACT KIND`.
fn contract_event(
    paths: &Paths,
    contract: &str,
    kind: &str,
    json: bool,
    dry_run: bool,
) -> Result<ExitCode> {
    let body = relais::api::ContractEventBody {
        contract: contract.to_string(),
        kind: kind.to_string(),
    };
    run_event(paths, json, "no event fired", |dispatcher, metrics| {
        relais::app::actions::contract_event(dispatcher, &body, metrics, dry_run)
    })
}

fn fire(
    paths: &Paths,
    rule: &str,
    at: Option<&str>,
    json: bool,
    dry_run: bool,
) -> Result<ExitCode> {
    run_event(paths, json, "nothing run", |dispatcher, metrics| {
        relais::app::actions::fire_schedule(dispatcher, rule, at, metrics, dry_run)
    })
}

/// `query`, or `None` once its error is printed: a filter given wrong is a
/// usage error (exit 2).
fn or_usage<T>(query: Result<T, relais::daemon::dispatcher::CallError>) -> Option<T> {
    query.map_err(|error| eprintln!("error: {error}")).ok()
}

/// Runs one event through a dispatcher on the store with the rule set of
/// the directories, and prints what it did; exit 1 when it failed or could
/// not run (`otherwise` says what did not happen).
fn run_event(
    paths: &Paths,
    json: bool,
    otherwise: &str,
    event: impl FnOnce(
        &mut Dispatcher<'_>,
        &relais::metrics::Metrics,
    ) -> Result<
        relais::app::answers::EventAnswer,
        relais::daemon::dispatcher::CallError,
    >,
) -> Result<ExitCode> {
    let runtime = runtime()?;
    let Some(loaded) = load_or_explain(&runtime, paths, otherwise) else {
        return Ok(ExitCode::FAILURE);
    };
    let mut store = open_store(&paths.db)?;
    let metrics = relais::metrics::Metrics::new();
    let options = paths.options();
    let mut dispatcher = dispatcher(&mut store, &loaded, &options);
    answer_event(event(&mut dispatcher, &metrics), json, otherwise)
}

/// Prints what an event did; exit 1 when it failed or could not run.
fn answer_event(
    answer: Result<relais::app::answers::EventAnswer, relais::daemon::dispatcher::CallError>,
    json: bool,
    otherwise: &str,
) -> Result<ExitCode> {
    match answer {
        Ok(answer) => {
            if json {
                println!("{}", serde_json::to_string(&answer)?);
            } else {
                output::print_event_answer(&answer);
            }
            Ok(if answer.outcome == relais::dispatch::Outcome::Failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(error) => {
            eprintln!("{error}: {otherwise}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A dispatcher on `store` with what was loaded.
fn dispatcher<'a>(
    store: &'a mut Store,
    loaded: &'a Generation,
    options: &'a Options,
) -> Dispatcher<'a> {
    Dispatcher {
        store,
        rules: &loaded.rules,
        plugins: &loaded.plugins,
        templates: &loaded.templates,
        options,
    }
}

fn ingest(
    paths: &Paths,
    inputs: &[PathBuf],
    account: &str,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode> {
    let runtime = runtime()?;
    let Some(loaded) = load_or_explain(&runtime, paths, "no mail processed") else {
        return Ok(ExitCode::FAILURE);
    };
    let mut store = open_store(&paths.db)?;
    let options = paths.options();
    let files = relais::sources::files::list(inputs);
    let verifier = paths.config.verifier().map_err(|e| anyhow::anyhow!(e))?;
    let reports = process_files(
        &mut store,
        &loaded,
        &options,
        &files,
        account,
        verifier.as_ref(),
        dry_run,
        json,
    )?;
    let bad = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Rejected))
        .count();
    if !json {
        output::print_ingest_summary(&reports);
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How many mails `relais ingest` commits at once, as the daemon's
/// dispatcher batches.
const INGEST_BATCH: usize = 256;

/// Processes mail files in order, printing a line each once committed.
#[allow(clippy::too_many_arguments)]
fn process_files(
    store: &mut Store,
    loaded: &Generation,
    options: &Options,
    files: &[relais::sources::files::MailFile],
    account: &str,
    verifier: Option<&relais::sources::verify::Verifier>,
    dry_run: bool,
    json: bool,
) -> Result<Vec<relais::Report>> {
    let progress = if files.len() > 1 && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(files.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut dispatcher = dispatcher(store, loaded, options);
    // Relais's own sender check asks DNS: a small runtime for it.
    let verifier = match verifier {
        Some(verifier) => Some((
            verifier,
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the DNS checks")?,
        )),
        None => None,
    };
    let mut reports = Vec::with_capacity(files.len());
    // Committed in batches, as the daemon does: one disk sync per batch,
    // not per mail. A mail's line is printed once its batch committed.
    for chunk in files.chunks(INGEST_BATCH) {
        let batched = chunk.len() > 1;
        if batched {
            dispatcher.store.begin_batch()?;
        }
        let mut done = Vec::with_capacity(chunk.len());
        for file in chunk {
            let source = file.path.display().to_string();
            let report = match file.read() {
                Ok(raw) => {
                    let parsed = match &verifier {
                        Some((verifier, io)) => io.block_on(
                            relais::sources::verify::parse_checked(&raw, account, Some(verifier)),
                        ),
                        None => relais::sources::mail::parse(&raw, account),
                    };
                    dispatcher.handle_received(&raw, parsed, Some(&source), None, dry_run)
                }
                Err(error) => dispatcher.reject_input(&source, error, dry_run),
            };
            match report {
                Ok(report) => done.push(report),
                Err(error) => {
                    dispatcher.store.rollback_batch();
                    return Err(error.into());
                }
            }
        }
        if batched && let Err(error) = dispatcher.store.commit_batch() {
            dispatcher.store.rollback_batch();
            // Nothing of the batch was written: say so for each mail.
            for report in &mut done {
                report.run = None;
                report.outcome = Outcome::Failed;
                report.error = Some(format!("commit failed, nothing written: {error}"));
            }
        }
        for report in done {
            let line = if json {
                serde_json::to_string(&output::ingest_json(&report))?
            } else {
                output::ingest_line(&report)
            };
            progress.suspend(|| println!("{line}"));
            progress.inc(1);
            reports.push(report);
        }
    }
    progress.finish_and_clear();
    Ok(reports)
}

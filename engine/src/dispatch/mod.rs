//! The dispatcher: matches an event against the rule set, runs each matched
//! rule's plugin, applies all their effects in one store transaction and
//! records a run trace of what happened and why.
//!
//! An event is all or nothing: if one plugin fails or one effect is refused,
//! no effect of the event is applied; the mail is kept with the status
//! `failed` and the trace says why, so it can be retried.
//!
//! - [`trace`]: what an event did and why (the report, each rule's trace);
//! - [`decide`]: matching rules and running plugins, which only reads;
//! - this module: the commit of what was decided, in one transaction;
//! - [`notices`]: summaries and the notices the engine writes itself;
//! - [`host`]: the store as plugins query it.

mod decide;
mod host;
mod notices;
mod trace;

use std::sync::Arc;
use std::time::Instant;

use relais_sdk::Event;

use crate::directory::RequestSpec;
use crate::effects::{self, EffectContext, MailIdentity};
use crate::plugins::Plugins;
use crate::rules::RuleSet;
use crate::sources::mail::{MailError, ParsedMail};
use crate::store::prelude::*;
use crate::store::{ImapReceipt, MailStatus, NewMail, RunRecord, Store, StoreError};
use crate::templates::Templates;

pub use decide::{DecidedEvent, DecidedMail, Decider};
pub use host::StoreHost;
pub use notices::MAIL_TOO_LARGE;
pub use trace::{LogLine, Outcome, Report, RuleTrace};

/// Limits and identity of the engine.
#[derive(Debug, Clone)]
pub struct Options {
    /// Mails larger than this are kept but not processed. The default
    /// (25 MiB) is the common limit of mail servers; parsing and plugin
    /// memory grow with the mail.
    pub max_mail_bytes: u64,
    /// Plugins see at most this many bytes of a mail's text.
    pub max_text_bytes: usize,
    /// Outbound mail identity.
    pub identity: MailIdentity,
    /// The authserv-ids whose `Authentication-Results` count.
    pub trusted_authserv_ids: Vec<String>,
}

impl Options {
    /// The limits and identities `config` sets.
    pub fn of(config: &crate::config::Config) -> Options {
        Options {
            max_mail_bytes: config.limits.max_mail_mib.saturating_mul(1 << 20),
            max_text_bytes: config.limits.max_text_kib.saturating_mul(1024),
            identity: config.mail_identity(),
            trusted_authserv_ids: config.authentication.trusted_authserv_ids.clone(),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_mail_bytes: 25 * 1024 * 1024,
            max_text_bytes: 1024 * 1024,
            identity: MailIdentity::default(),
            trusted_authserv_ids: Vec::new(),
        }
    }
}
/// Runs events against a rule set and a store.
#[derive(Debug)]
pub struct Dispatcher<'a> {
    /// Where effects and traces go.
    pub store: &'a mut Store,
    /// The active rule set.
    pub rules: &'a RuleSet,
    /// The plugins rules can run.
    pub plugins: &'a Plugins,
    /// The mail templates plugins render.
    pub templates: &'a Arc<Templates>,
    /// Limits and identity.
    pub options: &'a Options,
}

impl Dispatcher<'_> {
    /// Processes one raw mail received on `account`. `source` names where it
    /// came from (a file), for the report.
    pub fn handle_mail(
        &mut self,
        raw: &[u8],
        account: &str,
        source: Option<&str>,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let parsed = crate::sources::mail::parse(raw, account);
        self.handle_received(raw, parsed, source, None, dry_run)
    }

    /// Processes one raw mail already parsed (sources parse on their own
    /// thread, off the dispatcher's): decided, then committed. `receipt`,
    /// for a mail fetched from an IMAP server, is recorded in the same
    /// transaction, so the account's last UID moves only with what
    /// committed.
    pub fn handle_received(
        &mut self,
        raw: &[u8],
        parsed: Result<ParsedMail, MailError>,
        source: Option<&str>,
        receipt: Option<&ImapReceipt>,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let decided = self.decider().decide_mail(raw, parsed, source)?;
        self.commit_mail(decided, raw, receipt, dry_run)
    }

    /// Writes what [`Decider::decide_mail`] decided about `raw`: the mail,
    /// its receipt, the run and the effects, in one transaction.
    pub fn commit_mail(
        &mut self,
        decided: DecidedMail,
        raw: &[u8],
        receipt: Option<&ImapReceipt>,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let DecidedMail {
            report,
            parsed,
            status,
            started,
            started_at,
        } = decided;
        self.finish(
            report,
            parsed.as_ref(),
            raw,
            status,
            started,
            started_at,
            receipt,
            dry_run,
        )
    }

    /// The deciding half of this dispatcher, which only reads.
    pub fn decider(&self) -> Decider<'_> {
        Decider {
            store: self.store,
            rules: self.rules,
            plugins: self.plugins,
            templates: self.templates,
            options: self.options,
        }
    }

    /// Records that an input could not even be read (an unreadable file):
    /// a rejected run with the reason, so the trace shows it.
    pub fn reject_input(
        &mut self,
        source: &str,
        error: String,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let started = Instant::now();
        let started_at = crate::store::now();
        let mut report = Report::new(
            "mail-received",
            format!("unreadable input {source}"),
            Outcome::Rejected,
        );
        report.source = Some(source.to_string());
        report.error = Some(error);
        // Nothing was read, so there is no mail to keep: only the run.
        self.finish(
            report,
            None,
            &[],
            MailStatus::Processed,
            started,
            started_at,
            None,
            dry_run,
        )
    }

    /// Processes an event that carries no mail (request saved, contract
    /// event, schedule).
    pub fn handle_event(&mut self, event: &Event, dry_run: bool) -> Result<Report, StoreError> {
        self.run_event(event, None, dry_run)
    }

    fn run_event(
        &mut self,
        event: &Event,
        save: Option<&RequestSpec>,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let decided = self.decider().decide_event(event)?;
        self.commit_event(decided, save, dry_run)
    }

    /// Writes what [`Decider::decide_event`] decided: the request `save`
    /// writes when there is one, the run and the effects, in one
    /// transaction.
    pub fn commit_event(
        &mut self,
        decided: DecidedEvent,
        save: Option<&RequestSpec>,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        self.commit_decided(decided, None, save, dry_run)
    }

    /// Writes what [`Decider::decide_again`] decided: the effects and a
    /// new run, the failed one kept; a replayed mail's status becomes the
    /// new run's.
    pub fn commit_again(
        &mut self,
        decided: DecidedEvent,
        event: &relais_sdk::Event,
    ) -> Result<Report, StoreError> {
        let mail = match event {
            relais_sdk::Event::MailReceived(mail) => Some(mail),
            _ => None,
        };
        self.commit_decided(decided, mail, None, false)
    }

    /// Writes a decided event whose mail, if any, is stored already: the
    /// request saved, the run, the effects (checked against `mail`).
    fn commit_decided(
        &mut self,
        decided: DecidedEvent,
        mail: Option<&relais_sdk::Mail>,
        save: Option<&RequestSpec>,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let DecidedEvent {
            mut report,
            started,
            started_at,
        } = decided;
        self.commit(
            &mut report,
            None,
            started,
            started_at,
            mail,
            None,
            save,
            dry_run,
        )?;
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        mut report: Report,
        parsed: Option<&ParsedMail>,
        raw: &[u8],
        status: MailStatus,
        started: Instant,
        started_at: String,
        receipt: Option<&ImapReceipt>,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let keep_mail =
            report.outcome != Outcome::Duplicate && !raw.is_empty() && report.message_id.is_some();
        let mail = keep_mail.then_some((parsed, raw, status));
        self.commit(
            &mut report,
            mail,
            started,
            started_at,
            parsed.map(|p| &p.mail),
            receipt,
            None,
            dry_run,
        )?;
        Ok(report)
    }

    /// Writes the mail, the run and the effects in one transaction; if an
    /// effect is refused, writes the mail and the failed run instead.
    ///
    /// A dry run does all of it in a transaction it then rolls back: it
    /// fails exactly where the real run would (a mail already linked, a
    /// request that does not exist), and writes nothing.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        report: &mut Report,
        mail: Option<(Option<&ParsedMail>, &[u8], MailStatus)>,
        started: Instant,
        started_at: String,
        event_mail: Option<&relais_sdk::Mail>,
        receipt: Option<&ImapReceipt>,
        save: Option<&RequestSpec>,
        dry_run: bool,
    ) -> Result<(), StoreError> {
        let settings = self.store.settings()?;
        let identity = self.options.identity.clone();
        let attempt = |store: &mut Store,
                       report: &Report,
                       status: MailStatus,
                       apply: bool|
         -> Result<i64, ApplyError> {
            let tx = store.begin()?;
            if let Some((parsed, raw, _)) = &mail {
                insert_mail(&tx, report, *parsed, raw, status, &identity)?;
            }
            if let Some(receipt) = receipt {
                tx.record_receipt(receipt)?;
            }
            if let Some(request) = save {
                tx.save_request(request)?;
            }
            // A stored mail replayed: what became of it is this run's.
            if report.retry_of.is_some()
                && mail.is_none()
                && let Some(message_id) = &report.message_id
            {
                tx.set_mail_status(message_id, status)?;
            }
            let run = tx.record_run(&run_record(report, &started_at, started))?;
            if apply {
                let context = EffectContext {
                    run: Some(run),
                    settings: settings.clone(),
                    mail: event_mail,
                    identity: &identity,
                };
                effects::apply(&tx, &report.effects, &report.grants, &context)
                    .map_err(ApplyError::Effect)?;
            }
            if !dry_run {
                tx.commit()?;
            }
            // A dry run's transaction is dropped here: rolled back.
            Ok(run)
        };
        let status = mail.as_ref().map(|m| m.2).unwrap_or(MailStatus::Processed);
        // Applied events, and a rejected mail's notice to its sender.
        let apply = matches!(report.outcome, Outcome::Applied | Outcome::Rejected)
            && !report.effects.is_empty();
        match attempt(self.store, report, status, apply) {
            Ok(_) if dry_run => *report = shown_only(report.clone(), started),
            Ok(run) => report.run = Some(run),
            Err(ApplyError::Store(error)) => return Err(error),
            Err(ApplyError::Effect(error)) if dry_run => {
                report.outcome = Outcome::Failed;
                report.error = Some(error.to_string());
            }
            Err(ApplyError::Effect(error)) => {
                tracing::warn!(error = %error, "effects refused; event failed");
                report.outcome = Outcome::Failed;
                report.error = Some(error.to_string());
                match attempt(self.store, report, MailStatus::Failed, false) {
                    Ok(run) => report.run = Some(run),
                    Err(ApplyError::Store(error)) => return Err(error),
                    Err(ApplyError::Effect(_)) => {
                        unreachable!("effects are not applied on the failure path")
                    }
                }
            }
        }
        report.duration_us = started.elapsed().as_micros() as u64;
        Ok(())
    }
}

/// A dry run's report: what would have been applied, nothing written.
fn shown_only(mut report: Report, started: Instant) -> Report {
    if report.outcome == Outcome::Applied {
        report.outcome = Outcome::DryRun;
    }
    report.duration_us = started.elapsed().as_micros() as u64;
    report
}

enum ApplyError {
    Store(StoreError),
    Effect(effects::EffectError),
}

impl From<StoreError> for ApplyError {
    fn from(error: StoreError) -> Self {
        ApplyError::Store(error)
    }
}

fn insert_mail(
    tx: &crate::store::Tx<'_>,
    report: &Report,
    parsed: Option<&ParsedMail>,
    raw: &[u8],
    status: MailStatus,
    identity: &MailIdentity,
) -> Result<i64, StoreError> {
    let empty: [String; 0] = [];
    let message_id = report.message_id.as_deref().unwrap_or_default();
    let automatic = parsed.and_then(|p| p.mail.automatic_reason(&identity.own_addresses()));
    let record = match parsed {
        Some(parsed) => NewMail {
            message_id,
            account: &parsed.mail.account,
            subject: &parsed.mail.subject,
            sender: parsed.mail.from.as_ref().map(|a| a.email.as_str()),
            sent_at: parsed.mail.date.as_deref(),
            in_reply_to: &parsed.mail.in_reply_to,
            references: &parsed.mail.references,
            raw,
            attachments: &parsed.attachments,
            report: parsed.report.as_deref(),
            automatic: automatic.as_deref(),
            status,
            error: report.error.as_deref(),
            fingerprint: Some(&parsed.fingerprint),
            text: &parsed.mail.text,
        },
        None => NewMail {
            message_id,
            account: "",
            subject: "",
            sender: None,
            sent_at: None,
            in_reply_to: &empty,
            references: &empty,
            raw,
            attachments: &[],
            report: None,
            automatic: None,
            status,
            error: report.error.as_deref(),
            fingerprint: None,
            text: "",
        },
    };
    tx.insert_mail(&record)
}

fn run_record(report: &Report, started_at: &str, started: Instant) -> RunRecord {
    RunRecord {
        id: 0,
        trigger: report.trigger.clone(),
        summary: report.summary.clone(),
        message_id: report.message_id.clone(),
        outcome: report.outcome.as_str().to_string(),
        error: report.error.clone(),
        started_at: started_at.to_string(),
        duration_us: started.elapsed().as_micros() as u64,
        trace: serde_json::json!({
            "source": report.source,
            "rules": report.trace,
            "not-matched": report.not_matched,
            "rule-set": report.rule_set,
            "effects": report.effects,
            "warnings": report.warnings,
            "authentication": report.authentication,
            "event": report.event,
            "retry-of": report.retry_of,
        }),
    }
}
#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use relais_sdk::{
        Author, ChangeKind, Effect, Host, Level, MessageSource, PartyKind, Request, RequestSaved,
        Side,
    };

    use super::*;
    use crate::plugins::{Failure, Origin, Plugin, PluginInfo};

    /// A plugin that posts one message on the request it is given, or on
    /// the one its config names.
    struct Poster(PluginInfo);

    impl Plugin for Poster {
        fn info(&self) -> &PluginInfo {
            &self.0
        }
        fn check_config(&self, _: &serde_json::Value) -> Result<(), String> {
            Ok(())
        }
        fn handle(
            &self,
            event: &Event,
            config: &crate::rules::RuleConfig,
            host: Arc<dyn Host + Send + Sync>,
        ) -> Result<Vec<Effect>, Failure> {
            host.log(Level::Info, "deciding");
            let Event::RequestSaved(saved) = event else {
                return Ok(Vec::new());
            };
            let config = config.value();
            if config.get("fail").is_some() {
                return Err(Failure::Refused("told to fail".into()));
            }
            let request = config
                .get("request")
                .and_then(|r| r.as_u64())
                .unwrap_or(saved.after.number);
            let (kind, id, side) = match config.get("author").and_then(|a| a.as_str()) {
                Some(contact) => (PartyKind::Contact, contact.to_string(), Side::Customer),
                None => (PartyKind::Collaborator, "co-paul".to_string(), Side::Staff),
            };
            Ok(vec![Effect::PostMessage {
                request,
                author: Author { kind, id },
                side,
                source: MessageSource::Plugin,
                body: format!("saved: {:?}", saved.changes),
                notify_by_email: None,
            }])
        }
    }

    fn setup(rules: &str) -> (Store, RuleSet, Plugins) {
        let mut store = Store::open_in_memory().expect("store");
        let directory = "companies: [ { code: A, name: A } ]\n\
            customers: [ { code: C, name: C, company: A }, { code: D, name: D, company: A } ]\n\
            contacts: [ { id: ct-d, name: Dora, customer: D, email: dora@d.example } ]\n\
            collaborators: [ { id: co-paul, name: Paul, email: paul@acme.example } ]\n\
            request-types: [ { code: INC } ]\n\
            requests: [ { number: 1, company: A, customer: C, type: INC, state: open } ]\n";
        let data = crate::directory::parse(std::path::Path::new("d.yaml"), directory, &store)
            .expect("valid");
        store.import_directory(&data).expect("import");
        let mut plugins = Plugins::default();
        plugins.add(Arc::new(Poster(PluginInfo {
            name: "poster".into(),
            version: "1".into(),
            origin: Origin::Bundled,
            capabilities: vec![],
            triggers: relais_sdk::TRIGGERS.iter().map(|t| t.to_string()).collect(),
        })));
        let rules =
            crate::rules::load_sources(&[(PathBuf::from("r.yaml"), rules.to_string())], &plugins)
                .expect("valid rules");
        (store, rules, plugins)
    }

    /// Runs one request-saved event with these change kinds through `rules`.
    fn dispatch(rules: &str, changes: &[Vec<ChangeKind>]) -> (Store, Vec<Report>) {
        let (mut store, rules, plugins) = setup(rules);
        let options = Options::default();
        let templates = Arc::new(Templates::new());
        let mut dispatcher = Dispatcher {
            store: &mut store,
            rules: &rules,
            plugins: &plugins,
            templates: &templates,
            options: &options,
        };
        let reports = changes
            .iter()
            .map(|kinds| {
                dispatcher
                    .handle_event(&saved(kinds.clone()), false)
                    .expect("runs")
            })
            .collect();
        (store, reports)
    }

    fn saved(changes: Vec<ChangeKind>) -> Event {
        let after = Request {
            number: 1,
            state: "closed".into(),
            ..Request::default()
        };
        Event::RequestSaved(RequestSaved {
            before: None,
            after,
            changes,
        })
    }

    #[test]
    fn request_saved_rules_match_on_change_kind_and_apply() {
        let (store, reports) = dispatch(
            "rules:\n  - id: on-close\n    on: request-saved\n    when: { change: closed }\n    run: { plugin: poster }\n",
            &[vec![ChangeKind::Opened], vec![ChangeKind::Closed]],
        );
        assert_eq!(reports[0].outcome, Outcome::NoMatch);
        // Counted in the run; why, recomputed from the stored event.
        assert_eq!(reports[0].not_matched, 1);
        assert!(reports[0].trace.is_empty());
        let run = store
            .run(reports[0].run.expect("recorded"))
            .expect("query")
            .expect("run");
        let (_, rules, _) = setup(
            "rules:\n  - id: on-close\n    on: request-saved\n    when: { change: closed }\n    run: { plugin: poster }\n",
        );
        let run = crate::explain::explained(&store, &rules, run).expect("explained");
        assert_eq!(
            run.trace["rules"][0]["reason"],
            "change: [opened] has none of [closed]"
        );
        assert_eq!(reports[1].outcome, Outcome::Applied);
        assert_eq!(reports[1].trace[0].logs[0].message, "deciding");
        assert_eq!(store.messages(1).expect("messages").len(), 1);
        assert_eq!(
            store.runs(10).expect("runs").len(),
            2,
            "every event is traced"
        );
    }

    #[test]
    fn one_refused_effect_fails_the_whole_event() {
        let (store, reports) = dispatch(
            "rules:\n  - id: good\n    on: request-saved\n    run: { plugin: poster }\n  - id: bad\n    on: request-saved\n    run: { plugin: poster, config: { request: 999 } }\n",
            &[vec![ChangeKind::Closed]],
        );
        let report = &reports[0];
        assert_eq!(report.outcome, Outcome::Failed);
        let error = report.error.as_deref();
        assert_eq!(
            error,
            Some("effect 2 (post-message): request 999 does not exist")
        );
        let messages = store.messages(1).expect("messages");
        assert!(
            messages.is_empty(),
            "the good effect was not applied either"
        );
        let run = store.run(report.run.expect("traced")).expect("query");
        assert_eq!(run.expect("run").outcome, "failed");
    }

    #[test]
    fn a_failing_plugin_fails_the_event_and_says_which() {
        let (store, reports) = dispatch(
            "rules:\n  - id: good\n    on: request-saved\n    run: { plugin: poster }\n  - id: broken\n    on: request-saved\n    run: { plugin: poster, config: { fail: true } }\n",
            &[vec![ChangeKind::Closed]],
        );
        let report = &reports[0];
        assert_eq!(report.outcome, Outcome::Failed);
        let error = report.error.as_deref();
        assert_eq!(
            error,
            Some("rule `broken`: plugin `poster` refused the event: told to fail")
        );
        assert!(report.effects.is_empty());
        assert!(store.messages(1).expect("messages").is_empty());
    }

    #[test]
    fn an_effect_across_the_customer_boundary_is_refused_whichever_plugin_returns_it() {
        let (store, reports) = dispatch(
            "rules:\n  - id: cross\n    on: request-saved\n    run: { plugin: poster, config: { author: ct-d } }\n",
            &[vec![ChangeKind::Closed]],
        );
        let report = &reports[0];
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(
            report.error.as_deref(),
            Some(
                "effect 1 (post-message): contact `ct-d` of customer `D` may not write on request 1 of customer `C`"
            )
        );
        assert!(store.messages(1).expect("messages").is_empty());
    }
}

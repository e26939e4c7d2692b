//! The dispatcher: matches an event against the rule set, runs each matched
//! rule's plugin, applies all their effects in one store transaction and
//! records a run trace of what happened and why.
//!
//! An event is all or nothing: if one plugin fails or one effect is refused,
//! no effect of the event is applied; the mail is kept with the status
//! `failed` and the trace says why, so it can be retried.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use relais_sdk::{
    AddressOwner, ContractDetails, Customer, Effect, Event, Host, HostError, Level, Rendered,
    Request, RequestSaved, RequestType, Settings, ThreadMail,
};
use serde::Serialize;

use crate::config::RequestStates;
use crate::directory::RequestSpec;
use crate::effects::{self, EffectContext, MailIdentity};
use crate::plugins::Plugins;
use crate::rules::RuleSet;
use crate::sources::mail::{MailError, ParsedMail, derived_message_id};
use crate::store::{ImapReceipt, MailStatus, NewMail, RunRecord, Store, StoreError};
use crate::templates::Templates;

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

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Rules matched and their effects were applied.
    Applied,
    /// No rule matched: nothing to do.
    NoMatch,
    /// Dry run: the effects were computed, not applied.
    DryRun,
    /// A plugin or an effect failed; nothing was applied.
    Failed,
    /// The input is not processable (empty, malformed, too large, unreadable).
    Rejected,
    /// This mail was already processed.
    Duplicate,
}

impl Outcome {
    /// The name used in traces and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::NoMatch => "no-match",
            Outcome::DryRun => "dry-run",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// A plugin's log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// The plugin's name.
    pub plugin: String,
    /// `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The line.
    pub message: String,
}

/// What one rule did with the event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RuleTrace {
    /// The rule's id.
    pub id: String,
    /// Where it is defined.
    pub source: String,
    /// Whether its conditions held.
    pub matched: bool,
    /// Which condition failed, when it did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The plugin run, when it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// The effects its plugin returned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
    /// Its plugin's log lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
    /// Why its plugin failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `refused` (the plugin said no), `fault` (trap, loop, memory, limits)
    /// or `host` (our failure): the first two are the plugin's, a `host`
    /// failure is worth a retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'static str>,
    /// How long its plugin took, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
}

/// What an event did: printed by the CLI, stored as the run trace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    /// The recorded run's id (none on a dry run).
    pub run: Option<i64>,
    /// The trigger.
    pub trigger: String,
    /// Where the input came from (a file path), when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The mail's Message-ID, for mail events.
    pub message_id: Option<String>,
    /// One line saying what the event was.
    pub summary: String,
    /// Ids of the rules that matched.
    pub rules: Vec<String>,
    /// Every effect, in order.
    pub effects: Vec<Effect>,
    /// What the rule behind each effect allows it (its identity, whether
    /// its plugin may mail anyone), side by side with `effects`.
    #[serde(skip)]
    pub grants: Vec<effects::Grant>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed or was rejected.
    pub error: Option<String>,
    /// What could not be read well.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// For a mail: whether its sender is who `From` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<relais_sdk::SenderAuthentication>,
    /// Per rule that matched: its plugin, effects, logs, failure.
    pub trace: Vec<RuleTrace>,
    /// How many of the trigger's rules did not match (counted, not
    /// traced: `relais runs show` says why each did not).
    pub not_matched: usize,
    /// The hash of the rule set the event ran on.
    pub rule_set: Option<String>,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// The event, for events that carry no mail: kept in the trace so that
    /// the run can be replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
}

impl Report {
    fn new(trigger: &str, summary: String, outcome: Outcome) -> Report {
        Report {
            run: None,
            trigger: trigger.to_string(),
            source: None,
            message_id: None,
            summary,
            rules: Vec::new(),
            effects: Vec::new(),
            grants: Vec::new(),
            outcome,
            error: None,
            warnings: Vec::new(),
            authentication: None,
            trace: Vec::new(),
            not_matched: 0,
            rule_set: None,
            duration_us: 0,
            event: None,
        }
    }
}

/// The deciding half of a [`Dispatcher`]: matches rules and runs plugins,
/// reading the store and never writing it.
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    /// What plugins and duplicate checks read.
    pub store: &'a Store,
    /// The active rule set.
    pub rules: &'a RuleSet,
    /// The plugins rules can run.
    pub plugins: &'a Plugins,
    /// The mail templates plugins render.
    pub templates: &'a Arc<Templates>,
    /// Limits and identity.
    pub options: &'a Options,
}

/// A mail decided, waiting for its commit.
#[derive(Debug)]
pub struct DecidedMail {
    report: Report,
    parsed: Option<ParsedMail>,
    status: MailStatus,
    started: Instant,
    started_at: String,
}

impl DecidedMail {
    /// What was decided, before anything is written.
    pub fn report(&self) -> &Report {
        &self.report
    }
}

impl Decider<'_> {
    /// Decides what to do about one raw mail already parsed: everything
    /// but the writes, which [`Dispatcher::commit_mail`] makes. It only
    /// reads the store, so it may run on any thread, beside other
    /// decisions; it sees what was committed before it started.
    pub fn decide_mail(
        &self,
        raw: &[u8],
        parsed: Result<ParsedMail, MailError>,
        source: Option<&str>,
    ) -> Result<DecidedMail, StoreError> {
        let started = Instant::now();
        let started_at = crate::store::now();
        let mut report = Report::new("mail-received", String::new(), Outcome::Rejected);
        report.source = source.map(str::to_string);
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                report.error = Some(error.to_string());
                report.summary = format!(
                    "unreadable mail{}",
                    source.map(|s| format!(" from {s}")).unwrap_or_default()
                );
                if let MailError::Malformed(_) = error {
                    // Keep what was received: nothing is lost, even unreadable.
                    let id = derived_message_id(raw);
                    report.message_id = Some(id.clone());
                    if self.store.mail_exists(&id)? {
                        report.outcome = Outcome::Duplicate;
                        report.error = None;
                    }
                }
                return Ok(DecidedMail {
                    report,
                    parsed: None,
                    status: MailStatus::Malformed,
                    started,
                    started_at,
                });
            }
        };
        let mut parsed = parsed;
        parsed.mail.authentication = crate::sources::auth::verdict(
            parsed.own_results.as_deref(),
            &parsed.auth_headers,
            &self.options.trusted_authserv_ids,
            parsed.mail.from.as_ref().map(|from| from.email.as_str()),
        );
        if parsed.mail.text.len() > self.options.max_text_bytes {
            let mut end = self.options.max_text_bytes;
            while !parsed.mail.text.is_char_boundary(end) {
                end -= 1;
            }
            parsed.warnings.push(format!(
                "text of {} cut to {} for plugins (limits.max-text-kib); the whole mail is stored",
                human_size(parsed.mail.text.len() as u64),
                human_size(end as u64)
            ));
            parsed.mail.text.truncate(end);
            parsed.mail.text_truncated = true;
        }
        report.warnings = parsed.warnings.clone();
        let duplicate = self.is_duplicate(&mut parsed, &mut report)?;
        let mail = &parsed.mail;
        report.message_id = Some(mail.message_id.clone());
        report.authentication = Some(mail.authentication.clone());
        report.summary = summarize_mail(mail);
        if duplicate {
            report.outcome = Outcome::Duplicate;
            return Ok(DecidedMail {
                report,
                parsed: Some(parsed),
                status: MailStatus::Processed,
                started,
                started_at,
            });
        }
        if raw.len() as u64 > self.options.max_mail_bytes {
            report.error = Some(format!(
                "mail of {} is larger than the {} limit: kept, not processed",
                human_size(raw.len() as u64),
                human_size(self.options.max_mail_bytes)
            ));
            report.effects.extend(too_large_notice(
                mail,
                &self.options.identity,
                self.options.max_mail_bytes,
                &mut report.warnings,
            ));
            return Ok(DecidedMail {
                report,
                parsed: Some(parsed),
                status: MailStatus::TooLarge,
                started,
                started_at,
            });
        }
        let event = Event::MailReceived(parsed.mail.clone());
        self.run_rules(&event, &mut report)?;
        let status = if report.outcome == Outcome::Failed {
            MailStatus::Failed
        } else {
            MailStatus::Processed
        };
        Ok(DecidedMail {
            report,
            parsed: Some(parsed),
            status,
            started,
            started_at,
        })
    }

    /// Whether `parsed` was already stored: its Message-ID with the same
    /// content. A different mail that reuses an id is kept under an id of
    /// its own ([`collision_id`](crate::sources::mail::collision_id)),
    /// with a warning naming the collision.
    fn is_duplicate(
        &self,
        parsed: &mut ParsedMail,
        report: &mut Report,
    ) -> Result<bool, StoreError> {
        let id = parsed.mail.message_id.clone();
        let same =
            |stored: &Option<String>| stored.as_deref().is_none_or(|fp| fp == parsed.fingerprint);
        match self.store.mail_fingerprint(&id)? {
            None => return Ok(false),
            Some(stored) if same(&stored) => return Ok(true),
            Some(_) => {}
        }
        let own = crate::sources::mail::collision_id(&id, &parsed.fingerprint);
        let taken = self.store.mail_fingerprint(&own)?;
        if taken.is_none() {
            report.warnings.push(format!(
                "Message-ID <{id}> is already used by a different mail: this one is kept as <{own}>"
            ));
        }
        parsed.mail.message_id = own;
        Ok(taken.is_some())
    }

    /// Matches rules and runs plugins; sets `outcome` to `applied`,
    /// `no-match` or `failed` and fills the trace.
    fn run_rules(&self, event: &Event, report: &mut Report) -> Result<(), StoreError> {
        let mut failed = None;
        // A schedule fires one rule: the one whose time came.
        let only = match event {
            Event::Schedule(fired) => Some(fired.rule.as_str()),
            _ => None,
        };
        let (candidates, all) = self.rules.candidates(event);
        report.rule_set = Some(self.rules.hash.clone());
        let mut matched = 0;
        for rule in candidates
            .into_iter()
            .filter(|rule| only.is_none_or(|id| id == rule.id))
        {
            // A rule that does not match is counted, not traced: `relais
            // runs show` says why from the stored event when asked.
            if rule
                .condition
                .as_ref()
                .is_some_and(|condition| !condition.holds(event))
            {
                continue;
            }
            matched += 1;
            let mut trace = RuleTrace {
                id: rule.id.clone(),
                source: rule.source.clone(),
                matched: true,
                reason: None,
                plugin: None,
                effects: Vec::new(),
                logs: Vec::new(),
                error: None,
                failure: None,
                duration_us: None,
            };
            report.rules.push(rule.id.clone());
            trace.plugin = Some(rule.plugin.clone());
            let Some(plugin) = self.plugins.get(&rule.plugin) else {
                let error = format!("plugin `{}` is not loaded", rule.plugin);
                trace.error = Some(error.clone());
                failed.get_or_insert(format!("rule `{}`: {error}", rule.id));
                report.trace.push(trace);
                continue;
            };
            let host = Arc::new(StoreHost::new(
                self.store.clone(),
                self.templates.clone(),
                &rule.plugin,
            ));
            let started = Instant::now();
            let result = plugin.handle(event, &rule.config, host.clone());
            trace.duration_us = Some(started.elapsed().as_micros() as u64);
            trace.logs = host.take_logs();
            match result {
                Ok(effects) => {
                    let grant = effects::Grant {
                        identity: rule.identity.as_ref().map(|(name, _)| name.clone()),
                        mail_anyone: plugin
                            .info()
                            .capabilities
                            .iter()
                            .any(|c| c == relais_sdk::MAIL_ANYONE),
                    };
                    report
                        .grants
                        .extend(std::iter::repeat_n(grant, effects.len()));
                    report.effects.extend(effects.iter().cloned());
                    trace.effects = effects;
                }
                Err(failure) => {
                    tracing::warn!(rule = %rule.id, plugin = %rule.plugin, error = %failure, "plugin failed");
                    trace.error = Some(failure.to_string());
                    trace.failure = Some(failure.kind());
                    failed.get_or_insert(format!(
                        "rule `{}`: plugin `{}` {failure}",
                        rule.id, rule.plugin
                    ));
                }
            }
            report.trace.push(trace);
        }
        report.not_matched = if only.is_some() { 0 } else { all - matched };
        if let Some(error) = failed {
            report.outcome = Outcome::Failed;
            report.error = Some(error);
            report.effects.clear();
            report.grants.clear();
        } else if report.rules.is_empty() {
            report.outcome = Outcome::NoMatch;
        } else {
            report.outcome = Outcome::Applied;
        }
        Ok(())
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

    /// Processes a request save from the support system: the request is
    /// written, and the `request-saved` event (before, after, change kinds)
    /// runs, in one transaction. A failing plugin does not undo the save
    /// (the support system already saved it): the run is traced as failed,
    /// with the event, so it can be run again. `request` must have passed
    /// [`crate::requests::check`].
    pub fn handle_request_save(
        &mut self,
        request: &RequestSpec,
        states: &RequestStates,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let before = self.store.request(request.number)?;
        let after = crate::requests::to_request(request);
        let changes = crate::requests::changes(before.as_ref(), &after, states);
        let event = Event::RequestSaved(RequestSaved {
            before,
            after,
            changes,
        });
        self.run_event(&event, Some(request), dry_run)
    }

    fn run_event(
        &mut self,
        event: &Event,
        save: Option<&RequestSpec>,
        dry_run: bool,
    ) -> Result<Report, StoreError> {
        let started = Instant::now();
        let started_at = crate::store::now();
        let mut report = Report::new(event.trigger(), summarize_event(event), Outcome::NoMatch);
        report.event = serde_json::to_value(event).ok();
        self.decider().run_rules(event, &mut report)?;
        // No raw mail: only the request, the run and the effects are written.
        self.commit(
            &mut report,
            None,
            started,
            started_at,
            None,
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
        }),
    }
}

fn summarize_mail(mail: &relais_sdk::Mail) -> String {
    let from = mail
        .from
        .as_ref()
        .map(|a| a.email.as_str())
        .unwrap_or("(no sender)");
    let subject: String = mail.subject.chars().take(80).collect();
    format!(
        "mail <{}> from {from} on {}: {subject:?}",
        mail.message_id, mail.account
    )
}

fn summarize_event(event: &Event) -> String {
    match event {
        Event::MailReceived(mail) => summarize_mail(mail),
        Event::RequestSaved(saved) => {
            let changes: Vec<&str> = saved.changes.iter().map(|c| c.as_str()).collect();
            format!(
                "request {} saved [{}]",
                saved.after.number,
                changes.join(", ")
            )
        }
        Event::ContractEvent(contract) => {
            format!("contract {} {}", contract.contract.code, contract.kind)
        }
        Event::Schedule(fired) => format!("schedule of rule {} at {}", fired.rule, fired.fired_at),
    }
}

/// The reason code of the notice a too-large mail's sender gets.
pub const MAIL_TOO_LARGE: &str = "mail-too-large";

/// A failure notice for a mail over the size limit, unless the mail is
/// automatic (then a warning says why no one is told).
fn too_large_notice(
    mail: &relais_sdk::Mail,
    identity: &MailIdentity,
    limit: u64,
    warnings: &mut Vec<String>,
) -> Option<Effect> {
    if let Some(why) = mail.automatic_reason(&identity.own_addresses()) {
        warnings.push(format!("sender not told: automatic mail ({why})"));
        return None;
    }
    let sender = mail.reply_address()?;
    let limit = human_size(limit);
    Some(Effect::ReplyFailure {
        to: sender.to_string(),
        reason: MAIL_TOO_LARGE.to_string(),
        message: format!(
            "Votre message dépasse la taille maximale acceptée ({limit}) : il a été conservé mais n'a pas été traité.\n\n\
             Your message is larger than the accepted maximum ({limit}): it was kept but not processed."
        ),
        in_reply_to: mail.message_id.clone(),
        request: None,
    })
}

fn human_size(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MB {
        format!("{:.1} MiB", bytes as f64 / MB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The host queries, answered from the store and the templates, with the
/// plugin's logs collected for the trace.
#[derive(Debug)]
pub struct StoreHost {
    store: Store,
    templates: Arc<Templates>,
    plugin: String,
    logs: Mutex<Vec<LogLine>>,
}

impl StoreHost {
    /// Queries on `store` and `templates` for `plugin`.
    pub fn new(store: Store, templates: Arc<Templates>, plugin: &str) -> StoreHost {
        StoreHost {
            store,
            templates,
            plugin: plugin.to_string(),
            logs: Mutex::new(Vec::new()),
        }
    }

    /// The log lines so far, taken out.
    pub fn take_logs(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn host_error(error: StoreError) -> HostError {
    HostError(error.to_string())
}

impl Host for StoreHost {
    fn request(&self, number: u64) -> Result<Option<Request>, HostError> {
        self.store.request(number).map_err(host_error)
    }

    fn request_type(&self, code: &str) -> Result<Option<RequestType>, HostError> {
        self.store.request_type(code).map_err(host_error)
    }

    fn find_requests(
        &self,
        query: &relais_sdk::RequestQuery,
    ) -> Result<Vec<relais_sdk::RequestActivity>, HostError> {
        self.store.find_requests(query).map_err(host_error)
    }

    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError> {
        self.store.address_owners(email).map_err(host_error)
    }

    fn contact(&self, id: &str) -> Result<Option<relais_sdk::Recipient>, HostError> {
        self.store.contact(id).map_err(host_error)
    }

    fn settings(&self) -> Result<Settings, HostError> {
        self.store.settings().map_err(host_error)
    }

    fn contract(&self, code: &str) -> Result<Option<ContractDetails>, HostError> {
        self.store.contract_details(code).map_err(host_error)
    }

    fn customer(&self, code: &str) -> Result<Option<Customer>, HostError> {
        self.store.customer(code).map_err(host_error)
    }

    fn render(
        &self,
        name: &str,
        language: Option<&str>,
        context: &serde_json::Value,
    ) -> Result<Rendered, HostError> {
        self.templates
            .render(name, language, context)
            .map_err(HostError)
    }

    fn thread(&self, message_id: &str) -> Result<Vec<ThreadMail>, HostError> {
        self.store.thread(message_id).map_err(host_error)
    }

    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, HostError> {
        self.store.linked_ticket(message_id).map_err(host_error)
    }

    fn log(&self, level: Level, message: &str) {
        match level {
            Level::Debug => tracing::debug!(plugin = %self.plugin, "{message}"),
            Level::Info => tracing::info!(plugin = %self.plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin = %self.plugin, "{message}"),
            Level::Error => tracing::error!(plugin = %self.plugin, "{message}"),
        }
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(LogLine {
                plugin: self.plugin.clone(),
                level: level.as_str(),
                message: message.to_string(),
            });
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use relais_sdk::{Author, ChangeKind, MessageSource, PartyKind, RequestSaved, Side};

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

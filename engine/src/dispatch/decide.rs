//! The deciding half of the dispatcher: which rules match an event, what
//! their plugins decide. It reads the store and writes nothing, so it runs
//! on any thread.

use std::sync::Arc;
use std::time::Instant;

use relais_sdk::{Event, RequestSaved};

use crate::config::RequestStates;
use crate::directory::RequestSpec;

use super::notices::{human_size, too_large_notice};
use super::{Options, Outcome, Report, RuleTrace, StoreHost};
use crate::effects;
use crate::plugins::Plugins;
use crate::rules::RuleSet;
use crate::sources::mail::{MailError, ParsedMail, derived_message_id};
use crate::store::prelude::*;
use crate::store::{MailStatus, Store, StoreError};
use crate::templates::Templates;
use crate::triggers::{MailReceived, Unit};

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
    pub(super) report: Report,
    pub(super) parsed: Option<ParsedMail>,
    pub(super) status: MailStatus,
    pub(super) started: Instant,
    pub(super) started_at: String,
}

/// An event other than a mail decided, waiting for its commit.
#[derive(Debug)]
pub struct DecidedEvent {
    pub(super) report: Report,
    pub(super) started: Instant,
    pub(super) started_at: String,
}

impl Decider<'_> {
    /// Decides what to do about an event that carries no mail (a contract
    /// event, a schedule): the rules and their plugins.
    pub fn decide_event(&self, event: &Event) -> Result<DecidedEvent, StoreError> {
        let started = Instant::now();
        let started_at = crate::store::now();
        let mut report = Report::new(
            event.trigger(),
            crate::triggers::summary(event),
            Outcome::NoMatch,
        );
        report.event = serde_json::to_value(event).ok();
        self.run_rules(event, &mut report)?;
        Ok(DecidedEvent {
            report,
            started,
            started_at,
        })
    }

    /// Decides a failed run's event again, through the rule set running
    /// now (a dead letter replayed): the run `of` is kept, and the new one
    /// says it is its retry. A mail keeps the sender's authentication its
    /// first run found, since what the receiving server said came with it.
    pub fn decide_again(
        &self,
        of: i64,
        event: &Event,
        authentication: Option<&relais_sdk::SenderAuthentication>,
    ) -> Result<DecidedEvent, StoreError> {
        let started = Instant::now();
        let started_at = crate::store::now();
        let mut event = event.clone();
        let mut report = Report::new(
            event.trigger(),
            crate::triggers::summary(&event),
            Outcome::NoMatch,
        );
        report.retry_of = Some(of);
        if let Event::MailReceived(mail) = &mut event {
            if let Some(authentication) = authentication {
                mail.authentication = authentication.clone();
            }
            if let Some(warning) = self.cut_text(mail) {
                report.warnings.push(warning);
            }
            report.message_id = Some(mail.message_id.clone());
            report.authentication = Some(mail.authentication.clone());
        } else {
            report.event = serde_json::to_value(&event).ok();
        }
        self.run_rules(&event, &mut report)?;
        Ok(DecidedEvent {
            report,
            started,
            started_at,
        })
    }

    /// Cuts a mail's text at `max-text-kib` for plugins; the warning that
    /// says so, when it was cut.
    fn cut_text(&self, mail: &mut relais_sdk::Mail) -> Option<String> {
        if mail.text.len() <= self.options.max_text_bytes {
            return None;
        }
        let mut end = self.options.max_text_bytes;
        while !mail.text.is_char_boundary(end) {
            end -= 1;
        }
        let warning = format!(
            "text of {} cut to {} for plugins (limits.max-text-kib); the whole mail is stored",
            human_size(mail.text.len() as u64),
            human_size(end as u64)
        );
        mail.text.truncate(end);
        mail.text_truncated = true;
        Some(warning)
    }

    /// Decides what a request save runs: the request before (as stored),
    /// after, the change kinds between them, and `request-saved`'s rules.
    /// `request` must have passed [`crate::requests::check`].
    pub fn decide_save(
        &self,
        request: &RequestSpec,
        states: &RequestStates,
    ) -> Result<DecidedEvent, StoreError> {
        let before = self.store.request(request.number)?;
        let after = crate::requests::to_request(request);
        let changes = crate::requests::changes(before.as_ref(), &after, states);
        self.decide_event(&Event::RequestSaved(RequestSaved {
            before,
            after,
            changes,
        }))
    }
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
        if let Some(warning) = self.cut_text(&mut parsed.mail) {
            parsed.warnings.push(warning);
        }
        report.warnings = parsed.warnings.clone();
        let duplicate = self.is_duplicate(&mut parsed, &mut report)?;
        let mail = &parsed.mail;
        report.message_id = Some(mail.message_id.clone());
        report.authentication = Some(mail.authentication.clone());
        report.summary = MailReceived::summary(mail);
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
                self.templates,
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
    pub(super) fn run_rules(&self, event: &Event, report: &mut Report) -> Result<(), StoreError> {
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

//! How the CLI prints reports, runs, messages and the outbox.

use relais::Report;
use relais::store::{MessageRecord, OutboxRecord, RunRecord, RunSummary};
use relais_sdk::Effect;

/// One effect in a few words.
pub fn describe(effect: &Effect) -> String {
    match effect {
        Effect::PostMessage {
            request,
            author,
            side,
            ..
        } => {
            let side = serde_json::to_value(side)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                "post-message on request {request} by {} ({side} side)",
                author.id
            )
        }
        Effect::SendMail {
            to,
            subject,
            exchange,
            ..
        } => match exchange {
            Some(exchange) => format!(
                "send-mail to {} {subject:?} (exchange: {exchange})",
                to.join(", ")
            ),
            None => format!("send-mail to {} {subject:?}", to.join(", ")),
        },
        Effect::ReplyFailure { to, reason, .. } => format!("reply-failure to {to}: {reason}"),
        Effect::CreateTicket {
            customer, subject, ..
        } => format!("create-ticket for {customer} {subject:?}"),
        Effect::LinkMail {
            message_id,
            request,
        } => format!("link-mail <{message_id}> to request {request}"),
        Effect::ReopenTicket { request, state } => {
            format!("reopen-ticket {request} as {state:?}")
        }
    }
}

/// One line for a processed mail.
pub fn ingest_line(report: &Report) -> String {
    let what = report
        .source
        .clone()
        .or_else(|| report.message_id.clone())
        .unwrap_or_default();
    let mut line = format!("{what}: {}", report.outcome.as_str());
    if !report.rules.is_empty() {
        line.push_str(&format!(" [{}]", report.rules.join(", ")));
    }
    for effect in &report.effects {
        line.push_str(&format!("\n    {}", describe(effect)));
    }
    if let Some(error) = &report.error {
        line.push_str(&format!("\n    error: {error}"));
    }
    for warning in &report.warnings {
        line.push_str(&format!("\n    warning: {warning}"));
    }
    if report.effects.is_empty() && report.error.is_none() {
        for rule in report.trace.iter().filter(|r| r.matched) {
            for log in &rule.logs {
                line.push_str(&format!("\n    {}: {}", log.plugin, log.message));
            }
        }
    }
    line
}

/// The JSON object printed per mail by `relais ingest --json`.
pub fn ingest_json(report: &Report) -> serde_json::Value {
    serde_json::json!({
        "message-id": report.message_id,
        "source": report.source,
        "run": report.run,
        "rules": report.rules,
        "effects": report.effects,
        "outcome": report.outcome,
        "error": report.error,
        "warnings": report.warnings,
    })
}

/// Totals after an ingest.
pub fn print_ingest_summary(reports: &[Report]) {
    use relais::Outcome::*;
    let count = |outcome| reports.iter().filter(|r| r.outcome == outcome).count();
    println!(
        "{} mail{}: {} applied, {} no match, {} duplicate, {} failed, {} rejected{}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        count(Applied) + count(DryRun),
        count(NoMatch),
        count(Duplicate),
        count(Failed),
        count(Rejected),
        if count(DryRun) > 0 {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
}

/// The runs table.
pub fn print_runs(runs: &[RunSummary]) {
    println!(
        "{:>6}  {:<24}  {:<9}  {:>8}  summary",
        "run", "started", "outcome", "µs"
    );
    for run in runs {
        println!(
            "{:>6}  {:<24}  {:<9}  {:>8}  {}{}",
            run.id,
            run.started_at,
            run.outcome,
            run.duration_us,
            run.summary,
            run.error
                .as_ref()
                .map(|e| format!("\n{:>52}error: {e}", ""))
                .unwrap_or_default()
        );
    }
}

/// One run's trace, readable.
pub fn print_run(run: &RunRecord) {
    println!("run {}: {} ({} µs)", run.id, run.outcome, run.duration_us);
    println!("  trigger:  {}", run.trigger);
    println!("  event:    {}", run.summary);
    println!("  started:  {}", run.started_at);
    if let Some(error) = &run.error {
        println!("  error:    {error}");
    }
    if let Some(source) = run.trace.get("source").and_then(|s| s.as_str()) {
        println!("  source:   {source}");
    }
    if let Some(sender) = run.trace.get("authentication").filter(|a| a.is_object()) {
        let text = |key: &str| sender.get(key).and_then(|v| v.as_str()).unwrap_or("");
        println!("  sender:   {} ({})", text("result"), text("reason"));
    }
    for warning in run
        .trace
        .get("warnings")
        .and_then(|w| w.as_array())
        .into_iter()
        .flatten()
    {
        println!("  warning:  {}", warning.as_str().unwrap_or_default());
    }
    let rules = run
        .trace
        .get("rules")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    let counted = run
        .trace
        .get("not-matched")
        .and_then(|n| n.as_u64())
        .unwrap_or(0);
    let manual = run.trace.get("manual").filter(|m| m.is_object());
    if let Some(manual) = manual {
        let text = |key: &str| manual.get(key).and_then(|v| v.as_str()).unwrap_or("");
        println!("  manual:   {}, through the {}", text("write"), text("via"));
    } else if rules.is_empty() && counted == 0 {
        println!("  rules:    none for this trigger");
    }
    let spelled = rules
        .iter()
        .filter(|r| r.get("recomputed").is_some())
        .count() as u64;
    if counted > spelled {
        println!(
            "  rules:    {} did not match (why needs the rule set, which did not load)",
            counted - spelled
        );
    }
    if let Some(now) = run.trace.get("rule-set-now").and_then(|v| v.as_str()) {
        println!(
            "  (why rules did not match is recomputed against the rule set now, {now}; the run ran on {})",
            run.trace
                .get("rule-set")
                .and_then(|v| v.as_str())
                .unwrap_or("another")
        );
    }
    for rule in rules {
        let id = rule.get("id").and_then(|v| v.as_str()).unwrap_or("?");
        let source = rule.get("source").and_then(|v| v.as_str()).unwrap_or("");
        if rule.get("matched").and_then(|v| v.as_bool()) == Some(true) {
            let plugin = rule.get("plugin").and_then(|v| v.as_str()).unwrap_or("?");
            println!("  rule {id} ({source}): matched, ran {plugin}");
        } else {
            let reason = rule.get("reason").and_then(|v| v.as_str()).unwrap_or("");
            println!("  rule {id} ({source}): not matched: {reason}");
        }
        for log in rule
            .get("logs")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            println!(
                "    log {} {}: {}",
                log.get("level").and_then(|v| v.as_str()).unwrap_or(""),
                log.get("plugin").and_then(|v| v.as_str()).unwrap_or(""),
                log.get("message").and_then(|v| v.as_str()).unwrap_or("")
            );
        }
        if let Some(error) = rule.get("error").and_then(|v| v.as_str()) {
            println!("    error: {error}");
        }
    }
    let effects: Vec<Effect> = run
        .trace
        .get("effects")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    for effect in &effects {
        println!("  effect:   {}", describe(effect));
    }
    // A manual write's own kinds of effect (a link by hand, an import...).
    if effects.is_empty() && manual.is_some() {
        for effect in run
            .trace
            .get("effects")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            println!("  effect:   {effect}");
        }
    }
}

/// A request's activity thread.
pub fn print_messages(request: u64, messages: &[MessageRecord]) {
    println!(
        "request {request}: {} direct message{}",
        messages.len(),
        if messages.len() == 1 { "" } else { "s" }
    );
    for message in messages {
        println!(
            "  #{} {} {} {} ({} side, via {}){}",
            message.id,
            message.created_at,
            message.author_kind,
            message.author_id,
            message.side,
            message.source,
            if message.read { "" } else { " unread" }
        );
        for line in message.body.lines() {
            println!("      {line}");
        }
    }
}

/// A request's exchanges, with who spoke last.
pub fn print_exchanges(
    request: u64,
    summary: &relais_sdk::ExchangeSummary,
    exchanges: &[relais::store::ExchangeRecord],
) {
    let last = match summary.last_side {
        Some(relais_sdk::Side::Customer) => "the customer spoke last",
        Some(relais_sdk::Side::Staff) => "staff spoke last",
        None => "no exchange yet",
    };
    println!(
        "request {request}: {} exchange{}, {last}{}",
        summary.count,
        if summary.count == 1 { "" } else { "s" },
        match summary.reminders {
            0 => String::new(),
            n => format!(", {n} reminder{} since", if n == 1 { "" } else { "s" }),
        }
    );
    for exchange in exchanges {
        let who = exchange
            .contact
            .as_deref()
            .or(exchange.address.as_deref())
            .unwrap_or("?");
        let arrow = if exchange.direction == "received" {
            format!("from {who}")
        } else {
            format!("to {who}")
        };
        println!(
            "  #{} {} {} {arrow}{}{}",
            exchange.id,
            exchange.created_at,
            exchange.direction,
            exchange
                .exchange_type
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default(),
            exchange
                .subject
                .as_deref()
                .map(|s| format!(": {s}"))
                .unwrap_or_default(),
        );
        if let Some(id) = &exchange.message_id {
            println!("      <{id}>");
        }
    }
}

/// The outbox table.
/// A request and its activity, a line per entry, oldest first.
pub fn print_activity(activity: &relais::app::activity::Activity) {
    use relais::app::activity::Entry;
    let request = &activity.request;
    println!(
        "request {}: {} [{}] {} / {}, requester {}",
        request.number,
        request.subject.as_deref().unwrap_or("(no subject)"),
        request.state,
        request.customer,
        request.request_type,
        request.requester.as_deref().unwrap_or("-")
    );
    for entry in &activity.activity {
        let (at, line) = match entry {
            Entry::Message { at, message } => (
                at,
                format!(
                    "message   {} {} ({}, {}){}: {}",
                    message.author_kind,
                    message.author_id,
                    message.side,
                    message.source,
                    if message.read { "" } else { " unread" },
                    first_line(&message.body)
                ),
            ),
            Entry::Exchange { at, exchange } => (
                at,
                format!(
                    "exchange  {} {}{}",
                    exchange.direction,
                    exchange.exchange_type.as_deref().unwrap_or("-"),
                    exchange
                        .subject
                        .as_deref()
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                ),
            ),
            Entry::MailReceived { at, mail } => (
                at,
                format!(
                    "received  <{}> from {}: {}{}",
                    mail.message_id,
                    mail.sender.as_deref().unwrap_or("(no sender)"),
                    mail.subject,
                    mail.run
                        .map(|run| format!(" (run {run})"))
                        .unwrap_or_default()
                ),
            ),
            Entry::MailSent { at, mail } => (
                at,
                format!(
                    "sent      {} to {} [{}]: {}",
                    mail.kind,
                    mail.to.join(", "),
                    mail.status,
                    mail.subject
                ),
            ),
        };
        let at: String = at.replace('T', " ").chars().take(19).collect();
        println!("  {at}  {line}");
    }
}

/// The first line of `text`, for a listing.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// A page of a mail search, a line per mail.
pub fn print_mails(page: &relais::store::MailPage) {
    if page.mails.is_empty() {
        println!("no mail");
        return;
    }
    println!(
        "{:>6}  {:<16}  {:<10}  {:<11}  {:<30}  subject",
        "id", "received", "ticket", "run", "from"
    );
    for mail in &page.mails {
        let ticket = match (mail.ticket, mail.linked_by.as_deref()) {
            (Some(ticket), Some("manual")) => format!("{ticket}*"),
            (Some(ticket), _) => ticket.to_string(),
            (None, _) => "none".to_string(),
        };
        let run = mail
            .run
            .map(|run| format!("{run} {}", mail.outcome.as_deref().unwrap_or("")))
            .unwrap_or_default();
        let received: String = mail
            .received_at
            .replace('T', " ")
            .chars()
            .take(16)
            .collect();
        let automatic = mail
            .automatic
            .as_deref()
            .map(|why| format!(" ({why})"))
            .unwrap_or_default();
        let attached = if mail.attachments.is_empty() {
            String::new()
        } else {
            format!(" [{}]", mail.attachments.join(", "))
        };
        println!(
            "{:>6}  {received:<16}  {ticket:<10}  {run:<11}  {:<30}  {}{attached}{automatic}",
            mail.id,
            mail.sender.as_deref().unwrap_or("(no sender)"),
            mail.subject
        );
    }
    if let Some(before) = page.next_before {
        println!("more: --before {before}");
    }
    if page
        .mails
        .iter()
        .any(|m| m.linked_by.as_deref() == Some("manual"))
    {
        println!("(* linked by hand)");
    }
}

pub fn print_outbox(mails: &[OutboxRecord]) {
    println!(
        "{:>5}  {:<7}  {:<13}  {:<28}  subject",
        "id", "status", "kind", "to"
    );
    for mail in mails {
        println!(
            "{:>5}  {:<7}  {:<13}  {:<28}  {}",
            mail.id,
            mail.status,
            mail.mail.kind,
            mail.mail.to.join(", "),
            mail.mail.subject
        );
    }
}

/// One event's answer (a request saved, a contract event): its run,
/// outcome, change kinds and effects, a line each.
pub fn print_event_answer(answer: &relais::app::answers::EventAnswer) {
    let run = answer
        .run
        .map(|r| format!("run {r}"))
        .unwrap_or_else(|| "no run".to_string());
    println!("{}: {} ({run})", answer.summary, answer.outcome.as_str());
    for effect in &answer.effects {
        println!("  {}", describe(effect));
    }
    if let Some(error) = &answer.error {
        println!("  error: {error}");
    }
}

/// The engine's status, as `relais status` prints it.
pub fn print_status(status: &serde_json::Value, updated_at: &str) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    println!(
        "engine: {} (pid {}, since {}, status of {updated_at})",
        text(&status["state"]),
        status["pid"],
        text(&status["started-at"])
    );
    let set = &status["rule-set"];
    println!(
        "rule set: version {}, hash {}, loaded {}, {} rules, {} templates",
        set["version"],
        text(&set["hash"]),
        text(&set["loaded-at"]),
        set["rules"].as_array().map_or(0, Vec::len),
        set["templates"]
    );
    for rule in set["rules"].as_array().into_iter().flatten() {
        println!(
            "  {:<24} on {:<16} {}",
            text(&rule["id"]),
            text(&rule["on"]),
            text(&rule["source"])
        );
    }
    println!("plugins:");
    for plugin in status["plugins"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} {:<8} {}",
            text(&plugin["name"]),
            text(&plugin["version"]),
            text(&plugin["from"])
        );
    }
    match status["last-reload"].as_object() {
        None => println!("last reload: none since start"),
        Some(reload) if reload.get("ok") == Some(&serde_json::Value::Bool(true)) => println!(
            "last reload: ok at {} (version {}, {} ms)",
            text(&reload["at"]),
            reload["version"],
            reload["duration-ms"]
        ),
        Some(reload) => {
            println!(
                "last reload: FAILED at {}; the rule set above stays in use:",
                text(&reload["at"])
            );
            for error in reload["errors"].as_array().into_iter().flatten() {
                println!("  {}", text(error));
            }
        }
    }
    println!("sources:");
    for source in status["sources"].as_array().into_iter().flatten() {
        let error = source["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        println!(
            "  {:<6} {:<24} {}{error}",
            text(&source["kind"]),
            text(&source["name"]),
            text(&source["state"])
        );
    }
}

//! `relais demo`: a complete set-up in one directory (store, rules, a sample
//! directory and a spool of sample mails), processed at once, so that a new
//! user sees what Relais does before configuring anything.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use relais::Store;
use relais::store::prelude::*;

const DIRECTORY: &str = include_str!("../../../demo/directory.yaml");
const CONFIG: &str = include_str!("../../../demo/relais.yaml");
/// The schemas the demo's files point editors at, copied beside them.
const SCHEMAS: &[(&str, &str)] = &[
    (
        "relais.schema.json",
        include_str!("../../../demo/relais.schema.json"),
    ),
    (
        "directory.schema.json",
        include_str!("../../../demo/directory.schema.json"),
    ),
    (
        "rules/rules.schema.json",
        include_str!("../../../rules/rules.schema.json"),
    ),
];
const RULES: &[(&str, &str)] = &[
    (
        "catchmail.yaml",
        include_str!("../../../rules/catchmail.yaml"),
    ),
    ("alerts.yaml", include_str!("../../../rules/alerts.yaml")),
    (
        "ticket-linking.yaml",
        include_str!("../../../rules/ticket-linking.yaml"),
    ),
    (
        "reminders.yaml",
        include_str!("../../../rules/reminders.yaml"),
    ),
];
const TEMPLATES: &[(&str, &str)] = &[
    (
        "alert-opened.fr.jinja",
        include_str!("../../../templates/alert-opened.fr.jinja"),
    ),
    (
        "alert-opened.en.jinja",
        include_str!("../../../templates/alert-opened.en.jinja"),
    ),
    (
        "alert-resolved.fr.jinja",
        include_str!("../../../templates/alert-resolved.fr.jinja"),
    ),
    (
        "alert-resolved.en.jinja",
        include_str!("../../../templates/alert-resolved.en.jinja"),
    ),
    (
        "alert-closed.fr.jinja",
        include_str!("../../../templates/alert-closed.fr.jinja"),
    ),
    (
        "alert-closed.en.jinja",
        include_str!("../../../templates/alert-closed.en.jinja"),
    ),
    (
        "alert-state.fr.jinja",
        include_str!("../../../templates/alert-state.fr.jinja"),
    ),
    (
        "alert-state.en.jinja",
        include_str!("../../../templates/alert-state.en.jinja"),
    ),
    (
        "relance.fr.jinja",
        include_str!("../../../templates/relance.fr.jinja"),
    ),
    (
        "relance.en.jinja",
        include_str!("../../../templates/relance.en.jinja"),
    ),
];
/// What the support system saves in the demo: a new request, then the
/// resolution of an existing one.
const SAVES: &str = include_str!("../../../demo/requests.yaml");
const MAILS: &[(&str, &[u8])] = &[
    (
        "01-contact-message.eml",
        include_bytes!("../../../demo/mails/01-contact-message.eml"),
    ),
    (
        "02-staff-message.eml",
        include_bytes!("../../../demo/mails/02-staff-message.eml"),
    ),
    (
        "03-locked-conversation.eml",
        include_bytes!("../../../demo/mails/03-locked-conversation.eml"),
    ),
    (
        "04-unknown-sender.eml",
        include_bytes!("../../../demo/mails/04-unknown-sender.eml"),
    ),
    (
        "05-missing-keyword.eml",
        include_bytes!("../../../demo/mails/05-missing-keyword.eml"),
    ),
    (
        "06-out-of-office.eml",
        include_bytes!("../../../demo/mails/06-out-of-office.eml"),
    ),
    (
        "07-not-requester.eml",
        include_bytes!("../../../demo/mails/07-not-requester.eml"),
    ),
    (
        "08-other-address.eml",
        include_bytes!("../../../demo/mails/08-other-address.eml"),
    ),
    (
        "09-new-support-mail.eml",
        include_bytes!("../../../demo/mails/09-new-support-mail.eml"),
    ),
    (
        "10-reply-by-thread.eml",
        include_bytes!("../../../demo/mails/10-reply-by-thread.eml"),
    ),
    (
        "11-reply-with-tag.eml",
        include_bytes!("../../../demo/mails/11-reply-with-tag.eml"),
    ),
    (
        "12-unknown-to-support.eml",
        include_bytes!("../../../demo/mails/12-unknown-to-support.eml"),
    ),
    (
        "13-forged-sender.eml",
        include_bytes!("../../../demo/mails/13-forged-sender.eml"),
    ),
];

pub fn run(dir: &Path) -> Result<ExitCode> {
    let write = |path: &Path, bytes: &[u8]| -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    let db = dir.join("relais.db");
    for stale in ["relais.db", "relais.db-wal", "relais.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    for (name, text) in RULES {
        write(&dir.join("rules").join(name), text.as_bytes())?;
    }
    for (name, text) in TEMPLATES {
        write(&dir.join("templates").join(name), text.as_bytes())?;
    }
    write(&dir.join("requests.yaml"), SAVES.as_bytes())?;
    write(&dir.join("relais.yaml"), CONFIG.as_bytes())?;
    for (name, text) in SCHEMAS {
        write(&dir.join(name), text.as_bytes())?;
    }
    write(&dir.join("directory.yaml"), DIRECTORY.as_bytes())?;
    for (name, bytes) in MAILS {
        write(&dir.join("spool").join(name), bytes)?;
    }

    println!("Relais demo in {}\n", dir.display());
    let config_file = dir.join("relais.yaml");
    let config = relais::config::Config::parse(&config_file, CONFIG)
        .map_err(|errors| anyhow::anyhow!("demo config: {}", errors[0]))?;
    let mut store = Store::open(&db)?;
    let directory_file = dir.join("directory.yaml");
    let data = relais::directory::parse(&directory_file, DIRECTORY, &store)
        .map_err(|errors| anyhow::anyhow!("demo directory: {}", errors[0]))?;
    let counts = store.import_directory(&data)?;
    println!(
        "1. imported {}: {} customers, {} contacts, {} collaborators, {} users, {} requests",
        directory_file.display(),
        counts.customers,
        counts.contacts,
        counts.collaborators,
        counts.users,
        counts.requests
    );

    let runtime = super::runtime()?;
    let loaded = relais::reload::load_set(
        &runtime,
        &dir.join("plugins"),
        &dir.join("rules"),
        &dir.join("templates"),
        &config.identity_names(),
    )
    .map_err(|errors| anyhow::anyhow!("demo rules: {}", errors[0]))?;
    println!(
        "2. loaded {} rules from {} and {} templates from {}",
        loaded.rules.rules.len(),
        dir.join("rules").display(),
        loaded.templates.files().len(),
        dir.join("templates").display()
    );

    println!(
        "3. processing the mails of {}:\n",
        dir.join("spool").display()
    );
    let files = relais::sources::files::list(&[dir.join("spool")]);
    let options = relais::Options::of(&config);
    let reports = super::process_files(
        &mut store, &loaded, &options, &files, "spool", None, false, false,
    )?;
    println!();
    super::output::print_ingest_summary(&reports);

    println!("\n4. the activity thread of request 23010203:\n");
    super::output::print_messages(23010203, &store.messages(23010203)?);

    println!("\n   the tickets mail to the support address landed on:\n");
    for report in &reports {
        let linking = report.rules.iter().any(|rule| rule == "ticket-linking");
        let Some(id) = report.message_id.as_deref().filter(|_| linking) else {
            continue;
        };
        let Some(mail) = store.mail(id)? else {
            continue;
        };
        let ticket = mail
            .ticket
            .map(|t| format!("ticket {t}"))
            .unwrap_or_else(|| "unlinked (relais link)".to_string());
        println!("   <{}>  {:?}  -> {ticket}", mail.message_id, mail.subject);
    }

    println!(
        "\n5. the support system saves requests ({}): alerts to the contract's contacts:\n",
        dir.join("requests.yaml").display()
    );
    let saves: Vec<relais::directory::RequestSpec> =
        serde_yaml::from_str(SAVES).context("demo requests")?;
    let metrics = relais::metrics::Metrics::new();
    let mut dispatcher = super::dispatcher(&mut store, &loaded, &options);
    for save in &saves {
        let answer = relais::app::actions::save_request(
            &mut dispatcher,
            save,
            &Default::default(),
            &metrics,
            false,
        )
        .map_err(|e| anyhow::anyhow!("demo request {}: {e}", save.number))?;
        super::output::print_event_answer(&answer);
    }
    println!(
        "\n   a week later, the daily reminder check (rules/reminders.yaml) finds the requests waiting on the customer:\n"
    );
    let week_later = (chrono::Utc::now() + chrono::TimeDelta::days(8)).to_rfc3339();
    let answer = relais::app::actions::fire_schedule(
        &mut dispatcher,
        "waiting-customer-reminders",
        Some(&week_later),
        &metrics,
        false,
    )
    .map_err(|e| anyhow::anyhow!("demo reminders: {e}"))?;
    super::output::print_event_answer(&answer);
    super::output::print_exchanges(
        23010190,
        &store.exchange_summary(23010190)?,
        &store.exchanges(23010190)?,
    );
    // Outbound mail leaves through the default transport: files in the
    // pickup folder, as `relais run` would deliver them.
    let transport = relais::daemon::sender::Transport::from_config(&config)?;
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sent = io.block_on(relais::daemon::sender::drain(&store, &config, &transport));
    println!(
        "\n6. the outbox: failure notices, alerts and the reminder, {sent} delivered into {}:\n",
        config.outbox.pickup.display()
    );
    super::output::print_outbox(&store.outbox(None, 50)?);
    println!(
        "\nNext, in {dir} (its relais.yaml is read there): `relais runs` lists every run, `relais runs show ID` shows why a run did what it did,\n\
         `relais thread demo-09@dupont.example` shows a mail thread, `relais link ID --candidates` the tickets a mail could go to,\n\
         and `relais run` keeps watching spool/ (drop `.eml` files in it) and delivers into outbox/ until Ctrl-C.",
        dir = dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

//! `relais demo`: a complete set-up in one directory (store, rules, a sample
//! directory and a spool of sample mails), processed at once, so that a new
//! user sees what Relais does before configuring anything.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use relais::{Options, Plugins, Store};

const DIRECTORY: &str = include_str!("../../../demo/directory.yaml");
const RULES: &[(&str, &str)] = &[(
    "catchmail.yaml",
    include_str!("../../../rules/catchmail.yaml"),
)];
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
    write(&dir.join("directory.yaml"), DIRECTORY.as_bytes())?;
    for (name, bytes) in MAILS {
        write(&dir.join("spool").join(name), bytes)?;
    }

    println!("Relais demo in {}\n", dir.display());
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
    let plugins =
        Plugins::bundled(&runtime, &Default::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rules = relais::rules::load_dir(&dir.join("rules"), &plugins)
        .map_err(|errors| anyhow::anyhow!("demo rules: {}", errors[0]))?;
    println!(
        "2. loaded {} rule(s) from {}",
        rules.rules.len(),
        dir.join("rules").display()
    );

    println!(
        "3. processing the mails of {}:\n",
        dir.join("spool").display()
    );
    let files = relais::sources::files::list(&[dir.join("spool")]);
    let options = Options::default();
    let loaded = relais::rules::Loaded {
        plugins,
        rules,
        templates: Default::default(),
    };
    let reports =
        super::process_files(&mut store, &loaded, &options, &files, "spool", false, false)?;
    println!();
    super::output::print_ingest_summary(&reports);

    println!("\n4. the activity thread of request 23010203:\n");
    super::output::print_messages(23010203, &store.messages(23010203)?);
    // Outbound mail leaves through the default transport: files in the
    // pickup folder, as `relais run` would deliver them.
    let config = relais::config::Config {
        database: db.clone(),
        outbox: relais::config::Outbox {
            pickup: dir.join("outbox"),
            ..Default::default()
        },
        ..Default::default()
    };
    let transport =
        relais::daemon::sender::Transport::from_config(&config).map_err(|e| anyhow::anyhow!(e))?;
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sent = io.block_on(relais::daemon::sender::drain(&store, &config, &transport));
    println!(
        "\n5. the outbox: failure notices to the senders, {sent} delivered into {}:\n",
        config.outbox.pickup.display()
    );
    super::output::print_outbox(&store.outbox(None, 50)?);
    println!(
        "\nNext: `relais --db {db} runs` lists every run, `relais --db {db} runs show ID` shows why a run did what it did.\n\
         In {dir}, `relais run` keeps watching spool/ (drop `.eml` files in it) and delivers into outbox/ until Ctrl-C.",
        db = db.display(),
        dir = dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

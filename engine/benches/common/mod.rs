//! What the benchmarks share: the demo directory in a store, and demo mails
//! with Message-IDs of their own. Each benchmark uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use relais::Store;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `store` with the demo directory imported.
pub fn import_demo(store: &mut Store) {
    let file = root().join("demo/directory.yaml");
    let text = std::fs::read_to_string(&file).expect("demo directory");
    let data = relais::directory::parse(&file, &text, store).expect("valid directory");
    store.import_directory(&data).expect("import");
}

/// A demo mail's text.
pub fn demo_mail(name: &str) -> String {
    std::fs::read_to_string(root().join("demo/mails").join(name)).expect("demo mail")
}

/// `text` with its Message-ID replaced by `id`, lines ending in CRLF.
pub fn with_message_id(text: &str, id: &str) -> String {
    text.lines()
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("message-id:") {
                format!("Message-ID: <{id}>")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

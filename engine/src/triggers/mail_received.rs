//! `mail-received`: a mail arrived on an account (IMAP, spool folder,
//! `relais ingest`).

use relais_sdk::Mail;

use super::{Field, Unit};

/// The `mail-received` trigger.
#[derive(Debug)]
pub struct MailReceived;

impl Unit for MailReceived {
    type Event = Mail;
    const NAME: &'static str = "mail-received";
    const FIELDS: &'static [Field] = &[
        Field::Account,
        Field::From,
        Field::To,
        Field::Cc,
        Field::Recipient,
        Field::Subject,
        Field::Body,
    ];

    fn any(mail: &Mail, field: Field, test: &mut dyn FnMut(&str) -> bool) -> bool {
        match field {
            Field::Account => test(&mail.account),
            Field::From => mail.from.iter().any(|a| test(&a.email)),
            Field::To => mail.to.iter().any(|a| test(&a.email)),
            Field::Cc => mail.cc.iter().any(|a| test(&a.email)),
            Field::Recipient => mail.to.iter().chain(&mail.cc).any(|a| test(&a.email)),
            Field::Subject => test(&mail.subject),
            Field::Body => test(&mail.text),
            _ => false,
        }
    }

    fn summary(mail: &Mail) -> String {
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
}

//! Turns raw bytes into the `Mail` a plugin sees, with mail-parser.
//!
//! Parsing never fails silently: what could not be read well (an unknown
//! charset, a body part with an encoding problem, no text at all) is kept as
//! a warning in the run trace; what is not a mail at all is an error.

use mail_parser::{Address as ParsedAddress, HeaderValue, MessageParser, MimeHeaders, PartType};
use relais_sdk::{Address, Attachment, Mail};

use crate::store::{NewAttachment, sha256_hex};

/// A raw message that cannot be processed as a mail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Nothing in it.
    #[error("empty file: not a mail")]
    Empty,
    /// No header could be read: not an RFC 5322 message.
    #[error("malformed MIME: {0}")]
    Malformed(String),
}

/// A parsed mail with what the store keeps apart from it.
#[derive(Debug, Clone)]
pub struct ParsedMail {
    /// The mail as plugins see it.
    pub mail: Mail,
    /// Attachment contents, in the order of `mail.attachments`.
    pub attachments: Vec<NewAttachment>,
    /// Whether the Message-ID was derived from the content (none in the mail).
    pub generated_id: bool,
    /// For a receipt (`multipart/report`): its report type,
    /// `delivery-status` or `disposition-notification`.
    pub report: Option<String>,
    /// What could not be read well, for the trace.
    pub warnings: Vec<String>,
    /// The raw values of its `Authentication-Results` headers, top first
    /// (read by [`super::auth::verdict`]).
    pub auth_headers: Vec<String>,
    /// What the mail says, hashed ([`fingerprint`]).
    pub fingerprint: String,
    /// Relais's own verdict on the sender (`authentication.verify`), as an
    /// `Authentication-Results` value; never read from the mail itself.
    pub own_results: Option<String>,
}

/// The Message-ID given to a mail that has none: stable, derived from its
/// bytes, so that ingesting the same file twice is still recognised.
pub fn derived_message_id(raw: &[u8]) -> String {
    format!("{}@content.relais.invalid", &sha256_hex(raw)[..32])
}

/// Attachments smaller than this stay in the raw message: a few bytes
/// saved are not worth a row.
const MIN_APART: usize = 1024;

/// Parses `raw`, received on `account`.
pub fn parse(raw: &[u8], account: &str) -> Result<ParsedMail, MailError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(MailError::Empty);
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| MailError::Malformed("no message could be read".to_string()))?;
    // mail-parser reads anything leniently; a message none of whose header
    // names is well formed (printable ASCII, no space or colon) is not a mail.
    let well_formed =
        |name: &str| !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    if !message
        .headers()
        .iter()
        .any(|h| well_formed(h.name.as_str()))
    {
        return Err(MailError::Malformed(
            "no header fields found (a mail starts with `Name: value` lines)".to_string(),
        ));
    }
    let mut warnings = Vec::new();

    // Ids are read from the raw headers: mail-parser drops an id it finds
    // odd (quotes, spaces, no `@`), and an odd id must still thread.
    let raw_header = |name: &'static str| {
        message
            .headers_raw()
            .filter(move |(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let (message_id, generated_id) =
        match raw_header("Message-ID").find_map(|value| message_ids(value).into_iter().next()) {
            Some(id) => (id, false),
            None => {
                warnings.push("no Message-ID: one was derived from the content".to_string());
                (derived_message_id(raw), true)
            }
        };
    let mut in_reply_to = thread_ids(raw_header("In-Reply-To"), &message_id);
    let mut references = thread_ids(raw_header("References"), &message_id);
    let auth_headers: Vec<String> = raw_header("Authentication-Results")
        .take(MAX_AUTH_HEADERS)
        .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if references.len() > MAX_REFERENCES {
        warnings.push(format!(
            "References names {} ids: kept the first and the newest {}",
            references.len(),
            MAX_REFERENCES - 1
        ));
        references.drain(1..references.len() - (MAX_REFERENCES - 1));
    }
    in_reply_to.truncate(MAX_REFERENCES);
    let report = report_type(&message);
    if let Some(original) = report.as_ref().and_then(|_| reported_id(&message))
        && in_reply_to.is_empty()
        && original != message_id
    {
        // A receipt names the mail it reports on inside its report; it
        // joins that mail's thread as an answer to it.
        in_reply_to.push(original);
    }

    let text = match message.body_text(0) {
        Some(text) => text.into_owned(),
        None => {
            warnings.push("no text body: neither a text nor an HTML part".to_string());
            String::new()
        }
    };

    for part in &message.parts {
        if let Some(charset) = part.content_type().and_then(|ct| ct.attribute("charset"))
            && mail_parser::decoders::charsets::map::charset_decoder(charset.as_bytes()).is_none()
            && !is_builtin_charset(charset)
        {
            warnings.push(format!(
                "unknown charset `{charset}`: decoded as UTF-8, invalid bytes replaced"
            ));
        }
        if part.is_encoding_problem {
            warnings
                .push("a body part could not be decoded as declared; kept as found".to_string());
        }
    }

    let mut attachments = Vec::new();
    let mut metadata = Vec::new();
    let mut message = message;
    for id in message.attachments.clone() {
        let Some(part) = message.parts.get_mut(id as usize) else {
            continue;
        };
        // The decoded content is taken, not copied: a big attachment is
        // in memory once.
        let body = std::mem::replace(&mut part.body, PartType::Binary(Default::default()));
        let content: Vec<u8> = match body {
            PartType::Message(inner) => inner.raw_message.into_owned(),
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.into_owned(),
            PartType::Text(text) | PartType::Html(text) => text.into_owned().into_bytes(),
            PartType::Multipart(_) => Vec::new(),
        };
        let part = &message.parts[id as usize];
        // Its body leaves the raw message when it can be written again,
        // exactly, from its content.
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        let cut = raw
            .get(start..end)
            .filter(|_| content.len() >= MIN_APART)
            .and_then(|encoded| {
                let base64 = part.encoding == mail_parser::Encoding::Base64;
                let plain = part.encoding == mail_parser::Encoding::None;
                (base64 || plain)
                    .then(|| crate::store::apart::Layout::of(encoded, &content, base64))
                    .flatten()
            })
            .map(|layout| crate::store::apart::Cut { start, end, layout });
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let filename = part.attachment_name().map(str::to_string);
        metadata.push(Attachment {
            filename: filename.clone(),
            content_type: content_type.clone(),
            size: content.len() as u64,
            sha256: sha256_hex(&content),
        });
        attachments.push(NewAttachment {
            filename,
            content_type,
            content,
            cut,
        });
    }

    // Read raw: mail-parser reports the null sender `<>` as no value at all.
    let return_path = message
        .headers_raw()
        .find(|(name, _)| name.eq_ignore_ascii_case("Return-Path"))
        .map(|(_, value)| clean_id(value));
    let header_text = |name: &str| {
        message
            .header(name)
            .and_then(HeaderValue::as_text)
            .map(str::to_string)
    };
    let mail = Mail {
        account: account.to_string(),
        message_id,
        subject: message.subject().unwrap_or("").to_string(),
        from: message.from().and_then(|a| addresses(a).into_iter().next()),
        return_path,
        to: message.to().map(addresses).unwrap_or_default(),
        cc: message.cc().map(addresses).unwrap_or_default(),
        reply_to: message.reply_to().map(addresses).unwrap_or_default(),
        date: message.date().map(|d| d.to_rfc3339()),
        in_reply_to,
        references,
        auto_submitted: header_text("Auto-Submitted"),
        precedence: header_text("Precedence"),
        list_headers: message
            .headers()
            .iter()
            .map(|h| h.name.as_str().to_string())
            .filter(|name| name.to_ascii_lowercase().starts_with("list-"))
            .collect(),
        x_loop: message
            .header_values("X-Loop")
            .filter_map(|v| v.as_text().map(str::to_string))
            .collect(),
        text,
        text_truncated: false,
        attachments: metadata,
        size: raw.len() as u64,
        // Decided by the dispatcher, which knows the servers it trusts.
        authentication: relais_sdk::SenderAuthentication::default(),
    };
    Ok(ParsedMail {
        own_results: None,
        fingerprint: fingerprint(&mail),
        mail,
        attachments,
        generated_id,
        report,
        warnings,
        auth_headers,
    })
}

/// How many References ids a mail keeps: the first (the thread's root) and
/// the newest. Some clients let References grow without end.
const MAX_REFERENCES: usize = 100;

/// What a mail says, hashed: its sender, date, subject, text and
/// attachments, not the headers its transport adds (`Received`,
/// `Delivered-To`, ...). The same message fetched twice, from two
/// mailboxes or after a UIDVALIDITY change, has one fingerprint; a
/// different mail that reuses a Message-ID has another.
pub fn fingerprint(mail: &Mail) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let from = mail.from.as_ref().map(|a| a.email.to_lowercase());
    for part in [
        from.as_deref().unwrap_or(""),
        mail.date.as_deref().unwrap_or(""),
        &mail.subject,
        &mail.text,
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    for attachment in &mail.attachments {
        hash.update(attachment.sha256.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// The id a mail is kept under when another mail already has its
/// Message-ID: the id with a part of its fingerprint, so that fetching it
/// again finds it.
pub fn collision_id(message_id: &str, fingerprint: &str) -> String {
    let mark = &fingerprint[..fingerprint.len().min(12)];
    match message_id.rsplit_once('@') {
        Some((local, domain)) => format!("{local}.dup-{mark}@{domain}"),
        None => format!("{message_id}.dup-{mark}"),
    }
}

/// How many `Authentication-Results` headers are read: a server adds one
/// or a few; a mail carrying hundreds wrote them itself.
const MAX_AUTH_HEADERS: usize = 32;

/// The longest Message-ID kept (a header line's length limit).
const MAX_ID_LEN: usize = 998;

/// The Message-IDs of a header's raw value: each `<...>`, white space
/// inside removed (some clients fold long ids); a value without angle
/// brackets is read as ids separated by white space or commas, keeping
/// those with an `@`. Ids longer than a header line allows are dropped.
pub fn message_ids(value: &str) -> Vec<String> {
    let squeeze = |id: &str| id.split_whitespace().collect::<String>();
    let ids: Vec<String> = if value.contains('<') {
        value
            .split('<')
            .skip(1)
            .filter_map(|rest| rest.split_once('>').map(|(id, _)| squeeze(id)))
            .collect()
    } else {
        value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|token| token.contains('@'))
            .map(str::to_string)
            .collect()
    };
    ids.into_iter()
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
        .collect()
}

/// A Message-ID as a person types it, with or without its angle brackets,
/// read the way headers are (white space inside removed), so that it finds
/// the stored mail.
pub fn typed_id(input: &str) -> String {
    let input = input.trim();
    if input.contains('<') {
        message_ids(input).into_iter().next().unwrap_or_default()
    } else {
        input.split_whitespace().collect()
    }
}

/// The ids of every occurrence of a thread header, each once, in order,
/// without the mail's own id (a References loop).
fn thread_ids<'a>(values: impl Iterator<Item = &'a str>, own: &str) -> Vec<String> {
    // A set, not a scan of the list: a hostile References of 100,000 ids
    // must cost what reading them costs, not its square.
    let mut seen = std::collections::HashSet::new();
    let mut ids: Vec<String> = Vec::new();
    for id in values.flat_map(message_ids) {
        if id != own && seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    ids
}

/// The report type of a receipt: a `multipart/report` message.
fn report_type(message: &mail_parser::Message<'_>) -> Option<String> {
    let content_type = message.content_type()?;
    let is_report = content_type.ctype().eq_ignore_ascii_case("multipart")
        && content_type
            .subtype()
            .is_some_and(|sub| sub.eq_ignore_ascii_case("report"));
    is_report.then(|| {
        content_type
            .attribute("report-type")
            .unwrap_or("report")
            .to_ascii_lowercase()
    })
}

/// The Message-ID a receipt reports on: `Original-Message-ID` in a read
/// receipt's notification, or the `Message-ID` of the returned headers of
/// a delivery report.
fn reported_id(message: &mail_parser::Message<'_>) -> Option<String> {
    let field = |text: &str, name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| message_ids(value).into_iter().next())
                .flatten()
        })
    };
    message.parts.iter().skip(1).find_map(|part| {
        let text = match &part.body {
            PartType::Message(inner) => String::from_utf8_lossy(inner.raw_message()).into_owned(),
            _ => String::from_utf8_lossy(part.contents()).into_owned(),
        };
        field(&text, "Original-Message-ID").or_else(|| {
            let headers = part.content_type().is_some_and(|ct| {
                ct.subtype().is_some_and(|sub| {
                    sub.eq_ignore_ascii_case("rfc822-headers") || sub.eq_ignore_ascii_case("rfc822")
                })
            });
            headers.then(|| field(&text, "Message-ID")).flatten()
        })
    })
}

/// Charsets mail-parser decodes without its table.
fn is_builtin_charset(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "utf-8" | "utf8" | "us-ascii" | "ascii" | "iso-8859-1" | "latin1" | "utf-16" | "utf-7"
    )
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn addresses(address: &ParsedAddress<'_>) -> Vec<Address> {
    address
        .iter()
        .filter_map(|a| {
            let email = a.address()?.trim().to_string();
            Some(Address {
                name: a.name().map(str::to_string),
                email,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_plugins_need() {
        let raw = b"Return-Path: <jeanne@dupont.example>\r\n\
From: =?utf-8?q?Jeanne_Martin?= <Jeanne@Dupont.example>\r\n\
To: catchmail@acme.example\r\n\
Subject: =?utf-8?q?Validation_qualit=C3=A9?= #23010203 *message*\r\n\
Message-ID: <abc@dupont.example>\r\n\
In-Reply-To: <prev@acme.example>\r\n\
References: <first@acme.example> <prev@acme.example>\r\n\
Auto-Submitted: no\r\n\
\r\n\
Bonjour\r\n";
        let parsed = parse(raw, "catchmail").expect("parses");
        let mail = parsed.mail;
        assert_eq!(mail.message_id, "abc@dupont.example");
        assert_eq!(mail.subject, "Validation qualité #23010203 *message*");
        assert_eq!(
            mail.from.as_ref().map(|a| a.email.as_str()),
            Some("Jeanne@Dupont.example")
        );
        assert_eq!(mail.return_path.as_deref(), Some("jeanne@dupont.example"));
        assert_eq!(mail.references, ["first@acme.example", "prev@acme.example"]);
        assert_eq!(mail.in_reply_to, ["prev@acme.example"]);
        assert_eq!(mail.text.trim(), "Bonjour");
        assert!(mail.automatic_reason(&[]).is_none());
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    }

    #[test]
    fn html_only_becomes_text() {
        let raw = b"From: a@b.example\r\nMessage-ID: <h@b>\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>world</b></p>\r\n";
        let mail = parse(raw, "cli").expect("parses").mail;
        assert!(mail.text.contains("Hello world"), "{:?}", mail.text);
    }

    #[test]
    fn empty_and_headerless_input_are_errors() {
        assert_eq!(parse(b"", "cli").expect_err("empty"), MailError::Empty);
        assert_eq!(parse(b"  \n", "cli").expect_err("blank"), MailError::Empty);
        assert!(matches!(
            parse(b"\x00\x01\x02 not a mail", "cli"),
            Err(MailError::Malformed(_))
        ));
    }

    #[test]
    fn missing_message_id_is_derived_and_stable() {
        let raw = b"From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n";
        let first = parse(raw, "cli").expect("parses");
        let second = parse(raw, "cli").expect("parses");
        assert!(first.generated_id);
        assert_eq!(first.mail.message_id, second.mail.message_id);
    }

    #[test]
    fn null_return_path_is_empty() {
        let raw = b"Return-Path: <>\r\nFrom: MAILER-DAEMON@x.example\r\nMessage-ID: <b@x>\r\n\r\nbounce\r\n";
        let mail = parse(raw, "cli").expect("parses").mail;
        assert_eq!(mail.return_path.as_deref(), Some(""));
        assert!(mail.automatic_reason(&[]).is_some());
    }

    #[test]
    fn ids_are_read_however_clients_write_them() {
        assert_eq!(message_ids("<a@x> <b@x>"), ["a@x", "b@x"]);
        assert_eq!(message_ids("<a@x><b@x>"), ["a@x", "b@x"]);
        assert_eq!(message_ids("<a@x>,\r\n <b@x>"), ["a@x", "b@x"]);
        assert_eq!(
            message_ids("<a@x> (Jeanne's message of Mon, 3 Nov 2026)"),
            ["a@x"]
        );
        assert_eq!(message_ids("a@x b@x"), ["a@x", "b@x"]);
        assert_eq!(message_ids("<\"odd id\"@x>"), ["\"oddid\"@x"]);
        assert_eq!(message_ids("<long-id-fol\r\n ded@x>"), ["long-id-folded@x"]);
        assert_eq!(message_ids("<a%b_c@x>"), ["a%b_c@x"]);
        assert!(message_ids("<>").is_empty());
        assert_eq!(typed_id(" <\"a b\"@x> "), "\"ab\"@x");
        assert_eq!(typed_id("\"a b\"@x"), "\"ab\"@x");
        assert!(message_ids(&format!("<{}@x>", "a".repeat(1000))).is_empty());
    }

    #[test]
    fn references_are_bounded_deduplicated_and_never_name_the_mail_itself() {
        let refs: Vec<String> = (0..300).map(|i| format!("<r{i}@x>")).collect();
        let raw = format!(
            "From: a@x\r\nMessage-ID: <self@x>\r\nIn-Reply-To: <self@x> <r299@x>\r\n\
             References: {} <r5@x> <self@x>\r\n\r\nbody\r\n",
            refs.join(" ")
        );
        let parsed = parse(raw.as_bytes(), "cli").expect("parses");
        let mail = parsed.mail;
        assert_eq!(mail.in_reply_to, ["r299@x"]);
        assert_eq!(mail.references.len(), 100);
        assert_eq!(mail.references[0], "r0@x");
        assert_eq!(mail.references[99], "r299@x");
        assert!(!mail.references.contains(&"self@x".to_string()));
        assert!(
            parsed.warnings.iter().any(|w| w.contains("300 ids")),
            "{:?}",
            parsed.warnings
        );
    }

    #[test]
    fn a_receipt_answers_the_mail_it_reports_on() {
        let mdn = b"From: jeanne@dupont.example\r\nMessage-ID: <mdn1@dupont.example>\r\n\
Subject: Lu : [#23010203] Imprimante\r\n\
Content-Type: multipart/report; report-type=disposition-notification; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nVotre message a \xc3\xa9t\xc3\xa9 lu.\r\n\
--b\r\nContent-Type: message/disposition-notification\r\n\r\n\
Reporting-UA: Thunderbird\r\nOriginal-Message-ID: <relais.4.1.abc@relais.example>\r\n\
Disposition: manual-action/MDN-sent-manually; displayed\r\n--b--\r\n";
        let parsed = parse(mdn, "cli").expect("parses");
        assert_eq!(parsed.report.as_deref(), Some("disposition-notification"));
        assert_eq!(parsed.mail.in_reply_to, ["relais.4.1.abc@relais.example"]);

        let dsn = b"From: MAILER-DAEMON@mx.example\r\nMessage-ID: <dsn1@mx.example>\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
Final-Recipient: rfc822; nobody@dupont.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: relais@acme.example\r\n\
Message-ID: <relais.9.2.def@relais.example>\r\nSubject: [OUVERTURE] [#23010203]\r\n--b--\r\n";
        let parsed = parse(dsn, "cli").expect("parses");
        assert_eq!(parsed.report.as_deref(), Some("delivery-status"));
        assert_eq!(parsed.mail.in_reply_to, ["relais.9.2.def@relais.example"]);
    }
}

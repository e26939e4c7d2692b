//! Memory while big mails flow: the peak resident memory of `relais run`
//! taking mails of 24 MiB (an 18 MiB attachment, base64) from its spool,
//! and over IMAP when the test servers run (`tests/mail-servers.sh start`
//! and its `env`), beside its floor measured in the same process: the peak
//! after one small mail, the whole path warmed.
//!
//! Target: at most 128 MiB with mails of 25 MiB flowing. What bounds it is
//! `limits.max-in-flight-mib` (32 by default): a source reads no more while
//! that much waits to be committed; and each mail is in memory about twice
//! (its raw bytes and its attachments' decoded content), written to the
//! store in place.
//!
//! Run: `cargo bench -p relais --bench memory` (`MAILS=N` of each source,
//! 8 by default; `RELAIS_BENCH_SHORT=1` runs 2, as CI does).

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine;
use relais::store::prelude::*;

/// The peak resident memory of `child` so far, in MiB.
fn peak_mib(child: &Child) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A mail of about 24 MiB from Jeanne to the support address.
fn big_mail(id: &str, attachment: &str) -> String {
    format!(
        "From: jeanne@dupont.example\r\nTo: support@acme.example\r\nSubject: Journaux {id}\r\n\
         Message-ID: <{id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n\
         --sep\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoici les journaux.\r\n\
         --sep\r\nContent-Type: application/octet-stream; name=\"journaux.bin\"\r\n\
         Content-Disposition: attachment; filename=\"journaux.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--sep--\r\n"
    )
}

/// Drops a mail into the spool under a hidden name, then renames it in.
fn drop_in(spool: &Path, name: &str, text: &str) {
    let hidden = spool.join(format!(".{name}"));
    std::fs::write(&hidden, text).expect("write mail");
    std::fs::rename(&hidden, spool.join(name)).expect("rename");
}

/// Waits until the store has a run for each of `ids`.
fn wait_processed(db: &Path, ids: &[String], child: &mut Child) {
    let started = Instant::now();
    loop {
        if let Ok(store) = relais::Store::open(db)
            && ids.iter().all(|id| store.mail_exists(id).unwrap_or(false))
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("relais run ended: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "mails not processed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() {
    let mails = common::sized("MAILS", 8, 2).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = common::root();
    let db = dir.path().join("relais.db");
    common::import_demo_in(dir.path());
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).expect("spool");

    let imap = std::env::var("RELAIS_TEST_IMAP_PORT").ok();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let domain = format!("memory-{nonce}.example");
    let accounts = match &imap {
        Some(port) => format!(
            "accounts:\n  - {{ name: support, host: 127.0.0.1, port: {port}, security: plain, \
             username: catchmail@{domain}, password: {{ env: RELAIS_TEST_MAIL_PASSWORD }} }}\n"
        ),
        None => String::new(),
    };
    let config = dir.path().join("relais.yaml");
    std::fs::write(
        &config,
        format!(
            "database: relais.db\nrules: {rules}\ntemplates: {templates}\nplugins: plugins\n\
             spool: spool\noutbox: {{ pickup: outbox }}\n{accounts}",
            rules = root.join("rules").display(),
            templates = root.join("templates").display(),
        ),
    )
    .expect("config");
    let mut server = common::Server::start(dir.path(), &config, &[]);
    let child = server.child.as_mut().expect("relais run");

    // The floor: one small mail through the whole path.
    drop_in(
        &spool,
        "small.eml",
        &big_mail("small@dupont.example", "AAAA"),
    );
    wait_processed(&db, &["small@dupont.example".to_string()], child);
    let floor = peak_mib(child);

    let content: Vec<u8> = (0..18u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&content);
    let attachment = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("\r\n");
    drop(content);
    drop(encoded);
    let ids: Vec<String> = (0..mails)
        .map(|n| format!("big-{n}@dupont.example"))
        .collect();
    let size_mib = big_mail(&ids[0], &attachment).len() as f64 / (1 << 20) as f64;
    for id in &ids {
        drop_in(&spool, &format!("{id}.eml"), &big_mail(id, &attachment));
    }
    let started = Instant::now();
    wait_processed(&db, &ids, child);
    let spool_peak = peak_mib(child);
    let spool_time = started.elapsed();

    let imap_peak = imap.as_ref().map(|_| {
        let smtp: u16 = std::env::var("RELAIS_TEST_SMTP_PORT")
            .expect("smtp port")
            .parse()
            .expect("port");
        let ids: Vec<String> = (0..mails)
            .map(|n| format!("imap-{n}-{nonce}@dupont.example"))
            .collect();
        for id in &ids {
            send(
                smtp,
                &format!("catchmail@{domain}"),
                &big_mail(id, &attachment),
            );
        }
        wait_processed(&db, &ids, child);
        peak_mib(child)
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("relais run stops");

    println!("peak resident memory of relais run, mails of {size_mib:.1} MiB (the default limits)");
    println!("  floor, after one small mail          {floor:>7.1} MiB");
    println!(
        "  after {mails} big mails from the spool     {spool_peak:>7.1} MiB ({:.1} s)",
        spool_time.as_secs_f64()
    );
    match imap_peak {
        Some(peak) => println!("  after {mails} big mails over IMAP too     {peak:>7.1} MiB"),
        None => {
            println!("  over IMAP: not measured (start tests/mail-servers.sh and eval its env)")
        }
    }
    let worst = imap_peak.unwrap_or(0.0).max(spool_peak);
    println!(
        "target: peak ≤ 128 MiB: {worst:.1} MiB ({})",
        if worst <= 128.0 { "met" } else { "MISSED" }
    );
}

/// Sends `text` to `to` through the test Postfix, in plain SMTP.
fn send(port: u16, to: &str, text: &str) {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("smtp");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = String::new();
    let mut expect = |reader: &mut BufReader<std::net::TcpStream>, code: &str| loop {
        line.clear();
        reader.read_line(&mut line).expect("read");
        assert!(line.starts_with(code), "SMTP: {line}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect(&mut reader, "220");
    for (command, code) in [
        ("EHLO bench.example".to_string(), "250"),
        ("MAIL FROM:<jeanne@dupont.example>".to_string(), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        write!(writer, "{command}\r\n").expect("write");
        expect(&mut reader, code);
    }
    writer.write_all(text.as_bytes()).expect("data");
    writer.write_all(b"\r\n.\r\n").expect("end");
    expect(&mut reader, "250");
    writer.write_all(b"QUIT\r\n").expect("quit");
}

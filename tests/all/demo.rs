//! `relais demo`: the README's first command works from any directory.

use crate::support::Setup;

#[test]
fn demo_processes_mails_and_shows_messages_and_replies() {
    let setup = Setup::new();
    let run = setup.relais(&["demo", "--dir", "here"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("13 mails: 13 applied, 0 no match, 0 duplicate, 0 failed, 0 rejected"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("request 23010203: 2 direct messages"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("failure-reply  someone@elsewhere.example"),
        "{}",
        run.stdout
    );
    // A mail in Jeanne's name that her domain disowns posts nothing; the
    // notice goes to Jeanne, not to the forger's envelope.
    assert!(
        run.stdout.contains(
            "13-forged-sender.eml: applied [catchmail]\n    reply-failure to jeanne@dupont.example: sender-not-authenticated"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "send-mail to jeanne@dupont.example \"[RESOLUTION] [#23010203] Imprimante du 2e étage en panne\""
        ),
        "{}",
        run.stdout
    );
    // Mail to the support address lands on tickets: a new one for a known
    // contact, its reply by thread, a tagged reply; a stranger's stays
    // unlinked.
    for line in [
        "<demo-09@dupont.example>  \"TR: Écran noir au démarrage du poste 12\"  -> ticket 23010206",
        "<demo-10@dupont.example>  \"RE : TR: Écran noir au démarrage du poste 12\"  -> ticket 23010206",
        "-> ticket 23010203",
        "<demo-12@elsewhere.example>  \"Demande de devis\"  -> unlinked (relais link)",
    ] {
        assert!(run.stdout.contains(line), "{line}\n{}", run.stdout);
    }
    let pickup = setup.dir.path().join("here/outbox");
    assert_eq!(
        std::fs::read_dir(&pickup).expect("pickup folder").count(),
        9,
        "5 failure notices, 3 alerts and a reminder delivered"
    );
    assert!(
        run.stdout.contains(
            "send-mail to jeanne@dupont.example \"Relance : [#23010190] Licence du logiciel de caisse à renouveler\" (exchange: relance)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("request 23010190: 1 exchange, staff spoke last, 1 reminder since"),
        "{}",
        run.stdout
    );
    // A second run starts afresh rather than seeing duplicates.
    let again = setup.relais(&["demo", "--dir", "here"]);
    assert!(
        again.stdout.contains("13 mails: 13 applied"),
        "{}",
        again.stdout
    );
}

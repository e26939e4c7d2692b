//! Mail threads and mail-to-ticket links.
//!
//! A thread is walked through `mail_refs`: the ids each mail, received or
//! sent by Relais, names in In-Reply-To and References, indexed both ways.
//! Each mail links to at most one ticket: `mail_links` is keyed by mail.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::{OptionalExtension, params};

use super::prelude::*;
use super::{Cached, LinkWrites, Store, StoreError, Threads, Tx, from_json, now};

/// How many mails a thread gathers at most, and how many ids its walk
/// visits: a thread of hundreds of References must stay one cheap query
/// per id, a bounded number of times.
const MAX_THREAD: usize = 500;
const MAX_VISITED: usize = 5_000;

/// Whether a mail came in or Relais sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Received from a source.
    Received,
    /// Sent by Relais (in the outbox).
    Sent,
}

/// A mail of a thread, with its replies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ThreadNode {
    /// Message-ID.
    pub message_id: String,
    /// Received or sent.
    pub direction: Direction,
    /// The account a received mail came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Subject.
    pub subject: String,
    /// From address of a received mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Recipients of a sent mail.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// When it was received or queued (RFC 3339).
    pub at: String,
    /// The ticket a received mail is linked to, or a sent mail is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<u64>,
    /// For a receipt: `delivery-status` or `disposition-notification`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// A received mail's processing status, or a sent mail's outbox status.
    pub status: String,
    /// In-Reply-To ids.
    #[serde(skip)]
    pub in_reply_to: Vec<String>,
    /// References ids.
    #[serde(skip)]
    pub references: Vec<String>,
    /// Its replies (and receipts), oldest first.
    #[schema(no_recursion)]
    pub replies: Vec<ThreadNode>,
    /// Storage order, among mails stored in the same millisecond.
    #[serde(skip)]
    order: i64,
}

/// What a manual link changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LinkChange {
    /// The ticket the mail is now linked to.
    pub ticket: u64,
    /// The ticket it was linked to before, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
}

/// A request of a sender's customers, as stored: what ticket linking
/// ranks (`app::links::candidates`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderRequest {
    /// Request number.
    pub number: u64,
    /// Its subject.
    pub subject: Option<String>,
    /// Its state.
    pub state: String,
    /// Its customer.
    pub customer: String,
    /// Its requester.
    pub requester: Option<String>,
    /// Last update (RFC 3339).
    pub updated_at: String,
    /// Whether the sender is its requester.
    pub own: bool,
}

impl Tx<'_> {
    /// Records the ids a mail names in In-Reply-To and References.
    pub(super) fn insert_refs<'a>(
        &self,
        message_id: &str,
        refs: impl Iterator<Item = &'a String>,
    ) -> Result<(), StoreError> {
        for id in refs {
            self.conn.run(
                "INSERT INTO mail_refs (message_id, ref) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
                params![message_id, id],
            )?;
        }
        Ok(())
    }

    fn set_link(
        &self,
        message_id: &str,
        request: u64,
        run: Option<i64>,
        replace: bool,
        how: &str,
    ) -> Result<LinkChange, StoreError> {
        let mail: Option<i64> = self
            .conn
            .one(
                "SELECT id FROM mails WHERE message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(mail) = mail else {
            return Err(StoreError::Refused(format!(
                "no stored mail <{message_id}>"
            )));
        };
        self.require_request(request)?;
        let current: Option<i64> = self
            .conn
            .one(
                "SELECT request FROM mail_links WHERE mail = ?1",
                [mail],
                |r| r.get(0),
            )
            .optional()?;
        let previous = current.map(|n| n as u64);
        match previous {
            Some(existing) if existing == request => {}
            Some(existing) if !replace => {
                return Err(StoreError::Refused(format!(
                    "mail <{message_id}> is already linked to ticket {existing}"
                )));
            }
            _ => {
                self.conn.run(
                    "INSERT INTO mail_links (mail, request, linked_at, run, how)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (mail) DO UPDATE SET request = excluded.request,
                        linked_at = excluded.linked_at, run = excluded.run, how = excluded.how",
                    params![mail, request as i64, now(), run, how],
                )?;
                self.record_received_mail(mail, request, run)?;
            }
        }
        Ok(LinkChange {
            ticket: request,
            previous: previous.filter(|p| *p != request),
        })
    }
}

impl LinkWrites for Tx<'_> {
    fn link_mail(
        &self,
        message_id: &str,
        request: u64,
        run: Option<i64>,
    ) -> Result<(), StoreError> {
        self.set_link(message_id, request, run, false, "rule")
            .map(|_| ())
    }

    fn link_mail_manually(
        &self,
        message_id: &str,
        request: u64,
        replace: bool,
        run: Option<i64>,
    ) -> Result<LinkChange, StoreError> {
        self.set_link(message_id, request, run, replace, "manual")
    }

    fn reopen_request(&self, number: u64, state: &str) -> Result<(), StoreError> {
        if state.trim().is_empty() {
            return Err(StoreError::Refused(
                "a reopened ticket needs a state".to_string(),
            ));
        }
        self.require_request(number)?;
        self.conn.run(
            "UPDATE requests SET state = ?2, updated_at = ?3 WHERE number = ?1",
            params![number as i64, state, now()],
        )?;
        Ok(())
    }
}

impl Threads for Store {
    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn()
            .one(
                "SELECT l.request FROM mails AS m JOIN mail_links AS l ON l.mail = m.id
                 WHERE m.message_id = ?1
                 UNION ALL
                 SELECT request FROM outbox WHERE message_id = ?1 AND request IS NOT NULL
                 LIMIT 1",
                [message_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|n| n as u64))
    }

    fn thread_mails(&self, message_id: &str) -> Result<Vec<ThreadNode>, StoreError> {
        let conn = self.conn();
        let mut names = conn.prepare_cached("SELECT ref FROM mail_refs WHERE message_id = ?1")?;
        let mut named_by =
            conn.prepare_cached("SELECT message_id FROM mail_refs WHERE ref = ?1")?;
        let mut received = conn.prepare_cached(
            "SELECT m.message_id, m.account, m.subject, m.sender, m.received_at, l.request,
                    m.report, m.status, m.in_reply_to, m.refs, m.id
             FROM mails AS m LEFT JOIN mail_links AS l ON l.mail = m.id WHERE m.message_id = ?1",
        )?;
        let mut sent = conn.prepare_cached(
            "SELECT message_id, recipients, subject, created_at, request, status, in_reply_to, refs,
                    id
             FROM outbox WHERE message_id = ?1",
        )?;
        let mut nodes: Vec<ThreadNode> = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut queue = vec![message_id.to_string()];
        while let Some(id) = queue.pop() {
            if nodes.len() >= MAX_THREAD || seen.len() >= MAX_VISITED {
                break;
            }
            if !seen.insert(id.clone()) {
                continue;
            }
            let node = received
                .query_row([&id], |r| {
                    Ok(ThreadNode {
                        message_id: r.get(0)?,
                        direction: Direction::Received,
                        account: r.get(1)?,
                        subject: r.get(2)?,
                        sender: r.get(3)?,
                        to: Vec::new(),
                        at: r.get(4)?,
                        ticket: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                        receipt: r.get(6)?,
                        status: r.get(7)?,
                        in_reply_to: from_json(&r.get::<_, String>(8)?).unwrap_or_default(),
                        references: from_json(&r.get::<_, String>(9)?).unwrap_or_default(),
                        replies: Vec::new(),
                        order: r.get(10)?,
                    })
                })
                .optional()?;
            let node = match node {
                Some(node) => Some(node),
                None => sent
                    .query_row([&id], |r| {
                        Ok(ThreadNode {
                            message_id: r.get(0)?,
                            direction: Direction::Sent,
                            account: None,
                            subject: r.get(2)?,
                            sender: None,
                            to: from_json(&r.get::<_, String>(1)?).unwrap_or_default(),
                            at: r.get(3)?,
                            ticket: r.get::<_, Option<i64>>(4)?.map(|n| n as u64),
                            receipt: None,
                            status: r.get(5)?,
                            in_reply_to: from_json(&r.get::<_, String>(6)?).unwrap_or_default(),
                            references: from_json(&r.get::<_, String>(7)?).unwrap_or_default(),
                            replies: Vec::new(),
                            order: r.get(8)?,
                        })
                    })
                    .optional()?,
            };
            if let Some(node) = node {
                nodes.push(node);
            }
            for next in names.query_map([&id], |r| r.get::<_, String>(0))? {
                queue.push(next?);
            }
            for next in named_by.query_map([&id], |r| r.get::<_, String>(0))? {
                queue.push(next?);
            }
        }
        nodes.sort_by(|a, b| (&a.at, a.order).cmp(&(&b.at, b.order)));
        Ok(nodes)
    }

    fn thread(&self, message_id: &str) -> Result<Vec<relais_sdk::ThreadMail>, StoreError> {
        Ok(self
            .thread_mails(message_id)?
            .into_iter()
            .map(|node| relais_sdk::ThreadMail {
                outgoing: node.direction == Direction::Sent,
                message_id: node.message_id,
                subject: node.subject,
                sender: node.sender,
                in_reply_to: node.in_reply_to,
                references: node.references,
                ticket: node.ticket,
            })
            .collect())
    }

    fn thread_tree(&self, message_id: &str) -> Result<Option<Vec<ThreadNode>>, StoreError> {
        let nodes = self.thread_mails(message_id)?;
        if nodes.is_empty() {
            return Ok(None);
        }
        Ok(Some(build_tree(nodes)))
    }

    fn sender_requests(&self, sender: &str) -> Result<Vec<SenderRequest>, StoreError> {
        let sender = sender.trim().to_lowercase();
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT r.number, r.subject, r.state, r.customer, r.requester, r.updated_at,
                    r.requester IN (SELECT id FROM contacts
                                    WHERE lower(email) = ?1 OR lower(email2) = ?1) AS own
             FROM requests AS r
             WHERE ?1 <> '' AND r.customer IN (SELECT customer FROM contacts
                                               WHERE lower(email) = ?1 OR lower(email2) = ?1)",
        )?;
        let rows = statement.query_map([&sender], |r| {
            Ok(SenderRequest {
                number: r.get::<_, i64>(0)? as u64,
                subject: r.get(1)?,
                state: r.get(2)?,
                customer: r.get(3)?,
                requester: r.get(4)?,
                updated_at: r.get(5)?,
                own: r.get::<_, Option<bool>>(6)?.unwrap_or(false),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Arranges a thread's mails (oldest first) as a forest.
fn build_tree(nodes: Vec<ThreadNode>) -> Vec<ThreadNode> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.message_id.as_str(), i))
        .collect();
    // Parent of each node: its first In-Reply-To that is in the thread,
    // else its newest reference that is; an earlier mail first (an answer
    // comes after what it answers), a later one only when no earlier one
    // is named (mail stored out of order); never one that closes a loop.
    let mut parent: Vec<Option<usize>> = vec![None; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let named: Vec<usize> = node
            .in_reply_to
            .iter()
            .chain(node.references.iter().rev())
            .filter_map(|id| index.get(id.as_str()).copied())
            .filter(|&p| p != i)
            .collect();
        parent[i] = named
            .iter()
            .copied()
            .find(|&p| p < i && !descends_from(&parent, p, i))
            .or_else(|| {
                named
                    .iter()
                    .copied()
                    .find(|&p| !descends_from(&parent, p, i))
            });
    }
    let mut children: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children.entry(*p).or_default().push(i),
            None => roots.push(i),
        }
    }
    let mut slots: Vec<Option<ThreadNode>> = nodes.into_iter().map(Some).collect();
    fn take(
        i: usize,
        slots: &mut [Option<ThreadNode>],
        children: &BTreeMap<usize, Vec<usize>>,
    ) -> Option<ThreadNode> {
        let mut node = slots[i].take()?;
        for &child in children.get(&i).map(Vec::as_slice).unwrap_or_default() {
            if let Some(reply) = take(child, slots, children) {
                node.replies.push(reply);
            }
        }
        Some(node)
    }
    roots
        .into_iter()
        .filter_map(|root| take(root, &mut slots, &children))
        .collect()
}

/// Whether `node`'s chain of parents reaches `ancestor`.
fn descends_from(parent: &[Option<usize>], node: usize, ancestor: usize) -> bool {
    let mut at = Some(node);
    let mut steps = 0;
    while let Some(current) = at {
        if current == ancestor {
            return true;
        }
        steps += 1;
        if steps > parent.len() {
            return true;
        }
        at = parent[current];
    }
    false
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::{MailStatus, NewMail, OutgoingMail};

    const DIRECTORY: &str = "companies: [ { code: A, name: Acme } ]\n\
        customers: [ { code: C1, name: Dupont, company: A }, { code: C2, name: Durand, company: A } ]\n\
        contacts: [ { id: ct1, name: Jeanne, customer: C1, email: Jeanne@Dupont.example },\n\
                    { id: ct2, name: Luc, customer: C1, email: luc@dupont.example },\n\
                    { id: ct3, name: Marc, customer: C2, email: marc@durand.example } ]\n\
        request-types: [ { code: INC } ]\n\
        requests: [ { number: 7, company: A, customer: C1, type: INC, requester: ct1, state: open, subject: Printer down },\n\
                    { number: 8, company: A, customer: C1, type: INC, requester: ct2, state: open, subject: VPN },\n\
                    { number: 9, company: A, customer: C1, type: INC, requester: ct1, state: closed, subject: Old },\n\
                    { number: 10, company: A, customer: C2, type: INC, requester: ct3, state: open, subject: Other } ]\n";

    /// A store with a directory of two customers and four requests (7, 8
    /// and 9 of Dupont's, 9 closed; 10 of Durand's).
    pub(crate) fn store() -> Store {
        let mut store = Store::open_in_memory().expect("store");
        let data = crate::directory::parse(Path::new("d.yaml"), DIRECTORY, &store).expect("valid");
        store.import_directory(&data).expect("import");
        store
    }

    /// Stores a mail from Jeanne (Dupont's) about request 7.
    pub(crate) fn receive(store: &mut Store, id: &str, irt: &[&str], refs: &[&str]) {
        let in_reply_to: Vec<String> = irt.iter().map(|s| s.to_string()).collect();
        let references: Vec<String> = refs.iter().map(|s| s.to_string()).collect();
        let tx = store.begin().expect("tx");
        tx.insert_mail(&NewMail {
            message_id: id,
            account: "support",
            subject: "Re: [#7] Printer down",
            sender: Some("jeanne@dupont.example"),
            sent_at: None,
            in_reply_to: &in_reply_to,
            references: &references,
            raw: id.as_bytes(),
            attachments: &[],
            report: None,
            automatic: None,
            status: MailStatus::Processed,
            error: None,
            fingerprint: None,
            text: "",
        })
        .expect("insert");
        tx.commit().expect("commit");
    }

    fn send(store: &mut Store, id: &str, request: Option<u64>, irt: &[&str]) {
        let tx = store.begin().expect("tx");
        tx.queue_mail(
            &OutgoingMail {
                message_id: id.to_string(),
                kind: "mail".to_string(),
                to: vec!["jeanne@dupont.example".to_string()],
                subject: "[OUVERTURE] [#7] Printer down".to_string(),
                body: "b".to_string(),
                headers: Vec::new(),
                request,
                in_reply_to: irt.iter().map(|s| s.to_string()).collect(),
                references: irt.iter().map(|s| s.to_string()).collect(),
            },
            None,
            None,
            false,
        )
        .expect("queue");
        tx.commit().expect("commit");
    }

    fn ids(nodes: &[ThreadNode]) -> Vec<String> {
        nodes.iter().map(|n| n.message_id.clone()).collect()
    }

    #[test]
    fn a_sent_mail_about_a_ticket_is_recognised() {
        let mut store = store();
        send(&mut store, "relais.1.1.abc@relais.example", Some(7), &[]);
        send(&mut store, "relais.1.2.def@relais.example", None, &[]);
        assert_eq!(
            store
                .linked_ticket("relais.1.1.abc@relais.example")
                .expect("q"),
            Some(7)
        );
        assert_eq!(
            store
                .linked_ticket("relais.1.2.def@relais.example")
                .expect("q"),
            None
        );
        assert_eq!(store.linked_ticket("unknown@x").expect("q"), None);
    }

    #[test]
    fn one_ticket_per_mail_unless_moved_by_hand() {
        let mut store = store();
        receive(&mut store, "a@x", &[], &[]);
        let tx = store.begin().expect("tx");
        tx.link_mail("a@x", 7, None).expect("link");
        tx.link_mail("a@x", 7, None)
            .expect("same ticket again is a no-op");
        let refused = tx.link_mail("a@x", 8, None).expect_err("another ticket");
        assert!(refused.to_string().contains("already linked to ticket 7"));
        let moved = tx.link_mail_manually("a@x", 8, true, None).expect("move");
        assert_eq!(
            moved,
            LinkChange {
                ticket: 8,
                previous: Some(7)
            }
        );
        assert!(tx.link_mail("a@x", 99, None).is_err(), "no such request");
        tx.commit().expect("commit");
        assert_eq!(store.linked_ticket("a@x").expect("q"), Some(8));
    }

    #[test]
    fn the_tree_follows_in_reply_to_then_the_newest_reference_across_sent_mail() {
        let mut store = store();
        receive(&mut store, "root@x", &[], &[]);
        send(&mut store, "alert@relais", Some(7), &["root@x"]);
        // Only References carries the ids (some clients drop In-Reply-To).
        receive(&mut store, "reply@x", &[], &["root@x", "alert@relais"]);
        receive(&mut store, "reply2@x", &["reply@x"], &["root@x"]);
        // A loop: each names the other.
        receive(&mut store, "loop1@x", &["loop2@x"], &["reply2@x"]);
        receive(&mut store, "loop2@x", &["loop1@x"], &[]);
        let tree = store.thread_tree("reply2@x").expect("q").expect("found");
        assert_eq!(ids(&tree), ["root@x"]);
        let alert = &tree[0].replies[0];
        assert_eq!(alert.message_id, "alert@relais");
        assert_eq!(alert.direction, Direction::Sent);
        assert_eq!(alert.ticket, Some(7));
        assert_eq!(ids(&alert.replies), ["reply@x"]);
        assert_eq!(ids(&alert.replies[0].replies), ["reply2@x"]);
        let reply2 = &alert.replies[0].replies[0];
        assert_eq!(ids(&reply2.replies), ["loop1@x"]);
        assert_eq!(ids(&reply2.replies[0].replies), ["loop2@x"]);
        assert_eq!(store.thread("loop2@x").expect("q").len(), 6);
        assert!(store.thread_tree("nothing@x").expect("q").is_none());
    }

    #[test]
    fn odd_ids_are_matched_exactly() {
        let mut store = store();
        for id in ["a%b_c\\d@x", "\"quoted id\"@x", "ab@x"] {
            receive(&mut store, id, &[], &[]);
        }
        receive(&mut store, "r@x", &["a%b_c\\d@x"], &[]);
        let thread = store.thread("r@x").expect("q");
        assert_eq!(thread.len(), 2, "{thread:?}");
        assert_eq!(store.thread("\"quoted id\"@x").expect("q").len(), 1);
    }

    #[test]
    fn a_senders_requests_are_its_customers_with_its_own_marked() {
        let store = store();
        let mut found = store.sender_requests(" JEANNE@dupont.example ").expect("q");
        found.sort_by_key(|r| r.number);
        let rows: Vec<(u64, bool)> = found.iter().map(|r| (r.number, r.own)).collect();
        // 7 and 9 (closed) requested by the sender, 8 its customer's; 10,
        // another customer's, is not among them.
        assert_eq!(rows, [(7, true), (8, false), (9, true)]);
        assert!(store.sender_requests("").expect("q").is_empty());
    }
}

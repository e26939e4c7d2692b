//! The store's ports: one narrow trait per kind of use, so that what a
//! part of the engine may do with the store is in its signature, and a
//! server database can implement the same traits beside SQLite
//! (ARCHITECTURE.md, "The store as a set of ports"). `Store` and `Tx` are
//! the SQLite implementation.

use chrono::{DateTime, Utc};
use relais_sdk::{
    AddressOwner, Customer, ExchangeSummary, Recipient, Request, RequestActivity, RequestQuery,
    RequestType, Settings,
};

use super::*;
use crate::directory::{DirectoryFile, Kind, RequestSpec};

/// The directory as rules and plugins read it: requests, contracts,
/// customers, contacts, settings. Plugins' queries, the checks of a request
/// save and the application layer call it.
pub trait DirectoryRead {
    /// How many records of each kind the directory holds.
    fn directory_counts(&self) -> Result<DirectoryCounts, StoreError>;

    /// The global settings (defaults for those never imported).
    fn settings(&self) -> Result<Settings, StoreError>;

    /// The request with this number.
    fn request(&self, number: u64) -> Result<Option<Request>, StoreError>;

    /// The request type with this code.
    fn request_type(&self, code: &str) -> Result<Option<RequestType>, StoreError>;

    /// The codes of every request type, sorted.
    fn request_type_codes(&self) -> Result<Vec<String>, StoreError>;

    /// A contract with its alert settings and its recipient groups, each
    /// member with its address, reception mode and subscriptions. A member
    /// no longer in the directory is left out.
    fn contract_details(
        &self,
        code: &str,
    ) -> Result<Option<relais_sdk::ContractDetails>, StoreError>;

    /// A customer with its main site, language and alert formats.
    fn customer(&self, code: &str) -> Result<Option<Customer>, StoreError>;

    /// Every (customer, language, template) an alert format names, for
    /// checking that the templates exist.
    fn alert_templates(&self) -> Result<Vec<(String, Option<String>, String)>, StoreError>;

    /// Collaborators and contacts whose `email` or `email2` is `email`
    /// (case-insensitive), each with its linked users: one query, since
    /// CatchMail asks it for every mail.
    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, StoreError>;

    /// The customer of a contact.
    fn contact_customer(&self, id: &str) -> Result<Option<String>, StoreError>;

    /// A contact's mail address.
    fn contact_email(&self, id: &str) -> Result<Option<String>, StoreError>;

    /// The customer of a contract.
    fn contract_customer(&self, code: &str) -> Result<Option<String>, StoreError>;

    /// Whether a directory record of `kind` with this id or code exists.
    fn exists_in(&self, kind: Kind, id: &str) -> Result<bool, StoreError>;

    /// How the desk writes a request's number in a subject (`#12345678`
    /// unless the settings say otherwise).
    fn ticket_tag(&self) -> Result<relais_sdk::TicketTag, StoreError> {
        let settings = self.settings()?;
        Ok(relais_sdk::TicketTag::parse(&settings.ticket_tag).unwrap_or_default())
    }
}

/// What was exchanged on a request (mails received and sent, calls,
/// reminders), who spoke last, and the requests a plugin looks for by their
/// activity.
pub trait Exchanges {
    /// The requests in one of `query.states` whose last activity (a save,
    /// an exchange, a direct message) is not after `query.idle_since`, the
    /// longest idle first.
    fn find_requests(&self, query: &RequestQuery) -> Result<Vec<RequestActivity>, StoreError>;

    /// The contact with this id, with its addresses.
    fn contact(&self, id: &str) -> Result<Option<Recipient>, StoreError>;

    /// The exchanges on a request, oldest first.
    fn exchanges(&self, request: u64) -> Result<Vec<ExchangeRecord>, StoreError>;

    /// One exchange.
    fn exchange(&self, id: i64) -> Result<Option<ExchangeRecord>, StoreError>;

    /// A request's exchanges summed up: how many, who spoke last, how many
    /// reminders since the customer last spoke.
    fn exchange_summary(&self, request: u64) -> Result<ExchangeSummary, StoreError>;
}

/// A request's direct messages.
pub trait Messages {
    /// The direct messages on a request, oldest first.
    fn messages(&self, request: u64) -> Result<Vec<MessageRecord>, StoreError>;

    /// One direct message.
    fn message(&self, id: i64) -> Result<Option<MessageRecord>, StoreError>;

    /// How many direct messages are stored in all.
    fn message_count(&self) -> Result<u64, StoreError>;
}

/// Stored mail by its Message-ID: its record, its raw bytes, its fingerprint.
pub trait Mails {
    /// The attachments of a stored mail, in order; `None` when no mail
    /// has this id.
    fn attachments(&self, message_id: &str) -> Result<Option<Vec<StoredAttachment>>, StoreError>;

    /// One attachment of a stored mail with its content.
    fn attachment(
        &self,
        message_id: &str,
        position: u32,
    ) -> Result<Option<(StoredAttachment, Vec<u8>)>, StoreError>;

    /// Whether a mail with this Message-ID is stored.
    /// Whether a mail with this Message-ID is stored: `None` when not,
    /// else its fingerprint (`None` for mail stored before fingerprints).
    fn mail_fingerprint(&self, message_id: &str) -> Result<Option<Option<String>>, StoreError>;

    /// Whether a mail with this Message-ID is stored.
    fn mail_exists(&self, message_id: &str) -> Result<bool, StoreError>;

    /// A stored mail by Message-ID.
    fn mail(&self, message_id: &str) -> Result<Option<MailRecord>, StoreError>;

    /// The raw message of a stored mail, byte for byte: what was stored of
    /// it with the bodies of its attachments written back.
    fn raw_mail(&self, message_id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// How many blobs (raw messages and attachment contents) are stored.
    fn blob_count(&self) -> Result<u64, StoreError>;
}

/// The search over stored mail, newest first, a page at a time.
pub trait MailSearch {
    /// The mails `query` asks for, newest first.
    fn search_mails(&self, query: &MailQuery) -> Result<MailPage, StoreError>;
}

/// Mail threads and the tickets they touch: what ticket linking reads.
pub trait Threads {
    /// The ticket a mail belongs to: the one a received mail is linked to,
    /// or the one a mail Relais sent is about.
    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, StoreError>;

    /// The mails (received and sent) of the thread `message_id` belongs to,
    /// oldest first, at most 500; empty when no stored mail has that id or
    /// names it.
    fn thread_mails(&self, message_id: &str) -> Result<Vec<ThreadNode>, StoreError>;

    /// The stored mails of a thread, as the `mail` capability reads them.
    fn thread(&self, message_id: &str) -> Result<Vec<relais_sdk::ThreadMail>, StoreError>;

    /// The thread of `message_id` as a tree: each mail under the one it
    /// answers (its In-Reply-To, else its newest stored reference), roots
    /// first; replies and receipts oldest first. `None` when no stored mail
    /// is in that thread.
    fn thread_tree(&self, message_id: &str) -> Result<Option<Vec<ThreadNode>>, StoreError>;

    /// The requests of the customers a sender's address belongs to (a
    /// contact's `email` or `email2`, case-insensitive), each marked when
    /// the sender is its requester; none for an empty address.
    fn sender_requests(&self, sender: &str) -> Result<Vec<SenderRequest>, StoreError>;
}

/// What the application layer, the API and the CLI read of past
/// conversations: direct messages and exchanges.
pub trait Conversations: Messages + Exchanges {}

impl<T: Messages + Exchanges> Conversations for T {}

/// Stored mail, its threads and its search.
pub trait MailStore: Mails + MailSearch + Threads {}

impl<T: Mails + MailSearch + Threads> MailStore for T {}

/// Where an event's writes begin: one unit of work ([`EventTx`]) per
/// event, and batches of them sharing one commit.
pub trait UnitOfWork {
    /// One event's unit of work.
    type Unit<'a>: EventTx
    where
        Self: 'a;

    /// Starts the one transaction in which an event's mail, effects and run
    /// trace are written. Dropped without [`EventTx::commit`], it writes nothing.
    /// Inside a batch ([`Store::begin_batch`]) it is a savepoint: the event
    /// is still all or nothing, and the batch commits once for all.
    fn begin(&mut self) -> Result<Self::Unit<'_>, StoreError>;

    /// Opens a batch: the events until [`UnitOfWork::commit_batch`] share one
    /// commit (one disk sync), each in its own savepoint. Readers of other
    /// connections see none of it until then.
    fn begin_batch(&mut self) -> Result<(), StoreError>;

    /// Makes a batch durable.
    fn commit_batch(&mut self) -> Result<(), StoreError>;

    /// Drops a batch whose commit failed.
    fn rollback_batch(&mut self);
}

/// Directory writes inside an event (a request saved, an import), and the
/// reads an effect is checked with: read inside the event, so an effect is
/// checked against the directory it is applied to.
pub trait DirectoryWrites {
    /// Writes a checked import file within this transaction (see
    /// [`Store::import_directory`]).
    fn import_directory(&self, data: &DirectoryFile) -> Result<DirectoryCounts, StoreError>;

    /// Creates or replaces a request as the support system saved it.
    fn save_request(&self, request: &RequestSpec) -> Result<(), StoreError>;

    /// Whether a collaborator or contact exists: `None` when not, else its
    /// customer (`None` for a collaborator). Read inside the event, so an
    /// effect is checked against the directory it is applied to.
    fn party(
        &self,
        kind: relais_sdk::PartyKind,
        id: &str,
    ) -> Result<Option<Option<String>>, StoreError>;

    /// Who owns `address`: for each collaborator `None`, for each contact
    /// `Some(customer)`. An email-to-fax address whose local part's digits
    /// are a contact's fax number (at least six) counts as that contact's.
    fn address_parties(&self, address: &str) -> Result<Vec<Option<String>>, StoreError>;

    /// A contact's mail address (Mail 1), read inside the event.
    fn contact_email(&self, id: &str) -> Result<Option<String>, StoreError>;
}

/// A received mail stored, with its attachments, inside an event.
pub trait MailWrites {
    /// Sets what became of a stored mail (a replayed one's new outcome).
    fn set_mail_status(&self, message_id: &str, status: MailStatus) -> Result<(), StoreError>;

    /// Stores a mail with its raw message and attachments. A mail whose
    /// Message-ID is already stored is refused: each mail is stored once.
    fn insert_mail(&self, mail: &NewMail<'_>) -> Result<i64, StoreError>;
}

/// Direct messages and new requests, inside an event.
pub trait MessageWrites {
    /// Marks a message read or unread; whether there is such a message.
    fn set_message_read(&self, id: i64, read: bool) -> Result<bool, StoreError>;

    /// The request, or a refusal naming it when it does not exist.
    fn require_request(&self, request: u64) -> Result<relais_sdk::Request, StoreError>;

    /// Posts a direct message. Refused when the request does not exist or
    /// its conversation is locked (its messages stay visible, none is added).
    fn post_message(&self, message: &NewMessage<'_>, run: Option<i64>) -> Result<i64, StoreError>;

    /// Creates a ticket (support request) with the next free number.
    fn create_request(
        &self,
        company: &str,
        customer: &str,
        requester: Option<&str>,
        subject: &str,
        request_type: &str,
    ) -> Result<u64, StoreError>;
}

/// Exchanges recorded inside an event.
pub trait ExchangeWrites {
    /// Records `mail`, just queued in the outbox as `outbox`, as an exchange
    /// sent to the customer on the request it is about, of type
    /// `exchange_type`.
    fn record_sent_mail(
        &self,
        outbox: i64,
        mail: &OutgoingMail,
        exchange_type: &str,
        run: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Records an exchange by hand; its id.
    fn record_exchange(&self, request: u64, new: &NewExchange) -> Result<i64, StoreError>;
}

/// Mail-to-ticket links and reopened tickets, inside an event.
pub trait LinkWrites {
    /// Links a stored mail to a ticket for a rule's run. A mail links to at
    /// most one ticket: linking it again to the same ticket is a no-op, to
    /// another is refused.
    fn link_mail(&self, message_id: &str, request: u64, run: Option<i64>)
    -> Result<(), StoreError>;

    /// Links a stored mail to a ticket by hand. With `replace`, a mail
    /// already on another ticket moves; without, that is refused.
    fn link_mail_manually(
        &self,
        message_id: &str,
        request: u64,
        replace: bool,
        run: Option<i64>,
    ) -> Result<LinkChange, StoreError>;

    /// Puts a ticket into `state` (a closed ticket reopened by a follow-up).
    fn reopen_request(&self, number: u64, state: &str) -> Result<(), StoreError>;
}

/// Outbound mail queued inside an event, and the per-sender count of notices
/// its rate limit reads.
pub trait OutboxWrites {
    /// Queues a mail for the sender task. A failure notice carries its
    /// recipient as `rate_key`; `suppressed` records one that the rate limit
    /// held back (kept for the record, never sent).
    fn queue_mail(
        &self,
        mail: &OutgoingMail,
        run: Option<i64>,
        rate_key: Option<&str>,
        suppressed: bool,
    ) -> Result<i64, StoreError>;

    /// Failure notices queued for `rate_key` since `since` (RFC 3339),
    /// counted up to `limit` (so the cost stays bounded).
    fn notices_since(
        &self,
        rate_key: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<u32, StoreError>;
}

/// The run trace of an event.
pub trait RunWrites {
    /// Records a run trace; returns its id.
    fn record_run(&self, run: &RunRecord) -> Result<i64, StoreError>;
}

/// An IMAP receipt recorded with the event it started, so that a UID counts
/// as processed exactly when its mail committed.
pub trait ReceiptWrites {
    /// Records that the mail `receipt` names was processed: it becomes the
    /// account's last UID and waits to be flagged on the server.
    fn record_receipt(&self, receipt: &ImapReceipt) -> Result<(), StoreError>;
}

/// One event's unit of work: its mail, its effects and its run trace, all
/// or nothing. Every write of business data goes through it, a plugin's
/// effect or a manual write alike; dropped without [`EventTx::commit`], it
/// writes nothing (a dry run).
pub trait EventTx:
    DirectoryWrites
    + MailWrites
    + MessageWrites
    + ExchangeWrites
    + LinkWrites
    + OutboxWrites
    + RunWrites
    + ReceiptWrites
{
    /// Makes every write of this transaction durable (or, in a batch, part
    /// of the batch's commit).
    fn commit(self) -> Result<(), StoreError>
    where
        Self: Sized;
}

/// The queue of outbound mail: what is due, what was delivered, what is held
/// back.
pub trait Outbox {
    /// The outbox, newest first, optionally only one status.
    fn outbox(&self, status: Option<&str>, limit: usize) -> Result<Vec<OutboxRecord>, StoreError>;

    /// One outbound mail, by its outbox id.
    fn outbox_mail(&self, id: i64) -> Result<Option<OutboxRecord>, StoreError>;

    /// The mail about request `number` (alerts, notices, replies,
    /// reminders), oldest first.
    fn outbox_of_request(&self, number: u64) -> Result<Vec<OutboxRecord>, StoreError>;

    /// Queued mails whose next attempt is due, oldest first.
    fn due_mail(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;

    /// When the next queued mail is due, if any is queued.
    fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Records what became of delivery attempts, all in one transaction.
    fn record_deliveries(&mut self, marks: &[(i64, DeliveryMark)]) -> Result<(), StoreError>;

    /// The status of the outbox mail with this Message-ID, if any.
    fn outbox_status(&self, message_id: &str) -> Result<Option<String>, StoreError>;

    /// Queues failed mail again: one by id, or every failed one. Returns how
    /// many were queued.
    fn retry_mail(&self, id: Option<i64>) -> Result<usize, StoreError>;

    /// How many mails wait in the outbox.
    fn outbox_depth(&self) -> Result<u64, StoreError>;

    /// How many mails the outbox holds, by status (every status listed,
    /// zero included).
    fn outbox_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
}

/// What the IMAP source remembers between polls: each account's UIDs,
/// received, acknowledged, expunged.
pub trait ImapState {
    /// The account's UIDVALIDITY and last processed UID, if it was ever seen.
    fn imap_state(&self, account: &str) -> Result<Option<(u32, u32)>, StoreError>;

    /// Starts over on a mailbox whose UIDVALIDITY is new: its UIDs mean
    /// other mails now, so every mail in it is fetched again (those already
    /// processed are recognised by Message-ID), and old bookkeeping goes.
    fn reset_imap_state(&mut self, account: &str, uidvalidity: u32) -> Result<(), StoreError>;

    /// UIDs processed but not yet acknowledged on the server.
    fn imap_pending(&self, account: &str, uidvalidity: u32) -> Result<Vec<u32>, StoreError>;

    /// The server acknowledged these UIDs (flagged or moved).
    fn imap_acknowledged(
        &mut self,
        account: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<(), StoreError>;

    /// Processed UIDs received more than `days` days ago, still on the server.
    fn imap_expired(
        &self,
        account: &str,
        uidvalidity: u32,
        days: u32,
    ) -> Result<Vec<u32>, StoreError>;

    /// These UIDs were deleted from the server.
    fn imap_deleted(
        &mut self,
        account: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<(), StoreError>;
}

/// When a schedule rule last fired, and the schedule it was armed with
/// (none for a store from before schedules were recorded).
pub type LastFired = (DateTime<Utc>, Option<String>);

/// When each schedule rule last fired, and on which schedule.
pub trait ScheduleState {
    /// When the scheduled rule `rule` last fired, if ever.
    fn last_fired(&self, rule: &str) -> Result<Option<LastFired>, StoreError>;

    /// Records that the scheduled rule `rule` fired (or was armed) at `at`
    /// on `schedule`.
    fn set_last_fired(
        &self,
        rule: &str,
        at: DateTime<Utc>,
        schedule: &str,
    ) -> Result<(), StoreError>;
}

/// The run traces and the engine's published status, for the API and the CLI.
pub trait Runs {
    /// The runs a listing asks for, newest first, a page at a time.
    fn find_runs(&self, query: &RunQuery) -> Result<RunPage, StoreError>;

    /// The most recent runs, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError>;

    /// One run with its full trace.
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError>;

    /// Runs of one mail, newest first.
    fn runs_of_mail(&self, message_id: &str) -> Result<Vec<i64>, StoreError>;

    /// Records what the running engine says of itself (JSON).
    fn set_engine_status(&self, status: &str) -> Result<(), StoreError>;

    /// What the engine last said of itself, and when.
    fn engine_status(&self) -> Result<Option<(String, String)>, StoreError>;
}

/// What the sources and the scheduler remember between polls.
pub trait SourceState: ImapState + ScheduleState {}

impl<T: ImapState + ScheduleState> SourceState for T {}

/// A whole directory file written at once, outside any event (the demo, rule
/// tests).
pub trait Import {
    /// Writes a checked import file in one transaction. Records are upserted
    /// by code, id, login or number, so importing the same file twice
    /// changes nothing the second time.
    fn import_directory(&mut self, data: &DirectoryFile) -> Result<DirectoryCounts, StoreError>;
}

/// Housekeeping: what is older than the retention settings goes, a batch at a
/// time.
pub trait Expiry {
    /// Removes at most `batch` of each kind of record older than its
    /// cut-off, in one transaction; call again until it removes nothing.
    fn expire(&mut self, cutoffs: &Cutoffs, batch: usize) -> Result<Expired, StoreError>;
}

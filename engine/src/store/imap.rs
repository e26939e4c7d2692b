//! IMAP bookkeeping: which mails of an account's mailbox were processed, so
//! that a mail is fetched, processed and acknowledged exactly once across
//! reconnects, crashes and UIDVALIDITY changes.

use rusqlite::{OptionalExtension, params};

use super::prelude::*;
use super::{Cached, ImapState, ReceiptWrites, Store, StoreError, Tx, now};

/// Where a mail came from on its IMAP server: written in the transaction of
/// its processing, so the last UID never runs ahead of what committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapReceipt {
    /// The account's name.
    pub account: String,
    /// The mailbox's UIDVALIDITY when the mail was fetched.
    pub uidvalidity: u32,
    /// The mail's UID.
    pub uid: u32,
}

impl ReceiptWrites for Tx<'_> {
    fn record_receipt(&self, receipt: &ImapReceipt) -> Result<(), StoreError> {
        self.conn.run(
            "INSERT INTO imap_state (account, uidvalidity, last_uid) VALUES (?1, ?2, ?3)
             ON CONFLICT (account) DO UPDATE SET uidvalidity = ?2, last_uid = max(last_uid, ?3)
               WHERE uidvalidity = ?2",
            params![receipt.account, receipt.uidvalidity, receipt.uid],
        )?;
        self.conn.run(
            "INSERT OR IGNORE INTO imap_pending (account, uidvalidity, uid) VALUES (?1, ?2, ?3)",
            params![receipt.account, receipt.uidvalidity, receipt.uid],
        )?;
        self.conn.run(
            "INSERT OR IGNORE INTO imap_received (account, uidvalidity, uid, received_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![receipt.account, receipt.uidvalidity, receipt.uid, now()],
        )?;
        Ok(())
    }
}

impl Store {
    /// Deletes the rows of `table` for these UIDs, in one transaction.
    fn forget_uids(
        &mut self,
        table: &str,
        account: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<(), StoreError> {
        let sql =
            format!("DELETE FROM {table} WHERE account = ?1 AND uidvalidity = ?2 AND uid = ?3");
        let tx = self.begin()?;
        for uid in uids {
            tx.conn.run(&sql, params![account, uidvalidity, uid])?;
        }
        tx.commit()
    }
}

impl ImapState for Store {
    fn imap_state(&self, account: &str) -> Result<Option<(u32, u32)>, StoreError> {
        Ok(self
            .conn()
            .one(
                "SELECT uidvalidity, last_uid FROM imap_state WHERE account = ?1",
                [account],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn reset_imap_state(&mut self, account: &str, uidvalidity: u32) -> Result<(), StoreError> {
        let tx = self.begin()?;
        tx.conn.run(
            "INSERT INTO imap_state (account, uidvalidity, last_uid) VALUES (?1, ?2, 0)
             ON CONFLICT (account) DO UPDATE SET uidvalidity = ?2, last_uid = 0",
            params![account, uidvalidity],
        )?;
        tx.conn.run(
            "DELETE FROM imap_pending WHERE account = ?1 AND uidvalidity <> ?2",
            params![account, uidvalidity],
        )?;
        tx.conn.run(
            "DELETE FROM imap_received WHERE account = ?1 AND uidvalidity <> ?2",
            params![account, uidvalidity],
        )?;
        tx.commit()
    }

    fn imap_pending(&self, account: &str, uidvalidity: u32) -> Result<Vec<u32>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT uid FROM imap_pending WHERE account = ?1 AND uidvalidity = ?2 ORDER BY uid",
        )?;
        let uids = statement
            .query_map(params![account, uidvalidity], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(uids)
    }

    fn imap_acknowledged(
        &mut self,
        account: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<(), StoreError> {
        self.forget_uids("imap_pending", account, uidvalidity, uids)
    }

    fn imap_expired(
        &self,
        account: &str,
        uidvalidity: u32,
        days: u32,
    ) -> Result<Vec<u32>, StoreError> {
        let cutoff = (chrono::Utc::now() - chrono::Duration::days(days.into()))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT uid FROM imap_received
             WHERE account = ?1 AND uidvalidity = ?2 AND received_at < ?3
               AND uid NOT IN (SELECT uid FROM imap_pending WHERE account = ?1 AND uidvalidity = ?2)
             ORDER BY uid",
        )?;
        let uids = statement
            .query_map(params![account, uidvalidity, cutoff], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(uids)
    }

    fn imap_deleted(
        &mut self,
        account: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<(), StoreError> {
        self.forget_uids("imap_received", account, uidvalidity, uids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(uid: u32) -> ImapReceipt {
        ImapReceipt {
            account: "catchmail".into(),
            uidvalidity: 7,
            uid,
        }
    }

    #[test]
    fn the_last_uid_follows_commits_only() {
        let mut store = Store::open_in_memory().expect("store");
        {
            let tx = store.begin().expect("begin");
            tx.record_receipt(&receipt(3)).expect("record");
            // Dropped: rolled back.
        }
        assert_eq!(store.imap_state("catchmail").expect("state"), None);
        let tx = store.begin().expect("begin");
        tx.record_receipt(&receipt(3)).expect("record");
        tx.record_receipt(&receipt(2)).expect("record");
        tx.commit().expect("commit");
        assert_eq!(store.imap_state("catchmail").expect("state"), Some((7, 3)));
        assert_eq!(store.imap_pending("catchmail", 7).expect("pending"), [2, 3]);
        store
            .imap_acknowledged("catchmail", 7, &[2, 3])
            .expect("acknowledged");
        assert!(
            store
                .imap_pending("catchmail", 7)
                .expect("pending")
                .is_empty()
        );
    }

    #[test]
    fn a_new_uidvalidity_starts_over() {
        let mut store = Store::open_in_memory().expect("store");
        let tx = store.begin().expect("begin");
        tx.record_receipt(&receipt(9)).expect("record");
        tx.commit().expect("commit");
        store.reset_imap_state("catchmail", 8).expect("reset");
        assert_eq!(store.imap_state("catchmail").expect("state"), Some((8, 0)));
        assert!(
            store
                .imap_pending("catchmail", 7)
                .expect("pending")
                .is_empty()
        );
    }

    #[test]
    fn a_batch_commits_its_savepoints_together() {
        let mut store = Store::open_in_memory().expect("store");
        store.begin_batch().expect("batch");
        let tx = store.begin().expect("begin");
        tx.record_receipt(&receipt(1)).expect("record");
        tx.commit().expect("release");
        {
            let tx = store.begin().expect("begin");
            tx.record_receipt(&receipt(2)).expect("record");
            // Dropped: only this event is undone.
        }
        store.commit_batch().expect("commit");
        assert_eq!(store.imap_state("catchmail").expect("state"), Some((7, 1)));
    }
}

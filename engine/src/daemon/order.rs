//! The order mail keeps while plugins decide about it side by side.
//!
//! Each mail carries ordering keys (its thread, its sender, the requests its
//! subject names). A mail is handed out to be decided only when no earlier
//! mail sharing one of its keys is still undecided or uncommitted, so it
//! sees what they wrote: two mails of one thread are decided and committed
//! in arrival order, and ticket linking finds the ticket the first one
//! made. Mails that share no key are decided at the same time.
//!
//! A mail may also have a turn: the source whose bookkeeping must move in
//! arrival order (an IMAP account's last UID). A decided mail is committed
//! only once every earlier mail of its turn was, whatever order the
//! decisions finished in.
//!
//! Progress: the earliest mail not yet committed is never parked (whatever
//! it waits for came before it, and is committed), and it is first in its
//! turn, so it is decided and committed; then the next one is the earliest.
//!
//! A burst of mails sharing a key (a mail loop, one sender's bulk) would
//! cost a commit, and its disk sync, per mail. So while a batch is being
//! written, a parked mail that waits only for mails of that batch, each of
//! which was decided quickly, is decided by the writer right after them,
//! in the same transaction, where their writes are visible
//! ([`Order::follower`]). A mail behind a slow decision still waits for
//! the commit and goes to a worker.

use std::collections::{HashMap, HashSet, VecDeque};

/// What travels with a mail from its admission to its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    seq: u64,
    keys: Vec<String>,
    turn: Option<String>,
}

/// The order of mails in flight: `T` is a mail waiting to be decided, `R`
/// a decision waiting to be committed.
#[derive(Debug)]
pub struct Order<T, R> {
    next: u64,
    /// Keys of the mails handed out and not yet committed.
    busy: HashMap<String, usize>,
    /// Mails waiting for a key, in arrival order.
    parked: VecDeque<(Ticket, T)>,
    /// Per turn, the mails admitted and not yet committed, in arrival order.
    turns: HashMap<String, VecDeque<u64>>,
    /// Decisions waiting for their turn.
    held: HashMap<u64, (Ticket, R)>,
    in_flight: usize,
    /// The mails of the batch being written, by sequence.
    batch: HashSet<u64>,
    /// Per key, how many mails of the batch, each decided quickly, hold it.
    batch_quick: HashMap<String, usize>,
    /// Keys held by a mail of the batch whose decision was slow.
    batch_slow: HashSet<String>,
}

impl<T, R> Default for Order<T, R> {
    fn default() -> Self {
        Order {
            next: 0,
            busy: HashMap::new(),
            parked: VecDeque::new(),
            turns: HashMap::new(),
            held: HashMap::new(),
            in_flight: 0,
            batch: HashSet::new(),
            batch_quick: HashMap::new(),
            batch_slow: HashSet::new(),
        }
    }
}

impl<T, R> Order<T, R> {
    /// Takes a mail in. Returns it with its ticket when it may be decided
    /// now; otherwise keeps it until the mails it waits for are committed.
    pub fn admit(
        &mut self,
        mut keys: Vec<String>,
        turn: Option<String>,
        item: T,
    ) -> Option<(Ticket, T)> {
        keys.sort();
        keys.dedup();
        let ticket = Ticket {
            seq: self.next,
            keys,
            turn,
        };
        self.next += 1;
        self.in_flight += 1;
        if let Some(turn) = &ticket.turn {
            self.turns
                .entry(turn.clone())
                .or_default()
                .push_back(ticket.seq);
        }
        let waits = ticket.keys.iter().any(|key| self.busy.contains_key(key))
            || self
                .parked
                .iter()
                .any(|(parked, _)| shares_a_key(parked, &ticket));
        if waits {
            self.parked.push_back((ticket, item));
            return None;
        }
        self.take_keys(&ticket);
        Some((ticket, item))
    }

    /// A mail was decided. Returns the decisions that may be committed now:
    /// this one, unless an earlier mail of its turn is still uncommitted.
    pub fn decided(&mut self, ticket: Ticket, result: R) -> Option<(Ticket, R)> {
        if self.is_its_turn(&ticket) {
            Some((ticket, result))
        } else {
            self.held.insert(ticket.seq, (ticket, result));
            None
        }
    }

    /// A mail was committed (or given up). Returns the mails that may now
    /// be decided and the held decisions whose turn came.
    pub fn committed(&mut self, ticket: &Ticket) -> Released<T, R> {
        self.in_flight -= 1;
        for key in &ticket.keys {
            if let Some(count) = self.busy.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    self.busy.remove(key);
                }
            }
        }
        let mut released = Released {
            to_decide: Vec::new(),
            to_commit: Vec::new(),
        };
        if let Some(turn) = &ticket.turn
            && let Some(queue) = self.turns.get_mut(turn)
        {
            queue.retain(|seq| *seq != ticket.seq);
            match queue.front() {
                None => {
                    self.turns.remove(turn);
                }
                Some(front) => {
                    if let Some(held) = self.held.remove(front) {
                        released.to_commit.push(held);
                    }
                }
            }
        }
        // Parked mails in arrival order: one goes when no mail handed out
        // and no earlier parked mail shares a key with it.
        let mut blocked: HashSet<String> = HashSet::new();
        let mut still = VecDeque::new();
        while let Some((parked, item)) = self.parked.pop_front() {
            let waits = parked
                .keys
                .iter()
                .any(|key| self.busy.contains_key(key) || blocked.contains(key));
            if waits {
                blocked.extend(parked.keys.iter().cloned());
                still.push_back((parked, item));
            } else {
                self.take_keys(&parked);
                released.to_decide.push((parked, item));
            }
        }
        self.parked = still;
        released
    }

    /// A mail was written in the batch being written (not committed yet);
    /// `quick` when its decision was.
    pub fn in_batch(&mut self, ticket: &Ticket, quick: bool) {
        self.batch.insert(ticket.seq);
        for key in &ticket.keys {
            if quick {
                *self.batch_quick.entry(key.clone()).or_default() += 1;
            } else {
                self.batch_slow.insert(key.clone());
            }
        }
    }

    /// The first parked mail that waits only for mails written in this
    /// batch, each decided quickly, and whose turn has come within it: the
    /// writer may decide it now, in the batch's transaction. It takes its
    /// keys, as a mail handed out does.
    pub fn follower(&mut self) -> Option<(Ticket, T)> {
        let mut blocked: HashSet<&String> = HashSet::new();
        let mut found = None;
        for (index, (parked, _)) in self.parked.iter().enumerate() {
            let waits = parked.keys.iter().any(|key| {
                blocked.contains(key)
                    || self.busy.get(key).is_some_and(|holders| {
                        self.batch_slow.contains(key) || self.batch_quick.get(key) != Some(holders)
                    })
            });
            if waits || !self.turn_within_batch(parked) {
                blocked.extend(parked.keys.iter());
                continue;
            }
            found = Some(index);
            break;
        }
        let (ticket, item) = self.parked.remove(found?)?;
        self.take_keys(&ticket);
        Some((ticket, item))
    }

    /// The batch was committed or given up: what it held is forgotten
    /// (each of its mails is then [`committed`](Order::committed)).
    pub fn end_batch(&mut self) {
        self.batch.clear();
        self.batch_quick.clear();
        self.batch_slow.clear();
    }

    /// Whether every earlier mail of `ticket`'s turn is in the batch.
    fn turn_within_batch(&self, ticket: &Ticket) -> bool {
        let Some(turn) = &ticket.turn else {
            return true;
        };
        self.turns.get(turn).is_none_or(|queue| {
            queue
                .iter()
                .take_while(|seq| **seq != ticket.seq)
                .all(|seq| self.batch.contains(seq))
        })
    }

    /// Whether no mail is in flight.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0
    }

    fn take_keys(&mut self, ticket: &Ticket) {
        for key in &ticket.keys {
            *self.busy.entry(key.clone()).or_default() += 1;
        }
    }

    fn is_its_turn(&self, ticket: &Ticket) -> bool {
        match &ticket.turn {
            None => true,
            Some(turn) => self
                .turns
                .get(turn)
                .and_then(|queue| queue.front())
                .is_none_or(|front| *front == ticket.seq),
        }
    }
}

/// What a commit set free.
#[derive(Debug)]
pub struct Released<T, R> {
    /// Mails that may now be decided.
    pub to_decide: Vec<(Ticket, T)>,
    /// Decisions that may now be committed.
    pub to_commit: Vec<(Ticket, R)>,
}

fn shares_a_key(a: &Ticket, b: &Ticket) -> bool {
    a.keys.iter().any(|key| b.keys.contains(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::app::mail_keys;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn mails_sharing_no_key_are_handed_out_together() {
        let mut order: Order<&str, ()> = Order::default();
        assert!(order.admit(keys(&["a"]), None, "one").is_some());
        assert!(order.admit(keys(&["b"]), None, "two").is_some());
    }

    #[test]
    fn a_mail_sharing_a_key_waits_for_the_commit_of_the_earlier_one() {
        let mut order: Order<&str, ()> = Order::default();
        let (first, _) = order.admit(keys(&["thread", "x"]), None, "one").unwrap();
        assert!(order.admit(keys(&["thread"]), None, "two").is_none());
        // Decided is not enough: it must be committed.
        let (first, ()) = order.decided(first, ()).unwrap();
        let released = order.committed(&first);
        let names: Vec<&str> = released.to_decide.iter().map(|(_, m)| *m).collect();
        assert_eq!(names, ["two"]);
    }

    #[test]
    fn parked_mails_keep_their_arrival_order_per_key() {
        let mut order: Order<&str, ()> = Order::default();
        let (first, _) = order.admit(keys(&["a"]), None, "one").unwrap();
        assert!(order.admit(keys(&["a", "b"]), None, "two").is_none());
        // "three" shares `b` with "two", parked before it: it waits too,
        // although `b` itself is free.
        assert!(order.admit(keys(&["b"]), None, "three").is_none());
        // Unrelated mail still goes.
        assert!(order.admit(keys(&["c"]), None, "four").is_some());
        let released = order.committed(&first);
        let names: Vec<&str> = released.to_decide.iter().map(|(_, m)| *m).collect();
        assert_eq!(names, ["two"]);
        let (two, _) = released.to_decide.into_iter().next().unwrap();
        let released = order.committed(&two);
        let names: Vec<&str> = released.to_decide.iter().map(|(_, m)| *m).collect();
        assert_eq!(names, ["three"]);
    }

    #[test]
    fn decisions_of_one_turn_are_committed_in_arrival_order() {
        let mut order: Order<u32, &str> = Order::default();
        let (one, _) = order
            .admit(keys(&["a"]), Some("imap:desk".into()), 1)
            .unwrap();
        let (two, _) = order
            .admit(keys(&["b"]), Some("imap:desk".into()), 2)
            .unwrap();
        let (other, _) = order
            .admit(keys(&["c"]), Some("imap:other".into()), 3)
            .unwrap();
        // The second finishes first: held until the first is committed.
        assert!(order.decided(two, "second").is_none());
        assert!(order.decided(other, "other account").is_some());
        let (one, _) = order.decided(one, "first").unwrap();
        let released = order.committed(&one);
        let ready: Vec<&str> = released.to_commit.iter().map(|(_, r)| *r).collect();
        assert_eq!(ready, ["second"]);
    }

    #[test]
    fn a_follower_of_quick_mails_of_the_batch_is_decided_in_it() {
        let mut order: Order<&str, ()> = Order::default();
        let (one, _) = order.admit(keys(&["jeanne"]), None, "one").unwrap();
        assert!(order.admit(keys(&["jeanne"]), None, "two").is_none());
        assert!(order.admit(keys(&["jeanne", "x"]), None, "three").is_none());
        // Before "one" is in the batch, nobody follows.
        assert!(order.follower().is_none());
        order.in_batch(&one, true);
        let (two, name) = order.follower().unwrap();
        assert_eq!(name, "two");
        // "three" waits for "two", which is not written yet.
        assert!(order.follower().is_none());
        order.in_batch(&two, true);
        let (three, name) = order.follower().unwrap();
        assert_eq!(name, "three");
        order.in_batch(&three, true);
        order.end_batch();
        for ticket in [one, two, three] {
            let released = order.committed(&ticket);
            assert!(released.to_decide.is_empty());
        }
        assert!(order.is_idle());
    }

    #[test]
    fn a_follower_of_a_slow_mail_or_of_one_not_in_the_batch_waits() {
        let mut order: Order<&str, ()> = Order::default();
        let (slow, _) = order.admit(keys(&["a"]), None, "slow").unwrap();
        let (deciding, _) = order.admit(keys(&["b"]), None, "deciding").unwrap();
        assert!(order.admit(keys(&["a"]), None, "after slow").is_none());
        assert!(order.admit(keys(&["b"]), None, "after deciding").is_none());
        order.in_batch(&slow, false);
        // `b` is held by a mail still being decided elsewhere.
        assert!(order.follower().is_none());
        order.end_batch();
        let released = order.committed(&slow);
        let names: Vec<&str> = released.to_decide.iter().map(|(_, m)| *m).collect();
        assert_eq!(names, ["after slow"]);
        let released = order.committed(&deciding);
        let names: Vec<&str> = released.to_decide.iter().map(|(_, m)| *m).collect();
        assert_eq!(names, ["after deciding"]);
    }

    #[test]
    fn a_follower_keeps_its_turn() {
        let mut order: Order<&str, ()> = Order::default();
        let turn = || Some("imap:desk".to_string());
        let (one, _) = order.admit(keys(&["a"]), turn(), "one").unwrap();
        let (_two, _) = order.admit(keys(&["b"]), turn(), "two").unwrap();
        assert!(order.admit(keys(&["a"]), turn(), "three").is_none());
        // "three" follows "one" but comes after "two", still deciding.
        order.in_batch(&one, true);
        assert!(order.follower().is_none());
    }

    #[test]
    fn idle_once_everything_admitted_is_committed() {
        let mut order: Order<(), ()> = Order::default();
        assert!(order.is_idle());
        let (ticket, ()) = order.admit(keys(&["a"]), None, ()).unwrap();
        assert!(!order.is_idle());
        order.committed(&ticket);
        assert!(order.is_idle());
    }

    #[test]
    fn a_reply_shares_a_key_with_the_mail_it_answers() {
        let first = relais_sdk::Mail {
            message_id: "M1@Example".into(),
            subject: "Écran noir".into(),
            ..Default::default()
        };
        let reply = relais_sdk::Mail {
            message_id: "m2@example".into(),
            in_reply_to: vec!["m1@example".into()],
            subject: "Re: Écran noir [#023010203]".into(),
            ..Default::default()
        };
        let first_keys = mail_keys(&first);
        let reply_keys = mail_keys(&reply);
        assert!(reply_keys.iter().any(|key| first_keys.contains(key)));
        assert!(reply_keys.contains(&"request:23010203".to_string()));
    }
}

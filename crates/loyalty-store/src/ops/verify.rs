//! The integrity check (DESIGN §3.6), shared by every backend: backends
//! stream accounts and entries in player order; this decides what is drift.

use loyalty_core::TransactionType;
use uuid::Uuid;

use crate::{Account, Drift};

/// What verification needs to know about one ledger entry.
#[derive(Debug, Clone)]
pub struct EntryFacts {
    /// Whose entry.
    pub player_id: Uuid,
    /// The entry.
    pub entry_id: Uuid,
    /// Kind.
    pub transaction_type: TransactionType,
    /// Signed change.
    pub points_change: i64,
    /// Balance before.
    pub balance_before: i64,
    /// Balance after.
    pub balance_after: i64,
    /// Lifetime points after.
    pub lifetime_after: i64,
    /// The entry's chain hash.
    pub hash: String,
}

/// Folds one account's entries and reports every disagreement.
pub struct Checker<'a> {
    report: &'a mut dyn FnMut(Drift),
    accounts: u64,
    current: Option<Account>,
    balance: i64,
    lifetime: i64,
    count: i64,
    /// The current account's newest entry so far, and its hash.
    newest: Option<Uuid>,
    newest_hash: String,
}

impl<'a> Checker<'a> {
    /// A checker reporting to `report`.
    pub fn new(report: &'a mut dyn FnMut(Drift)) -> Self {
        Checker {
            report,
            accounts: 0,
            current: None,
            balance: 0,
            lifetime: 0,
            count: 0,
            newest: None,
            newest_hash: String::new(),
        }
    }

    /// Starts an account.
    pub fn begin(&mut self, account: &Account) {
        self.accounts += 1;
        self.current = Some(account.clone());
        self.balance = 0;
        self.lifetime = 0;
        self.count = 0;
        self.newest = None;
        self.newest_hash.clear();
    }

    fn drift(
        &mut self,
        player_id: Uuid,
        check: &str,
        expected: i64,
        actual: i64,
        entry: Option<Uuid>,
    ) {
        (self.report)(Drift {
            player_id,
            check: check.to_string(),
            expected,
            actual,
            entry_id: entry,
            escrow_id: None,
            merchant_id: None,
        });
    }

    /// Folds the next entry of the current account (in sequence order).
    pub fn entry(&mut self, e: &EntryFacts) {
        if e.balance_before != self.balance {
            self.drift(
                e.player_id,
                "balance_before_chain",
                self.balance,
                e.balance_before,
                Some(e.entry_id),
            );
        }
        if e.balance_after != e.balance_before.saturating_add(e.points_change) {
            self.drift(
                e.player_id,
                "balance_after_arithmetic",
                e.balance_before.saturating_add(e.points_change),
                e.balance_after,
                Some(e.entry_id),
            );
        }
        self.balance = self.balance.saturating_add(e.points_change);
        self.lifetime = self
            .lifetime
            .saturating_add(e.transaction_type.lifetime_change(e.points_change));
        if e.lifetime_after != self.lifetime {
            self.drift(
                e.player_id,
                "lifetime_after",
                self.lifetime,
                e.lifetime_after,
                Some(e.entry_id),
            );
        }
        if self.balance < 0 {
            self.drift(
                e.player_id,
                "negative_balance",
                0,
                self.balance,
                Some(e.entry_id),
            );
        }
        self.count += 1;
        self.newest = Some(e.entry_id);
        self.newest_hash.clear();
        self.newest_hash.push_str(&e.hash);
    }

    /// An entry whose player has no account.
    pub fn orphan(&mut self, e: &EntryFacts) {
        self.drift(
            e.player_id,
            "entry_without_account",
            0,
            e.points_change,
            Some(e.entry_id),
        );
    }

    /// Ends the current account, comparing its row with the folded ledger.
    pub fn end(&mut self) {
        let Some(a) = self.current.take() else { return };
        if a.current_balance != self.balance {
            self.drift(
                a.player_id,
                "current_balance",
                a.current_balance,
                self.balance,
                None,
            );
        }
        if a.lifetime_points != self.lifetime {
            self.drift(
                a.player_id,
                "lifetime_points",
                a.lifetime_points,
                self.lifetime,
                None,
            );
        }
        if a.entry_count != self.count {
            self.drift(a.player_id, "entry_count", a.entry_count, self.count, None);
        }
        if a.escrow_balance < 0 {
            self.drift(a.player_id, "negative_escrow", 0, a.escrow_balance, None);
        }
        // The chain head the account keeps for the next entry (schema 15)
        // must be its newest entry's hash: a wrong one would start the next
        // entry's chain from a hash no entry has.
        let newest = if self.count == 0 {
            crate::chain::GENESIS
        } else {
            self.newest_hash.as_str()
        };
        if a.chain_head.as_deref().is_some_and(|head| head != newest) {
            let entry = self.newest;
            self.drift(a.player_id, "chain_head", 0, 1, entry);
        }
    }

    /// Accounts checked so far.
    pub fn accounts_checked(&self) -> u64 {
        self.accounts
    }
}

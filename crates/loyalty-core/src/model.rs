//! Nouns shared by every layer: roles and permissions, slip states, ledger
//! transaction types, and the limits on every input.

use serde::{Deserialize, Serialize};

/// Limits on inputs (TigerStyle: a bound on everything). Public API: the
/// error catalogue quotes them.
pub mod limits {
    /// Longest name (player display name, staff, table, merchant), characters.
    pub const NAME_CHARS_MAX: usize = 200;
    /// Longest reason, characters.
    pub const REASON_CHARS_MAX: usize = 500;
    /// Shortest manual-reward reason, characters.
    pub const REWARD_REASON_CHARS_MIN: usize = 10;
    /// Longest card number, characters.
    pub const CARD_NUMBER_CHARS_MAX: usize = 64;
    /// Longest `reward_id`, an `Idempotency-Key` or other client key, characters.
    pub const KEY_CHARS_MAX: usize = 128;
    /// Largest |points| of one manual reward.
    pub const REWARD_POINTS_MAX: i64 = 10_000;
    /// Largest average bet.
    pub const AVERAGE_BET_MAX: i64 = 1_000_000;
    /// Largest number of decimal places accepted in money-like inputs.
    pub const DECIMAL_PLACES_MAX: u32 = 4;
    /// Largest amount of one escrow (hold), points.
    pub const ESCROW_AMOUNT_MAX: i64 = 1_000_000;
    /// Longest an escrow may be held before it expires, days.
    pub const ESCROW_EXPIRY_DAYS_MAX: i64 = 90;
    /// Longest escrow reference (an outlet's check or order number), characters.
    pub const REFERENCE_CHARS_MAX: usize = 200;
    /// Largest average rounds per hour.
    pub const ROUNDS_PER_HOUR_MAX: u32 = 1_000;
    /// Largest seat count.
    pub const SEATS_MAX: u32 = 20;
    /// Largest points conversion rate.
    pub const CONVERSION_RATE_MAX: i64 = 1_000;
    /// Largest table point multiplier.
    pub const POINT_MULTIPLIER_MAX: i64 = 100;
    /// Longest session a slip may record, seconds (24 h).
    pub const SESSION_SECONDS_MAX: i64 = 24 * 3600;
    /// Default ledger page size.
    pub const PAGE_DEFAULT: u32 = 50;
    /// Largest ledger page size.
    pub const PAGE_MAX: u32 = 1000;
    /// Largest request body, bytes.
    pub const BODY_BYTES_MAX: usize = 64 * 1024;
}

/// A staff role (DESIGN §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including staff administration.
    Admin,
    /// Floor supervisor.
    Supervisor,
    /// Pit boss.
    PitBoss,
    /// Cage / outlet cashier.
    Cashier,
    /// Read-only auditor.
    Auditor,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Supervisor,
        Role::PitBoss,
        Role::Cashier,
        Role::Auditor,
    ];

    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::PitBoss => "pit_boss",
            Role::Cashier => "cashier",
            Role::Auditor => "auditor",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role grants `p` — the table of DESIGN §3.7, exactly.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match p {
            PlayersRead => true,
            PlayersWrite | RatingSlipWrite | LoyaltyAward => {
                matches!(self, Admin | Supervisor | PitBoss)
            }
            TablesWrite | LoyaltyAdjust => matches!(self, Admin | Supervisor),
            WalletEscrow => matches!(self, Admin | Supervisor | Cashier),
            LoyaltyViewAll | AuditRead => matches!(self, Admin | Supervisor | Auditor),
            StaffAdmin => matches!(self, Admin),
        }
    }
}

/// A permission a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `players:read`
    PlayersRead,
    /// `players:write`
    PlayersWrite,
    /// `tables:write`
    TablesWrite,
    /// `ratingslip:write`
    RatingSlipWrite,
    /// `loyalty:award`
    LoyaltyAward,
    /// `loyalty:adjust`
    LoyaltyAdjust,
    /// `wallet:escrow`
    WalletEscrow,
    /// `loyalty:view_all`
    LoyaltyViewAll,
    /// `audit:read`
    AuditRead,
    /// `staff:admin`
    StaffAdmin,
}

impl Permission {
    /// Every permission, in the order of the DESIGN §3.7 table.
    pub const ALL: [Permission; 10] = [
        Permission::PlayersRead,
        Permission::PlayersWrite,
        Permission::TablesWrite,
        Permission::RatingSlipWrite,
        Permission::LoyaltyAward,
        Permission::LoyaltyAdjust,
        Permission::WalletEscrow,
        Permission::LoyaltyViewAll,
        Permission::AuditRead,
        Permission::StaffAdmin,
    ];

    /// The permission's name as DESIGN §3.7 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::PlayersRead => "players:read",
            Permission::PlayersWrite => "players:write",
            Permission::TablesWrite => "tables:write",
            Permission::RatingSlipWrite => "ratingslip:write",
            Permission::LoyaltyAward => "loyalty:award",
            Permission::LoyaltyAdjust => "loyalty:adjust",
            Permission::WalletEscrow => "wallet:escrow",
            Permission::LoyaltyViewAll => "loyalty:view_all",
            Permission::AuditRead => "audit:read",
            Permission::StaffAdmin => "staff:admin",
        }
    }
}

/// State of a rating slip: OPEN → (PAUSED ↔ OPEN) → CLOSED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SlipStatus {
    /// Play is being timed.
    Open,
    /// Play is paused; time does not count.
    Paused,
    /// Completed; changed afterwards only by a correction.
    Closed,
    /// Voided after closing: its points were taken back (final).
    Voided,
}

impl SlipStatus {
    /// Stable upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SlipStatus::Open => "OPEN",
            SlipStatus::Paused => "PAUSED",
            SlipStatus::Closed => "CLOSED",
            SlipStatus::Voided => "VOIDED",
        }
    }
    /// Parses [`SlipStatus::as_str`].
    pub fn parse(s: &str) -> Option<SlipStatus> {
        [
            SlipStatus::Open,
            SlipStatus::Paused,
            SlipStatus::Closed,
            SlipStatus::Voided,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// State of an escrow (a hold of points for a merchant): HELD → SETTLED |
/// PARTIALLY_SETTLED | REFUNDED | EXPIRED. The final states never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EscrowStatus {
    /// Points are held; they can be captured or refunded.
    Held,
    /// Closed by a capture of everything still held.
    Settled,
    /// Closed by a final capture of part, the rest refunded with it.
    PartiallySettled,
    /// Closed by a refund of what was still held.
    Refunded,
    /// Closed by the expiry sweep, what was held refunded.
    Expired,
}

impl EscrowStatus {
    /// Every status.
    pub const ALL: [EscrowStatus; 5] = [
        EscrowStatus::Held,
        EscrowStatus::Settled,
        EscrowStatus::PartiallySettled,
        EscrowStatus::Refunded,
        EscrowStatus::Expired,
    ];
    /// Stable upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EscrowStatus::Held => "HELD",
            EscrowStatus::Settled => "SETTLED",
            EscrowStatus::PartiallySettled => "PARTIALLY_SETTLED",
            EscrowStatus::Refunded => "REFUNDED",
            EscrowStatus::Expired => "EXPIRED",
        }
    }
    /// Parses [`EscrowStatus::as_str`].
    pub fn parse(s: &str) -> Option<EscrowStatus> {
        EscrowStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Whether a closed slip's points have been written to the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LoyaltyStatus {
    /// The slip is not closed yet.
    None,
    /// Closed, accrual failed, waiting for recovery.
    Pending,
    /// Closed and accrued.
    Accrued,
}

impl LoyaltyStatus {
    /// Stable upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoyaltyStatus::None => "NONE",
            LoyaltyStatus::Pending => "PENDING",
            LoyaltyStatus::Accrued => "ACCRUED",
        }
    }
    /// Parses [`LoyaltyStatus::as_str`].
    pub fn parse(s: &str) -> Option<LoyaltyStatus> {
        [
            LoyaltyStatus::None,
            LoyaltyStatus::Pending,
            LoyaltyStatus::Accrued,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Whether a player takes part in the program. Every player is ACTIVE today;
/// the state is stored and shown so that closing an account later is a new
/// variant, not a new column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlayerStatus {
    /// Earns and redeems points.
    Active,
}

impl PlayerStatus {
    /// Stable upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerStatus::Active => "ACTIVE",
        }
    }
    /// Parses [`PlayerStatus::as_str`].
    pub fn parse(s: &str) -> Option<PlayerStatus> {
        [PlayerStatus::Active].into_iter().find(|v| v.as_str() == s)
    }
}

/// Kind of a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionType {
    /// Points from a completed rating slip.
    Gameplay,
    /// A positive manual reward.
    ManualBonus,
    /// A negative manual correction.
    Adjustment,
    /// Points moved from available into escrow.
    EscrowHold,
    /// Escrowed points settled to a merchant.
    EscrowSettle,
    /// Escrowed points returned to available.
    EscrowRefund,
    /// Takes back what a slip's GAMEPLAY entry earned (void or correction):
    /// negative, and lowers lifetime points by as much.
    GameplayReversal,
}

impl TransactionType {
    /// All types.
    pub const ALL: [TransactionType; 7] = [
        TransactionType::Gameplay,
        TransactionType::ManualBonus,
        TransactionType::Adjustment,
        TransactionType::EscrowHold,
        TransactionType::EscrowSettle,
        TransactionType::EscrowRefund,
        TransactionType::GameplayReversal,
    ];
    /// Stable upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionType::Gameplay => "GAMEPLAY",
            TransactionType::ManualBonus => "MANUAL_BONUS",
            TransactionType::Adjustment => "ADJUSTMENT",
            TransactionType::EscrowHold => "ESCROW_HOLD",
            TransactionType::EscrowSettle => "ESCROW_SETTLE",
            TransactionType::EscrowRefund => "ESCROW_REFUND",
            TransactionType::GameplayReversal => "GAMEPLAY_REVERSAL",
        }
    }
    /// Parses [`TransactionType::as_str`].
    pub fn parse(s: &str) -> Option<TransactionType> {
        TransactionType::ALL.into_iter().find(|v| v.as_str() == s)
    }
    /// Whether a positive entry of this type counts towards lifetime points.
    pub fn is_earning(self) -> bool {
        matches!(
            self,
            TransactionType::Gameplay | TransactionType::ManualBonus
        )
    }
    /// How an entry of this type moves lifetime points: up by a positive
    /// earning entry, down by a reversal (which takes back earned points),
    /// otherwise not at all.
    pub fn lifetime_change(self, points_change: i64) -> i64 {
        match self {
            _ if self.is_earning() && points_change > 0 => points_change,
            TransactionType::GameplayReversal => points_change.min(0),
            _ => 0,
        }
    }
}

/// Counts characters (not bytes) and checks them against bounds.
pub fn chars_within(s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    n >= min && n <= max
}

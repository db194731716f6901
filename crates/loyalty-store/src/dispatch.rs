//! Rows of event dispatch: dead letters, player feed items (tier
//! notifications, activity) and alerts. Plain data, like [`crate::records`].

use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

/// Where a dead letter stands: DEAD → REPLAY_REQUESTED → REPLAYED, or DEAD
/// again with the replay's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeadLetterStatus {
    /// Waits for an operator.
    Dead,
    /// An operator asked to deliver it again.
    ReplayRequested,
    /// Delivered by a replay.
    Replayed,
}

impl DeadLetterStatus {
    /// Every status.
    pub const ALL: [DeadLetterStatus; 3] = [
        DeadLetterStatus::Dead,
        DeadLetterStatus::ReplayRequested,
        DeadLetterStatus::Replayed,
    ];

    /// Stable upper-case name (stored and shown).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Dead => "DEAD",
            DeadLetterStatus::ReplayRequested => "REPLAY_REQUESTED",
            DeadLetterStatus::Replayed => "REPLAYED",
        }
    }

    /// Parses [`DeadLetterStatus::as_str`].
    pub fn parse(s: &str) -> Option<DeadLetterStatus> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// An event one subscriber could not handle after its last attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Id (increasing).
    pub id: i64,
    /// The subscriber that failed.
    pub subscriber: String,
    /// The event's outbox sequence number.
    pub event_seq: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The last error.
    pub error: String,
    /// Delivery attempts so far (replays included).
    pub attempts: u32,
    /// Where it stands.
    pub status: DeadLetterStatus,
    /// When first dead-lettered.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What to record as a dead letter (an existing one for the same subscriber
/// and event is overwritten: DEAD again, with the new error and attempts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    /// The subscriber.
    pub subscriber: String,
    /// The event's sequence number.
    pub event_seq: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When.
    pub at: Timestamp,
}

/// Filters for listing dead letters, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterQuery {
    /// Only this subscriber's.
    pub subscriber: Option<String>,
    /// Only this status.
    pub status: Option<DeadLetterStatus>,
    /// Only ids above this (the cursor).
    pub after_id: i64,
    /// Page size.
    pub limit: u32,
}

/// One item of a player's feed, written by a subscriber for one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedItem {
    /// `notifications` or `activity`.
    pub feed: String,
    /// The player.
    pub player_id: Uuid,
    /// The event's sequence number (newest-first paging key).
    pub event_seq: i64,
    /// The event's id (one item per feed and event).
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// When the event happened.
    pub occurred_at: Timestamp,
    /// What the feed shows.
    pub data: serde_json::Value,
}

/// A raised alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Id.
    pub id: Uuid,
    /// E.g. `MANUAL_REWARD_FREQUENCY`.
    pub kind: String,
    /// The staff member concerned.
    pub staff_id: Uuid,
    /// How many manual rewards were in the window.
    pub count: i64,
    /// Length of the window.
    pub window_seconds: i64,
    /// Start of the window (exclusive).
    pub window_start: Timestamp,
    /// End of the window: when the triggering event happened.
    pub occurred_at: Timestamp,
    /// The event that crossed the threshold.
    pub trigger_event_id: Uuid,
    /// The MANUAL_REWARD_ALERT event appended for this alert.
    pub event_id: Uuid,
    /// Correlation id of the triggering request.
    pub correlation_id: String,
    /// When recorded.
    pub created_at: Timestamp,
}

/// A webhook endpoint (DESIGN §6): where events are POSTed, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Registration order.
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// An http(s) URL on an allowed host.
    pub url: String,
    /// The event types it receives; `None` for all.
    pub event_types: Option<Vec<String>>,
    /// What it is for.
    pub description: Option<String>,
    /// The signing secret, sealed with the server key (never plaintext).
    pub secret_sealed: String,
    /// The admin who registered it.
    pub created_by: Option<Uuid>,
    /// When.
    pub created_at: Timestamp,
    /// When it was deleted, if it was.
    pub deleted_at: Option<Timestamp>,
}

/// One attempt to deliver an event to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDelivery {
    /// Id (increasing; 0 before it is stored).
    pub id: i64,
    /// The endpoint.
    pub webhook_id: Uuid,
    /// The event's sequence number.
    pub event_seq: i64,
    /// The event's id (the `webhook-id` header is `msg_` and this).
    pub event_id: Uuid,
    /// 1 for the first attempt (replays count on).
    pub attempt: u32,
    /// The receiver's status, if it answered.
    pub status_code: Option<u16>,
    /// Whether the receiver answered 2xx.
    pub ok: bool,
    /// How long the attempt took.
    pub duration_ms: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When it was made.
    pub at: Timestamp,
}

//! The subscribers that ship, by priority:
//!
//! | priority | name | kind | events | does |
//! |---|---|---|---|---|
//! | 0 | `balance_cache` | local | BALANCE_UPDATED | bounded snapshot cache behind `GET …/loyalty` |
//! | 10 | `tier_notifications` | durable | TIER_CHANGED | a notification per tier change |
//! | 20 | `manual_reward_alerts` | durable | POINTS_UPDATE_REQUESTED, APPROVAL_REQUESTED | MANUAL_REWARD_ALERT when a staff member exceeds 20 manual rewards in a sliding hour |
//! | 30 | `activity_feed` | durable | [`ACTIVITY_TYPES`] | the player's activity feed |

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use jiff::SignedDuration;
use loyalty_core::Tier;
use loyalty_store::{Account, Alert, EventRecord, FeedItem, NewEvent, Tx};
use serde_json::{Value, json};
use uuid::Uuid;

use super::dispatch::{Deferred, DurableHandler, HandleCtx, Handler, LocalHandler, Subscription};
use crate::app::AppState;

/// Name of the balance cache subscriber.
pub const BALANCE_CACHE: &str = "balance_cache";
/// Name of the tier notification subscriber.
pub const TIER_NOTIFICATIONS: &str = "tier_notifications";
/// Name of the manual-reward alert subscriber.
pub const MANUAL_REWARD_ALERTS: &str = "manual_reward_alerts";
/// Name of the activity feed subscriber.
pub const ACTIVITY_FEED: &str = "activity_feed";

/// Feed of tier notifications.
pub const FEED_NOTIFICATIONS: &str = "notifications";
/// The events a player's activity feed shows: what happened to them, once
/// each. BALANCE_UPDATED and POINTS_UPDATE_REQUESTED repeat what
/// LEDGER_ENTRY_CREATED says, and slip pauses and bet changes are floor
/// detail; leaving them out keeps the feed readable and halves its writes.
pub const ACTIVITY_TYPES: &[&str] = &[
    "PLAYER_CREATED",
    "RATING_SLIP_OPENED",
    "RATING_SLIP_COMPLETED",
    "LOYALTY_ACCRUAL_FAILED",
    "LEDGER_ENTRY_CREATED",
    "TIER_CHANGED",
    "ESCROW_HELD",
    "ESCROW_SETTLED",
    "ESCROW_PARTIAL_SETTLED",
    "ESCROW_REFUNDED",
    "ESCROW_EXPIRED",
];

/// More manual rewards than this by one staff member in the window raise an alert.
pub const ALERT_REWARDS_MAX: i64 = 20;
/// The sliding window of the manual-reward alert.
pub const ALERT_WINDOW_SECONDS: i64 = 3_600;
/// Kind of the manual-reward frequency alert.
pub const ALERT_KIND: &str = "MANUAL_REWARD_FREQUENCY";

/// The shipped subscribers.
pub fn shipped(state: &AppState) -> Vec<Subscription> {
    let mut subs = Vec::new();
    if let Some(cache) = &state.events.balance_cache {
        subs.push(Subscription {
            name: BALANCE_CACHE,
            event_types: Some(&["BALANCE_UPDATED"]),
            priority: 0,
            handler: Handler::Local(cache.clone()),
        });
    }
    subs.push(Subscription {
        name: TIER_NOTIFICATIONS,
        event_types: Some(&["TIER_CHANGED"]),
        priority: 10,
        handler: Handler::Durable(Arc::new(TierNotifications)),
    });
    subs.push(Subscription {
        name: MANUAL_REWARD_ALERTS,
        event_types: Some(&["POINTS_UPDATE_REQUESTED", "APPROVAL_REQUESTED"]),
        priority: 20,
        handler: Handler::Durable(Arc::new(ManualRewardAlerts)),
    });
    subs.push(Subscription {
        name: ACTIVITY_FEED,
        event_types: Some(ACTIVITY_TYPES),
        priority: 30,
        handler: Handler::Durable(Arc::new(ActivityFeed)),
    });
    subs
}

fn uuid_at(payload: &Value, field: &str) -> Option<Uuid> {
    payload
        .get(field)?
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn i64_at(payload: &Value, field: &str) -> Result<i64, String> {
    payload
        .get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("payload has no integer {field}"))
}

// ---------------------------------------------------------------- balance cache

/// A balance as of one BALANCE_UPDATED event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The event's seq.
    pub seq: i64,
    /// The account after the change.
    pub account: Account,
}

/// A bounded map player → latest balance snapshot, fed by BALANCE_UPDATED.
///
/// Exactness: an entry is served only while the cache's position is at or
/// past the outbox head (see `http::ledger::player_loyalty`): then no
/// committed balance change is missing from it, so a client never reads a
/// balance older than one it saw acknowledged. Otherwise, on a miss or after
/// eviction (oldest insert first), the database answers.
#[derive(Debug)]
pub struct BalanceCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<Uuid, Snapshot>,
    order: VecDeque<Uuid>,
}

impl BalanceCache {
    /// An empty cache of at most `capacity` players.
    pub fn new(capacity: usize) -> Self {
        BalanceCache {
            capacity: capacity.max(1),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The snapshot of a player, if cached.
    pub fn get(&self, player_id: Uuid) -> Option<Snapshot> {
        self.inner.lock().ok()?.map.get(&player_id).cloned()
    }

    /// Number of players cached.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&self, snap: Snapshot) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let id = snap.account.player_id;
        match inner.map.get_mut(&id) {
            Some(old) if old.seq >= snap.seq => {}
            Some(old) => *old = snap,
            None => {
                while inner.map.len() >= self.capacity {
                    let Some(evict) = inner.order.pop_front() else {
                        break;
                    };
                    inner.map.remove(&evict);
                }
                inner.order.push_back(id);
                inner.map.insert(id, snap);
            }
        }
        metrics::gauge!("loyalty_balance_cache_entries").set(inner.map.len() as f64);
    }

    fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.map.clear();
            inner.order.clear();
        }
    }

    fn snapshot_of(event: &EventRecord) -> Result<Snapshot, String> {
        let p = &event.payload;
        let player_id = uuid_at(p, "player_id").ok_or("payload has no player_id")?;
        let tier = p
            .get("tier")
            .and_then(Value::as_str)
            .and_then(Tier::parse)
            .ok_or("payload has no tier")?;
        Ok(Snapshot {
            seq: event.seq,
            account: Account {
                player_id,
                current_balance: i64_at(p, "current_balance")?,
                escrow_balance: i64_at(p, "escrow_balance")?,
                lifetime_points: i64_at(p, "lifetime_points")?,
                tier,
                entry_count: 0,
                updated_at: event.occurred_at,
            },
        })
    }
}

impl LocalHandler for BalanceCache {
    fn handle<'a>(&'a self, event: &'a EventRecord) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let snap = Self::snapshot_of(event)?;
            self.put(snap);
            Ok(())
        })
    }

    fn on_dead_letter(&self, _event: &EventRecord) {
        // A change the cache could not apply: forget everything rather than
        // risk serving the balance before it.
        self.clear();
    }
}

// ---------------------------------------------------------------- tier notifications

struct TierNotifications;

impl DurableHandler for TierNotifications {
    fn handle(
        &self,
        tx: &mut dyn Tx,
        ev: &EventRecord,
        _ctx: &HandleCtx,
    ) -> Result<Vec<Deferred>, String> {
        let p = &ev.payload;
        let player_id = uuid_at(p, "player_id").ok_or("payload has no player_id")?;
        let before = p.get("tier_before").and_then(Value::as_str).unwrap_or("");
        let after = p.get("tier_after").and_then(Value::as_str).unwrap_or("");
        let data = json!({
            "kind": "TIER_CHANGED",
            "message": format!("Tier changed from {before} to {after}"),
            "tier_before": before,
            "tier_after": after,
            "lifetime_points": p.get("lifetime_points"),
            "ledger_entry_id": p.get("ledger_entry_id"),
        });
        feed_item(tx, FEED_NOTIFICATIONS, player_id, ev, data)?;
        Ok(Vec::new())
    }
}

fn feed_item(
    tx: &mut dyn Tx,
    feed: &str,
    player_id: Uuid,
    ev: &EventRecord,
    data: Value,
) -> Result<bool, String> {
    tx.insert_feed_item(&FeedItem {
        feed: feed.to_string(),
        player_id,
        event_seq: ev.seq,
        event_id: ev.event_id,
        event_type: ev.event_type.clone(),
        occurred_at: ev.occurred_at,
        data,
    })
    .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- activity feed

struct ActivityFeed;

/// One line a player can read about an event of their activity feed.
pub fn summary(ev: &EventRecord) -> String {
    let p = &ev.payload;
    let n = |f: &str| p.get(f).and_then(Value::as_i64).unwrap_or(0);
    let s = |f: &str| p.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    match ev.event_type.as_str() {
        "PLAYER_CREATED" => "Joined the loyalty program".into(),
        "RATING_SLIP_OPENED" => format!("Sat down to play (average bet {})", s("average_bet")),
        "RATING_SLIP_COMPLETED" => format!("Finished a session of {} s", n("seconds_played")),
        "LEDGER_ENTRY_CREATED" => format!(
            "{} {:+} points (balance {})",
            s("transaction_type"),
            n("points_change"),
            n("balance_after")
        ),
        "TIER_CHANGED" => format!("Tier {} → {}", s("tier_before"), s("tier_after")),
        "ESCROW_HELD" => format!("{} points held for a redemption", n("amount")),
        "ESCROW_SETTLED" | "ESCROW_PARTIAL_SETTLED" => format!(
            "{} points redeemed ({} still held)",
            n("captured"),
            n("held_amount")
        ),
        "ESCROW_REFUNDED" => format!("{} held points returned", n("refunded")),
        "ESCROW_EXPIRED" => format!("{} held points returned (hold expired)", n("refunded")),
        other => other.replace('_', " ").to_lowercase(),
    }
}

impl DurableHandler for ActivityFeed {
    fn handle(
        &self,
        tx: &mut dyn Tx,
        ev: &EventRecord,
        _ctx: &HandleCtx,
    ) -> Result<Vec<Deferred>, String> {
        let Some(player_id) = uuid_at(&ev.payload, "player_id") else {
            return Ok(Vec::new());
        };
        // A key only: the item is shown from the event in the outbox.
        tx.insert_activity_item(player_id, ev.seq)
            .map_err(|e| e.to_string())?;
        Ok(Vec::new())
    }
}

// ---------------------------------------------------------------- manual reward alerts

struct ManualRewardAlerts;

impl DurableHandler for ManualRewardAlerts {
    fn handle(
        &self,
        tx: &mut dyn Tx,
        ev: &EventRecord,
        ctx: &HandleCtx,
    ) -> Result<Vec<Deferred>, String> {
        let p = &ev.payload;
        let Some(staff_id) = uuid_at(p, "staff_id") else {
            return Ok(Vec::new());
        };
        // Under dual control a request counts when it is made
        // (APPROVAL_REQUESTED), not again when its entry is written.
        if p.get("approved_by").is_some_and(|v| !v.is_null()) {
            return Ok(Vec::new());
        }
        let entry_id = uuid_at(p, "ledger_entry_id");
        let err = |e: loyalty_store::StoreError| e.to_string();
        let up_to_seq = match entry_id {
            Some(id) => {
                tx.entry(id)
                    .map_err(err)?
                    .ok_or_else(|| format!("ledger entry {id} not found"))?
                    .seq
            }
            None => i64::MAX,
        };
        let at = ev.occurred_at;
        let window_start = at - SignedDuration::from_secs(ALERT_WINDOW_SECONDS);
        let count = tx
            .count_manual_rewards(staff_id, window_start, at, up_to_seq)
            .map_err(err)?
            + tx.count_approval_requests(staff_id, window_start, at)
                .map_err(err)?;
        if count <= ALERT_REWARDS_MAX {
            return Ok(Vec::new());
        }
        // One alert per window: none while the last one is less than a
        // window old.
        if let Some(last) = tx.latest_alert(ALERT_KIND, staff_id).map_err(err)?
            && last.occurred_at > window_start
            && last.trigger_event_id != ev.event_id
        {
            return Ok(Vec::new());
        }
        let alert = Alert {
            id: Uuid::now_v7(),
            kind: ALERT_KIND.into(),
            staff_id,
            count,
            window_seconds: ALERT_WINDOW_SECONDS,
            window_start,
            occurred_at: at,
            trigger_event_id: ev.event_id,
            event_id: Uuid::now_v7(),
            correlation_id: ev.correlation_id.clone(),
            created_at: ctx.now,
        };
        if !tx.insert_alert(&alert).map_err(err)? {
            return Ok(Vec::new());
        }
        let mut payload = json!({
            "alert_id": alert.id,
            "staff_id": staff_id,
            "count": count,
            "window_seconds": ALERT_WINDOW_SECONDS,
            "window_start": window_start,
            "threshold": ALERT_REWARDS_MAX,
            "trigger_event_id": ev.event_id,
            "ledger_entry_id": entry_id,
        });
        if let Some(a) = p.get("approval_id") {
            payload["approval_id"] = a.clone();
        }
        tx.append_event(NewEvent {
            event_id: alert.event_id,
            event_type: "MANUAL_REWARD_ALERT",
            version: 1,
            occurred_at: at,
            correlation_id: ev.correlation_id.clone(),
            idempotency_key: None,
            source: "alerts",
            payload,
        })
        .map_err(err)?;
        let log: Deferred = Box::new(move || log_alert(&alert));
        Ok(vec![log])
    }
}

fn log_alert(a: &Alert) {
    tracing::warn!(
        correlation_id = %a.correlation_id,
        alert_id = %a.id,
        staff_id = %a.staff_id,
        count = a.count,
        window_seconds = a.window_seconds,
        window_start = %a.window_start,
        window_end = %a.occurred_at,
        threshold = ALERT_REWARDS_MAX,
        event_id = %a.event_id,
        "manual_reward_alert"
    );
}

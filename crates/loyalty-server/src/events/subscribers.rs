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
use loyalty_core::events::{Event, EventType, ManualRewardAlert};
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
    EventType::PlayerCreated.as_str(),
    EventType::RatingSlipOpened.as_str(),
    EventType::RatingSlipCompleted.as_str(),
    EventType::LoyaltyAccrualFailed.as_str(),
    EventType::LedgerEntryCreated.as_str(),
    EventType::TierChanged.as_str(),
    EventType::EscrowHeld.as_str(),
    EventType::EscrowSettled.as_str(),
    EventType::EscrowPartialSettled.as_str(),
    EventType::EscrowRefunded.as_str(),
    EventType::EscrowExpired.as_str(),
];
const BALANCE_TYPES: &[&str] = &[EventType::BalanceUpdated.as_str()];
const TIER_TYPES: &[&str] = &[EventType::TierChanged.as_str()];
const REWARD_TYPES: &[&str] = &[
    EventType::PointsUpdateRequested.as_str(),
    EventType::ApprovalRequested.as_str(),
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
            event_types: Some(BALANCE_TYPES),
            priority: 0,
            handler: Handler::Local(cache.clone()),
        });
    }
    subs.push(Subscription {
        name: TIER_NOTIFICATIONS,
        event_types: Some(TIER_TYPES),
        priority: 10,
        handler: Handler::Durable(Arc::new(TierNotifications)),
    });
    subs.push(Subscription {
        name: MANUAL_REWARD_ALERTS,
        event_types: Some(REWARD_TYPES),
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

/// The stored event as its typed variant; an event that does not parse is
/// a failed delivery (retried, then dead-lettered), never a guess.
fn typed(ev: &EventRecord) -> Result<Event, String> {
    Event::from_stored(&ev.event_type, ev.version, &ev.payload).map_err(|e| e.to_string())
}

fn unexpected(ev: &EventRecord) -> String {
    format!("unexpected event type {}", ev.event_type)
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
        let Event::BalanceUpdated(b) = typed(event)? else {
            return Err(unexpected(event));
        };
        Ok(Snapshot {
            seq: event.seq,
            account: Account {
                player_id: b.player_id,
                current_balance: b.current_balance,
                escrow_balance: b.escrow_balance,
                lifetime_points: b.lifetime_points,
                tier: b.tier,
                entry_count: 0,
                updated_at: event.occurred_at,
                chain_head: None,
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
        let Event::TierChanged(t) = typed(ev)? else {
            return Err(unexpected(ev));
        };
        let (before, after) = (t.tier_before.as_str(), t.tier_after.as_str());
        let data = json!({
            "kind": EventType::TierChanged.as_str(),
            "message": format!("Tier changed from {before} to {after}"),
            "tier_before": before,
            "tier_after": after,
            "lifetime_points": t.lifetime_points,
            "ledger_entry_id": t.ledger_entry_id,
        });
        feed_item(tx, FEED_NOTIFICATIONS, t.player_id, ev, data)?;
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
    match typed(ev) {
        Ok(Event::PlayerCreated(_)) => "Joined the loyalty program".into(),
        Ok(Event::RatingSlipOpened(o)) => {
            format!("Sat down to play (average bet {})", o.average_bet)
        }
        Ok(Event::RatingSlipCompleted(c)) => {
            format!("Finished a session of {} s", c.seconds_played)
        }
        Ok(Event::LedgerEntryCreated(e)) => format!(
            "{} {:+} points (balance {})",
            e.transaction_type.as_str(),
            e.points_change,
            e.balance_after
        ),
        Ok(Event::TierChanged(t)) => format!(
            "Tier {} → {}",
            t.tier_before.as_str(),
            t.tier_after.as_str()
        ),
        Ok(Event::EscrowHeld(h)) => format!("{} points held for a redemption", h.escrow.amount),
        Ok(Event::EscrowSettled(s) | Event::EscrowPartialSettled(s)) => format!(
            "{} points redeemed ({} still held)",
            s.captured, s.escrow.held_amount
        ),
        Ok(Event::EscrowRefunded(r)) => format!("{} held points returned", r.refunded),
        Ok(Event::EscrowExpired(r)) => {
            format!("{} held points returned (hold expired)", r.refunded)
        }
        _ => ev.event_type.replace('_', " ").to_lowercase(),
    }
}

impl DurableHandler for ActivityFeed {
    fn handle(
        &self,
        tx: &mut dyn Tx,
        ev: &EventRecord,
        ctx: &HandleCtx,
    ) -> Result<Vec<Deferred>, String> {
        self.handle_all(tx, &[ev], ctx)
    }

    /// One statement for the batch's items (on PostgreSQL a round trip per
    /// item was most of their cost). An item is a key only: it is shown
    /// from the event in the outbox.
    fn handle_all(
        &self,
        tx: &mut dyn Tx,
        events: &[&EventRecord],
        _ctx: &HandleCtx,
    ) -> Result<Vec<Deferred>, String> {
        let mut items = Vec::with_capacity(events.len());
        for ev in events {
            if let Some(player_id) = typed(ev)?.player_id() {
                items.push((player_id, ev.seq));
            }
        }
        tx.insert_activity_items(&items)
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
        // Under dual control a request counts when it is made
        // (APPROVAL_REQUESTED), not again when its entry is written
        // (POINTS_UPDATE_REQUESTED with `approved_by`).
        let (staff_id, entry_id, approval_id) = match typed(ev)? {
            Event::PointsUpdateRequested(r) if r.approved_by.is_none() => {
                (r.staff_id, Some(r.ledger_entry_id), None)
            }
            Event::PointsUpdateRequested(_) => return Ok(Vec::new()),
            Event::ApprovalRequested(a) => (Some(a.staff_id), None, Some(a.approval_id)),
            _ => return Err(unexpected(ev)),
        };
        let Some(staff_id) = staff_id else {
            return Ok(Vec::new());
        };
        let err = |e: loyalty_store::StoreError| e.to_string();
        let at = ev.occurred_at;
        let window_start = at - SignedDuration::from_secs(ALERT_WINDOW_SECONDS);
        // One alert per window: none while the last one is less than a
        // window old. Checked first (one indexed row): a staff member who
        // rewards thousands of times an hour is counted once per window,
        // not once per reward — the count reads every reward in the window.
        if let Some(last) = tx.latest_alert(ALERT_KIND, staff_id).map_err(err)?
            && last.occurred_at > window_start
            && last.trigger_event_id != ev.event_id
        {
            return Ok(Vec::new());
        }
        let up_to_seq = match entry_id {
            Some(id) => {
                tx.entry(id)
                    .map_err(err)?
                    .ok_or_else(|| format!("ledger entry {id} not found"))?
                    .seq
            }
            None => i64::MAX,
        };
        let count = tx
            .count_manual_rewards(staff_id, window_start, at, up_to_seq)
            .map_err(err)?
            + tx.count_approval_requests(staff_id, window_start, at)
                .map_err(err)?;
        if count <= ALERT_REWARDS_MAX {
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
        let event = Event::ManualRewardAlert(ManualRewardAlert {
            alert_id: alert.id,
            staff_id,
            count,
            window_seconds: ALERT_WINDOW_SECONDS,
            window_start,
            threshold: ALERT_REWARDS_MAX,
            trigger_event_id: ev.event_id,
            ledger_entry_id: entry_id,
            approval_id,
        });
        tx.append_event(NewEvent::of(
            &event,
            alert.event_id,
            at,
            ev.correlation_id.clone(),
            None,
        ))
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

//! `Tx` over one SQLite connection. The only place with SQLite SQL besides
//! the migrations.

use jiff::Timestamp;
use loyalty_core::{EscrowStatus, SlipStatus, Tier, TransactionType};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::prepared::Prepared;
use crate::dispatch::*;
use crate::records::*;
use crate::rows::{self, RowRead, *};
use crate::savepoints::Savepoints;
use crate::sql;
use crate::{Cell, StoreError, StoreResult, Tx};

/// A transaction (or read snapshot) on one connection.
pub struct SqliteTx<'p, 'c> {
    conn: &'c Connection,
    /// The writer's statements, when this is the writer's transaction.
    prepared: Option<&'p Prepared<'c>>,
    /// Events appended so far, as stored, and the open savepoints.
    appended: Savepoints<EventRecord>,
}

impl<'p, 'c> SqliteTx<'p, 'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        SqliteTx {
            conn,
            prepared: None,
            appended: Savepoints::default(),
        }
    }

    /// A transaction of the writer, which runs its statements from `prepared`.
    pub(crate) fn on_writer(prepared: &'p Prepared<'c>) -> Self {
        SqliteTx {
            conn: prepared.conn(),
            prepared: Some(prepared),
            appended: Savepoints::default(),
        }
    }

    /// The events this transaction appended and kept, in seq order.
    pub(crate) fn into_appended(mut self) -> Vec<EventRecord> {
        self.appended.take()
    }
}

pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::FromSqlConversionFailure(_, _, inner) = e {
        // A shared row mapper's error (see [`sq`]) or a bad stored value.
        return match inner.downcast::<StoreError>() {
            Ok(store) => *store,
            Err(other) => rows::bad_value(other.to_string()),
        };
    }
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let msg = msg.clone().unwrap_or_else(|| f.to_string());
        return match f.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict(msg),
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly => StoreError::Unavailable(msg),
            _ => StoreError::Internal(msg),
        };
    }
    StoreError::Internal(e.to_string())
}

fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn ts(v: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_microsecond(v).map_err(|e| conv_err(e.to_string()))
}

fn conv_err(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(std::io::Error::other(msg)),
    )
}

fn uuid(v: String) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&v).map_err(|e| conv_err(e.to_string()))
}

fn tier(v: String) -> rusqlite::Result<Tier> {
    Tier::parse(&v).ok_or_else(|| conv_err(format!("unknown tier {v}")))
}

impl RowRead for Row<'_> {
    fn int(&self, i: usize) -> StoreResult<i64> {
        self.get(i).map_err(map_err)
    }

    fn int_opt(&self, i: usize) -> StoreResult<Option<i64>> {
        self.get(i).map_err(map_err)
    }

    fn text(&self, i: usize) -> StoreResult<String> {
        self.get(i).map_err(map_err)
    }

    fn text_opt(&self, i: usize) -> StoreResult<Option<String>> {
        self.get(i).map_err(map_err)
    }

    fn id_opt(&self, i: usize) -> StoreResult<Option<Uuid>> {
        // Parsed from SQLite's own bytes: no String per id (a ledger page
        // reads five ids per entry).
        match self.get_ref(i).map_err(map_err)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            rusqlite::types::ValueRef::Text(b) => Uuid::try_parse_ascii(b)
                .map(Some)
                .map_err(|e| rows::bad_value(format!("{}: {e}", String::from_utf8_lossy(b)))),
            other => Err(rows::bad_value(format!(
                "column {i}: an id must be text, not {:?}",
                other.data_type()
            ))),
        }
    }

    fn json(&self, i: usize) -> StoreResult<serde_json::Value> {
        serde_json::from_str(&self.text(i)?).map_err(|e| rows::bad_value(e.to_string()))
    }

    fn payload(&self, i: usize) -> StoreResult<loyalty_core::events::Payload> {
        // The stored text as it is (checked to be JSON), not parsed into a
        // tree and written out again.
        loyalty_core::events::Payload::from_json(self.text(i)?)
            .map_err(|e| rows::bad_value(e.to_string()))
    }

    fn flag(&self, i: usize) -> StoreResult<bool> {
        self.get(i).map_err(map_err)
    }

    fn width(&self) -> usize {
        self.as_ref().column_count()
    }
}

/// A shared row mapper as rusqlite's row callback (its error rides in a
/// conversion failure and comes out of [`map_err`] unchanged).
pub(crate) fn sq<T>(
    f: fn(&dyn RowRead) -> StoreResult<T>,
) -> impl Fn(&Row<'_>) -> rusqlite::Result<T> {
    move |r| {
        f(r).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e))
        })
    }
}

fn account_row(r: &dyn RowRead) -> StoreResult<Account> {
    rows::account(r, 0)
}

impl SqliteTx<'_, '_> {
    /// Runs `f` on the statement for `sql`: the writer's kept one, or one
    /// from the connection's cache on a reader.
    fn stmt<R>(
        &self,
        sql: &str,
        f: impl FnOnce(&mut rusqlite::Statement<'_>) -> rusqlite::Result<R>,
    ) -> StoreResult<R> {
        match self.prepared {
            Some(prepared) => prepared.with(sql, |st| f(st)),
            None => self.conn.prepare_cached(sql).and_then(|mut st| f(&mut st)),
        }
        .map_err(map_err)
    }

    fn one<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Option<T>> {
        self.stmt(sql, |st| st.query_row(p, f).optional())
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> StoreResult<usize> {
        self.stmt(sql, |st| st.execute(p))
    }

    fn exec_one(&self, sql: &str, p: impl rusqlite::Params, what: &str) -> StoreResult<()> {
        match self.exec(sql, p)? {
            1 => Ok(()),
            n => Err(StoreError::Internal(format!(
                "{what}: expected to change 1 row, changed {n}"
            ))),
        }
    }
}

impl Tx for SqliteTx<'_, '_> {
    fn insert_staff(&mut self, s: &Staff) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_STAFF,
            params![s.id.to_string(), s.name, s.role.as_str(), us(s.created_at)],
            "insert staff",
        )
    }

    fn staff(&mut self, id: Uuid) -> StoreResult<Option<Staff>> {
        self.one(sql::STAFF, [id.to_string()], sq(rows::staff))
    }

    fn insert_token(
        &mut self,
        hash: &str,
        subject: TokenSubject,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (kind, id) = subject.kind_and_id();
        self.exec_one(
            sql::INSERT_TOKEN,
            params![hash, kind, id.to_string(), us(at)],
            "insert token",
        )
    }

    fn token(&mut self, hash: &str) -> StoreResult<Option<TokenSubject>> {
        let row = self.one(sql::TOKEN, [hash], |r| {
            Ok((r.get::<_, String>(0)?, uuid(r.get(1)?)?))
        })?;
        Ok(row.and_then(|(kind, id)| match kind.as_str() {
            "staff" => Some(TokenSubject::Staff(id)),
            "player" => Some(TokenSubject::Player(id)),
            _ => None,
        }))
    }

    fn revoke_token(&mut self, hash: &str, at: Timestamp) -> StoreResult<bool> {
        Ok(self.exec(sql::REVOKE_TOKEN, params![hash, us(at)])? == 1)
    }

    fn revoke_subject_tokens(&mut self, subject: TokenSubject, at: Timestamp) -> StoreResult<u64> {
        let (kind, id) = subject.kind_and_id();
        let n = self.exec(
            sql::REVOKE_SUBJECT_TOKENS,
            params![kind, id.to_string(), us(at)],
        )?;
        Ok(n as u64)
    }

    fn disable_staff(&mut self, id: Uuid, at: Timestamp) -> StoreResult<bool> {
        self.exec(sql::DISABLE_STAFF, params![id.to_string(), us(at)])?;
        Ok(self
            .one(sql::STAFF_EXISTS, [id.to_string()], |r| r.get::<_, i64>(0))?
            .is_some())
    }

    fn server_key(&mut self, name: &str, candidate: &str, at: Timestamp) -> StoreResult<String> {
        self.exec(sql::INSERT_SERVER_KEY, params![name, candidate, us(at)])?;
        self.one(sql::SERVER_KEY, [name], |r| r.get::<_, String>(0))?
            .ok_or_else(|| StoreError::Internal(format!("server key {name} missing after insert")))
    }

    fn insert_player(&mut self, p: &Player) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_PLAYER,
            params![
                p.id.to_string(),
                p.display_name,
                p.card_number,
                p.status.as_str(),
                us(p.created_at)
            ],
            "insert player",
        )
    }

    fn player(&mut self, id: Uuid) -> StoreResult<Option<Player>> {
        self.one(sql::PLAYER, [id.to_string()], sq(rows::player))
    }

    fn insert_account(&mut self, a: &Account) -> StoreResult<()> {
        self.exec_one(
            "INSERT INTO loyalty_accounts (player_id, current_balance, escrow_balance,
                 lifetime_points, tier, entry_count, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                a.player_id.to_string(),
                a.current_balance,
                a.escrow_balance,
                a.lifetime_points,
                a.tier.as_str(),
                a.entry_count,
                us(a.updated_at)
            ],
            "insert account",
        )
    }

    fn account(&mut self, player_id: Uuid) -> StoreResult<Option<Account>> {
        self.one(
            "SELECT player_id, current_balance, escrow_balance, lifetime_points, tier,
                    entry_count, updated_at, chain_head
             FROM loyalty_accounts WHERE player_id = ?1",
            [player_id.to_string()],
            sq(|r| {
                Ok(Account {
                    chain_head: r.text_opt(7)?,
                    ..account_row(r)?
                })
            }),
        )
    }

    fn update_account(&mut self, a: &Account) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_ACCOUNT,
            params![
                a.player_id.to_string(),
                a.current_balance,
                a.escrow_balance,
                a.lifetime_points,
                a.tier.as_str(),
                a.entry_count,
                us(a.updated_at),
                a.chain_head
            ],
            "update account",
        )
    }

    fn insert_table(&mut self, t: &GameTable) -> StoreResult<()> {
        self.exec_one(
            &format!(
                "INSERT INTO game_tables ({TABLE_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"
            ),
            params![
                t.id.to_string(),
                t.name,
                t.game_type,
                t.settings.house_edge.to_string(),
                t.settings.average_rounds_per_hour,
                t.settings.points_conversion_rate.to_string(),
                t.settings.point_multiplier.to_string(),
                t.settings.seats_available,
                us(t.created_at),
                us(t.updated_at)
            ],
            "insert table",
        )
    }

    fn table(&mut self, id: Uuid) -> StoreResult<Option<GameTable>> {
        self.one(
            &format!("SELECT {TABLE_COLS} FROM game_tables WHERE id = ?1"),
            [id.to_string()],
            sq(rows::table),
        )
    }

    fn update_table(&mut self, t: &GameTable) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_TABLE,
            params![
                t.id.to_string(),
                t.name,
                t.game_type,
                t.settings.house_edge.to_string(),
                t.settings.average_rounds_per_hour,
                t.settings.points_conversion_rate.to_string(),
                t.settings.point_multiplier.to_string(),
                t.settings.seats_available,
                us(t.updated_at)
            ],
            "update table",
        )
    }

    fn insert_slip(&mut self, s: &RatingSlip) -> StoreResult<()> {
        let settings = serde_json::to_string(&s.game_settings)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.exec_one(
            &format!(
                "INSERT INTO rating_slips ({SLIP_COLS})
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)"
            ),
            params![
                s.id.to_string(),
                s.player_id.to_string(),
                s.table_id.to_string(),
                s.seat_number,
                s.status.as_str(),
                s.average_bet.to_string(),
                us(s.started_at),
                s.ended_at.map(us),
                s.accumulated_us,
                s.segment_started_at.map(us),
                settings,
                s.loyalty_status.as_str(),
                s.ledger_entry_id.map(|u| u.to_string()),
                s.accrual_attempts,
                s.next_retry_at.map(us),
                s.opened_by.map(|u| u.to_string()),
                s.closed_correlation_id,
                us(s.created_at),
                us(s.updated_at),
                corrections_json(s)?
            ],
            "insert slip",
        )
    }

    fn slip(&mut self, id: Uuid) -> StoreResult<Option<RatingSlip>> {
        self.one(
            &format!("SELECT {SLIP_COLS} FROM rating_slips WHERE id = ?1"),
            [id.to_string()],
            sq(rows::slip),
        )
    }

    fn update_slip(&mut self, s: &RatingSlip) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_SLIP,
            params![
                s.id.to_string(),
                s.status.as_str(),
                s.average_bet.to_string(),
                s.ended_at.map(us),
                s.accumulated_us,
                s.segment_started_at.map(us),
                s.loyalty_status.as_str(),
                s.ledger_entry_id.map(|u| u.to_string()),
                s.accrual_attempts,
                s.next_retry_at.map(us),
                s.closed_correlation_id,
                us(s.updated_at),
                us(s.started_at),
                corrections_json(s)?
            ],
            "update slip",
        )
    }

    fn pending_slips(&mut self, due_at: Timestamp, limit: u32) -> StoreResult<Vec<Uuid>> {
        let mut st = self
            .conn
            .prepare_cached(sql::PENDING_SLIPS)
            .map_err(map_err)?;
        let rows = st
            .query_map(params![us(due_at), limit], |r| uuid(r.get(0)?))
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn insert_entry(&mut self, e: &LedgerEntry) -> StoreResult<i64> {
        self.exec_one(
            "INSERT INTO ledger_entries (id, player_id, transaction_type, event_type,
                 points_change, reason, source, staff_id, rating_slip_id, idempotency_key,
                 balance_before, balance_after, tier_before, tier_after, lifetime_after,
                 escrow_id, correlation_id, created_at, prev_hash, hash, escrow_change,
                 approved_by)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,
                     ?22)",
            params![
                e.id.to_string(),
                e.player_id.to_string(),
                e.transaction_type.as_str(),
                e.event_type,
                e.points_change,
                e.reason,
                e.source,
                e.staff_id.map(|u| u.to_string()),
                e.rating_slip_id.map(|u| u.to_string()),
                e.idempotency_key,
                e.balance_before,
                e.balance_after,
                e.tier_before.as_str(),
                e.tier_after.as_str(),
                e.lifetime_after,
                e.escrow_id.map(|u| u.to_string()),
                e.correlation_id,
                us(e.created_at),
                e.prev_hash,
                e.hash,
                e.escrow_change,
                e.approved_by.map(|u| u.to_string())
            ],
            "insert ledger entry",
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn chain_heads(
        &mut self,
        up_to_seq: i64,
        visit: &mut dyn FnMut(Uuid, String),
    ) -> StoreResult<()> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT a.player_id,
                        (SELECT e.hash FROM ledger_entries e INDEXED BY ledger_player
                         WHERE e.player_id = a.player_id AND e.seq <= ?1
                         ORDER BY e.seq DESC LIMIT 1)
                 FROM loyalty_accounts a ORDER BY a.player_id",
            )
            .map_err(map_err)?;
        let mut rows = st.query([up_to_seq]).map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            let head: Option<String> = r.get(1).map_err(map_err)?;
            if let Some(head) = head {
                visit(uuid(r.get(0).map_err(map_err)?).map_err(map_err)?, head);
            }
        }
        Ok(())
    }

    fn chain_head(&mut self, player_id: Uuid) -> StoreResult<String> {
        Ok(self
            .one(
                "SELECT hash FROM ledger_entries INDEXED BY ledger_player
                 WHERE player_id = ?1 ORDER BY seq DESC LIMIT 1",
                [player_id.to_string()],
                |r| r.get::<_, Option<String>>(0),
            )?
            .flatten()
            .unwrap_or_else(|| crate::chain::GENESIS.to_string()))
    }

    fn balances_as_of(
        &mut self,
        player_id: Uuid,
        at: Timestamp,
    ) -> StoreResult<Option<BalancesAsOf>> {
        self.one(
            "SELECT l.balance_after, l.lifetime_after, l.tier_after, l.created_at,
                    (SELECT COALESCE(SUM(e.escrow_change), 0) FROM ledger_entries e
                     INDEXED BY ledger_player
                     WHERE e.player_id = ?1 AND e.created_at <= ?2)
             FROM ledger_entries l INDEXED BY ledger_player
             WHERE l.player_id = ?1 AND l.created_at <= ?2
             ORDER BY l.seq DESC LIMIT 1",
            rusqlite::params![player_id.to_string(), us(at)],
            |r| {
                Ok(BalancesAsOf {
                    current_balance: r.get(0)?,
                    lifetime_points: r.get(1)?,
                    tier: tier(r.get(2)?)?,
                    last_entry_at: ts(r.get(3)?)?,
                    escrow_balance: r.get(4)?,
                })
            },
        )
    }

    fn entry(&mut self, id: Uuid) -> StoreResult<Option<LedgerEntry>> {
        self.one(
            &format!("SELECT {ENTRY_COLS} FROM ledger_entries WHERE id = ?1"),
            [id.to_string()],
            sq(rows::entry),
        )
    }

    fn entry_by_key(&mut self, key: &str) -> StoreResult<Option<LedgerEntry>> {
        self.one(
            &format!("SELECT {ENTRY_COLS} FROM ledger_entries WHERE idempotency_key = ?1"),
            [key],
            sq(rows::entry),
        )
    }

    fn entries(&mut self, q: &EntryQuery) -> StoreResult<Vec<LedgerEntry>> {
        // Every filter is optional; `?n IS NULL OR …` keeps one cached
        // statement per shape, and the planner picks the index from the
        // equality filters that are present.
        let (index, lead) = if q.player_id.is_some() {
            ("INDEXED BY ledger_player", "player_id = ?1")
        } else if q.staff_id.is_some() {
            ("INDEXED BY ledger_staff", "staff_id = ?2")
        } else if q.correlation_id.is_some() {
            ("INDEXED BY ledger_correlation", "correlation_id = ?3")
        } else {
            ("", "1")
        };
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM ledger_entries {index}
             WHERE {lead}
               AND (?1 IS NULL OR player_id = ?1)
               AND (?2 IS NULL OR staff_id = ?2)
               AND (?3 IS NULL OR correlation_id = ?3)
               AND (?4 IS NULL OR transaction_type = ?4)
               AND (?5 IS NULL OR created_at >= ?5)
               AND (?6 IS NULL OR created_at < ?6)
               AND (?7 IS NULL OR seq < ?7)
             ORDER BY seq DESC LIMIT ?8"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(map_err)?;
        let rows = st
            .query_map(
                params![
                    q.player_id.map(|u| u.to_string()),
                    q.staff_id.map(|u| u.to_string()),
                    q.correlation_id,
                    q.transaction_type.map(|t| t.as_str()),
                    q.from.map(us),
                    q.to.map(us),
                    q.before_seq,
                    q.limit
                ],
                sq(rows::entry),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn append_event(&mut self, e: NewEvent) -> StoreResult<()> {
        self.exec_one(
            "INSERT INTO outbox (event_id, event_type, version, occurred_at, correlation_id,
                 idempotency_key, source, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                e.event_id.to_string(),
                e.event_type,
                e.version,
                us(e.occurred_at),
                e.correlation_id,
                e.idempotency_key,
                e.source,
                e.payload.as_str()
            ],
            "append event",
        )?;
        self.appended.push(EventRecord {
            seq: self.conn.last_insert_rowid(),
            event_id: e.event_id,
            event_type: e.event_type.to_string(),
            version: e.version,
            occurred_at: e.occurred_at,
            correlation_id: e.correlation_id,
            idempotency_key: e.idempotency_key,
            source: e.source.to_string(),
            payload: e.payload,
        });
        Ok(())
    }

    fn events(
        &mut self,
        after_seq: i64,
        limit: u32,
        event_type: Option<&str>,
    ) -> StoreResult<Vec<EventRecord>> {
        // Two statements, not `(?2 IS NULL OR event_type = ?2)`: SQLite plans
        // that one around the parameter's value and re-prepares it on
        // every run.
        let rows = match event_type {
            None => self
                .conn
                .prepare_cached(
                    "SELECT seq, event_id, event_type, version, occurred_at, correlation_id,
                            idempotency_key, source, payload
                     FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .and_then(|mut st| {
                    st.query_map(params![after_seq, limit], sq(rows::event))?
                        .collect::<Result<Vec<_>, _>>()
                }),
            Some(t) => self
                .conn
                .prepare_cached(
                    "SELECT seq, event_id, event_type, version, occurred_at, correlation_id,
                            idempotency_key, source, payload
                     FROM outbox WHERE event_type = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .and_then(|mut st| {
                    st.query_map(params![after_seq, limit, t], sq(rows::event))?
                        .collect::<Result<Vec<_>, _>>()
                }),
        };
        rows.map_err(map_err)
    }

    fn idempotency_record(
        &mut self,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        self.one(sql::IDEMPOTENCY_RECORD, [scope, key], |r| {
            Ok(IdempotencyRecord {
                fingerprint: r.get(0)?,
                status: r.get(1)?,
                body: r.get(2)?,
                created_at: ts(r.get(3)?)?,
            })
        })
    }

    fn insert_idempotency_record(
        &mut self,
        scope: &str,
        key: &str,
        rec: &IdempotencyRecord,
    ) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_IDEMPOTENCY_RECORD,
            params![
                scope,
                key,
                rec.fingerprint,
                rec.status,
                rec.body,
                us(rec.created_at)
            ],
            "insert idempotency record",
        )
    }

    fn purge_idempotency_records(&mut self, before: Timestamp) -> StoreResult<u64> {
        let n = self.exec(sql::PURGE_IDEMPOTENCY_RECORDS, [us(before)])?;
        Ok(n as u64)
    }

    fn savepoint(&mut self) -> StoreResult<()> {
        let sql = self.appended.open();
        super::exec_cached(self.conn, &sql).map_err(map_err)
    }

    fn rollback_savepoint(&mut self) -> StoreResult<()> {
        let sql = self.appended.rollback();
        super::exec_cached(self.conn, &sql).map_err(map_err)
    }

    fn release_savepoint(&mut self) -> StoreResult<()> {
        let sql = self.appended.release();
        super::exec_cached(self.conn, &sql).map_err(map_err)
    }

    fn insert_merchant(&mut self, m: &Merchant) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_MERCHANT,
            params![
                m.id.to_string(),
                m.name,
                m.earnings,
                us(m.created_at),
                us(m.updated_at)
            ],
            "insert merchant",
        )
    }

    fn merchant(&mut self, id: Uuid) -> StoreResult<Option<Merchant>> {
        self.one(
            &format!("SELECT {MERCHANT_COLS} FROM merchants WHERE id = ?1"),
            [id.to_string()],
            sq(rows::merchant),
        )
    }

    fn update_merchant(&mut self, m: &Merchant) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_MERCHANT,
            params![m.id.to_string(), m.earnings, us(m.updated_at)],
            "update merchant",
        )
    }

    fn merchants(&mut self, before_seq: Option<i64>, limit: u32) -> StoreResult<Vec<Merchant>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {MERCHANT_COLS} FROM merchants
                 WHERE (?1 IS NULL OR seq < ?1) ORDER BY seq DESC LIMIT ?2"
            ))
            .map_err(map_err)?;
        let rows = st
            .query_map(params![before_seq, limit], sq(rows::merchant))
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn insert_escrow(&mut self, e: &Escrow) -> StoreResult<i64> {
        self.exec_one(
            "INSERT INTO escrows (id, player_id, merchant_id, amount, settled_amount,
                 refunded_amount, status, reason, reference, expires_at, created_by,
                 created_at, updated_at, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                e.id.to_string(),
                e.player_id.to_string(),
                e.merchant_id.to_string(),
                e.amount,
                e.settled_amount,
                e.refunded_amount,
                e.status.as_str(),
                e.reason,
                e.reference,
                e.expires_at.map(us),
                e.created_by.map(|u| u.to_string()),
                us(e.created_at),
                us(e.updated_at),
                e.version
            ],
            "insert escrow",
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn escrow(&mut self, id: Uuid) -> StoreResult<Option<Escrow>> {
        self.one(
            &format!("SELECT {ESCROW_COLS} FROM escrows WHERE id = ?1"),
            [id.to_string()],
            sq(rows::escrow),
        )
    }

    fn update_escrow(&mut self, e: &Escrow) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_ESCROW,
            params![
                e.id.to_string(),
                e.settled_amount,
                e.refunded_amount,
                e.status.as_str(),
                us(e.updated_at),
                e.version
            ],
            "update escrow",
        )
    }

    fn escrows(&mut self, q: &EscrowQuery) -> StoreResult<Vec<Escrow>> {
        let index = if q.player_id.is_some() {
            "INDEXED BY escrows_player"
        } else {
            ""
        };
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ESCROW_COLS} FROM escrows {index}
                 WHERE (?1 IS NULL OR player_id = ?1)
                   AND (?2 IS NULL OR status = ?2)
                   AND (?3 IS NULL OR seq < ?3)
                 ORDER BY seq DESC LIMIT ?4"
            ))
            .map_err(map_err)?;
        let rows = st
            .query_map(
                params![
                    q.player_id.map(|u| u.to_string()),
                    q.status.map(EscrowStatus::as_str),
                    q.before_seq,
                    q.limit
                ],
                sq(rows::escrow),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn due_escrows(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<Uuid>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id FROM escrows INDEXED BY escrows_due
                 WHERE status = 'HELD' AND expires_at <= ?1
                 ORDER BY expires_at LIMIT ?2",
            )
            .map_err(map_err)?;
        let rows = st
            .query_map(params![us(now), limit], |r| uuid(r.get(0)?))
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn shared_rows(&mut self, sql: &'static str, params: &[i64]) -> StoreResult<Vec<Vec<Cell>>> {
        let mut st = self.conn.prepare_cached(sql).map_err(map_err)?;
        let n = st.column_count();
        let rows = st
            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Cell::Null,
                            rusqlite::types::ValueRef::Integer(v) => Cell::Int(v),
                            rusqlite::types::ValueRef::Text(t) => {
                                Cell::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            other => {
                                return Err(conv_err(format!(
                                    "unexpected {:?} in a shared query",
                                    other.data_type()
                                )));
                            }
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
            })
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn search_players(
        &mut self,
        q: Option<&str>,
        before_id: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Player>> {
        let before = before_id.map(|u| u.to_string());
        let cols = "p.id, p.display_name, p.card_number, p.status, p.created_at";
        let Some(q) = q else {
            let mut st = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {cols} FROM players p WHERE (?1 IS NULL OR p.id < ?1)
                     ORDER BY p.id DESC LIMIT ?2"
                ))
                .map_err(map_err)?;
            let rows = st
                .query_map(params![before, limit], sq(rows::player))
                .map_err(map_err)?;
            return rows.collect::<Result<Vec<_>, _>>().map_err(map_err);
        };
        // Card prefix: a range of the unique index. Name: the trigram index
        // for 3 characters or more (a phrase, quotes doubled), else a LIKE.
        let upper = format!("{q}\u{10FFFF}");
        let name_match = if q.chars().count() >= 3 {
            "p.rowid IN (SELECT rowid FROM players_name_fts WHERE players_name_fts MATCH ?3)"
        } else {
            "p.display_name LIKE ?3 ESCAPE '\\'"
        };
        let pattern = if q.chars().count() >= 3 {
            format!("\"{}\"", q.replace('"', "\"\""))
        } else {
            format!("%{}%", crate::like_literal(q))
        };
        let sql = format!(
            "SELECT {cols} FROM players p
             WHERE ((p.card_number >= ?1 AND p.card_number < ?2) OR {name_match})
               AND (?4 IS NULL OR p.id < ?4)
             ORDER BY p.id DESC LIMIT ?5"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(map_err)?;
        let rows = st
            .query_map(params![q, upper, pattern, before, limit], sq(rows::player))
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn tables(&mut self, before_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<GameTable>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TABLE_COLS} FROM game_tables WHERE (?1 IS NULL OR id < ?1)
                 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(map_err)?;
        let rows = st
            .query_map(
                params![before_id.map(|u| u.to_string()), limit],
                sq(rows::table),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn slips(&mut self, q: &SlipQuery) -> StoreResult<Vec<RatingSlip>> {
        let index = if q.player_id.is_some() {
            "INDEXED BY rating_slips_player"
        } else if q.table_id.is_some() {
            "INDEXED BY rating_slips_table"
        } else if q.status.is_some() {
            "INDEXED BY rating_slips_status"
        } else {
            ""
        };
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SLIP_COLS} FROM rating_slips {index}
                 WHERE (?1 IS NULL OR status = ?1)
                   AND (?2 IS NULL OR table_id = ?2)
                   AND (?3 IS NULL OR player_id = ?3)
                   AND (?4 IS NULL OR id < ?4)
                 ORDER BY id DESC LIMIT ?5"
            ))
            .map_err(map_err)?;
        let rows = st
            .query_map(
                params![
                    q.status.map(SlipStatus::as_str),
                    q.table_id.map(|u| u.to_string()),
                    q.player_id.map(|u| u.to_string()),
                    q.before_id.map(|u| u.to_string()),
                    q.limit
                ],
                sq(rows::slip),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn reward_buckets(
        &mut self,
        from: Timestamp,
        to: Timestamp,
        bucket_us: i64,
    ) -> StoreResult<Vec<RewardBucket>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT staff_id, (created_at / ?3) * ?3 AS bucket, count(*), sum(points_change)
                 FROM ledger_entries INDEXED BY ledger_manual_created
                 WHERE transaction_type IN ('MANUAL_BONUS', 'ADJUSTMENT')
                   AND created_at >= ?1 AND created_at < ?2 AND staff_id IS NOT NULL
                 GROUP BY staff_id, bucket ORDER BY bucket, staff_id",
            )
            .map_err(map_err)?;
        let rows = st
            .query_map(params![us(from), us(to), bucket_us], |r| {
                Ok(RewardBucket {
                    staff_id: uuid(r.get(0)?)?,
                    bucket_start: ts(r.get(1)?)?,
                    count: r.get(2)?,
                    points: r.get(3)?,
                })
            })
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn last_entry_seq(&mut self) -> StoreResult<i64> {
        Ok(self
            .one(
                "SELECT coalesce(max(seq), 0) FROM ledger_entries",
                [],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    fn entries_ascending(
        &mut self,
        after_seq: i64,
        up_to_seq: i64,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        limit: u32,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLS} FROM ledger_entries
                 WHERE seq > ?1 AND seq <= ?2
                   AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4)
                 ORDER BY seq LIMIT ?5"
            ))
            .map_err(map_err)?;
        let rows = st
            .query_map(
                params![after_seq, up_to_seq, from.map(us), to.map(us), limit],
                sq(rows::entry),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn db_clock(&mut self) -> StoreResult<Option<crate::DbClock>> {
        // One node: its own clock is the shared clock.
        Ok(None)
    }

    fn set_test_clock(&mut self, _to: Timestamp) -> StoreResult<()> {
        Ok(())
    }

    fn verify_accounts(&mut self, drift: &mut dyn FnMut(Drift)) -> StoreResult<u64> {
        let mut accounts = self
            .conn
            .prepare(
                "SELECT player_id, current_balance, escrow_balance, lifetime_points, tier,
                        entry_count, updated_at, chain_head
                 FROM loyalty_accounts ORDER BY player_id",
            )
            .map_err(map_err)?;
        let mut entries = self
            .conn
            .prepare(
                "SELECT player_id, id, transaction_type, points_change, balance_before,
                        balance_after, lifetime_after, hash
                 FROM ledger_entries INDEXED BY ledger_player ORDER BY player_id, seq",
            )
            .map_err(map_err)?;
        let mut acc_rows = accounts.query([]).map_err(map_err)?;
        let mut ent_rows = entries.query([]).map_err(map_err)?;
        let mut checker = crate::ops::verify::Checker::new(drift);
        let mut pending: Option<crate::ops::verify::EntryFacts> = None;
        while let Some(row) = acc_rows.next().map_err(map_err)? {
            let account = Account {
                chain_head: row.text_opt(7)?,
                ..account_row(row)?
            };
            let pid = account.player_id;
            checker.begin(&account);
            loop {
                let facts = match pending.take() {
                    Some(f) => f,
                    None => match ent_rows.next().map_err(map_err)? {
                        Some(r) => entry_facts(r).map_err(map_err)?,
                        None => break,
                    },
                };
                if facts.player_id < pid {
                    checker.orphan(&facts);
                    continue;
                }
                if facts.player_id > pid {
                    pending = Some(facts);
                    break;
                }
                checker.entry(&facts);
            }
            checker.end();
        }
        if let Some(f) = pending.take() {
            checker.orphan(&f);
        }
        while let Some(r) = ent_rows.next().map_err(map_err)? {
            checker.orphan(&entry_facts(r).map_err(map_err)?);
        }
        Ok(checker.accounts_checked())
    }

    fn outbox_head(&mut self) -> StoreResult<i64> {
        Ok(self
            .one("SELECT COALESCE(MAX(seq), 0) FROM outbox", [], |r| r.get(0))?
            .unwrap_or(0))
    }

    fn checkpoint(&mut self, subscriber: &str) -> StoreResult<Option<i64>> {
        self.one(sql::CHECKPOINT, params![subscriber], |r| r.get(0))
    }

    fn event_archives(&mut self) -> StoreResult<Vec<EventArchive>> {
        let mut st = self
            .conn
            .prepare_cached(sql::EVENT_ARCHIVES)
            .map_err(map_err)?;
        st.query_map([], sq(rows::event_archive))
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)
    }

    fn insert_event_archive(&mut self, a: &EventArchive) -> StoreResult<()> {
        match self.exec(
            sql::INSERT_EVENT_ARCHIVE,
            params![
                a.first_seq,
                a.last_seq,
                a.file,
                a.sha256,
                a.bytes,
                us(a.archived_at)
            ],
        )? {
            1 => Ok(()),
            _ => Err(a.out_of_order()),
        }
    }

    fn delete_archived_events(
        &mut self,
        first: i64,
        last: i64,
        activity: &[(Uuid, i64)],
    ) -> StoreResult<u64> {
        for (player, seq) in activity {
            self.exec(sql::DELETE_ACTIVITY_ITEM, params![player.to_string(), seq])?;
        }
        Ok(self.exec(sql::DELETE_ARCHIVED_EVENTS, params![first, last])? as u64)
    }

    fn first_outbox_seq(&mut self) -> StoreResult<Option<i64>> {
        Ok(self.one(sql::FIRST_OUTBOX_SEQ, [], |r| r.get(0))?.flatten())
    }

    fn checkpoints(&mut self) -> StoreResult<Vec<(String, i64)>> {
        let mut st = self
            .conn
            .prepare_cached(sql::CHECKPOINTS)
            .map_err(map_err)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)
    }

    fn oldest_unreplayed_dead_letter(&mut self) -> StoreResult<Option<i64>> {
        Ok(self
            .one(sql::OLDEST_UNREPLAYED_DEAD_LETTER, [], |r| r.get(0))?
            .flatten())
    }

    fn set_checkpoint(&mut self, subscriber: &str, seq: i64, at: Timestamp) -> StoreResult<()> {
        self.exec(
            "INSERT INTO subscriber_checkpoints (subscriber, seq, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (subscriber) DO UPDATE SET seq = MAX(seq, excluded.seq),
                 updated_at = excluded.updated_at",
            params![subscriber, seq, us(at)],
        )?;
        Ok(())
    }

    fn upsert_dead_letter(&mut self, d: &NewDeadLetter) -> StoreResult<i64> {
        self.one(
            "INSERT INTO dead_letters (subscriber, event_seq, event_id, event_type, error, attempts,
                 status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'DEAD', ?7, ?7)
             ON CONFLICT (subscriber, event_seq) DO UPDATE SET error = excluded.error,
                 attempts = excluded.attempts, status = 'DEAD', updated_at = excluded.updated_at
             RETURNING id",
            params![
                d.subscriber,
                d.event_seq,
                d.event_id.to_string(),
                d.event_type,
                d.error,
                d.attempts,
                us(d.at)
            ],
            |r| r.get(0),
        )?
        .ok_or_else(|| StoreError::Internal("dead letter upsert returned no id".into()))
    }

    fn dead_letters(&mut self, q: &DeadLetterQuery) -> StoreResult<Vec<DeadLetter>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DEAD_LETTER_COLS} FROM dead_letters
                 WHERE id > ?1 AND (?2 IS NULL OR subscriber = ?2) AND (?3 IS NULL OR status = ?3)
                 ORDER BY id LIMIT ?4"
            ))
            .map_err(map_err)?;
        let rows = st
            .query_map(
                params![
                    q.after_id,
                    q.subscriber,
                    q.status.map(|s| s.as_str()),
                    q.limit
                ],
                sq(rows::dead_letter),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn dead_letter(&mut self, id: i64) -> StoreResult<Option<DeadLetter>> {
        self.one(
            &format!("SELECT {DEAD_LETTER_COLS} FROM dead_letters WHERE id = ?1"),
            params![id],
            sq(rows::dead_letter),
        )
    }

    fn update_dead_letter(
        &mut self,
        id: i64,
        status: DeadLetterStatus,
        error: Option<&str>,
        attempts: Option<u32>,
        at: Timestamp,
    ) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_DEAD_LETTER,
            params![id, status.as_str(), error, attempts, us(at)],
            "update dead letter",
        )
    }

    fn try_lease(&mut self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        // The database's clock: on one machine, the system clock.
        let won = self.one(
            "INSERT INTO leases (name, holder, expires_at)
             VALUES (?1, ?2, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) + ?3 * 1000)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder
                OR leases.expires_at < CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
             RETURNING holder",
            params![name, holder, ttl_ms],
            |r| r.get::<_, String>(0),
        )?;
        Ok(won.is_some())
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> StoreResult<()> {
        self.exec(sql::RELEASE_LEASE, params![name, holder])?;
        Ok(())
    }

    fn insert_feed_item(&mut self, f: &FeedItem) -> StoreResult<bool> {
        let n = self.exec(
            "INSERT INTO player_feed_items (feed, player_id, event_seq, event_id, event_type,
                 occurred_at, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (feed, event_id) DO NOTHING",
            params![
                f.feed,
                f.player_id.to_string(),
                f.event_seq,
                f.event_id.to_string(),
                f.event_type,
                us(f.occurred_at),
                f.data.to_string()
            ],
        )?;
        Ok(n == 1)
    }

    fn feed_items(
        &mut self,
        feed: &str,
        player_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<FeedItem>> {
        let mut st = self.conn.prepare_cached(sql::FEED_ITEMS).map_err(map_err)?;
        let rows = st
            .query_map(
                params![
                    feed,
                    player_id.to_string(),
                    before_seq.unwrap_or(i64::MAX),
                    limit
                ],
                |r| {
                    let data: String = r.get(6)?;
                    Ok(FeedItem {
                        feed: r.get(0)?,
                        player_id: uuid(r.get(1)?)?,
                        event_seq: r.get(2)?,
                        event_id: uuid(r.get(3)?)?,
                        event_type: r.get(4)?,
                        occurred_at: ts(r.get(5)?)?,
                        data: serde_json::from_str(&data).map_err(|e| conv_err(e.to_string()))?,
                    })
                },
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn insert_activity_item(&mut self, player_id: Uuid, event_seq: i64) -> StoreResult<bool> {
        let n = self.exec(
            "INSERT INTO activity_items (player_id, event_seq) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
            params![player_id.to_string(), event_seq],
        )?;
        Ok(n == 1)
    }

    fn activity_events(
        &mut self,
        player_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        let mut st = self
            .conn
            .prepare_cached(sql::ACTIVITY_EVENTS)
            .map_err(map_err)?;
        let rows = st
            .query_map(
                params![player_id.to_string(), before_seq.unwrap_or(i64::MAX), limit],
                sq(rows::event),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn count_manual_rewards(
        &mut self,
        staff_id: Uuid,
        after: Timestamp,
        up_to: Timestamp,
        up_to_seq: i64,
    ) -> StoreResult<i64> {
        Ok(self
            .one(
                sql::COUNT_MANUAL_REWARDS,
                params![staff_id.to_string(), us(after), us(up_to), up_to_seq],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    fn count_approval_requests(
        &mut self,
        staff_id: Uuid,
        after: Timestamp,
        up_to: Timestamp,
    ) -> StoreResult<i64> {
        Ok(self
            .one(
                sql::COUNT_APPROVAL_REQUESTS,
                params![staff_id.to_string(), us(after), us(up_to)],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    fn insert_approval(&mut self, a: &Approval) -> StoreResult<()> {
        self.exec_one(
            &format!(
                "INSERT INTO approvals ({APPROVAL_INSERT_COLS})
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"
            ),
            params![
                a.id.to_string(),
                a.status,
                a.player_id.to_string(),
                a.points,
                a.reason,
                a.rating_slip_id.map(|u| u.to_string()),
                a.reward_key,
                a.requested_by.to_string(),
                us(a.requested_at),
                us(a.expires_at),
                a.decided_by.map(|u| u.to_string()),
                a.decided_at.map(us),
                a.decision_reason,
                a.ledger_entry_id.map(|u| u.to_string()),
                a.correlation_id
            ],
            "insert approval",
        )
    }

    fn approval(&mut self, id: Uuid) -> StoreResult<Option<Approval>> {
        self.one(
            &format!("SELECT {APPROVAL_COLS} FROM approvals WHERE id = ?1"),
            [id.to_string()],
            sq(rows::approval),
        )
    }

    fn approval_by_key(&mut self, key: &str) -> StoreResult<Option<Approval>> {
        self.one(
            &format!("SELECT {APPROVAL_COLS} FROM approvals WHERE reward_key = ?1"),
            [key],
            sq(rows::approval),
        )
    }

    fn update_approval(&mut self, a: &Approval) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_APPROVAL,
            params![
                a.id.to_string(),
                a.status,
                a.decided_by.map(|u| u.to_string()),
                a.decided_at.map(us),
                a.decision_reason,
                a.ledger_entry_id.map(|u| u.to_string())
            ],
            "update approval",
        )
    }

    fn approvals(
        &mut self,
        status: Option<&str>,
        now: Timestamp,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Approval>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {APPROVAL_COLS} FROM approvals
                 WHERE (?1 IS NULL
                        OR (?1 = 'PENDING' AND status = 'PENDING' AND expires_at > ?2)
                        OR (?1 = 'EXPIRED' AND (status = 'EXPIRED'
                                                OR (status = 'PENDING' AND expires_at <= ?2)))
                        OR (?1 NOT IN ('PENDING', 'EXPIRED') AND status = ?1))
                   AND (?3 IS NULL OR seq < ?3)
                 ORDER BY seq DESC LIMIT ?4"
            ))
            .map_err(map_err)?;
        let rows = st
            .query_map(
                params![status, us(now), before_seq, i64::from(limit)],
                sq(rows::approval),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn insert_webhook(&mut self, w: &Webhook) -> StoreResult<()> {
        let types = w
            .event_types
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.exec_one(
            sql::INSERT_WEBHOOK,
            params![
                w.id.to_string(),
                w.url,
                types,
                w.description,
                w.secret_sealed,
                w.created_by.map(|u| u.to_string()),
                us(w.created_at)
            ],
            "insert webhook",
        )
    }

    fn webhook(&mut self, id: Uuid) -> StoreResult<Option<Webhook>> {
        self.one(sql::WEBHOOK, [id.to_string()], sq(rows::webhook))
    }

    fn webhooks(&mut self) -> StoreResult<Vec<Webhook>> {
        let mut st = self.conn.prepare_cached(sql::WEBHOOKS).map_err(map_err)?;
        st.query_map([], sq(rows::webhook))
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)
    }

    fn delete_webhook(&mut self, id: Uuid, at: Timestamp) -> StoreResult<bool> {
        Ok(self.exec(sql::DELETE_WEBHOOK, params![id.to_string(), us(at)])? == 1)
    }

    fn insert_webhook_delivery(&mut self, d: &WebhookDelivery) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_WEBHOOK_DELIVERY,
            params![
                d.webhook_id.to_string(),
                d.event_seq,
                d.event_id.to_string(),
                d.attempt,
                d.status_code,
                d.ok,
                d.duration_ms,
                d.error,
                us(d.at)
            ],
            "insert webhook delivery",
        )
    }

    fn webhook_deliveries(
        &mut self,
        webhook_id: Uuid,
        before_id: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let mut st = self
            .conn
            .prepare_cached(sql::WEBHOOK_DELIVERIES)
            .map_err(map_err)?;
        st.query_map(
            params![webhook_id.to_string(), before_id.unwrap_or(i64::MAX), limit],
            sq(rows::webhook_delivery),
        )
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)
    }

    fn insert_alert(&mut self, a: &Alert) -> StoreResult<bool> {
        let n = self.exec(
            "INSERT INTO alerts (id, kind, staff_id, count, window_seconds, window_start,
                 occurred_at, trigger_event_id, event_id, correlation_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (trigger_event_id) DO NOTHING",
            params![
                a.id.to_string(),
                a.kind,
                a.staff_id.to_string(),
                a.count,
                a.window_seconds,
                us(a.window_start),
                us(a.occurred_at),
                a.trigger_event_id.to_string(),
                a.event_id.to_string(),
                a.correlation_id,
                us(a.created_at)
            ],
        )?;
        Ok(n == 1)
    }

    fn latest_alert(&mut self, kind: &str, staff_id: Uuid) -> StoreResult<Option<Alert>> {
        self.one(
            &format!(
                "SELECT seq, {ALERT_COLS} FROM alerts WHERE kind = ?1 AND staff_id = ?2
                 ORDER BY occurred_at DESC, seq DESC LIMIT 1"
            ),
            params![kind, staff_id.to_string()],
            |r| sq(rows::alert)(r).map(|(_, a)| a),
        )
    }

    fn alerts(&mut self, before_seq: Option<i64>, limit: u32) -> StoreResult<Vec<(i64, Alert)>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT seq, {ALERT_COLS} FROM alerts WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2"
            ))
            .map_err(map_err)?;
        let rows = st
            .query_map(
                params![before_seq.unwrap_or(i64::MAX), limit],
                sq(rows::alert),
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }
}

fn entry_facts(r: &Row<'_>) -> rusqlite::Result<crate::ops::verify::EntryFacts> {
    let tt: String = r.get(2)?;
    Ok(crate::ops::verify::EntryFacts {
        player_id: uuid(r.get(0)?)?,
        entry_id: uuid(r.get(1)?)?,
        transaction_type: TransactionType::parse(&tt)
            .ok_or_else(|| conv_err(format!("unknown transaction type {tt}")))?,
        points_change: r.get(2 + 1)?,
        balance_before: r.get(4)?,
        balance_after: r.get(5)?,
        lifetime_after: r.get(6)?,
        hash: r.get(7)?,
    })
}

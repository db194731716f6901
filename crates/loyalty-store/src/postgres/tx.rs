//! `Tx` over one PostgreSQL connection. The only PostgreSQL SQL besides the
//! migrations.

use jiff::Timestamp;
use loyalty_core::{EscrowStatus, SlipStatus, Tier, TransactionType};
use postgres::Row;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::PgConn;
use crate::dispatch::*;
use crate::records::*;
use crate::rows::{self, RowRead, *};
use crate::savepoints::Savepoints;
use crate::sql;
use crate::{Cell, StoreError, StoreResult, Tx};

/// A transaction on one pooled connection.
pub struct PgTx<'c> {
    conn: &'c mut PgConn,
    write: bool,
    /// Events appended by the operation, written at commit, and the open
    /// savepoints.
    pending_events: Savepoints<NewEvent>,
    /// A RELEASE not yet sent. Releasing costs a round trip and changes
    /// nothing the transaction's statements can see, so it travels with the
    /// next savepoint command, is made moot by a rollback to an outer
    /// savepoint (which ends every savepoint taken after it), and is never
    /// sent when COMMIT comes first (which commits the savepoints with it).
    deferred_release: Option<String>,
}

impl<'c> PgTx<'c> {
    pub(crate) fn new(conn: &'c mut PgConn, write: bool) -> Self {
        PgTx {
            conn,
            write,
            pending_events: Savepoints::default(),
            deferred_release: None,
        }
    }

    /// Writes the buffered events to `outbox_pending`, in the order the
    /// operation appended them, in one statement. Called right before
    /// COMMIT, after every lock the operation takes, so the pending ids of
    /// two writers of one player are in their commit order; the public
    /// `seq` is given after commit (see `sequencer`). Returns the largest
    /// pending id written, if any.
    pub(crate) fn flush_events(&mut self) -> StoreResult<Option<i64>> {
        if self.pending_events.events().is_empty() {
            return Ok(None);
        }
        let events = self.pending_events.take();
        let mut newest = None;
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            newest = newest.max(Some(self.insert_pending(chunk)?));
        }
        Ok(newest)
    }

    /// Inserts `events` into `outbox_pending`; returns the largest id given.
    fn insert_pending(&mut self, events: &[NewEvent]) -> StoreResult<i64> {
        let versions: Vec<i32> = events
            .iter()
            .map(|e| i32::try_from(e.version).unwrap_or(i32::MAX))
            .collect();
        let occurred: Vec<i64> = events.iter().map(|e| us(e.occurred_at)).collect();
        // The payload's text goes to `jsonb` as it is.
        let payloads: Vec<postgres::types::Json<&loyalty_core::events::Payload>> = events
            .iter()
            .map(|e| postgres::types::Json(&e.payload))
            .collect();
        let mut sql = String::from(
            "INSERT INTO outbox_pending (event_id, event_type, version, occurred_at,
                 correlation_id, idempotency_key, source, payload) VALUES ",
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(events.len() * 8);
        for (i, e) in events.iter().enumerate() {
            let b = i * 8;
            if i > 0 {
                sql.push_str(", ");
            }
            let slots: Vec<String> = (b + 1..=b + 8).map(|n| format!("${n}")).collect();
            sql.push_str(&format!("({})", slots.join(", ")));
            params.extend_from_slice(&[
                &e.event_id,
                &e.event_type,
                &versions[i],
                &occurred[i],
                &e.correlation_id,
                &e.idempotency_key,
                &e.source,
                &payloads[i],
            ]);
        }
        sql.push_str(" RETURNING id");
        let st = self.stmt(&sql)?;
        let ids = self
            .conn
            .client
            .query(&st, &params)
            .map_err(|e| map_err(&e))?;
        if ids.len() != events.len() {
            return Err(StoreError::Internal(format!(
                "append events: expected {} rows, wrote {}",
                events.len(),
                ids.len()
            )));
        }
        ids.iter()
            .map(|r| r.try_get::<_, i64>(0).map_err(|e| map_err(&e)))
            .try_fold(0i64, |newest, id| Ok(newest.max(id?)))
    }
}

/// Events written by one INSERT (so at most this many statement shapes are
/// prepared per connection).
const EVENTS_PER_INSERT: usize = 16;

pub(crate) fn map_err(e: &postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let msg = db.message().to_string();
        return if *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::CHECK_VIOLATION
            || *code == SqlState::FOREIGN_KEY_VIOLATION
            || *code == SqlState::EXCLUSION_VIOLATION
        {
            StoreError::Conflict(msg)
        } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::QUERY_CANCELED
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        {
            StoreError::Unavailable(msg)
        } else {
            StoreError::Internal(format!("{}: {msg}", code.code()))
        };
    }
    // No database error: the connection itself failed.
    StoreError::Unavailable(format!("database connection failed: {e}"))
}

fn conv(msg: impl Into<String>) -> StoreError {
    StoreError::Internal(format!("bad stored value: {}", msg.into()))
}

fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn ts(v: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(v).map_err(|e| conv(e.to_string()))
}

fn tier(v: &str) -> StoreResult<Tier> {
    Tier::parse(v).ok_or_else(|| conv(format!("unknown tier {v}")))
}

impl RowRead for Row {
    fn int(&self, i: usize) -> StoreResult<i64> {
        let got = match *self.columns()[i].type_() {
            Type::INT2 => self.try_get::<_, i16>(i).map(i64::from),
            Type::INT4 => self.try_get::<_, i32>(i).map(i64::from),
            _ => self.try_get::<_, i64>(i),
        };
        got.map_err(|e| map_err(&e))
    }

    fn int_opt(&self, i: usize) -> StoreResult<Option<i64>> {
        let got = match *self.columns()[i].type_() {
            Type::INT2 => self.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from)),
            Type::INT4 => self.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)),
            _ => self.try_get::<_, Option<i64>>(i),
        };
        got.map_err(|e| map_err(&e))
    }

    fn text(&self, i: usize) -> StoreResult<String> {
        self.try_get(i).map_err(|e| map_err(&e))
    }

    fn text_opt(&self, i: usize) -> StoreResult<Option<String>> {
        self.try_get(i).map_err(|e| map_err(&e))
    }

    fn id_opt(&self, i: usize) -> StoreResult<Option<Uuid>> {
        self.try_get(i).map_err(|e| map_err(&e))
    }

    fn json(&self, i: usize) -> StoreResult<serde_json::Value> {
        self.try_get(i).map_err(|e| map_err(&e))
    }

    fn flag(&self, i: usize) -> StoreResult<bool> {
        self.try_get(i).map_err(|e| map_err(&e))
    }

    fn width(&self) -> usize {
        self.len()
    }
}

impl PgTx<'_> {
    fn stmt(&mut self, sql: &str) -> StoreResult<postgres::Statement> {
        if let Some(s) = self.conn.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .conn
            .client
            .prepare(&pg_placeholders(sql))
            .map_err(|e| map_err(&e))?;
        self.conn.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let st = self.stmt(sql)?;
        self.conn.client.query(&st, p).map_err(|e| map_err(&e))
    }

    fn opt(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> StoreResult<Option<Row>> {
        let st = self.stmt(sql)?;
        self.conn.client.query_opt(&st, p).map_err(|e| map_err(&e))
    }

    fn exec(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let st = self.stmt(sql)?;
        self.conn.client.execute(&st, p).map_err(|e| map_err(&e))
    }

    fn exec_one(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)], what: &str) -> StoreResult<()> {
        let st = self.stmt(sql)?;
        match self.conn.client.execute(&st, p).map_err(|e| map_err(&e))? {
            1 => Ok(()),
            n => Err(StoreError::Internal(format!(
                "{what}: expected 1 row, changed {n}"
            ))),
        }
    }

    fn lock_suffix(&self) -> &'static str {
        if self.write { " FOR UPDATE" } else { "" }
    }

    /// Serialises write transactions on one key across nodes until commit.
    fn key_lock(&mut self, key: &str) -> StoreResult<()> {
        if self.write {
            self.query(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 7411))",
                &[&key],
            )?;
        }
        Ok(())
    }
}

/// A shared statement's `?N` placeholders ([`crate::sql`]) as PostgreSQL's
/// `$N`; text without them is returned as it is.
pub(crate) fn pg_placeholders(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains('?') {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let numbered = c == '?' && chars.peek().is_some_and(char::is_ascii_digit);
        out.push(if numbered { '$' } else { c });
    }
    std::borrow::Cow::Owned(out)
}

/// The database's clock in microseconds, in SQL.
const DB_NOW_US: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT";

impl Tx for PgTx<'_> {
    fn insert_staff(&mut self, s: &Staff) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_STAFF,
            &[&s.id, &s.name, &s.role.as_str(), &us(s.created_at)],
            "insert staff",
        )
    }

    fn staff(&mut self, id: Uuid) -> StoreResult<Option<Staff>> {
        self.opt(sql::STAFF, &[&id])?
            .map(|r| rows::staff(&r))
            .transpose()
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
            &[&hash, &kind, &id, &us(at)],
            "insert token",
        )
    }

    fn token(&mut self, hash: &str) -> StoreResult<Option<TokenSubject>> {
        let row = self.opt(sql::TOKEN, &[&hash])?;
        Ok(row.and_then(|r| {
            let kind: String = r.get(0);
            let id: Uuid = r.get(1);
            match kind.as_str() {
                "staff" => Some(TokenSubject::Staff(id)),
                "player" => Some(TokenSubject::Player(id)),
                _ => None,
            }
        }))
    }

    fn revoke_token(&mut self, hash: &str, at: Timestamp) -> StoreResult<bool> {
        Ok(self.exec(sql::REVOKE_TOKEN, &[&hash, &us(at)])? == 1)
    }

    fn revoke_subject_tokens(&mut self, subject: TokenSubject, at: Timestamp) -> StoreResult<u64> {
        let (kind, id) = subject.kind_and_id();
        self.exec(sql::REVOKE_SUBJECT_TOKENS, &[&kind, &id, &us(at)])
    }

    fn disable_staff(&mut self, id: Uuid, at: Timestamp) -> StoreResult<bool> {
        self.exec(sql::DISABLE_STAFF, &[&id, &us(at)])?;
        Ok(self.opt(sql::STAFF_EXISTS, &[&id])?.is_some())
    }

    fn server_key(&mut self, name: &str, candidate: &str, at: Timestamp) -> StoreResult<String> {
        self.exec(sql::INSERT_SERVER_KEY, &[&name, &candidate, &us(at)])?;
        self.opt(sql::SERVER_KEY, &[&name])?
            .map(|r| r.get::<_, String>(0))
            .ok_or_else(|| StoreError::Internal(format!("server key {name} missing after insert")))
    }

    fn insert_player(&mut self, p: &Player) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_PLAYER,
            &[
                &p.id,
                &p.display_name,
                &p.card_number,
                &p.status.as_str(),
                &us(p.created_at),
            ],
            "insert player",
        )
    }

    fn player(&mut self, id: Uuid) -> StoreResult<Option<Player>> {
        self.opt(sql::PLAYER, &[&id])?
            .map(|r| rows::player(&r))
            .transpose()
    }

    fn insert_account(&mut self, a: &Account) -> StoreResult<()> {
        self.exec_one(
            &format!(
                "INSERT INTO loyalty_accounts ({ACCOUNT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &a.player_id,
                &a.current_balance,
                &a.escrow_balance,
                &a.lifetime_points,
                &a.tier.as_str(),
                &a.entry_count,
                &us(a.updated_at),
            ],
            "insert account",
        )
    }

    fn account(&mut self, player_id: Uuid) -> StoreResult<Option<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLS}, chain_head FROM loyalty_accounts WHERE player_id = $1{}",
            self.lock_suffix()
        );
        self.opt(&sql, &[&player_id])?
            .map(|r| {
                Ok(Account {
                    chain_head: r.text_opt(7)?,
                    ..rows::account(&r, 0)?
                })
            })
            .transpose()
    }

    fn update_account(&mut self, a: &Account) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_ACCOUNT,
            &[
                &a.player_id,
                &a.current_balance,
                &a.escrow_balance,
                &a.lifetime_points,
                &a.tier.as_str(),
                &a.entry_count,
                &us(a.updated_at),
                &a.chain_head,
            ],
            "update account",
        )
    }

    fn insert_table(&mut self, t: &GameTable) -> StoreResult<()> {
        self.exec_one(
            &format!(
                "INSERT INTO game_tables ({TABLE_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
            ),
            &[
                &t.id,
                &t.name,
                &t.game_type,
                &t.settings.house_edge.to_string(),
                &i64::from(t.settings.average_rounds_per_hour),
                &t.settings.points_conversion_rate.to_string(),
                &t.settings.point_multiplier.to_string(),
                &i64::from(t.settings.seats_available),
                &us(t.created_at),
                &us(t.updated_at),
            ],
            "insert table",
        )
    }

    fn table(&mut self, id: Uuid) -> StoreResult<Option<GameTable>> {
        let sql = format!(
            "SELECT {TABLE_COLS} FROM game_tables WHERE id = $1{}",
            self.lock_suffix()
        );
        self.opt(&sql, &[&id])?.map(|r| rows::table(&r)).transpose()
    }

    fn table_unlocked(&mut self, id: Uuid) -> StoreResult<Option<GameTable>> {
        let sql = format!("SELECT {TABLE_COLS} FROM game_tables WHERE id = $1");
        self.opt(&sql, &[&id])?.map(|r| rows::table(&r)).transpose()
    }

    fn slip_subjects(
        &mut self,
        player_id: Uuid,
        table_id: Uuid,
    ) -> StoreResult<(bool, Option<GameTable>)> {
        let sql = format!(
            "SELECT {TABLE_COLS}, EXISTS (SELECT 1 FROM players WHERE id = $1)
             FROM game_tables WHERE id = $2"
        );
        match self.opt(&sql, &[&player_id, &table_id])? {
            Some(r) => {
                let player = r.try_get::<_, bool>(10).map_err(|e| map_err(&e))?;
                Ok((player, Some(rows::table(&r)?)))
            }
            // No such table: an unknown player is still the error to report.
            None => Ok((self.player(player_id)?.is_some(), None)),
        }
    }

    fn update_table(&mut self, t: &GameTable) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_TABLE,
            &[
                &t.id,
                &t.name,
                &t.game_type,
                &t.settings.house_edge.to_string(),
                &i64::from(t.settings.average_rounds_per_hour),
                &t.settings.points_conversion_rate.to_string(),
                &t.settings.point_multiplier.to_string(),
                &i64::from(t.settings.seats_available),
                &us(t.updated_at),
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
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)"
            ),
            &[
                &s.id,
                &s.player_id,
                &s.table_id,
                &s.seat_number.map(i64::from),
                &s.status.as_str(),
                &s.average_bet.to_string(),
                &us(s.started_at),
                &s.ended_at.map(us),
                &s.accumulated_us,
                &s.segment_started_at.map(us),
                &settings,
                &s.loyalty_status.as_str(),
                &s.ledger_entry_id,
                &s.accrual_attempts,
                &s.next_retry_at.map(us),
                &s.opened_by,
                &s.closed_correlation_id,
                &us(s.created_at),
                &us(s.updated_at),
                &corrections_json(s)?,
            ],
            "insert slip",
        )
    }

    fn slip(&mut self, id: Uuid) -> StoreResult<Option<RatingSlip>> {
        let sql = format!(
            "SELECT {SLIP_COLS} FROM rating_slips WHERE id = $1{}",
            self.lock_suffix()
        );
        self.opt(&sql, &[&id])?.map(|r| rows::slip(&r)).transpose()
    }

    fn update_slip(&mut self, s: &RatingSlip) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_SLIP,
            &[
                &s.id,
                &s.status.as_str(),
                &s.average_bet.to_string(),
                &s.ended_at.map(us),
                &s.accumulated_us,
                &s.segment_started_at.map(us),
                &s.loyalty_status.as_str(),
                &s.ledger_entry_id,
                &s.accrual_attempts,
                &s.next_retry_at.map(us),
                &s.closed_correlation_id,
                &us(s.updated_at),
                &us(s.started_at),
                &corrections_json(s)?,
            ],
            "update slip",
        )
    }

    fn pending_slips(&mut self, due_at: Timestamp, limit: u32) -> StoreResult<Vec<Uuid>> {
        let rows = self.query(sql::PENDING_SLIPS, &[&us(due_at), &i64::from(limit)])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn insert_entry(&mut self, e: &LedgerEntry) -> StoreResult<i64> {
        let st = self.stmt(
            "INSERT INTO ledger_entries (id, player_id, transaction_type, event_type,
                 points_change, reason, source, staff_id, rating_slip_id, idempotency_key,
                 balance_before, balance_after, tier_before, tier_after, lifetime_after,
                 escrow_id, correlation_id, created_at, prev_hash, hash, escrow_change,
                 approved_by)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,
                     $22)
             RETURNING seq",
        )?;
        let row = self
            .conn
            .client
            .query_one(
                &st,
                &[
                    &e.id,
                    &e.player_id,
                    &e.transaction_type.as_str(),
                    &e.event_type,
                    &e.points_change,
                    &e.reason,
                    &e.source,
                    &e.staff_id,
                    &e.rating_slip_id,
                    &e.idempotency_key,
                    &e.balance_before,
                    &e.balance_after,
                    &e.tier_before.as_str(),
                    &e.tier_after.as_str(),
                    &e.lifetime_after,
                    &e.escrow_id,
                    &e.correlation_id,
                    &us(e.created_at),
                    &e.prev_hash,
                    &e.hash,
                    &e.escrow_change,
                    &e.approved_by,
                ],
            )
            .map_err(|err| map_err(&err))?;
        Ok(row.get(0))
    }

    fn chain_heads(
        &mut self,
        up_to_seq: i64,
        visit: &mut dyn FnMut(Uuid, String),
    ) -> StoreResult<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let st = self.stmt(
            "SELECT a.player_id,
                    (SELECT e.hash FROM ledger_entries e
                     WHERE e.player_id = a.player_id AND e.seq <= $1
                     ORDER BY e.seq DESC LIMIT 1)
             FROM loyalty_accounts a ORDER BY a.player_id::text COLLATE \"C\"",
        )?;
        let mut rows = self
            .conn
            .client
            .query_raw(&st, [&up_to_seq as &(dyn ToSql + Sync)])
            .map_err(|e| map_err(&e))?;
        while let Some(r) = rows.next().map_err(|e| map_err(&e))? {
            let head: Option<String> = r.get(1);
            if let Some(head) = head {
                visit(r.get(0), head);
            }
        }
        Ok(())
    }

    fn chain_head(&mut self, player_id: Uuid) -> StoreResult<String> {
        Ok(self
            .opt(
                "SELECT hash FROM ledger_entries WHERE player_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&player_id],
            )?
            .and_then(|r| r.get::<_, Option<String>>(0))
            .unwrap_or_else(|| crate::chain::GENESIS.to_string()))
    }

    fn balances_as_of(
        &mut self,
        player_id: Uuid,
        at: Timestamp,
    ) -> StoreResult<Option<BalancesAsOf>> {
        let row = self.opt(
            "SELECT l.balance_after, l.lifetime_after, l.tier_after, l.created_at,
                    (SELECT COALESCE(SUM(e.escrow_change), 0)::BIGINT FROM ledger_entries e
                     WHERE e.player_id = $1 AND e.created_at <= $2)
             FROM ledger_entries l WHERE l.player_id = $1 AND l.created_at <= $2
             ORDER BY l.seq DESC LIMIT 1",
            &[&player_id, &us(at)],
        )?;
        row.map(|r| {
            Ok(BalancesAsOf {
                current_balance: r.get(0),
                lifetime_points: r.get(1),
                tier: tier(r.get(2))?,
                last_entry_at: ts(r.get(3))?,
                escrow_balance: r.get(4),
            })
        })
        .transpose()
    }

    fn entry(&mut self, id: Uuid) -> StoreResult<Option<LedgerEntry>> {
        self.opt(
            &format!("SELECT {ENTRY_COLS} FROM ledger_entries WHERE id = $1"),
            &[&id],
        )?
        .map(|r| rows::entry(&r))
        .transpose()
    }

    fn entry_by_key(&mut self, key: &str) -> StoreResult<Option<LedgerEntry>> {
        self.key_lock(key)?;
        self.opt(
            &format!("SELECT {ENTRY_COLS} FROM ledger_entries WHERE idempotency_key = $1"),
            &[&key],
        )?
        .map(|r| rows::entry(&r))
        .transpose()
    }

    fn entries(&mut self, q: &EntryQuery) -> StoreResult<Vec<LedgerEntry>> {
        // Only the filters present go into the SQL, so each shape gets its
        // own plan and the planner picks the matching index.
        let mut sql = format!("SELECT {ENTRY_COLS} FROM ledger_entries WHERE TRUE");
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        let mut add = |sql: &mut String, cond: &str, v: Box<dyn ToSql + Sync>| {
            params.push(v);
            sql.push_str(&format!(" AND {cond} ${}", params.len()));
        };
        if let Some(p) = q.player_id {
            add(&mut sql, "player_id =", Box::new(p));
        }
        if let Some(s) = q.staff_id {
            add(&mut sql, "staff_id =", Box::new(s));
        }
        if let Some(c) = &q.correlation_id {
            add(&mut sql, "correlation_id =", Box::new(c.clone()));
        }
        if let Some(t) = q.transaction_type {
            add(
                &mut sql,
                "transaction_type =",
                Box::new(t.as_str().to_string()),
            );
        }
        if let Some(f) = q.from {
            add(&mut sql, "created_at >=", Box::new(us(f)));
        }
        if let Some(t) = q.to {
            add(&mut sql, "created_at <", Box::new(us(t)));
        }
        if let Some(b) = q.before_seq {
            add(&mut sql, "seq <", Box::new(b));
        }
        params.push(Box::new(i64::from(q.limit)));
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", params.len()));
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
        let rows = self.query(&sql, &refs)?;
        rows.iter().map(|r| rows::entry(r)).collect()
    }

    fn append_event(&mut self, e: NewEvent) -> StoreResult<()> {
        // Buffered until commit: see `flush_events`.
        self.pending_events.push(e);
        Ok(())
    }

    fn events(
        &mut self,
        after_seq: i64,
        limit: u32,
        event_type: Option<&str>,
    ) -> StoreResult<Vec<EventRecord>> {
        let rows = self.query(
            "SELECT seq, event_id, event_type, version, occurred_at, correlation_id,
                    idempotency_key, source, payload
             FROM outbox WHERE seq > $1 AND ($2::text IS NULL OR event_type = $2)
             ORDER BY seq LIMIT $3",
            &[&after_seq, &event_type, &i64::from(limit)],
        )?;
        rows.iter().map(|r| rows::event(r)).collect()
    }

    fn idempotency_record(
        &mut self,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        self.key_lock(&format!("idem\u{1f}{scope}\u{1f}{key}"))?;
        let row = self.opt(sql::IDEMPOTENCY_RECORD, &[&scope, &key])?;
        row.map(|r| {
            let status: i32 = r.get(1);
            Ok(IdempotencyRecord {
                fingerprint: r.get(0),
                status: u16::try_from(status).map_err(|_| conv("status"))?,
                body: r.get(2),
                created_at: ts(r.get(3))?,
            })
        })
        .transpose()
    }

    fn insert_idempotency_record(
        &mut self,
        scope: &str,
        key: &str,
        rec: &IdempotencyRecord,
    ) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_IDEMPOTENCY_RECORD,
            &[
                &scope,
                &key,
                &rec.fingerprint,
                &i32::from(rec.status),
                &rec.body,
                &us(rec.created_at),
            ],
            "insert idempotency record",
        )
    }

    fn purge_idempotency_records(&mut self, before: Timestamp) -> StoreResult<u64> {
        let st = self.stmt(sql::PURGE_IDEMPOTENCY_RECORDS)?;
        self.conn
            .client
            .execute(&st, &[&us(before)])
            .map_err(|e| map_err(&e))
    }

    fn savepoint(&mut self) -> StoreResult<()> {
        let open = self.pending_events.open();
        let sql = match self.deferred_release.take() {
            Some(release) => format!("{release}; {open}"),
            None => open,
        };
        self.conn
            .client
            .batch_execute(&sql)
            .map_err(|e| map_err(&e))
    }

    fn rollback_savepoint(&mut self) -> StoreResult<()> {
        // Released savepoints are all inner to the one rolled back to, and
        // the rollback ends them.
        self.deferred_release = None;
        let sql = self.pending_events.rollback();
        self.conn
            .client
            .batch_execute(&sql)
            .map_err(|e| map_err(&e))
    }

    fn release_savepoint(&mut self) -> StoreResult<()> {
        // Releasing an outer savepoint releases the inner ones too, so the
        // outermost deferred RELEASE is the only one to keep.
        self.deferred_release = Some(self.pending_events.release());
        Ok(())
    }

    fn insert_merchant(&mut self, m: &Merchant) -> StoreResult<()> {
        self.exec_one(
            sql::INSERT_MERCHANT,
            &[
                &m.id,
                &m.name,
                &m.earnings,
                &us(m.created_at),
                &us(m.updated_at),
            ],
            "insert merchant",
        )
    }

    fn merchant(&mut self, id: Uuid) -> StoreResult<Option<Merchant>> {
        let sql = format!(
            "SELECT {MERCHANT_COLS} FROM merchants WHERE id = $1{}",
            self.lock_suffix()
        );
        self.opt(&sql, &[&id])?
            .map(|r| rows::merchant(&r))
            .transpose()
    }

    fn update_merchant(&mut self, m: &Merchant) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_MERCHANT,
            &[&m.id, &m.earnings, &us(m.updated_at)],
            "update merchant",
        )
    }

    fn merchants(&mut self, before_seq: Option<i64>, limit: u32) -> StoreResult<Vec<Merchant>> {
        let sql = format!(
            "SELECT {MERCHANT_COLS} FROM merchants
             WHERE ($1::BIGINT IS NULL OR seq < $1) ORDER BY seq DESC LIMIT $2"
        );
        self.query(&sql, &[&before_seq, &i64::from(limit)])?
            .iter()
            .map(|r| rows::merchant(r))
            .collect()
    }

    fn insert_escrow(&mut self, e: &Escrow) -> StoreResult<i64> {
        let st = self.stmt(
            "INSERT INTO escrows (id, player_id, merchant_id, amount, settled_amount,
                 refunded_amount, status, reason, reference, expires_at, created_by,
                 created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             RETURNING seq",
        )?;
        let row = self
            .conn
            .client
            .query_one(
                &st,
                &[
                    &e.id,
                    &e.player_id,
                    &e.merchant_id,
                    &e.amount,
                    &e.settled_amount,
                    &e.refunded_amount,
                    &e.status.as_str(),
                    &e.reason,
                    &e.reference,
                    &e.expires_at.map(us),
                    &e.created_by,
                    &us(e.created_at),
                    &us(e.updated_at),
                    &e.version,
                ],
            )
            .map_err(|e| map_err(&e))?;
        Ok(row.get(0))
    }

    fn escrow(&mut self, id: Uuid) -> StoreResult<Option<Escrow>> {
        let sql = format!(
            "SELECT {ESCROW_COLS} FROM escrows WHERE id = $1{}",
            self.lock_suffix()
        );
        self.opt(&sql, &[&id])?
            .map(|r| rows::escrow(&r))
            .transpose()
    }

    fn update_escrow(&mut self, e: &Escrow) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_ESCROW,
            &[
                &e.id,
                &e.settled_amount,
                &e.refunded_amount,
                &e.status.as_str(),
                &us(e.updated_at),
                &e.version,
            ],
            "update escrow",
        )
    }

    fn escrows(&mut self, q: &EscrowQuery) -> StoreResult<Vec<Escrow>> {
        let sql = format!(
            "SELECT {ESCROW_COLS} FROM escrows
             WHERE ($1::UUID IS NULL OR player_id = $1)
               AND ($2::TEXT IS NULL OR status = $2)
               AND ($3::BIGINT IS NULL OR seq < $3)
             ORDER BY seq DESC LIMIT $4"
        );
        self.query(
            &sql,
            &[
                &q.player_id,
                &q.status.map(EscrowStatus::as_str),
                &q.before_seq,
                &i64::from(q.limit),
            ],
        )?
        .iter()
        .map(|r| rows::escrow(r))
        .collect()
    }

    fn due_escrows(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<Uuid>> {
        Ok(self
            .query(
                "SELECT id FROM escrows
                 WHERE status = 'HELD' AND expires_at <= $1
                 ORDER BY expires_at LIMIT $2",
                &[&us(now), &i64::from(limit)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn shared_rows(&mut self, sql: &'static str, params: &[i64]) -> StoreResult<Vec<Vec<Cell>>> {
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.query(sql, &params)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        let ty = r.columns()[i].type_().clone();
                        if ty == postgres::types::Type::INT8 {
                            Ok(r.get::<_, Option<i64>>(i).map_or(Cell::Null, Cell::Int))
                        } else if ty == postgres::types::Type::TEXT {
                            Ok(r.get::<_, Option<String>>(i).map_or(Cell::Null, Cell::Text))
                        } else {
                            Err(conv(format!(
                                "unexpected column type {ty} in a shared query"
                            )))
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn search_players(
        &mut self,
        q: Option<&str>,
        before_id: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Player>> {
        let cols = "id, display_name, card_number, status, created_at";
        let rows = match q {
            None => self.query(
                &format!(
                    "SELECT {cols} FROM players WHERE ($1::UUID IS NULL OR id < $1)
                     ORDER BY id DESC LIMIT $2"
                ),
                &[&before_id, &i64::from(limit)],
            )?,
            // Card prefix through the text_pattern_ops index; name through
            // the trigram index on lower(display_name).
            Some(q) => {
                let literal = crate::like_literal(q);
                let prefix = format!("{literal}%");
                let contains = format!("%{}%", literal.to_lowercase());
                self.query(
                    &format!(
                        "SELECT {cols} FROM players
                         WHERE (card_number LIKE $1 OR lower(display_name) LIKE $2)
                           AND ($3::UUID IS NULL OR id < $3)
                         ORDER BY id DESC LIMIT $4"
                    ),
                    &[&prefix, &contains, &before_id, &i64::from(limit)],
                )?
            }
        };
        rows.iter().map(|r| rows::player(r)).collect()
    }

    fn tables(&mut self, before_id: Option<Uuid>, limit: u32) -> StoreResult<Vec<GameTable>> {
        self.query(
            &format!(
                "SELECT {TABLE_COLS} FROM game_tables WHERE ($1::UUID IS NULL OR id < $1)
                 ORDER BY id DESC LIMIT $2"
            ),
            &[&before_id, &i64::from(limit)],
        )?
        .iter()
        .map(|r| rows::table(r))
        .collect()
    }

    fn slips(&mut self, q: &SlipQuery) -> StoreResult<Vec<RatingSlip>> {
        self.query(
            &format!(
                "SELECT {SLIP_COLS} FROM rating_slips
                 WHERE ($1::TEXT IS NULL OR status = $1)
                   AND ($2::UUID IS NULL OR table_id = $2)
                   AND ($3::UUID IS NULL OR player_id = $3)
                   AND ($4::UUID IS NULL OR id < $4)
                 ORDER BY id DESC LIMIT $5"
            ),
            &[
                &q.status.map(SlipStatus::as_str),
                &q.table_id,
                &q.player_id,
                &q.before_id,
                &i64::from(q.limit),
            ],
        )?
        .iter()
        .map(|r| rows::slip(r))
        .collect()
    }

    fn reward_buckets(
        &mut self,
        from: Timestamp,
        to: Timestamp,
        bucket_us: i64,
    ) -> StoreResult<Vec<RewardBucket>> {
        self.query(
            "SELECT staff_id, (created_at / $3) * $3 AS bucket, count(*), sum(points_change)::BIGINT
             FROM ledger_entries
             WHERE transaction_type IN ('MANUAL_BONUS', 'ADJUSTMENT')
               AND created_at >= $1 AND created_at < $2 AND staff_id IS NOT NULL
             GROUP BY staff_id, bucket ORDER BY bucket, staff_id",
            &[&us(from), &us(to), &bucket_us],
        )?
        .iter()
        .map(|r| {
            Ok(RewardBucket {
                staff_id: r.get(0),
                bucket_start: ts(r.get(1))?,
                count: r.get(2),
                points: r.get(3),
            })
        })
        .collect()
    }

    fn last_entry_seq(&mut self) -> StoreResult<i64> {
        let rows = self.query(
            "SELECT coalesce(max(seq), 0)::BIGINT FROM ledger_entries",
            &[],
        )?;
        Ok(rows.first().map(|r| r.get(0)).unwrap_or(0))
    }

    fn entries_ascending(
        &mut self,
        after_seq: i64,
        up_to_seq: i64,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        limit: u32,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let rows = self.query(
            &format!(
                "SELECT {ENTRY_COLS} FROM ledger_entries
                 WHERE seq > $1 AND seq <= $2
                   AND ($3::BIGINT IS NULL OR created_at >= $3)
                   AND ($4::BIGINT IS NULL OR created_at < $4)
                 ORDER BY seq LIMIT $5"
            ),
            &[
                &after_seq,
                &up_to_seq,
                &from.map(us),
                &to.map(us),
                &i64::from(limit),
            ],
        )?;
        rows.iter().map(|r| rows::entry(r)).collect()
    }

    fn db_clock(&mut self) -> StoreResult<Option<crate::DbClock>> {
        let rows = self.query(
            "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT, c.set_to, c.set_at
             FROM (SELECT 1) one LEFT JOIN test_clock c ON c.id = 1",
            &[],
        )?;
        let r = rows.first().ok_or_else(|| conv("no clock row"))?;
        let set_to: Option<i64> = r.get(1);
        let set_at: Option<i64> = r.get(2);
        Ok(Some(crate::DbClock {
            now: ts(r.get(0))?,
            test_clock: match (set_to, set_at) {
                (Some(to), Some(at)) => Some((ts(to)?, ts(at)?)),
                _ => None,
            },
        }))
    }

    fn set_test_clock(&mut self, to: Timestamp) -> StoreResult<()> {
        self.exec_one(
            "INSERT INTO test_clock (id, set_to, set_at)
             VALUES (1, $1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT)
             ON CONFLICT (id) DO UPDATE SET set_to = EXCLUDED.set_to, set_at = EXCLUDED.set_at",
            &[&us(to)],
            "set test clock",
        )
    }

    fn verify_accounts(&mut self, drift: &mut dyn FnMut(Drift)) -> StoreResult<u64> {
        use postgres::fallible_iterator::FallibleIterator;
        let sql =
            "SELECT a.player_id, a.current_balance, a.escrow_balance, a.lifetime_points, a.tier,
                    a.entry_count, a.updated_at,
                    e.id, e.transaction_type, e.points_change, e.balance_before, e.balance_after,
                    e.lifetime_after, e.player_id, a.chain_head, e.hash
             FROM loyalty_accounts a FULL JOIN ledger_entries e ON e.player_id = a.player_id
             ORDER BY COALESCE(a.player_id, e.player_id), e.seq"
                .to_string();
        let st = self.stmt(&sql)?;
        let params: [&(dyn ToSql + Sync); 0] = [];
        let mut rows = self
            .conn
            .client
            .query_raw(&st, params.iter().copied())
            .map_err(|e| map_err(&e))?;
        let mut checker = crate::ops::verify::Checker::new(drift);
        let mut current: Option<Uuid> = None;
        while let Some(r) = rows.next().map_err(|e| map_err(&e))? {
            let has_account = r.get::<_, Option<Uuid>>(0).is_some();
            if has_account {
                let account = Account {
                    chain_head: r.get(14),
                    ..rows::account(&r, 0)?
                };
                if current != Some(account.player_id) {
                    if current.is_some() {
                        checker.end();
                    }
                    current = Some(account.player_id);
                    checker.begin(&account);
                }
            }
            let entry_id: Option<Uuid> = r.get(7);
            if let Some(entry_id) = entry_id {
                let tt: String = r.get(8);
                let facts = crate::ops::verify::EntryFacts {
                    player_id: r.get(13),
                    entry_id,
                    transaction_type: TransactionType::parse(&tt)
                        .ok_or_else(|| conv(format!("transaction type {tt}")))?,
                    points_change: r.get(9),
                    balance_before: r.get(10),
                    balance_after: r.get(11),
                    lifetime_after: r.get(12),
                    hash: r.get(15),
                };
                if has_account {
                    checker.entry(&facts);
                } else {
                    checker.orphan(&facts);
                }
            }
        }
        if current.is_some() {
            checker.end();
        }
        Ok(checker.accounts_checked())
    }

    fn outbox_head(&mut self) -> StoreResult<i64> {
        // Only sequencers write `outbox`, committing each number with its
        // row, so the largest visible seq has every smaller one before it.
        Ok(self
            .opt("SELECT coalesce(max(seq), 0) FROM outbox", &[])?
            .map(|r| r.get(0))
            .unwrap_or(0))
    }

    fn settled_outbox_head(&mut self) -> StoreResult<Option<i64>> {
        // A writer whose wait for the sequencer timed out (or a process
        // that exited) leaves committed rows in `outbox_pending`: until they
        // are numbered, the head does not cover them.
        Ok(self
            .opt(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM outbox_pending) THEN NULL
                     ELSE (SELECT coalesce(max(seq), 0) FROM outbox) END",
                &[],
            )?
            .and_then(|r| r.get::<_, Option<i64>>(0)))
    }

    fn checkpoint(&mut self, subscriber: &str) -> StoreResult<Option<i64>> {
        Ok(self.opt(sql::CHECKPOINT, &[&subscriber])?.map(|r| r.get(0)))
    }

    fn event_archives(&mut self) -> StoreResult<Vec<EventArchive>> {
        self.query(sql::EVENT_ARCHIVES, &[])?
            .iter()
            .map(|r| rows::event_archive(r))
            .collect()
    }

    fn insert_event_archive(&mut self, a: &EventArchive) -> StoreResult<()> {
        let at = us(a.archived_at);
        match self.exec(
            sql::INSERT_EVENT_ARCHIVE,
            &[&a.first_seq, &a.last_seq, &a.file, &a.sha256, &a.bytes, &at],
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
            self.exec(sql::DELETE_ACTIVITY_ITEM, &[player, seq])?;
        }
        self.exec(sql::DELETE_ARCHIVED_EVENTS, &[&first, &last])
    }

    fn first_outbox_seq(&mut self) -> StoreResult<Option<i64>> {
        Ok(self
            .opt(sql::FIRST_OUTBOX_SEQ, &[])?
            .and_then(|r| r.get::<_, Option<i64>>(0)))
    }

    fn checkpoints(&mut self) -> StoreResult<Vec<(String, i64)>> {
        Ok(self
            .query(sql::CHECKPOINTS, &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn oldest_unreplayed_dead_letter(&mut self) -> StoreResult<Option<i64>> {
        Ok(self
            .opt(sql::OLDEST_UNREPLAYED_DEAD_LETTER, &[])?
            .and_then(|r| r.get::<_, Option<i64>>(0)))
    }

    fn set_checkpoint(&mut self, subscriber: &str, seq: i64, at: Timestamp) -> StoreResult<()> {
        self.query(
            "INSERT INTO subscriber_checkpoints (subscriber, seq, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (subscriber) DO UPDATE
                 SET seq = GREATEST(subscriber_checkpoints.seq, EXCLUDED.seq),
                     updated_at = EXCLUDED.updated_at",
            &[&subscriber, &seq, &us(at)],
        )?;
        Ok(())
    }

    fn upsert_dead_letter(&mut self, d: &NewDeadLetter) -> StoreResult<i64> {
        let attempts = i32::try_from(d.attempts).unwrap_or(i32::MAX);
        self.query(
            "INSERT INTO dead_letters (subscriber, event_seq, event_id, event_type, error, attempts,
                 status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'DEAD', $7, $7)
             ON CONFLICT (subscriber, event_seq) DO UPDATE SET error = EXCLUDED.error,
                 attempts = EXCLUDED.attempts, status = 'DEAD', updated_at = EXCLUDED.updated_at
             RETURNING id",
            &[
                &d.subscriber,
                &d.event_seq,
                &d.event_id,
                &d.event_type,
                &d.error,
                &attempts,
                &us(d.at),
            ],
        )?
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::Internal("dead letter upsert returned no id".into()))
    }

    fn dead_letters(&mut self, q: &DeadLetterQuery) -> StoreResult<Vec<DeadLetter>> {
        let rows = self.query(
            &format!(
                "SELECT {DEAD_LETTER_COLS} FROM dead_letters
                 WHERE id > $1 AND ($2::text IS NULL OR subscriber = $2)
                   AND ($3::text IS NULL OR status = $3)
                 ORDER BY id LIMIT $4"
            ),
            &[
                &q.after_id,
                &q.subscriber,
                &q.status.map(|s| s.as_str()),
                &i64::from(q.limit),
            ],
        )?;
        rows.iter().map(|r| rows::dead_letter(r)).collect()
    }

    fn dead_letter(&mut self, id: i64) -> StoreResult<Option<DeadLetter>> {
        self.opt(
            &format!("SELECT {DEAD_LETTER_COLS} FROM dead_letters WHERE id = $1"),
            &[&id],
        )?
        .map(|r| rows::dead_letter(&r))
        .transpose()
    }

    fn update_dead_letter(
        &mut self,
        id: i64,
        status: DeadLetterStatus,
        error: Option<&str>,
        attempts: Option<u32>,
        at: Timestamp,
    ) -> StoreResult<()> {
        let attempts = attempts.map(|a| i32::try_from(a).unwrap_or(i32::MAX));
        self.exec_one(
            sql::UPDATE_DEAD_LETTER,
            &[&id, &status.as_str(), &error, &attempts, &us(at)],
            "update dead letter",
        )
    }

    fn try_lease(&mut self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        let rows = self.query(
            &format!(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, {DB_NOW_US} + $3::BIGINT * 1000)
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,
                     expires_at = EXCLUDED.expires_at
                 WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < {DB_NOW_US}
                 RETURNING holder"
            ),
            &[&name, &holder, &ttl_ms],
        )?;
        Ok(!rows.is_empty())
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> StoreResult<()> {
        self.query(sql::RELEASE_LEASE, &[&name, &holder])?;
        Ok(())
    }

    fn insert_feed_item(&mut self, f: &FeedItem) -> StoreResult<bool> {
        let rows = self.query(
            "INSERT INTO player_feed_items (feed, player_id, event_seq, event_id, event_type,
                 occurred_at, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (feed, event_id) DO NOTHING
             RETURNING id",
            &[
                &f.feed,
                &f.player_id,
                &f.event_seq,
                &f.event_id,
                &f.event_type,
                &us(f.occurred_at),
                &f.data,
            ],
        )?;
        Ok(!rows.is_empty())
    }

    fn feed_items(
        &mut self,
        feed: &str,
        player_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<FeedItem>> {
        let rows = self.query(
            sql::FEED_ITEMS,
            &[
                &feed,
                &player_id,
                &before_seq.unwrap_or(i64::MAX),
                &i64::from(limit),
            ],
        )?;
        rows.iter()
            .map(|r| {
                Ok(FeedItem {
                    feed: r.get(0),
                    player_id: r.get(1),
                    event_seq: r.get(2),
                    event_id: r.get(3),
                    event_type: r.get(4),
                    occurred_at: ts(r.get(5))?,
                    data: r.get(6),
                })
            })
            .collect()
    }

    fn insert_activity_item(&mut self, player_id: Uuid, event_seq: i64) -> StoreResult<bool> {
        let rows = self.query(
            "INSERT INTO activity_items (player_id, event_seq) VALUES ($1, $2)
             ON CONFLICT DO NOTHING RETURNING event_seq",
            &[&player_id, &event_seq],
        )?;
        Ok(!rows.is_empty())
    }

    fn insert_activity_items(&mut self, items: &[(Uuid, i64)]) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let players: Vec<Uuid> = items.iter().map(|(p, _)| *p).collect();
        let seqs: Vec<i64> = items.iter().map(|(_, s)| *s).collect();
        self.exec(
            "INSERT INTO activity_items (player_id, event_seq)
             SELECT * FROM unnest($1::uuid[], $2::bigint[])
             ON CONFLICT DO NOTHING",
            &[&players, &seqs],
        )?;
        Ok(())
    }

    fn activity_events(
        &mut self,
        player_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        let rows = self.query(
            sql::ACTIVITY_EVENTS,
            &[
                &player_id,
                &before_seq.unwrap_or(i64::MAX),
                &i64::from(limit),
            ],
        )?;
        rows.iter().map(|r| rows::event(r)).collect()
    }

    fn count_manual_rewards(
        &mut self,
        staff_id: Uuid,
        after: Timestamp,
        up_to: Timestamp,
        up_to_seq: i64,
    ) -> StoreResult<i64> {
        Ok(self
            .opt(
                sql::COUNT_MANUAL_REWARDS,
                &[&staff_id, &us(after), &us(up_to), &up_to_seq],
            )?
            .map(|r| r.get(0))
            .unwrap_or(0))
    }

    fn count_approval_requests(
        &mut self,
        staff_id: Uuid,
        after: Timestamp,
        up_to: Timestamp,
    ) -> StoreResult<i64> {
        Ok(self
            .opt(
                sql::COUNT_APPROVAL_REQUESTS,
                &[&staff_id, &us(after), &us(up_to)],
            )?
            .map(|r| r.get(0))
            .unwrap_or(0))
    }

    fn insert_approval(&mut self, a: &Approval) -> StoreResult<()> {
        self.exec_one(
            &format!(
                "INSERT INTO approvals ({APPROVAL_INSERT_COLS})
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
            ),
            &[
                &a.id,
                &a.status,
                &a.player_id,
                &a.points,
                &a.reason,
                &a.rating_slip_id,
                &a.reward_key,
                &a.requested_by,
                &us(a.requested_at),
                &us(a.expires_at),
                &a.decided_by,
                &a.decided_at.map(us),
                &a.decision_reason,
                &a.ledger_entry_id,
                &a.correlation_id,
            ],
            "insert approval",
        )
    }

    fn approval(&mut self, id: Uuid) -> StoreResult<Option<Approval>> {
        let sql = format!(
            "SELECT {APPROVAL_COLS} FROM approvals WHERE id = $1{}",
            self.lock_suffix()
        );
        self.opt(&sql, &[&id])?
            .map(|r| rows::approval(&r))
            .transpose()
    }

    fn approval_by_key(&mut self, key: &str) -> StoreResult<Option<Approval>> {
        self.opt(
            &format!("SELECT {APPROVAL_COLS} FROM approvals WHERE reward_key = $1"),
            &[&key],
        )?
        .map(|r| rows::approval(&r))
        .transpose()
    }

    fn update_approval(&mut self, a: &Approval) -> StoreResult<()> {
        self.exec_one(
            sql::UPDATE_APPROVAL,
            &[
                &a.id,
                &a.status,
                &a.decided_by,
                &a.decided_at.map(us),
                &a.decision_reason,
                &a.ledger_entry_id,
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
        let rows = self.query(
            &format!(
                "SELECT {APPROVAL_COLS} FROM approvals
                 WHERE ($1::TEXT IS NULL
                        OR ($1 = 'PENDING' AND status = 'PENDING' AND expires_at > $2)
                        OR ($1 = 'EXPIRED' AND (status = 'EXPIRED'
                                                OR (status = 'PENDING' AND expires_at <= $2)))
                        OR ($1 NOT IN ('PENDING', 'EXPIRED') AND status = $1))
                   AND ($3::BIGINT IS NULL OR seq < $3)
                 ORDER BY seq DESC LIMIT $4"
            ),
            &[&status, &us(now), &before_seq, &i64::from(limit)],
        )?;
        rows.iter().map(|r| rows::approval(r)).collect()
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
            &[
                &w.id,
                &w.url,
                &types,
                &w.description,
                &w.secret_sealed,
                &w.created_by,
                &us(w.created_at),
            ],
            "insert webhook",
        )
    }

    fn webhook(&mut self, id: Uuid) -> StoreResult<Option<Webhook>> {
        self.opt(sql::WEBHOOK, &[&id])?
            .map(|r| rows::webhook(&r))
            .transpose()
    }

    fn webhooks(&mut self) -> StoreResult<Vec<Webhook>> {
        let rows = self.query(sql::WEBHOOKS, &[])?;
        rows.iter().map(|r| rows::webhook(r)).collect()
    }

    fn delete_webhook(&mut self, id: Uuid, at: Timestamp) -> StoreResult<bool> {
        Ok(self.exec(sql::DELETE_WEBHOOK, &[&id, &us(at)])? == 1)
    }

    fn insert_webhook_delivery(&mut self, d: &WebhookDelivery) -> StoreResult<()> {
        let attempt = i32::try_from(d.attempt).unwrap_or(i32::MAX);
        let status = d.status_code.map(i32::from);
        self.exec_one(
            sql::INSERT_WEBHOOK_DELIVERY,
            &[
                &d.webhook_id,
                &d.event_seq,
                &d.event_id,
                &attempt,
                &status,
                &d.ok,
                &d.duration_ms,
                &d.error,
                &us(d.at),
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
        let rows = self.query(
            sql::WEBHOOK_DELIVERIES,
            &[
                &webhook_id,
                &before_id.unwrap_or(i64::MAX),
                &i64::from(limit),
            ],
        )?;
        rows.iter().map(|r| rows::webhook_delivery(r)).collect()
    }

    fn insert_alert(&mut self, a: &Alert) -> StoreResult<bool> {
        let rows = self.query(
            "INSERT INTO alerts (id, kind, staff_id, count, window_seconds, window_start,
                 occurred_at, trigger_event_id, event_id, correlation_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (trigger_event_id) DO NOTHING
             RETURNING seq",
            &[
                &a.id,
                &a.kind,
                &a.staff_id,
                &a.count,
                &a.window_seconds,
                &us(a.window_start),
                &us(a.occurred_at),
                &a.trigger_event_id,
                &a.event_id,
                &a.correlation_id,
                &us(a.created_at),
            ],
        )?;
        Ok(!rows.is_empty())
    }

    fn latest_alert(&mut self, kind: &str, staff_id: Uuid) -> StoreResult<Option<Alert>> {
        self.opt(
            &format!(
                "SELECT seq, {ALERT_COLS} FROM alerts WHERE kind = $1 AND staff_id = $2
                 ORDER BY occurred_at DESC, seq DESC LIMIT 1"
            ),
            &[&kind, &staff_id],
        )?
        .map(|r| rows::alert(&r).map(|(_, a)| a))
        .transpose()
    }

    fn alerts(&mut self, before_seq: Option<i64>, limit: u32) -> StoreResult<Vec<(i64, Alert)>> {
        let rows = self.query(
            &format!(
                "SELECT seq, {ALERT_COLS} FROM alerts WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
            ),
            &[&before_seq.unwrap_or(i64::MAX), &i64::from(limit)],
        )?;
        rows.iter().map(|r| rows::alert(r)).collect()
    }
}

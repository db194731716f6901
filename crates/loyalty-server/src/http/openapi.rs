//! `GET /openapi.json`: the API described as OpenAPI 3.1, generated from the
//! code that serves it.
//!
//! The paths come from the route registry ([`super::ROUTES`]), filtered the
//! way [`super::router`] registers them (test-mode routes only in test mode,
//! `/metrics` only on the main listener), so the document and the router
//! cannot disagree (a test compares them). Each operation's entry below
//! names its permission, parameters, body and success responses; its error
//! responses are derived from the error codes it can answer, each mapped to
//! its status by [`Code::status`], the same function that answers requests,
//! plus the codes every route shares (authentication, limits, storage).
//!
//! Schemas say what the server checks syntactically (types, required
//! fields, enumerations, ranges, lengths of what cannot be trimmed); rules
//! that need the data (a player exists, a slip is open, a time is not in the
//! future) are refusals documented by their error codes.

use serde_json::{Map, Value, json};

use super::ROUTES;
use crate::error::Code;

// ---------------------------------------------------------------- schema helpers

fn string() -> Value {
    json!({"type": "string"})
}

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn int() -> Value {
    json!({"type": "integer", "format": "int64"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn nullable(mut schema: Value) -> Value {
    if let Some(any) = schema.get_mut("anyOf").and_then(Value::as_array_mut) {
        any.push(json!({"type": "null"}));
        return schema;
    }
    if let Some(t) = schema.get("type").cloned() {
        schema["type"] = json!([t, "null"]);
    }
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    schema
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An exact decimal: a JSON number, or a string of digits with an optional
/// fraction ("12.50"), never a float's rounding.
fn decimal() -> Value {
    json!({"anyOf": [
        {"type": "number"},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}
    ], "description": "an exact decimal: a number or a string like \"12.50\""})
}

/// Text a person types: trimmed; the length after trimming is checked by
/// the server (`VALIDATION_ERROR`), so only emptiness is schema.
fn text(desc: &str) -> Value {
    json!({"type": "string", "minLength": 1, "description": desc})
}

fn enumeration(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// An object with `required` and optional properties; `closed` refuses
/// other properties (the server does, for these bodies).
fn object(required: &[(&str, Value)], optional: &[(&str, Value)], closed: bool) -> Value {
    let mut props = Map::new();
    for (k, v) in required {
        props.insert((*k).to_string(), v.clone());
    }
    for (k, v) in optional {
        props.insert((*k).to_string(), v.clone());
    }
    let mut o = json!({
        "type": "object",
        "properties": props,
        "required": required.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
    });
    if closed {
        o["additionalProperties"] = json!(false);
    }
    o
}

/// A request body: like [`object`], with every optional field also taking
/// `null` (the server reads `null` as absent).
fn body(required: &[(&str, Value)], optional: &[(&str, Value)], closed: bool) -> Value {
    let optional: Vec<(&str, Value)> = optional
        .iter()
        .map(|(k, v)| (*k, nullable(v.clone())))
        .collect();
    object(required, &optional, closed)
}

/// `schema` with an example value (shown on the reference page).
fn example(mut schema: Value, value: Value) -> Value {
    schema["example"] = value;
    schema
}

/// A page of `items` under `key`, with the cursor of the next page.
fn page(key: &str, item: Value) -> Value {
    object(
        &[(key, array(item)), ("next_cursor", nullable(string()))],
        &[],
        false,
    )
}

// ---------------------------------------------------------------- components

fn components() -> Value {
    let tiers = ["BRONZE", "SILVER", "GOLD", "PLATINUM"];
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let game_settings = object(
        &[
            ("house_edge", decimal()),
            ("average_rounds_per_hour", int()),
            ("points_conversion_rate", decimal()),
            ("point_multiplier", decimal()),
            ("seats_available", int()),
        ],
        &[],
        false,
    );
    json!({
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                "description": "a staff member's or player's opaque token (`loyalty staff create`, POST /v1/staff, POST /v1/players/{id}/tokens)"}
        },
        "schemas": {
            "Error": object(&[("error", object(&[
                ("code", enumeration(&codes)),
                ("message", string()),
                ("correlation_id", string()),
                ("details", json!({"type": "object"})),
            ], &[], false))], &[], false),
            "Staff": object(&[
                ("id", uuid()), ("name", string()), ("role", enumeration(&["admin", "supervisor", "pit_boss", "cashier", "auditor"])),
                ("created_at", time()),
            ], &[("disabled", boolean()), ("disabled_at", nullable(time())), ("token", nullable(string())), ("token_redacted", boolean())], false),
            "Me": object(&[("kind", enumeration(&["staff", "player"])), ("id", uuid())],
                &[("name", string()), ("role", string()), ("permissions", array(string()))], false),
            "Player": object(&[
                ("id", uuid()), ("display_name", string()), ("card_number", nullable(string())),
                ("status", enumeration(&["ACTIVE"])), ("created_at", time()),
            ], &[], false),
            "PlayerToken": object(&[("player_id", uuid()), ("token", nullable(string()))], &[("token_redacted", boolean())], false),
            "Loyalty": object(&[
                ("player_id", uuid()), ("current_balance", int()), ("escrow_balance", int()),
                ("lifetime_points", int()), ("tier", enumeration(&tiers)), ("tier_progress", int()),
                ("updated_at", nullable(time())),
            ], &[], false),
            "Table": object(&[
                ("id", uuid()), ("name", string()), ("game_type", string()),
                ("house_edge", decimal()), ("average_rounds_per_hour", int()),
                ("points_conversion_rate", decimal()), ("point_multiplier", decimal()),
                ("seats_available", int()), ("created_at", time()), ("updated_at", time()),
            ], &[], false),
            "RatingSlip": object(&[
                ("id", uuid()), ("player_id", uuid()), ("table_id", uuid()),
                ("status", enumeration(&["OPEN", "PAUSED", "CLOSED", "VOIDED"])),
                ("average_bet", decimal()), ("started_at", time()), ("ended_at", nullable(time())),
                ("accumulated_seconds", int()), ("game_settings", game_settings),
                ("loyalty_status", enumeration(&["NONE", "PENDING", "ACCRUED"])),
                ("ledger_entry_id", nullable(uuid())), ("corrections", array(json!({"type": "object"}))),
            ], &[], false),
            "LedgerEntry": object(&[
                ("id", uuid()), ("player_id", uuid()),
                ("transaction_type", enumeration(&["GAMEPLAY", "MANUAL_BONUS", "ADJUSTMENT", "GAMEPLAY_REVERSAL", "ESCROW_HOLD", "ESCROW_SETTLE", "ESCROW_REFUND"])),
                ("event_type", string()), ("points_change", int()), ("reason", nullable(string())),
                ("source", string()), ("staff_id", nullable(uuid())), ("rating_slip_id", nullable(uuid())),
                ("idempotency_key", nullable(string())), ("balance_before", int()), ("balance_after", int()),
                ("tier_before", enumeration(&tiers)), ("tier_after", enumeration(&tiers)),
                ("lifetime_after", int()), ("escrow_id", nullable(uuid())), ("correlation_id", string()),
                ("created_at", time()), ("prev_hash", string()), ("hash", string()), ("escrow_change", int()),
            ], &[("approved_by", uuid()), ("idempotent_replay", boolean())], false),
            "SlipLoyalty": {"type": "object", "description": "what the completion, recovery, void or correction did to the player's points"},
            "SlipOutcome": object(&[("rating_slip", reference("RatingSlip")), ("loyalty", reference("SlipLoyalty"))], &[], false),
            "Event": object(&[
                ("seq", int()), ("event_id", uuid()), ("event_type", string()), ("version", int()),
                ("occurred_at", time()), ("correlation_id", string()),
                ("idempotency_key", nullable(string())), ("source", string()),
                ("payload", json!({"type": "object"})),
            ], &[], false),
            "Merchant": object(&[
                ("id", uuid()), ("name", string()), ("earnings", int()), ("created_at", time()),
            ], &[("updated_at", time())], false),
            "Escrow": object(&[
                ("id", uuid()), ("player_id", uuid()), ("merchant_id", uuid()), ("amount", int()),
                ("settled_amount", int()), ("refunded_amount", int()), ("held_amount", int()),
                ("status", enumeration(&["HELD", "SETTLED", "PARTIALLY_SETTLED", "REFUNDED", "EXPIRED"])),
                ("reason", string()), ("reference", nullable(string())), ("expires_at", nullable(time())),
                ("version", int()), ("created_at", time()), ("updated_at", time()),
            ], &[("created_by", nullable(uuid()))], false),
            "Approval": object(&[
                ("id", uuid()), ("status", enumeration(&["PENDING", "APPROVED", "REJECTED", "WITHDRAWN", "EXPIRED"])),
                ("player_id", uuid()), ("points", int()), ("reason", string()),
            ], &[], false),
            "Webhook": object(&[
                ("id", uuid()), ("url", string()), ("event_types", nullable(array(string()))),
                ("description", nullable(string())), ("created_at", time()),
            ], &[], false),
            "DeadLetter": object(&[
                ("id", int()), ("subscriber", string()), ("event_seq", int()), ("event_id", uuid()),
                ("event_type", string()), ("error", string()), ("attempts", int()),
                ("status", enumeration(&["DEAD", "REPLAY_REQUESTED", "REPLAYED"])),
                ("created_at", time()), ("updated_at", time()),
            ], &[], false),
        }
    })
}

// ---------------------------------------------------------------- operations

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Access {
    /// Anyone, no token.
    Public,
    /// A staff member with one of these permissions (or the player the
    /// route names, when `player` is true).
    Staff(&'static [&'static str], bool),
}

/// One operation's description.
struct Op {
    summary: &'static str,
    tag: &'static str,
    access: Access,
    query: Vec<Value>,
    body: Option<Value>,
    idempotent: bool,
    ok: Vec<(u16, &'static str, Value)>,
    errors: Vec<Code>,
}

impl Op {
    fn new(tag: &'static str, summary: &'static str, access: Access) -> Op {
        Op {
            summary,
            tag,
            access,
            query: Vec::new(),
            body: None,
            idempotent: false,
            ok: Vec::new(),
            errors: Vec::new(),
        }
    }
    fn query(mut self, name: &str, schema: Value, required: bool, desc: &str) -> Op {
        self.query
            .push(json!({"name": name, "in": "query", "required": required,
            "schema": schema, "description": desc}));
        self
    }
    fn paged(self) -> Op {
        self.query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            false,
            "page size (default 50)",
        )
        .query(
            "cursor",
            json!({"type": "string", "minLength": 1}),
            false,
            "the previous page's next_cursor",
        )
    }
    fn body(mut self, schema: Value) -> Op {
        self.body = Some(schema);
        self
    }
    fn idempotent(mut self) -> Op {
        self.idempotent = true;
        self
    }
    fn ok(mut self, status: u16, desc: &'static str, schema: Value) -> Op {
        self.ok.push((status, desc, schema));
        self
    }
    fn errors(mut self, codes: &[Code]) -> Op {
        self.errors.extend_from_slice(codes);
        self
    }
}

const S: &[&str] = &[];
fn staff(perms: &'static [&'static str]) -> Access {
    Access::Staff(perms, false)
}
fn staff_or_player(perms: &'static [&'static str]) -> Access {
    Access::Staff(perms, true)
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// The description of `method path`, if the registry's route is described.
fn operation(method: &str, path: &str) -> Option<Op> {
    use Code::*;
    let slip_change = |reason_only: bool| {
        let mut optional = vec![];
        if !reason_only {
            optional = vec![
                ("average_bet", decimal()),
                ("started_at", time()),
                ("ended_at", time()),
            ];
        }
        body(
            &[("reason", text("why, 10-500 characters"))],
            &optional,
            true,
        )
    };
    let slip = reference("RatingSlip");
    let outcome = reference("SlipOutcome");
    let range = |op: Op| {
        op.query("from", time(), true, "start of the range (RFC 3339)")
            .query("to", time(), true, "end of the range, exclusive")
    };
    let op = match (method, path) {
        ("GET", "/healthz") => Op::new("operations", "liveness", Access::Public).ok(
            200,
            "the process is up",
            json_content(object(&[("status", string())], &[], false)),
        ),
        ("GET", "/readyz") => Op::new("operations", "readiness: storage and rate limiter reachable", Access::Public)
            .ok(200, "ready", json_content(object(&[("status", string())], &[], false))),
        ("GET", "/metrics") => Op::new("operations", "Prometheus metrics", Access::Public).ok(
            200,
            "text exposition format",
            json!({"text/plain": {"schema": string()}}),
        ),
        ("GET", "/openapi.json") => Op::new("operations", "this document", Access::Public).ok(
            200,
            "OpenAPI 3.1",
            json_content(json!({"type": "object"})),
        ),
        ("GET", "/docs") => Op::new("operations", "the API reference page (works offline)", Access::Public).ok(
            200,
            "HTML",
            json!({"text/html": {"schema": string()}}),
        ),
        ("GET", "/docs/redoc.js") => Op::new("operations", "the reference page's script (Redoc 3.0.1, vendored)", Access::Public).ok(
            200,
            "JavaScript",
            json!({"text/javascript": {"schema": string()}}),
        ),
        ("GET", "/") => Op::new("console", "redirects to the staff console", Access::Public)
            .ok(303, "to /console/", json!(null)),
        ("GET", "/console/") => Op::new("console", "the staff console", Access::Public).ok(
            200,
            "HTML",
            json!({"text/html": {"schema": string()}}),
        ),
        ("GET", "/console/{file}") => Op::new("console", "a console asset", Access::Public)
            .ok(200, "the file", json!({"application/octet-stream": {"schema": string()}}))
            .errors(&[NotFound]),
        ("POST", "/v1/staff") => Op::new("staff", "create a staff member; the token is shown once", staff(&["staff:admin"]))
            .body(example(body(&[("name", text("1-200 characters")), ("role", enumeration(&["admin", "supervisor", "pit_boss", "cashier", "auditor"]))], &[], false), json!({"name": "Dana Floor", "role": "pit_boss"})))
            .idempotent()
            .ok(201, "created, with its first token", json_content(reference("Staff"))),
        ("POST", "/v1/staff/{id}/disable") => Op::new("staff", "disable a staff member and revoke their tokens", staff(&["staff:admin"]))
            .ok(200, "the staff member, disabled", json_content(reference("Staff"))),
        ("GET", "/v1/me") => Op::new("staff", "who the token belongs to", staff_or_player(S))
            .ok(200, "the caller", json_content(reference("Me"))),
        ("DELETE", "/v1/me/token") => Op::new("staff", "revoke the caller's own token", staff_or_player(S))
            .ok(204, "revoked", json!(null)),
        ("POST", "/v1/players") => Op::new("players", "create a player and their account", staff(&["players:write"]))
            .body(example(body(&[("display_name", text("1-200 characters"))], &[("card_number", text("1-64 characters, unique"))], false), json!({"display_name": "Ann Lee", "card_number": "C-1001"})))
            .idempotent()
            .ok(201, "created", json_content(reference("Player")))
            .errors(&[Conflict]),
        ("GET", "/v1/players") => Op::new("players", "search players by card-number prefix or name", staff(&["players:read"]))
            .query("q", string(), false, "card number prefix or name substring, case-insensitive")
            .paged()
            .ok(200, "newest first", json_content(page("players", reference("Player")))),
        ("GET", "/v1/players/{id}") => Op::new("players", "a player", staff_or_player(&["players:read"]))
            .ok(200, "the player", json_content(reference("Player"))),
        ("POST", "/v1/players/{id}/tokens") => Op::new("players", "issue a player's read-only token (shown once)", staff(&["players:write"]))
            .idempotent()
            .ok(201, "the token", json_content(reference("PlayerToken"))),
        ("DELETE", "/v1/players/{id}/tokens") => Op::new("players", "revoke every token of a player", staff(&["players:write"]))
            .ok(204, "revoked", json!(null)),
        ("GET", "/v1/players/{id}/loyalty") => Op::new("ledger", "a player's balances and tier", staff_or_player(&["players:read"]))
            .query("as_of", time(), false, "the balances as they were at this instant")
            .ok(200, "the account", json_content(reference("Loyalty"))),
        ("GET", "/v1/players/{id}/ledger") => Op::new("ledger", "a player's ledger, newest first", staff_or_player(&["players:read"]))
            .paged()
            .query("from", time(), false, "entries at or after")
            .query("to", time(), false, "entries before")
            .query("transaction_type", enumeration(&["GAMEPLAY", "MANUAL_BONUS", "ADJUSTMENT", "GAMEPLAY_REVERSAL", "ESCROW_HOLD", "ESCROW_SETTLE", "ESCROW_REFUND"]), false, "only this kind")
            .ok(200, "a page of entries", json_content(page("entries", reference("LedgerEntry")))),
        ("GET", "/v1/players/{id}/notifications") => Op::new("players", "a player's tier notifications", staff_or_player(&["players:read"]))
            .paged()
            .ok(200, "newest first", json_content(page("notifications", json!({"type": "object"})))),
        ("GET", "/v1/players/{id}/activity") => Op::new("players", "a player's activity feed", staff_or_player(&["players:read"]))
            .paged()
            .ok(200, "newest first", json_content(page("activity", json!({"type": "object"})))),
        ("GET", "/v1/players/{id}/escrows") => Op::new("wallet", "a player's escrows, newest first", staff_or_player(&["wallet:escrow", "loyalty:view_all", "audit:read"]))
            .paged()
            .query("status", enumeration(&["HELD", "SETTLED", "PARTIALLY_SETTLED", "REFUNDED", "EXPIRED"]), false, "only this state")
            .ok(200, "a page", json_content(page("escrows", reference("Escrow")))),
        ("POST", "/v1/tables") => Op::new("tables", "create a table", staff(&["tables:write"]))
            .body(example(body(&[
                ("name", text("1-200 characters")), ("game_type", text("1-200 characters")),
                ("house_edge", decimal()),
                ("average_rounds_per_hour", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
            ], &[
                ("points_conversion_rate", decimal()), ("point_multiplier", decimal()),
                ("seats_available", json!({"type": "integer", "minimum": 0, "maximum": 20})),
            ], false), json!({"name": "BJ-7", "game_type": "blackjack", "house_edge": "2.7", "average_rounds_per_hour": 60})))
            .idempotent()
            .ok(201, "created", json_content(reference("Table"))),
        ("GET", "/v1/tables") => Op::new("tables", "every table", staff(&["players:read"]))
            .paged()
            .ok(200, "a page", json_content(page("tables", reference("Table")))),
        ("GET", "/v1/tables/{id}") => Op::new("tables", "a table", staff(&["players:read"]))
            .ok(200, "the table", json_content(reference("Table"))),
        ("PATCH", "/v1/tables/{id}") => Op::new("tables", "change a table's settings; open slips keep their snapshot", staff(&["tables:write"]))
            .body(body(&[], &[
                ("name", text("1-200 characters")), ("game_type", text("1-200 characters")),
                ("house_edge", decimal()),
                ("average_rounds_per_hour", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
                ("points_conversion_rate", decimal()), ("point_multiplier", decimal()),
                ("seats_available", json!({"type": "integer", "minimum": 0, "maximum": 20})),
            ], false))
            .ok(200, "the table", json_content(reference("Table"))),
        ("POST", "/v1/rating-slips") => Op::new("rating slips", "open a rating slip", staff(&["ratingslip:write"]))
            .body(example(body(&[("player_id", uuid()), ("table_id", uuid()), ("average_bet", decimal())], &[
                ("seat_number", json!({"type": "integer", "minimum": 1, "maximum": 20})),
                ("started_at", time()),
            ], false), json!({"player_id": "01a200af-02ec-7531-aa24-a4edc6e86436", "table_id": "01a200af-03a1-754b-ba7e-6aeb36c7ac41", "average_bet": "25.00", "seat_number": 3})))
            .idempotent()
            .ok(201, "opened", json_content(slip.clone()))
            .errors(&[NotFound]),
        ("GET", "/v1/rating-slips") => Op::new("rating slips", "list rating slips", staff(&["players:read"]))
            .query("status", enumeration(&["OPEN", "PAUSED", "CLOSED", "VOIDED"]), false, "only this state")
            .query("table_id", uuid(), false, "only at this table")
            .query("player_id", uuid(), false, "only this player's")
            .paged()
            .ok(200, "a page", json_content(page("rating_slips", slip.clone()))),
        ("GET", "/v1/rating-slips/{id}") => Op::new("rating slips", "a rating slip", staff(&["players:read"]))
            .ok(200, "the slip", json_content(slip.clone())),
        ("PATCH", "/v1/rating-slips/{id}") => Op::new("rating slips", "change the average bet of an open slip", staff(&["ratingslip:write"]))
            .body(body(&[("average_bet", decimal())], &[], false))
            .idempotent()
            .ok(200, "the slip", json_content(slip.clone()))
            .errors(&[SlipNotOpen]),
        ("POST", "/v1/rating-slips/{id}/pause") | ("POST", "/v1/rating-slips/{id}/resume") => {
            Op::new("rating slips", "pause or resume an open slip", staff(&["ratingslip:write"]))
                .idempotent()
                .ok(200, "the slip", json_content(slip.clone()))
                .errors(&[SlipNotOpen, Conflict])
        }
        ("POST", "/v1/rating-slips/{id}/complete") => Op::new("rating slips", "close a slip and accrue its points", staff(&["ratingslip:write"]))
            .body(body(&[], &[("ended_at", time())], false))
            .idempotent()
            .ok(200, "closed and accrued", json_content(outcome.clone()))
            .ok(202, "closed; the accrual is pending (PARTIAL_COMPLETION)", json_content(json!({"type": "object", "required": ["error", "rating_slip"]})))
            .errors(&[SlipNotOpen, PointsOutOfRange]),
        ("POST", "/v1/rating-slips/{id}/recover-loyalty") => Op::new("rating slips", "retry a pending accrual now", staff(&["ratingslip:write"]))
            .idempotent()
            .ok(200, "accrued", json_content(outcome.clone()))
            .ok(202, "still pending (PARTIAL_COMPLETION)", json_content(json!({"type": "object", "required": ["error", "rating_slip"]})))
            .errors(&[SlipNotClosed, PointsOutOfRange]),
        ("POST", "/v1/rating-slips/{id}/void") => Op::new("rating slips", "void a closed slip, reversing its points", staff(&["loyalty:adjust"]))
            .body(slip_change(true))
            .idempotent()
            .ok(200, "voided", json_content(outcome.clone()))
            .errors(&[SlipNotClosed, Conflict, InsufficientBalance, PointsOutOfRange]),
        ("POST", "/v1/rating-slips/{id}/correct") => Op::new("rating slips", "correct a closed slip's bet or times", staff(&["loyalty:adjust"]))
            .body(slip_change(false))
            .idempotent()
            .ok(200, "corrected", json_content(outcome.clone()))
            .errors(&[SlipNotClosed, Conflict, InsufficientBalance, PointsOutOfRange]),
        ("GET", "/v1/rating-slips/{id}/preview") => Op::new("rating slips", "what completing now would accrue (writes nothing)", staff(&["players:read"]))
            .ok(200, "the computation", json_content(object(&[("points", int()), ("theo", decimal()), ("rounds", int()), ("seconds_played", int()), ("tier_multiplier", decimal()), ("bonuses", array(json!({"type": "object"})))], &[], false)))
            .errors(&[SlipNotOpen]),
        ("POST", "/v1/loyalty/manual-rewards") => Op::new("ledger", "grant a manual reward or adjustment", staff(&["loyalty:award"]))
            .body(example(body(&[
                ("player_id", uuid()),
                ("points", json!({"type": "integer", "not": {"const": 0}, "description": "signed; |points| at most 10,000 (REWARD_EXCEEDS_LIMIT); negative needs loyalty:adjust"})),
                ("reason", text("10-500 characters")),
                ("staff_id", uuid()),
            ], &[
                ("rating_slip_id", uuid()),
                ("reward_id", json!({"type": "string", "pattern": "^[!-~]{1,128}$"})),
            ], false), json!({"player_id": "01a200af-02ec-7531-aa24-a4edc6e86436", "points": 500, "reason": "birthday bonus at the cage", "staff_id": "01a200af-0000-7000-8000-000000000001"})))
            .idempotent()
            .ok(201, "written", json_content(reference("LedgerEntry")))
            .ok(200, "a replay of the same reward", json_content(reference("LedgerEntry")))
            .ok(202, "waits for a second staff member (dual control)", json_content(object(&[("approval", reference("Approval")), ("idempotent_replay", boolean())], &[], false)))
            .errors(&[NotFound, InvalidStaffId, RewardExceedsLimit, InsufficientBalance, PointsOutOfRange, RateLimitExceeded, RateLimitUnavailable]),
        ("GET", "/v1/ledger") => Op::new("audit", "search the ledger", staff(&["loyalty:view_all"]))
            .paged()
            .query("correlation_id", json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}), false, "entries of this request")
            .query("staff_id", uuid(), false, "entries by this staff member")
            .query("player_id", uuid(), false, "entries of this player")
            .query("from", time(), false, "entries at or after")
            .query("to", time(), false, "entries before")
            .query("transaction_type", enumeration(&["GAMEPLAY", "MANUAL_BONUS", "ADJUSTMENT", "GAMEPLAY_REVERSAL", "ESCROW_HOLD", "ESCROW_SETTLE", "ESCROW_REFUND"]), false, "only this kind")
            .ok(200, "a page", json_content(page("entries", reference("LedgerEntry")))),
        ("GET", "/v1/ledger/checkpoint") => Op::new("audit", "a digest over every player's chain head", staff(&["audit:read"]))
            .query("heads", boolean(), false, "also list each player's head")
            .ok(200, "the checkpoint", json_content(object(&[("at", time()), ("seq", int()), ("players", int()), ("root", string())], &[], false))),
        ("GET", "/v1/events") => Op::new("events", "the outbox in sequence order", staff(&["audit:read"]))
            .query("after", json!({"type": "integer", "minimum": 0}), false, "sequence, exclusive")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), false, "default 100")
            .query("event_type", json!({"type": "string", "pattern": "^[A-Z_]{1,64}$"}), false, "only this type")
            .ok(200, "events", json_content(object(&[("events", array(reference("Event")))], &[], false))),
        ("GET", "/v1/events/stream") => Op::new("events", "server-sent events; resume with Last-Event-ID", staff(&["audit:read"]))
            .query("after", json!({"type": "integer", "minimum": 0}), false, "start after this sequence (or Last-Event-ID)")
            .query("follow", boolean(), false, "false: send the backlog and end (default true: keep streaming)")
            .query("event_type", json!({"type": "string", "pattern": "^[A-Z_]{1,64}$"}), false, "only this type")
            .ok(200, "an event stream", json!({"text/event-stream": {"schema": string()}})),
        ("GET", "/v1/dead-letters") => Op::new("events", "events a subscriber could not handle", staff(&["audit:read"]))
            .query("subscriber", json!({"type": "string", "maxLength": 64}), false, "only this subscriber's")
            .query("status", enumeration(&["DEAD", "REPLAY_REQUESTED", "REPLAYED"]), false, "only this state")
            .query("after", json!({"type": "integer", "minimum": 0}), false, "id, exclusive")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), false, "default 50")
            .ok(200, "dead letters", json_content(object(&[("dead_letters", array(reference("DeadLetter"))), ("next_after", nullable(int()))], &[], false))),
        ("POST", "/v1/dead-letters/{id}/replay") => Op::new("events", "deliver a dead letter again", staff(&["audit:read"]))
            .idempotent()
            .ok(202, "replay requested", json_content(reference("DeadLetter"))),
        ("GET", "/v1/alerts") => Op::new("audit", "raised alerts", staff(&["audit:read"]))
            .paged()
            .ok(200, "newest first", json_content(page("alerts", json!({"type": "object"})))),
        ("GET", "/v1/subscribers") => Op::new("events", "each subscriber's position against the outbox head", staff(&["audit:read"]))
            .ok(200, "progress", json_content(object(&[("outbox_head", int()), ("subscribers", array(json!({"type": "object"})))], &[], false))),
        ("POST", "/v1/admin/verify") => Op::new("audit", "check every account against its ledger", staff(&["audit:read"]))
            .ok(200, "the findings", json_content(object(&[("accounts_checked", int()), ("drift", array(json!({"type": "object"}))), ("drift_count", int()), ("ok", boolean())], &[], false))),
        ("GET", "/v1/exports/ledger") => Op::new("audit", "the ledger as CSV or JSON lines, streamed", staff(&["audit:read"]))
            .query("from", time(), false, "entries at or after")
            .query("to", time(), false, "entries before")
            .query("format", enumeration(&["jsonl", "ndjson", "csv"]), false, "default jsonl")
            .ok(200, "the entries", json!({"application/x-ndjson": {"schema": string()}, "text/csv": {"schema": string()}})),
        ("GET", "/v1/reports/manual-rewards") => range(Op::new("audit", "manual rewards per staff member per hour or day", staff(&["audit:read"])))
            .query("bucket", enumeration(&["hour", "day"]), false, "default hour")
            .ok(200, "the report", json_content(object(&[("buckets", array(json!({"type": "object"})))], &[], false))),
        ("GET", "/v1/reports/comps") => Op::new("audit", "comps at or above a threshold (25 CFR 542.17)", staff(&["audit:read"]))
            .query("from", string(), true, "RFC 3339 instant or YYYY-MM-DD gaming day")
            .query("to", string(), true, "RFC 3339 instant or YYYY-MM-DD gaming day, exclusive")
            .query("threshold", json!({"type": "integer", "minimum": 1}), false, "points, default 1")
            .query("format", enumeration(&["json", "csv"]), false, "default json")
            .ok(200, "the comps", json!({"application/json": {"schema": object(&[("comps", array(json!({"type": "object"})))], &[], false)}, "text/csv": {"schema": string()}})),
        ("GET", "/v1/reports/staff-activity") => Op::new("audit", "what each staff member did in a range", staff(&["audit:read"]))
            .query("from", string(), true, "RFC 3339 instant or YYYY-MM-DD gaming day")
            .query("to", string(), true, "RFC 3339 instant or YYYY-MM-DD gaming day, exclusive")
            .query("format", enumeration(&["json", "csv"]), false, "default json")
            .ok(200, "the report", json!({"application/json": {"schema": object(&[("staff", array(json!({"type": "object"})))], &[], false)}, "text/csv": {"schema": string()}})),
        ("GET", "/v1/approvals") => Op::new("approvals", "dual-control requests", staff(&["loyalty:adjust", "audit:read"]))
            .query("status", enumeration(&["PENDING", "APPROVED", "REJECTED", "WITHDRAWN", "EXPIRED"]), false, "only this state")
            .paged()
            .ok(200, "a page", json_content(page("approvals", reference("Approval")))),
        ("POST", "/v1/approvals/{id}/approve") => Op::new("approvals", "approve another staff member's request", staff(&["loyalty:adjust"]))
            .idempotent()
            .ok(200, "approved and written, or the same decision again", json_content(object(&[("approval", reference("Approval"))], &[("ledger_entry", reference("LedgerEntry"))], false)))
            .errors(&[SelfApproval, ApprovalNotPending, InsufficientBalance, PointsOutOfRange]),
        ("POST", "/v1/approvals/{id}/reject") => Op::new("approvals", "reject a request (its requester: withdraw it)", staff(&["loyalty:adjust"]))
            .body(body(&[("reason", text("10-500 characters"))], &[], true))
            .idempotent()
            .ok(200, "rejected, or the same decision again", json_content(object(&[("approval", reference("Approval"))], &[], false)))
            .errors(&[ApprovalNotPending]),
        ("POST", "/v1/merchants") => Op::new("wallet", "create a merchant (outlet)", staff(&["wallet:escrow"]))
            .body(example(body(&[("name", text("1-200 characters"))], &[], false), json!({"name": "Steakhouse"})))
            .idempotent()
            .ok(201, "created", json_content(reference("Merchant"))),
        ("GET", "/v1/merchants") => Op::new("wallet", "every merchant", staff(&["wallet:escrow", "loyalty:view_all", "audit:read"]))
            .paged()
            .ok(200, "a page", json_content(page("merchants", reference("Merchant")))),
        ("GET", "/v1/merchants/{id}") => Op::new("wallet", "a merchant", staff(&["wallet:escrow", "loyalty:view_all", "audit:read"]))
            .ok(200, "the merchant", json_content(reference("Merchant"))),
        ("POST", "/v1/escrows") => Op::new("wallet", "hold a player's points for a merchant", staff(&["wallet:escrow"]))
            .body(example(body(&[
                ("player_id", uuid()), ("merchant_id", uuid()),
                ("amount", json!({"type": "integer", "minimum": 1, "maximum": 1_000_000})),
                ("reason", text("1-500 characters")),
            ], &[("reference", text("1-200 characters")), ("expires_at", time())], false), json!({"player_id": "01a200af-02ec-7531-aa24-a4edc6e86436", "merchant_id": "01a200af-0000-7000-8000-0000000000aa", "amount": 1200, "reason": "steakhouse dinner", "reference": "CHK-4471"})))
            .idempotent()
            .ok(201, "held", json_content(reference("Escrow")))
            .errors(&[NotFound, InsufficientBalance, PointsOutOfRange]),
        ("GET", "/v1/escrows/{id}") => Op::new("wallet", "an escrow", staff_or_player(&["wallet:escrow", "loyalty:view_all", "audit:read"]))
            .ok(200, "the escrow", json_content(reference("Escrow"))),
        ("POST", "/v1/escrows/{id}/settle") => Op::new("wallet", "capture held points to the merchant", staff(&["wallet:escrow"]))
            .body(body(&[], &[
                ("amount", json!({"type": "integer", "minimum": 1})),
                ("final", boolean()),
                ("expected_version", int()),
            ], false))
            .idempotent()
            .ok(200, "the escrow", json_content(reference("Escrow")))
            .errors(&[Conflict, EscrowNotHeld, EscrowAmountExceeded, PointsOutOfRange]),
        ("POST", "/v1/escrows/{id}/refund") => Op::new("wallet", "return held points to the player", staff(&["wallet:escrow"]))
            .body(body(&[], &[("expected_version", int())], false))
            .idempotent()
            .ok(200, "the escrow", json_content(reference("Escrow")))
            .errors(&[Conflict, EscrowNotHeld, PointsOutOfRange]),
        ("POST", "/v1/webhooks") => Op::new("webhooks", "register an endpoint; its secret is shown once", staff(&["staff:admin"]))
            .body(example(body(&[("url", json!({"type": "string", "minLength": 1, "maxLength": 2000, "description": "http(s) on a host --webhook-allow-hosts allows"}))], &[
                ("event_types", json!({"type": "array", "minItems": 1, "items": {"type": "string"}, "description": "the types it receives (default every type)"})),
                ("description", text("1-500 characters")),
            ], true), json!({"url": "https://pos.example.com/loyalty-events", "event_types": ["ESCROW_HELD", "ESCROW_SETTLED"], "description": "hotel point of sale"})))
            .idempotent()
            .ok(201, "registered", json_content(object(&[("id", uuid()), ("url", string()), ("secret", nullable(string())), ("created_at", time())], &[("event_types", nullable(array(string()))), ("description", nullable(string())), ("secret_redacted", boolean())], false)))
            .errors(&[Conflict]),
        ("GET", "/v1/webhooks") => Op::new("webhooks", "the live endpoints (never their secrets)", staff(&["staff:admin"]))
            .ok(200, "endpoints", json_content(object(&[("webhooks", array(reference("Webhook")))], &[], false))),
        ("GET", "/v1/webhooks/{id}") => Op::new("webhooks", "an endpoint", staff(&["staff:admin"]))
            .ok(200, "the endpoint", json_content(reference("Webhook"))),
        ("DELETE", "/v1/webhooks/{id}") => Op::new("webhooks", "delete an endpoint; its deliveries stop", staff(&["staff:admin"]))
            .ok(204, "deleted", json!(null)),
        ("GET", "/v1/webhooks/{id}/deliveries") => Op::new("webhooks", "every delivery attempt to an endpoint, newest first", staff(&["staff:admin"]))
            .paged()
            .ok(200, "attempts", json_content(page("deliveries", object(&[
                ("id", int()), ("event_seq", int()), ("event_id", uuid()), ("attempt", int()),
                ("status_code", nullable(int())), ("ok", boolean()), ("duration_ms", int()),
                ("error", nullable(string())), ("at", time()),
            ], &[], false)))),
        ("PUT", "/v1/test/clock") => Op::new("test mode", "set the server clock (test mode only)", staff(&["staff:admin"]))
            .body(body(&[("now", time())], &[], false))
            .ok(200, "the clock", json_content(object(&[("now", time())], &[], false))),
        ("PUT", "/v1/test/faults") => Op::new("test mode", "inject faults (test mode only)", staff(&["staff:admin"]))
            .body(body(&[], &[("loyalty_accrual", enumeration(&["fail", "ok"])), ("failing_subscribers", array(string()))], false))
            .ok(200, "the faults", json_content(json!({"type": "object"}))),
        _ => return None,
    };
    Some(op)
}

/// The status and description of each error code an operation may answer.
fn error_responses(method: &str, path: &str, op: &Op) -> Vec<(u16, Vec<Code>)> {
    use Code::*;
    let mut codes: Vec<Code> = op.errors.clone();
    codes.extend([HeadersTooLarge, Unavailable, Internal]);
    if let Access::Staff(perms, player) = op.access {
        codes.extend([Unauthorized, RateLimitExceeded]);
        if !perms.is_empty() || player {
            codes.push(Forbidden);
        }
    }
    if path.contains('{') {
        codes.push(NotFound);
    }
    if !op.query.is_empty() || op.body.is_some() || path.contains('{') {
        codes.push(ValidationError);
    }
    if op.body.is_some() || (method == "POST" && path.starts_with("/v1/")) {
        codes.extend([
            ValidationError,
            RequestTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
        ]);
    }
    if op.idempotent {
        codes.extend([IdempotencyKeyInUse, IdempotencyKeyReused]);
    }
    let mut by_status: Vec<(u16, Vec<Code>)> = Vec::new();
    for c in codes {
        let s = c.status().as_u16();
        match by_status.iter_mut().find(|(st, _)| *st == s) {
            Some((_, list)) if !list.contains(&c) => list.push(c),
            Some(_) => {}
            None => by_status.push((s, vec![c])),
        }
    }
    by_status.sort_by_key(|(s, _)| *s);
    by_status
}

fn build_operation(method: &str, path: &str, op: Op) -> Value {
    let mut params: Vec<Value> = Vec::new();
    for seg in path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let schema = if name == "id" && path.starts_with("/v1/dead-letters") {
                json!({"type": "integer", "format": "int64"})
            } else if name == "id" {
                uuid()
            } else {
                string()
            };
            params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
    }
    params.extend(op.query.iter().cloned());
    if op.idempotent {
        params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "schema": {"type": "string", "pattern": "^[!-~]{1,128}$"},
            "description": "repeats of the request with this key answer the first response (Idempotent-Replayed: true)"}));
    }
    let mut responses = Map::new();
    for (status, desc, content) in &op.ok {
        let mut r = json!({"description": desc});
        if !content.is_null() {
            r["content"] = content.clone();
        }
        if *status == 303 {
            r["headers"] = json!({"Location": {"schema": string()}});
        }
        responses.insert(status.to_string(), r);
    }
    for (status, codes) in error_responses(method, path, &op) {
        if op.ok.iter().any(|(s, _, _)| *s == status) {
            continue;
        }
        let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("error: {}", names.join(", ")),
                "content": {"application/json": {"schema": {"allOf": [
                    reference("Error"),
                    {"properties": {"error": {"properties": {"code": {"enum": names}}}}}
                ]}}}
            }),
        );
    }
    let security = match op.access {
        Access::Public => json!([]),
        Access::Staff(..) => json!([{"bearer": []}]),
    };
    let who = match op.access {
        Access::Public => "anyone".to_string(),
        Access::Staff(perms, player) => {
            let mut w = if perms.is_empty() {
                "any staff member".to_string()
            } else {
                format!("staff with {}", perms.join(" or "))
            };
            if player {
                w.push_str(", or the player it names");
            }
            w
        }
    };
    let mut o = json!({
        "operationId": operation_id(method, path),
        "summary": op.summary,
        "description": format!("Who may call: {who}."),
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
        "security": security,
    });
    if let Some(body) = op.body {
        let required = !matches!(
            path,
            "/v1/rating-slips/{id}/complete"
                | "/v1/escrows/{id}/settle"
                | "/v1/escrows/{id}/refund"
        );
        o["requestBody"] = json!({"required": required, "content": json_content(body)});
    }
    o
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        let seg = seg.trim_start_matches('{').trim_end_matches('}');
        id.extend(
            seg.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    if path == "/" {
        id.push_str("_root");
    }
    id
}

/// The OpenAPI document for a server with these settings: every route the
/// router registers, and nothing else.
pub fn document(test_mode: bool, metrics_on_main: bool) -> Value {
    let mut paths = Map::new();
    for &(method, path) in ROUTES {
        if !super::registered(method, path, test_mode, metrics_on_main) {
            continue;
        }
        let Some(op) = operation(method, path) else {
            // Caught by the test that compares the document with ROUTES.
            continue;
        };
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method.to_lowercase()] = build_operation(method, path, op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Loyalty Ledger",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Casino table play to loyalty points, every point accounted for. Errors use one envelope `{\"error\": {code, message, correlation_id, details}}`; the codes and their precedence are in docs/errors.md. Writes accept an `Idempotency-Key`."
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "staff"}, {"name": "players"}, {"name": "tables"}, {"name": "rating slips"},
            {"name": "ledger"}, {"name": "wallet"}, {"name": "approvals"}, {"name": "audit"},
            {"name": "events"}, {"name": "webhooks"}, {"name": "operations"}, {"name": "console"}, {"name": "test mode"}
        ],
        "paths": paths,
        "components": components(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_route_is_described_and_nothing_else() {
        for (test_mode, metrics) in [(false, true), (true, true), (true, false)] {
            let doc = document(test_mode, metrics);
            let mut documented: Vec<(String, String)> = Vec::new();
            for (path, item) in doc["paths"].as_object().into_iter().flatten() {
                for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                    documented.push((method.to_uppercase(), path.clone()));
                }
            }
            documented.sort();
            let mut registered: Vec<(String, String)> = ROUTES
                .iter()
                .filter(|(m, p)| super::super::registered(m, p, test_mode, metrics))
                .map(|(m, p)| (m.to_string(), p.to_string()))
                .collect();
            registered.sort();
            assert_eq!(
                documented, registered,
                "test mode {test_mode}, metrics {metrics}"
            );
        }
    }

    #[test]
    fn every_error_status_matches_its_codes() {
        let doc = document(true, true);
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for (status, resp) in op["responses"].as_object().into_iter().flatten() {
                    let Some(names) = resp["content"]["application/json"]["schema"]["allOf"][1]
                        ["properties"]["error"]["properties"]["code"]["enum"]
                        .as_array()
                    else {
                        continue;
                    };
                    for n in names {
                        let code = Code::ALL
                            .iter()
                            .find(|c| Some(c.as_str()) == n.as_str())
                            .unwrap_or_else(|| panic!("{method} {path}: unknown code {n}"));
                        assert_eq!(
                            code.status().as_u16().to_string(),
                            *status,
                            "{method} {path} {n}"
                        );
                    }
                }
            }
        }
    }
}

//! Auditors' reports (DESIGN §9): comps at or above a threshold (the shape
//! of 25 CFR 542.17's comp report) and staff activity, as JSON or CSV, over
//! a range given as instants or as gaming days in the gaming day's time
//! zone. `audit:read`.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use loyalty_core::Permission;
use loyalty_store::ops::reports::{self, Comp, StaffActivity};
use loyalty_store::{Store, StoreError};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::export::csv_text;
use crate::extract::ApiQuery;

/// The longest period a report covers.
pub const REPORT_PERIOD_DAYS_MAX: i64 = 400;
/// Comps read per page while streaming.
const COMPS_PAGE: u32 = 1_000;

#[derive(Deserialize)]
pub(super) struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    threshold: Option<i64>,
    format: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

fn format(v: Option<&str>) -> ApiResult<Format> {
    match v.unwrap_or("json") {
        "json" => Ok(Format::Json),
        "csv" => Ok(Format::Csv),
        _ => Err(ApiError::validation("format", "must be json or csv")),
    }
}

/// An instant, or a date meaning the start of that gaming day.
fn bound(st: &AppState, field: &str, v: Option<&str>) -> ApiResult<Timestamp> {
    let v = v.ok_or_else(|| {
        ApiError::validation(
            field,
            "is required (RFC 3339 instant or YYYY-MM-DD gaming day)",
        )
    })?;
    if let Ok(t) = v.parse::<Timestamp>() {
        return Ok(t);
    }
    let date: jiff::civil::Date = v.parse().map_err(|_| {
        ApiError::validation(
            field,
            "must be an RFC 3339 instant or a YYYY-MM-DD gaming day",
        )
    })?;
    let s = &st.settings;
    date.at(
        i8::try_from(s.gaming_day_start_hour).unwrap_or(0),
        i8::try_from(s.gaming_day_start_minute).unwrap_or(0),
        0,
        0,
    )
    .to_zoned(s.gaming_day_tz.clone())
    .map(|z| z.timestamp())
    .map_err(|_| ApiError::validation(field, "is not a day in the gaming day's time zone"))
}

fn period(st: &AppState, p: &ReportParams) -> ApiResult<(Timestamp, Timestamp)> {
    let from = bound(st, "from", p.from.as_deref())?;
    let to = bound(st, "to", p.to.as_deref())?;
    if to <= from {
        return Err(ApiError::validation("to", "must be after from"));
    }
    if to.duration_since(from) > SignedDuration::from_hours(24 * REPORT_PERIOD_DAYS_MAX) {
        return Err(ApiError::validation(
            "to",
            format!("a report covers at most {REPORT_PERIOD_DAYS_MAX} days"),
        ));
    }
    Ok((from, to))
}

fn typed(body: Body, f: Format, name: &str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    match f {
        Format::Json => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Format::Csv => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
        }
    }
    resp
}

const COMP_COLUMNS: [&str; 12] = [
    "gaming_day",
    "created_at",
    "player_id",
    "player_name",
    "card_number",
    "issuer_id",
    "issuer_name",
    "type",
    "points",
    "reason",
    "ledger_entry_id",
    "local_time",
];

fn comp_json(st: &AppState, c: &Comp) -> serde_json::Value {
    let mut v = json!(c);
    v["gaming_day"] = json!(st.gaming_day(c.created_at).to_string());
    v["local_time"] = json!(
        c.created_at
            .to_zoned(st.settings.gaming_day_tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    );
    v
}

fn comp_csv(st: &AppState, c: &Comp, out: &mut String) {
    let v = comp_json(st, c);
    for (i, col) in COMP_COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match &v[*col] {
            serde_json::Value::Null => {}
            serde_json::Value::Number(n) => out.push_str(&n.to_string()),
            serde_json::Value::String(s) => csv_text(out, s),
            other => csv_text(out, &other.to_string()),
        }
    }
    out.push_str("\r\n");
}

struct CompCursor {
    st: AppState,
    store: Store,
    format: Format,
    from: Timestamp,
    to: Timestamp,
    threshold: i64,
    after: i64,
    first: bool,
    started: bool,
    done: bool,
}

/// `GET /v1/reports/comps?from&to&threshold&format`: every comp of at least
/// `threshold` points (default 1) in `[from, to)`, oldest first, streamed
/// page by page.
pub(super) async fn comps(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let (from, to) = period(&st, &p)?;
    let f = format(p.format.as_deref())?;
    let threshold = p.threshold.unwrap_or(1);
    if !(1..=loyalty_core::limits::REWARD_POINTS_MAX * 1_000).contains(&threshold) {
        return Err(ApiError::validation(
            "threshold",
            "must be a whole number of points, at least 1",
        ));
    }
    let cursor = CompCursor {
        store: st.store.clone(),
        st,
        format: f,
        from,
        to,
        threshold,
        after: 0,
        first: true,
        started: false,
        done: false,
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        if !c.started {
            c.started = true;
            let head = match c.format {
                Format::Csv => format!("{}\r\n", COMP_COLUMNS.join(",")),
                Format::Json => format!(
                    "{{\"from\":{},\"to\":{},\"threshold\":{},\"time_zone\":{},\"comps\":[",
                    json!(c.from),
                    json!(c.to),
                    c.threshold,
                    json!(c.st.settings.gaming_day_tz.iana_name().unwrap_or("UTC"))
                ),
            };
            return Some((Ok::<_, std::io::Error>(Bytes::from(head)), c));
        }
        if c.done {
            return None;
        }
        let (from, to, threshold, after) = (c.from, c.to, c.threshold, c.after);
        let page = c
            .store
            .read(move |tx| reports::comps(tx, from, to, threshold, after, COMPS_PAGE))
            .await;
        match page {
            Ok(page) => {
                c.done = page.len() < COMPS_PAGE as usize;
                let mut out = String::new();
                for comp in &page {
                    match c.format {
                        Format::Csv => comp_csv(&c.st, comp, &mut out),
                        Format::Json => {
                            if !c.first {
                                out.push(',');
                            }
                            c.first = false;
                            out.push_str(&comp_json(&c.st, comp).to_string());
                        }
                    }
                }
                if let Some(last) = page.last() {
                    c.after = last.seq;
                }
                if c.done && c.format == Format::Json {
                    out.push_str("]}");
                }
                Some((Ok(Bytes::from(out)), c))
            }
            Err(e) => {
                tracing::error!(error = %e, "comps report failed mid-stream");
                c.done = true;
                Some((Err(std::io::Error::other(e.to_string())), c))
            }
        }
    });
    Ok(typed(Body::from_stream(stream), f, "comps"))
}

const ACTIVITY_COLUMNS: [&str; 16] = [
    "staff_id",
    "name",
    "role",
    "rewards_count",
    "rewards_points",
    "adjustments_count",
    "adjustments_points",
    "voids",
    "corrections",
    "escrow_holds_count",
    "escrow_holds_points",
    "escrow_captures_count",
    "escrow_captures_points",
    "escrow_refunds",
    "alerts",
    "period",
];

fn activity_csv(a: &StaffActivity, period: &str, out: &mut String) {
    csv_text(out, &a.staff_id.to_string());
    out.push(',');
    csv_text(out, a.name.as_deref().unwrap_or(""));
    out.push(',');
    csv_text(out, a.role.as_deref().unwrap_or(""));
    for n in [
        a.rewards.count,
        a.rewards.points,
        a.adjustments.count,
        a.adjustments.points,
        a.voids,
        a.corrections,
        a.escrow_holds.count,
        a.escrow_holds.points,
        a.escrow_captures.count,
        a.escrow_captures.points,
        a.escrow_refunds,
        a.alerts,
    ] {
        out.push(',');
        out.push_str(&n.to_string());
    }
    out.push(',');
    csv_text(out, period);
    out.push_str("\r\n");
}

/// `GET /v1/reports/staff-activity?from&to&format`: per staff member, what
/// they wrote in `[from, to)` — rewards, adjustments, voids, corrections,
/// escrow holds, captures and refunds — and the alerts raised about them.
pub(super) async fn staff_activity(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    caller.require(Permission::AuditRead)?;
    let (from, to) = period(&st, &p)?;
    let f = format(p.format.as_deref())?;
    if p.threshold.is_some() {
        return Err(ApiError::validation(
            "threshold",
            "is a parameter of the comps report",
        ));
    }
    let rows = st
        .store
        .read(move |tx| -> Result<_, StoreError> {
            reports::staff_activity(tx, from, to).map_err(|e| match e {
                loyalty_store::ops::OpError::Store(s) => s,
                other => StoreError::Internal(other.to_string()),
            })
        })
        .await?;
    let body = match f {
        Format::Json => json!({"from": from, "to": to, "staff": rows}).to_string(),
        Format::Csv => {
            let period = format!("{from}/{to}");
            let mut out = format!("{}\r\n", ACTIVITY_COLUMNS.join(","));
            for a in &rows {
                activity_csv(a, &period, &mut out);
            }
            out
        }
    };
    Ok(typed(Body::from(body), f, "staff-activity"))
}

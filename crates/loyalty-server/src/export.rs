//! The ledger export over a date range as CSV or JSON lines, streamed page
//! by page, shared by `GET /v1/exports/ledger` and `loyalty export`. Memory
//! stays bounded whatever the ledger's size, and the export is a consistent
//! cut: it stops at the newest entry that existed when it started (entries
//! are never changed afterwards).

use axum::body::Bytes;
use jiff::Timestamp;
use loyalty_store::{LedgerEntry, Store};

/// Entries read per page.
pub const EXPORT_PAGE_ENTRIES: u32 = 1000;

/// Columns of the CSV export, in order (the ledger entry's fields).
/// Text cells a spreadsheet would run as a formula (a leading `=`, `+`, `-`,
/// `@`, tab or carriage return) are prefixed with `'`.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "player_id",
    "transaction_type",
    "event_type",
    "points_change",
    "reason",
    "source",
    "staff_id",
    "rating_slip_id",
    "idempotency_key",
    "balance_before",
    "balance_after",
    "tier_before",
    "tier_after",
    "lifetime_after",
    "correlation_id",
    "created_at",
    "prev_hash",
    "hash",
];

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// Whether a spreadsheet would run a cell starting like `v` as a formula.
fn formula_like(v: &str) -> bool {
    v.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// Column indexes of [`CSV_COLUMNS`] that hold numbers: they stay numbers
/// (a negative points change is not a formula). Every other column is text.
const NUMERIC_COLUMNS: &[usize] = &[4, 10, 11, 14];

/// Writes a text cell, prefixing `'` to one a spreadsheet would run as a
/// formula (CSV injection), then quoting as RFC 4180 needs.
pub fn csv_text(out: &mut String, v: &str) {
    if formula_like(v) {
        csv_field(out, &format!("'{v}"));
    } else {
        csv_field(out, v);
    }
}

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// One entry as a CSV line.
pub fn csv_line(e: &LedgerEntry) -> String {
    let values = [
        e.id.to_string(),
        e.player_id.to_string(),
        e.transaction_type.as_str().to_string(),
        e.event_type.clone(),
        e.points_change.to_string(),
        opt(&e.reason),
        e.source.clone(),
        opt(&e.staff_id),
        opt(&e.rating_slip_id),
        opt(&e.idempotency_key),
        e.balance_before.to_string(),
        e.balance_after.to_string(),
        e.tier_before.as_str().to_string(),
        e.tier_after.as_str().to_string(),
        e.lifetime_after.to_string(),
        e.correlation_id.clone(),
        e.created_at.to_string(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    let mut line = String::with_capacity(256);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if NUMERIC_COLUMNS.contains(&i) {
            csv_field(&mut line, v);
        } else {
            csv_text(&mut line, v);
        }
    }
    line.push_str("\r\n");
    line
}

fn render(format: Format, page: &[LedgerEntry]) -> Bytes {
    let mut out = String::with_capacity(page.len() * 300);
    for e in page {
        match format {
            Format::Csv => out.push_str(&csv_line(e)),
            Format::JsonLines => {
                out.push_str(&serde_json::to_string(e).unwrap_or_default());
                out.push('\n');
            }
        }
    }
    Bytes::from(out)
}

struct Cursor {
    store: Store,
    format: Format,
    after: i64,
    up_to: i64,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    header: bool,
    done: bool,
}

/// The export as a stream of byte chunks, one per page.
pub fn stream(
    store: Store,
    format: Format,
    up_to: i64,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let start = Cursor {
        store,
        format,
        after: 0,
        up_to,
        from,
        to,
        header: format == Format::Csv,
        done: false,
    };
    futures_util::stream::unfold(start, |mut c| async move {
        if c.header {
            c.header = false;
            let head = format!("{}\r\n", CSV_COLUMNS.join(","));
            return Some((Ok(Bytes::from(head)), c));
        }
        if c.done {
            return None;
        }
        let (after, up_to, from, to) = (c.after, c.up_to, c.from, c.to);
        let page = c
            .store
            .read(move |tx| tx.entries_ascending(after, up_to, from, to, EXPORT_PAGE_ENTRIES))
            .await;
        match page {
            Ok(page) => {
                c.done = page.len() < EXPORT_PAGE_ENTRIES as usize;
                let last = page.last()?;
                c.after = last.seq;
                let bytes = render(c.format, &page);
                Some((Ok(bytes), c))
            }
            Err(e) => {
                tracing::error!(error = %e, "ledger export failed mid-stream");
                c.done = true;
                Some((Err(std::io::Error::other(e.to_string())), c))
            }
        }
    })
}

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(v: &str) -> Result<Format, UnknownFormat> {
        match v {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::JsonLines),
            _ => Err(UnknownFormat),
        }
    }
}

/// A format other than `csv` or `jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the format must be csv or jsonl")]
pub struct UnknownFormat;

#[cfg(test)]
mod tests {
    use super::{CSV_COLUMNS, NUMERIC_COLUMNS, csv_text, formula_like};

    #[test]
    fn the_numeric_columns_are_the_point_columns() {
        let named: Vec<&str> = NUMERIC_COLUMNS.iter().map(|i| CSV_COLUMNS[*i]).collect();
        assert_eq!(
            named,
            [
                "points_change",
                "balance_before",
                "balance_after",
                "lifetime_after"
            ]
        );
    }

    #[test]
    fn text_cells_that_a_spreadsheet_would_run_are_prefixed() {
        for v in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(formula_like(v), "{v:?}");
            let mut out = String::new();
            csv_text(&mut out, v);
            assert!(
                out.trim_start_matches('"').starts_with('\''),
                "{v:?} → {out:?}"
            );
        }
        for v in ["Ann", "1", "", "a=b"] {
            assert!(!formula_like(v), "{v:?}");
            let mut out = String::new();
            csv_text(&mut out, v);
            assert_eq!(out, v);
        }
    }
}

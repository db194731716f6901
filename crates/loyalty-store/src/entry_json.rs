//! A ledger entry's JSON, written straight into a buffer.
//!
//! Ledger pages (a player's ledger, the audit search) are the heaviest
//! reads: 50 entries of about 800 bytes each. Through serde, a third of a
//! page's server CPU went to encoding them, most of it scanning ids, hashes
//! and timestamps for characters to escape that they cannot contain. This
//! writer produces exactly the bytes `serde_json::to_writer(&entry)` does
//! (a test compares them over generated entries, including text that needs
//! escaping), but writes ids, numbers and timestamps without the scan and
//! checks free text in one vectorisable pass before copying it.

use std::io::Write;

use uuid::Uuid;

use crate::records::LedgerEntry;

impl LedgerEntry {
    /// Appends this entry's JSON to `out`: the same bytes as
    /// `serde_json::to_writer(out, self)`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        id(out, &self.id);
        out.extend_from_slice(b",\"player_id\":");
        id(out, &self.player_id);
        out.extend_from_slice(b",\"transaction_type\":\"");
        out.extend_from_slice(self.transaction_type.as_str().as_bytes());
        out.extend_from_slice(b"\",\"event_type\":");
        text(out, &self.event_type);
        out.extend_from_slice(b",\"points_change\":");
        int(out, self.points_change);
        out.extend_from_slice(b",\"reason\":");
        opt_text(out, self.reason.as_deref());
        out.extend_from_slice(b",\"source\":");
        text(out, &self.source);
        out.extend_from_slice(b",\"staff_id\":");
        opt_id(out, self.staff_id.as_ref());
        out.extend_from_slice(b",\"rating_slip_id\":");
        opt_id(out, self.rating_slip_id.as_ref());
        out.extend_from_slice(b",\"idempotency_key\":");
        opt_text(out, self.idempotency_key.as_deref());
        out.extend_from_slice(b",\"balance_before\":");
        int(out, self.balance_before);
        out.extend_from_slice(b",\"balance_after\":");
        int(out, self.balance_after);
        out.extend_from_slice(b",\"tier_before\":\"");
        out.extend_from_slice(self.tier_before.as_str().as_bytes());
        out.extend_from_slice(b"\",\"tier_after\":\"");
        out.extend_from_slice(self.tier_after.as_str().as_bytes());
        out.extend_from_slice(b"\",\"lifetime_after\":");
        int(out, self.lifetime_after);
        out.extend_from_slice(b",\"escrow_id\":");
        opt_id(out, self.escrow_id.as_ref());
        out.extend_from_slice(b",\"correlation_id\":");
        text(out, &self.correlation_id);
        // jiff's serde form is its Display form (RFC 3339, UTC, `Z`), which
        // never needs escaping; writing into a Vec cannot fail.
        let _ = write!(out, ",\"created_at\":\"{}\"", self.created_at);
        out.extend_from_slice(b",\"prev_hash\":");
        text(out, &self.prev_hash);
        out.extend_from_slice(b",\"hash\":");
        text(out, &self.hash);
        out.extend_from_slice(b",\"escrow_change\":");
        int(out, self.escrow_change);
        if let Some(approver) = &self.approved_by {
            out.extend_from_slice(b",\"approved_by\":");
            id(out, approver);
        }
        out.push(b'}');
    }
}

fn id(out: &mut Vec<u8>, id: &Uuid) {
    let mut buf = Uuid::encode_buffer();
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

fn opt_id(out: &mut Vec<u8>, v: Option<&Uuid>) {
    match v {
        Some(v) => id(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// A JSON string: copied as it is when nothing in it needs escaping (the
/// usual case), escaped by serde_json otherwise.
fn text(out: &mut Vec<u8>, s: &str) {
    if needs_no_escape(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Serialising a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn opt_text(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(v) => text(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// Whether serde_json would write `s` unchanged: no control character, no
/// quote, no backslash. Checked a whole chunk at a time without branching
/// per byte, so the compiler can vectorise it.
fn needs_no_escape(s: &[u8]) -> bool {
    s.chunks(16).all(|chunk| {
        chunk
            .iter()
            .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use jiff::Timestamp;
    use loyalty_core::{Tier, TransactionType};
    use proptest::prelude::*;
    use uuid::Uuid;

    use crate::records::LedgerEntry;

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    /// Text as it comes from staff and integrators: anything, including
    /// quotes, backslashes, control characters and non-ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9:_-]{0,40}",
            any::<String>(),
            "[\"\\\\\u{0}-\u{1f}\u{7f}é€😀 a]{0,20}",
        ]
    }

    prop_compose! {
        /// Any entry, with text that needs escaping.
        pub(crate) fn entry()(
            ids in (uuid(), uuid(), proptest::option::of(uuid()), proptest::option::of(uuid()),
                    proptest::option::of(uuid()), proptest::option::of(uuid())),
            kind in proptest::sample::select(TransactionType::ALL.to_vec()),
            tiers in (proptest::sample::select(Tier::ALL.to_vec()),
                      proptest::sample::select(Tier::ALL.to_vec())),
            numbers in (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
            texts in (text(), proptest::option::of(text()), text(), proptest::option::of(text()),
                      text(), text(), text()),
            micros in -377_705_116_800_000_000i64..253_402_207_200_000_000,
        ) -> LedgerEntry {
            let (event_type, reason, source, idempotency_key, correlation_id, prev_hash, hash) =
                texts;
            LedgerEntry {
                seq: numbers.0,
                id: ids.0,
                player_id: ids.1,
                transaction_type: kind,
                event_type,
                points_change: numbers.1,
                reason,
                source,
                staff_id: ids.2,
                rating_slip_id: ids.3,
                idempotency_key,
                balance_before: numbers.2,
                balance_after: numbers.3,
                tier_before: tiers.0,
                tier_after: tiers.1,
                lifetime_after: numbers.4,
                escrow_id: ids.4,
                correlation_id,
                created_at: Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH),
                prev_hash,
                hash,
                escrow_change: numbers.0.wrapping_mul(3),
                approved_by: ids.5,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn writes_what_serde_writes(e in entry()) {
            let mut fast = Vec::new();
            e.write_json(&mut fast);
            let serde = serde_json::to_vec(&e).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
        }
    }

    #[test]
    fn escapes_what_json_requires() {
        let mut out = Vec::new();
        super::text(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#.as_bytes());
        out.clear();
        super::text(&mut out, "0123456789abcdef0123456789abcdef\u{7f}");
        assert_eq!(out, "\"0123456789abcdef0123456789abcdef\u{7f}\"".as_bytes());
    }
}

//! The ledger's hash chains (docs/audit.md): every entry carries the hash of
//! the player's previous entry (`prev_hash`; [`GENESIS`] for the first) and
//! its own `hash`, SHA-256 over a canonical encoding of its fields and
//! `prev_hash`. Each player has a chain of their own, written in the
//! transaction that appends the entry, so writers to different players
//! never wait on each other; changing, removing, inserting or reordering an
//! entry breaks the chain from that point on.

use sha2::{Digest, Sha256};

use crate::LedgerEntry;

/// The `prev_hash` of a player's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Names the encoding; a new one would be `…-v2`.
pub const ENCODING: &str = "loyalty-ledger-entry-v1";

/// The canonical encoding of an entry: a compact JSON array (no spaces, UTF-8,
/// JSON string escaping) of the fields in this order, absent values as
/// `null`, `created_at` in microseconds since the Unix epoch.
pub fn canonical(e: &LedgerEntry) -> String {
    // Serialising borrowed fields cannot fail (strings, numbers, nulls) and
    // writes valid UTF-8; the fields go straight to the output, without the
    // `serde_json::Value` tree (and its copies) a `json!` array would build.
    serde_json::to_string(&Canonical(e)).unwrap_or_default()
}

/// [`canonical`]'s field order.
struct Canonical<'a>(&'a LedgerEntry);

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let e = self.0;
        let mut t = s.serialize_tuple(20)?;
        t.serialize_element(ENCODING)?;
        t.serialize_element(&e.prev_hash)?;
        t.serialize_element(&e.id)?;
        t.serialize_element(&e.player_id)?;
        t.serialize_element(e.transaction_type.as_str())?;
        t.serialize_element(&e.event_type)?;
        t.serialize_element(&e.points_change)?;
        t.serialize_element(&e.reason)?;
        t.serialize_element(&e.source)?;
        t.serialize_element(&e.staff_id)?;
        t.serialize_element(&e.rating_slip_id)?;
        t.serialize_element(&e.idempotency_key)?;
        t.serialize_element(&e.escrow_id)?;
        t.serialize_element(&e.balance_before)?;
        t.serialize_element(&e.balance_after)?;
        t.serialize_element(e.tier_before.as_str())?;
        t.serialize_element(e.tier_after.as_str())?;
        t.serialize_element(&e.lifetime_after)?;
        t.serialize_element(&e.correlation_id)?;
        t.serialize_element(&e.created_at.as_microsecond())?;
        t.end()
    }
}

/// The entry's hash: lower-case hex SHA-256 of [`canonical`].
pub fn entry_hash(e: &LedgerEntry) -> String {
    hex(&Sha256::digest(canonical(e).as_bytes()))
}

/// Lower-case hex of a digest.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Checks every player's chain, entry by entry in sequence order: each
/// `prev_hash` must be the player's previous entry's `hash` and each `hash`
/// must be its entry's. Reports `CHAIN_BROKEN` naming the player and the
/// first entry that disagrees (`actual` is 1 for a wrong `prev_hash`, 2 for
/// a wrong `hash`). Memory grows with the number of players (one head each),
/// not with the ledger.
pub fn verify(
    tx: &mut dyn crate::Tx,
    report: &mut dyn FnMut(crate::Drift),
) -> crate::StoreResult<()> {
    verify_with_progress(tx, report, &mut |_| {})
}

/// [`verify`], telling `progress` how many entries are checked so far
/// after each page.
pub fn verify_with_progress(
    tx: &mut dyn crate::Tx,
    report: &mut dyn FnMut(crate::Drift),
    progress: &mut dyn FnMut(u64),
) -> crate::StoreResult<()> {
    use std::collections::HashMap;
    let up_to = tx.last_entry_seq()?;
    let mut heads: HashMap<uuid::Uuid, [u8; 32]> = HashMap::new();
    let genesis = [0u8; 32];
    let mut after = 0;
    let mut checked = 0u64;
    loop {
        let page = tx.entries_ascending(after, up_to, None, None, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        checked += page.len() as u64;
        for e in &page {
            let expected = heads.get(&e.player_id).copied().unwrap_or(genesis);
            let broken = if unhex(&e.prev_hash) != Some(expected) {
                Some(1)
            } else if entry_hash(e) != e.hash {
                Some(2)
            } else {
                None
            };
            if let Some(what) = broken {
                report(crate::Drift {
                    player_id: e.player_id,
                    check: "CHAIN_BROKEN".into(),
                    expected: 0,
                    actual: what,
                    entry_id: Some(e.id),
                    escrow_id: None,
                    merchant_id: None,
                });
            }
            heads.insert(e.player_id, unhex(&e.hash).unwrap_or(genesis));
        }
        progress(checked);
    }
    Ok(())
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Names the checkpoint's encoding.
pub const CHECKPOINT_ENCODING: &str = "loyalty-checkpoint-v1";

/// A digest of every player's chain head at one ledger position: anyone who
/// records it outside the system can later prove that the ledger still
/// extends it (no entry before it changed, even with chains recomputed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Ledger position it covers (every entry with `seq` at or below).
    pub seq: i64,
    /// Players with at least one entry then.
    pub players: u64,
    /// SHA-256 (hex) of `loyalty-checkpoint-v1\n` followed by one line
    /// `<player_id> <head>\n` per player, in the order of the player ids'
    /// text.
    pub root: String,
}

/// The checkpoint at `up_to_seq`; `visit` sees each (player, head) too.
/// Streams: memory does not grow with players or entries.
pub fn checkpoint(
    tx: &mut dyn crate::Tx,
    up_to_seq: i64,
    visit: &mut dyn FnMut(uuid::Uuid, &str),
) -> crate::StoreResult<Checkpoint> {
    let mut h = Sha256::new();
    h.update(CHECKPOINT_ENCODING.as_bytes());
    h.update(b"\n");
    let mut players = 0u64;
    tx.chain_heads(up_to_seq, &mut |player, head| {
        h.update(format!("{player} {head}\n").as_bytes());
        players += 1;
        visit(player, &head);
    })?;
    let root = hex(&h.finalize());
    Ok(Checkpoint {
        seq: up_to_seq,
        players,
        root,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// The encoding as first written (a `json!` array): hashes written
    /// before must still verify.
    fn canonical_as_json_array(e: &crate::LedgerEntry) -> String {
        serde_json::json!([
            super::ENCODING,
            e.prev_hash,
            e.id,
            e.player_id,
            e.transaction_type.as_str(),
            e.event_type,
            e.points_change,
            e.reason,
            e.source,
            e.staff_id,
            e.rating_slip_id,
            e.idempotency_key,
            e.escrow_id,
            e.balance_before,
            e.balance_after,
            e.tier_before.as_str(),
            e.tier_after.as_str(),
            e.lifetime_after,
            e.correlation_id,
            e.created_at.as_microsecond(),
        ])
        .to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn canonical_is_the_json_array_it_always_was(e in crate::entry_json::tests::entry()) {
            prop_assert_eq!(super::canonical(&e), canonical_as_json_array(&e));
        }
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}

-- Loyalty Ledger, PostgreSQL schema v14: the sequencer's pass is a function.
--
-- Sent as one simple-protocol message, the pass's statements were parsed
-- and planned again every time: planning took 0.25 ms a pass, as long as
-- the move itself, at ~500 passes/s under load. A PL/pgSQL function keeps
-- its plans for the session. `outbox_pending` holds few live rows and, until
-- autovacuum passes, many dead ones, so a plan made once must not scan it:
-- the function turns sequential scans off for itself, and its one plan
-- walks the primary key. What a pass does is unchanged (ARCHITECTURE.md,
-- "Event numbering on PostgreSQL"): under the sequencers' advisory lock,
-- move up to 5,000 committed pending rows into `outbox`, numbered in id
-- order from the counter row. The function is VOLATILE, so under READ
-- COMMITTED each statement in it takes a fresh snapshot: the move sees every
-- pending row committed before the lock was granted. Nodes of schema 13
-- still send the statements themselves; both take the same lock.
CREATE FUNCTION outbox_sequence_pass(OUT moved_count BIGINT, OUT oldest_age_s FLOAT8)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7411002);
    WITH moved AS (
        DELETE FROM outbox_pending
        WHERE id IN (SELECT id FROM outbox_pending ORDER BY id LIMIT 5000)
        RETURNING *
    ), counted AS (
        SELECT count(*) AS n FROM moved
    ), taken AS (
        UPDATE outbox_sequence SET last = last + (SELECT n FROM counted)
        WHERE id = 1 AND (SELECT n FROM counted) > 0
        RETURNING last - (SELECT n FROM counted) AS base
    ), numbered AS (
        INSERT INTO outbox (seq, event_id, event_type, version, occurred_at, correlation_id,
                            idempotency_key, source, payload)
        SELECT taken.base + row_number() OVER (ORDER BY moved.id), moved.event_id,
               moved.event_type, moved.version, moved.occurred_at, moved.correlation_id,
               moved.idempotency_key, moved.source, moved.payload
        FROM moved CROSS JOIN taken
        RETURNING seq
    )
    SELECT (SELECT count(*) FROM numbered),
           (SELECT extract(epoch FROM clock_timestamp() - min(written_at))::float8 FROM moved)
    INTO moved_count, oldest_age_s;
END
$$;

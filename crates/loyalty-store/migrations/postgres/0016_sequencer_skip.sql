-- Loyalty Ledger, PostgreSQL schema v16: a sequencer pass that is not needed
-- is not run.
--
-- A node's writers wait for a pass that began after their commit. With
-- several nodes, another node's pass has often moved their rows already,
-- and the waiting node's own pass then took the sequencers' lock and
-- committed only to find little or nothing. `outbox_sequence_pass(upto)`
-- first looks, without the lock, for a pending row with an id at or below
-- `upto` (the newest id the node's waiting writers committed). If there is
-- none, every such row was moved by a pass that has committed, and the
-- writers may be answered: the function returns 0 without writing.
-- Otherwise it runs the schema-14 pass unchanged. The check runs in a
-- fresh READ COMMITTED snapshot taken after those writers committed, so it
-- sees their rows unless a committed pass has moved them; rows a pass has
-- deleted but not yet committed are still seen, and then this node runs its
-- pass, which waits for the lock as before. Nodes of schema 14 and 15 call
-- the function without an argument; both take the same lock.
CREATE FUNCTION outbox_sequence_pass(upto BIGINT, OUT moved_count BIGINT, OUT oldest_age_s FLOAT8)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM outbox_pending WHERE id <= upto) THEN
        moved_count := 0;
        RETURN;
    END IF;
    SELECT p.moved_count, p.oldest_age_s INTO moved_count, oldest_age_s
    FROM outbox_sequence_pass() p;
END
$$;

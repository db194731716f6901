//! Savepoint bookkeeping shared by both backends: the events a transaction
//! has appended, and the savepoints open over them. Rolling back to a
//! savepoint forgets the events it undid, so what a backend hands on at
//! commit (SQLite: the stored rows, to the in-memory event tail;
//! PostgreSQL: the rows to write to `outbox_pending`) is exactly what
//! committed. The SQL is the same in both dialects.

/// Events appended in one transaction, with a mark per open savepoint.
#[derive(Debug)]
pub(crate) struct Savepoints<E> {
    events: Vec<E>,
    /// `events.len()` when each open savepoint was taken, innermost last.
    marks: Vec<usize>,
}

impl<E> Default for Savepoints<E> {
    fn default() -> Self {
        Savepoints {
            events: Vec::new(),
            marks: Vec::new(),
        }
    }
}

impl<E> Savepoints<E> {
    /// Records an appended event.
    pub(crate) fn push(&mut self, event: E) {
        self.events.push(event);
    }

    /// The events kept so far.
    pub(crate) fn events(&self) -> &[E] {
        &self.events
    }

    /// Hands over the events kept so far, leaving none.
    pub(crate) fn take(&mut self) -> Vec<E> {
        std::mem::take(&mut self.events)
    }

    /// Opens a savepoint; returns the SQL that takes it.
    pub(crate) fn open(&mut self) -> String {
        self.marks.push(self.events.len());
        format!("SAVEPOINT sp{}", self.marks.len())
    }

    /// Rolls back to the innermost savepoint and closes it, forgetting the
    /// events appended since; returns the SQL that does it.
    pub(crate) fn rollback(&mut self) -> String {
        let depth = self.marks.len();
        if let Some(mark) = self.marks.pop() {
            self.events.truncate(mark);
        }
        format!("ROLLBACK TO SAVEPOINT sp{depth}; RELEASE SAVEPOINT sp{depth}")
    }

    /// Closes the innermost savepoint, keeping its events; returns the SQL.
    pub(crate) fn release(&mut self) -> String {
        let depth = self.marks.len();
        self.marks.pop();
        format!("RELEASE SAVEPOINT sp{depth}")
    }
}

#[cfg(test)]
mod tests {
    use super::Savepoints;

    #[test]
    fn a_rollback_forgets_exactly_the_events_since_its_savepoint() {
        let mut s = Savepoints::default();
        s.push(1);
        assert_eq!(s.open(), "SAVEPOINT sp1");
        s.push(2);
        assert_eq!(s.open(), "SAVEPOINT sp2");
        s.push(3);
        assert_eq!(
            s.rollback(),
            "ROLLBACK TO SAVEPOINT sp2; RELEASE SAVEPOINT sp2"
        );
        assert_eq!(s.events(), &[1, 2]);
        assert_eq!(s.release(), "RELEASE SAVEPOINT sp1");
        assert_eq!(s.events(), &[1, 2]);
        assert_eq!(s.open(), "SAVEPOINT sp1");
        s.push(4);
        assert_eq!(
            s.rollback(),
            "ROLLBACK TO SAVEPOINT sp1; RELEASE SAVEPOINT sp1"
        );
        assert_eq!(s.take(), vec![1, 2]);
        assert!(s.events().is_empty());
    }
}

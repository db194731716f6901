//! The writer connection's prepared statements (see [`Prepared`]).

use rusqlite::Connection;

/// Statements the writer keeps (see [`Prepared`]); a text beyond this many
/// distinct ones is prepared for each run.
const PREPARED_MAX: usize = 256;

/// The writer connection's prepared statements, kept for as long as the
/// writer runs.
///
/// rusqlite's own statement cache keeps an LRU order: taking a statement
/// out and putting it back moves nodes of a linked map, clones its key and
/// clears its bindings. The writer runs a few dozen statements millions of
/// times, and that bookkeeping was 6 % of its CPU in `loyalty seed`. Here a
/// statement in use is taken out of its slot and put back after, two
/// lookups of its text; a statement that runs while another run of the same
/// text is open (a nested query) gets a fresh one.
pub(crate) struct Prepared<'c> {
    conn: &'c Connection,
    held: std::cell::RefCell<
        std::collections::HashMap<
            Box<str>,
            Option<rusqlite::Statement<'c>>,
            foldhash::fast::RandomState,
        >,
    >,
}

impl<'c> Prepared<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Prepared {
            conn,
            held: Default::default(),
        }
    }

    pub(crate) fn conn(&self) -> &'c Connection {
        self.conn
    }

    pub(super) fn with<R>(
        &self,
        sql: &str,
        f: impl FnOnce(&mut rusqlite::Statement<'c>) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        let held = self.held.borrow_mut().get_mut(sql).and_then(Option::take);
        let mut st = match held {
            Some(st) => st,
            None => self.conn.prepare(sql)?,
        };
        // rusqlite resets a statement when its run ends (after `execute`,
        // and when a query's rows are dropped), so a kept one holds nothing
        // open.
        let out = f(&mut st);
        let mut held = self.held.borrow_mut();
        if let Some(slot) = held.get_mut(sql) {
            *slot = Some(st);
        } else if held.len() < PREPARED_MAX {
            held.insert(sql.into(), Some(st));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        conn
    }

    #[test]
    fn a_statement_is_kept_and_reused_with_new_parameters() {
        let conn = conn();
        let prepared = Prepared::new(&conn);
        for v in 1..=3 {
            prepared
                .with("INSERT INTO t (v) VALUES (?1)", |st| st.execute([v]))
                .unwrap();
        }
        assert_eq!(prepared.held.borrow().len(), 1);
        // One statement ran all three: SQLite counts its runs.
        let runs = prepared
            .with("INSERT INTO t (v) VALUES (?1)", |st| {
                Ok(st.get_status(rusqlite::StatementStatus::Run))
            })
            .unwrap();
        assert_eq!(runs, 3);
        let sum: i64 = prepared
            .with("SELECT sum(v) FROM t", |st| st.query_row([], |r| r.get(0)))
            .unwrap();
        assert_eq!(sum, 6);
        // The same text built at run time finds the kept statement.
        let text = format!("SELECT sum(v) FROM {}", "t");
        let again: i64 = prepared
            .with(&text, |st| st.query_row([], |r| r.get(0)))
            .unwrap();
        assert_eq!(again, 6);
        let runs = prepared
            .with("SELECT sum(v) FROM t", |st| {
                Ok(st.get_status(rusqlite::StatementStatus::Run))
            })
            .unwrap();
        assert_eq!(runs, 2);
        assert_eq!(prepared.held.borrow().len(), 2);
    }

    #[test]
    fn a_text_run_inside_its_own_run_gets_a_statement_of_its_own() {
        let conn = conn();
        conn.execute_batch("INSERT INTO t (v) VALUES (1), (2)")
            .unwrap();
        let prepared = Prepared::new(&conn);
        let sql = "SELECT v FROM t ORDER BY v";
        let pairs = prepared
            .with(sql, |outer| {
                let mut rows = outer.query([])?;
                let mut pairs = Vec::new();
                while let Some(row) = rows.next()? {
                    let a: i64 = row.get(0)?;
                    let inner = prepared.with(sql, |st| {
                        st.query_map([], |r| r.get::<_, i64>(0))?
                            .collect::<Result<Vec<_>, _>>()
                    })?;
                    pairs.push((a, inner));
                }
                Ok(pairs)
            })
            .unwrap();
        assert_eq!(pairs, vec![(1, vec![1, 2]), (2, vec![1, 2])]);
        assert_eq!(prepared.held.borrow().len(), 1);
    }

    #[test]
    fn a_failing_statement_is_an_error_and_the_writer_goes_on() {
        let conn = conn();
        let prepared = Prepared::new(&conn);
        assert!(
            prepared
                .with("SELECT nope FROM t", |st| st.execute([]))
                .is_err()
        );
        let err = prepared
            .with("INSERT INTO t (v) VALUES (?1)", |st| {
                st.execute([Option::<i64>::None])
            })
            .unwrap_err();
        assert!(err.to_string().contains("NOT NULL"), "{err}");
        prepared
            .with("INSERT INTO t (v) VALUES (?1)", |st| st.execute([7]))
            .unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn at_most_prepared_max_texts_are_kept() {
        let conn = conn();
        let prepared = Prepared::new(&conn);
        for i in 0..PREPARED_MAX + 10 {
            let sql = format!("SELECT {i}");
            let got: i64 = prepared
                .with(&sql, |st| st.query_row([], |r| r.get(0)))
                .unwrap();
            assert_eq!(got, i as i64);
        }
        assert_eq!(prepared.held.borrow().len(), PREPARED_MAX);
    }
}

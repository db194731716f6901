//! The store contract suite (DESIGN §2: "both storage backends pass one
//! shared contract test suite").
//!
//! Every contract test is an `async fn name(store: Store)` in one of the
//! modules below and talks to the store only through [`Store::write`],
//! [`Store::read`], the [`Tx`](loyalty_store::Tx) trait and
//! [`loyalty_store::ops`], so it runs unchanged against every backend.
//! [`contract_suite!`] instantiates the whole list (plus the property test)
//! for one backend factory from [`backends`]; each backend gets its own module
//! of tests, e.g. `sqlite::ledger::apply_entry_chains_balances_and_moves_the_account`.
//!
//! Tests that must poke at a backend's internals (raw SQL) live in
//! backend-specific modules such as [`sqlite_only`] and say so in their names.

mod support;

mod approvals;
mod atomicity;
mod corrections;
mod event_payloads;
mod ledger;
mod pagination;
mod postgres_only;
mod props;
mod races;
mod records;
mod slips;
mod sqlite_only;
mod verify;
mod wallet;

/// Backend factories. Each returns a fresh, empty store (and whatever must
/// stay alive with it), or `None` when the backend is not configured in this
/// environment, in which case its tests pass vacuously with a note on stderr
/// (PostgreSQL runs only when `LOYALTY_TEST_PG_URL` is set).
pub mod backends {
    use std::any::Any;
    use std::sync::Arc;

    use loyalty_store::Store;
    use loyalty_store::postgres::PgStore;
    use loyalty_store::sqlite::SqliteStore;

    /// A fresh store plus what must outlive it (e.g. its temporary directory).
    pub struct Backend {
        store: Option<Store>,
        // Dropped after `store`.
        _keep: Box<dyn Any + Send + Sync>,
    }

    impl Backend {
        fn new(store: Store, keep: impl Any + Send + Sync) -> Backend {
            Backend {
                store: Some(store),
                _keep: Box::new(keep),
            }
        }

        /// The store under test.
        pub fn store(&self) -> Store {
            self.store.clone().expect("store present until drop")
        }
    }

    impl Drop for Backend {
        fn drop(&mut self) {
            // Drop the store off the async threads: a backend may close
            // blocking connections when it goes (the `postgres` client
            // panics if dropped on a tokio worker).
            if let Some(store) = self.store.take() {
                let _ = std::thread::spawn(move || drop(store)).join();
            }
        }
    }

    /// Reports a backend that is not configured: loudly, and as a failure
    /// under CI (`LOYALTY_CI=1`), where every backend must run.
    pub fn skipped(backend: &str) {
        if std::env::var("LOYALTY_CI").is_ok_and(|v| v == "1") {
            panic!(
                "{backend} is not configured (set LOYALTY_TEST_PG_URL) but LOYALTY_CI=1 forbids skipping"
            );
        }
        eprintln!(
            "*** SKIPPED: {backend} is not configured (set LOYALTY_TEST_PG_URL); this test did not run ***"
        );
    }

    /// Embedded SQLite in a fresh temporary directory.
    pub async fn sqlite() -> Option<Backend> {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = SqliteStore::open(dir.path()).expect("open the sqlite store");
        Some(Backend::new(Store::Sqlite(Arc::new(store)), dir))
    }

    /// PostgreSQL: a fresh database per test, created through the server
    /// account in `LOYALTY_TEST_PG_URL` (a `postgres://` URL whose user
    /// may `CREATE DATABASE`) and dropped afterwards. `None` (skip) when the
    /// variable is not set.
    pub async fn postgres() -> Option<Backend> {
        let admin = std::env::var("LOYALTY_TEST_PG_URL").ok()?;
        let name = format!("loyalty_contract_{}", uuid::Uuid::new_v4().simple());
        let (store, guard) = tokio::task::spawn_blocking(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls)
                .expect("connect to LOYALTY_TEST_PG_URL");
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create a test database");
            let guard = DropDatabase {
                admin: admin.clone(),
                name: name.clone(),
            };
            let store =
                PgStore::open(&with_database(&admin, &name), 8).expect("open the postgres store");
            (store, guard)
        })
        .await
        .expect("postgres setup task");
        Some(Backend::new(Store::Postgres(Arc::new(store)), guard))
    }

    /// `postgres://u:p@host:port/db?x` with `db` replaced by `name`.
    pub fn with_database(url: &str, name: &str) -> String {
        let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
        let (base, query) = match url.find('?') {
            Some(q) => (&url[..q], &url[q..]),
            None => (url, ""),
        };
        let host_end = base[scheme_end..]
            .find('/')
            .map(|i| scheme_end + i)
            .unwrap_or(base.len());
        format!("{}/{name}{query}", &base[..host_end])
    }

    /// Drops a test database when the test is done.
    struct DropDatabase {
        admin: String,
        name: String,
    }

    impl Drop for DropDatabase {
        fn drop(&mut self) {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            // The blocking client must not run on an async worker thread.
            let dropped = std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&admin, postgres::NoTls)?;
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test database {}", self.name);
            }
        }
    }
}

/// Instantiates every contract test (and the property test) for one backend
/// factory. The list of tests lives here, once.
macro_rules! contract_suite {
    ($backend:ident => $factory:path) => {
        contract_suite!(@emit $backend, $factory, {
            records: [
                staff_and_tokens_round_trip,
                players_round_trip_and_card_numbers_are_unique,
                tables_round_trip_with_exact_decimals,
                slips_round_trip_with_exact_game_settings,
                ledger_entries_round_trip_and_keys_are_unique,
                events_round_trip_in_sequence,
                activity_items_reference_outbox_events_once_each,
                archived_events_leave_the_outbox_only_when_recorded,
                idempotency_records_round_trip_and_purge,
            ],
            atomicity: [
                a_failed_operation_leaves_nothing_behind,
                a_successful_operation_is_visible_to_the_next_read,
                a_failed_operation_with_an_unreleased_savepoint_leaves_nothing_behind,
                a_rolled_back_savepoint_keeps_the_outer_writes,
                a_panicking_operation_fails_and_leaves_nothing_behind,
                group_commit_keeps_exactly_the_successful_operations,
            ],
            ledger: [
                apply_entry_chains_balances_and_moves_the_account,
                apply_entry_refuses_to_go_below_zero_and_writes_nothing,
                apply_entry_is_undone_with_its_operation,
                apply_entry_for_an_unknown_player_is_not_found,
                apply_entry_keeps_points_within_the_exact_json_range,
                a_reward_key_reused_with_other_content_is_refused,
            ],
            slips: [
                complete_slip_closes_and_accrues_exactly_once,
                paused_time_does_not_count_and_the_final_bet_is_used,
                closed_slips_refuse_changes,
                a_failed_accrual_closes_the_slip_pending_and_recovery_accrues_once,
                recover_slip_refuses_slips_that_are_not_closed,
                completion_with_bad_times_is_refused_and_changes_nothing,
            ],
            races: [
                concurrent_completions_of_one_slip_write_one_entry,
                concurrent_rewards_with_one_key_write_one_entry,
                concurrent_adjustments_cannot_overdraw_a_balance,
                concurrent_rewards_lose_no_update,
                concurrent_completions_and_rewards_for_one_player_all_succeed,
            ],
            approvals: [
                a_request_waits_for_another_staff_members_approval,
                requests_are_rejected_withdrawn_or_lapse_and_then_stay_so,
                an_approval_the_balance_cannot_cover_is_refused_and_stays_pending,
            ],
            corrections: [
                a_void_takes_back_what_the_slip_earned_with_lifetime_and_tier,
                a_correction_reaccrues_at_the_original_tier_and_keeps_pauses,
                spent_points_refuse_a_void_or_correction_and_change_nothing,
            ],
            verify: [
                verify_finds_no_drift_in_a_clean_store,
                verify_reports_a_corrupted_balance_naming_the_player,
                verify_reports_a_chain_head_that_is_not_the_newest_hash,
                verify_reports_corrupted_lifetime_points_and_entry_count,
                verify_reports_entries_whose_account_is_missing,
            ],
            wallet: [
                a_hold_moves_available_to_escrow_with_its_entry_and_event,
                a_hold_refuses_a_short_balance_unknown_ids_and_bad_input,
                settles_capture_refund_and_close_as_the_design_says,
                a_stale_version_is_a_conflict_and_changes_nothing,
                expiry_refunds_each_due_hold_once_and_wins_or_loses_cleanly,
                concurrent_holds_never_overdraw_and_lose_nothing,
                verify_reports_each_broken_wallet_invariant,
            ],
            event_payloads: [
                every_event_keeps_its_documented_payload_byte_for_byte,
            ],
            pagination: [
                entry_pages_walk_newest_first_without_gaps_or_duplicates,
                entries_filter_by_player_staff_correlation_type_and_time,
            ],
        });
    };
    (@emit $backend:ident, $factory:path, {
        $($module:ident: [$($test:ident),* $(,)?]),* $(,)?
    }) => {
        mod $backend {
            $(
                mod $module {
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                        async fn $test() {
                            let Some(backend) = $factory().await else {
                                crate::backends::skipped(stringify!($backend));
                                return;
                            };
                            crate::$module::$test(backend.store()).await;
                        }
                    )*
                }
            )*

            /// DESIGN §3.6 invariants after random concurrent operations.
            #[test]
            fn invariants_hold_after_random_concurrent_operations() {
                crate::props::run(stringify!($backend), || $factory());
            }
        }
    };
}

// One line per backend. A new backend: a factory in `backends`, and a line here.
contract_suite!(sqlite => crate::backends::sqlite);
contract_suite!(postgres => crate::backends::postgres);

/// PostgreSQL-only tests of the commit path ([`postgres_only`]).
mod postgres_commit_path {
    macro_rules! postgres_tests {
        ($($test:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(backend) = crate::backends::postgres().await else {
                        crate::backends::skipped("postgres");
                        return;
                    };
                    crate::postgres_only::$test(backend.store()).await;
                }
            )*
        };
    }

    postgres_tests!(
        postgres_a_transaction_about_to_commit_blocks_no_other_player,
        postgres_a_pass_whose_rows_are_numbered_skips_the_lock,
        postgres_a_pass_waits_for_the_writes_running_on_its_node,
        postgres_a_transaction_rolled_back_after_writing_events_leaves_no_trace,
        postgres_concurrent_writers_and_readers_agree_on_one_gap_free_order,
        postgres_migration_gives_existing_wallet_entries_their_escrow_changes,
    );
}

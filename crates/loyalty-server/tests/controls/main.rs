//! Black-box tests of manual rewards and their controls, and of
//! `Idempotency-Key` on every mutating POST (issue 3; DESIGN §3.3, §3.4,
//! §3.7, §5).

#[path = "../common/mod.rs"]
mod common;
mod support;

mod access_matrix;
mod bad_input;
mod concurrency;
mod deterministic_keys;
mod idempotency_header;
mod rate_limit;
mod rewards;
mod rule_order;
mod security;

//! The Loyalty Ledger server: HTTP API, request context, background tasks
//! and the `loyalty` command line.
//!
//! Requests flow: [`correlation::layer`] (id, span, access log) → axum route
//! → [`auth::Caller`] (401) → permission check (403) → input parsing at the
//! edge (400) → [`idem::run_write`], which runs one
//! [`loyalty_store::ops`] operation in one durable transaction together with
//! the `Idempotency-Key` record.
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod background;
pub mod bench;
pub mod clock;
pub mod console;
pub mod correlation;
pub mod error;
pub mod events;
pub mod export;
pub mod extract;
pub mod http;
pub mod idem;
pub mod listen;
pub mod logs;
pub mod metrics;
pub mod progress;
pub mod ratelimit;
pub mod serve;
pub mod tls;
pub mod views;
pub mod webhooks;

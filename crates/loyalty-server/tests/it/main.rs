//! Black-box tests of the `loyalty` server and CLI.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod access;
mod approvals;
mod bad_input;
mod chain;
mod concurrency;
mod config;
mod corrections;
mod correlation;
mod disk;
mod export;
mod ledger;
mod reads;
mod recovery;
mod reference;
mod reports;
mod shutdown;
mod slips;
mod smoke;
mod test_mode;
mod verify;
mod wallet;
mod webhooks;

//! Black-box tests of the event system (issue 5): dispatcher and
//! subscribers, dead letters, the live stream, the NATS relay and metrics.
//! Each test starts the real `loyalty` binary (see `tests/common`).

#[path = "../common/mod.rs"]
mod common;
mod support;

mod archive;
mod dispatch;
mod metrics;
mod nats;
mod stream;
mod subscribers;

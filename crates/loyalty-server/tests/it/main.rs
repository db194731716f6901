//! Black-box tests of the `loyalty` server and CLI.

#[path = "../common/mod.rs"]
mod common;

mod smoke;

//! The staff console in a real browser (issue 12; DESIGN §8): Debian's
//! headless Chromium driven over WebDriver (chromedriver), against the real
//! server. Each workflow asserts on what the page shows and then on what the
//! server stored. Without chromium and chromedriver every test says loudly
//! that it was skipped — and fails instead under `LOYALTY_CI=1`.
//!
//! `LOYALTY_CONSOLE_SCREENSHOTS=DIR` saves a screenshot of each main screen
//! there (the README shows the ones committed under docs/console/).

#[path = "../common/mod.rs"]
mod common;
mod support;

mod assets;
mod workflows;

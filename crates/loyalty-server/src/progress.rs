//! Progress bars for the long-running commands (`export` to a file,
//! `verify`, `migrate-to`, `bench`): drawn on stderr only when it is a
//! terminal — indicatif hides a bar whose target is not one — so output that
//! is piped or redirected stays exactly the data, and errors stay one line.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` units of `unit`, labelled `what`.
pub fn bar(len: u64, what: &str, unit: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!(
        "{{msg}} [{{bar:32}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, {{eta}} left)"
    );
    pb.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A bar of seconds, for a run of fixed length.
pub fn timed(seconds: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(seconds), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:32}] {pos}/{len} s")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

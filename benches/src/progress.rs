//! Progress bars (indicatif, on stderr; hidden when stderr is not a terminal
//! or when the caller turns them off).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// Makes the bars of one benchmark run.
#[derive(Clone, Copy, Debug)]
pub struct Bars {
    pub enabled: bool,
}

impl Bars {
    fn make(&self, len: u64) -> ProgressBar {
        if self.enabled {
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4))
        } else {
            ProgressBar::hidden()
        }
    }

    /// A bar counting items (accounts loaded, blocks committed, ...).
    pub fn count(&self, name: &str, len: u64, unit: &str) -> ProgressBar {
        let bar = self.make(len);
        let template = format!(
            "{{prefix:>22}} [{{bar:36.cyan/blue}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}}) {{msg}}"
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar
    }

    /// A bar for a phase that runs for a fixed time; its position is in milliseconds.
    pub fn timed(&self, name: &str, duration: Duration) -> ProgressBar {
        let bar = self.make(duration.as_millis().max(1) as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>22} [{bar:36.green/blue}] {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar
    }
}

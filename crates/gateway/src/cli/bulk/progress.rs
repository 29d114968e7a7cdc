//! Progress on stderr: a bar with rate and ETA on a terminal, a plain line every 10% otherwise
//! (logs and CI keep a readable record without control characters).

use std::io::IsTerminal as _;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Shows how far a run of `total` rows has got.
pub struct Progress {
    total: u64,
    done: u64,
    failed: u64,
    started: Instant,
    /// The bar, when stderr is a terminal.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let template = "{bar:40} {pos}/{len} rows  {msg}  ETA {eta}";
            bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar
        });
        Self { total, done: 0, failed: 0, started: Instant::now(), bar }
    }

    /// One more row done (`failed` when it did not end with a message).
    pub fn row_done(&mut self, failed: bool) {
        self.done += 1;
        self.failed += u64::from(failed);
        let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{rate:.0} rows/s, {} failed", self.failed));
            bar.inc(1);
            return;
        }
        let step = (self.total / 10).max(1);
        if self.done.is_multiple_of(step) || self.done == self.total {
            let eta = self.total.saturating_sub(self.done) as f64 / rate.max(0.001);
            eprintln!(
                "bulk: {}/{} rows ({}%), {} failed, {rate:.0} rows/s, ETA {eta:.0} s",
                self.done,
                self.total,
                self.done * 100 / self.total.max(1),
                self.failed
            );
        }
    }

    /// Removes the bar (the summary follows).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

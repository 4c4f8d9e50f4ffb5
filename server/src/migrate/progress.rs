//! Progress of one phase on stderr: an indicatif bar on a terminal, otherwise a plain line now
//! and then (logs and CI output stay readable).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed at most.
const LINE_INTERVAL: Duration = Duration::from_secs(2);

/// The bar's layout (`{len}` is left out for phases of unknown length).
const BAR: &str = "{prefix:>20} [{bar:30}] {pos}/{len} {elapsed}";
const SPINNER: &str = "{prefix:>20} {spinner} {pos} {elapsed}";

/// The progress of one phase.
pub(super) struct Progress {
    name: &'static str,
    total: Option<u64>,
    done: u64,
    output: Output,
}

enum Output {
    Bar(ProgressBar),
    Lines { last: Instant },
}

impl Progress {
    /// Starts a phase of `total` records (`None`: not known in advance).
    pub(super) fn start(name: &'static str, total: Option<u64>, bars: bool) -> Self {
        let output = if bars {
            Output::Bar(bar(name, total))
        } else {
            eprintln!(
                "{name}: copying{}",
                total.map_or(String::new(), |t| format!(" {t}"))
            );
            Output::Lines {
                last: Instant::now(),
            }
        };
        Self {
            name,
            total,
            done: 0,
            output,
        }
    }

    /// `n` more records done.
    pub(super) fn advance(&mut self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.done = self.done.saturating_add(n);
        match &mut self.output {
            Output::Bar(bar) => bar.inc(n),
            Output::Lines { last } if last.elapsed() >= LINE_INTERVAL => {
                *last = Instant::now();
                eprintln!("{}: {}", self.name, self.position());
            }
            Output::Lines { .. } => {}
        }
    }

    /// The phase is done.
    pub(super) fn finish(self) {
        match &self.output {
            Output::Bar(bar) => bar.finish(),
            Output::Lines { .. } => eprintln!("{}: done, {} records", self.name, self.done),
        }
    }

    fn position(&self) -> String {
        match self.total {
            Some(total) => format!("{}/{total}", self.done),
            None => self.done.to_string(),
        }
    }
}

/// A bar (or a spinner when the length is unknown) drawn on stderr.
fn bar(name: &'static str, total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (ProgressBar::new(total), BAR),
        None => (ProgressBar::new_spinner(), SPINNER),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.with_prefix(name)
}

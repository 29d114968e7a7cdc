//! What became of each row: the results CSV (one line per input row, in input order) and the
//! summary printed at the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The gateway stored a new message for it.
    Accepted,
    /// An earlier run already sent it: the gateway replayed that answer, nothing was sent again.
    Replayed,
    /// It was refused (by the gateway, or before sending because the row cannot be read).
    Failed,
    /// It was not attempted: the run stopped first (the token was refused).
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Replayed => "replayed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// The result of one data row.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// The data row's number: 1 is the first row after the header.
    pub row: u64,
    /// The row's `to` cell, as written.
    pub to: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The message's id, for an accepted or replayed row.
    pub message_id: Option<String>,
    /// The message's status in the gateway's answer.
    pub status: Option<String>,
    /// The kind of problem (`validation`, `invalid-row`, `unreachable`…), for a failed row.
    pub problem_type: Option<String>,
    /// The problem, for a failed or skipped row.
    pub problem: Option<String>,
}

impl RowResult {
    /// A row that ended with a problem of kind `problem_type`.
    pub fn failed(row: u64, to: String, problem_type: &str, problem: String) -> Self {
        Self {
            row,
            to,
            outcome: Outcome::Failed,
            message_id: None,
            status: None,
            problem_type: Some(problem_type.to_owned()),
            problem: Some(problem),
        }
    }

    /// A row not attempted because the run stopped for `reason`.
    pub fn skipped(row: u64, to: String, reason: &str) -> Self {
        let problem = Some(format!("not attempted: {reason}"));
        Self { row, to, outcome: Outcome::Skipped, message_id: None, status: None, problem_type: None, problem }
    }
}

/// The columns of the results file.
pub const HEADER: [&str; 7] = ["row", "to", "outcome", "message_id", "status", "problem_type", "problem"];

/// Writes the results file as rows finish, and counts them for the summary.
pub struct Results {
    writer: csv::Writer<File>,
    path: PathBuf,
    counts: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    accepted: u64,
    replayed: u64,
    failed: u64,
    skipped: u64,
    failed_by_problem: BTreeMap<String, u64>,
}

impl Results {
    /// Creates (or replaces) the results file at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut writer = csv::Writer::from_path(path).with_context(|| format!("cannot write the results file {}", path.display()))?;
        writer.write_record(HEADER)?;
        Ok(Self { writer, path: path.to_owned(), counts: Counts::default() })
    }

    /// Writes one row's result (rows arrive in input order).
    pub fn record(&mut self, r: &RowResult) -> anyhow::Result<()> {
        let c = &mut self.counts;
        c.total += 1;
        match r.outcome {
            Outcome::Accepted => c.accepted += 1,
            Outcome::Replayed => c.replayed += 1,
            Outcome::Skipped => c.skipped += 1,
            Outcome::Failed => {
                c.failed += 1;
                *c.failed_by_problem.entry(r.problem_type.clone().unwrap_or_default()).or_insert(0) += 1;
            }
        }
        let cell = |v: &Option<String>| v.clone().unwrap_or_default();
        let row = r.row.to_string();
        let record = [
            row,
            r.to.clone(),
            r.outcome.as_str().to_owned(),
            cell(&r.message_id),
            cell(&r.status),
            cell(&r.problem_type),
            cell(&r.problem),
        ];
        self.writer.write_record(&record).with_context(|| format!("cannot write the results file {}", self.path.display()))
    }

    /// Flushes the file and sums the run up.
    pub fn finish(mut self, elapsed: Duration, rate_limited: u64, retries: u64) -> anyhow::Result<Summary> {
        self.writer.flush().with_context(|| format!("cannot write the results file {}", self.path.display()))?;
        let c = self.counts;
        let secs = elapsed.as_secs_f64();
        Ok(Summary {
            total: c.total,
            accepted: c.accepted,
            replayed: c.replayed,
            failed: c.failed,
            skipped: c.skipped,
            failed_by_problem: c.failed_by_problem,
            rate_limited,
            retries,
            elapsed_ms: elapsed.as_millis() as u64,
            rows_per_sec: if secs > 0.0 { (c.total as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
            results: self.path.display().to_string(),
        })
    }
}

/// The end of a run, printed for people or as JSON (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Data rows read.
    pub total: u64,
    /// Rows the gateway stored a new message for.
    pub accepted: u64,
    /// Rows an earlier run had sent (the gateway replayed its answer).
    pub replayed: u64,
    /// Rows refused, by the gateway or before sending.
    pub failed: u64,
    /// Rows not attempted because the run stopped.
    pub skipped: u64,
    /// Failed rows per kind of problem.
    pub failed_by_problem: BTreeMap<String, u64>,
    /// 429 answers waited out (their rows were sent again, and are not failures).
    pub rate_limited: u64,
    /// Requests repeated after no answer, a 503 or a 409 in flight.
    pub retries: u64,
    /// Wall time of the run.
    pub elapsed_ms: u64,
    /// Rows per second.
    pub rows_per_sec: f64,
    /// The results file.
    pub results: String,
}

impl Summary {
    /// Whether every row ended with a message.
    pub fn all_sent(&self) -> bool {
        self.failed == 0 && self.skipped == 0
    }

    /// The summary as people read it.
    pub fn print(&self) {
        println!(
            "{} rows in {:.1} s ({} rows/s): {} accepted, {} replayed, {} failed{}",
            self.total,
            self.elapsed_ms as f64 / 1000.0,
            self.rows_per_sec,
            self.accepted,
            self.replayed,
            self.failed,
            if self.skipped > 0 { format!(", {} skipped", self.skipped) } else { String::new() }
        );
        for (kind, count) in &self.failed_by_problem {
            println!("  failed, {kind}: {count}");
        }
        if self.rate_limited > 0 || self.retries > 0 {
            println!("waited out {} rate limits; repeated {} requests", self.rate_limited, self.retries);
        }
        println!("results: {}", self.results);
    }
}

//! `bulk FILE.csv`: one message per data row, sent with bounded concurrency. Each row carries an
//! idempotency key derived from its content (see [`rows::RowKeys`]), so a rerun of the same file
//! — after a crash, a Ctrl-C, or to fix the bad rows — sends nothing twice: the gateway replays
//! the first answer and the row is counted `replayed`. Every row gets one line in the results
//! CSV, in input order; a summary closes the run; the exit code is 1 when any row failed.

mod progress;
mod results;
mod rows;
mod sender;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use futures_util::StreamExt as _;

use super::api::ApiArgs;
use progress::Progress;
use results::Results;
use rows::{Columns, RowKeys};
use sender::{Item, RowSender};

/// The file to send and how.
#[derive(Debug, Args)]
pub struct BulkArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The CSV file: a header row, then one message per row (columns: docs/cli.md).
    file: PathBuf,
    /// Where to write one result per row (default: FILE with `.results.csv` for its extension).
    #[arg(long, value_name = "PATH")]
    results: Option<PathBuf>,
    /// Rows in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Scope of the rows' idempotency keys (default: the file's name). Rerunning with the same
    /// prefix sends nothing twice; a new prefix sends every row again as new messages.
    #[arg(long, value_name = "TEXT")]
    key_prefix: Option<String>,
}

/// Sends every row of the file and writes the results file; prints the summary.
pub async fn run(args: BulkArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let results_path = args.results.clone().unwrap_or_else(|| args.file.with_extension("results.csv"));
    if same_file(&results_path, &args.file) {
        anyhow::bail!("the results file {} would overwrite the input", results_path.display());
    }
    let total = count_rows(&args.file)?;
    let mut reader = open(&args.file)?;
    let header = csv::StringRecord::from_byte_record(reader.byte_headers()?.clone())
        .map_err(|_| anyhow::anyhow!("the header row of {} is not valid UTF-8", args.file.display()))?;
    let columns = Columns::from_header(&header).with_context(|| format!("{} cannot be sent", args.file.display()))?;
    let prefix = args.key_prefix.clone().unwrap_or_else(|| file_name(&args.file));
    let mut keys = RowKeys::new(prefix);
    let mut results = Results::create(&results_path)?;
    let sender = RowSender::new(client);
    let mut progress = Progress::new(total);
    let started = Instant::now();
    // Rows past the counted total are not read: a file growing under the run waits for the next.
    let items = reader.byte_records().take(total as usize).enumerate().map(|(i, record)| item(i as u64 + 1, record, &columns, &mut keys));
    let mut finished = futures_util::stream::iter(items).map(|item| sender.send(item)).buffered(usize::from(args.concurrency));
    while let Some(result) = finished.next().await {
        progress.row_done(!matches!(result.outcome, results::Outcome::Accepted | results::Outcome::Replayed));
        results.record(&result)?;
    }
    drop(finished);
    progress.finish();
    let (rate_limited, retries) = sender.counters();
    let summary = results.finish(started.elapsed(), rate_limited, retries)?;
    if args.api.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        summary.print();
    }
    if let Some(reason) = sender.stopped() {
        anyhow::bail!("the run stopped: {reason}");
    }
    if !summary.all_sent() {
        anyhow::bail!("{} of {} rows were not sent; see {}", summary.failed + summary.skipped, summary.total, summary.results);
    }
    Ok(())
}

fn item(row: u64, record: csv::Result<csv::ByteRecord>, columns: &Columns, keys: &mut RowKeys) -> Item {
    let record = match record {
        Ok(record) => record,
        Err(e) => return Item { row, to: String::new(), request: Err(format!("the row cannot be read: {e}")) },
    };
    let request = columns.request(&record).map(|request| {
        let key = keys.key(&request);
        (request, key)
    });
    Item { row, to: columns.to_cell(&record), request }
}

fn open(path: &Path) -> anyhow::Result<csv::Reader<std::fs::File>> {
    // Flexible: a row with the wrong number of fields is that row's problem, not the file's.
    csv::ReaderBuilder::new().flexible(true).from_path(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Data rows in the file (for the progress bar), reading it once through.
fn count_rows(path: &Path) -> anyhow::Result<u64> {
    let mut reader = open(path)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while reader.read_byte_record(&mut record).with_context(|| format!("cannot read {} after data row {rows}", path.display()))? {
        rows += 1;
    }
    Ok(rows)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

//! `bulk`: one message per CSV row, a results file that says exactly what became of each row, and
//! a rerun that sends nothing twice.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;
use whatsapp_gateway::http::dto::MessageResource;

use super::{Run, TempDir, run_bin, run_cli};
use crate::helpers::{TestApp, TestOptions};

const LATER: &str = "2099-01-01T00:00:00Z";
const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
const ROWS: u64 = 2_000;

/// What a data row holds, and so what its line in the results file must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Free-form, held back until 2099: stored, never sent during the test.
    Later,
    /// A template due now: sent to Twilio (the emulator) once.
    Template,
    BadNumber,
    NoBody,
    BadSendAt,
    ShortRow,
    /// Two rows with the same content: two messages.
    Duplicate,
}

fn kind(row: u64) -> Kind {
    match (row % 200, row % 500, row) {
        (7, _, _) => Kind::BadNumber,
        (57, _, _) => Kind::NoBody,
        (107, _, _) => Kind::BadSendAt,
        (157, _, _) => Kind::ShortRow,
        (_, 250, _) => Kind::Template,
        (_, _, 1500 | 1501) => Kind::Duplicate,
        _ => Kind::Later,
    }
}

fn phone(row: u64) -> String {
    format!("+1415555{:04}", 100 + row % 100)
}

/// The input: `to,body,content_sid,var:1,reference,send_at`, with a quoted multi-line body on
/// row 3.
fn input_csv() -> String {
    let mut csv = String::from("to,body,content_sid,var:1,reference,send_at\n");
    for row in 1..=ROWS {
        let to = phone(row);
        let line = match kind(row) {
            Kind::Later if row == 3 => format!("{to},\"line one\nline \"\"two\"\"\",,,row-{row},{LATER}"),
            Kind::Later => format!("{to},bulk message {row},,,row-{row},{LATER}"),
            Kind::Template => format!("{to},,{TEMPLATE},Ada {row},row-{row},"),
            Kind::BadNumber => format!("+1415555,bulk message {row},,,row-{row},{LATER}"),
            Kind::NoBody => format!("{to},,,,row-{row},{LATER}"),
            Kind::BadSendAt => format!("{to},bulk message {row},,,row-{row},next tuesday"),
            Kind::ShortRow => format!("{to},bulk message {row},row-{row}"),
            Kind::Duplicate => format!("+14155550199,same text,,,dup,{LATER}"),
        };
        writeln!(csv, "{line}").unwrap();
    }
    csv
}

/// The results line expected for `row`, without its message id: (to, outcome, status,
/// problem_type, problem).
fn expected(row: u64, sent: &str) -> [String; 5] {
    let failed = |kind: &str, problem: &str| ["failed".into(), String::new(), kind.into(), problem.into()];
    let [outcome, status, problem_type, problem] = match kind(row) {
        Kind::Later | Kind::Template | Kind::Duplicate => [sent.into(), "pending".into(), String::new(), String::new()],
        Kind::BadNumber => failed("validation", "`to` is not a valid phone number: \"+1415555\""),
        Kind::NoBody => failed("validation", "`body` is required unless `media_urls` or `content_sid` is given"),
        Kind::BadSendAt => failed("validation", "`send_at` must be an RFC 3339 time such as 2026-01-31T09:30:00Z, got \"next tuesday\""),
        Kind::ShortRow => failed("invalid-row", "the row has 3 fields; the header has 6"),
    };
    let to = match kind(row) {
        Kind::BadNumber => "+1415555".to_owned(),
        Kind::Duplicate => "+14155550199".to_owned(),
        _ => phone(row),
    };
    [to, outcome, status, problem_type, problem]
}

/// The results file: (row, [to, outcome, status, problem_type, problem], message id), asserting
/// its header.
fn read_results(path: &Path) -> Vec<(u64, [String; 5], String)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, ["row", "to", "outcome", "message_id", "status", "problem_type", "problem"]);
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let cell = |i: usize| r[i].to_owned();
            (r[0].parse().unwrap(), [cell(1), cell(2), cell(4), cell(5), cell(6)], cell(3))
        })
        .collect()
}

/// Every stored message, by id.
async fn stored_messages(app: &TestApp) -> HashMap<String, MessageResource> {
    let (mut all, mut cursor) = (HashMap::new(), String::new());
    loop {
        let page = app.messages(&format!("?limit=500{cursor}")).await;
        all.extend(page.messages.into_iter().map(|m| (m.id.to_string(), m)));
        match page.next_cursor {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

fn summary(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:#?}"))
}

/// Checks a run's results line by line, and returns the message id of each accepted row.
fn check_results(path: &Path, sent: &str) -> HashMap<u64, String> {
    let results = read_results(path);
    assert_eq!(results.iter().map(|r| r.0).collect::<Vec<_>>(), (1..=ROWS).collect::<Vec<_>>(), "one line per row, in order");
    let mut ids = HashMap::new();
    for (row, line, id) in results {
        assert_eq!(line, expected(row, sent), "row {row}");
        if line[1] == sent {
            assert_eq!(id.len(), 36, "row {row} has a message id");
            ids.insert(row, id);
        } else {
            assert_eq!(id, "", "row {row} has no message");
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_reports_every_row_exactly_and_a_rerun_sends_nothing_twice() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("RATE_LIMIT_SEND_PER_MIN", "1000000".into())], ..Default::default() }).await;
    let dir = TempDir::new();
    let input = dir.0.join("campaign.csv");
    std::fs::write(&input, input_csv()).unwrap();
    let bad = (1..=ROWS).filter(|&r| !matches!(kind(r), Kind::Later | Kind::Template | Kind::Duplicate)).count() as u64;
    assert_eq!(bad, 40);

    let first = run_cli(&app, &dir.0, &["bulk", "campaign.csv", "--json"]).await;
    assert_eq!(first.code, 1, "rows failed: {first:#?}");
    assert!(first.stderr.ends_with("error: 40 of 2000 rows were not sent; see campaign.results.csv\n"), "{}", first.stderr);
    let s = summary(&first);
    assert_eq!(
        (s["total"].as_u64(), s["accepted"].as_u64(), s["replayed"].as_u64(), s["failed"].as_u64()),
        (Some(2000), Some(1960), Some(0), Some(40))
    );
    assert_eq!(s["failed_by_problem"], serde_json::json!({"invalid-row": 10, "validation": 30}));
    let ids = check_results(&dir.0.join("campaign.results.csv"), "accepted");

    let stored = stored_messages(&app).await;
    assert_eq!(stored.len(), 1960, "one message per good row");
    assert_eq!(ids.values().cloned().collect::<HashSet<_>>(), stored.keys().cloned().collect(), "each row names its own message");
    for (row, id) in &ids {
        let m = &stored[id];
        let reference = if kind(*row) == Kind::Duplicate { "dup".to_owned() } else { format!("row-{row}") };
        assert_eq!(
            (m.to.as_str(), m.reference.as_deref()),
            (expected(*row, "accepted")[0].as_str(), Some(reference.as_str())),
            "row {row}"
        );
    }
    assert_eq!(stored[&ids[&3]].body.as_deref(), Some("line one\nline \"two\""));
    assert_eq!(stored[&ids[&250]].content_sid.as_deref(), Some(TEMPLATE));

    let rerun = run_cli(&app, &dir.0, &["bulk", "campaign.csv", "--json", "--results", "rerun.csv", "--concurrency", "16"]).await;
    assert_eq!(rerun.code, 1, "{rerun:#?}");
    let s = summary(&rerun);
    assert_eq!((s["accepted"].as_u64(), s["replayed"].as_u64(), s["failed"].as_u64()), (Some(0), Some(1960), Some(40)));
    assert_eq!(check_results(&dir.0.join("rerun.csv"), "replayed"), ids, "every row maps to the same message");
    assert_eq!(stored_messages(&app).await.len(), 1960, "nothing stored twice");
    app.drain().await;
    assert_eq!(app.emulator.counters().messages_created, 4, "each due template went to Twilio once");
    app.finish().await;
}

fn rows_csv(rows: u64) -> String {
    let mut csv = String::from("to,body,send_at\n");
    for row in 1..=rows {
        writeln!(csv, "{},row {row},{LATER}", phone(row)).unwrap();
    }
    csv
}

#[tokio::test]
async fn bulk_waits_out_rate_limits_and_fails_no_row_for_them() {
    let vars = vec![("RATE_LIMIT_SEND_PER_MIN", "1200".into()), ("RATE_LIMIT_BURST", "5".into())];
    let app = TestApp::spawn_with(TestOptions { vars, ..Default::default() }).await;
    let dir = TempDir::new();
    std::fs::write(dir.0.join("limited.csv"), rows_csv(20)).unwrap();
    let run = run_cli(&app, &dir.0, &["bulk", "limited.csv", "--json"]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let s = summary(&run);
    assert_eq!((s["accepted"].as_u64(), s["failed"].as_u64()), (Some(20), Some(0)));
    assert!(s["rate_limited"].as_u64().unwrap() >= 1, "the gateway refused some requests with 429: {s}");
    assert_eq!(stored_messages(&app).await.len(), 20);
    app.finish().await;
}

#[tokio::test]
async fn bulk_refuses_a_file_it_cannot_read_and_stops_on_a_refused_token() {
    let app = TestApp::spawn().await;
    let dir = TempDir::new();
    std::fs::write(dir.0.join("typo.csv"), "to,bdy\n+14155550100,hi\n").unwrap();
    let typo = run_cli(&app, &dir.0, &["bulk", "typo.csv"]).await;
    assert_eq!(typo.code, 1);
    assert!(typo.stderr.contains("typo.csv cannot be sent: unknown column \"bdy\" in the header"), "{typo:#?}");
    assert!(!dir.0.join("typo.results.csv").exists(), "nothing started");

    std::fs::write(dir.0.join("rows.csv"), rows_csv(30)).unwrap();
    let args = ["bulk", "rows.csv", "--url", &app.base_url, "--token", "not-a-token", "--concurrency", "2"];
    let refused = run_bin(&dir.0, &args, &[]).await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("error: the run stopped: the gateway refused the token: "), "{refused:#?}");
    let results = read_results(&dir.0.join("rows.results.csv"));
    assert_eq!(results.len(), 30, "one line per row, sent or not");
    let outcomes: Vec<&str> = results.iter().map(|r| r.1[1].as_str()).collect();
    let failed = outcomes.iter().take_while(|o| **o == "failed").count();
    assert!((1..=2).contains(&failed), "only the rows in flight were tried: {outcomes:?}");
    assert!(outcomes[failed..].iter().all(|o| *o == "skipped"), "{outcomes:?}");
    assert_eq!(results[0].1[3], "unauthorized");
    assert_eq!(stored_messages(&app).await.len(), 0);
    app.finish().await;
}

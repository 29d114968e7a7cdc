//! The CLI's API verbs, run as the real binary against a running application: what they print
//! for people and for scripts, what they exit with, and what they did to the gateway.

mod bulk;

use std::path::Path;

use serde_json::{Value, json};
use whatsapp_gateway::domain::MessageStatus;
use whatsapp_gateway::http::dto::metrics::MetricsReport;
use whatsapp_gateway::http::dto::{DeliveryStatusView, MessagePage, MessageResource};

use crate::helpers::TestApp;
use crate::helpers::process::BIN;

/// What one run of the binary left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `whatsapp-gateway ARGS --url <app> --token <app's token>` in `dir`, with no `GATEWAY_*`
/// variables from the test's own environment.
pub async fn run_cli(app: &TestApp, dir: &Path, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--url", &app.base_url, "--token", &app.token]);
    run_bin(dir, &all, &[]).await
}

/// Runs the binary with exactly `args` and `env`.
pub async fn run_bin(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(BIN);
    command.args(args).current_dir(dir).env_remove("GATEWAY_URL").env_remove("GATEWAY_TOKEN").envs(env.iter().copied());
    let output = command.output().await.expect("the binary runs");
    Run {
        code: output.status.code().expect("the binary exits on its own"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A fresh folder for one test's files, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("wg-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ok(run: &Run) -> &str {
    assert_eq!(run.code, 0, "{run:#?}");
    &run.stdout
}

#[tokio::test]
async fn send_prints_the_id_and_status_and_json_prints_the_resource() {
    let app = TestApp::spawn().await;
    let dir = TempDir::new();
    let run = run_cli(&app, &dir.0, &["send", "--to", "+14155550170", "--body", "hello from the CLI", "--reference", "cli-1"]).await;
    let line = ok(&run).trim_end().to_owned();
    let (id, status) = line.split_once(' ').expect("`<id> <status>`");
    assert_eq!(status, "pending");
    let stored = app.delivery_status(id).await.message;
    assert_eq!((stored.body.as_deref(), stored.reference.as_deref()), (Some("hello from the CLI"), Some("cli-1")));

    let template = format!("HX{}", "b".repeat(32));
    let args = [
        "send",
        "--json",
        "--to",
        "+14155550171",
        "--content-sid",
        &template,
        "--var",
        "1=Ada",
        "--var",
        "2=Tuesday",
        "--priority",
        "2",
        "--send-at",
        "2099-01-01T00:00:00Z",
        "--metadata",
        r#"{"campaign":"spring"}"#,
    ];
    let sent: MessageResource = serde_json::from_str(ok(&run_cli(&app, &dir.0, &args).await)).unwrap();
    assert_eq!(sent, app.delivery_status(sent.id).await.message, "the JSON is the API's resource");
    assert_eq!((sent.content_sid.as_deref(), sent.priority, sent.status), (Some(template.as_str()), 2, MessageStatus::Pending));
    assert_eq!(sent.metadata, Some(json!({"campaign": "spring"})));
    assert_eq!(sent.next_attempt_at.as_deref(), Some("2099-01-01T00:00:00.000Z"));

    let keyed = ["send", "--to", "+14155550172", "--body", "once", "--idempotency-key", "cli-key-1"];
    let first = ok(&run_cli(&app, &dir.0, &keyed).await).to_owned();
    let again = ok(&run_cli(&app, &dir.0, &keyed).await).to_owned();
    let first_id = first.split(' ').next().unwrap();
    assert!(!first.contains("replayed"), "{first}");
    assert!(again.starts_with(&format!("{first_id} pending — replayed")), "{again}");
    assert_eq!(app.messages("?phone=%2B14155550172").await.messages.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_refused_send_prints_each_field_problem_and_exits_1() {
    let app = TestApp::spawn().await;
    let dir = TempDir::new();
    let run = run_cli(&app, &dir.0, &["send", "--to", "+1415555", "--body", "hi", "--priority", "11"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:#?}");
    assert_eq!(
        run.stderr,
        "error: 422 Invalid request\n  - to: is not a valid phone number: \"+1415555\"\n  \
         - priority: must be an integer from 1 (highest) to 10 (lowest), got 11\n"
    );
    let run = run_cli(&app, &dir.0, &["send", "--json", "--to", "+14155550173"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("  - body: is required unless `media_urls` or `content_sid` is given"), "{run:#?}");
    assert_eq!(app.messages("").await.messages.len(), 0, "nothing was stored");

    let no_token = run_bin(&dir.0, &["send", "--url", &app.base_url, "--to", "+14155550173", "--body", "x"], &[]).await;
    assert_eq!(no_token.code, 1);
    assert!(no_token.stderr.contains("no API token: pass --token or set GATEWAY_TOKEN"), "{no_token:#?}");
    assert!(no_token.stderr.contains("$(whatsapp-gateway token)"), "{no_token:#?}");
    let bad_token = run_bin(&dir.0, &["send", "--url", &app.base_url, "--token", "nope", "--to", "+14155550173", "--body", "x"], &[]).await;
    assert_eq!(bad_token.code, 1);
    assert!(bad_token.stderr.starts_with("error: 401 Unauthorized: "), "{bad_token:#?}");
    let usage = run_bin(&dir.0, &["send", "--body", "x"], &[]).await;
    assert_eq!(usage.code, 2, "a command-line mistake is clap's usage error: {usage:#?}");
    app.finish().await;
}

#[tokio::test]
async fn status_shows_timestamps_history_and_attempts_by_id_or_sid() {
    let app = TestApp::spawn().await;
    let dir = TempDir::new();
    app.open_window("+14155550174");
    let id = app.send_ok(json!({"to": "+14155550174", "body": "track me"})).await.id;
    let view = app.wait_for_status(id, MessageStatus::Read).await;
    let env = [("GATEWAY_URL", app.base_url.as_str()), ("GATEWAY_TOKEN", app.token.as_str())];
    let run = run_bin(&dir.0, &["status", &id.to_string()], &env).await;
    let text = ok(&run);
    let sid = view.message.message_sid.as_ref().unwrap().as_str();
    for expected in [
        format!("id              {id}\n"),
        format!("message_sid     {sid}\n"),
        "status          read\n".to_owned(),
        format!("read_at         {}\n", view.message.read_at.as_deref().unwrap()),
        "callback  delivered → read".to_owned(),
        "api       → pending".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} missing from:\n{text}");
    }
    let attempt = text.lines().skip_while(|l| *l != "send attempts").nth(2).expect("one attempt line");
    assert!(attempt.starts_with("1  accepted  ") && attempt.contains(sid), "{text}");

    let by_sid: DeliveryStatusView = serde_json::from_str(ok(&run_bin(&dir.0, &["status", "--json", "--sid", sid], &env).await)).unwrap();
    assert_eq!(by_sid, app.delivery_status(id).await);
    let unknown = run_bin(&dir.0, &["status", "01a20000-0000-7000-8000-000000000000"], &env).await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.starts_with("error: 404 Not found: "), "{unknown:#?}");
    app.finish().await;
}

#[tokio::test]
async fn messages_filters_lists_a_table_and_follows_pages_with_all() {
    let app = TestApp::spawn().await;
    let dir = TempDir::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let reference = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(app.send_ok(json!({"to": "+14155550175", "body": format!("m{i}"), "reference": reference})).await.id);
    }
    app.send_ok(json!({"to": "+14155550176", "body": "other"})).await;
    let even: MessagePage = serde_json::from_str(ok(&run_cli(&app, &dir.0, &["messages", "--json", "--reference", "even"]).await)).unwrap();
    assert_eq!(even.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[4], ids[2], ids[0]]);

    let all_args = ["messages", "--json", "--phone", "+14155550175", "--limit", "2", "--all"];
    let all: MessagePage = serde_json::from_str(ok(&run_cli(&app, &dir.0, &all_args).await)).unwrap();
    assert_eq!(all.messages.iter().map(|m| m.id).rev().collect::<Vec<_>>(), ids, "three pages, newest first");
    assert_eq!(all.next_cursor, None);

    let run = run_cli(&app, &dir.0, &["messages", "--phone", "+14155550175", "--limit", "2", "--direction", "outbound"]).await;
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(lines.len(), 3, "a header and two rows: {lines:?}");
    assert!(lines[0].starts_with("id  ") && lines[0].contains("status") && lines[0].ends_with("reference  error"), "{lines:?}");
    assert!(lines[1].starts_with(&ids[4].to_string()) && lines[1].contains("+14155550175  even"), "{lines:?}");
    assert!(run.stderr.contains("more messages: add --cursor "), "{run:#?}");
    let bad = run_cli(&app, &dir.0, &["messages", "--status", "lost"]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("  - status: "), "{bad:#?}");
    app.finish().await;
}

#[tokio::test]
async fn metrics_shows_totals_rates_and_delivery_times() {
    let app = TestApp::spawn().await;
    let dir = TempDir::new();
    app.open_window("+14155550177");
    for body in ["one", "two"] {
        let id = app.send_ok(json!({"to": "+14155550177", "body": body})).await.id;
        app.wait_for_status(id, MessageStatus::Read).await;
    }
    let run = run_cli(&app, &dir.0, &["metrics", "--to-phone", "+14155550177", "--granularity", "day"]).await;
    let text = ok(&run);
    assert!(text.starts_with("delivery metrics from ") && text.contains("(day buckets, to +14155550177)"), "{text}");
    assert!(text.contains("\ntotal 2  sent 2  delivered 2  read 2  failed 0  undelivered 0\n"), "{text}");
    assert!(text.contains("\ndelivery rate 100.00%  read rate 100.00%  failure rate 0.00%\n"), "{text}");
    assert!(text.contains("\ndelivery time: average ") && text.contains("  p95 "), "{text}");

    let report: MetricsReport =
        serde_json::from_str(ok(&run_cli(&app, &dir.0, &["metrics", "--json", "--to-phone", "+14155550177"]).await)).unwrap();
    assert_eq!(report.totals, app.metrics("?to_phone=%2B14155550177").await.totals);
    assert_eq!((report.totals.total, report.totals.read), (2, 2));
    let bad = run_cli(&app, &dir.0, &["metrics", "--granularity", "week"]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("  - granularity: must be `hour` or `day`, got \"week\""), "{bad:#?}");
    app.finish().await;
}

#[tokio::test]
async fn retry_redrives_dead_letters_by_id_and_by_filter_and_says_which_it_could_not() {
    use crate::helpers::TestOptions;
    use twilio_emulator::Behaviour;
    let app = TestApp::spawn_with(TestOptions { vars: vec![("MAX_ATTEMPTS", "1".into())], ..Default::default() }).await;
    let dir = TempDir::new();
    let (a, b) = ("+14155550176", "+14155550177");
    for phone in [a, b] {
        app.open_window(phone);
        app.emulator.set_behaviour(phone, Behaviour { server_error_first: 1, ..Default::default() });
    }
    let first = app.send_ok(json!({"to": a, "body": "one"})).await.id;
    let second = app.send_ok(json!({"to": b, "body": "two"})).await.id;
    for id in [first, second] {
        app.wait_for_status(id, MessageStatus::DeadLettered).await;
    }

    let by_id = run_cli(&app, &dir.0, &["retry", &first.to_string()]).await;
    let text = ok(&by_id);
    assert!(text.contains(&first.to_string()) && text.contains("pending") && text.ends_with("1 redriven\n"), "{text}");
    app.wait_for_status(first, MessageStatus::Read).await;

    let again = run_cli(&app, &dir.0, &["retry", &first.to_string()]).await;
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(again.stderr.contains("409") && again.stderr.contains("only a dead-lettered message"), "{again:#?}");

    let bulk = run_cli(&app, &dir.0, &["retry", "--dead-lettered", "--phone", b, "--json"]).await;
    let result: Value = serde_json::from_str(ok(&bulk)).unwrap();
    assert_eq!(result["redriven"], 1);
    assert_eq!(result["messages"][0]["id"], second.to_string());
    app.wait_for_status(second, MessageStatus::Read).await;
    let none = run_cli(&app, &dir.0, &["retry", "--dead-lettered"]).await;
    assert_eq!(ok(&none), "no dead-lettered message matches\n");
    app.finish().await;
}

#[tokio::test]
async fn cancel_withdraws_a_scheduled_message_and_reports_the_one_it_could_not() {
    let app = TestApp::spawn().await;
    let dir = TempDir::new();
    let later =
        (time::OffsetDateTime::now_utc() + time::Duration::hours(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let id = app.send_ok(json!({"to": "+14155550178", "body": "later", "send_at": later})).await.id;
    let unknown = "01a20000-0000-7000-8000-000000000000";
    let run = run_cli(&app, &dir.0, &["cancel", &id.to_string(), unknown]).await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains(&id.to_string()) && run.stdout.contains("canceled") && run.stdout.ends_with("1 canceled\n"), "{run:#?}");
    assert!(run.stderr.contains(unknown) && run.stderr.contains("404"), "{run:#?}");
    assert_eq!(app.delivery_status(id).await.message.status, MessageStatus::Canceled);
    app.finish().await;
}

#[tokio::test]
async fn send_with_a_fallback_template_outside_the_window_and_force_to_a_suppressed_number() {
    let app = crate::helpers::TestApp::spawn_with(crate::helpers::TestOptions {
        vars: vec![("WHATSAPP_WINDOW_CHECK", "true".into())],
        ..Default::default()
    })
    .await;
    let dir = TempDir::new();
    let template = format!("HX{}", "c".repeat(32));
    // The contact never wrote: refused without a fallback, sent as the fallback with one.
    let refused = run_cli(&app, &dir.0, &["send", "--to", "+14155550175", "--body", "hi"]).await;
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(refused.stderr.contains("outside the 24-hour window"), "{}", refused.stderr);
    let args = ["send", "--json", "--to", "+14155550175", "--body", "hi", "--fallback-content-sid", &template, "--fallback-var", "1=Ada"];
    let sent: MessageResource = serde_json::from_str(ok(&run_cli(&app, &dir.0, &args).await)).unwrap();
    assert_eq!((sent.content_sid.as_deref(), sent.fallback_content_sid.as_deref()), (Some(template.as_str()), Some(template.as_str())));

    // A number Twilio refused for good is refused, unless forced.
    let phone = "+14155550176";
    let error = twilio_emulator::RestError { status: 400, code: 21211, message: String::new() };
    app.emulator.set_behaviour(phone, twilio_emulator::Behaviour { rest_error: Some(error), ..Default::default() });
    let first = ok(&run_cli(&app, &dir.0, &["send", "--to", phone, "--content-sid", &template]).await).to_owned();
    app.wait_for_status(first.split(' ').next().unwrap(), MessageStatus::Failed).await;
    let refused = run_cli(&app, &dir.0, &["send", "--to", phone, "--content-sid", &template]).await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("is suppressed"), "{}", refused.stderr);
    let forced = ok(&run_cli(&app, &dir.0, &["send", "--to", phone, "--content-sid", &template, "--force"]).await).to_owned();
    assert!(forced.trim_end().ends_with("pending"), "{forced}");
    app.finish().await;
}

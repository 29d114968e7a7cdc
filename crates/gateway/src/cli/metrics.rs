//! `metrics`: delivery metrics, for people or as the API's JSON.

use clap::Args;

use super::api::ApiArgs;
use super::output::{duration_ms, print_json, print_table};
use crate::http::dto::metrics::{MetricsReport, Summary};

/// The range, bucket size and recipient, named as the API's query parameters.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Start of the range, RFC 3339 (the gateway's default: 24 hours, or 30 days, before `--to`).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the range, RFC 3339 (default now).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Bucket size: `hour` (default) or `day`.
    #[arg(long)]
    granularity: Option<String>,
    /// Only messages to this number (E.164).
    #[arg(long, value_name = "PHONE")]
    to_phone: Option<String>,
}

/// Fetches the report; totals, rates, delivery times and buckets for people.
pub async fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let params = [("from", args.from), ("to", args.to), ("granularity", args.granularity), ("to_phone", args.to_phone)];
    let query: Vec<(&str, String)> = params.into_iter().filter_map(|(name, value)| value.map(|v| (name, v))).collect();
    let answer = client.metrics(&query).await?;
    if args.api.json {
        print_json(&answer.raw);
    } else {
        print_report(&answer.body);
    }
    Ok(())
}

fn print_report(report: &MetricsReport) {
    let phone = report.to_phone.as_deref().map(|p| format!(", to {p}")).unwrap_or_default();
    println!("delivery metrics from {} to {} ({} buckets{phone})", report.from, report.to, report.granularity);
    print_summary(&report.totals);
    if report.buckets.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = report
        .buckets
        .iter()
        .map(|b| {
            let s = &b.summary;
            let p50 = s.p50_delivery_time_ms.map(duration_ms).unwrap_or_default();
            let counts = [s.total, s.sent, s.delivered, s.read, s.failed, s.undelivered];
            let mut row = vec![b.start.clone()];
            row.extend(counts.iter().map(i64::to_string));
            row.extend([format!("{:.2}%", s.delivery_rate), p50]);
            row
        })
        .collect();
    print_table(&["bucket", "total", "sent", "delivered", "read", "failed", "undelivered", "delivery", "p50"], &rows);
}

fn print_summary(s: &Summary) {
    println!(
        "total {}  sent {}  delivered {}  read {}  failed {}  undelivered {}",
        s.total, s.sent, s.delivered, s.read, s.failed, s.undelivered
    );
    println!("delivery rate {:.2}%  read rate {:.2}%  failure rate {:.2}%", s.delivery_rate, s.read_rate, s.failure_rate);
    let time = |ms: Option<f64>| ms.map_or_else(|| "—".to_owned(), duration_ms);
    println!(
        "delivery time: average {}  p50 {}  p95 {}",
        time(s.average_delivery_time_ms),
        time(s.p50_delivery_time_ms),
        time(s.p95_delivery_time_ms)
    );
    if !s.error_breakdown.is_empty() {
        let errors: Vec<String> = s.error_breakdown.iter().map(|(code, count)| format!("{code} ×{count}")).collect();
        println!("errors: {}", errors.join(", "));
    }
}

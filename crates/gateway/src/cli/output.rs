//! Printing for the API verbs: JSON for scripts, aligned text for people.

use serde_json::Value;

/// Prints one JSON document on one line (several documents make JSON Lines).
pub fn print_json(value: &Value) {
    println!("{value}");
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `—` for an absent value.
pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("—").to_owned()
}

/// Milliseconds as people read them: `850 ms`, `1.25 s`, `3.5 min`.
pub fn duration_ms(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.2} s", ms / 1_000.0)
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

//! `GET …/Messages.json`: filters (`To`, `From`, `DateSent`, `DateSent<`, `DateSent>`), newest
//! first, paged with `PageSize` / `Page` / `PageToken`, in Twilio's `ListMessageResponse` shape
//! with relative URIs that keep the filters.
//!
//! Page tokens are `PA<sid>` ("the page after this message") and `PB<sid>` ("the page before
//! this message"), so a page stays stable while new messages arrive.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use time::Date;
use time::macros::format_description;

use crate::Emulator;
use crate::auth::Authenticated;
use crate::behaviour::lock;
use crate::error::TwilioError;
use crate::model::{API_VERSION, Message, MessageJson, strip_channel};

/// Default and largest `PageSize`.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;
const FILTER_NAMES: [&str; 5] = ["To", "From", "DateSent", "DateSent<", "DateSent>"];

#[derive(Serialize)]
pub(crate) struct ListPage {
    end: usize,
    first_page_uri: String,
    next_page_uri: Option<String>,
    page: usize,
    page_size: usize,
    previous_page_uri: Option<String>,
    start: usize,
    uri: String,
    messages: Vec<MessageJson>,
}

/// The parsed query.
struct ListQuery {
    filters: Vec<(String, String)>,
    to: Option<String>,
    from: Option<String>,
    sent_on: Option<Date>,
    sent_before: Option<Date>,
    sent_after: Option<Date>,
    page_size: usize,
    page: usize,
    page_token: Option<String>,
}

impl ListQuery {
    fn parse(raw: &str) -> Result<Self, TwilioError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty());
        let date = |name: &str| get(name).map(|v| parse_date(name, &v)).transpose();
        let number = |name: &str| get(name).map(|v| v.parse::<usize>().map_err(|_| invalid(name, &v))).transpose();
        Ok(Self {
            filters: pairs.iter().filter(|(k, v)| FILTER_NAMES.contains(&k.as_str()) && !v.is_empty()).cloned().collect(),
            to: get("To"),
            from: get("From"),
            sent_on: date("DateSent")?,
            sent_before: date("DateSent<")?,
            sent_after: date("DateSent>")?,
            page_size: number("PageSize")?.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
            page: number("Page")?.unwrap_or(0),
            page_token: get("PageToken"),
        })
    }

    fn keeps(&self, m: &Message) -> bool {
        let same = |filter: &Option<String>, value: Option<&str>| {
            filter.as_deref().is_none_or(|f| value.is_some_and(|v| strip_channel(v) == strip_channel(f)))
        };
        let sent = m.date_sent.map(|d| d.date());
        let date_ok = |filter: Option<Date>, ok: fn(Date, Date) -> bool| filter.is_none_or(|f| sent.is_some_and(|s| ok(s, f)));
        same(&self.to, Some(&m.to))
            && same(&self.from, m.from.as_deref())
            && date_ok(self.sent_on, |s, f| s == f)
            && date_ok(self.sent_before, |s, f| s <= f)
            && date_ok(self.sent_after, |s, f| s >= f)
    }

    /// Relative URI of page `page`, with the filters and an optional token.
    fn uri(&self, account_sid: &str, page: usize, token: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(&self.filters);
        query.append_pair("PageSize", &self.page_size.to_string());
        query.append_pair("Page", &page.to_string());
        if let Some(token) = token {
            query.append_pair("PageToken", token);
        }
        format!("/{API_VERSION}/Accounts/{account_sid}/Messages.json?{}", query.finish())
    }
}

fn parse_date(name: &str, value: &str) -> Result<Date, TwilioError> {
    Date::parse(value, format_description!("[year]-[month]-[day]")).map_err(|_| invalid(name, value))
}

fn invalid(name: &str, value: &str) -> TwilioError {
    TwilioError::bad_request(20001, format!("Invalid {name}: {value}"))
}

/// Where a page starts in the filtered, newest-first list.
fn page_start(all: &[&Message], query: &ListQuery) -> usize {
    let position = |sid: &str| all.iter().position(|m| m.sid == sid);
    match query.page_token.as_deref() {
        Some(token) if token.starts_with("PA") => position(&token[2..]).map_or(query.page * query.page_size, |i| i + 1),
        Some(token) if token.starts_with("PB") => {
            position(&token[2..]).map_or(query.page * query.page_size, |i| i.saturating_sub(query.page_size))
        }
        _ => query.page * query.page_size,
    }
}

pub(crate) async fn list(
    State(emu): State<Emulator>,
    _auth: Authenticated,
    Path(account_sid): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ListPage>, TwilioError> {
    let query = ListQuery::parse(raw.as_deref().unwrap_or(""))?;
    let store = lock(&emu.shared.store);
    let all: Vec<&Message> = store.newest_first(|m| query.keeps(m)).collect();
    let start = page_start(&all, &query).min(all.len());
    let items = &all[start..(start + query.page_size).min(all.len())];
    let has_next = start + items.len() < all.len();
    let next_page_uri = match items.last() {
        Some(last) if has_next => Some(query.uri(&account_sid, query.page + 1, Some(&format!("PA{}", last.sid)))),
        _ => None,
    };
    let previous_page_uri = match items.first() {
        Some(first) if query.page > 0 && start > 0 => Some(query.uri(&account_sid, query.page - 1, Some(&format!("PB{}", first.sid)))),
        _ => None,
    };
    Ok(Json(ListPage {
        end: start + items.len().saturating_sub(1),
        first_page_uri: query.uri(&account_sid, 0, None),
        next_page_uri,
        page: query.page,
        page_size: query.page_size,
        previous_page_uri,
        start,
        uri: query.uri(&account_sid, query.page, query.page_token.as_deref()),
        messages: items.iter().map(|m| m.to_json()).collect(),
    }))
}

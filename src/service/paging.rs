//! Page tokens for lists ordered newest first: the last item's receipt time and id.

use chrono::{DateTime, Utc};

use crate::domain::{DomainError, DomainResult, case::Case};

/// The token that continues after `case`.
pub fn token_after(case: &Case) -> String {
    token_at(case.received_at, &case.id)
}

/// The token that continues after the item at `at` with `id` (cases by receipt, alerts by
/// when they were raised).
pub fn token_at(at: DateTime<Utc>, id: &str) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

/// A token back to its `(received_at, id)` cursor; empty means the first page.
pub fn cursor(token: &str) -> DomainResult<Option<(DateTime<Utc>, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || DomainError::invalid("page.page_token", "not a token this service issued");
    let (micros, id) = token.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(Some((at, id.to_owned())))
}

/// Trims a fetched page of `size + 1` rows to `size`, with the token for the next page.
pub fn page(mut cases: Vec<Case>, size: usize) -> (Vec<Case>, String) {
    if cases.len() > size {
        cases.truncate(size);
        let next = cases.last().map(token_after).unwrap_or_default();
        (cases, next)
    } else {
        (cases, String::new())
    }
}

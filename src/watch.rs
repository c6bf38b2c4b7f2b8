//! `gridcase watch`: the reference client of `WatchEvents`. It follows the stream with a token,
//! prints each event as one JSON object on a line, and after a dropped connection (a server
//! restarting, a network cut, a stream ended with UNAVAILABLE) resumes after the last sequence
//! it printed, so its output holds every event once, in order.

use std::{io::Write, time::Duration};

use tokio_stream::StreamExt;
use tonic::{Code, Request, transport::Endpoint};

use crate::proto::v1::{
    CaseEvent, CaseStatus, Role, WatchEventsRequest, gateway_service_client::GatewayServiceClient,
};

/// What to follow, and where.
#[derive(Debug, Clone)]
pub struct Watch {
    /// `http://host:port` of any replica.
    pub target: String,
    pub token: String,
    /// Resume after this sequence; 0 from the start.
    pub after: i64,
    pub kinds: Vec<String>,
    pub region_code: String,
    /// Stop after this many events (for scripts and tests); `None`: follow for good.
    pub limit: Option<u64>,
}

/// Why watching stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The server refused the request itself (a bad token or filter): retrying cannot help.
    #[error("{0}")]
    Refused(String),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Follows until `limit` events are printed (or for good), resuming after every drop. Returns
/// the last sequence printed.
pub async fn run(watch: Watch, out: &mut impl Write) -> Result<i64, WatchError> {
    let mut after = watch.after;
    let mut printed: u64 = 0;
    let mut backoff = Duration::from_millis(200);
    loop {
        match follow_once(&watch, after, &mut printed, out).await {
            Ok(last) => {
                after = last;
                if watch.limit.is_some_and(|l| printed >= l) {
                    return Ok(after);
                }
                backoff = Duration::from_millis(200);
            }
            Err(Drop::Refused(m)) => return Err(WatchError::Refused(m)),
            Err(Drop::Output(e)) => return Err(WatchError::Output(e)),
            Err(Drop::Again { last, why }) => {
                if last > after {
                    backoff = Duration::from_millis(200);
                }
                after = last;
                eprintln!(
                    "gridcase watch: {why}; resuming after {after} in {} ms",
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

enum Drop {
    Again { last: i64, why: String },
    Refused(String),
    Output(std::io::Error),
}

/// One connection's worth of the stream; the last sequence printed when it ends.
async fn follow_once(
    watch: &Watch,
    after: i64,
    printed: &mut u64,
    out: &mut impl Write,
) -> Result<i64, Drop> {
    let again = |last: i64, why: String| Drop::Again { last, why };
    let channel = Endpoint::from_shared(watch.target.clone())
        .map_err(|e| Drop::Refused(format!("target {:?}: {e}", watch.target)))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| again(after, format!("cannot connect to {}: {e}", watch.target)))?;
    let mut request = Request::new(WatchEventsRequest {
        after_sequence: after,
        kinds: watch.kinds.clone(),
        region_code: watch.region_code.clone(),
    });
    let bearer = format!("Bearer {}", watch.token)
        .parse()
        .map_err(|_| Drop::Refused("the token is not a valid header value".into()))?;
    request.metadata_mut().insert("authorization", bearer);
    let mut stream = match GatewayServiceClient::new(channel)
        .watch_events(request)
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return Err(classify(after, status)),
    };
    let mut last = after;
    loop {
        match stream.next().await {
            Some(Ok(event)) => {
                // At least once: a sequence already printed is not printed again.
                if event.sequence <= last {
                    continue;
                }
                last = event.sequence;
                writeln!(out, "{}", line_of(&event)).map_err(Drop::Output)?;
                out.flush().map_err(Drop::Output)?;
                *printed += 1;
                if watch.limit.is_some_and(|l| *printed >= l) {
                    return Ok(last);
                }
            }
            Some(Err(status)) => return Err(classify(last, status)),
            None => return Err(again(last, "the stream ended".into())),
        }
    }
}

fn classify(last: i64, status: tonic::Status) -> Drop {
    match status.code() {
        Code::Unauthenticated
        | Code::PermissionDenied
        | Code::InvalidArgument
        | Code::NotFound
        | Code::Unimplemented => {
            Drop::Refused(format!("{:?}: {}", status.code(), status.message()))
        }
        _ => Drop::Again {
            last,
            why: format!("{:?}: {}", status.code(), status.message()),
        },
    }
}

/// One event as a JSON object: the contract's field names, enums by their names, details as
/// the JSON they are.
pub fn line_of(e: &CaseEvent) -> String {
    let status = |s: i32| {
        CaseStatus::try_from(s)
            .ok()
            .filter(|s| *s != CaseStatus::Unspecified)
            .map(|s| {
                s.as_str_name()
                    .trim_start_matches("CASE_STATUS_")
                    .to_lowercase()
            })
    };
    let role = Role::try_from(e.actor_role)
        .ok()
        .filter(|r| *r != Role::Unspecified)
        .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase());
    let details: serde_json::Value =
        serde_json::from_str(&e.details_json).unwrap_or(serde_json::Value::Null);
    let at = e.at.as_ref().and_then(|t| {
        chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            .map(|t| t.to_rfc3339())
    });
    serde_json::json!({
        "sequence": e.sequence,
        "case_id": e.case_id,
        "case_code": e.case_code,
        "kind": e.kind,
        "actor_sub": e.actor_sub,
        "actor_role": role,
        "at": at,
        "from_status": status(e.from_status),
        "to_status": status(e.to_status),
        "reason": e.reason,
        "details": details,
        "notify_units": e.notify_units,
        "notify_members": e.notify_members,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
    .to_string()
}

//! `gridcase export cases|stats`: the command-line client of `ExportCases` and `ExportStats`.
//! It writes the CSV stream as it comes, to a file or to standard output. A file is written
//! beside its name (`NAME.part`) and renamed only when the stream ended with OK, so a file of
//! that name is always a whole export; after an error the part is removed and the command
//! fails.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio_stream::StreamExt;
use tonic::{Request, Streaming, transport::Endpoint};

use crate::proto::v1::{
    ExportCasesRequest, ExportChunk, ExportStatsRequest, case_service_client::CaseServiceClient,
    stats_service_client::StatsServiceClient,
};

/// Where to export from, with which token, and where to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` of any replica.
    pub target: String,
    pub token: String,
    /// A file to write; `None`: standard output.
    pub out: Option<PathBuf>,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub rows: i64,
    pub bytes: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {target}: {error}")]
    Connect { target: String, error: String },
    #[error("the server answered {code:?}: {message}")]
    Status { code: tonic::Code, message: String },
    #[error("writing {path}: {error}")]
    Output { path: String, error: std::io::Error },
}

impl From<tonic::Status> for ExportError {
    fn from(s: tonic::Status) -> Self {
        ExportError::Status {
            code: s.code(),
            message: s.message().to_owned(),
        }
    }
}

/// A case status by its contract name, lowercase without the prefix (`registered`,
/// `in_progress`) or whole (`CASE_STATUS_REGISTERED`).
pub fn case_status(name: &str) -> Result<i32, ExportError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CASE_STATUS_") {
        upper
    } else {
        format!("CASE_STATUS_{upper}")
    };
    crate::proto::v1::CaseStatus::from_str_name(&full)
        .filter(|s| *s != crate::proto::v1::CaseStatus::Unspecified)
        .map(i32::from)
        .ok_or_else(|| {
            ExportError::Usage(format!(
                "--status {name:?}: not a case status (submitted, registered, dispatched, \
                 accepted, in_progress, resolved, closed, returned, merged, cancelled)"
            ))
        })
}

/// A ranking figure by name (`on_time_rate`, `satisfaction_rate`, `resolution_rate`,
/// `overdue`).
pub fn rank_figure(name: &str) -> Result<i32, ExportError> {
    let full = format!("RANK_FIGURE_{}", name.trim().to_ascii_uppercase());
    crate::proto::v1::RankFigure::from_str_name(&full)
        .filter(|f| *f != crate::proto::v1::RankFigure::Unspecified)
        .map(i32::from)
        .ok_or_else(|| {
            ExportError::Usage(format!(
                "--figure {name:?}: one of on_time_rate, satisfaction_rate, resolution_rate, \
                 overdue"
            ))
        })
}

/// A time flag: RFC 3339 (`2026-11-01T00:00:00+08:00`), or a date (`2026-11-01`) meaning its
/// 00:00 in Beijing time.
pub fn time_flag(flag: &str, value: &str) -> Result<prost_types::Timestamp, ExportError> {
    use chrono::TimeZone;
    let at = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        t.with_timezone(&chrono::Utc)
    } else if let Ok(day) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        crate::domain::calendar::SHANGHAI
            .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
            .single()
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| ExportError::Usage(format!("{flag} {value:?}: not a valid day")))?
    } else {
        return Err(ExportError::Usage(format!(
            "{flag} {value:?}: give RFC 3339 (2026-11-01T00:00:00+08:00) or a day (2026-11-01)"
        )));
    };
    Ok(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

fn authed<T>(message: T, token: &str) -> Result<Request<T>, ExportError> {
    let mut request = Request::new(message);
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| ExportError::Usage("the token is not a valid header value".into()))?;
    request.metadata_mut().insert("authorization", bearer);
    Ok(request)
}

async fn channel(target: &str) -> Result<tonic::transport::Channel, ExportError> {
    Endpoint::from_shared(target.to_owned())
        .map_err(|e| ExportError::Usage(format!("--target {target:?}: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| ExportError::Connect {
            target: target.to_owned(),
            error: e.to_string(),
        })
}

/// `ExportCases` into `to.out`.
pub async fn cases(to: &Target, request: ExportCasesRequest) -> Result<Written, ExportError> {
    let mut client = CaseServiceClient::new(channel(&to.target).await?);
    let stream = client
        .export_cases(authed(request, &to.token)?)
        .await?
        .into_inner();
    write(stream, to.out.as_deref()).await
}

/// `ExportStats` into `to.out`.
pub async fn stats(to: &Target, request: ExportStatsRequest) -> Result<Written, ExportError> {
    let mut client = StatsServiceClient::new(channel(&to.target).await?);
    let stream = client
        .export_stats(authed(request, &to.token)?)
        .await?
        .into_inner();
    write(stream, to.out.as_deref()).await
}

/// Writes the chunks as they come: to `out` through `out.part`, renamed when the stream ended
/// with OK and removed otherwise; or to standard output.
async fn write(stream: Streaming<ExportChunk>, out: Option<&Path>) -> Result<Written, ExportError> {
    match out {
        None => {
            let stdout = std::io::stdout();
            copy(stream, &mut stdout.lock(), "standard output").await
        }
        Some(path) => {
            let mut part = path.as_os_str().to_owned();
            part.push(".part");
            let part = PathBuf::from(part);
            let shown = path.display().to_string();
            let output = |error| ExportError::Output {
                path: shown.clone(),
                error,
            };
            let file = std::fs::File::create(&part).map_err(output)?;
            let mut file = std::io::BufWriter::new(file);
            let result = copy(stream, &mut file, &shown).await.and_then(|written| {
                let file = file.into_inner().map_err(|e| output(e.into_error()))?;
                file.sync_all().map_err(output)?;
                std::fs::rename(&part, path).map_err(output)?;
                Ok(written)
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&part);
            }
            result
        }
    }
}

async fn copy(
    mut stream: Streaming<ExportChunk>,
    out: &mut impl Write,
    shown: &str,
) -> Result<Written, ExportError> {
    let output = |error| ExportError::Output {
        path: shown.to_owned(),
        error,
    };
    let mut written = Written { rows: 0, bytes: 0 };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        out.write_all(&chunk.data).map_err(output)?;
        written.rows += chunk.rows;
        written.bytes += chunk.data.len() as u64;
    }
    out.flush().map_err(output)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_figures_by_name() {
        assert_eq!(case_status("registered").unwrap(), 2);
        assert_eq!(case_status("IN_PROGRESS").unwrap(), 5);
        assert_eq!(case_status("CASE_STATUS_CLOSED").unwrap(), 7);
        assert!(case_status("unspecified").is_err());
        assert!(case_status("done").is_err());
        assert_eq!(rank_figure("overdue").unwrap(), 4);
        assert!(rank_figure("speed").is_err());
    }

    #[test]
    fn days_are_beijing_midnight() {
        let t = time_flag("--from", "2026-11-01").unwrap();
        assert_eq!(
            t.seconds,
            chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00+08:00")
                .unwrap()
                .timestamp()
        );
        assert_eq!(
            time_flag("--to", "2026-11-01T12:00:00Z").unwrap().seconds,
            chrono::DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z")
                .unwrap()
                .timestamp()
        );
        assert!(time_flag("--from", "yesterday").is_err());
    }
}

//! CSV exports (`ExportCases`, `ExportStats`): one CSV file streamed as `ExportChunk`s.
//!
//! The file is UTF-8 with a byte order mark (Excel in a Chinese locale reads a file without
//! one in the local code page, GBK, and garbles it), a header row of stable Chinese column
//! names (README.md "Exports"), then one row per case or entry, CRLF line ends, every field
//! quoted by the `csv` crate where RFC 4180 needs it (commas, quotes, line breaks).
//!
//! A case's row is built from the case as `convert::case_for` shows it to the caller: the same
//! masked phone, the same hidden references to other cases for a gateway, as `ListCases`
//! answers.
//!
//! Text that people typed (descriptions, addresses, results, comments, and any other text
//! cell) is guarded against formula injection: a cell that starts with `=`, `+`, `-`, `@`, a
//! tab or a carriage return (or their full-width forms `＝＋－＠`) gets a leading apostrophe, so
//! a spreadsheet shows it as text instead of running it. Numbers and times that gridcase writes
//! itself are left as they are.
//!
//! An export of cases holds at most one page of cases
//! ([`EXPORT_PAGE`](crate::service::cases::EXPORT_PAGE)), the chunk being
//! filled, and [`QUEUED_CHUNKS`] chunks waiting to be sent: the task that reads the pages waits
//! on a bounded channel whenever the client reads slower than the database answers, so the
//! server's memory does not grow with the number of cases.

use std::{borrow::Cow, pin::Pin, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::Status;
use tracing::Instrument;

use super::convert::case_for;
use crate::{
    domain::{Caller, DomainError, calendar::SHANGHAI, directory::Directory, sla::SlaState},
    proto::v1 as pb,
    service::{LiveDirectory, cases::CaseExport, stats::Ranked},
};

/// The byte order mark that starts every export.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A chunk is sent once it holds at least this many bytes (and ends at a row's end).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks made and not yet taken by the client's stream: the most an export keeps waiting.
pub const QUEUED_CHUNKS: usize = 4;

/// A stream of export chunks, as a handler answers it.
pub type ChunkStream =
    Pin<Box<dyn Stream<Item = Result<pb::ExportChunk, Status>> + Send + 'static>>;

/// Rows written into a buffer that is handed out as chunks, each ending at a row's end.
#[derive(Debug)]
pub struct Chunker {
    writer: csv::Writer<Vec<u8>>,
    /// Rows written since the last chunk was taken.
    rows: i64,
}

/// A CSV writer into a fresh buffer (the csv crate hands its buffer back only by
/// `into_inner`, so each chunk gets a writer of its own).
fn writer(buffer: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(buffer)
}

fn fault(what: &str, e: impl std::fmt::Display) -> Status {
    DomainError::internal(anyhow::anyhow!("{what}: {e}")).into()
}

impl Chunker {
    /// A file with `header` as its first row, after the byte order mark.
    pub fn new(header: &[&str]) -> Result<Chunker, Status> {
        let mut buffer = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
        buffer.extend_from_slice(BOM);
        let mut chunker = Chunker {
            writer: writer(buffer),
            rows: 0,
        };
        chunker
            .writer
            .write_record(header)
            .map_err(|e| fault("writing the CSV header", e))?;
        Ok(chunker)
    }

    /// Writes one data row.
    pub fn row<I, T>(&mut self, cells: I) -> Result<(), Status>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.writer
            .write_record(cells)
            .map_err(|e| fault("writing a CSV row", e))?;
        self.rows += 1;
        Ok(())
    }

    /// What has been written since the last chunk, as a chunk, once it has reached
    /// [`CHUNK_BYTES`] (or whatever there is, with `force`); `None` when there is nothing to
    /// send yet.
    pub fn take(&mut self, force: bool) -> Result<Option<pb::ExportChunk>, Status> {
        self.writer
            .flush()
            .map_err(|e| fault("writing the CSV", e))?;
        let len = self.writer.get_ref().len();
        if len == 0 || (!force && len < CHUNK_BYTES) {
            return Ok(None);
        }
        let full = std::mem::replace(
            &mut self.writer,
            writer(Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4)),
        );
        let data = full
            .into_inner()
            .map_err(|e| fault("writing the CSV", e.error()))?;
        let rows = std::mem::take(&mut self.rows);
        Ok(Some(pb::ExportChunk { data, rows }))
    }
}

/// A text cell as a spreadsheet may open it safely: text it would take for a formula (it
/// starts with `=`, `+`, `-`, `@`, a tab or a carriage return, or a full-width `＝＋－＠`) gets
/// a leading apostrophe; anything else is left as it is.
pub fn text(value: &str) -> Cow<'_, str> {
    const FORMULA: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];
    if value.starts_with(FORMULA) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// A time as the exports write it: Beijing time (Asia/Shanghai, UTC+8), `2026-11-30 14:05:09`,
/// which spreadsheets read as a date and time. Empty when unset.
fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map(|t| {
            t.with_timezone(&SHANGHAI)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn yes_no(value: bool) -> &'static str {
    if value { "是" } else { "否" }
}

/// The columns of `ExportCases`, in order (README.md "Exports"); labels as the console's.
pub const CASE_COLUMNS: [&str; 38] = [
    "案件ID",
    "统一编码",
    "状态",
    "时限状态",
    "来源",
    "类别编码",
    "类别",
    "紧急程度",
    "描述",
    "地址",
    "网格",
    "所属中心编码",
    "所属中心",
    "办理层级",
    "主办单位编码",
    "主办单位",
    "协办单位",
    "纬度",
    "经度",
    "报告人",
    "电话",
    "外部编号",
    "受理时间",
    "采集时间",
    "更新时间",
    "等待上报人起始",
    "办理轮次",
    "重办次数",
    "升级级别",
    "红牌",
    "就地化解",
    "办结情况",
    "评价",
    "评价意见",
    "回访评价",
    "疑似重复",
    "已合并至",
    "版本",
];

fn status_label(value: i32) -> &'static str {
    match pb::CaseStatus::try_from(value) {
        Ok(pb::CaseStatus::Submitted) => "已提交",
        Ok(pb::CaseStatus::Registered) => "已受理",
        Ok(pb::CaseStatus::Dispatched) => "已交办",
        Ok(pb::CaseStatus::Accepted) => "已签收",
        Ok(pb::CaseStatus::InProgress) => "办理中",
        Ok(pb::CaseStatus::Resolved) => "已办结",
        Ok(pb::CaseStatus::Closed) => "已结案",
        Ok(pb::CaseStatus::Returned) => "已退回",
        Ok(pb::CaseStatus::Merged) => "已合并",
        Ok(pb::CaseStatus::Cancelled) => "已撤销",
        Ok(pb::CaseStatus::Unspecified) | Err(_) => "",
    }
}

fn sla_label(state: SlaState) -> &'static str {
    match state {
        SlaState::OnTime => "正常",
        SlaState::Warned => "预警",
        SlaState::Breached => "超时督办",
        SlaState::Escalated => "已升级",
        SlaState::RedCard => "红牌",
    }
}

fn source_label(value: i32) -> &'static str {
    match pb::Source::try_from(value) {
        Ok(pb::Source::Handset) => "网格员手持终端",
        Ok(pb::Source::Hotline12345) => "12345 热线",
        Ok(pb::Source::Wechat) => "微信",
        Ok(pb::Source::Sms) => "短信",
        Ok(pb::Source::WalkIn) => "来访",
        Ok(pb::Source::Unspecified) | Err(_) => "",
    }
}

fn severity_label(value: i32) -> &'static str {
    match pb::Severity::try_from(value) {
        Ok(pb::Severity::General) => "一般",
        Ok(pb::Severity::Complex) => "复杂",
        Ok(pb::Severity::Urgent) => "紧急",
        Ok(pb::Severity::Unspecified) | Err(_) => "",
    }
}

fn tier_label(value: i32) -> &'static str {
    match pb::Tier::try_from(value) {
        Ok(pb::Tier::City) => "市",
        Ok(pb::Tier::District) => "区县",
        Ok(pb::Tier::Township) => "乡镇街道",
        Ok(pb::Tier::Community) => "村社区",
        Ok(pb::Tier::Grid) => "网格",
        Ok(pb::Tier::Unspecified) | Err(_) => "",
    }
}

fn satisfaction_label(value: i32) -> &'static str {
    match pb::Satisfaction::try_from(value) {
        Ok(pb::Satisfaction::Satisfied) => "满意",
        Ok(pb::Satisfaction::BasicallySatisfied) => "基本满意",
        Ok(pb::Satisfaction::Dissatisfied) => "不满意",
        Ok(pb::Satisfaction::Unspecified) | Err(_) => "",
    }
}

/// One case's row, [`CASE_COLUMNS`] in order, from the case as the caller may see it (`view`,
/// made by `convert::case_for`) and its SLA state; names from the directory.
pub fn case_row<'a>(
    view: &'a pb::Case,
    state: SlaState,
    directory: &'a Directory,
) -> Vec<Cow<'a, str>> {
    let owned = |s: String| -> Cow<'a, str> { Cow::Owned(text(&s).into_owned()) };
    let number = |s: String| -> Cow<'a, str> { Cow::Owned(s) };
    let category = directory
        .category(&view.category_code)
        .map_or("", |c| c.name.as_str());
    let region = directory
        .region(&view.region_code)
        .map_or("", |r| r.name.as_str());
    let unit = directory
        .unit(&view.unit_code)
        .map(|u| u.name)
        .unwrap_or_default();
    let assisting: Vec<&str> = view
        .assisting_units
        .iter()
        .map(|a| a.unit_code.as_str())
        .collect();
    let (lat, lon) = view
        .location
        .as_ref()
        .map(|l| (l.lat.to_string(), l.lon.to_string()))
        .unwrap_or_default();
    let evaluation = view.evaluation.as_ref();
    vec![
        text(&view.id),
        text(&view.code),
        Cow::Borrowed(status_label(view.status)),
        Cow::Borrowed(sla_label(state)),
        Cow::Borrowed(source_label(view.source)),
        text(&view.category_code),
        text(category),
        Cow::Borrowed(severity_label(view.severity)),
        text(&view.description),
        text(&view.address),
        text(&view.grid_code),
        text(&view.region_code),
        text(region),
        Cow::Borrowed(tier_label(view.tier)),
        text(&view.unit_code),
        owned(unit),
        owned(assisting.join(";")),
        number(lat),
        number(lon),
        text(&view.reporter_sub),
        text(&view.reporter_phone),
        text(&view.external_id),
        number(time(view.received_at.as_ref())),
        number(time(view.captured_at.as_ref())),
        number(time(view.updated_at.as_ref())),
        number(time(view.awaiting_reporter_since.as_ref())),
        number(view.cycle.to_string()),
        number(view.reopen_count.to_string()),
        number(view.escalation_level.to_string()),
        Cow::Borrowed(yes_no(view.red_card)),
        Cow::Borrowed(yes_no(view.resolved_locally)),
        text(&view.resolution_text),
        Cow::Borrowed(evaluation.map_or("", |e| satisfaction_label(e.satisfaction))),
        evaluation.map_or(Cow::Borrowed(""), |e| text(&e.comment)),
        Cow::Borrowed(evaluation.map_or("", |e| yes_no(e.by_callback))),
        text(&view.possible_duplicate_of),
        text(&view.merged_into_case_id),
        number(view.version.to_string()),
    ]
}

/// What the task writing an export sends its stream.
#[derive(Debug)]
enum Sent {
    Chunk(pb::ExportChunk),
    /// The last chunk has been sent: the stream may end with OK.
    Done,
    Failed(Status),
}

/// How long the task waits for the client to take a chunk before it gives the export up.
pub const STALL_LIMIT: Duration = Duration::from_secs(300);

/// Hands `sent` to the stream; `Err` when the client went away, or took nothing for
/// [`STALL_LIMIT`].
async fn send(tx: &mpsc::Sender<Sent>, sent: Sent) -> Result<(), ()> {
    match tokio::time::timeout(STALL_LIMIT, tx.send(sent)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(()),
    }
}

/// Streams `export` as CSV for `caller`: a task reads the pages and writes the rows, and
/// waits on a channel of [`QUEUED_CHUNKS`] whenever the client is slower (a client that takes
/// nothing for [`STALL_LIMIT`] is given up). The stream ends with OK only after the task said
/// it sent the last chunk: an error, or a task that stopped short for any reason, ends it with
/// an error, so that a part of an export never passes for the whole.
pub fn stream_cases(
    mut export: CaseExport,
    caller: Caller,
    directory: Arc<LiveDirectory>,
) -> Result<ChunkStream, Status> {
    let mut chunker = Chunker::new(&CASE_COLUMNS)?;
    let (tx, rx) = mpsc::channel::<Sent>(QUEUED_CHUNKS);
    let task = async move {
        let gone = || Status::cancelled("the client went away");
        let written: Result<(), Status> = async {
            while let Some(page) = export.next_page().await? {
                // One snapshot for the page's names and masking, as one ListCases page.
                let snapshot = directory.snapshot();
                for (case, state) in &page {
                    let view = case_for(case, &caller, &snapshot);
                    let row = case_row(&view, *state, &snapshot);
                    chunker.row(row.iter().map(|c| c.as_bytes()))?;
                    if let Some(chunk) = chunker.take(false)? {
                        send(&tx, Sent::Chunk(chunk)).await.map_err(|()| gone())?;
                    }
                }
            }
            if let Some(chunk) = chunker.take(true)? {
                send(&tx, Sent::Chunk(chunk)).await.map_err(|()| gone())?;
            }
            Ok(())
        }
        .await;
        let last = match written {
            Ok(()) => Sent::Done,
            Err(status) if status.code() == tonic::Code::Cancelled => return,
            Err(status) => Sent::Failed(status),
        };
        let _ = send(&tx, last).await;
    };
    tokio::spawn(task.in_current_span());
    let stream = futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Sent::Chunk(chunk)) => Some((Ok(chunk), Some(rx))),
            Some(Sent::Done) => None,
            Some(Sent::Failed(status)) => Some((Err(status), None)),
            None => {
                tracing::error!("an export stopped before its end");
                Some((
                    Err(Status::internal(
                        "the export stopped before its end; it has been logged",
                    )),
                    None,
                ))
            }
        }
    });
    Ok(Box::pin(stream))
}

/// The columns of `ExportStats`, in order (README.md "Exports"). Rates are percentages.
pub const STATS_COLUMNS: [&str; 24] = [
    "统计期",
    "排名",
    "编码",
    "名称",
    "受理",
    "化解",
    "化解率(%)",
    "按时办结率(%)",
    "超时",
    "平均办理（工作小时）",
    "已评价",
    "满意率(%)",
    "就地化解率(%)",
    "升级",
    "退回",
    "重办",
    "回访评价",
    "回访评价率(%)",
    "满意率目标(%)",
    "满意率达标",
    "化解率目标(%)",
    "化解率达标",
    "就地化解率目标(%)",
    "就地化解率达标",
];

/// A rate (0 to 1) as a percentage with two decimals: `0.95238` → `95.24`.
fn percent(rate: f64) -> String {
    format!("{:.2}", rate * 100.0)
}

/// One ranked entry's row, [`STATS_COLUMNS`] in order.
pub fn stats_row(period: &str, entry: &Ranked) -> Vec<String> {
    let s = &entry.stats;
    let mut row = vec![
        period.to_owned(),
        entry.rank.to_string(),
        text(&entry.code).into_owned(),
        text(&entry.name).into_owned(),
        s.received.to_string(),
        s.resolved.to_string(),
        percent(s.resolution_rate),
        percent(s.on_time_rate),
        s.overdue.to_string(),
        format!("{:.2}", s.mean_handling_working_hours),
        s.evaluated.to_string(),
        percent(s.satisfaction_rate),
        percent(s.local_resolution_rate),
        s.escalations.to_string(),
        s.returns.to_string(),
        s.reopens.to_string(),
        s.evaluated_by_callback.to_string(),
        percent(s.callback_evaluation_rate),
    ];
    // A target is listed only where the entry has the figure: otherwise both cells are empty.
    for figure in [
        "satisfaction_rate",
        "resolution_rate",
        "local_resolution_rate",
    ] {
        match entry.targets.iter().find(|t| t.figure == figure) {
            Some(t) => {
                row.push(percent(t.target));
                row.push(yes_no(t.met).to_owned());
            }
            None => {
                row.push(String::new());
                row.push(String::new());
            }
        }
    }
    row
}

/// A ranking as CSV: small (one row per unit or child region), so written whole and sent in
/// chunks.
pub fn stream_stats(period: &str, entries: &[Ranked]) -> Result<ChunkStream, Status> {
    let mut chunker = Chunker::new(&STATS_COLUMNS)?;
    let mut chunks = Vec::new();
    for entry in entries {
        chunker.row(stats_row(period, entry))?;
        chunks.extend(chunker.take(false)?);
    }
    chunks.extend(chunker.take(true)?);
    Ok(Box::pin(tokio_stream::iter(chunks.into_iter().map(Ok))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_get_an_apostrophe() {
        for formula in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "＝1+1",
        ] {
            assert_eq!(text(formula), format!("'{formula}"), "{formula:?}");
        }
        for plain in ["楼道堆放杂物", "13912345678", "a=b", "", "'already", "1-2"] {
            assert_eq!(text(plain), plain);
        }
    }

    #[test]
    fn chunks_start_with_the_bom_and_header_and_end_at_rows() {
        let mut chunker = Chunker::new(&["a", "b"]).unwrap();
        let mut chunks = Vec::new();
        let long = "长".repeat(1000);
        for i in 0..100 {
            chunker
                .row([i.to_string(), format!("{long},\"\n{i}")])
                .unwrap();
            chunks.extend(chunker.take(false).unwrap());
        }
        chunks.extend(chunker.take(true).unwrap());
        assert!(chunks.len() > 1, "{} chunks", chunks.len());
        assert_eq!(chunks.iter().map(|c| c.rows).sum::<i64>(), 100);
        assert!(chunks[0].data.starts_with(BOM));
        assert!(chunks[0].data[BOM.len()..].starts_with(b"a,b\r\n"));
        for c in &chunks {
            assert!(c.data.ends_with(b"\"\r\n"), "a chunk ends at a row's end");
        }
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
        let mut reader = csv::Reader::from_reader(&all[BOM.len()..]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 100);
        assert_eq!(&rows[7][1], format!("{long},\"\n7"));
    }

    #[test]
    fn times_are_written_in_beijing_time() {
        let t = prost_types::Timestamp {
            seconds: 1_795_000_000,
            nanos: 0,
        };
        let utc = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap();
        assert_eq!(
            time(Some(&t)),
            (utc + chrono::Duration::hours(8))
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        );
        assert_eq!(time(None), "");
    }
}

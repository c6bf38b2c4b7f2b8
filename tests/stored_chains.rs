//! Stored data outlives the code that wrote it. `tests/fixtures/chains.db` is a SQLite database
//! written by gridcase as of its eighth session (commit 01dbe5f, before the restructuring of
//! issue 17) by the scripted scenario below, which gives every kind of event at least once.
//! Today's code must read it, verify every chain in it, and write the very same events, byte
//! for byte but for ids, when it plays the scenario again.
//!
//! Rewrite the fixture only on purpose, with the code whose events it should hold:
//! `GRIDCASE_WRITE_FIXTURE=1 cargo test --test stored_chains -- --ignored`.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        AcceptCaseRequest, AddSupplementRequest, AttachmentHeader, CancelCaseRequest, Case,
        CloseCaseRequest, DispatchCaseRequest, EscalateCaseRequest, EvaluateCaseRequest,
        IngestTicketRequest, MergeCaseRequest, RecordFeedbackRequest, ResolveCaseRequest,
        ReturnCaseRequest, Satisfaction, Source, UpdateProgressRequest, UploadAttachmentRequest,
        WhistleCaseRequest, case_service_client::CaseServiceClient,
        gateway_service_client::GatewayServiceClient, report_service_client::ReportServiceClient,
        upload_attachment_request::Part,
    },
    service::time::ManualTime,
    storage,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tonic::transport::Channel;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chains.db")
}

/// Monday 22 September 2025, 10:00 in Shanghai: the scenario's clock starts here.
fn start() -> chrono::DateTime<chrono::Utc> {
    shanghai(2025, 9, 22, 10, 0)
}

fn cases(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

/// Every kind of event at least once: the lifecycle with a whistle, a reopen and a close; a
/// return, a supplement, a manual escalation and a cancel; a possible duplicate merged; a
/// ticket whose dispatch clock runs through every SLA level to the red card; an urgent case's
/// on-site clock; a grid member's on-the-spot resolution.
async fn scenario(app: &TestApp, time: &ManualTime) {
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let justice = app.token(JUSTICE_STAFF, Role::UnitStaff);
    let police = app.token(UNIT_STAFF, Role::UnitStaff);
    let reporter = app.token(GRID_MEMBER, Role::GridMember);
    let minute = chrono::Duration::minutes(1);
    let tick = |n: i64| time.advance(minute * i32::try_from(n).unwrap());

    // A: the whole lifecycle.
    let a = submit(app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    tick(5);
    let a = dispatched(app, &dispatcher, &a, "").await;
    tick(5);
    let a = accepted(app, &justice, &a).await;
    tick(5);
    let photo = upload(app, &justice).await;
    let a = cases(app)
        .update_progress(authed(
            UpdateProgressRequest {
                case_id: a.id.clone(),
                expected_version: a.version,
                note: "已上门调解".into(),
                attachment_ids: vec![photo.clone()],
            },
            &justice,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    tick(5);
    let a = cases(app)
        .whistle_case(authed(
            WhistleCaseRequest {
                case_id: a.id.clone(),
                expected_version: a.version,
                unit_codes: vec!["371102.police".into()],
                reason: "需要派出所协助".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    tick(5);
    let a = accepted(app, &police, &a).await;
    tick(60);
    let a = resolved(app, &justice, &a, vec![]).await;
    tick(60);
    let a = cases(app)
        .record_feedback(authed(
            RecordFeedbackRequest {
                case_id: a.id.clone(),
                expected_version: a.version,
                note: "已电话告知".into(),
            },
            &justice,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    tick(60);
    let a = evaluated(app, &reporter, &a, Satisfaction::Dissatisfied).await;
    tick(60);
    let a = accepted(app, &justice, &a).await;
    tick(60);
    let a = resolved(app, &justice, &a, vec![]).await;
    tick(60);
    let a = evaluated(app, &reporter, &a, Satisfaction::Satisfied).await;
    tick(5);
    cases(app)
        .close_case(authed(
            CloseCaseRequest {
                case_id: a.id.clone(),
                expected_version: a.version,
                reason: "群众满意".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap();

    // B: a supplement, a return, a manual escalation, a cancel.
    tick(5);
    let b = submit(app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.15).await;
    tick(5);
    let (b, _) = {
        let answer = ReportServiceClient::new(app.channel.clone())
            .add_supplement(authed(
                AddSupplementRequest {
                    case_id: b.id.clone(),
                    text: "补充：争执已持续一周".into(),
                    attachment_ids: vec![],
                },
                &reporter,
            ))
            .await
            .unwrap()
            .into_inner();
        (answer.case.unwrap(), answer.event.unwrap())
    };
    tick(5);
    let b = dispatched(app, &dispatcher, &b, "").await;
    tick(5);
    let b = cases(app)
        .return_case(authed(
            ReturnCaseRequest {
                case_id: b.id.clone(),
                expected_version: b.version,
                reason: "不属于本单位职责".into(),
            },
            &justice,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    tick(5);
    let b = cases(app)
        .escalate_case(authed(
            EscalateCaseRequest {
                case_id: b.id.clone(),
                expected_version: b.version,
                reason: "涉及多个街道".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    tick(5);
    cases(app)
        .cancel_case(authed(
            CancelCaseRequest {
                case_id: b.id.clone(),
                expected_version: b.version,
                reason: "报告人撤回".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap();

    // C and D: D lies 10 m from C and is merged into it.
    tick(5);
    let c = submit(app, GRID_MEMBER, "dispute.neighbor", 35.12, 119.05).await;
    tick(5);
    let d = submit(app, GRID_MEMBER, "dispute.neighbor", 35.1201, 119.05).await;
    tick(5);
    cases(app)
        .merge_case(authed(
            MergeCaseRequest {
                case_id: d.id.clone(),
                expected_version: d.version,
                into_case_id: c.id.clone(),
                reason: "重复上报".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap();

    // G: a litter case settled on the spot with a photo.
    tick(5);
    let g = submit(app, GRID_MEMBER, "city.litter", 35.1, 119.05).await;
    let photo = upload(app, &reporter).await;
    tick(5);
    resolved(app, &reporter, &g, vec![photo]).await;

    // F: urgent, dispatched to its center; its on-site clock runs out.
    tick(5);
    let f = submit(app, GRID_MEMBER, "safety.fire_hazard", 35.1, 119.15).await;
    tick(5);
    dispatched(app, &dispatcher, &f, "").await;

    // E: a ticket nobody dispatches; its dispatch clock (24 h) fires every level.
    tick(5);
    GatewayServiceClient::new(app.channel.clone())
        .ingest_ticket(authed(
            IngestTicketRequest {
                source: Source::Hotline12345.into(),
                external_id: "T-0001".into(),
                category_code: "dispute.neighbor".into(),
                description: "楼上噪音扰民".into(),
                caller_phone: "13912345678".into(),
                caller_name: "张先生".into(),
                address: "测试社区3号楼".into(),
                region_code: "371102001001".into(),
                ..IngestTicketRequest::default()
            },
            &app.token("gateway-12345", Role::Gateway),
        ))
        .await
        .unwrap();
    for hours in [1, 20, 24, 36, 48] {
        time.set(start() + chrono::Duration::hours(hours) + minute * 700);
        app.supervisor.run_due().await.unwrap();
    }
}

async fn upload(app: &TestApp, token: &str) -> String {
    let messages = vec![
        UploadAttachmentRequest {
            part: Some(Part::Header(AttachmentHeader {
                content_type: "image/jpeg".into(),
                size_bytes: 3,
                file_name: "photo.jpg".into(),
            })),
        },
        UploadAttachmentRequest {
            part: Some(Part::Chunk(vec![1, 2, 3])),
        },
    ];
    ReportServiceClient::new(app.channel.clone())
        .upload_attachment(authed(tokio_stream::iter(messages), token))
        .await
        .unwrap()
        .into_inner()
        .attachment_id
}

async fn dispatched(app: &TestApp, token: &str, case: &Case, unit: &str) -> Case {
    cases(app)
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                unit_code: unit.into(),
                reason: "分流".into(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
}

async fn accepted(app: &TestApp, token: &str, case: &Case) -> Case {
    cases(app)
        .accept_case(authed(
            AcceptCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
}

async fn resolved(app: &TestApp, token: &str, case: &Case, attachment_ids: Vec<String>) -> Case {
    cases(app)
        .resolve_case(authed(
            ResolveCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                result: "已化解".into(),
                attachment_ids,
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
}

async fn evaluated(app: &TestApp, token: &str, case: &Case, satisfaction: Satisfaction) -> Case {
    cases(app)
        .evaluate_case(authed(
            EvaluateCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                satisfaction: satisfaction.into(),
                comment: "评价".into(),
                by_callback: false,
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
}

/// The scenario on a fresh SQLite database; returns the running server.
async fn played() -> (TestApp, Arc<ManualTime>) {
    let time = Arc::new(ManualTime::new(start()));
    let app = TestApp::spawn_at(TestDb::new(&Backend::Sqlite).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    scenario(&app, &time).await;
    (app, time)
}

/// Every event of a database, in sequence order, as comparable text: ids (UUIDs) replaced by
/// their order of first appearance, hashes left out (they cover the ids).
async fn events_of(db: &DatabaseConnection) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT case_id, kind, actor_sub, actor_role, at, from_status, to_status, reason, \
             details FROM case_events ORDER BY seq",
        ))
        .await
        .unwrap();
    let uuid = regex_lite_uuid();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for r in rows {
        let mut fields: Vec<String> = Vec::new();
        for i in 0..9 {
            let value: Option<String> = match i {
                4 => Some(
                    r.try_get_by_index::<chrono::DateTime<chrono::Utc>>(i)
                        .unwrap()
                        .to_rfc3339(),
                ),
                5 | 6 => r.try_get_by_index::<Option<String>>(i).unwrap(),
                _ => Some(r.try_get_by_index::<String>(i).unwrap()),
            };
            fields.push(value.unwrap_or_else(|| "-".into()));
        }
        let line = fields.join(" | ");
        out.push(uuid(&line, &mut names));
    }
    out
}

/// Replaces each UUID in `text` by `#n`, n its order of first appearance across calls.
fn regex_lite_uuid() -> impl Fn(&str, &mut HashMap<String, usize>) -> String {
    |text: &str, names: &mut HashMap<String, usize>| {
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            let candidate = text.get(i..i + 36);
            let is_uuid = candidate.is_some_and(|c| {
                c.bytes().enumerate().all(|(k, b)| match k {
                    8 | 13 | 18 | 23 => b == b'-',
                    _ => b.is_ascii_hexdigit(),
                })
            });
            if is_uuid && let Some(c) = candidate {
                let n = names.len();
                let k = *names.entry(c.to_owned()).or_insert(n);
                out.push_str(&format!("#{k}"));
                i += 36;
            } else {
                let ch = text[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }
}

async fn sqlite(path: &std::path::Path) -> DatabaseConnection {
    storage::connect(&format!("sqlite://{}?mode=rw", path.display()), 1)
        .await
        .unwrap()
}

/// Writes `tests/fixtures/chains.db` (see the module's comment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture: run on purpose with GRIDCASE_WRITE_FIXTURE=1"]
async fn write_the_fixture() {
    if std::env::var("GRIDCASE_WRITE_FIXTURE").as_deref() != Ok("1") {
        return;
    }
    let (app, _) = played().await;
    let db = storage::connect(&app.db.url, 1).await.unwrap();
    // One self-contained file, the WAL folded in.
    let _ = std::fs::remove_file(fixture());
    db.execute_unprepared(&format!(
        "VACUUM INTO '{}'",
        fixture().display().to_string().replace('\'', "''")
    ))
    .await
    .unwrap();
    app.stop().await.unwrap();
}

/// Copies the fixture somewhere a test may change it (migrations, a server's writes).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chains.db");
    std::fs::copy(fixture(), &path).expect("tests/fixtures/chains.db is there");
    (dir, path)
}

/// The stored chains verify, by the library and by `gridcase audit verify`, after today's
/// migrations; every stored case and event reads back through today's types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_written_before_verifies_and_reads_today() {
    let (_dir, path) = fixture_copy();
    let url = format!("sqlite://{}?mode=rw", path.display());
    let db = sqlite(&path).await;
    storage::migrate(&db)
        .await
        .expect("today's migrations apply");
    let audit = gridcase::service::audit::verify(&db, None).await.unwrap();
    assert_eq!(audit.broken, None);
    assert_eq!((audit.cases, audit.events), (7, 59));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridcase"))
        .env("GRIDCASE_DATABASE_URL", &url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every case and its events read back as today's types.
    let kinds: std::collections::BTreeSet<String> = {
        let mut kinds = std::collections::BTreeSet::new();
        let mut after = String::new();
        loop {
            let anchors = storage::cases::anchors(&db, &after, 100).await.unwrap();
            if anchors.is_empty() {
                break;
            }
            for (id, _, _) in &anchors {
                let (case, events) = storage::cases::with_events(&db, id)
                    .await
                    .unwrap()
                    .expect("the case reads");
                assert_eq!(case.id, *id);
                kinds.extend(events.iter().map(|e| e.event.kind.to_string()));
            }
            after = anchors.last().unwrap().0.clone();
        }
        kinds
    };
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "accepted",
            "cancelled",
            "checked_in",
            "closed",
            "dispatched",
            "escalated",
            "evaluated",
            "feedback",
            "merged",
            "progress",
            "red_card",
            "registered",
            "reopened",
            "resolved",
            "returned",
            "sla_breach",
            "sla_escalation",
            "sla_warning",
            "submitted",
            "supplement",
            "whistled",
        ]
    );
}

/// Played again by today's code, the scenario writes the same events as the fixture holds:
/// the same kinds, actors, times, states, reasons and details, byte for byte, ids aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_code_writes_the_events_the_fixture_holds() {
    let (_dir, path) = fixture_copy();
    let stored = events_of(&sqlite(&path).await).await;
    let (app, _) = played().await;
    let db = storage::connect(&app.db.url, 1).await.unwrap();
    let written = events_of(&db).await;
    assert_eq!(written.len(), stored.len());
    for (k, (w, s)) in written.iter().zip(&stored).enumerate() {
        assert_eq!(w, s, "event {k}");
    }
    app.stop().await.unwrap();
}

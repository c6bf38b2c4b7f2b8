//! CSV exports through the real server (issue 22): `ExportCases` gives exactly the cases
//! `ListCases` lists for the same caller and filters, in the same order, phones masked the same
//! way, as UTF-8 with a BOM that Python's csv module reads back row for row, text that would
//! run as a spreadsheet formula defused; `ExportStats` gives RankUnits' entries; and the
//! `gridcase export` command writes both to a file, or nothing on an error.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use common::*;
use gridcase::{
    domain::Role,
    grpc::export::{BOM, CASE_COLUMNS, STATS_COLUMNS},
    proto::v1::{
        Case, CaseStatus, ExportCasesRequest, ExportStatsRequest, IngestTicketRequest,
        ListCasesRequest, Location, PageRequest, RankFigure, RankUnitsRequest, Source,
        case_service_client::CaseServiceClient, gateway_service_client::GatewayServiceClient,
        report_service_client::ReportServiceClient, stats_service_client::StatsServiceClient,
    },
    service::time::ManualTime,
};
use tonic::{Code, Status};

const TOWNSHIP1_DISPATCHER: &str = "disp-371102001";
const TOWNSHIP2_DISPATCHER: &str = "disp-371102002";
const COMMUNITY_DISPATCHER: &str = "disp-371102001001";
const GRID1_DISPATCHER: &str = "disp-371102001001001";
const TOWNSHIP2_MEMBER: &str = "gm-371102002001001";
const GATEWAY: &str = "gateway-12345";

/// [`small_bundle`] with a second township (its own community and grid, east of the first,
/// 119.2–119.4 E, the city and the district grown to hold it) and a grid member there, and a dispatcher at every region of the first
/// township's chain and at the second township.
fn two_townships() -> serde_json::Value {
    let mut bundle = small_bundle();
    let square = serde_json::json!({
        "type": "Polygon",
        "coordinates": [[[119.2, 35.0], [119.4, 35.0], [119.4, 35.2], [119.2, 35.2], [119.2, 35.0]]]
    });
    let feature = |code: &str, name: &str, tier: &str, parent: &str| {
        serde_json::json!({
            "type": "Feature",
            "properties": {"code": code, "name": name, "tier": tier, "parent": parent},
            "geometry": square
        })
    };
    let features = bundle["features"].as_array_mut().unwrap();
    // The city and the district grow east to hold the second township.
    for f in features.iter_mut().take(2) {
        f["geometry"] = serde_json::json!({
            "type": "Polygon",
            "coordinates": [[[119.0, 35.0], [119.4, 35.0], [119.4, 35.2], [119.0, 35.2], [119.0, 35.0]]]
        });
    }
    features.push(feature("371102002", "第二街道", "township", "371102"));
    features.push(feature(
        "371102002001",
        "第二社区",
        "community",
        "371102002",
    ));
    features.push(feature(
        "371102002001001",
        "第二网格",
        "grid",
        "371102002001",
    ));
    let members = bundle["members"].as_array_mut().unwrap();
    for (sub, region) in [
        (TOWNSHIP1_DISPATCHER, "371102001"),
        (TOWNSHIP2_DISPATCHER, "371102002"),
        (COMMUNITY_DISPATCHER, "371102001001"),
        (GRID1_DISPATCHER, "371102001001001"),
    ] {
        members.push(serde_json::json!({
            "sub": sub, "name": sub, "role": "dispatcher", "region": region, "phone": "13800000099"
        }));
    }
    members.push(serde_json::json!({
        "sub": TOWNSHIP2_MEMBER, "name": "网格员丙", "role": "grid_member",
        "grids": ["371102002001001"], "phone": "13800000009"
    }));
    bundle
}

/// Descriptions a CSV writer or a spreadsheet can get wrong: separators, quotes, line breaks,
/// Chinese text, and text that a spreadsheet would run as a formula.
const TRICKY: [&str; 10] = [
    "楼道堆放杂物，影响通行",
    "逗号,分号;引号\"双\"与'单'",
    "第一行\n第二行\r\n第三行",
    "=HYPERLINK(\"http://example.invalid\",\"点我\")",
    "+8613800000000 来电反映",
    "-5 度路面结冰",
    "@所有人 请注意",
    "末尾是引号\"",
    "中间\t制表符",
    "emoji 🚧 与全角＝号",
];

/// What a spreadsheet-safe cell holds for `text`: an apostrophe before formula-like text.
fn defused(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '＝', '＋', '－', '＠']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

async fn report_in(app: &TestApp, sub: &str, description: &str, lat: f64, lon: f64) -> Case {
    let token = app.token(sub, Role::GridMember);
    ReportServiceClient::new(app.channel.clone())
        .submit_report(authed(
            report_request("dispute.neighbor", description, lat, lon),
            &token,
        ))
        .await
        .expect("stored")
        .into_inner()
        .case
        .expect("a case")
}

/// An export's bytes, and the rows its chunks counted.
async fn export(
    app: &TestApp,
    sub: &str,
    role: Role,
    request: ExportCasesRequest,
) -> Result<(Vec<u8>, i64), Status> {
    let token = app.token(sub, role);
    let mut stream = CaseServiceClient::new(app.channel.clone())
        .export_cases(authed(request, &token))
        .await?
        .into_inner();
    let (mut bytes, mut rows) = (Vec::new(), 0);
    while let Some(chunk) = stream.message().await? {
        assert!(!chunk.data.is_empty(), "no empty chunks");
        bytes.extend_from_slice(&chunk.data);
        rows += chunk.rows;
    }
    Ok((bytes, rows))
}

/// The header and rows of an export, after checking its BOM.
fn parse(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    assert!(bytes.starts_with(BOM), "the export starts with a UTF-8 BOM");
    let text = std::str::from_utf8(&bytes[BOM.len()..]).expect("UTF-8");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect::<Vec<_>>());
    let header = records.next().expect("a header row");
    (header, records.collect())
}

fn column(name: &str) -> usize {
    CASE_COLUMNS.iter().position(|c| *c == name).unwrap()
}

/// Every case ListCases gives `sub` for `request`, page after page.
async fn listed(app: &TestApp, sub: &str, role: Role, mut request: ListCasesRequest) -> Vec<Case> {
    let token = app.token(sub, role);
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        request.page = Some(PageRequest {
            page_size: 500,
            page_token: page_token.clone(),
        });
        let page = CaseServiceClient::new(app.channel.clone())
            .list_cases(authed(request.clone(), &token))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.cases);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

/// The export's filters as a ListCases request.
fn as_list(r: &ExportCasesRequest) -> ListCasesRequest {
    ListCasesRequest {
        statuses: r.statuses.clone(),
        region_code: r.region_code.clone(),
        unit_code: r.unit_code.clone(),
        category_code: r.category_code.clone(),
        overdue_only: r.overdue_only,
        received_from: r.received_from,
        received_to: r.received_to,
        page: None,
    }
}

/// Checks that `sub`'s export for `request` holds exactly ListCases' cases, in order, each
/// row showing what ListCases shows that caller (phone masked alike); the parsed rows.
async fn export_matches_list(
    app: &TestApp,
    sub: &str,
    role: Role,
    request: ExportCasesRequest,
) -> Vec<Vec<String>> {
    let (bytes, counted) = export(app, sub, role, request.clone()).await.unwrap();
    let (header, rows) = parse(&bytes);
    assert_eq!(header, CASE_COLUMNS, "the documented header");
    let cases = listed(app, sub, role, as_list(&request)).await;
    assert_eq!(counted, rows.len() as i64, "the chunks count the rows");
    let ids: Vec<&str> = rows.iter().map(|r| r[column("案件ID")].as_str()).collect();
    let expected: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, expected, "{sub}: {request:?}");
    for (row, case) in rows.iter().zip(&cases) {
        assert_eq!(row.len(), CASE_COLUMNS.len());
        assert_eq!(row[column("统一编码")], case.code);
        assert_eq!(row[column("电话")], defused(&case.reporter_phone));
        assert_eq!(row[column("描述")], defused(&case.description));
        assert_eq!(row[column("主办单位编码")], case.unit_code);
        assert_eq!(row[column("所属中心编码")], case.region_code);
        assert_eq!(row[column("网格")], case.grid_code);
    }
    rows
}

/// Runs Python's csv module over the export in `path`: every row there, the header as
/// documented, and the tricky descriptions back as written (defused). Skipped, saying so,
/// where no `python3` is installed.
fn python_reads(path: &std::path::Path, rows: usize, expected: &HashMap<String, String>) {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("python3 is not installed: the check with Python's csv module is skipped");
        return;
    }
    let expected_path = path.with_extension("expected.json");
    std::fs::write(
        &expected_path,
        serde_json::to_vec(&serde_json::json!({
            "rows": rows,
            "header": CASE_COLUMNS.to_vec(),
            "descriptions": expected,
        }))
        .unwrap(),
    )
    .unwrap();
    let script = r#"
import csv, json, sys
path, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path, encoding="utf-8"))
raw = open(path, "rb").read()
assert raw.startswith(b"\xef\xbb\xbf"), "no BOM"
with open(path, encoding="utf-8-sig", newline="") as f:
    rows = list(csv.reader(f))
header, body = rows[0], rows[1:]
assert header == expected["header"], header
assert len(body) == expected["rows"], (len(body), expected["rows"])
assert all(len(r) == len(header) for r in body), "every row has every column"
ids, descriptions = header.index("案件ID"), header.index("描述")
seen = {r[ids]: r[descriptions] for r in body}
assert len(seen) == len(body), "every case once"
for case_id, description in expected["descriptions"].items():
    assert seen[case_id] == description, (case_id, seen[case_id], description)
print("python csv ok:", len(body), "rows")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(&expected_path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "Python's csv module disagrees: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{rows} rows")));
}

/// A township dispatcher's export holds their township's cases and none of the other's; the
/// center holding a case sees its reporter's phone whole, everyone else masked; Python's csv
/// module reads every row back, tricky text and all.
async fn each_caller_exports_their_scope_with_phones_masked_as_listed(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &two_townships()).await;
    let mut first = Vec::new();
    let mut descriptions = HashMap::new();
    for i in 0..180 {
        let description = if i % 3 == 0 {
            TRICKY[(i / 3) % TRICKY.len()].to_owned()
        } else {
            format!("第一街道的第 {i} 件")
        };
        let case = report_in(&app, GRID_MEMBER, &description, 35.1, 119.05).await;
        descriptions.insert(case.id.clone(), defused(&description));
        first.push(case);
    }
    let mut second = Vec::new();
    for i in 0..120 {
        let description = TRICKY[i % TRICKY.len()];
        second.push(report_in(&app, TOWNSHIP2_MEMBER, description, 35.1, 119.3).await);
    }
    // A hotline ticket with the caller's phone, in the first township.
    let ticket = GatewayServiceClient::new(app.channel.clone())
        .ingest_ticket(authed(
            IngestTicketRequest {
                source: Source::Hotline12345.into(),
                external_id: "=cmd|' /C calc'!A0".into(),
                category_code: "dispute.neighbor".into(),
                description: "来电：\"噪音\",\n夜间施工".into(),
                caller_phone: "13912345678".into(),
                address: "测试路 1 号, 2 单元".into(),
                location: Some(Location {
                    lat: 35.1,
                    lon: 119.05,
                    ..Location::default()
                }),
                ..IngestTicketRequest::default()
            },
            &app.token(GATEWAY, Role::Gateway),
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    first.push(ticket.clone());
    descriptions.insert(ticket.id.clone(), "来电：\"噪音\",\n夜间施工".to_owned());

    // The township dispatchers: each their own township's cases, none of the other's.
    let rows = export_matches_list(
        &app,
        TOWNSHIP1_DISPATCHER,
        Role::Dispatcher,
        ExportCasesRequest::default(),
    )
    .await;
    assert_eq!(rows.len(), first.len());
    let exported: std::collections::HashSet<&str> =
        rows.iter().map(|r| r[column("案件ID")].as_str()).collect();
    assert!(first.iter().all(|c| exported.contains(c.id.as_str())));
    assert!(second.iter().all(|c| !exported.contains(c.id.as_str())));
    let rows2 = export_matches_list(
        &app,
        TOWNSHIP2_DISPATCHER,
        Role::Dispatcher,
        ExportCasesRequest::default(),
    )
    .await;
    assert_eq!(rows2.len(), second.len());
    assert!(rows2.iter().all(|r| first.iter().all(|c| c.id != r[0])));
    // Asking for the other township's subtree finds nothing there: out of scope, not an error.
    let (bytes, counted) = export(
        &app,
        TOWNSHIP1_DISPATCHER,
        Role::Dispatcher,
        ExportCasesRequest {
            region_code: "371102002".into(),
            ..ExportCasesRequest::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((parse(&bytes).1.len(), counted), (0, 0));
    // The grid member: their own reports; the gateway: its own ticket.
    let mine = export_matches_list(
        &app,
        GRID_MEMBER,
        Role::GridMember,
        ExportCasesRequest::default(),
    )
    .await;
    assert!(mine.len() >= 180, "{}", mine.len());
    let gateway =
        export_matches_list(&app, GATEWAY, Role::Gateway, ExportCasesRequest::default()).await;
    assert_eq!(gateway.len(), 1);

    // The ticket's phone: whole for the center holding it, masked for everyone else.
    let holding = format!("disp-{}", ticket.region_code);
    assert!(
        [
            DISPATCHER,
            TOWNSHIP1_DISPATCHER,
            COMMUNITY_DISPATCHER,
            GRID1_DISPATCHER
        ]
        .contains(&holding.as_str()),
        "the bundle has a dispatcher for the holding center {}",
        ticket.region_code
    );
    let phone_of = |rows: &[Vec<String>]| {
        rows.iter()
            .find(|r| r[column("案件ID")] == ticket.id)
            .map(|r| r[column("电话")].clone())
            .unwrap()
    };
    let whole = export_matches_list(
        &app,
        &holding,
        Role::Dispatcher,
        ExportCasesRequest::default(),
    )
    .await;
    assert_eq!(phone_of(&whole), "13912345678");
    for (sub, role) in [
        (TOWNSHIP1_DISPATCHER, Role::Dispatcher),
        (DISPATCHER, Role::Dispatcher),
        (SUPERVISOR, Role::Supervisor),
        (GATEWAY, Role::Gateway),
    ] {
        if sub == holding {
            continue;
        }
        let rows = export_matches_list(&app, sub, role, ExportCasesRequest::default()).await;
        assert_eq!(phone_of(&rows), "139****5678", "{sub}");
    }
    // Every handset report carries its grid member's phone: whole where the township is
    // the holding center, masked elsewhere (and ListCases said the same, above).
    for r in rows.iter().filter(|r| r[0] != ticket.id) {
        let expected = if r[column("所属中心编码")] == "371102001" {
            "13800000001"
        } else {
            "138****0001"
        };
        assert_eq!(r[column("电话")], expected);
    }
    // The ticket's other fields: text defused and quoted, names from the directory.
    let row = whole.iter().find(|r| r[0] == ticket.id).unwrap();
    assert_eq!(row[column("外部编号")], "'=cmd|' /C calc'!A0");
    assert_eq!(row[column("地址")], "测试路 1 号, 2 单元");
    assert_eq!(row[column("来源")], "12345 热线");
    assert_eq!(row[column("类别")], "邻里纠纷");
    assert_eq!(row[column("状态")], "已受理");
    assert!(
        row[column("受理时间")].len() == 19,
        "{}",
        row[column("受理时间")]
    );

    // Python's csv module reads the township's export back, every row.
    let (bytes, _) = export(
        &app,
        TOWNSHIP1_DISPATCHER,
        Role::Dispatcher,
        ExportCasesRequest::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.csv");
    std::fs::write(&path, &bytes).unwrap();
    python_reads(&path, first.len(), &descriptions);

    // A client that stops reading and goes away leaves the server serving.
    let token = app.token(DISPATCHER, Role::Dispatcher);
    let mut stream = CaseServiceClient::new(app.channel.clone())
        .export_cases(authed(ExportCasesRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    drop(stream);
    assert_eq!(
        listed(
            &app,
            DISPATCHER,
            Role::Dispatcher,
            ListCasesRequest::default()
        )
        .await
        .len(),
        first.len() + second.len()
    );
    app.stop().await.unwrap();
}

/// Every filter of ListCases narrows the export exactly as it narrows the list; bad filters
/// and callers are refused before anything is sent.
async fn filters_narrow_the_export_as_they_narrow_the_list(backend: Backend) {
    let t0 = shanghai(2026, 11, 2, 9, 0);
    let time = Arc::new(ManualTime::new(t0));
    let quiet = |s: &mut gridcase::config::Settings| s.sla_tick = Duration::from_secs(3600);
    let app = TestApp::spawn_full(TestDb::new(&backend).await, quiet, Some(time.clone())).await;
    import(&app, &two_townships()).await;
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    // Three hours of reports, twenty an hour, in both townships and three categories.
    let categories = ["dispute.neighbor", "safety.fire_hazard", "city.litter"];
    let mut all = Vec::new();
    for hour in 0..3 {
        time.set(t0 + chrono::Duration::hours(hour));
        for i in 0..20 {
            let (sub, lon) = if i % 4 == 0 {
                (TOWNSHIP2_MEMBER, 119.3)
            } else {
                (GRID_MEMBER, 119.05)
            };
            let token = app.token(sub, Role::GridMember);
            let case = ReportServiceClient::new(app.channel.clone())
                .submit_report(authed(
                    report_request(
                        categories[i % 3],
                        &format!("第 {hour} 小时第 {i} 件"),
                        35.1,
                        lon,
                    ),
                    &token,
                ))
                .await
                .unwrap()
                .into_inner()
                .case
                .unwrap();
            all.push(case);
        }
    }
    // Dispatch a few, so statuses and units differ.
    for case in all.iter().step_by(5) {
        CaseServiceClient::new(app.channel.clone())
            .dispatch_case(authed(
                gridcase::proto::v1::DispatchCaseRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    unit_code: "371102.police".into(),
                    reason: "分流".into(),
                },
                &dispatcher,
            ))
            .await
            .unwrap();
    }
    // Two days on, the clocks of the cases still waiting are past due.
    time.set(t0 + chrono::Duration::days(2));
    let filters = [
        ExportCasesRequest::default(),
        ExportCasesRequest {
            statuses: vec![CaseStatus::Dispatched.into()],
            ..ExportCasesRequest::default()
        },
        ExportCasesRequest {
            statuses: vec![CaseStatus::Registered.into(), CaseStatus::Dispatched.into()],
            category_code: "city.litter".into(),
            ..ExportCasesRequest::default()
        },
        ExportCasesRequest {
            region_code: "371102002".into(),
            ..ExportCasesRequest::default()
        },
        ExportCasesRequest {
            unit_code: "371102.police".into(),
            ..ExportCasesRequest::default()
        },
        ExportCasesRequest {
            received_from: Some(ts(t0 + chrono::Duration::minutes(30))),
            received_to: Some(ts(t0 + chrono::Duration::minutes(90))),
            ..ExportCasesRequest::default()
        },
        ExportCasesRequest {
            overdue_only: true,
            ..ExportCasesRequest::default()
        },
    ];
    let mut sizes = Vec::new();
    for filter in filters {
        let rows = export_matches_list(&app, DISPATCHER, Role::Dispatcher, filter).await;
        sizes.push(rows.len());
    }
    // Each filter narrowed something, and none to nothing: the comparisons above compared.
    assert_eq!(sizes[0], 60);
    assert!(
        sizes[1..6].iter().all(|&n| n > 0 && n < 60) && sizes[6] > 0,
        "sizes by filter: {sizes:?}"
    );
    assert_eq!(sizes[1], 12, "every fifth case dispatched");
    assert_eq!(sizes[3], 15, "a quarter in the second township");
    assert_eq!(sizes[5], 20, "the second hour only");

    // Refused before the stream starts, with the field named.
    let refused = |r: Result<(Vec<u8>, i64), Status>| r.map(drop).unwrap_err();
    let bad_region = refused(
        export(
            &app,
            DISPATCHER,
            Role::Dispatcher,
            ExportCasesRequest {
                region_code: "999999".into(),
                ..ExportCasesRequest::default()
            },
        )
        .await,
    );
    assert_eq!(bad_region.code(), Code::InvalidArgument);
    assert!(bad_region.message().contains("region_code"));
    let bad_status = refused(
        export(
            &app,
            DISPATCHER,
            Role::Dispatcher,
            ExportCasesRequest {
                statuses: vec![42],
                ..ExportCasesRequest::default()
            },
        )
        .await,
    );
    assert_eq!(bad_status.code(), Code::InvalidArgument);
    assert!(bad_status.message().contains("statuses"));
    let admin = refused(
        export(
            &app,
            "ops-admin",
            Role::Admin,
            ExportCasesRequest::default(),
        )
        .await,
    );
    assert_eq!(admin.code(), Code::PermissionDenied);
    app.stop().await.unwrap();
}

/// ExportStats: RankUnits' entries, in rank order, every figure a column; the same callers and
/// scope; and `gridcase export` writes both exports to files, or nothing on an error.
async fn stats_export_and_the_command_line(backend: Backend) {
    let t0 = shanghai(2026, 11, 2, 9, 0);
    let time = Arc::new(ManualTime::new(t0));
    let quiet = |s: &mut gridcase::config::Settings| s.sla_tick = Duration::from_secs(3600);
    let app = TestApp::spawn_full(TestDb::new(&backend).await, quiet, Some(time.clone())).await;
    import(&app, &two_townships()).await;
    for i in 0..12 {
        let (sub, lon) = if i % 3 == 0 {
            (TOWNSHIP2_MEMBER, 119.3)
        } else {
            (GRID_MEMBER, 119.05)
        };
        report_in(&app, sub, &format!("第 {i} 件"), 35.1, lon).await;
    }
    let supervisor = app.token(SUPERVISOR, Role::Supervisor);
    let export_stats = |sub: &'static str, role: Role, request: ExportStatsRequest| {
        let app = &app;
        async move {
            let token = app.token(sub, role);
            let mut stream = StatsServiceClient::new(app.channel.clone())
                .export_stats(authed(request, &token))
                .await?
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.message().await? {
                bytes.extend_from_slice(&chunk.data);
            }
            Ok::<_, Status>(bytes)
        }
    };
    for regions in [false, true] {
        let ranked = StatsServiceClient::new(app.channel.clone())
            .rank_units(authed(
                RankUnitsRequest {
                    region_code: "371102".into(),
                    period: "2026-11".into(),
                    figure: RankFigure::ResolutionRate.into(),
                    regions,
                },
                &supervisor,
            ))
            .await
            .unwrap()
            .into_inner();
        let bytes = export_stats(
            SUPERVISOR,
            Role::Supervisor,
            ExportStatsRequest {
                region_code: "371102".into(),
                period: "2026-11".into(),
                figure: RankFigure::ResolutionRate.into(),
                regions,
            },
        )
        .await
        .unwrap();
        let (header, rows) = parse(&bytes);
        assert_eq!(header, STATS_COLUMNS);
        assert_eq!(rows.len(), ranked.entries.len());
        assert!(!rows.is_empty());
        for (row, entry) in rows.iter().zip(&ranked.entries) {
            let stats = entry.stats.as_ref().unwrap();
            assert_eq!(row[0], "2026-11");
            assert_eq!(row[1], entry.rank.to_string());
            assert_eq!(row[2], entry.code);
            assert_eq!(row[3], entry.name);
            assert_eq!(row[4], stats.received.to_string());
            assert_eq!(row[5], stats.resolved.to_string());
            assert_eq!(row[6], format!("{:.2}", stats.resolution_rate * 100.0));
        }
        if regions {
            let received: HashMap<&str, &str> = rows
                .iter()
                .map(|r| (r[2].as_str(), r[4].as_str()))
                .collect();
            assert_eq!(received.get("371102001"), Some(&"8"));
            assert_eq!(received.get("371102002"), Some(&"4"));
        }
    }
    // RankUnits' callers only, within their region, with a period.
    let denied = export_stats(
        GRID_MEMBER,
        Role::GridMember,
        ExportStatsRequest {
            period: "2026-11".into(),
            ..ExportStatsRequest::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let outside = export_stats(
        GRID2_SUPERVISOR,
        Role::Supervisor,
        ExportStatsRequest {
            region_code: "371102".into(),
            period: "2026-11".into(),
            ..ExportStatsRequest::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied);
    for period in ["", "2026-13"] {
        let bad = export_stats(
            SUPERVISOR,
            Role::Supervisor,
            ExportStatsRequest {
                period: period.into(),
                ..ExportStatsRequest::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument, "{period:?}");
        assert!(bad.message().contains("period"));
    }

    // The command line: cases and statistics to files.
    let dir = tempfile::tempdir().unwrap();
    let target = format!("http://{}", app.addr);
    let dispatcher = app.token(TOWNSHIP1_DISPATCHER, Role::Dispatcher);
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gridcase"));
            for (k, _) in std::env::vars() {
                if k.starts_with("GRIDCASE_") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("RUST_LOG", "warn").args(args).output().unwrap()
        })
    };
    let cases_csv = dir.path().join("cases.csv");
    let out = run(vec![
        "export".into(),
        "--target".into(),
        target.clone(),
        "--token".into(),
        dispatcher.clone(),
        "--out".into(),
        cases_csv.display().to_string(),
        "cases".into(),
        "--status".into(),
        "registered".into(),
        "--from".into(),
        "2026-11-01".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 8 rows"));
    let (header, rows) = parse(&std::fs::read(&cases_csv).unwrap());
    assert_eq!(header, CASE_COLUMNS);
    assert_eq!(rows.len(), 8, "the first township's eight reports");
    let stats_csv = dir.path().join("stats.csv");
    let out = run(vec![
        "export".into(),
        "stats".into(),
        "--period".into(),
        "2026-11".into(),
        "--regions".into(),
        "--figure".into(),
        "overdue".into(),
        "--target".into(),
        target.clone(),
        "--token".into(),
        supervisor.clone(),
        "--out".into(),
        stats_csv.display().to_string(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (header, rows) = parse(&std::fs::read(&stats_csv).unwrap());
    assert_eq!(header, STATS_COLUMNS);
    assert_eq!(rows.len(), 1, "the city's one district: {rows:?}");
    // To standard output without --out.
    let out = run(vec![
        "export".into(),
        "cases".into(),
        "--target".into(),
        target.clone(),
        "--token".into(),
        dispatcher.clone(),
    ])
    .await
    .unwrap();
    assert!(out.status.success());
    assert_eq!(parse(&out.stdout).1.len(), 8);
    // A refused export fails the command and leaves no file, not even a part.
    let refused_csv = dir.path().join("refused.csv");
    let out = run(vec![
        "export".into(),
        "--target".into(),
        target,
        "--token".into(),
        supervisor,
        "--out".into(),
        refused_csv.display().to_string(),
        "stats".into(),
        "--period".into(),
        "2026-Q5".into(),
    ])
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidArgument"));
    assert!(!refused_csv.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    app.stop().await.unwrap();
}

/// More cases than an export reads at a time, all received at the same instant (the clock does
/// not move): the pages meet on the id, and every case comes once, in ListCases' order, in
/// several chunks.
async fn an_export_pages_past_a_thousand_cases_received_at_one_instant(backend: Backend) {
    let time = Arc::new(ManualTime::new(shanghai(2026, 11, 2, 9, 0)));
    let quiet = |s: &mut gridcase::config::Settings| s.sla_tick = Duration::from_secs(3600);
    let app = TestApp::spawn_full(TestDb::new(&backend).await, quiet, Some(time.clone())).await;
    import(&app, &two_townships()).await;
    let total = gridcase::service::cases::EXPORT_PAGE + 150;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    for batch in 0..total.div_ceil(50) {
        let calls = (0..50.min(total - batch * 50)).map(|i| {
            let mut client = ReportServiceClient::new(app.channel.clone());
            let request = authed(
                report_request(
                    "city.litter",
                    &format!("第 {batch} 批第 {i} 件"),
                    35.1,
                    119.05,
                ),
                &token,
            );
            async move { client.submit_report(request).await.unwrap() }
        });
        futures_util::future::join_all(calls).await;
    }
    let token = app.token(DISPATCHER, Role::Dispatcher);
    let mut stream = CaseServiceClient::new(app.channel.clone())
        .export_cases(authed(ExportCasesRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    let mut chunks = 0;
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks += 1;
        assert!(chunk.rows > 0, "every chunk ends rows");
    }
    assert!(chunks > 1, "{chunks} chunks");
    let rows = export_matches_list(
        &app,
        DISPATCHER,
        Role::Dispatcher,
        ExportCasesRequest::default(),
    )
    .await;
    assert_eq!(rows.len(), total);
    let received: std::collections::HashSet<&str> = rows
        .iter()
        .map(|r| r[column("受理时间")].as_str())
        .collect();
    assert_eq!(received.len(), 1, "one instant");
    app.stop().await.unwrap();
}

on_both_databases!(
    an_export_pages_past_a_thousand_cases_received_at_one_instant,
    each_caller_exports_their_scope_with_phones_masked_as_listed,
    filters_narrow_the_export_as_they_narrow_the_list,
    stats_export_and_the_command_line,
);

//! Early warning (研判预警) through the real server with time under the test's control: a
//! hotspot at the threshold and not below, once per window and again after it; a township's
//! alert for a pile spread over its communities, never for one community's cluster; a repeat
//! reporter at 3 cases in 30 days and not at 2, its phone whole only for the holding center;
//! `ListAlerts` within the caller's scope, paged; `WatchEvents` pushing the alert to the
//! center's dispatcher within 10 s and to no one else; two replicas raising each alert once.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use common::*;
use futures_util::StreamExt;
use gridcase::{
    domain::Role,
    proto::v1::{
        Alert, Case, CoordSystem, GetCaseRequest, IngestTicketRequest, ListAlertsRequest, Location,
        PageRequest, Source, WatchEventsRequest, case_service_client::CaseServiceClient,
        gateway_service_client::GatewayServiceClient, report_service_client::ReportServiceClient,
        stats_service_client::StatsServiceClient,
    },
    service::time::ManualTime,
    storage,
};
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

const TOWNSHIP: &str = "371102001";
const COMMUNITY_A: &str = "371102001001";
const COMMUNITY_B: &str = "371102001002";
const OTHER_TOWNSHIP: &str = "371102002";
const GM_A: &str = "gm-a";
const GM_B: &str = "gm-b";
const DISP_A: &str = "disp-a";
const DISP_B: &str = "disp-b";
const DISP_TOWNSHIP: &str = "disp-township";
const DISP_OTHER: &str = "disp-other-township";
const DISP_DISTRICT: &str = "disp-district";
const SUP_CITY: &str = "sup-city";
const GATEWAY: &str = "gateway-12345";
/// Where each community's reports are made (its grid's middle).
const AT_A: (f64, f64) = (35.1, 119.05);
const AT_B: (f64, f64) = (35.1, 119.15);
const AT_OTHER: (f64, f64) = (35.1, 119.3);

fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> serde_json::Value {
    serde_json::json!({
        "type": "Polygon",
        "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]
    })
}

fn feature(
    code: &str,
    tier: &str,
    parent: Option<&str>,
    g: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "type": "Feature",
        "properties": {"code": code, "name": format!("区域{code}"), "tier": tier, "parent": parent},
        "geometry": g
    })
}

/// One district with two townships; the first has two communities (A west of 119.1 E, B east
/// of it), each one grid; the second one community and grid. A dispatcher for each community,
/// each township and the district; a supervisor of the city.
fn bundle() -> serde_json::Value {
    serde_json::json!({
        "type": "FeatureCollection",
        "features": [
            feature("371100", "city", None, square(119.0, 35.0, 119.4, 35.2)),
            feature("371102", "district", Some("371100"), square(119.0, 35.0, 119.4, 35.2)),
            feature(TOWNSHIP, "township", Some("371102"), square(119.0, 35.0, 119.2, 35.2)),
            feature(COMMUNITY_A, "community", Some(TOWNSHIP), square(119.0, 35.0, 119.1, 35.2)),
            feature("371102001001001", "grid", Some(COMMUNITY_A), square(119.0, 35.0, 119.1, 35.2)),
            feature(COMMUNITY_B, "community", Some(TOWNSHIP), square(119.1, 35.0, 119.2, 35.2)),
            feature("371102001002001", "grid", Some(COMMUNITY_B), square(119.1, 35.0, 119.2, 35.2)),
            feature(OTHER_TOWNSHIP, "township", Some("371102"), square(119.2, 35.0, 119.4, 35.2)),
            feature("371102002001", "community", Some(OTHER_TOWNSHIP), square(119.2, 35.0, 119.4, 35.2)),
            feature("371102002001001", "grid", Some("371102002001"), square(119.2, 35.0, 119.4, 35.2)),
        ],
        "units": [
            {"code": "371102001.justice", "name": "司法所", "kind": "justice", "region": TOWNSHIP},
            {"code": "371102.urban_mgmt", "name": "执法局", "kind": "urban_mgmt", "region": "371102"}
        ],
        "members": [
            {"sub": GM_A, "name": "网格员A", "role": "grid_member", "grids": ["371102001001001"], "phone": "13800000001"},
            {"sub": GM_B, "name": "网格员B", "role": "grid_member", "grids": ["371102001002001"], "phone": "13800000002"},
            {"sub": DISP_A, "name": "A调度", "role": "dispatcher", "region": COMMUNITY_A, "phone": "13800000003"},
            {"sub": DISP_B, "name": "B调度", "role": "dispatcher", "region": COMMUNITY_B, "phone": "13800000004"},
            {"sub": DISP_TOWNSHIP, "name": "街道调度", "role": "dispatcher", "region": TOWNSHIP, "phone": "13800000005"},
            {"sub": DISP_OTHER, "name": "别的街道调度", "role": "dispatcher", "region": OTHER_TOWNSHIP, "phone": "13800000006"},
            {"sub": DISP_DISTRICT, "name": "区调度", "role": "dispatcher", "region": "371102", "phone": "13800000007"},
            {"sub": SUP_CITY, "name": "市督查", "role": "supervisor", "region": "371100", "phone": "13800000008"}
        ],
        "categories": [
            {"code": "dispute.neighbor", "name": "邻里纠纷", "unit_kind": "justice", "handling_tier": "community", "severity": "general", "class": "dispute", "class_name": "矛盾纠纷"},
            {"code": "city.litter", "name": "垃圾乱堆", "unit_kind": "urban_mgmt", "handling_tier": "grid", "severity": "general", "class": "city", "class_name": "城市管理"}
        ]
    })
}

fn t0() -> DateTime<Utc> {
    shanghai(2026, 11, 2, 10, 0)
}

async fn started(backend: &Backend) -> (TestApp, Arc<ManualTime>) {
    let time = Arc::new(ManualTime::new(t0()));
    let app = TestApp::spawn_at(TestDb::new(backend).await, time.clone()).await;
    import(&app, &bundle()).await;
    (app, time)
}

async fn report(app: &TestApp, sub: &str, category: &str, at: (f64, f64)) -> Case {
    ReportServiceClient::new(app.channel.clone())
        .submit_report(authed(
            report_request(category, "测试", at.0, at.1),
            &app.token(sub, Role::GridMember),
        ))
        .await
        .expect("stored")
        .into_inner()
        .case
        .expect("a case")
}

async fn ticket(app: &TestApp, phone: &str, category: &str, at: (f64, f64)) -> Case {
    GatewayServiceClient::new(app.channel.clone())
        .ingest_ticket(authed(
            IngestTicketRequest {
                source: Source::Hotline12345.into(),
                external_id: uuid::Uuid::new_v4().to_string(),
                category_code: category.into(),
                description: "又来投诉".into(),
                caller_phone: phone.into(),
                location: Some(Location {
                    lat: at.0,
                    lon: at.1,
                    coord_system: CoordSystem::Wgs84.into(),
                    accuracy_m: 0.0,
                }),
                ..IngestTicketRequest::default()
            },
            &app.token(GATEWAY, Role::Gateway),
        ))
        .await
        .expect("ingested")
        .into_inner()
        .case
        .unwrap()
}

/// Every alert `sub` may list (all pages), newest first.
async fn alerts_of(app: &TestApp, sub: &str, role: Role, kind: &str, region: &str) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = StatsServiceClient::new(app.channel.clone())
            .list_alerts(authed(
                ListAlertsRequest {
                    kind: kind.into(),
                    region_code: region.into(),
                    page: Some(PageRequest {
                        page_size: 2,
                        page_token: token,
                    }),
                },
                &app.token(sub, role),
            ))
            .await
            .expect("listed")
            .into_inner();
        out.extend(page.alerts);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

async fn dispatcher_alerts(app: &TestApp, sub: &str) -> Vec<Alert> {
    alerts_of(app, sub, Role::Dispatcher, "", "").await
}

/// Looks at every case received so far (the background tick may have looked already: what is
/// raised is in the database either way).
async fn look(app: &TestApp) {
    app.alerts.run_due().await.expect("a look");
}

async fn count(url: &str, sql: &str) -> i64 {
    let db = storage::connect(url, 1).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn events_of(app: &TestApp, case_id: &str, sub: &str, role: Role) -> Vec<String> {
    CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.into(),
                include_events: true,
            },
            &app.token(sub, role),
        ))
        .await
        .expect("got")
        .into_inner()
        .events
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn version_of(app: &TestApp, case_id: &str) -> i64 {
    CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: case_id.into(),
                include_events: false,
            },
            &app.token(SUP_CITY, Role::Supervisor),
        ))
        .await
        .expect("got")
        .into_inner()
        .case
        .unwrap()
        .version
}

/// Disputes: none at 2, one at 3 (the community's, not also the township's), none for the 4th
/// in the window, one again for 3 more after it; staff reports raise no repeat reporter.
async fn a_hotspot_fires_once_per_window_at_the_threshold(backend: Backend) {
    let (app, time) = started(&backend).await;
    let mut cases = Vec::new();
    for _ in 0..2 {
        cases.push(report(&app, GM_A, "dispute.neighbor", AT_A).await);
    }
    look(&app).await;
    assert!(
        dispatcher_alerts(&app, DISP_DISTRICT).await.is_empty(),
        "2 < 3"
    );
    let third = report(&app, GM_A, "dispute.neighbor", AT_A).await;
    cases.push(third.clone());
    let before = version_of(&app, &third.id).await;
    look(&app).await;
    let alerts = dispatcher_alerts(&app, DISP_A).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.kind, "hotspot");
    assert_eq!(a.region_code, COMMUNITY_A);
    assert_eq!(a.center_unit_code, format!("{COMMUNITY_A}.center"));
    assert_eq!(a.class_code, "dispute");
    assert_eq!(a.class_name, "矛盾纠纷");
    assert_eq!(a.count, 3);
    let codes: Vec<String> = cases.iter().map(|c| c.code.clone()).collect();
    let mut listed = a.case_codes.clone();
    listed.sort();
    let mut expected = codes.clone();
    expected.sort();
    assert_eq!(listed, expected, "the alert names the cases counted");
    assert_eq!(a.case_ids.last(), Some(&third.id), "the third crossed");
    assert!(a.reporter_phone.is_empty());
    // One alert per region: the township's and the district's dispatchers see the community's
    // alert, and no township alert besides it; the other community's and township's see none.
    assert_eq!(dispatcher_alerts(&app, DISP_TOWNSHIP).await.len(), 1);
    assert_eq!(dispatcher_alerts(&app, DISP_DISTRICT).await.len(), 1);
    assert!(dispatcher_alerts(&app, DISP_B).await.is_empty());
    assert!(dispatcher_alerts(&app, DISP_OTHER).await.is_empty());
    // The alert is an event on the third case's chain, seen by the center, not by the grid
    // member who reported it; it leaves the case's version alone.
    assert!(
        events_of(&app, &third.id, DISP_A, Role::Dispatcher)
            .await
            .contains(&"hotspot".to_owned())
    );
    assert!(
        !events_of(&app, &third.id, GM_A, Role::GridMember)
            .await
            .contains(&"hotspot".to_owned())
    );
    assert_eq!(version_of(&app, &third.id).await, before);

    // A fourth in the same window: nothing more.
    time.set(t0() + chrono::Duration::hours(1));
    report(&app, GM_A, "dispute.neighbor", AT_A).await;
    look(&app).await;
    assert_eq!(dispatcher_alerts(&app, DISP_DISTRICT).await.len(), 1);

    // After the window (72 h from the third, and every case before out of the count): two
    // raise nothing, the third raises again.
    time.set(t0() + chrono::Duration::hours(74));
    for _ in 0..2 {
        report(&app, GM_A, "dispute.neighbor", AT_A).await;
    }
    look(&app).await;
    assert_eq!(dispatcher_alerts(&app, DISP_DISTRICT).await.len(), 1);
    let again = report(&app, GM_A, "dispute.neighbor", AT_A).await;
    look(&app).await;
    let alerts = dispatcher_alerts(&app, DISP_DISTRICT).await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[0].case_ids.last(), Some(&again.id), "newest first");
    assert_eq!(alerts[0].count, 3);
    // Grid members report as their job: no repeat reporter however many they send.
    assert!(
        alerts_of(&app, DISP_DISTRICT, Role::Dispatcher, "repeat_reporter", "")
            .await
            .is_empty()
    );
    assert_eq!(
        count(
            &app.db.url,
            "SELECT COUNT(*) FROM case_events WHERE kind = 'hotspot'"
        )
        .await,
        2
    );
    app.stop().await.unwrap();
}

/// Four of a class of 5 in community A and one in B: the township's alert, not A's; A's fifth
/// then makes A's own cluster (a region of its own); the township's window stays open.
async fn a_township_alerts_for_a_pile_spread_over_its_communities(backend: Backend) {
    let (app, _time) = started(&backend).await;
    for _ in 0..4 {
        report(&app, GM_A, "city.litter", AT_A).await;
    }
    look(&app).await;
    assert!(
        dispatcher_alerts(&app, DISP_DISTRICT).await.is_empty(),
        "4 < 5"
    );
    report(&app, GM_B, "city.litter", AT_B).await;
    look(&app).await;
    let alerts = dispatcher_alerts(&app, DISP_TOWNSHIP).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].region_code, TOWNSHIP);
    assert_eq!(alerts[0].count, 5);
    assert_eq!(alerts[0].class_code, "city");
    // A community's center does not see its township's alert.
    assert!(dispatcher_alerts(&app, DISP_A).await.is_empty());
    assert!(dispatcher_alerts(&app, DISP_B).await.is_empty());
    report(&app, GM_A, "city.litter", AT_A).await;
    look(&app).await;
    let alerts = dispatcher_alerts(&app, DISP_TOWNSHIP).await;
    let regions: Vec<&str> = alerts.iter().map(|a| a.region_code.as_str()).collect();
    assert_eq!(regions, [COMMUNITY_A, TOWNSHIP], "{alerts:?}");
    assert_eq!(dispatcher_alerts(&app, DISP_A).await.len(), 1);
    app.stop().await.unwrap();
}

/// A phone on 2 tickets is nothing; on 3 (however spelled) a repeat reporter, to the center
/// holding the latest case, naming the three, the phone whole for that center only; a fourth
/// in the window nothing; 3 more after the window again.
async fn a_repeat_reporter_is_raised_at_three_cases_in_30_days(backend: Backend) {
    let (app, time) = started(&backend).await;
    ticket(&app, "13912345678", "dispute.neighbor", AT_A).await;
    ticket(&app, "13700000000", "dispute.neighbor", AT_A).await;
    time.set(t0() + chrono::Duration::days(10));
    ticket(&app, "139-1234-5678", "dispute.neighbor", AT_B).await;
    look(&app).await;
    assert!(
        alerts_of(&app, SUP_CITY, Role::Supervisor, "repeat_reporter", "")
            .await
            .is_empty(),
        "two cases are not a repeat"
    );
    time.set(t0() + chrono::Duration::days(20));
    let third = ticket(&app, "+8613912345678", "dispute.neighbor", AT_B).await;
    look(&app).await;
    let alerts = alerts_of(&app, SUP_CITY, Role::Supervisor, "repeat_reporter", "").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.count, 3);
    assert_eq!(a.case_ids.last(), Some(&third.id));
    assert_eq!(
        a.region_code, third.region_code,
        "the center holding the latest case"
    );
    assert_eq!(a.center_unit_code, format!("{}.center", third.region_code));
    assert_eq!(
        a.reporter_phone, "139****5678",
        "masked for a supervisor above"
    );
    // The holding center's dispatcher sees the whole number (as on the case itself).
    let holder = [
        (COMMUNITY_A, DISP_A),
        (COMMUNITY_B, DISP_B),
        (TOWNSHIP, DISP_TOWNSHIP),
        ("371102", DISP_DISTRICT),
    ]
    .into_iter()
    .find(|(r, _)| *r == third.region_code)
    .map(|(_, d)| d)
    .expect("a dispatcher of the holding region");
    let seen = alerts_of(&app, holder, Role::Dispatcher, "repeat_reporter", "").await;
    assert_eq!(seen[0].reporter_phone, "13912345678");
    // The event records the phone masked, and the gateway that brought the case never sees it.
    let events = CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: third.id.clone(),
                include_events: true,
            },
            &app.token(SUP_CITY, Role::Supervisor),
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let event = events
        .iter()
        .find(|e| e.kind == "repeat_reporter")
        .expect("the event");
    assert!(
        event.details_json.contains("139****5678"),
        "{}",
        event.details_json
    );
    assert!(!event.details_json.contains("13912345678"));
    assert_eq!(
        event.notify_units,
        [format!("{}.center", third.region_code)]
    );
    assert!(
        !events_of(&app, &third.id, GATEWAY, Role::Gateway)
            .await
            .contains(&"repeat_reporter".to_owned())
    );
    // A fourth within the window: nothing more.
    time.set(t0() + chrono::Duration::days(25));
    ticket(&app, "13912345678", "dispute.neighbor", AT_A).await;
    look(&app).await;
    assert_eq!(
        alerts_of(&app, SUP_CITY, Role::Supervisor, "repeat_reporter", "")
            .await
            .len(),
        1
    );
    // 30 days after the third: the calls of the last 30 days (days 25, 51, 52) raise again.
    time.set(t0() + chrono::Duration::days(51));
    ticket(&app, "13912345678", "dispute.neighbor", AT_A).await;
    look(&app).await;
    time.set(t0() + chrono::Duration::days(52));
    ticket(&app, "13912345678", "dispute.neighbor", AT_A).await;
    look(&app).await;
    assert_eq!(
        alerts_of(&app, SUP_CITY, Role::Supervisor, "repeat_reporter", "")
            .await
            .len(),
        2
    );
    // Never 3 disputes within 72 hours in one township: no hotspot besides.
    assert!(
        alerts_of(&app, SUP_CITY, Role::Supervisor, "hotspot", "")
            .await
            .is_empty()
    );
    app.stop().await.unwrap();
}

/// `ListAlerts` confines to the caller's region, narrows by region and kind within it, pages,
/// and refuses what it cannot answer with the right code.
async fn list_alerts_keeps_to_the_callers_scope(backend: Backend) {
    let (app, _time) = started(&backend).await;
    // A's three, then B's: each community's cluster (a pile spread over both would be the
    // township's).
    for at in [(GM_A, AT_A), (GM_B, AT_B)] {
        for _ in 0..3 {
            report(&app, at.0, "dispute.neighbor", at.1).await;
        }
    }
    look(&app).await;
    // Two communities' alerts: each community's dispatcher sees its own; the township, the
    // district and the city see both; the other township none.
    let a = dispatcher_alerts(&app, DISP_A).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].region_code, COMMUNITY_A);
    let b = dispatcher_alerts(&app, DISP_B).await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].region_code, COMMUNITY_B);
    assert_eq!(dispatcher_alerts(&app, DISP_TOWNSHIP).await.len(), 2);
    assert_eq!(
        alerts_of(&app, SUP_CITY, Role::Supervisor, "", "")
            .await
            .len(),
        2
    );
    assert!(dispatcher_alerts(&app, DISP_OTHER).await.is_empty());
    // Narrowed to one community, or to a kind.
    let narrowed = alerts_of(
        &app,
        DISP_DISTRICT,
        Role::Dispatcher,
        "hotspot",
        COMMUNITY_B,
    )
    .await;
    assert_eq!(narrowed.len(), 1);
    assert_eq!(narrowed[0].region_code, COMMUNITY_B);
    assert!(
        alerts_of(&app, DISP_DISTRICT, Role::Dispatcher, "repeat_reporter", "")
            .await
            .is_empty()
    );
    // A region outside the caller's: nothing of it.
    assert!(
        alerts_of(&app, DISP_A, Role::Dispatcher, "", COMMUNITY_B)
            .await
            .is_empty()
    );
    // Pages of one, newest first, then no more.
    let mut client = StatsServiceClient::new(app.channel.clone());
    let token = app.token(DISP_TOWNSHIP, Role::Dispatcher);
    let first = client
        .list_alerts(authed(
            ListAlertsRequest {
                page: Some(PageRequest {
                    page_size: 1,
                    page_token: String::new(),
                }),
                ..ListAlertsRequest::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.alerts.len(), 1);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_alerts(authed(
            ListAlertsRequest {
                page: Some(PageRequest {
                    page_size: 1,
                    page_token: first.next_page_token.clone(),
                }),
                ..ListAlertsRequest::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.alerts.len(), 1);
    assert_ne!(second.alerts[0].id, first.alerts[0].id);
    let at = |a: &Alert| {
        let t = a.raised_at.unwrap();
        (t.seconds, t.nanos)
    };
    assert!(at(&first.alerts[0]) >= at(&second.alerts[0]));
    // Bad requests.
    for (request, code) in [
        (
            ListAlertsRequest {
                kind: "fire".into(),
                ..ListAlertsRequest::default()
            },
            Code::InvalidArgument,
        ),
        (
            ListAlertsRequest {
                region_code: "999999".into(),
                ..ListAlertsRequest::default()
            },
            Code::InvalidArgument,
        ),
        (
            ListAlertsRequest {
                page: Some(PageRequest {
                    page_size: 10,
                    page_token: "not-a-token".into(),
                }),
                ..ListAlertsRequest::default()
            },
            Code::InvalidArgument,
        ),
    ] {
        let status = client
            .list_alerts(authed(request, &token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
    }
    for (sub, role) in [(GM_A, Role::GridMember), (GATEWAY, Role::Gateway)] {
        let status = client
            .list_alerts(authed(ListAlertsRequest::default(), &app.token(sub, role)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role:?}");
    }
    app.stop().await.unwrap();
}

/// The alert is pushed by `WatchEvents` to the center's dispatcher within 10 s of the case
/// that crossed the threshold (by the background look, no one calling it), addressed to the
/// center; the grid member who reported the cases does not get it.
async fn watch_events_delivers_the_alert_to_the_center(backend: Backend) {
    let (app, _time) = started(&backend).await;
    let follow = |sub: &'static str, role: Role| {
        let channel = app.channel.clone();
        let token = app.token(sub, role);
        async move {
            GatewayServiceClient::new(channel)
                .watch_events(authed(
                    WatchEventsRequest {
                        kinds: vec!["hotspot".into()],
                        ..WatchEventsRequest::default()
                    },
                    &token,
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut center = follow(DISP_A, Role::Dispatcher).await;
    let mut reporter = follow(GM_A, Role::GridMember).await;
    let mut other = follow(DISP_B, Role::Dispatcher).await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(report(&app, GM_A, "dispute.neighbor", AT_A).await);
    }
    let crossed = std::time::Instant::now();
    let event = tokio::time::timeout(Duration::from_secs(10), center.next())
        .await
        .expect("the alert within 10 s")
        .expect("the stream goes on")
        .expect("not an error");
    assert!(crossed.elapsed() < Duration::from_secs(10));
    assert_eq!(event.kind, "hotspot");
    assert_eq!(event.case_id, last.unwrap().id);
    assert_eq!(event.notify_units, [format!("{COMMUNITY_A}.center")]);
    assert!(
        event.details_json.contains("\"count\":3"),
        "{}",
        event.details_json
    );
    for stream in [&mut reporter, &mut other] {
        assert!(
            tokio::time::timeout(Duration::from_secs(1), stream.next())
                .await
                .is_err(),
            "no alert for the reporter or another community"
        );
    }
    app.stop().await.unwrap();
}

/// Two replicas on one database, each taking reports and looking at once (and on their own
/// ticks): each alert is raised once, and every chain still verifies.
async fn two_replicas_raise_each_alert_once(backend: Backend) {
    let time = Arc::new(ManualTime::new(t0()));
    let db = TestDb::new(&backend).await;
    let a = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    let b = TestApp::spawn_at(TestDb::shared(&db.url), time.clone()).await;
    import(&a, &bundle()).await;
    wait_for_directory(&b).await;
    // Each round on both replicas, each looking at once: A's disputes, a citizen calling about
    // the other township, then B's disputes, then city reports spread over A and B.
    for round in 0..3 {
        let (one, two) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        report(one, GM_A, "dispute.neighbor", AT_A).await;
        ticket(two, "13912345678", "city.litter", AT_OTHER).await;
        let (x, y) = tokio::join!(a.alerts.run_due(), b.alerts.run_due());
        x.unwrap();
        y.unwrap();
    }
    for round in 0..3 {
        let one = if round % 2 == 0 { &a } else { &b };
        report(one, GM_B, "dispute.neighbor", AT_B).await;
        let (x, y) = tokio::join!(a.alerts.run_due(), b.alerts.run_due());
        x.unwrap();
        y.unwrap();
    }
    for _ in 0..2 {
        report(&a, GM_A, "city.litter", AT_A).await;
        report(&b, GM_B, "city.litter", AT_B).await;
    }
    report(&b, GM_B, "city.litter", AT_B).await;
    let (x, y) = tokio::join!(a.alerts.run_due(), b.alerts.run_due());
    x.unwrap();
    y.unwrap();
    // Let the background ticks of both look again too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let url = &db.url;
    // A's and B's dispute hotspots, the township's city hotspot, one repeat reporter.
    assert_eq!(count(url, "SELECT COUNT(*) FROM alerts").await, 4);
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM case_events WHERE kind = 'hotspot'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM case_events WHERE kind = 'repeat_reporter'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            url,
            "SELECT COUNT(*) FROM (SELECT region_code, class_code FROM alerts \
             GROUP BY region_code, class_code HAVING COUNT(*) > 1) AS doubles"
        )
        .await,
        0
    );
    let listed = alerts_of(&b, SUP_CITY, Role::Supervisor, "", "").await;
    let mut regions: Vec<String> = listed
        .iter()
        .filter(|x| x.kind == "hotspot")
        .map(|x| x.region_code.clone())
        .collect();
    regions.sort();
    assert_eq!(regions, [TOWNSHIP, COMMUNITY_A, COMMUNITY_B]);
    // Every chain with its alerts verifies.
    audit_verifies(url).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

on_both_databases!(
    a_hotspot_fires_once_per_window_at_the_threshold,
    a_township_alerts_for_a_pile_spread_over_its_communities,
    a_repeat_reporter_is_raised_at_three_cases_in_30_days,
    list_alerts_keeps_to_the_callers_scope,
    watch_events_delivers_the_alert_to_the_center,
    two_replicas_raise_each_alert_once,
);

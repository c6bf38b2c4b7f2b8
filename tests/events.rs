//! WatchEvents through the real server: a gateway follows its own cases' events in sequence
//! order, live, and resumes after the last sequence it saw without missing or seeing another
//! gateway's events; SLA levels reach it too.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        Case, CaseEvent, CaseStatus, CoordSystem, DispatchCaseRequest, GetCaseRequest,
        IngestTicketRequest, Location, MergeCaseRequest, Source, WatchEventsRequest,
        case_service_client::CaseServiceClient, gateway_service_client::GatewayServiceClient,
    },
    service::time::ManualTime,
};
use tokio_stream::StreamExt;
use tonic::{Code, Streaming, transport::Channel};

fn gateway(app: &TestApp) -> GatewayServiceClient<Channel> {
    GatewayServiceClient::new(app.channel.clone())
}

async fn ticket(app: &TestApp, sub: &str, external: &str) -> Case {
    let token = app.token(sub, Role::Gateway);
    gateway(app)
        .ingest_ticket(authed(
            IngestTicketRequest {
                source: Source::Hotline12345.into(),
                external_id: external.into(),
                category_code: "dispute.neighbor".into(),
                description: "楼上噪音扰民".into(),
                caller_phone: "13912345678".into(),
                caller_name: "张先生".into(),
                address: "测试社区3号楼".into(),
                region_code: "371102001001".into(),
                ..IngestTicketRequest::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
}

async fn watch(app: &TestApp, sub: &str, after: i64) -> Streaming<CaseEvent> {
    let token = app.token(sub, Role::Gateway);
    gateway(app)
        .watch_events(authed(
            WatchEventsRequest {
                after_sequence: after,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The next `n` events of the stream, each within 5 s.
async fn next(stream: &mut Streaming<CaseEvent>, n: usize) -> Vec<CaseEvent> {
    let mut out = Vec::new();
    for _ in 0..n {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream goes on")
            .expect("not an error");
        out.push(event);
    }
    out
}

async fn events_of(app: &TestApp, sub: &str, case: &Case) -> Vec<CaseEvent> {
    let token = app.token(sub, Role::Gateway);
    CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: case.id.clone(),
                include_events: true,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .events
}

async fn a_gateway_follows_its_cases_in_order_and_resumes_without_gaps(backend: Backend) {
    let t0 = shanghai(2025, 9, 22, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    let first = ticket(&app, "gateway-12345", "T-1").await;
    let theirs = ticket(&app, "gateway-wechat", "W-1").await;
    let second = ticket(&app, "gateway-12345", "T-2").await;

    // From the start: exactly this gateway's events, in sequence order.
    let mut expected: Vec<CaseEvent> = events_of(&app, "gateway-12345", &first).await;
    expected.extend(events_of(&app, "gateway-12345", &second).await);
    expected.sort_by_key(|e| e.sequence);
    let mut stream = watch(&app, "gateway-12345", 0).await;
    let got = next(&mut stream, expected.len()).await;
    assert_eq!(got, expected);
    assert!(got.windows(2).all(|w| w[0].sequence < w[1].sequence));
    assert!(got.iter().all(|e| e.case_id != theirs.id));

    // Live: a dispatch arrives on the open stream.
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    CaseServiceClient::new(app.channel.clone())
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: first.id.clone(),
                expected_version: first.version,
                unit_code: String::new(),
                reason: "分流".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap();
    let live = next(&mut stream, 1).await;
    assert_eq!(live[0].kind, "dispatched");
    assert_eq!(live[0].case_id, first.id);
    let last_seen = live[0].sequence;
    drop(stream);

    // While the gateway is away: the other gateway's case moves, and an SLA warning comes
    // for the second ticket (its dispatch clock at 80 % of 24 h).
    CaseServiceClient::new(app.channel.clone())
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: theirs.id.clone(),
                expected_version: theirs.version,
                unit_code: String::new(),
                reason: "分流".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap();
    time.set(t0 + chrono::Duration::hours(20));
    assert!(app.supervisor.run_due().await.unwrap() >= 1);

    // Resuming after the last sequence seen: the missed event, nothing twice, nothing foreign.
    let mut resumed = watch(&app, "gateway-12345", last_seen).await;
    let missed = next(&mut resumed, 1).await;
    assert_eq!(missed[0].kind, "sla_warning");
    assert_eq!(missed[0].case_id, second.id);
    assert!(missed[0].sequence > last_seen);
    // …and then silence: nothing else is due to this gateway.
    let quiet = tokio::time::timeout(Duration::from_millis(800), resumed.next()).await;
    assert!(quiet.is_err(), "unexpected event: {quiet:?}");

    let bad = gateway(&app)
        .watch_events(authed(
            WatchEventsRequest { after_sequence: -1 },
            &app.token("gateway-12345", Role::Gateway),
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await.unwrap();
}

/// Two gateways of one source number their tickets independently: the same external id from
/// another gateway is a case of its own, and nothing any answer or event carries names the
/// other gateway's case, not its id, not its code, not that it exists.
async fn a_gateway_never_learns_of_another_gateways_case(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let (gw_a, gw_b) = (
        app.token("gw-a", Role::Gateway),
        app.token("gw-b", Role::Gateway),
    );
    let request = |external: &str, description: &str| IngestTicketRequest {
        source: Source::Hotline12345.into(),
        external_id: external.into(),
        category_code: "dispute.neighbor".into(),
        description: description.into(),
        caller_phone: "13812341234".into(),
        region_code: "371102001001".into(),
        location: Some(Location {
            lat: 35.1,
            lon: 119.05,
            coord_system: CoordSystem::Wgs84.into(),
            accuracy_m: 0.0,
        }),
        ..IngestTicketRequest::default()
    };
    let ingest = |req: IngestTicketRequest, token: &str| {
        let mut client = gateway(&app);
        let req = authed(req, token);
        async move { client.ingest_ticket(req).await }
    };
    let theirs = ingest(request("B-ext-0001", "市民来电反映问题"), &gw_b)
        .await
        .expect("gw-b ingests")
        .into_inner();
    assert!(theirs.created);
    let theirs = theirs.case.unwrap();
    let secrets = [theirs.id.clone(), theirs.code.clone()];
    let leaks = |what: &str, text: String| {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} names gw-b's case: {text}"
            );
        }
    };

    // The identical ticket from gw-a: a case of gw-a's own.
    let mine = ingest(request("B-ext-0001", "市民来电反映问题"), &gw_a)
        .await
        .expect("gw-a ingests")
        .into_inner();
    assert!(mine.created, "tickets are keyed per gateway");
    leaks("the identical ticket's answer", format!("{mine:?}"));
    let mine = mine.case.unwrap();
    assert_eq!(
        mine.possible_duplicate_of, "",
        "not even as a possible duplicate"
    );
    // Its retry finds gw-a's case; different content names gw-a's own case only.
    let again = ingest(request("B-ext-0001", "市民来电反映问题"), &gw_a)
        .await
        .expect("retry")
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.case.as_ref().unwrap().id, mine.id);
    let conflict = ingest(request("B-ext-0001", "别的事"), &gw_a)
        .await
        .expect_err("same key, other content");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert!(conflict.message().contains(&mine.code), "{conflict:?}");
    leaks("the conflict", format!("{conflict:?}"));

    // A dispatcher sees the hint, and merges gw-a's case into gw-b's.
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let seen = CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: mine.id.clone(),
                include_events: false,
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(seen.possible_duplicate_of, theirs.id);
    CaseServiceClient::new(app.channel.clone())
        .merge_case(authed(
            MergeCaseRequest {
                case_id: mine.id.clone(),
                expected_version: seen.version,
                into_case_id: theirs.id.clone(),
                reason: "重复".into(),
            },
            &dispatcher,
        ))
        .await
        .expect("merged");

    // gw-a's view of its merged case, its events, and its stream: nothing of gw-b's case.
    let view = CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: mine.id.clone(),
                include_events: true,
            },
            &gw_a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.case.as_ref().unwrap().status(), CaseStatus::Merged);
    assert!(view.events.iter().any(|e| e.kind == "merged"));
    leaks("GetCase", format!("{view:?}"));
    let mut stream = watch(&app, "gw-a", 0).await;
    let streamed = next(&mut stream, view.events.len()).await;
    assert_eq!(streamed.last().unwrap().kind, "merged");
    leaks("WatchEvents", format!("{streamed:?}"));
    // gw-b's case itself is out of gw-a's reach.
    let refused = CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: theirs.id.clone(),
                include_events: false,
            },
            &gw_a,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    // …answered exactly as a case that does not exist.
    let unknown = uuid::Uuid::now_v7().to_string();
    let absent = CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: unknown.clone(),
                include_events: false,
            },
            &gw_a,
        ))
        .await
        .unwrap_err();
    assert_eq!(absent.code(), Code::NotFound);
    assert_eq!(
        refused.message().replace(&theirs.id, "ID"),
        absent.message().replace(&unknown, "ID")
    );
    app.stop().await.unwrap();
}

on_both_databases!(
    a_gateway_follows_its_cases_in_order_and_resumes_without_gaps,
    a_gateway_never_learns_of_another_gateways_case,
);

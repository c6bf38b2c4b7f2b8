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
        Case, CaseEvent, DispatchCaseRequest, GetCaseRequest, IngestTicketRequest, Source,
        WatchEventsRequest, case_service_client::CaseServiceClient,
        gateway_service_client::GatewayServiceClient,
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

on_both_databases!(a_gateway_follows_its_cases_in_order_and_resumes_without_gaps);

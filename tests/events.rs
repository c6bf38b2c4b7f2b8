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
        AcceptCaseRequest, Case, CaseEvent, CaseStatus, CoordSystem, DispatchCaseRequest,
        EscalateCaseRequest, GetCaseRequest, IngestTicketRequest, Location, MergeCaseRequest,
        Source, WatchEventsRequest, case_service_client::CaseServiceClient,
        gateway_service_client::GatewayServiceClient,
    },
    service::time::ManualTime,
};
use sea_orm::ConnectionTrait;
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
                ..WatchEventsRequest::default()
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
            WatchEventsRequest {
                after_sequence: -1,
                ..WatchEventsRequest::default()
            },
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

/// A stream of `sub` in `role`, with filters.
async fn follow(
    app: &TestApp,
    sub: &str,
    role: Role,
    after: i64,
    kinds: &[&str],
    region: &str,
) -> Result<Streaming<CaseEvent>, tonic::Status> {
    let token = app.token(sub, role);
    gateway(app)
        .watch_events(authed(
            WatchEventsRequest {
                after_sequence: after,
                kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
                region_code: region.into(),
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Everything the stream sends until it has been quiet for `quiet`.
async fn drain(stream: &mut Streaming<CaseEvent>, quiet: Duration) -> Vec<CaseEvent> {
    let mut out = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(quiet, stream.next()).await {
        out.push(item.expect("not an error"));
    }
    out
}

const CENTER_STAFF: &str = "staff-371102.center";

/// Every kind of follower against cases inside and outside its scope: one that moves out of a
/// unit's scope by escalation (the unit sees the escalation, nothing after) and into another
/// unit's by re-dispatch (it sees the dispatch and what follows); the same live as resumed from
/// the start; the kinds and region filters; bad filters refused.
async fn every_follower_sees_exactly_the_events_of_the_cases_it_may_see(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut bundle = small_bundle();
    bundle["members"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"sub": CENTER_STAFF, "name": "区中心", "role": "unit_staff", "unit": "371102.center"}
        ));
    import(&app, &bundle).await;
    let followers: Vec<(&str, Role)> = vec![
        (GRID_MEMBER, Role::GridMember),
        (OTHER_GRID_MEMBER, Role::GridMember),
        (JUSTICE_STAFF, Role::UnitStaff),
        (UNIT_STAFF, Role::UnitStaff),
        (CENTER_STAFF, Role::UnitStaff),
        (DISPATCHER, Role::Dispatcher),
        (GRID2_DISPATCHER, Role::Dispatcher),
        (SUPERVISOR, Role::Supervisor),
        (GRID2_SUPERVISOR, Role::Supervisor),
        ("gateway-12345", Role::Gateway),
        ("ops-admin", Role::Admin),
    ];
    let mut live = Vec::new();
    for (sub, role) in &followers {
        live.push(follow(&app, sub, *role, 0, &[], "").await.expect("follows"));
    }

    // A: grid 1, led by the justice office; escalated to the district's center, which
    // dispatches it on to the police. B: grid 2's litter. C: a ticket for the community.
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let cases = || CaseServiceClient::new(app.channel.clone());
    let a = submit(&app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    let a = cases()
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: a.id.clone(),
                expected_version: a.version,
                unit_code: String::new(),
                reason: "分流".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let a = cases()
        .escalate_case(authed(
            EscalateCaseRequest {
                case_id: a.id.clone(),
                expected_version: a.version,
                reason: "跨街道".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(a.unit_code, "371102.center");
    let a = cases()
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: a.id.clone(),
                expected_version: a.version,
                unit_code: "371102.police".into(),
                reason: "交派出所".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    cases()
        .accept_case(authed(
            AcceptCaseRequest {
                case_id: a.id.clone(),
                expected_version: a.version,
            },
            &app.token(UNIT_STAFF, Role::UnitStaff),
        ))
        .await
        .unwrap();
    let b = submit(&app, OTHER_GRID_MEMBER, "city.litter", 35.1, 119.15).await;
    let c = ticket(&app, "gateway-12345", "T-1").await;

    // Every event, in order, as the admin sees them all.
    let all = drain(&mut live[10], Duration::from_secs(2)).await;
    let kinds_of = |case: &Case| -> Vec<String> {
        all.iter()
            .filter(|e| e.case_id == case.id)
            .map(|e| e.kind.clone())
            .collect()
    };
    assert_eq!(
        kinds_of(&a),
        [
            "submitted",
            "registered",
            "dispatched",
            "escalated",
            "dispatched",
            "accepted"
        ]
    );
    assert_eq!(kinds_of(&b), ["submitted", "registered"]);
    assert_eq!(kinds_of(&c), ["submitted", "registered"]);
    let seqs = |case: &Case, from: usize, to: usize| -> Vec<i64> {
        all.iter()
            .filter(|e| e.case_id == case.id)
            .skip(from)
            .take(to - from)
            .map(|e| e.sequence)
            .collect()
    };
    let whole = |case: &Case| seqs(case, 0, 99);
    let joined = |parts: Vec<Vec<i64>>| -> Vec<i64> {
        let mut v: Vec<i64> = parts.into_iter().flatten().collect();
        v.sort_unstable();
        v
    };
    let expected: Vec<Vec<i64>> = vec![
        // The reporter: grid 1's case.
        whole(&a),
        // Grid 2's member: grid 2's case.
        whole(&b),
        // The justice office leads A until the escalation moves it away: it sees that too.
        seqs(&a, 0, 4),
        // The police: from the dispatch that brings A to them.
        seqs(&a, 4, 6),
        // The district's center: from the escalation that brings A in, to the dispatch that
        // takes it out.
        seqs(&a, 3, 5),
        // The district's dispatcher: everything in the district.
        joined(vec![whole(&a), whole(&b), whole(&c)]),
        // Grid 2's dispatcher and supervisor: grid 2 only.
        whole(&b),
        joined(vec![whole(&a), whole(&b), whole(&c)]),
        whole(&b),
        // The gateway: what it brought in.
        whole(&c),
    ];
    for (k, ((sub, role), want)) in followers.iter().zip(&expected).enumerate() {
        let got: Vec<i64> = drain(&mut live[k], Duration::from_millis(300))
            .await
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(&got, want, "{sub} ({role:?}), live");
        // The same, resumed from the start.
        let mut again = follow(&app, sub, *role, 0, &[], "").await.unwrap();
        let resumed: Vec<i64> = drain(&mut again, Duration::from_millis(300))
            .await
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(&resumed, want, "{sub} ({role:?}), from the start");
    }

    // Filters: kinds, and a narrower region inside the scope.
    let mut dispatches = follow(&app, DISPATCHER, Role::Dispatcher, 0, &["dispatched"], "")
        .await
        .unwrap();
    let got = drain(&mut dispatches, Duration::from_millis(300)).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|e| e.kind == "dispatched"));
    let mut grid1 = follow(
        &app,
        DISPATCHER,
        Role::Dispatcher,
        0,
        &[],
        "371102001001001",
    )
    .await
    .unwrap();
    let got: Vec<i64> = drain(&mut grid1, Duration::from_millis(300))
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(got, whole(&a));
    // Who must act is named on the event: the dispatch to the police names the police.
    let to_police = all
        .iter()
        .filter(|e| e.case_id == a.id && e.kind == "dispatched")
        .nth(1)
        .unwrap();
    assert_eq!(to_police.notify_units, ["371102.police"]);
    // Bad filters are refused.
    for (kinds, region, field) in [
        (vec!["nonsense"], "", "kinds[0]"),
        (vec![], "999999", "region_code"),
    ] {
        let status = follow(&app, DISPATCHER, Role::Dispatcher, 0, &kinds, region)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(field), "{status:?}");
    }
    app.stop().await.unwrap();
}

/// Idle followers wait on the hub: no query of theirs reaches the database; a commit wakes the
/// hub, which reads once for all of them, and each has the event within a second.
async fn idle_streams_cost_no_queries_and_a_commit_reaches_them_at_once(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut s = follow(&app, DISPATCHER, Role::Dispatcher, 0, &[], "")
            .await
            .unwrap();
        // Caught up: nothing to send.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), s.next())
                .await
                .is_err()
        );
        streams.push(s);
    }
    let before = app.events.reads();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.events.reads(), before, "idle streams read nothing");
    let case = submit(&app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    let sent = std::time::Instant::now();
    for s in &mut streams {
        let first = tokio::time::timeout(Duration::from_secs(1), s.next())
            .await
            .expect("pushed within a second")
            .unwrap()
            .unwrap();
        assert_eq!(first.case_id, case.id);
    }
    assert!(sent.elapsed() < Duration::from_secs(1));
    let reads = app.events.reads() - before;
    assert!(
        (1..=4).contains(&reads),
        "one read (or a few) for all 20 streams, not one each: {reads}"
    );
    app.stop().await.unwrap();
}

/// On shutdown every stream ends at once with UNAVAILABLE, so clients resume elsewhere.
async fn streams_end_with_unavailable_when_the_server_stops(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let app = TestApp::spawn_with(db, |s| s.shutdown_grace = Duration::from_secs(20)).await;
    import(&app, &small_bundle()).await;
    let mut stream = follow(&app, DISPATCHER, Role::Dispatcher, 0, &[], "")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(app.stop());
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("ended before the grace period")
        .expect("a status, not a silent end");
    let status = end.expect_err("ended with an error status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("resume"), "{status:?}");
    stopping.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the server did not wait out its grace for the stream"
    );
}

/// A follower that stops reading while events keep coming is ended with UNAVAILABLE once it
/// falls further behind than the hub keeps (here one batch), told where to resume; memory never
/// grows with it.
async fn a_reader_that_falls_too_far_behind_is_told_to_resume(backend: Backend) {
    use gridcase::service::{
        LiveDirectory,
        events::{EventHub, Follow, Wake},
    };
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let db = gridcase::storage::connect(&app.db.url, 4).await.unwrap();
    let directory = std::sync::Arc::new(LiveDirectory::load(db.clone(), 1 << 20).await.unwrap());
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let wake = Wake::default();
    let hub = EventHub::start(db, directory, None, wake.clone(), stopped, 1)
        .await
        .unwrap();
    let admin = gridcase::domain::Caller {
        sub: "ops-admin".into(),
        role: Role::Admin,
    };
    let mut stream = Box::pin(hub.follow(&admin, Follow::default()).unwrap());
    // Caught up (nothing yet), and listening.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err()
    );
    // Events taken live.
    let first = submit(&app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    wake.events_committed();
    let mut got = Vec::new();
    while got.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        got.push(e.event.seq);
    }
    let last = *got.last().unwrap();
    assert!(got.iter().all(|s| *s > 0), "{got:?} of {}", first.id);
    // Not reading now, while three more batches go by.
    for _ in 0..3 {
        submit(&app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
        wake.events_committed();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut ended = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an answer")
    {
        if let Err(e) = item {
            ended = Some(e);
            break;
        }
    }
    let status = tonic::Status::from(ended.expect("ended with an error"));
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("too far behind"), "{status:?}");
    assert!(
        status.message().contains(&format!("({last})")),
        "says where to resume: {status:?}"
    );
    app.stop().await.unwrap();
}

on_both_databases!(
    a_reader_that_falls_too_far_behind_is_told_to_resume,
    a_gateway_follows_its_cases_in_order_and_resumes_without_gaps,
    a_gateway_never_learns_of_another_gateways_case,
    every_follower_sees_exactly_the_events_of_the_cases_it_may_see,
    idle_streams_cost_no_queries_and_a_commit_reaches_them_at_once,
    streams_end_with_unavailable_when_the_server_stops,
);

/// PostgreSQL, two replicas: 10,000 events made through both while a follower reads them on
/// one, is cut off, and resumes on the other after the last sequence it saw: it has every
/// event exactly once, in order, none missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_and_resumed_on_another_replica_misses_nothing_of_ten_thousand_events() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    const REPORTS: usize = 5_000;
    let db = TestDb::new(&backend).await;
    let url = db.url.clone();
    // Alerts off: 5,000 disputes in one community would add a hotspot event to those counted.
    let off = |s: &mut gridcase::config::Settings| s.alerts.enabled = false;
    let first = TestApp::spawn_with(db, off).await;
    let second = TestApp::spawn_with(TestDb::shared(&url), off).await;
    import(&first, &small_bundle()).await;
    wait_for_directory(&second).await;
    let mut stream = follow(&first, "ops-admin", Role::Admin, 0, &[], "")
        .await
        .unwrap();
    let mut writers = Vec::new();
    for (k, app) in [&first, &second].into_iter().enumerate() {
        for w in 0..8 {
            let channel = app.channel.clone();
            let token = app.token(GRID_MEMBER, Role::GridMember);
            writers.push(tokio::spawn(async move {
                use gridcase::proto::v1::report_service_client::ReportServiceClient;
                let mut client = ReportServiceClient::new(channel);
                for i in 0..REPORTS / 16 {
                    let lon = 119.01 + ((k * 8 + w) as f64) * 0.005 + (i as f64) * 1e-5;
                    client
                        .submit_report(authed(
                            report_request("dispute.neighbor", "测试", 35.1, lon),
                            &token,
                        ))
                        .await
                        .expect("stored");
                }
            }));
        }
    }
    let total = 2 * (REPORTS / 16) * 16;
    let mut seen: Vec<i64> = Vec::with_capacity(total);
    // Cut off a third of the way in…
    while seen.len() < total / 3 {
        let e = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        seen.push(e.sequence);
    }
    drop(stream);
    // …and resumed on the other replica after the last sequence seen.
    let mut resumed = follow(
        &second,
        "ops-admin",
        Role::Admin,
        *seen.last().unwrap(),
        &[],
        "",
    )
    .await
    .unwrap();
    while seen.len() < total {
        let e = tokio::time::timeout(Duration::from_secs(30), resumed.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        seen.push(e.sequence);
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), resumed.next())
            .await
            .is_err(),
        "nothing more than was made"
    );
    let db = gridcase::storage::connect(&url, 1).await.unwrap();
    let stored: Vec<i64> = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT seq FROM case_events ORDER BY seq",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    assert_eq!(stored.len(), total);
    assert_eq!(seen, stored, "every event once, in order, none missing");
    second.stop().await.unwrap();
    first.stop().await.unwrap();
}

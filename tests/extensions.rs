//! Extensions (延期) and returns within the rule (DESIGN.md "SLA clocks"), through the real
//! server with time under the test's control, on SQLite and PostgreSQL: an extension asked and
//! approved moves the resolve clock's due time three working days on across National Day, its
//! levels with it, and the statistics judge the case against the extended time and say so;
//! refused requests, one beyond the per-cycle limit and one beyond the ceiling answer
//! FAILED_PRECONDITION naming the rule and change nothing; a return inside the window is
//! immediate, one after it is a request the center refuses or approves.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        Case, CaseEvent, CaseStatus, ClockKind, DecideExtensionRequest, DecideReturnRequest,
        GetStatsRequest, RequestExtensionRequest, ResolveCaseRequest, ReturnCaseRequest, SlaClock,
        case_service_client::CaseServiceClient, get_stats_request::Scope,
        stats_service_client::StatsServiceClient,
    },
    service::time::ManualTime,
};
use tonic::transport::Channel;

fn cases(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

fn at(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("a time");
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap()).unwrap()
}

fn details(e: &CaseEvent) -> serde_json::Value {
    serde_json::from_str(&e.details_json).unwrap()
}

fn resolve_clock(case: &Case) -> SlaClock {
    let running: Vec<&SlaClock> = case
        .clocks
        .iter()
        .filter(|c| c.kind == i32::from(ClockKind::Resolve))
        .collect();
    assert_eq!(running.len(), 1, "one resolve clock");
    running[0].clone()
}

/// A community-tier case led by the township's justice office: dispatched at `dispatched`,
/// accepted at `accepted` (`None`: left dispatched).
async fn case_at(
    app: &TestApp,
    time: &ManualTime,
    dispatched: DateTime<Utc>,
    accepted: Option<DateTime<Utc>>,
) -> Case {
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    time.set(dispatched - Duration::hours(1));
    let case = submit(app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    time.set(dispatched);
    let case = dispatch_routed(app, &case, &dispatcher).await;
    assert_eq!(case.dispatched_at, Some(ts(dispatched)));
    let Some(accepted) = accepted else {
        return case;
    };
    time.set(accepted);
    accept(app, &case, &app.token(JUSTICE_STAFF, Role::UnitStaff)).await
}

async fn ask(app: &TestApp, case: &Case, duration: &str) -> Result<Case, tonic::Status> {
    cases(app)
        .request_extension(authed(
            RequestExtensionRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                duration: duration.into(),
                reason: "需协调住建部门现场勘验".into(),
            },
            &app.token(JUSTICE_STAFF, Role::UnitStaff),
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

async fn decide(
    app: &TestApp,
    case: &Case,
    approve: bool,
    reason: &str,
) -> Result<Case, tonic::Status> {
    cases(app)
        .decide_extension(authed(
            DecideExtensionRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                approve,
                reason: reason.into(),
            },
            &app.token(DISPATCHER, Role::Dispatcher),
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

async fn give_back(app: &TestApp, case: &Case) -> Result<Case, tonic::Status> {
    cases(app)
        .return_case(authed(
            ReturnCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "系物业合同纠纷，不属司法所职责".into(),
            },
            &app.token(JUSTICE_STAFF, Role::UnitStaff),
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

async fn decide_return(
    app: &TestApp,
    case: &Case,
    approve: bool,
    reason: &str,
) -> Result<Case, tonic::Status> {
    cases(app)
        .decide_return(authed(
            DecideReturnRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                approve,
                reason: reason.into(),
            },
            &app.token(DISPATCHER, Role::Dispatcher),
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

/// The refusal's code and message, and that the case (as `GetCase` read it, clocks and all)
/// did not change.
async fn refused(app: &TestApp, result: Result<Case, tonic::Status>, case: &Case) -> String {
    let status = result.expect_err("refused");
    let (now, _) = case_with_events(app, &case.id).await;
    assert_eq!(now.version, case.version, "a refusal changes nothing");
    assert_eq!(now.pending_request, case.pending_request);
    assert_eq!(resolve_clocks(&now), resolve_clocks(case));
    format!("{:?}: {}", status.code(), status.message())
}

fn resolve_clocks(case: &Case) -> Vec<SlaClock> {
    case.clocks
        .iter()
        .filter(|c| c.kind == i32::from(ClockKind::Resolve))
        .cloned()
        .collect()
}

async fn an_approved_extension_moves_the_due_time_across_national_day(backend: Backend) {
    // Accepted at noon on Monday 22 September 2025: seven working days (the make-up Sunday 28
    // September among them) fall due at 24:00 on 30 September.
    let t0 = shanghai(2025, 9, 22, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    let case = case_at(
        &app,
        &time,
        t0 + Duration::hours(1),
        Some(t0 + Duration::hours(2)),
    )
    .await;
    let (c, _) = case_with_events(&app, &case.id).await;
    let before = resolve_clock(&c);
    let due = shanghai(2025, 10, 1, 0, 0);
    assert_eq!(at(&before.due_at), due);
    assert_eq!(before.extensions, 0);
    assert_eq!(before.original_due_at, None);

    // Monday 29 September: the unit asks for three working days more.
    time.set(shanghai(2025, 9, 29, 10, 0));
    let case = ask(&app, &c, "3wd").await.unwrap();
    assert_eq!(case.status, i32::from(CaseStatus::Accepted));
    let pending = case.pending_request.clone().expect("a request waits");
    assert_eq!(pending.kind, "extension");
    assert_eq!(pending.duration, "3wd");
    assert_eq!(pending.unit_code, "371102001.justice");
    assert_eq!(pending.by_sub, JUSTICE_STAFF);
    let (c, events) = case_with_events(&app, &case.id).await;
    let asked = events.last().unwrap();
    assert_eq!(asked.kind, "extension_requested");
    assert_eq!(asked.notify_units, [format!("{}.center", c.region_code)]);
    // Three working days past 30 September: 9 and 10 October and the make-up Saturday 11th.
    let extended = shanghai(2025, 10, 12, 0, 0);
    assert_eq!(details(asked)["due_at"], due.to_rfc3339());
    assert_eq!(details(asked)["extended_due_at"], extended.to_rfc3339());
    // Asked, not yet granted: the clock stands.
    assert_eq!(at(&resolve_clock(&c).due_at), due);
    // One request at a time.
    let message = refused(&app, ask(&app, &c, "1wd").await, &c).await;
    assert!(message.starts_with("FailedPrecondition"), "{message}");
    assert!(message.contains("waits on the holding center"), "{message}");
    // Only the center decides.
    let by_unit = cases(&app)
        .decide_extension(authed(
            DecideExtensionRequest {
                case_id: c.id.clone(),
                expected_version: c.version,
                approve: true,
                reason: String::new(),
            },
            &app.token(JUSTICE_STAFF, Role::UnitStaff),
        ))
        .await
        .map(|r| r.into_inner().case.unwrap());
    let message = refused(&app, by_unit, &c).await;
    assert!(message.starts_with("PermissionDenied"), "{message}");

    // The center approves: due time, warning and escalation move together.
    time.set(shanghai(2025, 9, 29, 15, 0));
    let case = decide(&app, &c, true, "同意延期").await.unwrap();
    assert_eq!(case.pending_request, None);
    let (c, events) = case_with_events(&app, &case.id).await;
    let after = resolve_clock(&c);
    assert_eq!(at(&after.due_at), extended);
    assert_eq!(after.extensions, 1);
    assert_eq!(after.original_due_at, Some(ts(due)));
    assert_eq!(
        at(&after.due_at) - at(&before.due_at),
        extended - due,
        "moved by the extension"
    );
    let decided = events.last().unwrap();
    assert_eq!(decided.kind, "extension_decided");
    assert_eq!(decided.actor_sub, DISPATCHER);
    assert_eq!(decided.notify_units, ["371102001.justice"]);
    assert_eq!(details(decided)["approved"], true);
    assert_eq!(details(decided)["extended_due_at"], extended.to_rfc3339());

    // Past the old due time nothing is overdue; a second extension in the cycle is refused
    // by the per-cycle rule.
    time.set(due + Duration::hours(2));
    app.supervisor.run_due().await.unwrap();
    let (c, events) = case_with_events(&app, &case.id).await;
    assert!(!sla_kinds(&events).contains(&"sla_breach".to_owned()));
    assert!(overdue_ids(&app).await.is_empty());
    time.set(shanghai(2025, 10, 9, 9, 0));
    let message = refused(&app, ask(&app, &c, "1wd").await, &c).await;
    assert!(message.starts_with("FailedPrecondition"), "{message}");
    assert!(message.contains("extensions_per_cycle"), "{message}");

    // Resolved on Friday 10 October: late against the old due time, on time against the
    // extended one, and the statistics say which.
    time.set(shanghai(2025, 10, 10, 16, 0));
    cases(&app)
        .resolve_case(authed(
            ResolveCaseRequest {
                case_id: c.id.clone(),
                expected_version: c.version,
                result: "已调解".into(),
                attachment_ids: vec![],
            },
            &app.token(JUSTICE_STAFF, Role::UnitStaff),
        ))
        .await
        .unwrap();
    let stats = StatsServiceClient::new(app.channel.clone())
        .get_stats(authed(
            GetStatsRequest {
                scope: Some(Scope::RegionCode("371100".into())),
                period: "2025-09".into(),
                ..Default::default()
            },
            &app.token(SUPERVISOR, Role::Supervisor),
        ))
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(stats.resolved, 1);
    assert_eq!(stats.on_time_rate, 1.0);
    assert_eq!(stats.overdue, 0);
    assert_eq!(stats.extended, 1);
    assert_eq!(stats.resolved_on_time_by_extension, 1);
    audit_verifies(&app.db.url).await;
    app.stop().await.unwrap();
}

on_both_databases!(an_approved_extension_moves_the_due_time_across_national_day);

async fn refused_and_excessive_extensions_change_no_clock(backend: Backend) {
    // Two extensions a cycle, five working days in all.
    let t0 = shanghai(2025, 11, 3, 10, 0); // a Monday
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_full(
        TestDb::new(&backend).await,
        |s| {
            s.extensions_per_cycle = 2;
            s.extension_ceiling = "5wd".parse().unwrap();
        },
        Some(time.clone()),
    )
    .await;
    import(&app, &small_bundle()).await;
    let case = case_at(
        &app,
        &time,
        t0 + Duration::hours(1),
        Some(t0 + Duration::hours(2)),
    )
    .await;
    let (c, _) = case_with_events(&app, &case.id).await;
    let due = at(&resolve_clock(&c).due_at);
    time.set(t0 + Duration::days(1));

    // Not a duration: INVALID_ARGUMENT. Beyond the ceiling at once: FAILED_PRECONDITION.
    let message = refused(&app, ask(&app, &c, "3 days").await, &c).await;
    assert!(message.starts_with("InvalidArgument"), "{message}");
    assert!(message.contains("duration"), "{message}");
    let message = refused(&app, ask(&app, &c, "6wd").await, &c).await;
    assert!(message.starts_with("FailedPrecondition"), "{message}");
    assert!(message.contains("extension_ceiling"), "{message}");

    // Asked and refused: a reason is required, and the clock stays.
    let case = ask(&app, &c, "2wd").await.unwrap();
    let (case, _) = case_with_events(&app, &case.id).await;
    let message = refused(&app, decide(&app, &case, false, " ").await, &case).await;
    assert!(message.starts_with("InvalidArgument"), "{message}");
    let case = decide(&app, &case, false, "现有时限足够").await.unwrap();
    assert_eq!(case.pending_request, None);
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(at(&resolve_clock(&c).due_at), due);
    assert_eq!(resolve_clock(&c).extensions, 0);
    let decided = events.last().unwrap();
    assert_eq!(decided.kind, "extension_decided");
    assert_eq!(details(decided)["approved"], false);
    assert_eq!(decided.reason, "现有时限足够");
    // Nothing to decide any more.
    let message = refused(&app, decide(&app, &c, true, "").await, &c).await;
    assert!(message.starts_with("FailedPrecondition"), "{message}");

    // A refusal does not count: 3wd approved, then 3wd more would pass the 5wd ceiling.
    let case = ask(&app, &c, "3wd").await.unwrap();
    let case = decide(&app, &case, true, "").await.unwrap();
    let (c, _) = case_with_events(&app, &case.id).await;
    let extended = at(&resolve_clock(&c).due_at);
    assert!(extended > due);
    let message = refused(&app, ask(&app, &c, "3wd").await, &c).await;
    assert!(message.starts_with("FailedPrecondition"), "{message}");
    assert!(message.contains("extension_ceiling"), "{message}");
    assert!(message.contains("5wd"), "{message}");
    // Up to the ceiling is allowed: 2wd more, the second of two.
    let case = ask(&app, &c, "2wd").await.unwrap();
    let case = decide(&app, &case, true, "").await.unwrap();
    let (c, _) = case_with_events(&app, &case.id).await;
    let clock = resolve_clock(&c);
    assert_eq!(clock.extensions, 2);
    assert_eq!(clock.original_due_at, Some(ts(due)));
    assert!(at(&clock.due_at) > extended);

    // After the due time: too late to ask.
    time.set(at(&clock.due_at) + Duration::minutes(1));
    let message = refused(&app, ask(&app, &c, "1wh").await, &c).await;
    assert!(message.starts_with("FailedPrecondition"), "{message}");
    assert!(message.contains("before the due time"), "{message}");
    app.stop().await.unwrap();
}

on_both_databases!(refused_and_excessive_extensions_change_no_clock);

async fn a_return_after_the_window_is_the_centers_to_decide(backend: Backend) {
    // Dispatched at 10:00 on Monday 3 November 2025: the 2-working-day window closes at 24:00
    // on Wednesday 5 November.
    let t0 = shanghai(2025, 11, 3, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;

    // Within the window: returned at once, back to the center's queue.
    let inside = case_at(&app, &time, t0, None).await;
    time.set(shanghai(2025, 11, 5, 23, 0));
    let returned = give_back(&app, &inside).await.unwrap();
    assert_eq!(returned.status, i32::from(CaseStatus::Returned));
    assert_eq!(returned.pending_request, None);

    // After it: a request; the case stays the unit's.
    let late = case_at(&app, &time, t0, None).await;
    time.set(shanghai(2025, 11, 6, 9, 0));
    let asked = give_back(&app, &late).await.unwrap();
    assert_eq!(asked.status, i32::from(CaseStatus::Dispatched));
    assert_eq!(asked.unit_code, "371102001.justice");
    let pending = asked.pending_request.clone().expect("a request waits");
    assert_eq!(pending.kind, "return");
    assert_eq!(pending.reason, "系物业合同纠纷，不属司法所职责");
    let (c, events) = case_with_events(&app, &late.id).await;
    let e = events.last().unwrap();
    assert_eq!(e.kind, "return_requested");
    assert_eq!(e.notify_units, [format!("{}.center", c.region_code)]);
    assert_eq!(
        details(e)["window_ended_at"],
        shanghai(2025, 11, 6, 0, 0).to_rfc3339()
    );
    // Asked again while it waits: refused.
    let message = refused(&app, give_back(&app, &c).await, &c).await;
    assert!(message.starts_with("FailedPrecondition"), "{message}");

    // Refused (with a reason): the unit keeps the case.
    let message = refused(&app, decide_return(&app, &c, false, "").await, &c).await;
    assert!(message.starts_with("InvalidArgument"), "{message}");
    let kept = decide_return(&app, &c, false, "属调解范围，请继续办理")
        .await
        .unwrap();
    assert_eq!(kept.status, i32::from(CaseStatus::Dispatched));
    assert_eq!(kept.pending_request, None);
    let (c, events) = case_with_events(&app, &late.id).await;
    let e = events.last().unwrap();
    assert_eq!(e.kind, "return_decided");
    assert_eq!(details(e)["approved"], false);
    assert_eq!(e.notify_units, ["371102001.justice"]);

    // Asked again and approved: returned, and the dispatch clock runs again.
    let asked = give_back(&app, &c).await.unwrap();
    let back = decide_return(&app, &asked, true, "").await.unwrap();
    assert_eq!(back.status, i32::from(CaseStatus::Returned));
    assert_eq!(back.pending_request, None);
    let (c, events) = case_with_events(&app, &late.id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["return_decided", "returned"]);
    let returned = events.last().unwrap();
    assert_eq!(returned.reason, "系物业合同纠纷，不属司法所职责");
    assert_eq!(returned.notify_units, [format!("{}.center", c.region_code)]);
    let running_dispatch = c
        .clocks
        .iter()
        .filter(|k| k.kind == i32::from(ClockKind::Dispatch) && k.stopped_at.is_none())
        .count();
    assert_eq!(running_dispatch, 1, "back in the dispatch queue");
    // Nothing asked any more: nothing to decide.
    let message = refused(&app, decide_return(&app, &c, true, "").await, &c).await;
    assert!(message.starts_with("FailedPrecondition"), "{message}");
    audit_verifies(&app.db.url).await;
    app.stop().await.unwrap();
}

on_both_databases!(a_return_after_the_window_is_the_centers_to_decide);

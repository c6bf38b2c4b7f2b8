//! Waiting on the reporter (DESIGN.md "SLA clocks": a clock pauses only while the case waits on
//! the reporter), through the real server with time under the test's control: the lead unit's
//! question pauses the resolve clock across National Day and a weekend and nothing fires while
//! it is paused; `ResumeCase` and the reporter's supplement resume it with its times moved by
//! the wait; a wait that reaches `max_reporter_wait` ends by itself; who may ask and when; two
//! replicas fire nothing for a paused clock, across a restart, and each level once afterwards.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        AddSupplementRequest, AwaitReporterRequest, Case, CaseEvent, ClockKind, ResumeCaseRequest,
        SlaClock, case_service_client::CaseServiceClient,
        report_service_client::ReportServiceClient,
    },
    service::time::ManualTime,
    storage,
};
use sea_orm::{ConnectionTrait, Statement};
use tonic::{Code, transport::Channel};

fn cases(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

fn resolve_clock(case: &Case) -> SlaClock {
    let clocks: Vec<&SlaClock> = case
        .clocks
        .iter()
        .filter(|c| c.kind == i32::from(ClockKind::Resolve))
        .collect();
    assert_eq!(clocks.len(), 1, "one resolve clock");
    clocks[0].clone()
}

fn details(e: &CaseEvent) -> serde_json::Value {
    serde_json::from_str(&e.details_json).unwrap()
}

fn at(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("a time");
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap()).unwrap()
}

/// A community-tier case led by the township's justice office, dispatched an hour after `t0`
/// and accepted two hours after it (its resolve clock runs from then).
async fn accepted_case(app: &TestApp, time: &ManualTime, t0: DateTime<Utc>) -> Case {
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let justice = app.token(JUSTICE_STAFF, Role::UnitStaff);
    let case = submit(app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    time.set(t0 + Duration::hours(1));
    let case = dispatch_routed(app, &case, &dispatcher).await;
    time.set(t0 + Duration::hours(2));
    accept(app, &case, &justice).await
}

async fn ask(app: &TestApp, sub: &str, role: Role, case: &Case) -> Result<Case, tonic::Status> {
    let token = app.token(sub, role);
    cases(app)
        .await_reporter(authed(
            AwaitReporterRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                question: "请补充纠纷发生的具体楼栋号".into(),
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

async fn resume(app: &TestApp, sub: &str, role: Role, case: &Case) -> Result<Case, tonic::Status> {
    let token = app.token(sub, role);
    cases(app)
        .resume_case(authed(
            ResumeCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                note: "已电话联系上报人".into(),
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

/// Steps `time` through `steps`, scanning at each, and checks that nothing fired.
async fn nothing_fires(app: &TestApp, time: &ManualTime, id: &str, steps: &[DateTime<Utc>]) {
    let before = sla_kinds(&case_with_events(app, id).await.1);
    for &t in steps {
        time.set(t);
        app.supervisor.run_due().await.unwrap();
        assert_eq!(
            sla_kinds(&case_with_events(app, id).await.1),
            before,
            "nothing fires for a paused clock (at {t})"
        );
    }
}

async fn a_pause_across_national_day_and_a_weekend_fires_nothing_and_moves_the_clock(
    backend: Backend,
) {
    // Friday before National Day 2025; accepted at 12:00: the resolve clock falls due at 24:00
    // on 13 October (7 working days past the holiday and its make-up days).
    let t0 = shanghai(2025, 9, 26, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    let case = accepted_case(&app, &time, t0).await;
    let (c, _) = case_with_events(&app, &case.id).await;
    let due = at(&resolve_clock(&c).due_at);
    assert_eq!(due, shanghai(2025, 10, 14, 0, 0));

    // Tuesday 30 September, before any level: the unit asks the reporter.
    let paused = shanghai(2025, 9, 30, 10, 0);
    time.set(paused);
    let case = ask(&app, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap();
    assert_eq!(case.version, c.version + 1);
    assert_eq!(case.awaiting_reporter_since, Some(ts(paused)));
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(c.awaiting_reporter_since, Some(ts(paused)));
    assert_eq!(resolve_clock(&c).paused_at, Some(ts(paused)));
    let asked = events.last().unwrap();
    assert_eq!(asked.kind, "awaiting_reporter");
    assert_eq!(asked.reason, "请补充纠纷发生的具体楼栋号");
    assert_eq!(asked.notify_members, [GRID_MEMBER]);
    // The wait ends by itself 5 working days on: 9, 10, 11 (make-up), 13 and 14 October.
    assert_eq!(
        details(asked)["until"],
        shanghai(2025, 10, 15, 0, 0).to_rfc3339()
    );

    // Across National Day, the weekend after it and past the clock's own due time: nothing,
    // and the case is not overdue.
    nothing_fires(
        &app,
        &time,
        &case.id,
        &[
            shanghai(2025, 10, 3, 12, 0),
            shanghai(2025, 10, 12, 12, 0),
            shanghai(2025, 10, 14, 0, 0),
            shanghai(2025, 10, 14, 12, 0),
        ],
    )
    .await;
    assert!(overdue_ids(&app).await.is_empty());

    // The unit resumes: the clock's times move by the wait (wall clock).
    let resumed_at = shanghai(2025, 10, 14, 12, 0);
    let case = resume(&app, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap();
    assert_eq!(case.awaiting_reporter_since, None);
    let (c, events) = case_with_events(&app, &case.id).await;
    let r = resolve_clock(&c);
    assert_eq!(r.paused_at, None);
    let span = resumed_at - paused;
    assert_eq!(at(&r.due_at), due + span);
    let resumed = events.last().unwrap();
    assert_eq!(resumed.kind, "resumed");
    assert_eq!(resumed.notify_units, ["371102001.justice"]);
    assert_eq!(details(resumed)["by"], "unit");
    assert_eq!(details(resumed)["paused_seconds"], span.num_seconds());

    // The levels come at their moved times, each once.
    time.set(due + span - Duration::minutes(1));
    app.supervisor.run_due().await.unwrap();
    assert_eq!(
        sla_kinds(&case_with_events(&app, &case.id).await.1),
        ["sla_warning"]
    );
    time.set(due + span);
    app.supervisor.run_due().await.unwrap();
    app.supervisor.run_due().await.unwrap();
    assert_eq!(
        sla_kinds(&case_with_events(&app, &case.id).await.1),
        ["sla_warning", "sla_breach"]
    );
    assert_eq!(overdue_ids(&app).await, vec![case.id.clone()]);
    audit_verifies(&app.db.url).await;
    app.stop().await.unwrap();
}

async fn the_reporters_supplement_resumes_the_clock(backend: Backend) {
    let t0 = shanghai(2025, 9, 22, 10, 0); // a Monday
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    let case = accepted_case(&app, &time, t0).await;
    let due = at(&resolve_clock(&case_with_events(&app, &case.id).await.0).due_at);
    let paused = t0 + Duration::hours(3);
    time.set(paused);
    let case = ask(&app, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap();

    // Saturday: the reporter answers.
    let answered = shanghai(2025, 9, 27, 9, 30);
    time.set(answered);
    let reporter = app.token(GRID_MEMBER, Role::GridMember);
    let answer = ReportServiceClient::new(app.channel.clone())
        .add_supplement(authed(
            AddSupplementRequest {
                case_id: case.id.clone(),
                text: "3号楼2单元".into(),
                attachment_ids: vec![],
            },
            &reporter,
        ))
        .await
        .unwrap()
        .into_inner();
    let after = answer.case.unwrap();
    assert_eq!(after.awaiting_reporter_since, None);
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(
        c.version,
        case.version + 1,
        "one change: supplement and resume"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["supplement", "resumed"]);
    let resumed = events.last().unwrap();
    assert_eq!(details(resumed)["by"], "reporter");
    assert_eq!(resumed.actor_sub, GRID_MEMBER);
    let r = resolve_clock(&c);
    assert_eq!(r.paused_at, None);
    assert_eq!(at(&r.due_at), due + (answered - paused));

    // Not waiting any more: a second supplement is only a supplement, and resuming is refused.
    let again = ReportServiceClient::new(app.channel.clone())
        .add_supplement(authed(
            AddSupplementRequest {
                case_id: case.id.clone(),
                text: "补充照片稍后上传".into(),
                attachment_ids: vec![],
            },
            &reporter,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.event.unwrap().kind, "supplement");
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(events.iter().filter(|e| e.kind == "resumed").count(), 1);
    let refused = resume(&app, JUSTICE_STAFF, Role::UnitStaff, &c)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("not waiting"), "{refused:?}");
    audit_verifies(&app.db.url).await;
    app.stop().await.unwrap();
}

async fn only_the_lead_unit_asks_and_only_while_the_resolve_clock_runs(backend: Backend) {
    let t0 = shanghai(2025, 9, 22, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    // Dispatched, not yet accepted: no resolve clock runs.
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let case = submit(&app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    let case = dispatch_routed(&app, &case, &dispatcher).await;
    let early = ask(&app, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("dispatched"), "{early:?}");

    let case = accepted_case(&app, &time, t0).await;
    // A dispatcher may not ask (the role table); another unit does not see the case.
    let by_dispatcher = ask(&app, DISPATCHER, Role::Dispatcher, &case)
        .await
        .unwrap_err();
    assert_eq!(by_dispatcher.code(), Code::PermissionDenied);
    let by_police = ask(&app, UNIT_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap_err();
    assert_eq!(by_police.code(), Code::NotFound);
    let reporter_resumes = resume(&app, GRID_MEMBER, Role::GridMember, &case)
        .await
        .unwrap_err();
    assert_eq!(reporter_resumes.code(), Code::PermissionDenied);
    // An empty question is no question.
    let token = app.token(JUSTICE_STAFF, Role::UnitStaff);
    let empty = cases(&app)
        .await_reporter(authed(
            AwaitReporterRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                question: "  ".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    // A stale version changes nothing.
    let stale = ask(
        &app,
        JUSTICE_STAFF,
        Role::UnitStaff,
        &Case {
            version: case.version - 1,
            ..case.clone()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    let case = ask(&app, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap();
    let twice = ask(&app, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert!(
        twice.message().contains("accepted") && twice.message().contains("already waiting"),
        "{twice:?}"
    );
    audit_verifies(&app.db.url).await;
    app.stop().await.unwrap();
}

async fn a_wait_ends_by_itself_at_the_limit_and_counts_against_no_one(backend: Backend) {
    let t0 = shanghai(2025, 9, 22, 10, 0); // a Monday
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    let case = accepted_case(&app, &time, t0).await;
    // Accepted Monday 12:00: due at 24:00 on 30 September (28 September is a make-up day).
    let due = at(&resolve_clock(&case_with_events(&app, &case.id).await.0).due_at);
    assert_eq!(due, shanghai(2025, 10, 1, 0, 0));
    // The warning (80 %) has fired before the pause.
    let paused = shanghai(2025, 9, 30, 10, 0);
    time.set(paused);
    app.supervisor.run_due().await.unwrap();
    assert_eq!(
        sla_kinds(&case_with_events(&app, &case.id).await.1),
        ["sla_warning"]
    );
    let case = case_with_events(&app, &case.id).await.0;
    ask(&app, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap();

    // 5 working days on (9, 10, 11, 13, 14 October) the wait ends by itself at 24:00.
    let limit = shanghai(2025, 10, 15, 0, 0);
    nothing_fires(
        &app,
        &time,
        &case.id,
        &[shanghai(2025, 10, 8, 12, 0), limit - Duration::seconds(1)],
    )
    .await;
    assert!(
        case_with_events(&app, &case.id)
            .await
            .0
            .awaiting_reporter_since
            .is_some(),
        "still waiting"
    );
    time.set(limit + Duration::minutes(5));
    app.supervisor.run_due().await.unwrap();
    let (c, events) = case_with_events(&app, &case.id).await;
    assert_eq!(c.awaiting_reporter_since, None);
    let ended: Vec<&CaseEvent> = events.iter().filter(|e| e.kind == "resumed").collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].actor_sub, "gridcase-sla");
    assert_eq!(details(ended[0])["by"], "limit");
    assert_eq!(details(ended[0])["resumed_at"], limit.to_rfc3339());
    // The whole wait is given back, to the limit's time: the clock runs again from there.
    let r = resolve_clock(&c);
    assert_eq!(r.paused_at, None);
    assert_eq!(at(&r.due_at), due + (limit - paused));
    assert_eq!(
        sla_kinds(&events),
        ["sla_warning"],
        "the warning that fired before the pause does not fire again"
    );
    app.supervisor.run_due().await.unwrap();
    assert_eq!(
        case_with_events(&app, &case.id)
            .await
            .1
            .iter()
            .filter(|e| e.kind == "resumed")
            .count(),
        1,
        "a wait ends once"
    );
    time.set(due + (limit - paused));
    app.supervisor.run_due().await.unwrap();
    assert_eq!(
        sla_kinds(&case_with_events(&app, &case.id).await.1),
        ["sla_warning", "sla_breach"]
    );
    audit_verifies(&app.db.url).await;
    app.stop().await.unwrap();
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

async fn two_replicas_fire_nothing_for_a_paused_clock_across_a_restart(backend: Backend) {
    let t0 = shanghai(2025, 9, 22, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let db = TestDb::new(&backend).await;
    // A long limit, so that the wait outlasts every level of the clock.
    let long = |s: &mut gridcase::config::Settings| s.max_reporter_wait = "40wd".parse().unwrap();
    let a = TestApp::spawn_full(TestDb::shared(&db.url), long, Some(time.clone())).await;
    let b = TestApp::spawn_full(TestDb::shared(&db.url), long, Some(time.clone())).await;
    import(&a, &small_bundle()).await;
    wait_for_directory(&b).await;
    let case = accepted_case(&a, &time, t0).await;
    let due = at(&resolve_clock(&case_with_events(&a, &case.id).await.0).due_at);
    let paused = t0 + Duration::hours(3);
    time.set(paused);
    let case = ask(&b, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap();
    let url = db.url.clone();
    let sla_events = "SELECT COUNT(*) FROM case_events WHERE kind LIKE 'sla%' OR kind = 'red_card'";

    // Past the clock's warning, due, escalation and red-card times: both scan at once.
    time.set(due + Duration::days(20));
    let (fa, fb) = tokio::join!(a.supervisor.run_due(), b.supervisor.run_due());
    assert_eq!(fa.unwrap() + fb.unwrap(), 0);
    assert_eq!(count(&url, sla_events).await, 0);

    // One replica restarts (its start-up catch-up scans); still nothing, on either.
    b.stop().await.unwrap();
    let b = TestApp::spawn_full(TestDb::shared(&db.url), long, Some(time.clone())).await;
    let (fa, fb) = tokio::join!(a.supervisor.run_due(), b.supervisor.run_due());
    assert_eq!(fa.unwrap() + fb.unwrap(), 0);
    assert_eq!(count(&url, sla_events).await, 0);
    assert!(
        case_with_events(&b, &case.id)
            .await
            .0
            .awaiting_reporter_since
            .is_some(),
        "still waiting"
    );

    // Resumed on the restarted replica: each level comes once, at its moved time.
    let resumed_at = due + Duration::days(20);
    let case = resume(&b, JUSTICE_STAFF, Role::UnitStaff, &case)
        .await
        .unwrap();
    let r = resolve_clock(&case_with_events(&a, &case.id).await.0);
    assert_eq!(at(&r.due_at), due + (resumed_at - paused));
    time.set(due + (resumed_at - paused));
    let (fa, fb) = tokio::join!(a.supervisor.run_due(), b.supervisor.run_due());
    fa.unwrap();
    fb.unwrap();
    let (fa, fb) = tokio::join!(a.supervisor.run_due(), b.supervisor.run_due());
    assert_eq!(fa.unwrap() + fb.unwrap(), 0);
    assert_eq!(
        sla_kinds(&case_with_events(&a, &case.id).await.1),
        ["sla_warning", "sla_breach"]
    );
    assert_eq!(count(&url, sla_events).await, 2);
    audit_verifies(&url).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

on_both_databases!(
    a_pause_across_national_day_and_a_weekend_fires_nothing_and_moves_the_clock,
    the_reporters_supplement_resumes_the_clock,
    only_the_lead_unit_asks_and_only_while_the_resolve_clock_runs,
    a_wait_ends_by_itself_at_the_limit_and_counts_against_no_one,
    two_replicas_fire_nothing_for_a_paused_clock_across_a_restart,
);

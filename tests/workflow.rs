//! The case lifecycle through the real server: 受理 → 分流 → 办理 → 反馈 → 评价, returns,
//! reopening, resolving on the spot, merge and cancel; stale and out-of-state commands change
//! nothing; racing commands leave one winner; the audit chain verifies after all of it.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        AcceptCaseRequest, AttachmentHeader, CancelCaseRequest, Case, CaseStatus, CloseCaseRequest,
        DispatchCaseRequest, EscalateCaseRequest, EvaluateCaseRequest, GetCaseRequest,
        ListCasesRequest, MergeCaseRequest, RecordFeedbackRequest, ResolveCaseRequest,
        ReturnCaseRequest, Satisfaction, Tier, UpdateProgressRequest, UploadAttachmentRequest,
        WhistleCaseRequest, case_service_client::CaseServiceClient,
        report_service_client::ReportServiceClient, upload_attachment_request::Part,
    },
    storage,
};
use tonic::{Code, transport::Channel};

fn cases(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

async fn report(app: &TestApp, category: &str, lon: f64) -> Case {
    submit(app, GRID_MEMBER, category, 35.1, lon).await
}

struct Actors {
    dispatcher: String,
    justice: String,
    reporter: String,
}

fn actors(app: &TestApp) -> Actors {
    Actors {
        dispatcher: app.token(DISPATCHER, Role::Dispatcher),
        justice: app.token(JUSTICE_STAFF, Role::UnitStaff),
        reporter: app.token(GRID_MEMBER, Role::GridMember),
    }
}

async fn dispatch(
    app: &TestApp,
    token: &str,
    case: &Case,
    unit: &str,
) -> Result<Case, tonic::Status> {
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
        .map(|r| r.into_inner().case.unwrap())
}

async fn accept(app: &TestApp, token: &str, case: &Case) -> Result<Case, tonic::Status> {
    cases(app)
        .accept_case(authed(
            AcceptCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

async fn resolve(
    app: &TestApp,
    token: &str,
    case: &Case,
    photos: Vec<String>,
) -> Result<Case, tonic::Status> {
    cases(app)
        .resolve_case(authed(
            ResolveCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                result: "已调解".into(),
                attachment_ids: photos,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

async fn evaluate(
    app: &TestApp,
    token: &str,
    case: &Case,
    s: Satisfaction,
) -> Result<Case, tonic::Status> {
    cases(app)
        .evaluate_case(authed(
            EvaluateCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                satisfaction: s.into(),
                comment: String::new(),
                by_callback: false,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

async fn audit_is_clean(app: &TestApp) {
    let db = storage::connect(&app.db.url, 1).await.unwrap();
    assert_eq!(
        gridcase::service::audit::verify(&db, None)
            .await
            .unwrap()
            .broken,
        None
    );
}

async fn the_whole_loop_runs_end_to_end(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    let case = report(&app, "dispute.neighbor", 119.05).await;
    assert_eq!((case.status(), case.version), (CaseStatus::Registered, 1));
    let case = dispatch(&app, &a.dispatcher, &case, "")
        .await
        .expect("dispatched");
    assert_eq!(
        (case.status(), case.version, case.unit_code.as_str()),
        (CaseStatus::Dispatched, 2, "371102001.justice")
    );
    let case = accept(&app, &a.justice, &case).await.expect("accepted");
    assert_eq!(case.status(), CaseStatus::Accepted);
    let case = cases(&app)
        .update_progress(authed(
            UpdateProgressRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                note: "已约谈双方".into(),
                attachment_ids: vec![],
            },
            &a.justice,
        ))
        .await
        .expect("progress")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.status(), CaseStatus::InProgress);
    let case = resolve(&app, &a.justice, &case, vec![])
        .await
        .expect("resolved");
    assert_eq!(
        (case.status(), case.resolution_text.as_str()),
        (CaseStatus::Resolved, "已调解")
    );
    let case = cases(&app)
        .record_feedback(authed(
            RecordFeedbackRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                note: "已电话告知".into(),
            },
            &a.justice,
        ))
        .await
        .expect("feedback")
        .into_inner()
        .case
        .unwrap();
    let case = evaluate(&app, &a.reporter, &case, Satisfaction::Satisfied)
        .await
        .expect("evaluated");
    assert_eq!(case.status(), CaseStatus::Resolved);
    let case = cases(&app)
        .close_case(authed(
            CloseCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: String::new(),
            },
            &a.dispatcher,
        ))
        .await
        .expect("closed")
        .into_inner()
        .case
        .unwrap();
    assert_eq!((case.status(), case.version), (CaseStatus::Closed, 8));
    let events = cases(&app)
        .get_case(authed(
            GetCaseRequest {
                case_id: case.id.clone(),
                include_events: true,
            },
            &a.dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "registered",
            "dispatched",
            "accepted",
            "progress",
            "resolved",
            "feedback",
            "evaluated",
            "closed"
        ]
    );
    let actors: Vec<&str> = events.iter().map(|e| e.actor_sub.as_str()).collect();
    assert_eq!(actors[2..5], [DISPATCHER, JUSTICE_STAFF, JUSTICE_STAFF]);
    audit_is_clean(&app).await;
    app.stop().await.expect("clean stop");
}

async fn stale_or_out_of_state_commands_change_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    let case = report(&app, "dispute.neighbor", 119.05).await;
    let early = accept(&app, &a.justice, &case).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(
        early.message().contains("registered"),
        "{}",
        early.message()
    );
    let dispatched = dispatch(&app, &a.dispatcher, &case, "").await.unwrap();
    // The old version is stale now.
    let stale = dispatch(&app, &a.dispatcher, &case, "").await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let mut unversioned = dispatched.clone();
    unversioned.version = 0;
    assert_eq!(
        accept(&app, &a.justice, &unversioned)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    // Staff of another unit do not even see it.
    let police = app.token(UNIT_STAFF, Role::UnitStaff);
    assert_eq!(
        accept(&app, &police, &dispatched).await.unwrap_err().code(),
        Code::NotFound
    );
    // A dispatch to a unit that does not exist.
    assert_eq!(
        dispatch(&app, &a.dispatcher, &dispatched, "371102.nothing")
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    // Someone else evaluating.
    assert_eq!(
        evaluate(
            &app,
            &app.token(OTHER_GRID_MEMBER, Role::GridMember),
            &dispatched,
            Satisfaction::Satisfied
        )
        .await
        .unwrap_err()
        .code(),
        Code::NotFound
    );
    let now = cases(&app)
        .get_case(authed(
            GetCaseRequest {
                case_id: case.id.clone(),
                include_events: true,
            },
            &a.dispatcher,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        now.case.unwrap().version,
        dispatched.version,
        "nothing changed"
    );
    assert_eq!(now.events.len(), 3);
    app.stop().await.expect("clean stop");
}

async fn returns_and_dissatisfaction_reopen_and_the_second_reopen_goes_up_a_tier(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    let case = report(&app, "dispute.neighbor", 119.05).await;
    let case = dispatch(&app, &a.dispatcher, &case, "").await.unwrap();
    let no_reason = cases(&app)
        .return_case(authed(
            ReturnCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: " ".into(),
            },
            &a.justice,
        ))
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    let case = cases(&app)
        .return_case(authed(
            ReturnCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: "不属于本单位".into(),
            },
            &a.justice,
        ))
        .await
        .expect("returned")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.status(), CaseStatus::Returned);
    // The dispatcher overrides routing, then sends it back to the justice office.
    let case = dispatch(&app, &a.dispatcher, &case, "371102.police")
        .await
        .unwrap();
    assert_eq!(
        (case.unit_code.as_str(), case.tier()),
        ("371102.police", Tier::District)
    );
    let case = dispatch(&app, &a.dispatcher, &case, "371102001.justice")
        .await
        .unwrap();
    let mut case = case;
    for round in 1..=2 {
        case = accept(&app, &a.justice, &case).await.expect("accepted");
        case = resolve(&app, &a.justice, &case, vec![])
            .await
            .expect("resolved");
        case = evaluate(&app, &a.reporter, &case, Satisfaction::Dissatisfied)
            .await
            .expect("reopened");
        assert_eq!(case.status(), CaseStatus::Dispatched, "round {round}");
        assert_eq!((case.cycle, case.reopen_count), (1 + round, round));
        if round == 1 {
            assert_eq!(case.unit_code, "371102001.justice");
            // Redispatch to the justice office for the second cycle.
            case = dispatch(&app, &a.dispatcher, &case, "").await.unwrap();
        }
    }
    // Reopened twice: the next tier's center (the township's parent, the district) leads.
    assert_eq!(case.unit_code, "371102.center");
    assert_eq!(case.region_code, "371102");
    assert_eq!(case.tier(), Tier::District);
    audit_is_clean(&app).await;
    app.stop().await.expect("clean stop");
}

async fn grid_members_resolve_grid_items_on_the_spot_with_a_photo(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    let litter = report(&app, "city.litter", 119.05).await;
    assert_eq!(litter.tier(), Tier::Grid);
    assert_eq!(
        resolve(&app, &a.reporter, &litter, vec![])
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let photo = ReportServiceClient::new(app.channel.clone())
        .upload_attachment(authed(
            tokio_stream::iter(vec![
                UploadAttachmentRequest {
                    part: Some(Part::Header(AttachmentHeader {
                        content_type: "image/jpeg".into(),
                        size_bytes: 4,
                        file_name: "p.jpg".into(),
                    })),
                },
                UploadAttachmentRequest {
                    part: Some(Part::Chunk(vec![0xff, 0xd8, 0xff, 0xd9])),
                },
            ]),
            &a.reporter,
        ))
        .await
        .expect("uploaded")
        .into_inner()
        .attachment_id;
    let done = resolve(&app, &a.reporter, &litter, vec![photo.clone()])
        .await
        .expect("resolved on the spot");
    assert_eq!(done.status(), CaseStatus::Resolved);
    assert!(done.attachment_ids.contains(&photo));
    // Not a grid-tier item: that is the township's justice office's.
    let dispute = report(&app, "dispute.neighbor", 119.05).await;
    assert_eq!(
        resolve(&app, &a.reporter, &dispute, vec![photo])
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    app.stop().await.expect("clean stop");
}

async fn racing_commands_leave_one_winner(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    for _ in 0..3 {
        let case = report(&app, "dispute.neighbor", 119.05).await;
        let case = dispatch(&app, &a.dispatcher, &case, "").await.unwrap();
        // Two accepts and a return, all at the same version.
        let (one, two, back) = tokio::join!(
            accept(&app, &a.justice, &case),
            accept(&app, &a.justice, &case),
            async {
                cases(&app)
                    .return_case(authed(
                        ReturnCaseRequest {
                            case_id: case.id.clone(),
                            expected_version: case.version,
                            reason: "不是我们的".into(),
                        },
                        &a.justice,
                    ))
                    .await
                    .map(|r| r.into_inner().case.unwrap())
            },
        );
        let results = [one, two, back];
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "{results:?}");
        for loser in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(loser.code(), Code::Aborted, "{loser:?}");
        }
        let now = cases(&app)
            .get_case(authed(
                GetCaseRequest {
                    case_id: case.id.clone(),
                    include_events: true,
                },
                &a.dispatcher,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(now.case.unwrap().version, case.version + 1);
        assert_eq!(now.events.len(), 4, "one event for the one winner");
    }
    audit_is_clean(&app).await;
    app.stop().await.expect("clean stop");
}

async fn duplicates_merge_and_cases_cancel_with_a_reason(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    let kept = report(&app, "dispute.neighbor", 119.05).await;
    let dup = report(&app, "dispute.neighbor", 119.0501).await;
    assert_eq!(dup.possible_duplicate_of, kept.id);
    let merge = |case: &Case, into: &str| {
        let mut client = cases(&app);
        let request = authed(
            MergeCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                into_case_id: into.into(),
                reason: "重复".into(),
            },
            &a.dispatcher,
        );
        async move {
            client
                .merge_case(request)
                .await
                .map(|r| r.into_inner().case.unwrap())
        }
    };
    assert_eq!(
        merge(&dup, &dup.id).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        merge(&dup, "no-such-case").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let merged = merge(&dup, &kept.id).await.expect("merged");
    assert_eq!(
        (merged.status(), merged.merged_into_case_id.as_str()),
        (CaseStatus::Merged, kept.id.as_str())
    );
    let cancel = |case: &Case, reason: &str| {
        let mut client = cases(&app);
        let request = authed(
            CancelCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: reason.into(),
            },
            &a.dispatcher,
        );
        async move {
            client
                .cancel_case(request)
                .await
                .map(|r| r.into_inner().case.unwrap())
        }
    };
    assert_eq!(
        cancel(&kept, "").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let cancelled = cancel(&kept, "报告人撤回").await.expect("cancelled");
    assert_eq!(cancelled.status(), CaseStatus::Cancelled);
    let after = dispatch(&app, &a.dispatcher, &cancelled, "")
        .await
        .unwrap_err();
    assert_eq!(after.code(), Code::FailedPrecondition);
    assert!(after.message().contains("cancelled"), "{}", after.message());
    audit_is_clean(&app).await;
    app.stop().await.expect("clean stop");
}

async fn a_dispatcher_escalates_a_case_one_tier_up(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    let case = report(&app, "dispute.neighbor", 119.05).await;
    assert_eq!(case.region_code, "371102001");
    let escalate = |case: &Case, reason: &str| {
        let mut client = cases(&app);
        let request = authed(
            EscalateCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                reason: reason.into(),
            },
            &a.dispatcher,
        );
        async move {
            client
                .escalate_case(request)
                .await
                .map(|r| r.into_inner().case.unwrap())
        }
    };
    assert_eq!(
        escalate(&case, "").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let up = escalate(&case, "街道无法协调").await.expect("escalated");
    assert_eq!(
        (up.region_code.as_str(), up.unit_code.as_str(), up.tier()),
        ("371102", "371102.center", Tier::District)
    );
    assert_eq!(
        (up.escalation_level, up.status()),
        (1, CaseStatus::Dispatched)
    );
    // The district dispatcher can send it further, to the city; the city is the top.
    let top = escalate(&up, "区级无法解决").await.expect("to the city");
    assert_eq!(
        (top.region_code.as_str(), top.unit_code.as_str()),
        ("371100", "371100.center")
    );
    let supervisor = app.token(SUPERVISOR, Role::Supervisor);
    let seen = cases(&app)
        .get_case(authed(
            GetCaseRequest {
                case_id: top.id.clone(),
                include_events: false,
            },
            &supervisor,
        ))
        .await
        .expect("the city supervisor sees it")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(seen.escalation_level, 2);
    audit_is_clean(&app).await;
    app.stop().await.expect("clean stop");
}

async fn a_whistle_summons_units_that_then_see_the_case_and_check_in(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    let police = app.token(UNIT_STAFF, Role::UnitStaff);
    let case = report(&app, "dispute.neighbor", 119.05).await;
    let whistle = |case: &Case, units: &[&str]| {
        let mut client = cases(&app);
        let request = authed(
            WhistleCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                unit_codes: units.iter().map(|u| (*u).to_owned()).collect(),
                reason: "多部门联合处置".into(),
            },
            &a.dispatcher,
        );
        async move {
            client
                .whistle_case(request)
                .await
                .map(|r| r.into_inner().case.unwrap())
        }
    };
    assert_eq!(
        whistle(&case, &["371102.police"]).await.unwrap_err().code(),
        Code::FailedPrecondition,
        "not dispatched yet"
    );
    let case = dispatch(&app, &a.dispatcher, &case, "").await.unwrap();
    // Before the whistle the police do not see it.
    assert_eq!(
        accept(&app, &police, &case).await.unwrap_err().code(),
        Code::NotFound
    );
    for (units, field) in [
        (&["371102001.justice"][..], "unit_codes[0]"),
        (&["371102.nothing"][..], "unit_codes[0]"),
        (&[][..], "unit_codes"),
    ] {
        let status = whistle(&case, units).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{units:?}");
        assert!(status.message().starts_with(field), "{}", status.message());
    }
    let case = whistle(&case, &["371102.police"]).await.expect("whistled");
    assert_eq!(case.assisting_units.len(), 1);
    assert!(case.assisting_units[0].checked_in_at.is_none());
    // Now they see it, in a list too, and check in; the lead unit's state is untouched.
    let listed = cases(&app)
        .list_cases(authed(ListCasesRequest::default(), &police))
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [case.id.as_str()]
    );
    let checked = accept(&app, &police, &case).await.expect("checked in");
    assert_eq!(checked.status(), CaseStatus::Dispatched);
    assert!(checked.assisting_units[0].checked_in_at.is_some());
    assert_eq!(
        accept(&app, &police, &checked).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let accepted = accept(&app, &a.justice, &checked)
        .await
        .expect("the lead accepts");
    assert_eq!(accepted.status(), CaseStatus::Accepted);
    audit_is_clean(&app).await;
    app.stop().await.expect("clean stop");
}

async fn evaluate_by_callback(
    app: &TestApp,
    token: &str,
    case: &Case,
    s: Satisfaction,
) -> Result<Case, tonic::Status> {
    cases(app)
        .evaluate_case(authed(
            EvaluateCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                satisfaction: s.into(),
                comment: "回访：群众表示满意".into(),
                by_callback: true,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().case.unwrap())
}

/// 回访: hotline reporters cannot press a button, so the gateway that brought the case, or a
/// dispatcher of the center holding it, records their evaluation after a callback; who called
/// back is on the evaluation and its event, and the statistics count the share.
async fn a_callback_evaluation_is_recorded_by_the_gateway_or_the_center(backend: Backend) {
    use gridcase::proto::v1::{GetStatsRequest, get_stats_request::Scope};
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let a = actors(&app);
    let resolved = |case: Case| {
        let app = &app;
        let a = &a;
        async move {
            let case = dispatch(app, &a.dispatcher, &case, "").await.unwrap();
            let case = accept(app, &a.justice, &case).await.unwrap();
            resolve(app, &a.justice, &case, vec![]).await.unwrap()
        }
    };
    let gateway = app.token("gateway-12345", Role::Gateway);
    let other_gateway = app.token("gateway-wechat", Role::Gateway);

    // The gateway's own ticket: recorded by callback, with who called back.
    let own = resolved(hotline_ticket(&app, "gateway-12345").await).await;
    let refused = evaluate_by_callback(&app, &other_gateway, &own, Satisfaction::Satisfied)
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::NotFound,
        "another gateway's case: {refused:?}"
    );
    let own = evaluate_by_callback(&app, &gateway, &own, Satisfaction::Satisfied)
        .await
        .unwrap();
    assert_eq!(own.status(), CaseStatus::Resolved);
    let e = own.evaluation.clone().unwrap();
    assert!(e.by_callback);
    assert_eq!(e.by_sub, "gateway-12345");

    // A dispatcher: only by callback.
    let held = resolved(hotline_ticket(&app, "gateway-12345").await).await;
    let without = evaluate(&app, &a.dispatcher, &held, Satisfaction::Satisfied)
        .await
        .unwrap_err();
    assert_eq!(without.code(), Code::PermissionDenied, "{without:?}");
    assert!(without.message().contains("by_callback"), "{without:?}");
    let held = evaluate_by_callback(&app, &a.dispatcher, &held, Satisfaction::BasicallySatisfied)
        .await
        .unwrap();
    let e = held.evaluation.clone().unwrap();
    assert!(e.by_callback);
    assert_eq!(e.by_sub, DISPATCHER);
    let events = cases(&app)
        .get_case(authed(
            GetCaseRequest {
                case_id: held.id.clone(),
                include_events: true,
            },
            &a.dispatcher,
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let evaluated = events.iter().rfind(|e| e.kind == "evaluated").unwrap();
    assert_eq!(evaluated.actor_sub, DISPATCHER);
    assert!(
        evaluated.details_json.contains("\"by_callback\":true"),
        "{}",
        evaluated.details_json
    );

    // A reporter on a handset does not call themselves back; pressing the button is theirs.
    let mine = resolved(report(&app, "dispute.neighbor", 119.05).await).await;
    let odd = evaluate_by_callback(&app, &a.reporter, &mine, Satisfaction::Satisfied)
        .await
        .unwrap_err();
    assert_eq!(odd.code(), Code::InvalidArgument, "{odd:?}");
    assert!(odd.message().starts_with("by_callback"), "{odd:?}");
    let mine = evaluate(&app, &a.reporter, &mine, Satisfaction::Satisfied)
        .await
        .unwrap();
    assert!(!mine.evaluation.unwrap().by_callback);

    // Two of the three evaluations were callbacks.
    let stats =
        gridcase::proto::v1::stats_service_client::StatsServiceClient::new(app.channel.clone())
            .get_stats(authed(
                GetStatsRequest {
                    scope: Some(Scope::RegionCode("371102".into())),
                    from: Some(ts(chrono::Utc::now() - chrono::Duration::hours(1))),
                    to: Some(ts(chrono::Utc::now() + chrono::Duration::hours(1))),
                    month: String::new(),
                    period: String::new(),
                },
                &a.dispatcher,
            ))
            .await
            .unwrap()
            .into_inner()
            .stats
            .unwrap();
    assert_eq!(stats.evaluated, 3);
    assert_eq!(stats.evaluated_by_callback, 2);
    assert!(
        (stats.callback_evaluation_rate - 2.0 / 3.0).abs() < 1e-9,
        "{stats:?}"
    );
    audit_is_clean(&app).await;
    app.stop().await.unwrap();
}

on_both_databases!(
    a_callback_evaluation_is_recorded_by_the_gateway_or_the_center,
    a_whistle_summons_units_that_then_see_the_case_and_check_in,
    a_dispatcher_escalates_a_case_one_tier_up,
    the_whole_loop_runs_end_to_end,
    stale_or_out_of_state_commands_change_nothing,
    returns_and_dissatisfaction_reopen_and_the_second_reopen_goes_up_a_tier,
    grid_members_resolve_grid_items_on_the_spot_with_a_photo,
    racing_commands_leave_one_winner,
    duplicates_merge_and_cases_cancel_with_a_reason,
);

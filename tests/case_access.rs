//! Every `CaseService` RPC against every role, in scope and out of scope, through the real
//! server: a role the RPC is not for gets PERMISSION_DENIED; a case outside the caller's scope is
//! NOT_FOUND (and absent from lists); in scope, the RPC does what it says, or refuses for the
//! reason the workflow gives.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        AcceptCaseRequest, AwaitReporterRequest, CancelCaseRequest, Case, CloseCaseRequest,
        DecideExtensionRequest, DecideReturnRequest, DispatchCaseRequest, EscalateCaseRequest,
        EvaluateCaseRequest, GetCaseRequest, ListCasesRequest, MergeCaseRequest,
        RecordFeedbackRequest, RequestExtensionRequest, ResolveCaseRequest, ResumeCaseRequest,
        ReturnCaseRequest, Satisfaction, UpdateProgressRequest, WhistleCaseRequest,
        case_service_client::CaseServiceClient,
    },
};
use tonic::{Code, transport::Channel};

const GATEWAY: &str = "gateway-12345";

fn client(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

/// The state each RPC needs: the steps to bring a new ticket there.
#[derive(Clone, Copy, Debug)]
enum State {
    Registered,
    Dispatched,
    Accepted,
    Resolved,
}

async fn case_in(app: &TestApp, state: State) -> Case {
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let justice = app.token(JUSTICE_STAFF, Role::UnitStaff);
    let mut case = hotline_ticket(app, GATEWAY).await;
    let steps = match state {
        State::Registered => 0,
        State::Dispatched => 1,
        State::Accepted => 2,
        State::Resolved => 3,
    };
    if steps >= 1 {
        case = client(app)
            .dispatch_case(authed(
                DispatchCaseRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    ..Default::default()
                },
                &dispatcher,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
    }
    if steps >= 2 {
        case = client(app)
            .accept_case(authed(
                AcceptCaseRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                },
                &justice,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
    }
    if steps >= 3 {
        case = client(app)
            .resolve_case(authed(
                ResolveCaseRequest {
                    case_id: case.id.clone(),
                    expected_version: case.version,
                    result: "已处理".into(),
                    attachment_ids: vec![],
                },
                &justice,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
    }
    case
}

/// Calls `rpc` on `case` as `token`; the status code it answers with.
async fn call(app: &TestApp, rpc: &str, token: &str, case: &Case, other: &Case) -> Code {
    let mut c = client(app);
    let (id, v) = (case.id.clone(), case.version);
    let result = match rpc {
        "GetCase" => c
            .get_case(authed(
                GetCaseRequest {
                    case_id: id,
                    include_events: true,
                },
                token,
            ))
            .await
            .map(drop),
        "DispatchCase" => c
            .dispatch_case(authed(
                DispatchCaseRequest {
                    case_id: id,
                    expected_version: v,
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        "AcceptCase" => c
            .accept_case(authed(
                AcceptCaseRequest {
                    case_id: id,
                    expected_version: v,
                },
                token,
            ))
            .await
            .map(drop),
        "ReturnCase" => c
            .return_case(authed(
                ReturnCaseRequest {
                    case_id: id,
                    expected_version: v,
                    reason: "不属于我们".into(),
                },
                token,
            ))
            .await
            .map(drop),
        "UpdateProgress" => c
            .update_progress(authed(
                UpdateProgressRequest {
                    case_id: id,
                    expected_version: v,
                    note: "处理中".into(),
                    attachment_ids: vec![],
                },
                token,
            ))
            .await
            .map(drop),
        "ResolveCase" => c
            .resolve_case(authed(
                ResolveCaseRequest {
                    case_id: id,
                    expected_version: v,
                    result: "已处理".into(),
                    attachment_ids: vec![],
                },
                token,
            ))
            .await
            .map(drop),
        "RecordFeedback" => c
            .record_feedback(authed(
                RecordFeedbackRequest {
                    case_id: id,
                    expected_version: v,
                    note: "已告知".into(),
                },
                token,
            ))
            .await
            .map(drop),
        "EvaluateCase" => c
            .evaluate_case(authed(
                EvaluateCaseRequest {
                    case_id: id,
                    expected_version: v,
                    satisfaction: Satisfaction::Satisfied.into(),
                    comment: String::new(),
                    by_callback: false,
                },
                token,
            ))
            .await
            .map(drop),
        "CloseCase" => c
            .close_case(authed(
                CloseCaseRequest {
                    case_id: id,
                    expected_version: v,
                    reason: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        "MergeCase" => c
            .merge_case(authed(
                MergeCaseRequest {
                    case_id: id,
                    expected_version: v,
                    into_case_id: other.id.clone(),
                    reason: "重复".into(),
                },
                token,
            ))
            .await
            .map(drop),
        "CancelCase" => c
            .cancel_case(authed(
                CancelCaseRequest {
                    case_id: id,
                    expected_version: v,
                    reason: "撤回".into(),
                },
                token,
            ))
            .await
            .map(drop),
        "WhistleCase" => c
            .whistle_case(authed(
                WhistleCaseRequest {
                    case_id: id,
                    expected_version: v,
                    unit_codes: vec!["371102.police".into()],
                    reason: "联合处置".into(),
                },
                token,
            ))
            .await
            .map(drop),
        "EscalateCase" => c
            .escalate_case(authed(
                EscalateCaseRequest {
                    case_id: id,
                    expected_version: v,
                    reason: "协调不了".into(),
                },
                token,
            ))
            .await
            .map(drop),
        "AwaitReporter" => c
            .await_reporter(authed(
                AwaitReporterRequest {
                    case_id: id,
                    expected_version: v,
                    question: "具体在哪一栋？".into(),
                },
                token,
            ))
            .await
            .map(drop),
        "ResumeCase" => c
            .resume_case(authed(
                ResumeCaseRequest {
                    case_id: id,
                    expected_version: v,
                    note: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        "RequestExtension" => c
            .request_extension(authed(
                RequestExtensionRequest {
                    case_id: id,
                    expected_version: v,
                    duration: "3wd".into(),
                    reason: "需协调住建部门".into(),
                },
                token,
            ))
            .await
            .map(drop),
        "DecideExtension" => c
            .decide_extension(authed(
                DecideExtensionRequest {
                    case_id: id,
                    expected_version: v,
                    approve: true,
                    reason: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        "DecideReturn" => c
            .decide_return(authed(
                DecideReturnRequest {
                    case_id: id,
                    expected_version: v,
                    approve: true,
                    reason: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        other => panic!("no call for {other}"),
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// For each role: a subject whose scope reaches the ticket, and one whose scope does not.
fn subjects(role: Role) -> (&'static str, Option<&'static str>) {
    match role {
        Role::GridMember => (GRID_MEMBER, Some(OTHER_GRID_MEMBER)),
        Role::UnitStaff => (JUSTICE_STAFF, Some(UNIT_STAFF)),
        Role::Dispatcher => (DISPATCHER, Some(GRID2_DISPATCHER)),
        Role::Supervisor => (SUPERVISOR, Some(GRID2_SUPERVISOR)),
        Role::Gateway => (GATEWAY, Some("gateway-wechat")),
        // Admins reach no case at all: the role table refuses them first.
        Role::Admin => ("ops-admin", None),
    }
}

async fn every_case_rpc_answers_every_role_in_and_out_of_scope(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    use Code::{FailedPrecondition as FP, NotFound as NF, Ok as OK, PermissionDenied as PD};
    // (rpc, state it needs, in-scope answer per role: grid member, unit staff, dispatcher,
    // supervisor, gateway, admin). The grid member of the ticket's grid is in scope but is not
    // its reporter, and a township-tier dispute is not theirs to settle on the spot.
    let table: &[(&str, State, [Code; 6])] = &[
        ("GetCase", State::Registered, [OK, OK, OK, OK, OK, PD]),
        ("DispatchCase", State::Registered, [PD, PD, OK, PD, PD, PD]),
        ("AcceptCase", State::Dispatched, [PD, OK, PD, PD, PD, PD]),
        ("ReturnCase", State::Dispatched, [PD, OK, PD, PD, PD, PD]),
        ("UpdateProgress", State::Accepted, [PD, OK, PD, PD, PD, PD]),
        ("ResolveCase", State::Accepted, [PD, OK, PD, PD, PD, PD]),
        ("RecordFeedback", State::Resolved, [PD, OK, OK, PD, PD, PD]),
        ("EvaluateCase", State::Resolved, [PD, PD, PD, PD, OK, PD]),
        ("CloseCase", State::Resolved, [PD, PD, OK, PD, PD, PD]),
        ("MergeCase", State::Registered, [PD, PD, OK, PD, PD, PD]),
        ("CancelCase", State::Registered, [PD, PD, OK, PD, PD, PD]),
        ("WhistleCase", State::Dispatched, [PD, PD, OK, PD, PD, PD]),
        ("EscalateCase", State::Registered, [PD, PD, OK, PD, PD, PD]),
        ("AwaitReporter", State::Accepted, [PD, OK, PD, PD, PD, PD]),
        // Not waiting on the reporter: nothing to resume.
        ("ResumeCase", State::Accepted, [PD, FP, PD, PD, PD, PD]),
        (
            "RequestExtension",
            State::Accepted,
            [PD, OK, PD, PD, PD, PD],
        ),
        // Nothing asked of the center: nothing to decide.
        ("DecideExtension", State::Accepted, [PD, PD, FP, PD, PD, PD]),
        ("DecideReturn", State::Dispatched, [PD, PD, FP, PD, PD, PD]),
    ];
    let allowed = |rpc: &str, role: Role| {
        gridcase::auth::permissions::roles_for(&format!("/gridcase.v1.CaseService/{rpc}"))
            .expect("a row")
            .contains(&role)
    };
    let mut checked = 0;
    for (rpc, state, in_scope) in table {
        for (k, role) in Role::ALL.into_iter().enumerate() {
            let (inside, outside) = subjects(role);
            let case = case_in(&app, *state).await;
            let other = hotline_ticket(&app, GATEWAY).await;
            let got = call(&app, rpc, &app.token(inside, role), &case, &other).await;
            assert_eq!(got, in_scope[k], "{rpc} as {role} in scope ({inside})");
            if !allowed(rpc, role) {
                assert_eq!(got, PD, "{rpc} is not for {role}: the role table answers");
            }
            if let Some(outside) = outside {
                let case = case_in(&app, *state).await;
                let got = call(&app, rpc, &app.token(outside, role), &case, &other).await;
                let expected = if allowed(rpc, role) { NF } else { PD };
                assert_eq!(got, expected, "{rpc} as {role} out of scope ({outside})");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, table.len() * 6);
    // ListCases: in scope listed, out of scope absent; not for admins.
    let case = hotline_ticket(&app, GATEWAY).await;
    for role in Role::ALL {
        let (inside, outside) = subjects(role);
        let listed = |sub: &'static str| {
            let mut c = client(&app);
            let request = authed(ListCasesRequest::default(), &app.token(sub, role));
            async move { c.list_cases(request).await.map(|r| r.into_inner().cases) }
        };
        match listed(inside).await {
            Ok(cases) => assert!(
                cases.iter().any(|c| c.id == case.id),
                "{role} in scope lists it"
            ),
            Err(status) => {
                assert_eq!(role, Role::Admin);
                assert_eq!(status.code(), PD);
            }
        }
        if let Some(outside) = outside {
            let cases = listed(outside).await.expect("listed");
            assert!(
                cases.iter().all(|c| c.id != case.id),
                "{role} out of scope ({outside}) must not list it"
            );
        }
    }
    app.stop().await.expect("clean stop");
}

on_both_databases!(every_case_rpc_answers_every_role_in_and_out_of_scope);

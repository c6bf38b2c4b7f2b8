//! Reading cases through the real server: every role sees exactly its scope, in lists and one
//! by one; lists filter and page in a stable order.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        CaseStatus, GetCaseRequest, IngestTicketRequest, ListCasesRequest, PageRequest, Source,
        case_service_client::CaseServiceClient, gateway_service_client::GatewayServiceClient,
    },
};
use tonic::{Code, transport::Channel};

fn cases(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

async fn report(app: &TestApp, sub: &str, category: &str, lat: f64, lon: f64) -> String {
    submit(app, sub, category, lat, lon).await.id
}

/// Four cases: one in each grid, a gateway ticket triaged at the community, and a report from
/// outside the city, triaged at the root.
async fn four_cases(app: &TestApp) -> [String; 4] {
    let in_grid_1 = report(app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    let in_grid_2 = report(app, OTHER_GRID_MEMBER, "city.litter", 35.1, 119.15).await;
    let token = app.token("gateway-12345", Role::Gateway);
    let ticket = GatewayServiceClient::new(app.channel.clone())
        .ingest_ticket(authed(
            IngestTicketRequest {
                source: Source::Hotline12345.into(),
                external_id: "T-77".into(),
                category_code: "dispute.neighbor".into(),
                description: "噪音".into(),
                caller_phone: "13912345678".into(),
                region_code: "371102001001".into(),
                ..IngestTicketRequest::default()
            },
            &token,
        ))
        .await
        .expect("ingested")
        .into_inner()
        .case
        .unwrap()
        .id;
    let far_away = report(app, GRID_MEMBER, "dispute.neighbor", 30.0, 110.0).await;
    [in_grid_1, in_grid_2, ticket, far_away]
}

async fn listed(app: &TestApp, sub: &str, role: Role) -> BTreeSet<String> {
    let token = app.token(sub, role);
    cases(app)
        .list_cases(authed(ListCasesRequest::default(), &token))
        .await
        .expect("list")
        .into_inner()
        .cases
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn every_role_sees_exactly_its_scope(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let [c1, c2, c3, c4] = four_cases(&app).await;
    let set = |ids: &[&String]| ids.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>();
    let expectations = [
        // Their grid's cases and their own reports wherever they are.
        (GRID_MEMBER, Role::GridMember, set(&[&c1, &c4])),
        (OTHER_GRID_MEMBER, Role::GridMember, set(&[&c2])),
        // The cases their unit leads.
        (JUSTICE_STAFF, Role::UnitStaff, set(&[&c1])),
        (UNIT_STAFF, Role::UnitStaff, set(&[])),
        // Their region's subtree: the root's triage queue is above the district.
        (DISPATCHER, Role::Dispatcher, set(&[&c1, &c2, &c3])),
        (SUPERVISOR, Role::Supervisor, set(&[&c1, &c2, &c3, &c4])),
        // What it brought in.
        ("gateway-12345", Role::Gateway, set(&[&c3])),
        ("gateway-wechat", Role::Gateway, set(&[])),
    ];
    for (sub, role, expected) in &expectations {
        assert_eq!(&listed(&app, sub, *role).await, expected, "{sub} lists");
        for id in [&c1, &c2, &c3, &c4] {
            let token = app.token(sub, *role);
            let got = cases(&app)
                .get_case(authed(
                    GetCaseRequest {
                        case_id: id.clone(),
                        include_events: false,
                    },
                    &token,
                ))
                .await;
            match got {
                Ok(r) => {
                    assert!(expected.contains(id), "{sub} must not see {id}");
                    assert_eq!(&r.into_inner().case.unwrap().id, id);
                }
                Err(status) => {
                    assert!(!expected.contains(id), "{sub} should see {id}: {status:?}");
                    assert_eq!(
                        status.code(),
                        Code::NotFound,
                        "out of scope looks like absent"
                    );
                }
            }
        }
    }
    // A case that does not exist and one out of scope answer the same.
    let token = app.token(OTHER_GRID_MEMBER, Role::GridMember);
    let missing = cases(&app)
        .get_case(authed(
            GetCaseRequest {
                case_id: "no-such-case".into(),
                include_events: false,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    app.stop().await.expect("clean stop");
}

async fn a_case_comes_with_its_chained_events_and_a_masked_phone(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let [_, _, ticket, _] = four_cases(&app).await;
    let token = app.token(DISPATCHER, Role::Dispatcher);
    let answer = cases(&app)
        .get_case(authed(
            GetCaseRequest {
                case_id: ticket.clone(),
                include_events: true,
            },
            &token,
        ))
        .await
        .expect("in scope")
        .into_inner();
    let case = answer.case.unwrap();
    // The district dispatcher is not the community center holding the ticket.
    assert_eq!(case.reporter_phone, "139****5678");
    let kinds: Vec<&str> = answer.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "registered"]);
    assert_eq!(answer.events[1].prev_hash, answer.events[0].hash);
    assert!(answer.events[0].sequence < answer.events[1].sequence);
    assert_eq!(answer.events[1].to_status(), CaseStatus::Registered);
    app.stop().await.expect("clean stop");
}

async fn lists_filter_and_page_newest_first(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let [c1, c2, c3, c4] = four_cases(&app).await;
    let token = app.token(SUPERVISOR, Role::Supervisor);
    let list = |r: ListCasesRequest| {
        let mut client = cases(&app);
        let request = authed(r, &token);
        async move { client.list_cases(request).await.map(|r| r.into_inner()) }
    };
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list(ListCasesRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: page_token.clone(),
            }),
            ..Default::default()
        })
        .await
        .expect("page");
        assert!(page.cases.len() <= 1);
        paged.extend(page.cases.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        paged,
        [c4.clone(), c3.clone(), c2.clone(), c1.clone()],
        "newest first, across pages"
    );
    let ids = |cases: Vec<gridcase::proto::v1::Case>| {
        cases.into_iter().map(|c| c.id).collect::<BTreeSet<_>>()
    };
    let by_region = list(ListCasesRequest {
        region_code: "371102001".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        ids(by_region.cases),
        [c1.clone(), c2.clone(), c3.clone()].into()
    );
    let by_category = list(ListCasesRequest {
        category_code: "city.litter".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ids(by_category.cases), [c2.clone()].into());
    let by_unit = list(ListCasesRequest {
        unit_code: "371102001.justice".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ids(by_unit.cases), [c1.clone()].into());
    let closed = list(ListCasesRequest {
        statuses: vec![CaseStatus::Closed.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(closed.cases.is_empty());
    let registered = list(ListCasesRequest {
        statuses: vec![CaseStatus::Registered.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(registered.cases.len(), 4);
    let future = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 3600,
        nanos: 0,
    };
    let later = list(ListCasesRequest {
        received_from: Some(future),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(later.cases.is_empty());
    // Bad filters.
    for (name, request, code) in [
        (
            "unknown region",
            ListCasesRequest {
                region_code: "999999".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            "unknown status",
            ListCasesRequest {
                statuses: vec![42],
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            "forged page token",
            ListCasesRequest {
                page: Some(PageRequest {
                    page_size: 1,
                    page_token: "x".into(),
                }),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
    ] {
        assert_eq!(list(request).await.unwrap_err().code(), code, "{name}");
    }
    // A region filter never widens a scope: the district dispatcher asking for the city.
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let widened = cases(&app)
        .list_cases(authed(
            ListCasesRequest {
                region_code: "371100".into(),
                ..Default::default()
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(widened.cases), [c1, c2, c3].into());
    app.stop().await.expect("clean stop");
}

on_both_databases!(
    every_role_sees_exactly_its_scope,
    a_case_comes_with_its_chained_events_and_a_masked_phone,
    lists_filter_and_page_newest_first,
);

//! What the console needs from the server, through the real server: its page and assets on the
//! gRPC port; who is signed in; the region shapes simplified per zoom; every case in scope as a
//! pin coloured by its clocks; units and members for dispatchers and supervisors, within their
//! region and with phones masked.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        GetCaseRequest, GetRegionShapesRequest, ListCasePinsRequest, ListCasesRequest,
        ListMembersRequest, ListUnitsRequest, SlaState, Tier, WhoAmIRequest,
        case_service_client::CaseServiceClient, directory_service_client::DirectoryServiceClient,
    },
    service::time::ManualTime,
};
use tonic::{Code, transport::Channel};

fn directory(app: &TestApp) -> DirectoryServiceClient<Channel> {
    DirectoryServiceClient::new(app.channel.clone()).max_decoding_message_size(64 << 20)
}

fn cases(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

/// A plain HTTP/1.1 request, as a browser's: the status line, the headers and the body.
async fn http_get(app: &TestApp, path: &str, extra: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\n{extra}connection: close\r\n\r\n",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

/// The page and its assets come from the binary on the gRPC port, with a policy that lets them
/// load nothing from elsewhere; gRPC and gRPC-Web still answer beside them.
async fn the_console_is_served_on_the_grpc_port(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let app = TestApp::spawn_with(db, |s| {
        s.console_tile_url = Some("https://tiles.intranet.example/{z}/{x}/{y}.png".into());
    })
    .await;
    let (head, body) = http_get(&app, "/", "").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'; script-src 'self'"),
        "{head}"
    );
    assert!(
        head.contains("img-src 'self' data: https://tiles.intranet.example;"),
        "{head}"
    );
    assert!(
        body.contains("/console/app.js"),
        "the page loads its script"
    );
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an etag")
        .to_owned();
    let (again, _) = http_get(&app, "/", &format!("if-none-match: {etag}\r\n")).await;
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");
    let (script, js) = http_get(&app, "/console/app.js", "").await;
    assert!(script.starts_with("HTTP/1.1 200"), "{script}");
    assert!(script.contains("content-type: text/javascript"), "{script}");
    assert!(!js.is_empty());
    let (config, json) = http_get(&app, "/console/config.json", "").await;
    assert!(config.starts_with("HTTP/1.1 200"), "{config}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json["tile_url"],
        "https://tiles.intranet.example/{z}/{x}/{y}.png"
    );
    let (missing, _) = http_get(&app, "/console/nothing.js", "").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    // gRPC beside it, with its auth as ever.
    import(&app, &small_bundle()).await;
    let refused = directory(&app)
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    app.stop().await.unwrap();
}

/// Who is signed in: role, record, home region and scope, for every kind of caller.
async fn who_am_i_names_the_callers_home_and_scope(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    for (sub, role, home) in [
        (DISPATCHER, Role::Dispatcher, "371102"),
        (SUPERVISOR, Role::Supervisor, "371100"),
        (JUSTICE_STAFF, Role::UnitStaff, "371102001"),
        (GRID_MEMBER, Role::GridMember, "371102001001001"),
        ("gateway-12345", Role::Gateway, "371100"),
        ("ops-admin", Role::Admin, "371100"),
    ] {
        let me = directory(&app)
            .who_am_i(authed(WhoAmIRequest {}, &app.token(sub, role)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.sub, sub);
        assert_eq!(me.home.unwrap().code, home, "{sub}");
        assert!(!me.scope.is_empty());
        assert_eq!(
            me.member.is_some(),
            !matches!(role, Role::Gateway | Role::Admin),
            "{sub}"
        );
    }
    app.stop().await.unwrap();
}

/// A tier's shapes in a subtree, as one FeatureCollection, with fewer vertices the further out
/// the map is zoomed; a tier above the region is refused.
async fn region_shapes_come_per_tier_and_simpler_when_zoomed_out(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let bytes = rizhao_bytes().to_vec();
    directory(&app)
        .max_encoding_message_size(64 << 20)
        .import_directory(authed(
            gridcase::proto::v1::ImportDirectoryRequest {
                bundle: bytes,
                ..Default::default()
            },
            &app.token("ops-admin", Role::Admin),
        ))
        .await
        .unwrap();
    let token = app.token("disp-371102", Role::Dispatcher);
    let shapes = |tier: Tier, zoom: f64| {
        let mut client = directory(&app);
        let request = authed(
            GetRegionShapesRequest {
                region_code: "371102".into(),
                tier: tier.into(),
                zoom,
                include_retired: false,
            },
            &token,
        );
        async move { client.get_region_shapes(request).await }
    };
    let full = shapes(Tier::Grid, 0.0).await.unwrap().into_inner();
    assert_eq!(full.count, 1378, "every grid of 东港区");
    let collection: serde_json::Value = serde_json::from_str(&full.geojson).unwrap();
    assert_eq!(collection["type"], "FeatureCollection");
    let features = collection["features"].as_array().unwrap();
    assert_eq!(features.len(), 1378);
    assert!(features.iter().all(|f| {
        f["properties"]["code"]
            .as_str()
            .unwrap()
            .starts_with("371102")
            && f["properties"]["tier"] == "grid"
    }));
    let vertices = |geojson: &str| geojson.matches("],[").count();
    let coarse = shapes(Tier::Grid, 9.0).await.unwrap().into_inner();
    assert_eq!(coarse.count, 1378);
    assert!(
        vertices(&coarse.geojson) < vertices(&full.geojson),
        "zoomed out: fewer vertices ({} against {})",
        vertices(&coarse.geojson),
        vertices(&full.geojson)
    );
    let townships = shapes(Tier::Unspecified, 12.0).await.unwrap().into_inner();
    let collection: serde_json::Value = serde_json::from_str(&townships.geojson).unwrap();
    assert!(
        collection["features"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["properties"]["tier"] == "township"),
        "the region's children by default"
    );
    let refused = shapes(Tier::City, 0.0).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    app.stop().await.unwrap();
}

/// Every case of the caller's scope with a position, as a pin coloured by how it stands
/// against its clocks; the same state on the case in lists and on its own.
async fn pins_carry_every_case_in_scope_with_its_sla_state(backend: Backend) {
    let t0 = shanghai(2025, 9, 22, 10, 0);
    let time = Arc::new(ManualTime::new(t0));
    let app = TestApp::spawn_at(TestDb::new(&backend).await, time.clone()).await;
    import(&app, &small_bundle()).await;
    let a = submit(&app, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    let b = submit(&app, OTHER_GRID_MEMBER, "city.litter", 35.1, 119.15).await;
    let pins = |sub: &str, role: Role| {
        let mut client = cases(&app);
        let request = authed(ListCasePinsRequest::default(), &app.token(sub, role));
        async move { client.list_case_pins(request).await.unwrap().into_inner() }
    };
    let all = pins(DISPATCHER, Role::Dispatcher).await;
    assert!(!all.truncated);
    let ids: Vec<&str> = all.pins.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, [b.id.as_str(), a.id.as_str()], "newest first");
    assert!(all.pins.iter().all(|p| p.sla_state() == SlaState::OnTime));
    let pin = &all.pins[1];
    assert_eq!((pin.lat, pin.lon), (35.1, 119.05));
    assert_eq!(pin.grid_code, "371102001001001");
    // Only grid 2's case for grid 2's member.
    let theirs = pins(OTHER_GRID_MEMBER, Role::GridMember).await;
    assert_eq!(theirs.pins.len(), 1);
    assert_eq!(theirs.pins[0].id, b.id);
    // 20 h on, the dispatch clocks (24 h) have warned; 25 h on, they are past due.
    time.set(t0 + chrono::Duration::hours(20));
    let warned = pins(DISPATCHER, Role::Dispatcher).await;
    assert!(
        warned
            .pins
            .iter()
            .all(|p| p.sla_state() == SlaState::Warned)
    );
    time.set(t0 + chrono::Duration::hours(25));
    let late = pins(DISPATCHER, Role::Dispatcher).await;
    assert!(
        late.pins
            .iter()
            .all(|p| p.sla_state() == SlaState::Breached)
    );
    let token = app.token(DISPATCHER, Role::Dispatcher);
    let listed = cases(&app)
        .list_cases(authed(ListCasesRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed
            .cases
            .iter()
            .all(|c| c.sla_state() == SlaState::Breached)
    );
    let one = cases(&app)
        .get_case(authed(
            GetCaseRequest {
                case_id: a.id.clone(),
                include_events: false,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(one.sla_state(), SlaState::Breached);
    // The supervisor fires the levels up to the escalation (36 h): escalated.
    time.set(t0 + chrono::Duration::hours(37));
    app.supervisor.run_due().await.unwrap();
    let escalated = pins(DISPATCHER, Role::Dispatcher).await;
    assert!(
        escalated
            .pins
            .iter()
            .all(|p| p.sla_state() == SlaState::Escalated)
    );
    app.stop().await.unwrap();
}

/// Dispatchers and supervisors see the units and members of their region's subtree, phones
/// masked; asking outside it is refused; admins see everything, phones in full.
async fn units_and_members_are_listed_within_the_callers_region(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let grid2 = app.token(GRID2_DISPATCHER, Role::Dispatcher);
    let district = app.token(DISPATCHER, Role::Dispatcher);
    let units = |token: &str, region: &str| {
        let mut client = directory(&app);
        let request = authed(
            ListUnitsRequest {
                region_code: region.into(),
                ..ListUnitsRequest::default()
            },
            token,
        );
        async move { client.list_units(request).await }
    };
    let mine = units(&district, "").await.unwrap().into_inner();
    let codes: Vec<&str> = mine.units.iter().map(|u| u.code.as_str()).collect();
    assert_eq!(codes, ["371102.police", "371102001.justice"]);
    let none = units(&grid2, "").await.unwrap().into_inner();
    assert!(
        none.units.is_empty(),
        "no unit's jurisdiction lies in grid 2"
    );
    let outside = units(&grid2, "371102").await.unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied);
    let members = directory(&app)
        .list_members(authed(ListMembersRequest::default(), &district))
        .await
        .unwrap()
        .into_inner();
    assert!(members.members.len() >= 6);
    assert!(
        members.members.iter().all(|m| m.phone.contains("****")),
        "masked for a dispatcher"
    );
    assert!(
        !members.members.iter().any(|m| m.sub == SUPERVISOR),
        "the city's supervisor lies outside the district"
    );
    let admin = directory(&app)
        .list_members(authed(
            ListMembersRequest::default(),
            &app.token("ops-admin", Role::Admin),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(admin.members.iter().any(|m| m.phone == "13800000005"));
    let refused = directory(&app)
        .list_members(authed(
            ListMembersRequest::default(),
            &app.token(GRID_MEMBER, Role::GridMember),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    app.stop().await.unwrap();
}

on_both_databases!(
    the_console_is_served_on_the_grpc_port,
    who_am_i_names_the_callers_home_and_scope,
    region_shapes_come_per_tier_and_simpler_when_zoomed_out,
    pins_carry_every_case_in_scope_with_its_sla_state,
    units_and_members_are_listed_within_the_callers_region,
);

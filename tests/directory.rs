//! The directory through the real server: importing bundles (good, repeated, bad, too big),
//! locating points, browsing the tree, and replicas picking up changes without a restart.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use gridcase::{
    app::{Application, BuildOptions},
    domain::Role,
    geo::coord,
    proto::v1::{
        CoordSystem, DispatchCaseRequest, GetCaseRequest, GetRegionRequest, ImportDirectoryRequest,
        ListCategoriesRequest, ListMyReportsRequest, ListRegionsRequest, ListUnitsRequest,
        LocateRequest, PageRequest, SubmitReportRequest, Tier,
        case_service_client::CaseServiceClient, directory_service_client::DirectoryServiceClient,
        report_service_client::ReportServiceClient,
    },
};
use serde_json::json;
use tonic::Code;

fn client(app: &TestApp) -> DirectoryServiceClient<tonic::transport::Channel> {
    DirectoryServiceClient::new(app.channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

async fn import_raw(
    app: &TestApp,
    bundle: Vec<u8>,
) -> Result<gridcase::proto::v1::ImportDirectoryResponse, tonic::Status> {
    let token = app.token("ops-admin", Role::Admin);
    client(app)
        .import_directory(authed(
            ImportDirectoryRequest {
                bundle,
                ..ImportDirectoryRequest::default()
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn locate(
    app: &TestApp,
    lat: f64,
    lon: f64,
    system: CoordSystem,
) -> Result<gridcase::proto::v1::LocateResponse, tonic::Status> {
    // A service identity: it needs no member record, so it works before any import too.
    let token = app.token("gateway-12345", Role::Gateway);
    client(app)
        .locate(authed(
            LocateRequest {
                lat,
                lon,
                coord_system: system.into(),
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn the_rizhao_bundle_imports_once_and_a_second_import_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let first = import_raw(&app, rizhao_bytes().to_vec())
        .await
        .expect("imports");
    assert_eq!(first.regions.unwrap().created, 7720);
    assert_eq!(first.units.unwrap().created, 981);
    assert_eq!(first.members.unwrap().created, 7076);
    assert_eq!(first.categories.unwrap().created, 50);
    assert_eq!(first.directory_version, 1);
    let second = import_raw(&app, rizhao_bytes().to_vec())
        .await
        .expect("imports again");
    let regions = second.regions.unwrap();
    assert_eq!(
        (regions.created, regions.updated, regions.unchanged),
        (0, 0, 7720)
    );
    assert_eq!(second.members.unwrap().unchanged, 7076);
    assert_eq!(
        second.directory_version, 1,
        "nothing changed, so no new version"
    );
    // A real Rizhao point: 东港区 lies around 119.46 E, 35.42 N.
    let found = locate(&app, 35.42, 119.46, CoordSystem::Wgs84)
        .await
        .expect("located");
    let grid = found.grid.expect("grid");
    assert_eq!(grid.tier(), Tier::Grid);
    assert_eq!(found.chain.len(), 5);
    assert_eq!(found.chain[0].code, "371100");
    assert_eq!(found.chain[4].code, grid.code);
    for pair in found.chain.windows(2) {
        assert_eq!(
            pair[1].parent_code, pair[0].code,
            "the chain runs city → grid"
        );
    }
    app.stop().await.expect("clean stop");
}

async fn an_upsert_updates_what_changed_and_keeps_the_rest(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let mut bundle = small_bundle();
    bundle["features"][5]["properties"]["name"] = json!("改名网格02");
    bundle["units"] = json!([]);
    bundle["members"] = json!([]);
    let report = import_raw(&app, serde_json::to_vec(&bundle).unwrap())
        .await
        .expect("imports");
    let regions = report.regions.unwrap();
    assert_eq!(
        (regions.created, regions.updated, regions.unchanged),
        (0, 1, 5)
    );
    assert_eq!(report.directory_version, 2);
    let token = app.token("ops-admin", Role::Admin);
    let region = client(&app)
        .get_region(authed(
            GetRegionRequest {
                code: "371102001001002".into(),
                include_geometry: false,
            },
            &token,
        ))
        .await
        .expect("region")
        .into_inner();
    assert_eq!(region.region.unwrap().name, "改名网格02");
    // Units and members not in the bundle stay.
    let units = client(&app)
        .list_units(authed(ListUnitsRequest::default(), &token))
        .await
        .expect("units")
        .into_inner();
    assert_eq!(units.units.len(), 2);
    app.stop().await.expect("clean stop");
}

async fn a_bad_bundle_names_the_first_offending_record_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let bowtie = json!({"type": "Polygon", "coordinates": [[[119.0, 35.0], [119.1, 35.2], [119.1, 35.0], [119.0, 35.2], [119.0, 35.0]]]});
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "unknown tier",
            Box::new(|b| b["features"][4]["properties"]["tier"] = json!("block")),
            "feature 4 (371102001001001): unknown tier",
        ),
        (
            "missing parent",
            Box::new(|b| b["features"][4]["properties"]["parent"] = json!(null)),
            "feature 4 (371102001001001): a grid needs a parent",
        ),
        (
            "unknown parent",
            Box::new(|b| {
                b["features"][4]["properties"]["parent"] = json!("371102001009");
                b["features"][4]["properties"]["code"] = json!("371102001009001");
            }),
            "feature 4 (371102001009001): unknown parent 371102001009",
        ),
        (
            "parent of the wrong tier",
            Box::new(|b| {
                b["features"][4]["properties"]["tier"] = json!("community");
                b["features"][4]["properties"]["code"] = json!("371102001002");
                b["features"][4]["properties"]["parent"] = json!("371102001001");
            }),
            "feature 4 (371102001002): code 371102001002 does not extend its parent's code 371102001001",
        ),
        (
            "parent one tier too high",
            Box::new(|b| {
                b["features"][4]["properties"]["parent"] = json!("371102001");
                b["features"][4]["properties"]["code"] = json!("371102001001003");
            }),
            "feature 4 (371102001001003): parent 371102001 is a township; a grid needs a community parent",
        ),
        (
            "duplicate code",
            Box::new(|b| b["features"][5]["properties"]["code"] = json!("371102001001001")),
            "feature 5 (371102001001001): duplicate code",
        ),
        (
            "self-crossing geometry",
            Box::new(move |b| b["features"][4]["geometry"] = bowtie.clone()),
            "feature 4 (371102001001001): invalid geometry",
        ),
        (
            "a grid outside its community",
            Box::new(
                |b| b["features"][5]["geometry"] = json!({"type": "Polygon", "coordinates": [[[119.1, 35.0], [119.25, 35.0], [119.25, 35.2], [119.1, 35.2], [119.1, 35.0]]]}),
            ),
            "feature 5 (371102001001002): lies outside its parent 371102001001",
        ),
        (
            "a point geometry",
            Box::new(|b| {
                b["features"][5]["geometry"] =
                    json!({"type": "Point", "coordinates": [119.1, 35.1]})
            }),
            "feature 5 (371102001001002): geometry must be a Polygon or MultiPolygon",
        ),
        (
            "a unit in an unknown region",
            Box::new(|b| b["units"][0]["region"] = json!("999999")),
            "units[0] (371102.police): unknown region 999999",
        ),
        (
            "a member with an unknown grid",
            Box::new(|b| b["members"][0]["grids"] = json!(["371102001001009"])),
            "members[0] (gm-371102001001001): unknown grid 371102001001009",
        ),
        (
            "a member with an unknown unit",
            Box::new(|b| b["members"][2]["unit"] = json!("371102.nothing")),
            "members[2] (staff-371102.police): unknown unit 371102.nothing",
        ),
        (
            "a member with an unknown role",
            Box::new(|b| b["members"][3]["role"] = json!("mayor")),
            "members[3] (staff-371102001.justice): unknown role",
        ),
        (
            "a category with an unknown tier",
            Box::new(|b| b["categories"][0]["handling_tier"] = json!("street")),
            "categories[0] (dispute.neighbor): unknown tier",
        ),
        (
            "not a FeatureCollection",
            Box::new(|b| b["type"] = json!("Feature")),
            "bundle: type is \"Feature\"",
        ),
    ];
    for (name, edit, expected) in &cases {
        let mut bundle = small_bundle();
        // Every bad bundle also renames a grid: that rename must not land.
        bundle["features"][4]["properties"]["name"] = json!("不该出现");
        edit(&mut bundle);
        let status = import_raw(&app, serde_json::to_vec(&bundle).unwrap())
            .await
            .expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        assert!(
            status.message().contains(expected),
            "{name}: {:?} should contain {expected:?}",
            status.message()
        );
    }
    for (name, bytes) in [
        ("not JSON", b"<kml/>".to_vec()),
        ("empty", Vec::new()),
        ("not UTF-8", vec![0xff, 0xfe, 0x00]),
    ] {
        let status = import_raw(&app, bytes).await.expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}");
        assert!(
            status.message().starts_with("bundle: not"),
            "{name}: {}",
            status.message()
        );
    }
    let token = app.token("ops-admin", Role::Admin);
    let region = client(&app)
        .get_region(authed(
            GetRegionRequest {
                code: "371102001001001".into(),
                include_geometry: false,
            },
            &token,
        ))
        .await
        .expect("region")
        .into_inner();
    assert_eq!(
        region.region.unwrap().name,
        "测试网格01",
        "no bad bundle changed anything"
    );
    let again = import_raw(&app, serde_json::to_vec(&small_bundle()).unwrap())
        .await
        .expect("still version 1");
    assert_eq!(again.directory_version, 1);
    app.stop().await.expect("clean stop");
}

async fn a_bundle_over_the_configured_limit_is_refused(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let app = TestApp::spawn_with(db, |s| s.max_bundle_bytes = 1000).await;
    let status = import_raw(&app, serde_json::to_vec(&small_bundle()).unwrap())
        .await
        .expect_err("too big");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("max_bundle_bytes"),
        "{}",
        status.message()
    );
    let token = app.token("ops-admin", Role::Admin);
    let listed = client(&app)
        .list_regions(authed(ListRegionsRequest::default(), &token))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.regions.is_empty(), "nothing written");
    app.stop().await.expect("clean stop");
}

async fn locate_covers_snaps_within_50_m_and_refuses_beyond(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let inside = locate(&app, 35.1, 119.05, CoordSystem::Unspecified)
        .await
        .expect("inside");
    assert_eq!(inside.grid.unwrap().code, "371102001001001");
    assert!(!inside.snapped);
    assert_eq!(inside.distance_m, 0.0);
    assert_eq!(
        inside
            .chain
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>(),
        [
            "371100",
            "371102",
            "371102001",
            "371102001001",
            "371102001001001"
        ]
    );
    // On the shared edge at 119.1 E and on the shared vertex: the smaller code wins.
    for (lat, lon) in [(35.1, 119.1), (35.0, 119.1), (35.2, 119.1)] {
        let on_edge = locate(&app, lat, lon, CoordSystem::Wgs84)
            .await
            .expect("edge");
        assert_eq!(
            on_edge.grid.unwrap().code,
            "371102001001001",
            "({lat}, {lon})"
        );
    }
    let east = locate(&app, 35.1, 119.15, CoordSystem::Wgs84)
        .await
        .expect("east");
    assert_eq!(east.grid.unwrap().code, "371102001001002");
    // 30 m north of the box: snapped, with the distance.
    let metres_per_deg_lat = 6_371_008.8 * std::f64::consts::PI / 180.0;
    let near = locate(
        &app,
        35.2 + 30.0 / metres_per_deg_lat,
        119.15,
        CoordSystem::Wgs84,
    )
    .await
    .expect("snaps");
    assert!(near.snapped);
    assert_eq!(near.grid.unwrap().code, "371102001001002");
    assert!((near.distance_m - 30.0).abs() < 0.01, "{}", near.distance_m);
    // 80 m away: not found.
    let far = locate(
        &app,
        35.2 + 80.0 / metres_per_deg_lat,
        119.15,
        CoordSystem::Wgs84,
    )
    .await
    .expect_err("too far");
    assert_eq!(far.code(), Code::NotFound);
    // The same inside point sent as GCJ-02 and BD-09.
    for (system, convert) in [
        (CoordSystem::Gcj02, coord::CoordSystem::Gcj02),
        (CoordSystem::Bd09, coord::CoordSystem::Bd09),
    ] {
        let (lon, lat) = coord::from_wgs84(convert, 119.15, 35.1);
        let found = locate(&app, lat, lon, system).await.expect("converted");
        assert_eq!(found.grid.unwrap().code, "371102001001002", "{system:?}");
        let used = found.wgs84.unwrap();
        assert!(
            (used.lon - 119.15).abs() < 1e-6 && (used.lat - 35.1).abs() < 1e-6,
            "{system:?}: {used:?}"
        );
    }
    app.stop().await.expect("clean stop");
}

async fn bad_positions_are_invalid_arguments(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    for (lat, lon, field) in [
        (91.0, 119.0, "lat"),
        (-90.5, 119.0, "lat"),
        (35.0, 180.5, "lon"),
        (35.0, -181.0, "lon"),
        (f64::NAN, 119.0, "lat"),
        (35.0, f64::INFINITY, "lon"),
        (f64::NEG_INFINITY, 119.0, "lat"),
    ] {
        let status = locate(&app, lat, lon, CoordSystem::Wgs84)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "({lat}, {lon})");
        assert!(
            status.message().starts_with(field),
            "({lat}, {lon}): {}",
            status.message()
        );
    }
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let status = client(&app)
        .locate(authed(
            LocateRequest {
                lat: 35.1,
                lon: 119.1,
                coord_system: 42,
            },
            &token,
        ))
        .await
        .expect_err("unknown system");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("coord_system"));
    app.stop().await.expect("clean stop");
}

async fn regions_are_browsed_and_paged_from_the_root(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let roots = client(&app)
        .list_regions(authed(ListRegionsRequest::default(), &token))
        .await
        .expect("roots")
        .into_inner();
    assert_eq!(
        roots
            .regions
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>(),
        ["371100"]
    );
    let mut codes = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client(&app)
            .list_regions(authed(
                ListRegionsRequest {
                    parent_code: "371102001001".into(),
                    page: Some(PageRequest {
                        page_size: 1,
                        page_token: page_token.clone(),
                    }),
                    ..ListRegionsRequest::default()
                },
                &token,
            ))
            .await
            .expect("page")
            .into_inner();
        assert!(page.regions.len() <= 1);
        codes.extend(page.regions.into_iter().map(|r| r.code));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(codes, ["371102001001001", "371102001001002"]);
    let region = client(&app)
        .get_region(authed(
            GetRegionRequest {
                code: "371102001".into(),
                include_geometry: true,
            },
            &token,
        ))
        .await
        .expect("region")
        .into_inner();
    assert_eq!(region.child_count, 1);
    assert_eq!(region.chain.len(), 3);
    let geometry: serde_json::Value =
        serde_json::from_str(&region.geometry_geojson).expect("GeoJSON");
    assert_eq!(geometry["type"], "MultiPolygon");
    let missing = client(&app)
        .get_region(authed(
            GetRegionRequest {
                code: "000000".into(),
                include_geometry: false,
            },
            &token,
        ))
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);
    let categories = client(&app)
        .list_categories(authed(ListCategoriesRequest {}, &token))
        .await
        .expect("categories")
        .into_inner();
    assert_eq!(categories.categories.len(), 3);
    app.stop().await.expect("clean stop");
}

async fn a_directory_imported_through_one_replica_reaches_another_without_a_restart(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let url = db.url.clone();
    let first = TestApp::spawn_with(db, |_| {}).await;
    let second_db = TestDb::shared(&url);
    let second = TestApp::spawn_with(second_db, |_| {}).await;
    // The second replica knows no grid yet.
    assert_eq!(
        locate(&second, 35.1, 119.05, CoordSystem::Wgs84)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    import(&first, &small_bundle()).await;
    let started = Instant::now();
    loop {
        match locate(&second, 35.1, 119.05, CoordSystem::Wgs84).await {
            Ok(found) => {
                assert_eq!(found.grid.unwrap().code, "371102001001001");
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound, "{status:?}");
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the second replica never saw the import"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    second.stop().await.expect("clean stop");
    first.stop().await.expect("clean stop");
}

async fn serve_demo_loads_rizhao_into_an_empty_database_once(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let settings = test_settings(&db.url, dir.path().to_owned());
        let app = Application::build(
            settings,
            BuildOptions {
                demo: true,
                ..BuildOptions::default()
            },
        )
        .await
        .expect("builds");
        let parts = gridcase::storage::directory::load(app.db())
            .await
            .expect("load");
        assert_eq!(
            parts
                .regions
                .iter()
                .filter(|(r, _)| r.tier == gridcase::domain::directory::Tier::Grid)
                .count(),
            5938
        );
        assert_eq!(parts.version, 1, "round {round}: loaded once, not again");
    }
}

/// `bundle` with `"retired": true` on the features, units and members named.
fn retiring(bundle: &serde_json::Value, codes: &[&str]) -> serde_json::Value {
    let mut bundle = bundle.clone();
    for feature in bundle["features"].as_array_mut().unwrap() {
        if codes.contains(&feature["properties"]["code"].as_str().unwrap()) {
            feature["properties"]["retired"] = json!(true);
        }
    }
    for (list, key) in [("units", "code"), ("members", "sub")] {
        for record in bundle[list].as_array_mut().unwrap() {
            if codes.contains(&record[key].as_str().unwrap()) {
                record["retired"] = json!(true);
            }
        }
    }
    bundle
}

async fn import_under(
    app: &TestApp,
    bundle: &serde_json::Value,
    under: &str,
) -> Result<gridcase::proto::v1::ImportDirectoryResponse, tonic::Status> {
    let token = app.token("ops-admin", Role::Admin);
    client(app)
        .import_directory(authed(
            ImportDirectoryRequest {
                bundle: serde_json::to_vec(bundle).unwrap(),
                retire_unlisted_under: under.into(),
            },
            &token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// A grid member's own reports, as a call that their retirement must refuse.
async fn my_reports(app: &TestApp, sub: &str) -> Result<usize, tonic::Status> {
    ReportServiceClient::new(app.channel.clone())
        .list_my_reports(authed(
            ListMyReportsRequest::default(),
            &app.token(sub, Role::GridMember),
        ))
        .await
        .map(|r| r.into_inner().cases.len())
}

/// Polls `check` on `app` until it holds, for up to 10 s (two directory reloads and more).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A bundle retires a member, a unit and a grid through one replica: on the other replica
/// within the reload interval the member is refused, the grid no longer locates or takes
/// reports, and the unit is no longer routed or dispatched to; every case keeps its history
/// and codes. Reinstating undoes it; a bundle for a subtree retires what it no longer lists.
async fn retired_records_keep_their_history_and_act_no_more(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let url = db.url.clone();
    let first = TestApp::spawn_with(db, |_| {}).await;
    let second = TestApp::spawn_with(TestDb::shared(&url), |_| {}).await;
    import(&first, &small_bundle()).await;
    wait_for_directory(&second).await;
    let before = submit(&first, GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    assert_eq!(before.grid_code, "371102001001001");
    assert_eq!(before.unit_code, "371102001.justice");
    assert_eq!(my_reports(&second, GRID_MEMBER).await.unwrap(), 1);

    let grid = "371102001001001";
    let retired = import_raw(
        &first,
        serde_json::to_vec(&retiring(
            &small_bundle(),
            &[GRID_MEMBER, grid, "371102001.justice"],
        ))
        .unwrap(),
    )
    .await
    .expect("retiring imports");
    for (kind, counts) in [
        ("regions", retired.regions.unwrap()),
        ("units", retired.units.unwrap()),
        ("members", retired.members.unwrap()),
    ] {
        assert_eq!((counts.retired, counts.updated), (1, 1), "{kind}");
    }
    // The other replica refuses the member within its reload interval; this one at once.
    let refused = my_reports(&first, GRID_MEMBER).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("retired"), "{refused:?}");
    eventually("the second replica refuses the retired member", || async {
        my_reports(&second, GRID_MEMBER)
            .await
            .is_err_and(|s| s.code() == Code::PermissionDenied)
    })
    .await;
    for app in [&first, &second] {
        // The retired grid no longer locates; grid 02 is 5 km away.
        let status = locate(app, 35.1, 119.05, CoordSystem::Wgs84)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let by_code = ReportServiceClient::new(app.channel.clone())
            .submit_report(authed(
                SubmitReportRequest {
                    client_report_id: uuid::Uuid::new_v4().to_string(),
                    category_code: "dispute.neighbor".into(),
                    description: "测试".into(),
                    grid_code: grid.into(),
                    ..SubmitReportRequest::default()
                },
                &app.token(OTHER_GRID_MEMBER, Role::GridMember),
            ))
            .await
            .unwrap_err();
        assert_eq!(by_code.code(), Code::InvalidArgument);
        assert!(by_code.message().contains("retired"), "{by_code:?}");
    }
    // A report there waits in the triage of the lowest active region; the justice office is
    // no longer routed to, nor dispatched to.
    let there = submit(&second, OTHER_GRID_MEMBER, "dispute.neighbor", 35.1, 119.05).await;
    assert_eq!(
        (there.grid_code.as_str(), there.region_code.as_str()),
        ("", "371102001001")
    );
    let routed = submit(&second, OTHER_GRID_MEMBER, "dispute.neighbor", 35.1, 119.15).await;
    assert_eq!(routed.unit_code, "371102001001.center");
    let dispatcher = second.token(DISPATCHER, Role::Dispatcher);
    let cases = CaseServiceClient::new(second.channel.clone());
    let status = cases
        .clone()
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: routed.id.clone(),
                expected_version: routed.version,
                unit_code: "371102001.justice".into(),
                reason: "分流".into(),
            },
            &dispatcher,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("retired"), "{status:?}");
    // The case from before keeps its grid, unit, code and events.
    let kept = cases
        .clone()
        .get_case(authed(
            GetCaseRequest {
                case_id: before.id.clone(),
                include_events: true,
            },
            &dispatcher,
        ))
        .await
        .expect("still there")
        .into_inner();
    let case = kept.case.unwrap();
    assert_eq!(
        (
            case.code.as_str(),
            case.grid_code.as_str(),
            case.unit_code.as_str()
        ),
        (before.code.as_str(), grid, "371102001.justice")
    );
    assert_eq!(kept.events.len(), 2);
    let region = client(&second)
        .get_region(authed(
            GetRegionRequest {
                code: grid.into(),
                include_geometry: false,
            },
            &dispatcher,
        ))
        .await
        .expect("a retired region is still described")
        .into_inner();
    assert!(region.region.unwrap().retired);
    let children = client(&second)
        .list_regions(authed(
            ListRegionsRequest {
                parent_code: "371102001001".into(),
                ..ListRegionsRequest::default()
            },
            &dispatcher,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        children
            .regions
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>(),
        ["371102001001002"],
        "retired regions are listed only when asked for"
    );

    // Reinstated by a bundle that lists them active again.
    let back = import_raw(&first, serde_json::to_vec(&small_bundle()).unwrap())
        .await
        .unwrap();
    assert_eq!(back.members.unwrap().updated, 1);
    eventually("the reinstated member is let in again", || async {
        my_reports(&second, GRID_MEMBER).await.is_ok()
    })
    .await;

    // A bundle for the community's subtree that no longer lists grid 01 or its member.
    let mut community = small_bundle();
    community["features"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["properties"]["code"] != json!(grid));
    community["members"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["sub"] != json!(GRID_MEMBER));
    let status = import_under(&first, &community, "371102001001001")
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "the subtree's top must be listed"
    );
    let subtree = import_under(&first, &community, "371102001001")
        .await
        .expect("subtree import");
    assert_eq!(subtree.regions.unwrap().retired, 1);
    assert_eq!(
        subtree.members.unwrap().retired,
        1,
        "only the member of grid 01"
    );
    assert_eq!(
        subtree.units.unwrap().retired,
        0,
        "no unit's jurisdiction lies there"
    );
    eventually("the unlisted member is refused", || async {
        my_reports(&second, GRID_MEMBER).await.is_err()
    })
    .await;
    assert!(my_reports(&second, OTHER_GRID_MEMBER).await.is_ok());
    // Retiring a region whose child stays active is refused, naming the child.
    let status = import_raw(
        &first,
        serde_json::to_vec(&retiring(&small_bundle(), &["371102001001"])).unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("371102001001001"), "{status:?}");
    let db = gridcase::storage::connect(&url, 2).await.unwrap();
    let audit = gridcase::service::audit::verify(&db, None).await.unwrap();
    assert_eq!(audit.broken, None);
    second.stop().await.expect("clean stop");
    first.stop().await.expect("clean stop");
}

on_both_databases!(
    retired_records_keep_their_history_and_act_no_more,
    the_rizhao_bundle_imports_once_and_a_second_import_changes_nothing,
    an_upsert_updates_what_changed_and_keeps_the_rest,
    a_bad_bundle_names_the_first_offending_record_and_changes_nothing,
    a_bundle_over_the_configured_limit_is_refused,
    locate_covers_snaps_within_50_m_and_refuses_beyond,
    bad_positions_are_invalid_arguments,
    regions_are_browsed_and_paged_from_the_root,
    a_directory_imported_through_one_replica_reaches_another_without_a_restart,
    serve_demo_loads_rizhao_into_an_empty_database_once,
);

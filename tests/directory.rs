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
        CoordSystem, GetRegionRequest, ImportDirectoryRequest, ListCategoriesRequest,
        ListRegionsRequest, ListUnitsRequest, LocateRequest, PageRequest, Tier,
        directory_service_client::DirectoryServiceClient,
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
        .import_directory(authed(ImportDirectoryRequest { bundle }, &token))
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

on_both_databases!(
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

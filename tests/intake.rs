//! Intake through the real server: reports and tickets become exactly one routed, registered
//! case each, retries and concurrent duplicates included; bad input changes nothing;
//! attachments stream in under their limits; the event chain verifies.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::*;
use gridcase::{
    domain::Role,
    geo::coord,
    proto::v1::{
        AddSupplementRequest, AttachmentHeader, CaseStatus, CoordSystem, IngestTicketRequest,
        ListMyReportsRequest, Location, PageRequest, Severity, Source, SubmitReportRequest, Tier,
        UploadAttachmentRequest, gateway_service_client::GatewayServiceClient,
        report_service_client::ReportServiceClient, upload_attachment_request::Part,
    },
    storage,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tonic::{Code, transport::Channel};

fn reports(app: &TestApp) -> ReportServiceClient<Channel> {
    ReportServiceClient::new(app.channel.clone())
}

fn gateway(app: &TestApp) -> GatewayServiceClient<Channel> {
    GatewayServiceClient::new(app.channel.clone())
}

fn report(id: &str, category: &str, lat: f64, lon: f64) -> SubmitReportRequest {
    SubmitReportRequest {
        client_report_id: id.to_owned(),
        category_code: category.to_owned(),
        description: "楼道堆放杂物，影响通行".to_owned(),
        location: Some(Location {
            lat,
            lon,
            coord_system: CoordSystem::Wgs84.into(),
            accuracy_m: 5.0,
        }),
        ..SubmitReportRequest::default()
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn db_of(app: &TestApp) -> DatabaseConnection {
    storage::connect(&app.db.url, 2).await.expect("connect")
}

async fn count_cases(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM cases",
        ))
        .await
        .expect("count")
        .expect("row");
    row.try_get_by_index(0).expect("count")
}

async fn a_report_becomes_one_registered_routed_case(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    // 邻里纠纷 (justice, community tier): no justice unit at the community, one at the township.
    let answer = reports(&app)
        .submit_report(authed(
            report(&uuid(), "dispute.neighbor", 35.1, 119.05),
            &token,
        ))
        .await
        .expect("stored")
        .into_inner();
    assert!(answer.created);
    let case = answer.case.expect("case");
    assert_eq!(case.status(), CaseStatus::Registered);
    assert_eq!(case.grid_code, "371102001001001");
    assert_eq!(case.unit_code, "371102001.justice");
    assert_eq!(case.tier(), Tier::Township);
    assert_eq!(case.region_code, "371102001");
    assert_eq!(case.category_code, "dispute.neighbor");
    assert_eq!(case.severity(), Severity::General);
    assert_eq!(case.code.len(), 20);
    assert!(case.code.starts_with("371102"), "{}", case.code);
    assert!(case.code.ends_with("000001"), "{}", case.code);
    // The reporter is not the holding center: their own phone comes back masked.
    assert_eq!(case.reporter_phone, "138****0001");

    // 消防隐患 (fire, district, urgent): no fire unit anywhere: the district's center, at district tier.
    let fire = reports(&app)
        .submit_report(authed(
            report(&uuid(), "safety.fire_hazard", 35.1, 119.15),
            &token,
        ))
        .await
        .expect("stored")
        .into_inner()
        .case
        .expect("case");
    assert_eq!(fire.unit_code, "371102.center");
    assert_eq!(fire.tier(), Tier::District);
    assert_eq!(fire.severity(), Severity::Urgent);
    assert!(
        fire.code.ends_with("000002"),
        "codes count up per district and day: {}",
        fire.code
    );
    // A grid-tier item stays in the grid, with the grid's center.
    let litter = reports(&app)
        .submit_report(authed(report(&uuid(), "city.litter", 35.1, 119.15), &token))
        .await
        .expect("stored")
        .into_inner()
        .case
        .expect("case");
    assert_eq!(litter.unit_code, "371102001001002.center");
    assert_eq!(litter.tier(), Tier::Grid);

    // Stored with its first events, chained.
    let db = db_of(&app).await;
    let (stored, events) = storage::cases::with_events(&db, &case.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(stored.code, case.code);
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "registered"]);
    assert_eq!(events[1].prev_hash, events[0].hash);
    assert_eq!(stored.last_event_hash, events[1].hash);
    let audit = gridcase::service::audit::verify(&db, None)
        .await
        .expect("verify");
    assert_eq!((audit.cases, audit.events, audit.broken), (3, 6, None));
    app.stop().await.expect("clean stop");
}

async fn a_retried_report_returns_the_same_case(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let id = uuid();
    let first = reports(&app)
        .submit_report(authed(
            report(&id, "dispute.neighbor", 35.1, 119.05),
            &token,
        ))
        .await
        .expect("first")
        .into_inner();
    // The answer was lost; the handset tries again with the same id and content.
    let retry = reports(&app)
        .submit_report(authed(
            report(&id, "dispute.neighbor", 35.1, 119.05),
            &token,
        ))
        .await
        .expect("retry")
        .into_inner();
    assert!(first.created);
    assert!(!retry.created);
    assert_eq!(
        retry.case.as_ref().unwrap().id,
        first.case.as_ref().unwrap().id
    );
    assert_eq!(
        retry.case.as_ref().unwrap().code,
        first.case.as_ref().unwrap().code
    );
    // The same id with other content is refused.
    let mut changed = report(&id, "dispute.neighbor", 35.1, 119.05);
    changed.description = "另一件事".into();
    let status = reports(&app)
        .submit_report(authed(changed, &token))
        .await
        .expect_err("different content");
    assert_eq!(status.code(), Code::AlreadyExists);
    // Another reporter's id space is their own.
    let other = app.token(OTHER_GRID_MEMBER, Role::GridMember);
    let theirs = reports(&app)
        .submit_report(authed(
            report(&id, "dispute.neighbor", 35.1, 119.05),
            &other,
        ))
        .await
        .expect("another reporter")
        .into_inner();
    assert!(theirs.created);
    assert_ne!(theirs.case.unwrap().id, first.case.unwrap().id);
    assert_eq!(count_cases(&db_of(&app).await).await, 2);
    app.stop().await.expect("clean stop");
}

async fn concurrent_duplicates_make_one_case(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let id = uuid();
    let tries = (0..24).map(|_| {
        let mut client = reports(&app);
        let request = authed(report(&id, "dispute.neighbor", 35.1, 119.05), &token);
        async move { client.submit_report(request).await.map(|r| r.into_inner()) }
    });
    let answers = futures_util::future::join_all(tries).await;
    let answers: Vec<_> = answers
        .into_iter()
        .map(|a| a.expect("every try answered"))
        .collect();
    let created = answers.iter().filter(|a| a.created).count();
    assert_eq!(created, 1, "exactly one try created the case");
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|a| a.case.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 1, "every try got the same case");
    // And many different reports at once each get their own case and code.
    let many = (0..40).map(|k| {
        let mut client = reports(&app);
        let request = authed(
            report(
                &uuid(),
                "dispute.neighbor",
                35.01 + f64::from(k) * 0.004,
                119.05,
            ),
            &token,
        );
        async move { client.submit_report(request).await.map(|r| r.into_inner()) }
    });
    let codes: std::collections::HashSet<_> = futures_util::future::join_all(many)
        .await
        .into_iter()
        .map(|a| a.expect("stored").case.unwrap().code)
        .collect();
    assert_eq!(codes.len(), 40, "unique codes");
    let db = db_of(&app).await;
    assert_eq!(count_cases(&db).await, 41);
    assert_eq!(
        gridcase::service::audit::verify(&db, None)
            .await
            .expect("verify")
            .broken,
        None
    );
    app.stop().await.expect("clean stop");
}

/// Handset reports and gateway tickets in flight together, so that batches may hold both kinds
/// of key and nearby cases to look for: every one is stored once, and every retry finds its
/// own case. (Whether a batch was mixed is not visible here: a batch whose read failed would
/// be stored draft by draft and give the same answers. The statement for each mix of parts is
/// checked by a unit test in `storage::cases`.)
async fn reports_and_tickets_together_each_find_their_retry(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let member = app.token(GRID_MEMBER, Role::GridMember);
    let hotline = app.token("gateway-12345", Role::Gateway);
    let report_ids: Vec<String> = (0..16).map(|_| uuid()).collect();
    let ticket = |k: usize| IngestTicketRequest {
        source: Source::Hotline12345.into(),
        external_id: format!("MIX-{k}"),
        category_code: "dispute.neighbor".into(),
        description: "楼上噪音扰民".into(),
        caller_phone: "13912345678".into(),
        region_code: "371102001001".into(),
        // Every other ticket has a position, near the reports.
        location: k.is_multiple_of(2).then_some(Location {
            lat: 35.1,
            lon: 119.05,
            coord_system: CoordSystem::Wgs84.into(),
            accuracy_m: 0.0,
        }),
        ..IngestTicketRequest::default()
    };
    let submit_all = || {
        let reports = report_ids.iter().map(|id| {
            let mut client = reports(&app);
            let request = authed(report(id, "dispute.neighbor", 35.1, 119.05), &member);
            async move {
                let answer = client
                    .submit_report(request)
                    .await
                    .expect("report answered");
                let answer = answer.into_inner();
                (answer.case.unwrap().id, answer.created)
            }
        });
        let tickets = (0..16).map(|k| {
            let mut client = gateway(&app);
            let request = authed(ticket(k), &hotline);
            async move {
                let answer = client
                    .ingest_ticket(request)
                    .await
                    .expect("ticket answered");
                let answer = answer.into_inner();
                (answer.case.unwrap().id, answer.created)
            }
        });
        async move {
            let (r, t) = tokio::join!(
                futures_util::future::join_all(reports),
                futures_util::future::join_all(tickets)
            );
            r.into_iter().chain(t).collect::<Vec<_>>()
        }
    };
    let first = submit_all().await;
    assert!(first.iter().all(|(_, created)| *created), "{first:?}");
    let ids: std::collections::HashSet<_> = first.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 32, "one case each");
    let again = submit_all().await;
    for ((id, _), (retry_id, created)) in first.iter().zip(&again) {
        assert!(!created, "a retry creates nothing");
        assert_eq!(retry_id, id, "a retry gets its own case");
    }
    assert_eq!(count_cases(&db_of(&app).await).await, 32);
    app.stop().await.expect("clean stop");
}

async fn a_report_outside_every_region_is_stored_for_triage(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let far = reports(&app)
        .submit_report(authed(
            report(&uuid(), "dispute.neighbor", 30.0, 110.0),
            &token,
        ))
        .await
        .expect("not refused for its position")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(far.grid_code, "");
    assert_eq!(far.region_code, "371100", "the root's triage queue");
    assert_eq!(far.unit_code, "371100.center");
    assert_eq!(far.status(), CaseStatus::Registered);
    assert!(far.code.starts_with("371100"), "{}", far.code);
    // 30 m outside the grids: snapped into the nearest one.
    let metres = 6_371_008.8 * std::f64::consts::PI / 180.0;
    let near = reports(&app)
        .submit_report(authed(
            report(&uuid(), "dispute.neighbor", 35.2 + 30.0 / metres, 119.15),
            &token,
        ))
        .await
        .expect("stored")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(near.grid_code, "371102001001002");
    assert!(near.snapped);
    assert!((near.snap_distance_m - 30.0).abs() < 0.05);
    // By QR code alone, and as GCJ-02.
    let mut by_code = report(&uuid(), "dispute.neighbor", 0.0, 0.0);
    by_code.location = None;
    by_code.grid_code = "371102001001002".into();
    let qr = reports(&app)
        .submit_report(authed(by_code, &token))
        .await
        .expect("qr")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(qr.grid_code, "371102001001002");
    let (glon, glat) = coord::from_wgs84(coord::CoordSystem::Gcj02, 119.15, 35.1);
    let mut gcj = report(&uuid(), "dispute.neighbor", glat, glon);
    gcj.location.as_mut().unwrap().coord_system = CoordSystem::Gcj02.into();
    let converted = reports(&app)
        .submit_report(authed(gcj, &token))
        .await
        .expect("gcj")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(converted.grid_code, "371102001001002");
    let used = converted.location.unwrap();
    assert!((used.lon - 119.15).abs() < 1e-6 && (used.lat - 35.1).abs() < 1e-6);
    let sent = converted.reported_location.unwrap();
    assert_eq!(
        (sent.lat, sent.lon),
        (glat, glon),
        "what was sent is kept beside what was used"
    );
    app.stop().await.expect("clean stop");
}

async fn bad_reports_are_refused_naming_the_field_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let base = || report(&uuid(), "dispute.neighbor", 35.1, 119.05);
    type Edit = Box<dyn Fn(&mut SubmitReportRequest)>;
    let cases: Vec<(&str, Edit, Code, &str)> = vec![
        (
            "not a UUID",
            Box::new(|r| r.client_report_id = "12345".into()),
            Code::InvalidArgument,
            "client_report_id",
        ),
        (
            "unknown category",
            Box::new(|r| r.category_code = "dispute.nothing".into()),
            Code::InvalidArgument,
            "category_code",
        ),
        (
            "empty description",
            Box::new(|r| r.description = "   ".into()),
            Code::InvalidArgument,
            "description",
        ),
        (
            "over-long description",
            Box::new(|r| r.description = "长".repeat(2001)),
            Code::InvalidArgument,
            "description",
        ),
        (
            "latitude out of range",
            Box::new(|r| r.location.as_mut().unwrap().lat = 95.0),
            Code::InvalidArgument,
            "lat",
        ),
        (
            "longitude not finite",
            Box::new(|r| r.location.as_mut().unwrap().lon = f64::NAN),
            Code::InvalidArgument,
            "lon",
        ),
        (
            "unknown coordinate system",
            Box::new(|r| r.location.as_mut().unwrap().coord_system = 9),
            Code::InvalidArgument,
            "coord_system",
        ),
        (
            "unknown grid code",
            Box::new(|r| r.grid_code = "371102001001009".into()),
            Code::InvalidArgument,
            "grid_code",
        ),
        (
            "a region, not a grid",
            Box::new(|r| r.grid_code = "371102001".into()),
            Code::InvalidArgument,
            "grid_code",
        ),
        (
            "no place at all",
            Box::new(|r| r.location = None),
            Code::InvalidArgument,
            "location",
        ),
        (
            "unknown attachment",
            Box::new(|r| r.attachment_ids = vec![uuid()]),
            Code::InvalidArgument,
            "attachment_ids[0]",
        ),
        (
            "unknown urgency",
            Box::new(|r| r.urgency = 7),
            Code::InvalidArgument,
            "urgency",
        ),
    ];
    for (name, edit, code, field) in &cases {
        let mut request = base();
        edit(&mut request);
        let status = reports(&app)
            .submit_report(authed(request, &token))
            .await
            .expect_err(name);
        assert_eq!(status.code(), *code, "{name}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{name}: {:?} should name {field}",
            status.message()
        );
    }
    // Another caller's attachment is not yours to use.
    let other = app.token(OTHER_GRID_MEMBER, Role::GridMember);
    let theirs = upload(
        &app,
        &other,
        "image/jpeg",
        b"\xff\xd8\xff\xe0 other".to_vec(),
    )
    .await
    .expect("uploaded");
    let mut request = base();
    request.attachment_ids = vec![theirs.attachment_id];
    let status = reports(&app)
        .submit_report(authed(request, &token))
        .await
        .expect_err("not theirs");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(count_cases(&db_of(&app).await).await, 0, "nothing stored");
    app.stop().await.expect("clean stop");
}

async fn upload(
    app: &TestApp,
    token: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> Result<gridcase::proto::v1::UploadAttachmentResponse, tonic::Status> {
    upload_declaring(app, token, content_type, bytes.len() as i64, bytes).await
}

async fn upload_declaring(
    app: &TestApp,
    token: &str,
    content_type: &str,
    declared: i64,
    bytes: Vec<u8>,
) -> Result<gridcase::proto::v1::UploadAttachmentResponse, tonic::Status> {
    let mut messages = vec![UploadAttachmentRequest {
        part: Some(Part::Header(AttachmentHeader {
            content_type: content_type.into(),
            size_bytes: declared,
            file_name: "photo.jpg".into(),
        })),
    }];
    for chunk in bytes.chunks(1000) {
        messages.push(UploadAttachmentRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        });
    }
    reports(app)
        .upload_attachment(authed(tokio_stream::iter(messages), token))
        .await
        .map(|r| r.into_inner())
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

async fn attachments_stream_in_content_addressed_within_their_limits(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let app = TestApp::spawn_with(db, |s| s.max_attachment_bytes = 10_000).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let photo: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let stored = upload(&app, &token, "image/jpeg", photo.clone())
        .await
        .expect("uploaded");
    use sha2::Digest;
    assert_eq!(stored.sha256, hex::encode(sha2::Sha256::digest(&photo)));
    assert_eq!(stored.size_bytes, 5000);
    let attachments_dir = app.settings.data_dir.join("attachments");
    let path = attachments_dir
        .join(&stored.sha256[..2])
        .join(&stored.sha256);
    assert_eq!(std::fs::read(&path).expect("stored file"), photo);
    // Refused uploads leave nothing behind.
    let refusals = [
        (
            "more than declared",
            upload_declaring(&app, &token, "image/jpeg", 100, vec![1; 200]).await,
            Code::InvalidArgument,
        ),
        (
            "less than declared",
            upload_declaring(&app, &token, "image/jpeg", 300, vec![1; 200]).await,
            Code::InvalidArgument,
        ),
        (
            "over the limit",
            upload(&app, &token, "image/jpeg", vec![2; 10_001]).await,
            Code::ResourceExhausted,
        ),
        (
            "a disallowed type",
            upload(&app, &token, "application/x-msdownload", vec![3; 10]).await,
            Code::InvalidArgument,
        ),
    ];
    for (name, result, code) in refusals {
        assert_eq!(result.expect_err(name).code(), code, "{name}");
    }
    assert_eq!(
        files_under(&attachments_dir),
        vec![path.clone()],
        "only the good upload is on disk"
    );
    // The same content again: a new id, the same stored file.
    let again = upload(&app, &token, "image/jpeg", photo.clone())
        .await
        .expect("again");
    assert_ne!(again.attachment_id, stored.attachment_id);
    assert_eq!(files_under(&attachments_dir).len(), 1);
    // A report refers to it.
    let mut request = report(&uuid(), "city.litter", 35.1, 119.05);
    request.attachment_ids = vec![stored.attachment_id.clone()];
    let case = reports(&app)
        .submit_report(authed(request, &token))
        .await
        .expect("stored")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.attachment_ids, vec![stored.attachment_id]);
    app.stop().await.expect("clean stop");
}

async fn possible_duplicates_are_flagged_never_merged(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let first = reports(&app)
        .submit_report(authed(
            report(&uuid(), "dispute.neighbor", 35.1, 119.05),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    // 50 m north: flagged with the first.
    let metres = 6_371_008.8 * std::f64::consts::PI / 180.0;
    let second = reports(&app)
        .submit_report(authed(
            report(&uuid(), "dispute.neighbor", 35.1 + 50.0 / metres, 119.05),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(second.possible_duplicate_of, first.id);
    assert_eq!(second.status(), CaseStatus::Registered, "not merged");
    // 200 m away, or another item: not flagged.
    let far = reports(&app)
        .submit_report(authed(
            report(&uuid(), "dispute.neighbor", 35.1 + 200.0 / metres, 119.05),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(far.possible_duplicate_of, "");
    let other_item = reports(&app)
        .submit_report(authed(report(&uuid(), "city.litter", 35.1, 119.05), &token))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(other_item.possible_duplicate_of, "");
    app.stop().await.expect("clean stop");
}

async fn tickets_are_idempotent_per_source_and_external_id(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token("gateway-12345", Role::Gateway);
    let ticket = |external: &str, source: Source| IngestTicketRequest {
        source: source.into(),
        external_id: external.into(),
        category_code: "dispute.neighbor".into(),
        description: "楼上噪音扰民".into(),
        caller_phone: "13912345678".into(),
        caller_name: "张先生".into(),
        address: "测试社区3号楼".into(),
        region_code: "371102001001".into(),
        ..IngestTicketRequest::default()
    };
    let first = gateway(&app)
        .ingest_ticket(authed(ticket("T-1", Source::Hotline12345), &token))
        .await
        .expect("ingested")
        .into_inner();
    assert!(first.created);
    let case = first.case.unwrap();
    // No position: the triage queue of the region the gateway named.
    assert_eq!(case.grid_code, "");
    assert_eq!(case.region_code, "371102001001");
    assert_eq!(case.unit_code, "371102001001.center");
    assert_eq!(case.reporter_phone, "139****5678", "masked for the gateway");
    assert_eq!(case.external_id, "T-1");
    let again = gateway(&app)
        .ingest_ticket(authed(ticket("T-1", Source::Hotline12345), &token))
        .await
        .expect("again")
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.case.unwrap().id, case.id);
    let mut changed = ticket("T-1", Source::Hotline12345);
    changed.description = "别的事".into();
    assert_eq!(
        gateway(&app)
            .ingest_ticket(authed(changed, &token))
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );
    let wechat = gateway(&app)
        .ingest_ticket(authed(ticket("T-1", Source::Wechat), &token))
        .await
        .expect("other source")
        .into_inner();
    assert!(wechat.created, "the key is (source, external id)");
    // With a position inside a grid it is routed like a report.
    let mut located = ticket("T-2", Source::Sms);
    located.location = Some(Location {
        lat: 35.1,
        lon: 119.15,
        coord_system: CoordSystem::Bd09.into(),
        accuracy_m: 0.0,
    });
    let (blon, blat) = coord::from_wgs84(coord::CoordSystem::Bd09, 119.15, 35.1);
    located.location = Some(Location {
        lat: blat,
        lon: blon,
        coord_system: CoordSystem::Bd09.into(),
        accuracy_m: 0.0,
    });
    let routed = gateway(&app)
        .ingest_ticket(authed(located, &token))
        .await
        .expect("routed")
        .into_inner()
        .case
        .unwrap();
    assert_eq!(routed.grid_code, "371102001001002");
    assert_eq!(routed.unit_code, "371102001.justice");
    // Bad tickets.
    for (name, edit, field) in [
        (
            "no source",
            Box::new(|t: &mut IngestTicketRequest| t.source = 0)
                as Box<dyn Fn(&mut IngestTicketRequest)>,
            "source",
        ),
        (
            "handset source",
            Box::new(|t: &mut IngestTicketRequest| t.source = Source::Handset.into()),
            "source",
        ),
        (
            "no external id",
            Box::new(|t: &mut IngestTicketRequest| t.external_id = String::new()),
            "external_id",
        ),
        (
            "unknown region",
            Box::new(|t: &mut IngestTicketRequest| t.region_code = "999".into()),
            "region_code",
        ),
        (
            "bad phone",
            Box::new(|t: &mut IngestTicketRequest| t.caller_phone = "call me".into()),
            "caller_phone",
        ),
    ] {
        let mut bad = ticket("T-9", Source::WalkIn);
        edit(&mut bad);
        let status = gateway(&app)
            .ingest_ticket(authed(bad, &token))
            .await
            .expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}");
        assert!(
            status.message().starts_with(field),
            "{name}: {}",
            status.message()
        );
    }
    assert_eq!(count_cases(&db_of(&app).await).await, 3);
    app.stop().await.expect("clean stop");
}

async fn reporters_list_and_supplement_their_own_reports(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let mut ids = Vec::new();
    for k in 0..5 {
        let case = reports(&app)
            .submit_report(authed(
                report(
                    &uuid(),
                    "dispute.neighbor",
                    35.01 + f64::from(k) * 0.01,
                    119.05,
                ),
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        ids.push(case.id);
    }
    let other = app.token(OTHER_GRID_MEMBER, Role::GridMember);
    reports(&app)
        .submit_report(authed(
            report(&uuid(), "dispute.neighbor", 35.1, 119.15),
            &other,
        ))
        .await
        .unwrap();
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = reports(&app)
            .list_my_reports(authed(
                ListMyReportsRequest {
                    page: Some(PageRequest {
                        page_size: 2,
                        page_token: page_token.clone(),
                    }),
                },
                &token,
            ))
            .await
            .expect("page")
            .into_inner();
        listed.extend(page.cases.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(listed, ids, "their own, newest first, across pages");
    let answer = reports(&app)
        .add_supplement(authed(
            AddSupplementRequest {
                case_id: ids[0].clone(),
                text: "又发现新情况".into(),
                attachment_ids: vec![],
            },
            &token,
        ))
        .await
        .expect("supplemented")
        .into_inner();
    assert_eq!(answer.event.as_ref().unwrap().kind, "supplement");
    assert_eq!(answer.case.as_ref().unwrap().version, 2);
    let not_theirs = reports(&app)
        .add_supplement(authed(
            AddSupplementRequest {
                case_id: ids[0].clone(),
                text: "x".into(),
                attachment_ids: vec![],
            },
            &other,
        ))
        .await
        .expect_err("not theirs");
    assert_eq!(not_theirs.code(), Code::NotFound);
    let empty = reports(&app)
        .add_supplement(authed(
            AddSupplementRequest {
                case_id: ids[0].clone(),
                text: " ".into(),
                attachment_ids: vec![],
            },
            &token,
        ))
        .await
        .expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);
    let db = db_of(&app).await;
    assert_eq!(
        gridcase::service::audit::verify(&db, None)
            .await
            .unwrap()
            .broken,
        None
    );
    app.stop().await.expect("clean stop");
}

async fn the_audit_names_the_first_tampered_event(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let mut cases = Vec::new();
    for k in 0..3 {
        cases.push(
            reports(&app)
                .submit_report(authed(
                    report(
                        &uuid(),
                        "dispute.neighbor",
                        35.02 + f64::from(k) * 0.05,
                        119.05,
                    ),
                    &token,
                ))
                .await
                .unwrap()
                .into_inner()
                .case
                .unwrap(),
        );
    }
    let db = db_of(&app).await;
    let clean = gridcase::service::audit::verify(&db, None).await.unwrap();
    assert_eq!((clean.cases, clean.events, clean.broken), (3, 6, None));
    let target = &cases[1];
    let (_, events) = storage::cases::with_events(&db, &target.id)
        .await
        .unwrap()
        .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE case_events SET reason = 'edited' WHERE seq = {}",
        events[1].seq
    ))
    .await
    .unwrap();
    let broken = gridcase::service::audit::verify(&db, None)
        .await
        .unwrap()
        .broken
        .expect("found");
    assert!(broken.contains(&target.code), "{broken}");
    assert!(
        broken.contains(&format!("event {}", events[1].seq)),
        "{broken}"
    );
    assert!(broken.contains("altered"), "{broken}");
    // Removing the newest event is caught by the anchor on the case row.
    db.execute_unprepared(&format!(
        "DELETE FROM case_events WHERE seq = {}",
        events[1].seq
    ))
    .await
    .unwrap();
    let removed = gridcase::service::audit::verify(&db, Some(&target.id))
        .await
        .unwrap()
        .broken
        .expect("found");
    assert!(removed.contains("newest event"), "{removed}");
    app.stop().await.expect("clean stop");
}

/// On PostgreSQL the intake writer holds two connections of its own from batch to batch,
/// outside every pool: the one for a batch's read plans every statement for the table as it is
/// (a generic plan cached on a young table once scanned every case of a reporter per retry
/// probe), the one for its write plans each statement once; other connections keep the
/// default. SQLite shares one pool.
async fn intake_writers_hold_their_own_connections(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let shared = storage::connect(&db.url, 2).await.expect("connect");
    let writers = storage::IntakeWriters::connect(&db.url, &shared)
        .await
        .expect("connect writers");
    let show = |sql: &str| Statement::from_string(sea_orm::DbBackend::Postgres, sql);
    let text = |row: Option<sea_orm::QueryResult>| {
        row.expect("row")
            .try_get_by_index::<String>(0)
            .expect("a text value")
    };
    let pid = |row: Option<sea_orm::QueryResult>| {
        row.expect("row")
            .try_get_by_index::<i32>(0)
            .expect("a backend pid")
    };
    match (&backend, writers.session()) {
        (Backend::Sqlite, storage::WriterSession::Shared(_)) => {}
        (Backend::Postgres(_), storage::WriterSession::Postgres { reads, writes }) => {
            let mode = show("SHOW plan_cache_mode");
            assert_eq!(
                text(reads.query_one_raw(mode.clone()).await.expect("show")),
                "force_custom_plan"
            );
            assert_eq!(
                text(writes.query_one_raw(mode.clone()).await.expect("show")),
                "force_generic_plan"
            );
            assert_eq!(
                text(shared.query_one_raw(mode.clone()).await.expect("show")),
                "auto"
            );
            // Held, not pooled: the same server process answers every statement, and the
            // two connections are two processes.
            let backend_pid = show("SELECT pg_backend_pid()");
            let first = pid(reads.query_one_raw(backend_pid.clone()).await.expect("pid"));
            for _ in 0..3 {
                let again = pid(reads.query_one_raw(backend_pid.clone()).await.expect("pid"));
                assert_eq!(again, first, "the read connection is held");
            }
            let other = pid(writes
                .query_one_raw(backend_pid.clone())
                .await
                .expect("pid"));
            assert_ne!(other, first);
            assert_eq!(
                pid(writes
                    .query_one_raw(backend_pid.clone())
                    .await
                    .expect("pid")),
                other,
                "the write connection is held"
            );
            // The database refusing a statement leaves the connection in use; a connection
            // the server has dropped is replaced on the next statement.
            let refused = reads
                .execute_unprepared("SELECT 1/0")
                .await
                .expect_err("division by zero");
            assert!(
                refused.to_string().contains("division by zero"),
                "{refused}"
            );
            assert_eq!(
                pid(reads.query_one_raw(backend_pid.clone()).await.expect("pid")),
                first
            );
            shared
                .execute_unprepared(&format!("SELECT pg_terminate_backend({first})"))
                .await
                .expect("terminate");
            // The statement that finds the connection cut fails (the server may take a moment
            // to act on the signal); the next one connects afresh.
            let mut replaced = None;
            for _ in 0..50 {
                if let Ok(row) = reads.query_one_raw(backend_pid.clone()).await {
                    let now = pid(row);
                    if now != first {
                        replaced = Some(now);
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            let replaced = replaced.expect("a fresh connection after the old one was cut");
            assert_ne!(replaced, first);
            assert_eq!(
                text(reads.query_one_raw(mode.clone()).await.expect("show")),
                "force_custom_plan",
                "a fresh connection is set up like the first"
            );
        }
        (backend, session) => panic!("{backend:?} got {session:?}"),
    }
}

/// A report far from every grid, at a pole or on the antimeridian, costs what any report
/// costs: its duplicate search reads a bounded number of cells (a search around the south pole
/// once read about a million and held up the writer, and every handset behind it, for 15–46 s).
async fn reports_at_the_poles_and_the_antimeridian_cost_what_any_report_costs(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let gateway_token = app.token("gateway-12345", Role::Gateway);
    let deadline = std::time::Duration::from_secs(10);
    let places = [
        (-90.0, 0.0),
        (-89.9999, 0.0),
        (90.0, 180.0),
        (89.99, -179.9995),
        (0.0, 180.0),
        (0.0, -180.0),
        (-45.0, 179.99995),
    ];
    for (k, (lat, lon)) in places.into_iter().enumerate() {
        // Twice each: the second search finds the first case in its cells.
        let mut first: Option<String> = None;
        for _ in 0..2 {
            let stored = tokio::time::timeout(
                deadline,
                reports(&app).submit_report(authed(
                    report(&uuid(), "dispute.neighbor", lat, lon),
                    &token,
                )),
            )
            .await
            .unwrap_or_else(|_| panic!("({lat}, {lon}) answered within {deadline:?}"))
            .expect("stored")
            .into_inner()
            .case
            .unwrap();
            assert_eq!(
                stored.region_code, "371100",
                "({lat}, {lon}) waits in triage"
            );
            match &first {
                None => first = Some(stored.id),
                Some(id) => assert_eq!(&stored.possible_duplicate_of, id, "({lat}, {lon})"),
            }
        }
        let ticket = IngestTicketRequest {
            source: Source::Hotline12345.into(),
            external_id: format!("POLE-{k}"),
            category_code: "dispute.neighbor".into(),
            description: "极地来电".into(),
            location: Some(Location {
                lat,
                lon,
                coord_system: CoordSystem::Wgs84.into(),
                accuracy_m: 0.0,
            }),
            ..IngestTicketRequest::default()
        };
        tokio::time::timeout(
            deadline,
            gateway(&app).ingest_ticket(authed(ticket, &gateway_token)),
        )
        .await
        .unwrap_or_else(|_| panic!("ticket at ({lat}, {lon}) answered within {deadline:?}"))
        .expect("ingested");
    }
    // The second report at the antimeridian found the first across it.
    let metres = 6_371_008.8 * std::f64::consts::PI / 180.0;
    let east = reports(&app)
        .submit_report(authed(
            report(&uuid(), "city.litter", 10.0, 180.0 - 20.0 / metres),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let west = reports(&app)
        .submit_report(authed(
            report(&uuid(), "city.litter", 10.0, -180.0 + 20.0 / metres),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        west.possible_duplicate_of, east.id,
        "40 m apart across 180°"
    );
    assert_eq!(count_cases(&db_of(&app).await).await, 2 * 7 + 7 + 2);
    app.stop().await.expect("clean stop");
}

/// An upload that sends its header (and maybe a chunk) and is then cancelled, from many
/// clients at once, leaves no file anywhere, temporary or stored, and no row.
async fn cancelled_uploads_leave_nothing_behind(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let attachments_dir = app.settings.data_dir.join("attachments");
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let channel = app.channel.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40u64 {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                let header = UploadAttachmentRequest {
                    part: Some(Part::Header(AttachmentHeader {
                        content_type: "image/jpeg".into(),
                        size_bytes: 100,
                        file_name: "photo.jpg".into(),
                    })),
                };
                tx.send(header).await.unwrap();
                if (t + i) % 2 == 0 {
                    tx.send(UploadAttachmentRequest {
                        part: Some(Part::Chunk(vec![7; 50])),
                    })
                    .await
                    .unwrap();
                }
                let mut client = ReportServiceClient::new(channel.clone());
                let call = client.upload_attachment(authed(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                    &token,
                ));
                // Cancel at a different moment each time, from at once to a few milliseconds in.
                let wait = std::time::Duration::from_micros((t * 40 + i) * 97 % 4000);
                let outcome = tokio::time::timeout(wait, call).await;
                assert!(
                    !matches!(outcome, Ok(Ok(_))),
                    "an upload of 50 of 100 bytes is never stored"
                );
                drop(tx);
            }
        }));
    }
    for task in tasks {
        task.await.expect("uploads ran");
    }
    // The server notices each cancellation at its next chunk or at once; give it a moment.
    let mut left = files_under(&attachments_dir);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = files_under(&attachments_dir);
    }
    assert!(left.is_empty(), "files left behind: {left:?}");
    let db = db_of(&app).await;
    let rows: i64 = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM attachments",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(rows, 0);
    app.stop().await.expect("clean stop");
}

on_both_databases!(
    reports_at_the_poles_and_the_antimeridian_cost_what_any_report_costs,
    cancelled_uploads_leave_nothing_behind,
    intake_writers_hold_their_own_connections,
    a_report_becomes_one_registered_routed_case,
    a_retried_report_returns_the_same_case,
    concurrent_duplicates_make_one_case,
    reports_and_tickets_together_each_find_their_retry,
    a_report_outside_every_region_is_stored_for_triage,
    bad_reports_are_refused_naming_the_field_and_nothing_is_stored,
    attachments_stream_in_content_addressed_within_their_limits,
    possible_duplicates_are_flagged_never_merged,
    tickets_are_idempotent_per_source_and_external_id,
    reporters_list_and_supplement_their_own_reports,
    the_audit_names_the_first_tampered_event,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_command_reports_intact_and_broken_chains() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let case = reports(&app)
        .submit_report(authed(
            report(&uuid(), "dispute.neighbor", 35.1, 119.05),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let audit = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gridcase"))
            .env("GRIDCASE_DATABASE_URL", &app.db.url)
            .args(["audit", "verify"])
            .output()
            .expect("runs")
    };
    let ok = audit();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok: 1 cases, 2 events"));
    let db = db_of(&app).await;
    db.execute_unprepared("UPDATE case_events SET actor_sub = 'someone-else'")
        .await
        .unwrap();
    let broken = audit();
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains(&case.code) && stderr.contains("altered"),
        "{stderr}"
    );
    app.stop().await.expect("clean stop");
}

/// PostgreSQL: when the server ends every session of the service (a restart, an
/// administrator), the next report is still stored and acknowledged: the batch that finds the
/// writer's held connections cut is stored again on fresh ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_stored_after_the_writers_connections_are_cut() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token(GRID_MEMBER, Role::GridMember);
    let submit = |id: String| {
        let app = &app;
        let token = &token;
        async move {
            reports(app)
                .submit_report(authed(report(&id, "dispute.neighbor", 35.1, 119.05), token))
                .await
        }
    };
    let first = submit(uuid()).await.expect("first").into_inner();
    assert!(first.created);
    let db = db_of(&app).await;
    let others = "FROM pg_stat_activity WHERE datname = current_database() \
                  AND pid <> pg_backend_pid() AND backend_type = 'client backend'";
    let pids: Vec<i32> = db
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT pid {others}"),
        ))
        .await
        .expect("sessions")
        .into_iter()
        .map(|r| r.try_get_by_index(0).expect("pid"))
        .collect();
    assert!(pids.len() >= 2, "the writer's two and the pool's: {pids:?}");
    db.execute_unprepared(&format!("SELECT pg_terminate_backend(pid) {others}"))
        .await
        .expect("terminate");
    // Wait until the server has ended them all.
    let gone = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid IN ({})",
        pids.iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for _ in 0..100 {
        let left: i64 = db
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                gone.clone(),
            ))
            .await
            .expect("count")
            .expect("row")
            .try_get_by_index(0)
            .expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let id = uuid();
    let second = submit(id.clone())
        .await
        .expect("stored after the cut")
        .into_inner();
    assert!(second.created);
    let stored = second.case.expect("case");
    let again = submit(id).await.expect("retry").into_inner();
    assert!(!again.created);
    assert_eq!(again.case.expect("case").id, stored.id);
    assert_eq!(count_cases(&db).await, 2);
    app.stop().await.expect("clean stop");
}

/// A `gridcase serve` killed with SIGKILL in the middle of an upload leaves its temporary file;
/// the next start removes it before taking any upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_kill_9_is_swept_at_the_next_start() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let data_dir = tempfile::tempdir().unwrap();
    let tmp = data_dir.path().join("attachments").join("tmp");
    let port = free_port();
    let server = ServerProcess::start(&db.url, port, data_dir.path());
    let channel = connect(port).await;
    import_over(&channel, &small_bundle()).await;
    let token = mint(GRID_MEMBER, Role::GridMember);
    // Half an upload, held open.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(UploadAttachmentRequest {
        part: Some(Part::Header(AttachmentHeader {
            content_type: "image/jpeg".into(),
            size_bytes: 100,
            file_name: "photo.jpg".into(),
        })),
    })
    .await
    .unwrap();
    tx.send(UploadAttachmentRequest {
        part: Some(Part::Chunk(vec![7; 50])),
    })
    .await
    .unwrap();
    let upload = tokio::spawn(async move {
        ReportServiceClient::new(channel)
            .upload_attachment(authed(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                &token,
            ))
            .await
    });
    let mut orphans = Vec::new();
    for _ in 0..200 {
        orphans = files_under(&tmp);
        if !orphans.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(orphans.len(), 1, "the upload is under way");
    drop(server); // SIGKILL
    assert!(
        upload.await.unwrap().is_err(),
        "the upload died with the server"
    );
    drop(tx);
    assert_eq!(files_under(&tmp), orphans, "kill -9 leaves the file");
    let _server = ServerProcess::start(&db.url, port, data_dir.path());
    let _ = connect(port).await;
    assert!(
        files_under(&tmp).is_empty(),
        "swept at start: {:?}",
        files_under(&tmp)
    );
}

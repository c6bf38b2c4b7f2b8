//! The service as generic clients and operators see it: health, reflection, gRPC-Web, the
//! command line, bad configuration, graceful shutdown.

// Test code: a failed step should fail the test loudly, so expect() is the right tool here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{ListCategoriesRequest, directory_service_client::DirectoryServiceClient},
};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const SERVICES: [&str; 5] = [
    "gridcase.v1.CaseService",
    "gridcase.v1.DirectoryService",
    "gridcase.v1.GatewayService",
    "gridcase.v1.ReportService",
    "gridcase.v1.StatsService",
];

async fn health_answers_serving_without_a_token(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut health = HealthClient::new(app.channel.clone());
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health needs no token")
        .into_inner();
    assert_eq!(overall.status(), ServingStatus::Serving);
    for service in SERVICES {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("known service")
            .into_inner();
        assert_eq!(status.status(), ServingStatus::Serving, "{service}");
    }
    app.stop().await.expect("clean stop");
}

/// A stopping server tells a balancer watching any of its entries, the overall one included,
/// that it no longer serves, while its calls in flight finish.
async fn a_stopping_server_is_not_serving_for_every_service(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut health = HealthClient::new(app.channel.clone());
    let mut watches = Vec::new();
    for service in std::iter::once("").chain(SERVICES.iter().copied()) {
        let mut watch = health
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("watch")
            .into_inner();
        let first = watch.message().await.expect("first status").expect("one");
        assert_eq!(first.status(), ServingStatus::Serving, "{service:?}");
        watches.push((service, watch));
    }
    let stopping = tokio::spawn(app.stop());
    for (service, mut watch) in watches {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message())
            .await
            .unwrap_or_else(|_| panic!("{service:?}: no status within 5 s of the stop"));
        match next {
            Ok(Some(status)) => {
                assert_eq!(status.status(), ServingStatus::NotServing, "{service:?}");
            }
            other => panic!("{service:?}: the watch ended without NOT_SERVING: {other:?}"),
        }
    }
    stopping.await.expect("stop task").expect("clean stop");
}

async fn reflection_lists_all_five_services_without_a_token(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection needs no token")
        .into_inner();
    let response = responses.next().await.expect("one answer").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!(
            "expected a service list, got {:?}",
            response.message_response
        );
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in SERVICES {
        assert!(names.contains(&service), "{service} missing from {names:?}");
    }
    app.stop().await.expect("clean stop");
}

async fn grpc_web_clients_are_served_over_http1(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let token = app.token("ops-admin", Role::Admin);
    // A gRPC-Web frame: flag 0, length 0 (an empty ListCategoriesRequest).
    let body = [0u8, 0, 0, 0, 0];
    let request = format!(
        "POST /gridcase.v1.DirectoryService/ListCategories HTTP/1.1\r\nhost: {}\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        app.addr,
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream.write_all(&body).await.expect("write body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/grpc-web"), "{text}");
    // The trailers frame carries the status, and the categories come through.
    assert!(text.contains("grpc-status:0"), "{text}");
    assert!(text.contains("dispute.neighbor"), "{text}");
    app.stop().await.expect("clean stop");
}

async fn shutdown_lets_the_server_stop_cleanly(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let addr = app.addr;
    app.stop().await.expect("run_until_stopped returns Ok");
    // Nothing listens there any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

async fn replicas_starting_together_migrate_one_database_safely(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let migrate = || async {
        let conn = gridcase::storage::connect(&db.url, 2).await?;
        gridcase::storage::migrate(&conn).await
    };
    let results = futures_util::future::join_all((0..4).map(|_| migrate())).await;
    for result in results {
        result.expect("every replica's migration succeeds");
    }
    let conn = gridcase::storage::connect(&db.url, 1)
        .await
        .expect("connect");
    assert_eq!(
        gridcase::storage::directory::version(&conn)
            .await
            .expect("schema is there"),
        0
    );
}

on_both_databases!(
    replicas_starting_together_migrate_one_database_safely,
    health_answers_serving_without_a_token,
    a_stopping_server_is_not_serving_for_every_service,
    reflection_lists_all_five_services_without_a_token,
    grpc_web_clients_are_served_over_http1,
    shutdown_lets_the_server_stop_cleanly,
);

fn gridcase() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridcase"));
    for (k, _) in std::env::vars() {
        if k.starts_with("GRIDCASE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn a_bad_configuration_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("GRIDCASE_LISTEN", "not-an-address", "GRIDCASE_LISTEN"),
        (
            "GRIDCASE_DATABASE_URL",
            "mysql://localhost/x",
            "database_url",
        ),
        ("GRIDCASE_JWT_SECRET", "too-short", "GRIDCASE_JWT_SECRET"),
        ("GRIDCASE_SLA_TICK", "200ms", "sla_tick"),
        ("GRIDCASE_SLA_TICK", "soon", "GRIDCASE_SLA_TICK"),
    ];
    for (var, value, named) in cases {
        let out = gridcase()
            .current_dir(dir.path())
            .env(var, value)
            .arg("serve")
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{var}={value} should stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{var}: {stderr:?}");
        assert!(lines[0].contains(named), "{var}: {stderr:?}");
    }
    let missing = gridcase()
        .current_dir(dir.path())
        .args(["--config", "no-such-file.toml", "serve"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("no-such-file.toml"), "{stderr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_mints_a_token_the_server_accepts() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let out = gridcase()
        .env("GRIDCASE_JWT_SECRET", TEST_SECRET)
        .args([
            "token",
            "--sub",
            "ops-admin",
            "--role",
            "admin",
            "--ttl",
            "5m",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    DirectoryServiceClient::new(app.channel.clone())
        .list_categories(authed(ListCategoriesRequest {}, &token))
        .await
        .expect("the minted token is accepted");
    let refused = gridcase()
        .env("GRIDCASE_JWT_SECRET", TEST_SECRET)
        .args(["token", "--sub", "x", "--role", "root"])
        .output()
        .expect("runs");
    assert!(!refused.status.success(), "an unknown role is refused");
    app.stop().await.expect("clean stop");
}

#[test]
fn the_command_line_migrates_and_imports_a_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let migrated = gridcase()
        .env("GRIDCASE_DATABASE_URL", &url)
        .arg("migrate")
        .output()
        .expect("runs");
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let bundle = dir.path().join("small.geojson");
    std::fs::write(&bundle, serde_json::to_vec(&small_bundle()).expect("json")).expect("write");
    let imported = gridcase()
        .env("GRIDCASE_DATABASE_URL", &url)
        .args(["directory", "import"])
        .arg(&bundle)
        .output()
        .expect("runs");
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let stdout = String::from_utf8_lossy(&imported.stdout);
    assert!(stdout.contains("directory version 1"), "{stdout}");
    assert!(stdout.contains("regions         6 created"), "{stdout}");
    let mut bad = small_bundle();
    bad["features"][4]["properties"]["tier"] = serde_json::json!("block");
    std::fs::write(&bundle, serde_json::to_vec(&bad).expect("json")).expect("write");
    let refused = gridcase()
        .env("GRIDCASE_DATABASE_URL", &url)
        .args(["directory", "import"])
        .arg(&bundle)
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("feature 4 (371102001001001): unknown tier"),
        "{stderr}"
    );
}

/// PostgreSQL: with the network to the database cut, requests answer UNAVAILABLE (retry
/// later), not INTERNAL; once it is back, the same requests succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_answers_unavailable_and_recovers() {
    use gridcase::proto::v1::{
        ListCasesRequest, SubmitReportRequest, case_service_client::CaseServiceClient,
        report_service_client::ReportServiceClient,
    };
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let db = TestDb::new(&backend).await;
    let (proxy, url) = TcpProxy::in_front_of(&db).await;
    let app = TestApp::spawn_with(db, |s| s.database_url = url).await;
    import(&app, &small_bundle()).await;
    let reporter = app.token(GRID_MEMBER, Role::GridMember);
    let dispatcher = app.token(DISPATCHER, Role::Dispatcher);
    let report = || report_request("dispute.neighbor", "测试", 35.1, 119.05);
    let submit = |request: SubmitReportRequest| {
        let mut client = ReportServiceClient::new(app.channel.clone());
        let request = authed(request, &reporter);
        async move { client.submit_report(request).await }
    };
    let list = || {
        let mut client = CaseServiceClient::new(app.channel.clone());
        let request = authed(ListCasesRequest::default(), &dispatcher);
        async move { client.list_cases(request).await }
    };
    submit(report()).await.expect("stored before the cut");
    list().await.expect("listed before the cut");

    proxy.cut();
    let limit = std::time::Duration::from_secs(40);
    let refused = tokio::time::timeout(limit, submit(report()))
        .await
        .expect("an answer, not a hang")
        .expect_err("no database, no case");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let refused = tokio::time::timeout(limit, list())
        .await
        .expect("an answer, not a hang")
        .expect_err("no database, no list");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");

    proxy.restore();
    let again = report();
    let mut stored = None;
    for _ in 0..100 {
        match submit(again.clone()).await {
            Ok(answer) => {
                stored = Some(answer.into_inner());
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    assert!(stored.expect("stored once the database is back").created);
    assert_eq!(
        list().await.expect("listed again").into_inner().cases.len(),
        2
    );
    app.stop().await.expect("clean stop");
}

/// `gridcase watch` prints each event as a JSON line, and after the server is killed and
/// started again resumes after the last sequence it printed: every event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_command_follows_events_across_a_server_restart() {
    use std::io::BufRead;
    let db = TestDb::new(&Backend::Sqlite).await;
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = ServerProcess::start(&db.url, port, data_dir.path());
    let channel = connect(port).await;
    let token = mint;
    let report = |channel: tonic::transport::Channel, token: String| async move {
        use gridcase::proto::v1::report_service_client::ReportServiceClient;
        ReportServiceClient::new(channel)
            .submit_report(authed(
                report_request("dispute.neighbor", "测试", 35.1, 119.05),
                &token,
            ))
            .await
            .expect("stored");
    };
    import_over(&channel, &small_bundle()).await;
    for _ in 0..3 {
        report(channel.clone(), token(GRID_MEMBER, Role::GridMember)).await;
    }
    let mut watch = Command::new(env!("CARGO_BIN_EXE_gridcase"))
        .env("GRIDCASE_TOKEN", token(DISPATCHER, Role::Dispatcher))
        .args([
            "watch",
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--limit",
            "10",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    async fn read(
        lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
        got: &mut Vec<serde_json::Value>,
        n: usize,
    ) {
        while got.len() < n {
            let line = tokio::time::timeout(std::time::Duration::from_secs(15), lines.recv())
                .await
                .expect("a line")
                .expect("the watcher runs");
            got.push(serde_json::from_str(&line).expect("one JSON object a line"));
        }
    }
    let mut got: Vec<serde_json::Value> = Vec::new();
    read(&mut lines, &mut got, 6).await;
    // The server dies; another starts on the same database and port.
    drop(server);
    let _server = ServerProcess::start(&db.url, port, data_dir.path());
    let channel = connect(port).await;
    for _ in 0..2 {
        report(channel.clone(), token(GRID_MEMBER, Role::GridMember)).await;
    }
    read(&mut lines, &mut got, 10).await;
    assert!(watch.wait().unwrap().success(), "stops after --limit");
    let sequences: Vec<i64> = got
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<i64>>());
    assert_eq!(got[0]["kind"], "submitted");
    assert_eq!(got[1]["kind"], "registered");
    assert_eq!(got[1]["notify_units"][0], "371102001.center");
    assert_eq!(got[1]["details"]["unit_code"], "371102001.justice");
    assert_eq!(got[1]["to_status"], "registered");
}

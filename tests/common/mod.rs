//! The test harness: the real server on port 0 against a fresh database, driven by generated
//! tonic clients over a real socket.
//!
//! Every storage test runs twice, on SQLite and on PostgreSQL (see [`on_both_databases`]). The
//! PostgreSQL run needs `GRIDCASE_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a database of its own, dropped afterwards. Unset, the PostgreSQL run says so and
//! passes without running; set but unreachable, it fails.

#![allow(dead_code)]
// each test binary uses a different part of the harness
// A harness whose set-up fails should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use gridcase::{
    app::{Application, BuildOptions},
    auth::Minter,
    config::Settings,
    domain::Role,
    service::{
        sla::Supervisor,
        stats::StatsService,
        time::{ManualTime, TimeSource},
    },
};
use sea_orm::{ConnectionTrait, Database};
use secrecy::SecretString;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Request, transport::Channel};

pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const POSTGRES_VAR: &str = "GRIDCASE_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend if the suite is pointed at one.
    pub fn postgres() -> Option<Backend> {
        match std::env::var(POSTGRES_VAR) {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!("{POSTGRES_VAR} is not set: the PostgreSQL run of this test is skipped");
                None
            }
        }
    }
}

/// Defines, for each named `async fn(Backend)`, a `sqlite` and a `postgres` test.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(backend) = $crate::common::Backend::postgres() {
                        super::$name(backend).await
                    }
                }
            }
        )*
    };
}

/// A fresh database, removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("gridcase.db").display()
                );
                TestDb {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Backend::Postgres(admin_url) => {
                let name = format!("gridcase_t_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "{POSTGRES_VAR}={admin_url} is set but PostgreSQL is not reachable: {e}"
                        )
                    });
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                TestDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    postgres: Some((admin_url.clone(), name)),
                }
            }
        }
    }
}

impl TestDb {
    /// Another handle on an existing database (a second replica's view); drops nothing.
    pub fn shared(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
            _dir: None,
            postgres: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside a runtime: do the async clean-up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// Settings for a test server: port 0, its own data directory, the test secret.
pub fn test_settings(db_url: &str, data_dir: PathBuf) -> Settings {
    let mut settings = Settings {
        database_url: db_url.to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir,
        shutdown_grace: Duration::from_secs(5),
        db_max_connections: 8,
        ..Settings::default()
    };
    settings.jwt.secret = Some(SecretString::from(TEST_SECRET));
    // Tests drive one subject far faster than a person would; the limits have tests of their
    // own, which set them.
    settings.limits.turn_rates_off();
    settings
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub channel: Channel,
    pub minter: Minter,
    pub db: TestDb,
    pub settings: Settings,
    /// The SLA supervisor and statistics of this server, for tests that drive them by hand.
    pub supervisor: Arc<Supervisor>,
    pub stats: Arc<StatsService>,
    pub events: Arc<gridcase::service::events::EventHub>,
    /// The alert watcher, for tests that look at the cases received by hand.
    pub alerts: Arc<gridcase::service::alerts::Alerts>,
    _data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// The server with an empty directory.
    pub async fn spawn(backend: &Backend) -> TestApp {
        let db = TestDb::new(backend).await;
        TestApp::spawn_with(db, |_| {}).await
    }

    /// The server on `db`, with settings adjusted by `adjust`.
    pub async fn spawn_with(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::spawn_full(db, adjust, None).await
    }

    /// The server on `db`, its "now" read from `time`.
    pub async fn spawn_at(db: TestDb, time: Arc<ManualTime>) -> TestApp {
        TestApp::spawn_full(db, |_| {}, Some(time)).await
    }

    pub async fn spawn_full(
        db: TestDb,
        adjust: impl FnOnce(&mut Settings),
        time: Option<Arc<ManualTime>>,
    ) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut settings = test_settings(&db.url, data_dir.path().to_owned());
        adjust(&mut settings);
        let options = BuildOptions {
            demo: false,
            time: time.map(|t| t as Arc<dyn TimeSource>),
        };
        let app = Application::build(settings.clone(), options)
            .await
            .expect("application builds");
        let supervisor = app.supervisor();
        let stats = app.stats();
        let events = app.events();
        let alerts = app.alerts();
        let addr = app.local_addr().expect("bound");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        // Ready once the start-up catch-up has run, so tests that move time do not race it.
        tokio::time::timeout(Duration::from_secs(30), supervisor.caught_up())
            .await
            .expect("start-up catch-up within 30 s");
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect to the test server");
        let minter = Minter::new(&settings.jwt, settings.jwt.secret.as_ref()).expect("minter");
        TestApp {
            addr,
            channel,
            minter,
            db,
            settings,
            supervisor,
            stats,
            events,
            alerts,
            _data_dir: data_dir,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// A valid token for `sub` in `role`.
    pub fn token(&self, sub: &str, role: Role) -> String {
        self.minter
            .mint(sub, role, Duration::from_secs(600))
            .expect("mint")
    }

    /// Stops the server and waits for it, returning what `run_until_stopped` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.handle.take() {
            Some(h) => h.await.expect("server task"),
            None => Ok(()),
        }
    }
}

/// `message` with `authorization: Bearer {token}`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

/// The grid members, staff, dispatchers and supervisor of [`small_bundle`].
pub const GRID_MEMBER: &str = "gm-371102001001001";
pub const OTHER_GRID_MEMBER: &str = "gm-371102001001002";
pub const UNIT_STAFF: &str = "staff-371102.police";
pub const JUSTICE_STAFF: &str = "staff-371102001.justice";
pub const DISPATCHER: &str = "disp-371102";
pub const SUPERVISOR: &str = "sup-371100";
/// A dispatcher and a supervisor whose region is grid 02 only.
pub const GRID2_DISPATCHER: &str = "disp-371102001001002";
pub const GRID2_SUPERVISOR: &str = "sup-371102001001002";

/// The member with a record for each person role in [`small_bundle`]; service roles need none.
pub fn subject_for(role: Role) -> &'static str {
    match role {
        Role::GridMember => GRID_MEMBER,
        Role::UnitStaff => UNIT_STAFF,
        Role::Dispatcher => DISPATCHER,
        Role::Supervisor => SUPERVISOR,
        Role::Gateway => "gateway-12345",
        Role::Admin => "ops-admin",
    }
}

fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> serde_json::Value {
    serde_json::json!({
        "type": "Polygon",
        "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]
    })
}

fn feature(
    code: &str,
    name: &str,
    tier: &str,
    parent: Option<&str>,
    geometry: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "type": "Feature",
        "properties": {"code": code, "name": name, "tier": tier, "parent": parent},
        "geometry": geometry
    })
}

/// A tiny directory: one city, district, township and community (all the box 119.0–119.2 E,
/// 35.0–35.2 N) and two grids splitting it at 119.1 E; a district police unit and a township
/// justice office; one member per person role; three categories (community / justice,
/// district / fire, grid / urban management).
pub fn small_bundle() -> serde_json::Value {
    let all = || square(119.0, 35.0, 119.2, 35.2);
    serde_json::json!({
        "type": "FeatureCollection",
        "features": [
            feature("371100", "测试市", "city", None, all()),
            feature("371102", "测试区", "district", Some("371100"), all()),
            feature("371102001", "测试街道", "township", Some("371102"), all()),
            feature("371102001001", "测试社区", "community", Some("371102001"), all()),
            feature("371102001001001", "测试网格01", "grid", Some("371102001001"), square(119.0, 35.0, 119.1, 35.2)),
            feature("371102001001002", "测试网格02", "grid", Some("371102001001"), square(119.1, 35.0, 119.2, 35.2)),
        ],
        "units": [
            {"code": "371102.police", "name": "测试区公安", "kind": "police", "region": "371102"},
            {"code": "371102001.justice", "name": "测试街道司法所", "kind": "justice", "region": "371102001"}
        ],
        "members": [
            {"sub": GRID_MEMBER, "name": "网格员甲", "role": "grid_member", "grids": ["371102001001001"], "phone": "13800000001"},
            {"sub": OTHER_GRID_MEMBER, "name": "网格员乙", "role": "grid_member", "grids": ["371102001001002"], "phone": "13800000002"},
            {"sub": UNIT_STAFF, "name": "民警", "role": "unit_staff", "unit": "371102.police", "phone": "13800000003"},
            {"sub": JUSTICE_STAFF, "name": "司法所干部", "role": "unit_staff", "unit": "371102001.justice", "phone": "13800000006"},
            {"sub": DISPATCHER, "name": "调度员", "role": "dispatcher", "region": "371102", "phone": "13800000004"},
            {"sub": SUPERVISOR, "name": "督查员", "role": "supervisor", "region": "371100", "phone": "13800000005"},
            {"sub": GRID2_DISPATCHER, "name": "网格二调度", "role": "dispatcher", "region": "371102001001002", "phone": "13800000007"},
            {"sub": GRID2_SUPERVISOR, "name": "网格二督查", "role": "supervisor", "region": "371102001001002", "phone": "13800000008"}
        ],
        "categories": [
            {"code": "dispute.neighbor", "name": "邻里纠纷", "unit_kind": "justice", "handling_tier": "community", "severity": "general", "class": "dispute", "class_name": "矛盾纠纷"},
            {"code": "safety.fire_hazard", "name": "消防隐患", "unit_kind": "fire", "handling_tier": "district", "severity": "urgent", "class": "safety", "class_name": "安全隐患"},
            {"code": "city.litter", "name": "垃圾乱堆", "unit_kind": "urban_mgmt", "handling_tier": "grid", "severity": "general", "class": "city", "class_name": "城市管理"}
        ]
    })
}

/// Imports `bundle` through the real RPC as an admin.
pub async fn import(
    app: &TestApp,
    bundle: &serde_json::Value,
) -> gridcase::proto::v1::ImportDirectoryResponse {
    import_over(&app.channel, bundle).await
}

/// A token any test server accepts (they all run with the test secret), valid for 10 minutes:
/// for a [`ServerProcess`], which has no minter of its own.
pub fn mint(sub: &str, role: Role) -> String {
    let settings = test_settings("sqlite::memory:", PathBuf::new());
    Minter::new(&settings.jwt, settings.jwt.secret.as_ref())
        .expect("minter")
        .mint(sub, role, Duration::from_secs(600))
        .expect("mint")
}

/// Imports `bundle` as an admin through `channel` (a [`TestApp`]'s or a [`ServerProcess`]'s).
pub async fn import_over(
    channel: &Channel,
    bundle: &serde_json::Value,
) -> gridcase::proto::v1::ImportDirectoryResponse {
    use gridcase::proto::v1::{
        ImportDirectoryRequest, directory_service_client::DirectoryServiceClient,
    };
    let token = mint("ops-admin", Role::Admin);
    let mut client = DirectoryServiceClient::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    client
        .import_directory(authed(
            ImportDirectoryRequest {
                bundle: serde_json::to_vec(bundle).expect("json"),
                ..ImportDirectoryRequest::default()
            },
            &token,
        ))
        .await
        .expect("import succeeds")
        .into_inner()
}

/// The shipped Rizhao bundle.
pub fn rizhao_bytes() -> &'static [u8] {
    gridcase::demo::RIZHAO_BUNDLE
}

/// A report at a WGS-84 position with a fresh client report id, as a handset sends it.
pub fn report_request(
    category: &str,
    description: &str,
    lat: f64,
    lon: f64,
) -> gridcase::proto::v1::SubmitReportRequest {
    use gridcase::proto::v1::{CoordSystem, Location, SubmitReportRequest};
    SubmitReportRequest {
        client_report_id: uuid::Uuid::new_v4().to_string(),
        category_code: category.into(),
        description: description.into(),
        location: Some(Location {
            lat,
            lon,
            coord_system: CoordSystem::Wgs84.into(),
            accuracy_m: 0.0,
        }),
        ..SubmitReportRequest::default()
    }
}

/// A grid member's report at a WGS-84 position, through the real RPC; the stored case.
pub async fn submit(
    app: &TestApp,
    sub: &str,
    category: &str,
    lat: f64,
    lon: f64,
) -> gridcase::proto::v1::Case {
    use gridcase::proto::v1::report_service_client::ReportServiceClient;
    let token = app.token(sub, Role::GridMember);
    ReportServiceClient::new(app.channel.clone())
        .submit_report(authed(report_request(category, "测试", lat, lon), &token))
        .await
        .expect("stored")
        .into_inner()
        .case
        .expect("a case")
}

/// Waits (up to 10 s) until `app` serves a directory with categories: another replica's import
/// reaches it by polling.
pub async fn wait_for_directory(app: &TestApp) {
    use gridcase::proto::v1::{
        ListCategoriesRequest, directory_service_client::DirectoryServiceClient,
    };
    let token = app.token("ops-admin", Role::Admin);
    for _ in 0..100 {
        let categories = DirectoryServiceClient::new(app.channel.clone())
            .list_categories(authed(ListCategoriesRequest {}, &token))
            .await
            .expect("list categories")
            .into_inner()
            .categories;
        if !categories.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the directory did not reach the other replica within 10 s");
}

/// A wall-clock time in Asia/Shanghai, as UTC.
pub fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    gridcase::domain::calendar::SHANGHAI
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// A whole-second protobuf timestamp.
pub fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// A `gridcase serve` process of the real binary on `db_url`, listening on `port`.
pub struct ServerProcess(pub std::process::Child);

impl ServerProcess {
    pub fn start(db_url: &str, port: u16, data_dir: &std::path::Path) -> ServerProcess {
        ServerProcess::start_with(db_url, port, data_dir, &[("RUST_LOG", "warn")], None)
    }

    /// With more environment (later pairs win), and stderr (the log) into `log` when given.
    pub fn start_with(
        db_url: &str,
        port: u16,
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> ServerProcess {
        ServerProcess::start_wrapped(db_url, port, data_dir, env, log, &[])
    }

    /// As [`ServerProcess::start_with`], through `wrapper` (a command line that ends by running
    /// its arguments: `prlimit --fsize=N --`).
    pub fn start_wrapped(
        db_url: &str,
        port: u16,
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
        log: Option<&std::path::Path>,
        wrapper: &[&str],
    ) -> ServerProcess {
        let binary = env!("CARGO_BIN_EXE_gridcase");
        let mut cmd = match wrapper.split_first() {
            None => std::process::Command::new(binary),
            Some((program, args)) => {
                let mut cmd = std::process::Command::new(program);
                cmd.args(args).arg(binary);
                cmd
            }
        };
        for (k, _) in std::env::vars() {
            if k.starts_with("GRIDCASE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GRIDCASE_DATABASE_URL", db_url)
            .env("GRIDCASE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GRIDCASE_JWT_SECRET", TEST_SECRET)
            .env("GRIDCASE_DATA_DIR", data_dir)
            .env("GRIDCASE_SLA_TICK", "1s")
            .env("GRIDCASE_RATE_LIMITS", "off")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .arg("serve")
            .stdout(std::process::Stdio::null());
        if let Some(path) = log {
            cmd.stderr(std::fs::File::create(path).expect("a log file"));
        }
        let child = cmd.spawn().expect("start gridcase");
        ServerProcess(child)
    }

    /// SIGTERM, then waits for the process to exit (at most 15 s); its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success(), "SIGTERM to {pid}");
        for _ in 0..150 {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("gridcase did not exit within 15 s of SIGTERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn connect(port: u16) -> Channel {
    for _ in 0..200 {
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gridcase on port {port} did not start within 20 s");
}

/// A TCP proxy between gridcase and its database that a test can cut and restore, as a
/// network that drops does: cut, every connection through it ends and new ones are dropped
/// as soon as they arrive.
pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: String) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = watch.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        TcpProxy { addr, cut, task }
    }

    /// A PostgreSQL URL of the form `postgres://user@host:port/db` through this proxy; returns
    /// it and the `host:port` it points at.
    /// A proxy in front of `db`'s PostgreSQL server, and the database URL that goes through it.
    pub async fn in_front_of(db: &TestDb) -> (TcpProxy, String) {
        let (template, target) = TcpProxy::postgres_url(&db.url);
        let proxy = TcpProxy::start(target).await;
        let url = template.replace("{proxy}", &proxy.addr.to_string());
        (proxy, url)
    }

    pub fn postgres_url(url: &str) -> (String, String) {
        let (scheme_user, rest) = url.split_once('@').expect("postgres://user@host:port/db");
        let (host_port, db) = rest.split_once('/').expect("a database name");
        let target = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        (format!("{scheme_user}@{{proxy}}/{db}"), target)
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.task.abort();
    }
}

/// A case as a dispatcher of district 371102 sees it, with its events.
pub async fn case_with_events(
    app: &TestApp,
    id: &str,
) -> (
    gridcase::proto::v1::Case,
    Vec<gridcase::proto::v1::CaseEvent>,
) {
    use gridcase::proto::v1::{GetCaseRequest, case_service_client::CaseServiceClient};
    let token = app.token(DISPATCHER, Role::Dispatcher);
    let r = CaseServiceClient::new(app.channel.clone())
        .get_case(authed(
            GetCaseRequest {
                case_id: id.into(),
                include_events: true,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    (r.case.unwrap(), r.events)
}

/// The kinds of the SLA levels among `events`, in order.
pub fn sla_kinds(events: &[gridcase::proto::v1::CaseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind.starts_with("sla_") || e.kind == "red_card")
        .map(|e| e.kind.clone())
        .collect()
}

/// The ids of the overdue cases a dispatcher of district 371102 sees.
pub async fn overdue_ids(app: &TestApp) -> Vec<String> {
    use gridcase::proto::v1::{ListCasesRequest, case_service_client::CaseServiceClient};
    let token = app.token(DISPATCHER, Role::Dispatcher);
    CaseServiceClient::new(app.channel.clone())
        .list_cases(authed(
            ListCasesRequest {
                overdue_only: true,
                ..ListCasesRequest::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .cases
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Every case's event hash chain in the database at `url` verifies.
pub async fn audit_verifies(url: &str) {
    let db = gridcase::storage::connect(url, 1).await.unwrap();
    let report = gridcase::service::audit::verify(&db, None).await.unwrap();
    assert_eq!(report.broken, None);
}

/// A hotline ticket from `gateway`, in grid 01 (lead: the township justice office).
pub async fn hotline_ticket(app: &TestApp, gateway: &str) -> gridcase::proto::v1::Case {
    use gridcase::proto::v1::{
        CoordSystem, IngestTicketRequest, Location, Source,
        gateway_service_client::GatewayServiceClient,
    };
    GatewayServiceClient::new(app.channel.clone())
        .ingest_ticket(authed(
            IngestTicketRequest {
                source: Source::Hotline12345.into(),
                external_id: uuid::Uuid::new_v4().to_string(),
                category_code: "dispute.neighbor".into(),
                description: "邻里纠纷".into(),
                caller_phone: "13912345678".into(),
                location: Some(Location {
                    lat: 35.1,
                    lon: 119.05,
                    coord_system: CoordSystem::Wgs84.into(),
                    accuracy_m: 0.0,
                }),
                ..IngestTicketRequest::default()
            },
            &app.token(gateway, Role::Gateway),
        ))
        .await
        .expect("ingested")
        .into_inner()
        .case
        .unwrap()
}

/// `case` dispatched through `app` by the dispatcher with `token` to its routed lead unit.
pub async fn dispatch_routed(
    app: &TestApp,
    case: &gridcase::proto::v1::Case,
    token: &str,
) -> gridcase::proto::v1::Case {
    use gridcase::proto::v1::{DispatchCaseRequest, case_service_client::CaseServiceClient};
    CaseServiceClient::new(app.channel.clone())
        .dispatch_case(authed(
            DispatchCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
                unit_code: String::new(),
                reason: "分流".into(),
            },
            token,
        ))
        .await
        .expect("dispatched")
        .into_inner()
        .case
        .expect("a case")
}

/// `case` accepted through `app` by the lead unit's staff with `token`.
pub async fn accept(
    app: &TestApp,
    case: &gridcase::proto::v1::Case,
    token: &str,
) -> gridcase::proto::v1::Case {
    use gridcase::proto::v1::{AcceptCaseRequest, case_service_client::CaseServiceClient};
    CaseServiceClient::new(app.channel.clone())
        .accept_case(authed(
            AcceptCaseRequest {
                case_id: case.id.clone(),
                expected_version: case.version,
            },
            token,
        ))
        .await
        .expect("accepted")
        .into_inner()
        .case
        .expect("a case")
}

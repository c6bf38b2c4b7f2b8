//! Wiring: [`Application::build`] connects, migrates, loads the directory and binds;
//! [`Application::run_until_stopped`] serves until its shutdown future resolves.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::{Server, server::TcpIncoming};

use crate::{
    auth::{self, AuthLayer, Verifier, layer::AccessPolicy, limits::Limits},
    config::Settings,
    console::{ConsoleConfig, ConsoleLayer},
    grpc::{
        case::CaseApi, directory::DirectoryApi, gateway::GatewayApi, locate::FastLocate,
        report::ReportApi, stats::StatsApi, transport::CoalescedWrites,
    },
    monitoring,
    proto::{self, v1 as pb},
    service::{
        LiveDirectory,
        alerts::Alerts,
        attachments::Attachments,
        cases::{CaseQueries, WorkflowLimits},
        events::{EventHub, Wake},
        intake::Intake,
        rules::LiveRules,
        sla::{Scheduler, Supervisor},
        stats::StatsService,
        time::{SystemTime, TimeSource},
    },
    storage,
};

/// The health entry that says whether the working-time calendar has this year's (and, from
/// November, next year's) published schedule; NOT_SERVING means deadlines fall back to
/// Monday–Friday.
pub const CALENDAR_HEALTH: &str = "gridcase.calendar";

/// How often each replica checks whether the directory changed elsewhere.
pub const DIRECTORY_POLL: Duration = Duration::from_secs(2);

/// What `build` should do beyond the settings.
#[derive(Debug, Default, Clone)]
pub struct BuildOptions {
    /// Load the shipped Rizhao directory when the database has none.
    pub demo: bool,
    /// Where "now" comes from; the system clock unless a test drives its own.
    pub time: Option<Arc<dyn TimeSource>>,
}

pub struct Application {
    settings: Settings,
    listener: TcpListener,
    db: DatabaseConnection,
    writers: storage::intake::IntakeWriters,
    directory: Arc<LiveDirectory>,
    rules: Arc<LiveRules>,
    time: Arc<dyn TimeSource>,
    supervisor: Arc<Supervisor>,
    stats: Arc<StatsService>,
    alerts: Arc<Alerts>,
    verifier: Arc<Verifier>,
    /// Wakes the event feed after commits through this process.
    wake: Wake,
    events: Arc<EventHub>,
    limits: Arc<Limits>,
    /// Turns true when the server begins to stop: background tasks and event streams end.
    stop: (watch::Sender<bool>, watch::Receiver<bool>),
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listen", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(settings: Settings, options: BuildOptions) -> anyhow::Result<Application> {
        let secret = auth::resolve_secret(&settings.jwt, &settings.data_dir)?;
        let verifier = Arc::new(Verifier::new(&settings.jwt, secret.as_ref())?);
        let db = storage::connect(&settings.database_url, settings.db_max_connections).await?;
        storage::migrate(&db).await?;
        let writers = storage::intake::IntakeWriters::connect(&settings.database_url, &db).await?;
        let directory = Arc::new(LiveDirectory::load(db.clone(), settings.max_bundle_bytes).await?);
        if options.demo && directory.snapshot().is_empty() {
            let report = directory
                .import(crate::demo::RIZHAO_BUNDLE.to_vec(), None)
                .await
                .map_err(|e| anyhow::anyhow!("loading the demo directory: {e}"))?;
            tracing::info!(
                regions = report.regions.created,
                units = report.units.created,
                members = report.members.created,
                "demo directory (日照市) loaded"
            );
        }
        let time: Arc<dyn TimeSource> = options.time.unwrap_or_else(|| Arc::new(SystemTime));
        let rules = Arc::new(LiveRules::load(db.clone(), settings.office_hours.clone()).await?);
        let missing = rules.snapshot().missing_years(time.now());
        if !missing.is_empty() {
            tracing::warn!(
                years = ?missing,
                "NO HOLIDAY SCHEDULE for {missing:?}: working days there fall back to Monday–Friday; \
                 load the State Council's schedule with ImportCalendar"
            );
        }
        let wake = Wake::default();
        let supervisor = Arc::new(
            Supervisor::new(db.clone(), directory.clone(), time.clone()).with_wake(wake.clone()),
        );
        let stats = Arc::new(StatsService::new(
            db.clone(),
            directory.clone(),
            rules.clone(),
            time.clone(),
        ));
        let alerts = Arc::new(Alerts::new(
            db.clone(),
            directory.clone(),
            time.clone(),
            settings.alerts.clone(),
            wake.clone(),
        ));
        let limits = Arc::new(Limits::new(&settings.limits));
        let stop = watch::channel(false);
        let events = EventHub::start(
            db.clone(),
            directory.clone(),
            writers.postgres_options(),
            wake.clone(),
            stop.1.clone(),
            crate::service::events::BUFFER,
        )
        .await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let snapshot = directory.snapshot();
        tracing::info!(
            listen = %listener.local_addr()?,
            database = storage::backend_name(&db),
            directory_version = snapshot.version,
            grids = snapshot.grids().len(),
            "gridcase ready"
        );
        Ok(Application {
            settings,
            listener,
            db,
            writers,
            directory,
            rules,
            time,
            supervisor,
            stats,
            alerts,
            verifier,
            wake,
            events,
            limits,
            stop,
        })
    }

    /// The SLA supervisor, for tests that fire levels at a time of their choosing.
    pub fn supervisor(&self) -> Arc<Supervisor> {
        self.supervisor.clone()
    }

    /// The alert watcher, for tests that look at the cases received at a time of their choosing.
    pub fn alerts(&self) -> Arc<Alerts> {
        self.alerts.clone()
    }

    /// The event hub, for tests that watch what it reads.
    pub fn events(&self) -> Arc<EventHub> {
        self.events.clone()
    }

    /// The statistics service, for tests that run the monthly job by hand.
    pub fn stats(&self) -> Arc<StatsService> {
        self.stats.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serves until `shutdown` resolves, then lets in-flight calls finish for at most the
    /// configured grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = self.stop.clone();
        let watcher = tokio::spawn(
            self.directory
                .clone()
                .watch(DIRECTORY_POLL, stop_rx.clone()),
        );
        let rules_watcher = tokio::spawn(self.rules.clone().watch(DIRECTORY_POLL, stop_rx.clone()));
        let scheduler = Scheduler::start(
            self.supervisor.clone(),
            self.stats.clone(),
            self.alerts.clone(),
            self.settings.sla_tick,
        )
        .await?;

        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, tonic_health::ServingStatus::Serving).await;
        let metrics = match self.settings.metrics_listen {
            Some(listen) => {
                let listener = monitoring::bind(listen).await?;
                tracing::info!(listen = %listener.local_addr()?, "metrics on /metrics");
                let handle = monitoring::install()
                    .ok_or_else(|| anyhow::anyhow!("the metrics recorder cannot be set up"))?;
                Some(tokio::spawn(monitoring::serve(
                    listener,
                    handle,
                    stop_rx.clone(),
                )))
            }
            None => None,
        };
        let calendar_health = {
            let health = health.clone();
            let rules = self.rules.clone();
            let time = self.time.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut last: Option<Vec<i32>> = None;
                loop {
                    let missing = rules.snapshot().missing_years(time.now());
                    if last.as_ref() != Some(&missing) {
                        let status = if missing.is_empty() {
                            tonic_health::ServingStatus::Serving
                        } else {
                            tracing::warn!(years = ?missing, "no holiday schedule: Monday–Friday fallback");
                            tonic_health::ServingStatus::NotServing
                        };
                        health.set_service_status(CALENDAR_HEALTH, status).await;
                        last = Some(missing);
                    }
                    tokio::select! {
                        () = tokio::time::sleep(DIRECTORY_POLL) => {}
                        _ = stop.changed() => return,
                    }
                }
            })
        };
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let limit = self.settings.max_message_bytes;
        macro_rules! limited {
            ($server:expr) => {
                $server
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit)
            };
        }
        let intake = Arc::new(Intake::start(
            self.db.clone(),
            self.writers.clone(),
            self.directory.clone(),
            self.rules.clone(),
            self.time.clone(),
            self.wake.clone(),
        ));
        let events = self.events.clone();
        let attachments = Arc::new(Attachments::new(
            self.db.clone(),
            &self.settings.data_dir,
            self.settings.max_attachment_bytes,
        ));
        match attachments.sweep_temporary_files().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed what interrupted uploads left behind"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep the uploads' temporary directory"),
        }
        let sampler = tokio::spawn(sample(Sampled {
            db: self.db.clone(),
            health: health.clone(),
            directory: self.directory.clone(),
            rules: self.rules.clone(),
            events: self.events.clone(),
            limits: self.limits.clone(),
            intake: intake.clone(),
            time: self.time.clone(),
            max_connections: self.settings.db_max_connections,
            metrics: self.settings.metrics_listen.is_some(),
            stop: stop_rx.clone(),
        }));
        let auth = AuthLayer::new(
            self.verifier.clone(),
            self.directory.clone(),
            self.limits.clone(),
            AccessPolicy {
                log: self.settings.access_log,
                sample: self.settings.access_log_sample,
            },
        );
        // Each connection's small answers leave in shared writes (grpc::transport).
        let incoming = futures_util::TryStreamExt::map_ok(
            TcpIncoming::from(self.listener).with_nodelay(Some(true)),
            CoalescedWrites,
        );

        let signal = {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stopped| *stopped).await;
            }
        };
        let server = Server::builder()
            // Long-lived streams (WatchEvents) stay open through proxies and mobile networks:
            // a ping after this much quiet, and a dead peer noticed by its missing answer.
            .http2_keepalive_interval(Some(self.settings.keepalive))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .accept_http1(true)
            // Outermost: the console's page and assets are plain GETs, before gRPC-Web and auth.
            .layer(ConsoleLayer::new(ConsoleConfig {
                tile_url: self.settings.console_tile_url.clone(),
            }))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(auth)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            // Locate, every handset's most frequent call, answered from encoded parts kept
            // per grid (grpc::locate); the rest of the service as generated.
            .add_service(FastLocate::new(
                limited!(pb::directory_service_server::DirectoryServiceServer::new(
                    DirectoryApi::new(
                        self.directory.clone(),
                        self.rules.clone(),
                        self.time.clone(),
                    )
                )),
                self.directory.clone(),
                limit,
            ))
            .add_service(limited!(
                pb::report_service_server::ReportServiceServer::new(ReportApi::new(
                    intake.clone(),
                    attachments
                ))
            ))
            .add_service(limited!(pb::case_service_server::CaseServiceServer::new(
                CaseApi::new(Arc::new(
                    CaseQueries::new(
                        self.db.clone(),
                        self.directory.clone(),
                        self.rules.clone(),
                        self.time.clone(),
                        self.wake.clone(),
                    )
                    .with_limits(WorkflowLimits {
                        max_reporter_wait: self.settings.max_reporter_wait,
                        extensions: crate::domain::sla::ExtensionRules {
                            per_cycle: self.settings.extensions_per_cycle,
                            ceiling: self.settings.extension_ceiling,
                        },
                        return_window: self.settings.return_window,
                    })
                ))
            )))
            .add_service(limited!(
                pb::gateway_service_server::GatewayServiceServer::new(GatewayApi::new(
                    intake, events
                ))
            ))
            .add_service(limited!(pb::stats_service_server::StatsServiceServer::new(
                StatsApi::new(self.stats.clone(), self.alerts.clone())
            )))
            .serve_with_incoming_shutdown(incoming, signal);
        let mut server = std::pin::pin!(server);

        tokio::select! {
            result = &mut server => { result?; }
            () = shutdown => {
                tracing::info!(grace = ?self.settings.shutdown_grace, "shutting down: finishing in-flight calls");
                let _ = stop_tx.send(true);
                // Every service and the overall entry: a balancer asking about any of them
                // moves new calls elsewhere while these finish.
                set_health(&health, tonic_health::ServingStatus::NotServing).await;
                match tokio::time::timeout(self.settings.shutdown_grace, &mut server).await {
                    Ok(result) => result?,
                    Err(_) => tracing::warn!("grace period over: dropping the calls still running"),
                }
            }
        }
        let _ = stop_tx.send(true);
        scheduler.shutdown().await;
        // A scan under way finishes its transaction before the process lets go of the database.
        self.supervisor.idle().await;
        self.alerts.idle().await;
        let _ = sampler.await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        let _ = watcher.await;
        let _ = rules_watcher.await;
        let _ = calendar_health.await;
        self.db.clone().close().await.ok();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// Every service's health entry (not the calendar's, which says something else).
async fn set_health(
    health: &tonic_health::server::HealthReporter,
    status: tonic_health::ServingStatus,
) {
    for name in [
        "",
        pb::directory_service_server::SERVICE_NAME,
        pb::report_service_server::SERVICE_NAME,
        pb::case_service_server::SERVICE_NAME,
        pb::gateway_service_server::SERVICE_NAME,
        pb::stats_service_server::SERVICE_NAME,
    ] {
        health.set_service_status(name, status).await;
    }
}

/// What the sampler reads.
struct Sampled {
    db: DatabaseConnection,
    health: tonic_health::server::HealthReporter,
    directory: Arc<LiveDirectory>,
    rules: Arc<LiveRules>,
    events: Arc<EventHub>,
    limits: Arc<Limits>,
    intake: Arc<Intake>,
    time: Arc<dyn TimeSource>,
    max_connections: u32,
    metrics: bool,
    stop: watch::Receiver<bool>,
}

/// Every [`monitoring::SAMPLE_EVERY`]: checks the database (health NOT_SERVING while it does
/// not answer, SERVING again once it does) and, with metrics on, sets the gauges.
async fn sample(mut s: Sampled) {
    let mut up = true;
    let mut tick = tokio::time::interval(monitoring::SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = s.stop.wait_for(|stopped| *stopped) => return,
            _ = tick.tick() => {}
        }
        let answered = tokio::time::timeout(monitoring::SAMPLE_EVERY, s.db.ping())
            .await
            .map_err(|_| "no answer within 2 s".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match (&answered, up) {
            (Err(e), true) => {
                tracing::error!(error = %e, "the database does not answer: health NOT_SERVING");
                set_health(&s.health, tonic_health::ServingStatus::NotServing).await;
                up = false;
            }
            (Ok(()), false) => {
                tracing::info!("the database answers again: health SERVING");
                set_health(&s.health, tonic_health::ServingStatus::Serving).await;
                up = true;
            }
            _ => {}
        }
        if !s.metrics {
            continue;
        }
        metrics::gauge!("gridcase_database_up").set(if up { 1.0 } else { 0.0 });
        metrics::gauge!("gridcase_rpc_in_flight").set(s.limits.in_flight() as f64);
        metrics::gauge!("gridcase_intake_queue_depth").set(s.intake.queued() as f64);
        metrics::gauge!("gridcase_event_streams").set(s.events.followers() as f64);
        metrics::gauge!("gridcase_directory_version").set(s.directory.snapshot().version as f64);
        metrics::gauge!("gridcase_rules_version").set(s.rules.snapshot().version as f64);
        let (in_use, idle) = storage::pool_use(&s.db);
        metrics::gauge!("gridcase_db_pool_connections", "state" => "in_use").set(in_use as f64);
        metrics::gauge!("gridcase_db_pool_connections", "state" => "idle").set(idle as f64);
        metrics::gauge!("gridcase_db_pool_connections", "state" => "max")
            .set(f64::from(s.max_connections));
        if !up {
            continue;
        }
        let now = s.time.now();
        match storage::sla::backlog(&s.db, now).await {
            Ok((due, oldest)) => {
                metrics::gauge!("gridcase_sla_levels_due").set(due as f64);
                metrics::gauge!("gridcase_sla_oldest_due_seconds").set(
                    oldest.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1e3),
                );
            }
            Err(e) => tracing::debug!(error = %e, "sampling the SLA backlog"),
        }
        match storage::cases::last_event_seq(&s.db).await {
            Ok(head) => metrics::gauge!("gridcase_event_feed_lag")
                .set((head - s.events.tail()).max(0) as f64),
            Err(e) => tracing::debug!(error = %e, "sampling the event head"),
        }
    }
}

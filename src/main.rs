//! The `gridcase` command: serve, migrate, import a directory, follow events, export CSV, mint a
//! token.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use chrono::Datelike;
use clap::{Parser, Subcommand};
use gridcase::{
    app::{self, Application, BuildOptions},
    auth::{self, Minter},
    config::{LogFormat, Settings},
    domain::{
        Role,
        calendar::{SHANGHAI, SlaDuration},
    },
    service::{
        LiveDirectory,
        rules::{CalendarFormat, LiveRules},
    },
    storage, telemetry,
};

#[derive(Parser)]
#[command(
    name = "gridcase",
    version,
    about = "Grid-based social governance backend"
)]
struct Cli {
    /// A TOML settings file; GRIDCASE_* environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC service (migrations are applied first).
    Serve {
        /// Load the shipped 日照市 demo directory if the database has none.
        #[arg(long)]
        demo: bool,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Directory administration.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// The working-time calendar the SLA clocks run on.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// Check the hash chains of the case event log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Follow WatchEvents: one JSON object a line; resumes after a dropped connection from the
    /// last sequence printed.
    Watch {
        /// The token to follow with.
        #[arg(long, env = "GRIDCASE_TOKEN", hide_env_values = true)]
        token: String,
        /// Any replica, e.g. http://127.0.0.1:50051 (default: the configured listen address).
        #[arg(long)]
        target: Option<String>,
        /// Resume after this sequence (0: from the start).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Only events of this kind (repeatable).
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Only cases in this region's subtree.
        #[arg(long, default_value = "")]
        region: String,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Export cases or statistics as CSV (UTF-8 with a BOM, for Excel) through ExportCases or
    /// ExportStats, within the token's scope.
    Export {
        /// The token to export with.
        #[arg(long, env = "GRIDCASE_TOKEN", hide_env_values = true, global = true)]
        token: Option<String>,
        /// Any replica, e.g. http://127.0.0.1:50051 (default: the configured listen address).
        #[arg(long, global = true)]
        target: Option<String>,
        /// The file to write (whole or not at all: written as FILE.part and renamed at the
        /// end); standard output without it.
        #[arg(long, short, global = true)]
        out: Option<PathBuf>,
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Mint a token with the configured key, for operators and tests.
    Token {
        #[arg(long)]
        sub: String,
        /// grid_member, unit_staff, dispatcher, supervisor, gateway or admin.
        #[arg(long)]
        role: Role,
        /// How long the token is valid, e.g. 12h, 30m, 7d.
        #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// The cases ListCases would list with these filters, newest first.
    Cases {
        /// Only cases in this status (repeatable): registered, dispatched, in_progress, …
        #[arg(long = "status")]
        statuses: Vec<String>,
        /// Only cases in this region's subtree.
        #[arg(long, default_value = "")]
        region: String,
        /// Only cases this unit leads or assists.
        #[arg(long, default_value = "")]
        unit: String,
        /// Only cases of this category item.
        #[arg(long, default_value = "")]
        category: String,
        /// Received at or after: RFC 3339, or a day (2026-11-01, 00:00 Beijing time).
        #[arg(long)]
        from: Option<String>,
        /// Received before: RFC 3339, or a day.
        #[arg(long)]
        to: Option<String>,
        /// Only cases with a running SLA clock past its due time.
        #[arg(long)]
        overdue_only: bool,
    },
    /// A period's figures, one row per unit (or per region one tier down), as RankUnits ranks
    /// them.
    Stats {
        /// A month 2026-11, a quarter 2026-Q4 or a year 2026.
        #[arg(long)]
        period: String,
        /// The region whose units are listed (default: the caller's own).
        #[arg(long, default_value = "")]
        region: String,
        /// The regions one tier below instead of the units.
        #[arg(long)]
        regions: bool,
        /// The figure to rank by: on_time_rate, satisfaction_rate, resolution_rate, overdue.
        #[arg(long, default_value = "on_time_rate")]
        figure: String,
    },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Print when a clock started at START with DURATION falls due (RFC 3339, +08:00), by the
    /// calendar the service uses (shipped and imported schedules, overrides) and the configured
    /// office hours.
    Due {
        /// RFC 3339, e.g. 2025-09-26T10:00:00+08:00.
        start: String,
        /// 15m, 1h, 24h, 7wd (working days: from the day after START, due at 24:00) or 4wh
        /// (working hours: office hours of working days, from START).
        duration: String,
    },
    /// Load a year's schedule (holiday-cn JSON, or ICS) into the database.
    Import {
        file: PathBuf,
        /// json (holiday-cn) or ics; by default from the file's extension.
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify every case's event chain (or one case's) and name the first broken link.
    Verify {
        /// Only this case (its id).
        #[arg(long)]
        case: Option<String>,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Import a directory bundle (GeoJSON FeatureCollection) in one transaction.
    Import {
        file: PathBuf,
        /// The bundle is this region's whole subtree: retire the regions, units and members
        /// the directory holds there that the bundle no longer lists.
        #[arg(long, value_name = "REGION_CODE")]
        retire_unlisted_under: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gridcase: {e}");
            return ExitCode::from(2);
        }
    };
    let format = if cli.log_json {
        LogFormat::Json
    } else {
        settings.log_format
    };
    telemetry::init(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gridcase: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gridcase: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { demo } => {
            let app = Application::build(
                settings,
                BuildOptions {
                    demo,
                    ..BuildOptions::default()
                },
            )
            .await?;
            app.run_until_stopped(app::shutdown_signal()).await
        }
        Command::Migrate => {
            let db = storage::connect(&settings.database_url, 2).await?;
            storage::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Directory {
            command:
                DirectoryCommand::Import {
                    file,
                    retire_unlisted_under,
                },
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let db = storage::connect(&settings.database_url, 4).await?;
            storage::migrate(&db).await?;
            let directory = LiveDirectory::load(db, settings.max_bundle_bytes).await?;
            let r = directory
                .import(bytes, retire_unlisted_under)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "imported {}: directory version {}",
                file.display(),
                r.version
            );
            for (name, c) in [
                ("regions", r.regions),
                ("units", r.units),
                ("members", r.members),
                ("categories", r.categories),
            ] {
                println!(
                    "  {name:<10} {:>6} created {:>6} updated {:>6} unchanged {:>6} retired",
                    c.created, c.updated, c.unchanged, c.retired
                );
            }
            Ok(())
        }
        Command::Calendar {
            command: CalendarCommand::Due { start, duration },
        } => {
            let start = chrono::DateTime::parse_from_rfc3339(&start)
                .map_err(|e| anyhow::anyhow!("START {start:?} is not RFC 3339: {e}"))?
                .with_timezone(&chrono::Utc);
            let duration: SlaDuration = duration
                .parse()
                .map_err(|e| anyhow::anyhow!("DURATION {duration:?}: {e}"))?;
            let db = storage::connect(&settings.database_url, 2).await?;
            storage::migrate(&db).await?;
            let rules = LiveRules::load(db, settings.office_hours.clone())
                .await?
                .snapshot();
            let due = rules.calendar.due(start, duration);
            let shanghai = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&SHANGHAI);
            for year in shanghai(start).year()..=shanghai(due).year() {
                if !rules.calendar.has_data(year) {
                    eprintln!(
                        "warning: no holiday schedule for {year}: Monday–Friday assumed; load it with `gridcase calendar import`"
                    );
                }
            }
            println!("{}", shanghai(due).to_rfc3339());
            Ok(())
        }
        Command::Calendar {
            command: CalendarCommand::Import { file, format },
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let format = match format
                .as_deref()
                .or_else(|| file.extension().and_then(|e| e.to_str()))
            {
                Some("json") => CalendarFormat::HolidayCnJson,
                Some("ics") => CalendarFormat::Ics,
                other => anyhow::bail!("format {other:?}: use --format json or --format ics"),
            };
            let db = storage::connect(&settings.database_url, 2).await?;
            storage::migrate(&db).await?;
            let rules = LiveRules::load(db, settings.office_hours.clone()).await?;
            let (years, days) = rules
                .import_calendar(format, &bytes, chrono::Utc::now())
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("imported {}: years {years:?}, {days} days", file.display());
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { case },
        } => {
            let db = storage::connect(&settings.database_url, 2).await?;
            storage::migrate(&db).await?;
            let report = gridcase::service::audit::verify(&db, case.as_deref()).await?;
            match report.broken {
                None => {
                    println!(
                        "ok: {} cases, {} events, every chain intact",
                        report.cases, report.events
                    );
                    Ok(())
                }
                Some(broken) => anyhow::bail!("broken chain: {broken}"),
            }
        }
        Command::Watch {
            token,
            target,
            after,
            kinds,
            region,
            limit,
        } => {
            let watch = gridcase::watch::Watch {
                target: target.unwrap_or_else(|| format!("http://{}", settings.listen)),
                token,
                after,
                kinds,
                region_code: region,
                limit,
            };
            gridcase::watch::run(watch, &mut std::io::stdout().lock()).await?;
            Ok(())
        }
        Command::Export {
            token,
            target,
            out,
            command,
        } => {
            let to = gridcase::export::Target {
                target: target.unwrap_or_else(|| format!("http://{}", settings.listen)),
                token: token.ok_or_else(|| {
                    anyhow::anyhow!("give a token with --token or GRIDCASE_TOKEN")
                })?,
                out: out.clone(),
            };
            let written = match command {
                ExportCommand::Cases {
                    statuses,
                    region,
                    unit,
                    category,
                    from,
                    to: until,
                    overdue_only,
                } => {
                    use gridcase::export::{case_status, time_flag};
                    let request = gridcase::proto::v1::ExportCasesRequest {
                        statuses: statuses
                            .iter()
                            .map(|s| case_status(s))
                            .collect::<Result<_, _>>()?,
                        region_code: region,
                        unit_code: unit,
                        category_code: category,
                        overdue_only,
                        received_from: from.map(|t| time_flag("--from", &t)).transpose()?,
                        received_to: until.map(|t| time_flag("--to", &t)).transpose()?,
                    };
                    gridcase::export::cases(&to, request).await?
                }
                ExportCommand::Stats {
                    period,
                    region,
                    regions,
                    figure,
                } => {
                    let request = gridcase::proto::v1::ExportStatsRequest {
                        region_code: region,
                        period,
                        figure: gridcase::export::rank_figure(&figure)?,
                        regions,
                    };
                    gridcase::export::stats(&to, request).await?
                }
            };
            if let Some(out) = out {
                eprintln!(
                    "exported {} rows ({} bytes) to {}",
                    written.rows,
                    written.bytes,
                    out.display()
                );
            }
            Ok(())
        }
        Command::Token { sub, role, ttl } => {
            let secret = auth::resolve_secret(&settings.jwt, &settings.data_dir)?;
            let minter = Minter::new(&settings.jwt, secret.as_ref())?;
            println!("{}", minter.mint(&sub, role, ttl)?);
            Ok(())
        }
    }
}

//! The `gridcase` command: serve, migrate, import a directory, mint a token.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use gridcase::{
    app::{self, Application, BuildOptions},
    auth::{self, Minter},
    config::{LogFormat, Settings},
    domain::Role,
    service::LiveDirectory,
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
    /// Check the hash chains of the case event log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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
    Import { file: PathBuf },
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
            let app = Application::build(settings, BuildOptions { demo }).await?;
            app.run_until_stopped(app::shutdown_signal()).await
        }
        Command::Migrate => {
            let db = storage::connect(&settings.database_url, 2).await?;
            storage::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Directory {
            command: DirectoryCommand::Import { file },
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let db = storage::connect(&settings.database_url, 4).await?;
            storage::migrate(&db).await?;
            let directory = LiveDirectory::load(db, settings.max_bundle_bytes).await?;
            let r = directory
                .import(bytes)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "imported {}: directory version {}\n  regions    {:>6} created {:>6} updated {:>6} unchanged\n  units      {:>6} created {:>6} updated {:>6} unchanged\n  members    {:>6} created {:>6} updated {:>6} unchanged\n  categories {:>6} created {:>6} updated {:>6} unchanged",
                file.display(),
                r.version,
                r.regions.created,
                r.regions.updated,
                r.regions.unchanged,
                r.units.created,
                r.units.updated,
                r.units.unchanged,
                r.members.created,
                r.members.updated,
                r.members.unchanged,
                r.categories.created,
                r.categories.updated,
                r.categories.unchanged,
            );
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
        Command::Token { sub, role, ttl } => {
            let secret = auth::resolve_secret(&settings.jwt, &settings.data_dir)?;
            let minter = Minter::new(&settings.jwt, secret.as_ref())?;
            println!("{}", minter.mint(&sub, role, ttl)?);
            Ok(())
        }
    }
}

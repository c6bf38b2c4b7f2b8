//! Storage: the sea-orm connection, SQLite or PostgreSQL, and the schema migrations.
//!
//! Everything durable lives here; the rest of the service holds only caches rebuilt from it.

pub mod cases;
pub mod directory;
pub mod entities;
pub mod rules;
pub mod sla;
pub mod stats;

use std::time::Duration;

use gridcase_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::config::redact_url;

/// A storage failure with the context of what was being done; logged, never sent to a client.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error("migrations failed: {0}")]
    Migrate(#[source] sea_orm::DbErr),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Opens the pool. SQLite runs in WAL mode with full fsync so an acknowledged write survives a
/// power cut; a busy timeout turns writer contention into waiting instead of errors.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, StorageError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    // Several processes opening one new SQLite file at once race to switch it to WAL, and the
    // loser is told "database is locked" without the busy timeout being consulted: try again.
    let mut attempt = 0;
    loop {
        match Database::connect(options.clone()).await {
            Ok(db) => return Ok(db),
            Err(source) if attempt < 50 && is_sqlite_busy(&source) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => {
                return Err(StorageError::Connect {
                    url: redact_url(url),
                    source,
                });
            }
        }
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), the primary result codes of a lock held elsewhere.
fn is_sqlite_busy(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error as SqlxError};
    let (sea_orm::DbErr::Conn(RuntimeErr::SqlxError(inner))
    | sea_orm::DbErr::Exec(RuntimeErr::SqlxError(inner))
    | sea_orm::DbErr::Query(RuntimeErr::SqlxError(inner))) = e
    else {
        return false;
    };
    match inner.as_ref() {
        SqlxError::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 5 || c & 0xff == 6),
        _ => false,
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so concurrent writers wait their turn (busy timeout) instead of failing
/// when a read lock cannot be upgraded; PostgreSQL needs nothing special.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Any fixed number: the advisory lock that serialises replicas migrating one database.
const MIGRATION_LOCK: i64 = 0x6772_6964_6361_7365; // "gridcase"

/// Brings the schema up to date; safe to run on every start and from several replicas at once:
/// on PostgreSQL the migrations run in one transaction under an advisory lock, so a second
/// replica waits and then finds nothing left to do; on SQLite the immediate transaction does the
/// same.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StorageError> {
    let txn = begin_write(db).await.map_err(StorageError::Migrate)?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await
            .map_err(StorageError::Migrate)?;
    }
    Migrator::up(&txn, None)
        .await
        .map_err(StorageError::Migrate)?;
    txn.commit().await.map_err(StorageError::Migrate)
}

pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres => "postgres",
        _ => "other",
    }
}

/// `$1, $2 …` placeholders for PostgreSQL, `?` for SQLite (each used once, in order).
pub(crate) fn sql(backend: DbBackend, text: &str, values: Vec<sea_orm::Value>) -> Statement {
    let text = if backend == DbBackend::Sqlite {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                out.push('?');
            } else {
                out.push(c);
            }
        }
        out
    } else {
        text.to_owned()
    };
    Statement::from_sql_and_values(backend, text, values)
}

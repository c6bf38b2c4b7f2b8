//! Storage: the sea-orm connection, SQLite or PostgreSQL, and the schema migrations.
//!
//! Everything durable lives here; the rest of the service holds only caches rebuilt from it.

pub mod alerts;
pub mod cases;
pub mod directory;
pub mod entities;
mod error;
pub mod held;
pub mod intake;
pub mod rules;
pub mod sla;
pub mod stats;

use std::time::Duration;

use gridcase_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

pub use error::StorageError;
pub use intake::{IntakeWriters, WriterSession};

/// Opens the pool. SQLite runs in WAL mode with full fsync so an acknowledged write survives a
/// power cut; a busy timeout turns writer contention into waiting instead of errors.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, StorageError> {
    open(options(url, max_connections), url).await
}

fn options(url: &str, max_connections: u32) -> ConnectOptions {
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
    options
}

async fn open(options: ConnectOptions, url: &str) -> Result<DatabaseConnection, StorageError> {
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
                return Err(StorageError::during(
                    format!("cannot connect to {}", redact_url(url)),
                    source,
                ));
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
    let failed = |e| StorageError::during("migrations failed", e);
    let txn = begin_write(db).await.map_err(failed)?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await
            .map_err(failed)?;
    }
    Migrator::up(&txn, None).await.map_err(failed)?;
    txn.commit().await.map_err(failed)
}

/// The pool's connections in use and idle now.
pub fn pool_use(db: &DatabaseConnection) -> (u32, usize) {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    (
        size.saturating_sub(u32::try_from(idle).unwrap_or(u32::MAX)),
        idle,
    )
}

pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres => "postgres",
        _ => "other",
    }
}

/// Inserts rows of one table as multi-row `INSERT`s in chunks of powers of two (SQLite, where
/// a statement costs microseconds; PostgreSQL's intake takes [`TableJson`]). Every row must set
/// the same columns.
pub(crate) async fn insert_rows<A>(
    txn: &impl ConnectionTrait,
    rows: Vec<A>,
) -> Result<(), sea_orm::DbErr>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    for chunk in chunked(rows, 32) {
        <A::Entity as sea_orm::EntityTrait>::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Rows of one table as one JSON array, for PostgreSQL's `json_populate_recordset`: a batch
/// of any size is one parameter of a statement whose text never changes (prepared once per
/// connection), with no per-row parameter binding. The text is written directly, without a
/// JSON tree in between. PostgreSQL reads it as `json`, not `jsonb`: the rows are read once,
/// so sorting every object's keys into a `jsonb` value first is wasted (20–25 % of the time
/// `jsonb_populate_recordset` took over a batch's cases and events, measured in
/// BENCHMARKS.md "Eighth session").
pub(crate) struct TableJson {
    table: String,
    /// The column names, each quoted.
    columns: Vec<String>,
    /// `[{…},{…}`: the closing bracket comes with [`TableJson::rows_text`].
    text: Vec<u8>,
    count: usize,
}

impl TableJson {
    /// `None` for no rows.
    pub(crate) fn of<A: sea_orm::ActiveModelTrait>(
        rows: &[A],
    ) -> Result<Option<TableJson>, sea_orm::DbErr> {
        use sea_orm::{EntityName, EntityTrait, IdenStatic, Iterable};
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
            .filter(|c| !first.get(*c).is_not_set())
            .collect();
        let mut text = Vec::with_capacity(rows.len() * columns.len() * 24 + 2);
        text.push(b'[');
        for (k, row) in rows.iter().enumerate() {
            text.extend_from_slice(if k == 0 { b"{" } else { b",{" });
            for (j, c) in columns.iter().enumerate() {
                if j > 0 {
                    text.push(b',');
                }
                let value = row.get(*c).into_value().ok_or_else(|| {
                    sea_orm::DbErr::Custom(format!("a row without column {}", c.as_str()))
                })?;
                write_json(&mut text, &c.as_str())?;
                text.push(b':');
                write_value(&mut text, &value)?;
            }
            text.push(b'}');
        }
        Ok(Some(TableJson {
            table: A::Entity::default().table_name().to_owned(),
            columns: columns
                .iter()
                .map(|c| format!("\"{}\"", c.as_str()))
                .collect(),
            text,
            count: rows.len(),
        }))
    }

    fn rows_text(mut self) -> String {
        self.text.push(b']');
        // Only serde_json wrote into it: valid UTF-8.
        String::from_utf8(self.text).unwrap_or_default()
    }
}

/// Inserts rows into several tables, and numbered events, as one PostgreSQL statement: one
/// round trip, and on a connection outside a transaction it commits on its own. Each table is
/// a data-modifying `WITH` part, and PostgreSQL runs every such part.
///
/// `events` rows hold offsets from 0 in `seq`: the statement reserves as many numbers from the
/// `events` sequence row, which stays locked to commit so that sequence order is commit order,
/// and inserts the rows numbered from the first. The reservation waits on the other parts (its
/// `WHERE` reads their counts, a one-time filter run before the row is locked), so the lock is
/// held only for the event rows and the commit.
pub(crate) async fn insert_json(
    db: &impl ConnectionTrait,
    tables: Vec<TableJson>,
    events: Option<TableJson>,
) -> Result<(), sea_orm::DbErr> {
    let mut parts = Vec::with_capacity(tables.len() + 2);
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(tables.len() + 2);
    for (k, t) in tables.into_iter().enumerate() {
        parts.push(format!(
            "t{k} AS (INSERT INTO \"{table}\" ({columns}) SELECT {columns} \
             FROM json_populate_recordset(NULL::\"{table}\", ${n}::json) RETURNING 1)",
            table = t.table,
            columns = t.columns.join(", "),
            n = k + 1,
        ));
        values.push(t.rows_text().into());
    }
    let main = match events {
        None => "SELECT 1".to_owned(),
        Some(e) => {
            let after = (0..parts.len())
                .map(|k| format!("(SELECT count(*) FROM t{k}) >= 0"))
                .chain(std::iter::once("true".to_owned()))
                .collect::<Vec<_>>()
                .join(" AND ");
            let select = e
                .columns
                .iter()
                .map(|c| {
                    if c == "\"seq\"" {
                        "s.first + r.\"seq\"".to_owned()
                    } else {
                        format!("r.{c}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let rows = values.len() + 1;
            let count = rows + 1;
            // An upsert, not an update: it returns a row whatever the table holds, so the
            // events can never be left out of a statement that stores their cases.
            parts.push(format!(
                "s AS (INSERT INTO sequences (name, value) SELECT 'events', ${count} \
                 WHERE {after} ON CONFLICT (name) DO UPDATE \
                 SET value = sequences.value + excluded.value RETURNING value - ${count} + 1 AS first)"
            ));
            parts.push(format!(
                "e AS (INSERT INTO \"{table}\" ({columns}) SELECT {select} FROM s CROSS JOIN \
                 json_populate_recordset(NULL::\"{table}\", ${rows}::json) r)",
                table = e.table,
                columns = e.columns.join(", "),
            ));
            let count_value = i64::try_from(e.count).unwrap_or(i64::MAX);
            values.push(e.rows_text().into());
            values.push(count_value.into());
            // Every replica's event feed hears of the batch's last event at commit.
            format!(
                "SELECT pg_notify('{}', (first + ${count} - 1)::text) FROM s",
                cases::EVENTS_CHANNEL
            )
        }
    };
    if parts.is_empty() {
        return Ok(());
    }
    let text = format!("WITH {} {main}", parts.join(", "));
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        text,
        values,
    ))
    .await?;
    Ok(())
}

fn write_json(out: &mut Vec<u8>, value: &impl serde::Serialize) -> Result<(), sea_orm::DbErr> {
    serde_json::to_writer(out, value).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))
}

/// A column value as `json_populate_recordset` reads it back exactly: timestamps in RFC 3339
/// to the microsecond, floats in their shortest round-trip form.
fn write_value(out: &mut Vec<u8>, value: &sea_orm::Value) -> Result<(), sea_orm::DbErr> {
    use sea_orm::Value as V;
    match value {
        V::Bool(None)
        | V::Int(None)
        | V::BigInt(None)
        | V::SmallInt(None)
        | V::Double(None)
        | V::String(None)
        | V::Json(None)
        | V::ChronoDateTimeUtc(None)
        | V::ChronoDate(None) => out.extend_from_slice(b"null"),
        V::Bool(Some(v)) => write_json(out, v)?,
        V::Int(Some(v)) => write_json(out, v)?,
        V::BigInt(Some(v)) => write_json(out, v)?,
        V::SmallInt(Some(v)) => write_json(out, v)?,
        V::Double(Some(v)) if !v.is_finite() => {
            return Err(sea_orm::DbErr::Custom(format!(
                "{v} is not a storable number"
            )));
        }
        V::Double(Some(v)) => write_json(out, v)?,
        V::String(Some(v)) => write_json(out, v)?,
        V::Json(Some(v)) => write_json(out, v)?,
        V::ChronoDateTimeUtc(Some(t)) => {
            write_json(out, &t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))?;
        }
        V::ChronoDate(Some(d)) => write_json(out, &d.to_string())?,
        other => {
            return Err(sea_orm::DbErr::Custom(format!(
                "no JSON form for a {other:?} column"
            )));
        }
    }
    Ok(())
}

/// Splits rows into chunks of `size` (a power of two), the rest into smaller powers of two:
/// a multi-row INSERT has one text per chunk size, so the connections' prepared statements are
/// reused instead of parsing and planning a new statement for every batch size.
pub(crate) fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut rest = items.len();
    let mut iter = items.into_iter();
    let mut step = size;
    while rest > 0 {
        while step > rest {
            step /= 2;
        }
        out.push(iter.by_ref().take(step).collect());
        rest -= step;
    }
    out
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

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::chunked;

    #[test]
    fn chunks_are_powers_of_two_and_keep_every_row_in_order() {
        let chunks = chunked((0..45).collect::<Vec<_>>(), 32);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, [32, 8, 4, 1]);
        assert_eq!(chunks.concat(), (0..45).collect::<Vec<_>>());
        assert!(chunked(Vec::<u8>::new(), 32).is_empty());
    }
}

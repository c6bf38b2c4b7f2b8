//! A PostgreSQL connection one task holds for as long as it runs, outside any pool.
//!
//! A pooled connection costs a round trip every time it is given back: sqlx checks it with a
//! `Sync` message before anyone else may take it (`return_to_pool`), so a batch of two
//! statements, each on a connection taken from the pool, waits on four round trips instead of
//! two, and on a loaded machine every round trip is also two wake-ups on cores the whole
//! machine shares. The intake writers hold their connections instead; sea-orm's statements run
//! on them unchanged through [`ConnectionTrait`].

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement,
    sea_query::Values,
    sqlx::{
        self, Connection,
        postgres::{PgConnectOptions, PgConnection, PgQueryResult, PgRow},
    },
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Mutex, MutexGuard};

/// A connection unused this long is checked with a round trip before its next statement, as
/// the writers' pool did before (`test_before_acquire_if_idle_for`): after a quiet night a
/// connection a firewall or a server restart has cut is replaced before a report is refused.
const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(10);

/// A connection opened on first use and kept; one that fails other than by the database
/// refusing a statement, or whose statement was abandoned half-way, is dropped and the next
/// statement opens a fresh one.
pub struct HeldConnection {
    options: PgConnectOptions,
    slot: Mutex<Option<Live>>,
}

struct Live {
    conn: PgConnection,
    used: Instant,
    /// A statement was sent and its answer not read to the end: the future running it was
    /// dropped, and the connection may be mid-protocol.
    unfinished: bool,
}

impl std::fmt::Debug for HeldConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldConnection").finish_non_exhaustive()
    }
}

impl HeldConnection {
    /// Connects lazily, on the first statement.
    pub fn new(options: PgConnectOptions) -> HeldConnection {
        HeldConnection {
            options,
            slot: Mutex::new(None),
        }
    }

    /// Ends the session politely, if one is open.
    pub async fn close(self) {
        if let Some(live) = self.slot.into_inner() {
            let _ = live.conn.close().await;
        }
    }

    /// The slot, holding a connection fit for a statement, marked busy.
    async fn ready(&self) -> Result<MutexGuard<'_, Option<Live>>, DbErr> {
        let mut slot = self.slot.lock().await;
        let stale = match slot.as_mut() {
            None => false,
            Some(live) if live.unfinished => true,
            Some(live) if live.used.elapsed() >= CHECK_IF_IDLE_FOR => {
                live.conn.ping().await.is_err()
            }
            Some(_) => false,
        };
        if stale {
            *slot = None;
        }
        if slot.is_none() {
            let conn = PgConnection::connect_with(&self.options)
                .await
                .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?;
            *slot = Some(Live {
                conn,
                used: Instant::now(),
                unfinished: false,
            });
        }
        if let Some(live) = slot.as_mut() {
            live.unfinished = true;
        }
        Ok(slot)
    }

    /// Runs one statement on the held connection.
    async fn run<T>(
        &self,
        stmt: Statement,
        wrap: fn(RuntimeErr) -> DbErr,
        exec: impl AsyncFnOnce(&mut PgConnection, Statement) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbErr> {
        let mut slot = self.ready().await?;
        let Some(live) = slot.as_mut() else {
            return Err(DbErr::Custom("a held connection went missing".into()));
        };
        let result = exec(&mut live.conn, stmt).await;
        live.unfinished = false;
        live.used = Instant::now();
        match result {
            Ok(value) => Ok(value),
            Err(e) => {
                // The database refusing a statement (a unique key, a bad value) leaves the
                // connection as good as before; a fatal error (the server ending the session)
                // or anything else may have left it broken.
                if !is_statement_error(&e) {
                    *slot = None;
                }
                Err(wrap(RuntimeErr::SqlxError(Arc::new(e))))
            }
        }
    }
}

/// Whether a statement failed because its connection was lost, not because the database
/// refused it: the next statement on a [`HeldConnection`] opens a fresh one.
pub fn is_connection_lost(e: &DbErr) -> bool {
    match e {
        DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            !is_statement_error(inner)
        }
        _ => false,
    }
}

/// An error the server answered a statement with, the session going on.
fn is_statement_error(e: &sqlx::Error) -> bool {
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    d.try_downcast_ref::<PgDatabaseError>()
        .is_none_or(|pg| !matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic))
}

/// The statement as a sqlx query, taking its values rather than copying them: a batch's rows
/// travel as one JSON parameter of tens of kilobytes.
fn query(stmt: Statement) -> sqlx::query::Query<'static, sqlx::Postgres, SqlxValues> {
    let values = stmt.values.unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql), SqlxValues(values))
}

#[async_trait::async_trait]
impl ConnectionTrait for HeldConnection {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let done: PgQueryResult = self
            .run(stmt, DbErr::Exec, async |conn, stmt| {
                query(stmt).execute(conn).await
            })
            .await?;
        Ok(done.into())
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let stmt = Statement::from_string(DbBackend::Postgres, sql);
        let done: PgQueryResult = self
            .run(stmt, DbErr::Exec, async |conn, stmt| {
                sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.sql))
                    .execute(conn)
                    .await
            })
            .await?;
        Ok(done.into())
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let row: Option<PgRow> = self
            .run(stmt, DbErr::Query, async |conn, stmt| {
                query(stmt).fetch_optional(conn).await
            })
            .await?;
        Ok(row.map(Into::into))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let rows: Vec<PgRow> = self
            .run(stmt, DbErr::Query, async |conn, stmt| {
                query(stmt).fetch_all(conn).await
            })
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

//! The one storage error, with variants that say what a caller can do about it.

use sea_orm::{DbErr, RuntimeErr, sqlx};

use crate::domain::DomainError;

/// What went wrong below the domain, sorted by what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or cannot take writes right now: the connection was
    /// refused, lost or timed out waiting for the pool, the server is shutting down, the disk is
    /// full or read-only. Retrying later may succeed; nothing was committed unless the commit's
    /// answer was what got lost.
    #[error("{context}: the database is unavailable: {source}")]
    Unavailable {
        context: String,
        #[source]
        source: DbErr,
    },
    /// A concurrent change won: a unique key taken meanwhile, a serialization failure, a
    /// deadlock. Read again and retry.
    #[error("a concurrent change won: {0}")]
    Conflict(#[source] DbErr),
    /// Stored data that does not read as the domain's types. A bug or a corrupted database.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Anything else the database refused: a bug of ours, or a schema out of step.
    #[error("{context}: {source}")]
    Fault {
        context: String,
        #[source]
        source: DbErr,
    },
}

impl StorageError {
    /// A stored value that does not parse.
    pub fn corrupt(what: impl Into<String>) -> StorageError {
        StorageError::Corrupt(what.into())
    }

    /// A database error with what was being done when it happened, classified.
    pub fn during(context: impl Into<String>, e: DbErr) -> StorageError {
        match classify(&e) {
            Kind::Unavailable => StorageError::Unavailable {
                context: context.into(),
                source: e,
            },
            Kind::Conflict => StorageError::Conflict(e),
            Kind::Fault => StorageError::Fault {
                context: context.into(),
                source: e,
            },
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StorageError::Unavailable { .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, StorageError::Conflict(_))
    }
}

impl From<DbErr> for StorageError {
    fn from(e: DbErr) -> Self {
        StorageError::during("database error", e)
    }
}

/// Storage faults reach a client as what it can do: retry later (UNAVAILABLE), read again and
/// retry (ABORTED), or nothing (INTERNAL, logged with its chain by the gRPC layer).
impl From<StorageError> for DomainError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable { .. } => DomainError::Unavailable(e.into()),
            StorageError::Conflict(_) => {
                DomainError::Aborted("a concurrent change won; read again and retry".to_owned())
            }
            StorageError::Corrupt(_) | StorageError::Fault { .. } => DomainError::internal(e),
        }
    }
}

enum Kind {
    Unavailable,
    Conflict,
    Fault,
}

fn classify(e: &DbErr) -> Kind {
    let inner = match e {
        // The pool gave no connection in time, or is closed.
        DbErr::ConnectionAcquire(_) => return Kind::Unavailable,
        DbErr::Conn(RuntimeErr::SqlxError(inner))
        | DbErr::Exec(RuntimeErr::SqlxError(inner))
        | DbErr::Query(RuntimeErr::SqlxError(inner)) => inner,
        DbErr::Conn(_) => return Kind::Unavailable,
        _ => return Kind::Fault,
    };
    match inner.as_ref() {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Kind::Unavailable,
        sqlx::Error::Database(d) => database_kind(d.as_ref()),
        _ => Kind::Fault,
    }
}

/// A server's answer by its code: SQLSTATE on PostgreSQL, the result code on SQLite.
fn database_kind(d: &dyn sqlx::error::DatabaseError) -> Kind {
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    if let Some(pg) = d.try_downcast_ref::<PgDatabaseError>() {
        let code = pg.code();
        return match code {
            // unique_violation, serialization_failure, deadlock_detected
            "23505" | "40001" | "40P01" => Kind::Conflict,
            // connection exceptions; admin, crash and startup shutdowns; too many connections;
            // disk full, out of memory; read-only transaction (a standby)
            _ if code.starts_with("08") => Kind::Unavailable,
            "57P01" | "57P02" | "57P03" | "53300" | "53100" | "53200" | "25006" => {
                Kind::Unavailable
            }
            _ if matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic) => {
                Kind::Unavailable
            }
            _ => Kind::Fault,
        };
    }
    // SQLite's extended result codes carry the primary code in their low byte.
    let primary = d
        .code()
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff);
    match primary {
        // SQLITE_BUSY, SQLITE_LOCKED (the busy timeout ran out), SQLITE_READONLY,
        // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
        Some(5 | 6 | 8 | 10 | 13 | 14) => Kind::Unavailable,
        // SQLITE_CONSTRAINT: only unique keys are declared
        Some(19) if d.kind() == sqlx::error::ErrorKind::UniqueViolation => Kind::Conflict,
        _ => Kind::Fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pool_or_a_timeout_is_unavailable_and_a_bad_statement_is_a_fault() {
        let unavailable = [
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
            DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(
                sqlx::Error::PoolTimedOut,
            ))),
            DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Io(
                std::io::Error::from(std::io::ErrorKind::ConnectionReset),
            )))),
        ];
        for e in unavailable {
            assert!(StorageError::from(e).is_unavailable());
        }
        let fault = StorageError::from(DbErr::Custom("no such column".into()));
        assert!(matches!(fault, StorageError::Fault { .. }));
        assert!(matches!(
            DomainError::from(StorageError::from(DbErr::ConnectionAcquire(
                sea_orm::ConnAcquireErr::Timeout
            ))),
            DomainError::Unavailable(_)
        ));
        assert!(matches!(
            DomainError::from(StorageError::corrupt("x")),
            DomainError::Internal(_)
        ));
    }
}

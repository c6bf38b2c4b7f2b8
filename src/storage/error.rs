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
    #[error("{context}: the database is unavailable{}: {source}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Unavailable {
        context: String,
        /// What an operator can do about it, when the cause says.
        hint: Option<&'static str>,
        #[source]
        source: DbErr,
    },
    /// A concurrent change won: a unique key taken meanwhile, a serialization failure, a
    /// deadlock. Read again and retry.
    #[error("a concurrent change won: {0}")]
    Conflict(#[source] DbErr),
    /// The database cannot store a value the request carried (PostgreSQL refuses a NUL
    /// character in text). The request's fault: nothing was stored.
    #[error("the database cannot store a value of the request: {0}")]
    BadValue(#[source] DbErr),
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
            Kind::Unavailable(hint) => {
                metrics::counter!("gridcase_db_unavailable_total").increment(1);
                StorageError::Unavailable {
                    context: context.into(),
                    hint,
                    source: e,
                }
            }
            Kind::Conflict => StorageError::Conflict(e),
            Kind::BadValue => StorageError::BadValue(e),
            Kind::Fault => StorageError::Fault {
                context: context.into(),
                source: e,
            },
        }
    }

    /// What an operator can do about an unavailable database, when the cause says.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            StorageError::Unavailable { hint, .. } => *hint,
            _ => None,
        }
    }

    /// The database's own error back, for code that still speaks `DbErr` (so that it is
    /// classified again as it was, not flattened into text).
    pub fn into_db_err(self) -> DbErr {
        match self {
            StorageError::Unavailable { source, .. }
            | StorageError::Fault { source, .. }
            | StorageError::Conflict(source)
            | StorageError::BadValue(source) => source,
            StorageError::Corrupt(what) => DbErr::Custom(format!("stored data is corrupt: {what}")),
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
            StorageError::BadValue(_) => DomainError::invalid(
                "request",
                "contains a character that cannot be stored (such as NUL)",
            ),
            StorageError::Corrupt(_) | StorageError::Fault { .. } => DomainError::internal(e),
        }
    }
}

enum Kind {
    /// With what an operator can do about it, when the cause says.
    Unavailable(Option<&'static str>),
    Conflict,
    /// A value the database cannot store.
    BadValue,
    Fault,
}

fn classify(e: &DbErr) -> Kind {
    let inner = match e {
        // The pool gave no connection in time, or is closed.
        DbErr::ConnectionAcquire(_) => return Kind::Unavailable(None),
        DbErr::Conn(RuntimeErr::SqlxError(inner))
        | DbErr::Exec(RuntimeErr::SqlxError(inner))
        | DbErr::Query(RuntimeErr::SqlxError(inner)) => inner,
        DbErr::Conn(_) => return Kind::Unavailable(None),
        _ => return Kind::Fault,
    };
    match inner.as_ref() {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Kind::Unavailable(None),
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
            // character_not_in_repertoire (a NUL in text), untranslatable_character
            "22021" | "22P05" => Kind::BadValue,
            // connection exceptions; admin, crash and startup shutdowns; too many connections;
            // disk full, out of memory; read-only transaction (a standby)
            _ if code.starts_with("08") => Kind::Unavailable(None),
            "53100" => Kind::Unavailable(Some(
                "PostgreSQL's disk is full: free space on the database server's data volume",
            )),
            "25006" => Kind::Unavailable(Some(
                "PostgreSQL answers read-only: the URL points at a standby, or the server was \
                 set read-only; point gridcase at the primary",
            )),
            "57P01" | "57P02" | "57P03" | "53300" | "53200" => Kind::Unavailable(None),
            _ if matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic) => {
                Kind::Unavailable(None)
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
        // SQLITE_BUSY, SQLITE_LOCKED: the busy timeout ran out
        Some(5 | 6) => Kind::Unavailable(Some(
            "the SQLite database stayed locked past the busy timeout: another process holds it",
        )),
        Some(8) => Kind::Unavailable(Some(
            "the SQLite database is read-only: make the file, its -wal and -shm files and their \
             directory writable by gridcase's user, on a volume mounted read-write",
        )),
        Some(10) => Kind::Unavailable(Some(
            "the disk holding the SQLite database failed a read or write (or a file size limit \
             was hit): check that volume and the kernel log",
        )),
        Some(13) => Kind::Unavailable(Some(
            "the disk holding the SQLite database is full: free space on that volume (the \
             database and its -wal file grow there)",
        )),
        Some(14) => Kind::Unavailable(Some(
            "gridcase cannot open the SQLite database file: check its path and permissions",
        )),
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

//! The gRPC layer: thin and the same everywhere. Validate the request, take the caller from the
//! request's extensions, make one service call, convert back. Errors are mapped to status
//! codes in one place, [`status_of`].

pub mod case;
pub mod convert;
pub mod directory;
pub mod export;
pub mod gateway;
pub mod locate;
pub mod report;
pub mod stats;
pub mod transport;

use tonic::{Request, Status};

use crate::domain::{Caller, DomainError};

/// Every domain error to its status, in one place. Internal causes are logged with their chain
/// and never sent.
pub fn status_of(error: DomainError) -> Status {
    match error {
        DomainError::InvalidArgument { field, reason } => {
            Status::invalid_argument(format!("{field}: {reason}"))
        }
        DomainError::NotFound(m) => Status::not_found(m),
        DomainError::AlreadyExists(m) => Status::already_exists(m),
        DomainError::FailedPrecondition(m) => Status::failed_precondition(m),
        DomainError::Aborted(m) => Status::aborted(m),
        DomainError::PermissionDenied(m) => Status::permission_denied(m),
        DomainError::ResourceExhausted(m) => Status::resource_exhausted(m),
        DomainError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "internal error");
            Status::internal("internal error; it has been logged")
        }
        DomainError::Interrupted(m) => Status::unavailable(m),
        DomainError::Unavailable(cause) => {
            let hint = cause
                .downcast_ref::<crate::storage::StorageError>()
                .and_then(crate::storage::StorageError::hint);
            tracing::warn!(error = format!("{cause:#}"), "storage unavailable");
            match hint {
                Some(hint) => {
                    Status::unavailable(format!("service unavailable, retry later: {hint}"))
                }
                None => Status::unavailable("service unavailable, retry later"),
            }
        }
    }
}

impl From<DomainError> for Status {
    fn from(error: DomainError) -> Self {
        status_of(error)
    }
}

/// The caller the auth layer verified. Its absence on an authenticated method is a wiring bug,
/// answered as UNAUTHENTICATED rather than a panic.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no verified caller"))
}

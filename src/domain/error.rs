//! The one error type of the domain; the gRPC layer maps it to status codes in one place.

/// What went wrong, in terms a client can act on. Internal causes are kept for the log only.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A field of the request is missing or wrong; names the field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The thing asked for does not exist, or the caller may not know that it does.
    #[error("{0}")]
    NotFound(String),
    /// A client-made id was used before with different content.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request does not fit the current state (of a case, say); names the state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent update won; retry with a fresh read.
    #[error("{0}")]
    Aborted(String),
    /// The caller's role or scope does not reach this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Over a configured limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A fault of ours or of the storage below; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// Storage is unreachable right now; the client may retry.
    #[error("service unavailable, retry later")]
    Unavailable(#[source] anyhow::Error),
    /// A stream was cut off (the server stopping, a reader too far behind); the message says
    /// how the client goes on.
    #[error("{0}")]
    Interrupted(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        DomainError::Internal(err.into())
    }
}

pub type DomainResult<T> = Result<T, DomainError>;

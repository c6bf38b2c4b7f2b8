//! The tower layer in front of every service: one span per RPC, token verification, the role
//! table, and the caller put into the request's extensions for the handlers.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use tower::{Layer, Service};
use tracing::{Instrument, field};

use super::{
    Verifier,
    limits::{Limits, Refusal},
    permissions::{self, Decision},
};
use crate::{
    config::AccessLog,
    domain::{Caller, Role},
};

/// Whether a subject has a member record, and in which role (DESIGN.md "Access": scopes come
/// from the directory, not from the token).
pub trait MemberRoles: Send + Sync + 'static {
    /// The role of an active member; `None` for an unknown or retired one.
    fn member_role(&self, sub: &str) -> Option<Role>;
    /// Whether the subject's record is retired (they left the job).
    fn is_retired(&self, sub: &str) -> bool;
}

/// Which calls the access log writes.
#[derive(Debug, Clone, Copy)]
pub struct AccessPolicy {
    pub log: AccessLog,
    /// `Sampled`: one in this many successful calls.
    pub sample: u32,
}

#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    members: Arc<dyn MemberRoles>,
    limits: Arc<Limits>,
    access: AccessPolicy,
    seen: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer").finish_non_exhaustive()
    }
}

impl AuthLayer {
    pub fn new(
        verifier: Arc<Verifier>,
        members: Arc<dyn MemberRoles>,
        limits: Arc<Limits>,
        access: AccessPolicy,
    ) -> Self {
        AuthLayer {
            verifier,
            members,
            limits,
            access,
            seen: Arc::default(),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            members: self.members.clone(),
            limits: self.limits.clone(),
            access: self.access,
            seen: self.seen.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    members: Arc<dyn MemberRoles>,
    limits: Arc<Limits>,
    access: AccessPolicy,
    seen: Arc<std::sync::atomic::AtomicU64>,
}

impl<S> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

/// Who is calling: `Ok(None)` for open paths (no token needed), the token's caller otherwise.
fn authenticate(
    verifier: &Verifier,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Option<Caller>, tonic::Status> {
    if permissions::is_open(path) {
        return Ok(None);
    }
    let header = headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    verifier
        .verify_header(header)
        .map(Some)
        .map_err(|e| tonic::Status::unauthenticated(e.to_string()))
}

/// Whether an authenticated caller may call `path`: the role table, then the member record.
fn authorize(members: &dyn MemberRoles, path: &str, caller: &Caller) -> Result<(), tonic::Status> {
    match permissions::decide(path, caller.role) {
        Decision::Allowed | Decision::UnknownMethod => {}
        Decision::Denied => {
            return Err(tonic::Status::permission_denied(format!(
                "role {} may not call {}",
                caller.role,
                path.rsplit('/').next().unwrap_or(path)
            )));
        }
    }
    if caller.role.needs_member_record() {
        match members.member_role(&caller.sub) {
            Some(role) if role == caller.role => {}
            Some(role) => {
                return Err(tonic::Status::permission_denied(format!(
                    "{} is a {role} in the directory, not a {}",
                    caller.sub, caller.role
                )));
            }
            None if members.is_retired(&caller.sub) => {
                return Err(tonic::Status::permission_denied(format!(
                    "{} is retired in the directory",
                    caller.sub
                )));
            }
            None => {
                return Err(tonic::Status::permission_denied(format!(
                    "{} has no member record in the directory",
                    caller.sub
                )));
            }
        }
    }
    Ok(())
}

/// The gRPC status of a response whose status travels in its headers (errors); `OK` otherwise,
/// since a successful call's status comes in the trailers. A call the client left before tonic
/// read its request is CANCELLED, whatever tonic put in the header (see [`client_gone`]): not a
/// server fault, for the metrics and the access log alike.
fn outcome_code<B>(response: &http::Response<B>) -> tonic::Code {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .unwrap_or(tonic::Code::Ok);
    if code == tonic::Code::Unknown && client_gone(response) {
        return tonic::Code::Cancelled;
    }
    code
}

/// Whether an error response is the transport's rather than a handler's: the client went away
/// (closed its connection, reset the stream) before tonic had read its request. tonic answers
/// such a call with UNKNOWN, from hyper's body error, before any handler runs, and leaves that
/// status in the response's extensions with the `hyper::Error` in its source chain; a handler's
/// own status never carries one. (Both are tonic's ways as of 0.14; a test pins them.)
fn client_gone<B>(response: &http::Response<B>) -> bool {
    let Some(status) = response.extensions().get::<tonic::Status>() else {
        return false;
    };
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<hyper::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        let members = self.members.clone();
        let limits = self.limits.clone();
        let access = self.access;
        let seen = self.seen.clone();
        let path = request.uri().path().to_owned();
        let authenticated = authenticate(&self.verifier, &path, request.headers());
        // The span carries only the method: fields recorded later, or caller fields formatted
        // into every span, cost each call more than the rest of this layer. The caller and the
        // code are on the access log's line instead.
        let span = tracing::info_span!("rpc", method = %path);
        let who = authenticated
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .map(|c| (c.sub.clone(), c.role));
        Box::pin(
            async move {
                let decided = authenticated.and_then(|caller| match caller {
                    Some(caller) => {
                        authorize(members.as_ref(), &path, &caller).map(|()| Some(caller))
                    }
                    None => Ok(None),
                });
                let response = match decided {
                    Err(status) => status.into_http(),
                    // Health and reflection: always answered, never limited.
                    Ok(None) => inner.call(request).await?,
                    Ok(Some(caller)) => match limits.admit(&caller).and_then(|()| limits.enter()) {
                        Err(refusal) => refused(&refusal, &caller),
                        Ok(place) => {
                            request.extensions_mut().insert(caller);
                            let response = inner.call(request).await?;
                            drop(place);
                            response
                        }
                    },
                };
                let code = outcome_code(&response);
                let elapsed = started.elapsed();
                record(&path, code, elapsed);
                let error = matches!(
                    code,
                    tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss
                );
                if error || logged(access, code, &seen) {
                    let sub = who.as_ref().map(|(sub, _)| field::display(sub));
                    let role = who.as_ref().map(|(_, role)| role.as_str());
                    let code = field::display(code_name(code));
                    let elapsed_ms = elapsed.as_secs_f64() * 1e3;
                    if error {
                        tracing::error!(code, sub, role, elapsed_ms, "rpc");
                    } else {
                        tracing::info!(code, sub, role, elapsed_ms, "rpc");
                    }
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// RESOURCE_EXHAUSTED, at once, with the standard gRPC retry hint (`grpc-retry-pushback-ms`).
fn refused<B: Default>(refusal: &Refusal, caller: &Caller) -> http::Response<B> {
    let reason = match refusal {
        Refusal::TooFast { .. } => "rate",
        Refusal::Busy => "in_flight",
    };
    metrics::counter!(
        "gridcase_rpc_refused_total",
        "reason" => reason,
        "role" => caller.role.as_str()
    )
    .increment(1);
    let mut status = tonic::Status::resource_exhausted(refusal.message(&caller.sub));
    if let Ok(ms) = refusal.retry_after().as_millis().max(1).to_string().parse() {
        status.metadata_mut().insert("grpc-retry-pushback-ms", ms);
    }
    status.into_http()
}

/// Counts the call and its latency, by method and code; nothing when metrics are off.
fn record(path: &str, code: tonic::Code, elapsed: std::time::Duration) {
    if !crate::monitoring::recording() {
        return;
    }
    let method = method_label(path);
    metrics::counter!(
        "gridcase_rpc_requests_total",
        "method" => method,
        "code" => code_name(code)
    )
    .increment(1);
    metrics::histogram!("gridcase_rpc_duration_seconds", "method" => method)
        .record(elapsed.as_secs_f64());
}

/// The metrics label of a method: its name for the contract's methods, health and reflection;
/// `other` for any other path, so that a client inventing paths cannot make series without end.
fn method_label(path: &str) -> &'static str {
    const OPEN: &[&str] = &[
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ];
    permissions::RPC_ROLES
        .iter()
        .map(|(p, _)| *p)
        .chain(OPEN.iter().copied())
        .find(|p| *p == path)
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or("other")
}

/// The code's name as tonic's `Debug` writes it, without formatting.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "Ok",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Whether the access log writes a line for a call answered with `code`.
fn logged(access: AccessPolicy, code: tonic::Code, seen: &std::sync::atomic::AtomicU64) -> bool {
    let ok = code == tonic::Code::Ok;
    match access.log {
        AccessLog::Off => false,
        AccessLog::Errors => !ok,
        AccessLog::All => true,
        AccessLog::Sampled => {
            !ok || seen
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .is_multiple_of(u64::from(access.sample.max(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_are_the_method_names_and_nothing_invented() {
        assert_eq!(
            method_label("/gridcase.v1.DirectoryService/Locate"),
            "Locate"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Check");
        for (path, _) in permissions::RPC_ROLES {
            assert_eq!(method_label(path), path.rsplit('/').next().unwrap_or(path));
        }
        assert_eq!(method_label("/gridcase.v1.DirectoryService/Nope"), "other");
        assert_eq!(method_label("/x/8f3a…"), "other");
    }

    #[test]
    fn a_handlers_unknown_is_not_taken_for_a_client_gone() {
        let handler: http::Response<()> = tonic::Status::unknown("x").into_http();
        assert!(!client_gone(&handler));
        let io: http::Response<()> =
            tonic::Status::from_error(Box::new(std::io::Error::other("x"))).into_http();
        assert!(!client_gone(&io));
        assert!(!client_gone(&http::Response::new(())));
    }

    #[test]
    fn code_names_are_what_tonic_debug_prints() {
        for n in 0..17 {
            let code = tonic::Code::from_i32(n);
            assert_eq!(code_name(code), format!("{code:?}"));
        }
    }
}

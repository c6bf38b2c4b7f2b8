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

/// Decides a request: `Ok(None)` for open paths, `Ok(Some(caller))` for an allowed caller.
fn authorize(
    verifier: &Verifier,
    members: &dyn MemberRoles,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Option<Caller>, tonic::Status> {
    if permissions::is_open(path) {
        return Ok(None);
    }
    let header = headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let caller = verifier
        .verify_header(header)
        .map_err(|e| tonic::Status::unauthenticated(e.to_string()))?;
    tracing::Span::current()
        .record("sub", field::display(&caller.sub))
        .record("role", caller.role.as_str());
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
    Ok(Some(caller))
}

/// The gRPC status of a response whose status travels in its headers (errors); `OK` otherwise,
/// since a successful call's status comes in the trailers.
fn outcome_code<B>(response: &http::Response<B>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .unwrap_or(tonic::Code::Ok)
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
        let verifier = self.verifier.clone();
        let members = self.members.clone();
        let limits = self.limits.clone();
        let access = self.access;
        let seen = self.seen.clone();
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "rpc",
            method = %path,
            sub = field::Empty,
            role = field::Empty,
            code = field::Empty,
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let response =
                    match authorize(&verifier, members.as_ref(), &path, request.headers()) {
                        Err(status) => status.into_http(),
                        // Health and reflection: always answered, never limited.
                        Ok(None) => inner.call(request).await?,
                        Ok(Some(caller)) => {
                            match limits.admit(&caller).and_then(|()| limits.enter()) {
                                Err(refusal) => refused(&refusal, &caller),
                                Ok(place) => {
                                    request.extensions_mut().insert(caller);
                                    let response = inner.call(request).await?;
                                    drop(place);
                                    response
                                }
                            }
                        }
                    };
                let code = outcome_code(&response);
                let elapsed = started.elapsed();
                record(&path, code, elapsed);
                let span = tracing::Span::current();
                span.record("code", field::debug(code));
                let elapsed_ms = elapsed.as_secs_f64() * 1e3;
                match code {
                    tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss => {
                        tracing::error!(elapsed_ms, "rpc")
                    }
                    _ if logged(access, code, &seen) => tracing::info!(elapsed_ms, "rpc"),
                    _ => {}
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

/// Counts the call and its latency, by method and code.
fn record(path: &str, code: tonic::Code, elapsed: std::time::Duration) {
    let method = path.rsplit('/').next().unwrap_or(path).to_owned();
    metrics::counter!(
        "gridcase_rpc_requests_total",
        "method" => method.clone(),
        "code" => format!("{code:?}")
    )
    .increment(1);
    metrics::histogram!("gridcase_rpc_duration_seconds", "method" => method)
        .record(elapsed.as_secs_f64());
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

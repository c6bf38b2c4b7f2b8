//! The command-center console, served by `gridcase serve` on its own port: `GET /` is the page,
//! `GET /console/*` its assets, all embedded in the binary (`console/dist/`, built from the
//! console's lockfile and committed), so a center needs nothing but a browser and no request
//! leaves the intranet. The page talks to the same gRPC API through gRPC-Web.
//!
//! The layer is the outermost one: a plain `GET` for the page never reaches gRPC-Web (which
//! answers anything but gRPC-Web with 400) or the auth layer (the page carries no token; its
//! calls do). Every other request passes through untouched.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll},
};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// One asset: where it is served, its type, its bytes and their entity tag.
#[derive(Debug)]
struct Asset {
    path: String,
    content_type: &'static str,
    bytes: &'static [u8],
    etag: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    embedded::ASSETS
        .iter()
        .map(|(name, content_type, bytes)| Asset {
            path: if *name == "index.html" {
                "/".to_owned()
            } else {
                format!("/console/{name}")
            },
            content_type,
            bytes,
            etag: format!("\"{}\"", hex::encode(&Sha256::digest(bytes)[..16])),
        })
        .collect()
});

/// What the page reads at start: how the deployment configured it.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// An intranet tile server (`https://tiles.example/{z}/{x}/{y}.png`) drawn under the
    /// directory's shapes; none by default.
    pub tile_url: Option<String>,
}

impl ConsoleConfig {
    fn json(&self) -> String {
        serde_json::json!({
            "tile_url": self.tile_url,
            "version": env!("CARGO_PKG_VERSION"),
        })
        .to_string()
    }

    /// The page loads scripts, styles and data from this origin only; images also from the
    /// configured tile server.
    fn content_security_policy(&self) -> String {
        let tiles = self
            .tile_url
            .as_deref()
            .and_then(origin_of)
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        format!(
            "default-src 'self'; script-src 'self'; connect-src 'self'; \
             img-src 'self' data:{tiles}; style-src 'self' 'unsafe-inline'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        )
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty() && !host.contains('{')).then(|| format!("{scheme}://{host}"))
}

#[derive(Debug, Clone)]
pub struct ConsoleLayer {
    config: Arc<ConsoleConfig>,
}

impl ConsoleLayer {
    pub fn new(config: ConsoleConfig) -> ConsoleLayer {
        ConsoleLayer {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for ConsoleLayer {
    type Service = ConsoleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsoleService {
            inner,
            config: self.config.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsoleService<S> {
    inner: S,
    config: Arc<ConsoleConfig>,
}

/// What the console answers a request with, if it is the console's.
fn answer<B>(config: &ConsoleConfig, request: &Request<B>) -> Option<Response<String>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return None;
    }
    let path = request.uri().path();
    if path == "/console/config.json" {
        return Some(respond(
            StatusCode::OK,
            "application/json",
            config.json(),
            None,
            config,
        ));
    }
    let asset = ASSETS
        .iter()
        .find(|a| a.path == path || (path == "/console/" && a.path == "/"));
    match asset {
        Some(a) => {
            let unchanged = request
                .headers()
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == a.etag.as_bytes());
            if unchanged {
                return Some(respond(
                    StatusCode::NOT_MODIFIED,
                    a.content_type,
                    String::new(),
                    Some(&a.etag),
                    config,
                ));
            }
            // Built by esbuild and checked by tsc: the text is UTF-8 (a binary asset would be
            // refused here rather than sent mangled).
            let body = std::str::from_utf8(a.bytes).ok()?.to_owned();
            Some(respond(
                StatusCode::OK,
                a.content_type,
                body,
                Some(&a.etag),
                config,
            ))
        }
        None if path == "/" || path.starts_with("/console/") => Some(respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            if ASSETS.is_empty() {
                "this gridcase was built without its console (console/dist is empty)".to_owned()
            } else {
                format!("no console file {path}")
            },
            None,
            config,
        )),
        None => None,
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: String,
    etag: Option<&str>,
    config: &ConsoleConfig,
) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, content_type);
    // Revalidated on every load: a new binary's console is picked up at once.
    set(header::CACHE_CONTROL, "no-cache");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        header::CONTENT_SECURITY_POLICY,
        &config.content_security_policy(),
    );
    if let Some(etag) = etag {
        set(header::ETAG, etag);
    }
    response
}

impl<S, ReqBody> Service<Request<ReqBody>> for ConsoleService<S>
where
    S: Service<Request<ReqBody>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if let Some(response) = answer(&self.config, &request) {
            let head_only = request.method() == Method::HEAD;
            return Box::pin(async move {
                let (parts, body) = response.into_parts();
                let body = if head_only { String::new() } else { body };
                Ok(Response::from_parts(parts, tonic::body::Body::new(body)))
            });
        }
        // The service polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tile_server_is_the_only_other_origin_the_page_may_load_from() {
        let none = ConsoleConfig::default().content_security_policy();
        assert!(none.contains("img-src 'self' data:;"), "{none}");
        let tiles = ConsoleConfig {
            tile_url: Some("https://tiles.gov.intranet:8443/{z}/{x}/{y}.png".into()),
        }
        .content_security_policy();
        assert!(
            tiles.contains("img-src 'self' data: https://tiles.gov.intranet:8443;"),
            "{tiles}"
        );
        assert!(tiles.contains("connect-src 'self';"), "{tiles}");
    }
}

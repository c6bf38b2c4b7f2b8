//! `Locate` without re-encoding what does not change: a grid's answer is its region and its
//! chain (fixed for a directory version) plus three fields of the point itself. The fixed part
//! is encoded once per grid and version and kept; each call appends the rest.
//!
//! Locate is every handset's most frequent call (issue 20: what it pays beyond bare tonic).
//! Building seven `Region` messages, encoding their ~400 bytes and dropping them again was the
//! largest part of its own cost, so [`FastLocate`] answers it from here, in front of the
//! generated `DirectoryServiceServer`, with tonic's own unary machinery (limits, status
//! handling) and the same bytes on the wire: `tests` below compares them with the generated
//! path's message, field for field and byte for byte.

use std::{
    convert::Infallible,
    sync::{Arc, RwLock},
    task::{Context, Poll},
};

use arc_swap::ArcSwap;
use prost::{
    Message,
    bytes::{Buf, BufMut, Bytes},
    encoding::{DecodeContext, WireType},
};
use tonic::{
    Request, Response, Status,
    body::Body,
    server::{Grpc, NamedService, UnaryService},
};

use super::convert::coord_system;
use crate::{
    domain::directory::{Directory, FastMap, Located, Region},
    proto::v1 as pb,
    service::LiveDirectory,
};

/// The generated service's name and Locate's path (the contract's names, DESIGN.md).
const LOCATE_PATH: &str = "/gridcase.v1.DirectoryService/Locate";

/// A `LocateResponse` as it goes on the wire: the grid and chain fields already encoded, then
/// `snapped`, `distance_m` and `wgs84` encoded by prost from an otherwise empty message, which
/// is exactly what encoding the whole message gives (prost writes fields in tag order, and
/// the fixed part holds fields 1 and 2 only).
#[derive(Debug, Default, Clone)]
pub struct LocateAnswer {
    fixed: Bytes,
    rest: pb::LocateResponse,
}

impl Message for LocateAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.fixed);
        self.rest.encode_raw(buf);
    }

    /// Never decoded (clients decode a `LocateResponse`): every field is skipped as unknown.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.fixed.len() + self.rest.encoded_len()
    }

    fn clear(&mut self) {
        *self = LocateAnswer::default();
    }
}

/// The fixed parts, per grid, of the directory version they were encoded from.
#[derive(Debug, Default)]
struct Table {
    version: i64,
    grids: RwLock<FastMap<Bytes>>,
}

/// The encoded grid-and-chain part of every grid located so far in the current directory
/// version: at most one entry per grid (about 400 bytes each; 2.4 MB for Rizhao's 5,938 grids).
/// A new version starts an empty table; calls still answering from the previous snapshot
/// encode without keeping.
#[derive(Debug, Default)]
pub struct LocateAnswers {
    table: ArcSwap<Table>,
}

impl LocateAnswers {
    fn fixed(&self, located: &Located<'_>, directory: &Directory) -> Bytes {
        let version = directory.version;
        // `load`, not `load_full`: the hit, every call but a grid's first, takes no reference
        // count on the table that every core would contend for.
        let current = self.table.load();
        if current.version == version {
            // A poisoned lock only means a panic elsewhere while it was held: the map is
            // still a valid cache.
            let grids = current.grids.read().unwrap_or_else(|p| p.into_inner());
            if let Some(bytes) = grids.get(&located.grid.code) {
                return bytes.clone();
            }
        }
        let chain = directory.chain(&located.grid.code);
        let bytes = Bytes::from(fixed_part(located, &chain).encode_to_vec());
        let table = if current.version < version {
            let fresh = Arc::new(Table {
                version,
                grids: RwLock::default(),
            });
            self.table.store(fresh.clone());
            fresh
        } else {
            arc_swap::Guard::into_inner(current)
        };
        // An answer from an older snapshot (still in flight after a new version) is not kept.
        if table.version == version {
            let mut grids = table.grids.write().unwrap_or_else(|p| p.into_inner());
            grids.insert(located.grid.code.clone(), bytes.clone());
        }
        bytes
    }

    /// The answer to a `LocateRequest`, as the generated path's [`locate_response`] gives it.
    pub fn answer(
        &self,
        directory: &LiveDirectory,
        r: &pb::LocateRequest,
    ) -> Result<LocateAnswer, Status> {
        let system = coord_system(r.coord_system)?;
        Ok(
            directory.locate_with(r.lat, r.lon, system, |located, directory, position| {
                self.assemble(located, directory, position)
            })?,
        )
    }

    fn assemble(
        &self,
        located: &Located<'_>,
        directory: &Directory,
        position: (f64, f64),
    ) -> LocateAnswer {
        LocateAnswer {
            fixed: self.fixed(located, directory),
            rest: point_part(located, position),
        }
    }
}

fn fixed_part(located: &Located<'_>, chain: &[&Region]) -> pb::LocateResponse {
    pb::LocateResponse {
        grid: Some(located.grid.into()),
        chain: chain.iter().map(|&region| region.into()).collect(),
        ..Default::default()
    }
}

fn point_part(located: &Located<'_>, (lon, lat): (f64, f64)) -> pb::LocateResponse {
    pb::LocateResponse {
        snapped: located.snapped,
        distance_m: located.distance_m,
        wgs84: Some(pb::Location {
            lat,
            lon,
            coord_system: pb::CoordSystem::Wgs84.into(),
            accuracy_m: 0.0,
        }),
        ..Default::default()
    }
}

/// The whole `LocateResponse` of a located point: what the generated service's `locate`
/// answers, and what [`LocateAnswer`] must equal on the wire.
pub fn locate_response(
    located: &Located<'_>,
    chain: &[&Region],
    position: (f64, f64),
) -> pb::LocateResponse {
    let fixed = fixed_part(located, chain);
    pb::LocateResponse {
        grid: fixed.grid,
        chain: fixed.chain,
        ..point_part(located, position)
    }
}

#[derive(Debug, Clone)]
struct LocateCall {
    directory: Arc<LiveDirectory>,
    answers: Arc<LocateAnswers>,
}

impl UnaryService<pb::LocateRequest> for LocateCall {
    type Response = LocateAnswer;
    type Future = std::future::Ready<Result<Response<LocateAnswer>, Status>>;

    fn call(&mut self, request: Request<pb::LocateRequest>) -> Self::Future {
        std::future::ready(
            self.answers
                .answer(&self.directory, request.get_ref())
                .map(Response::new),
        )
    }
}

/// `DirectoryServiceServer` with `Locate` answered by [`LocateAnswers`]; every other path goes
/// to the generated server unchanged.
#[derive(Debug, Clone)]
pub struct FastLocate<S> {
    inner: S,
    call: LocateCall,
    max_message_bytes: usize,
}

impl<S> FastLocate<S> {
    pub fn new(inner: S, directory: Arc<LiveDirectory>, max_message_bytes: usize) -> Self {
        FastLocate {
            inner,
            call: LocateCall {
                directory,
                answers: Arc::default(),
            },
            max_message_bytes,
        }
    }
}

impl<S: NamedService> NamedService for FastLocate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for FastLocate<S>
where
    S: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        >,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        S::Future,
        std::pin::Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != LOCATE_PATH {
            return futures_util::future::Either::Left(self.inner.call(request));
        }
        let call = self.call.clone();
        let limit = Some(self.max_message_bytes);
        futures_util::future::Either::Right(Box::pin(async move {
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::default())
                .apply_max_message_size_config(limit, limit);
            Ok(grpc.unary(call, request).await)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{domain::fixtures, geo::CoordSystem, service::directory::locate_in};

    fn both(
        answers: &LocateAnswers,
        directory: &Directory,
        lat: f64,
        lon: f64,
    ) -> (Vec<u8>, Vec<u8>) {
        let answer = locate_in(directory, lat, lon, CoordSystem::Wgs84, |l, d, p| {
            answers.assemble(l, d, p)
        })
        .expect("the point is located");
        let whole = locate_in(directory, lat, lon, CoordSystem::Wgs84, |l, d, p| {
            locate_response(l, &d.chain(&l.grid.code), p)
        })
        .expect("the point is located");
        assert_eq!(answer.encoded_len(), answer.encode_to_vec().len());
        (answer.encode_to_vec(), whole.encode_to_vec())
    }

    #[test]
    fn the_kept_parts_encode_as_the_whole_message() {
        let directory = fixtures::directory();
        let answers = LocateAnswers::default();
        // Covered by grid 1 (twice: the second answer comes from the kept part), covered by
        // grid 2, and snapped to grid 2 from 20 m east of it.
        for (lat, lon) in [
            (35.1, 119.05),
            (35.1, 119.05),
            (35.1, 119.15),
            (35.1, 119.2002),
        ] {
            let (fast, whole) = both(&answers, &directory, lat, lon);
            assert_eq!(fast, whole, "({lat}, {lon})");
            let decoded = pb::LocateResponse::decode(fast.as_slice()).expect("decodes");
            assert_eq!(decoded.chain.len(), 5);
        }
        let snapped =
            pb::LocateResponse::decode(both(&answers, &directory, 35.1, 119.2002).0.as_slice())
                .expect("decodes");
        assert!(snapped.snapped && snapped.distance_m > 0.0);
        assert_eq!(
            snapped.grid.map(|g| g.code).as_deref(),
            Some(fixtures::GRID2)
        );
        assert_eq!(
            answers
                .table
                .load()
                .grids
                .read()
                .map(|g| g.len())
                .unwrap_or(0),
            2
        );
    }

    #[test]
    fn a_new_version_starts_a_new_table() {
        let answers = LocateAnswers::default();
        let mut renamed = fixtures::directory_parts();
        renamed.version = 2;
        for (region, _) in &mut renamed.regions {
            region.name = format!("{} (new)", region.name);
        }
        let old = fixtures::directory();
        let new = Directory::build(renamed);
        let (_, _) = both(&answers, &old, 35.1, 119.05);
        let (fast, whole) = both(&answers, &new, 35.1, 119.05);
        assert_eq!(fast, whole);
        let grid = pb::LocateResponse::decode(fast.as_slice())
            .expect("decodes")
            .grid;
        assert!(grid.is_some_and(|g| g.name.ends_with("(new)")));
        // An answer from the older snapshot, still in flight, is right and is not kept.
        let (fast, whole) = both(&answers, &old, 35.1, 119.05);
        assert_eq!(fast, whole);
        assert_eq!(answers.table.load().version, 2);
        let (fast, whole) = both(&answers, &new, 35.1, 119.05);
        assert_eq!(fast, whole, "the new version's answer after an old one");
    }
}

//! `DirectoryService`: locating, the region tree, and the admin's directory and configuration.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{coord_system, page_size};
use crate::{
    domain::DomainError,
    proto::v1::{self as pb, directory_service_server::DirectoryService},
    service::LiveDirectory,
    storage::directory::Counts,
};

#[derive(Debug, Clone)]
pub struct DirectoryApi {
    directory: Arc<LiveDirectory>,
}

impl DirectoryApi {
    pub fn new(directory: Arc<LiveDirectory>) -> Self {
        DirectoryApi { directory }
    }
}

fn counts(c: Counts) -> pb::ImportCounts {
    let n = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    pb::ImportCounts {
        created: n(c.created),
        updated: n(c.updated),
        unchanged: n(c.unchanged),
    }
}

/// Pages over codes in ascending order; the token is the last code of the previous page.
fn page<'a, T>(
    items: impl Iterator<Item = (&'a str, T)>,
    token: &str,
    size: usize,
) -> (Vec<T>, String) {
    let mut out = Vec::with_capacity(size);
    let mut last = String::new();
    let mut more = false;
    for (code, item) in items.filter(|(c, _)| token.is_empty() || *c > token) {
        if out.len() == size {
            more = true;
            break;
        }
        last = code.to_owned();
        out.push(item);
    }
    (out, if more { last } else { String::new() })
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn locate(
        &self,
        request: Request<pb::LocateRequest>,
    ) -> Result<Response<pb::LocateResponse>, Status> {
        let r = request.into_inner();
        let system = coord_system(r.coord_system)?;
        let found = self.directory.locate(r.lat, r.lon, system)?;
        Ok(Response::new(pb::LocateResponse {
            grid: Some((&found.grid).into()),
            chain: found.chain.iter().map(Into::into).collect(),
            snapped: found.snapped,
            distance_m: found.distance_m,
            wgs84: Some(pb::Location {
                lat: found.wgs84.1,
                lon: found.wgs84.0,
                coord_system: pb::CoordSystem::Wgs84.into(),
                accuracy_m: 0.0,
            }),
        }))
    }

    async fn get_region(
        &self,
        request: Request<pb::GetRegionRequest>,
    ) -> Result<Response<pb::GetRegionResponse>, Status> {
        let r = request.into_inner();
        let directory = self.directory.snapshot();
        let entry = directory
            .entry(&r.code)
            .ok_or_else(|| DomainError::NotFound(format!("no region {:?}", r.code)))?;
        let geometry_geojson = if r.include_geometry {
            let geometry = geojson::Geometry::from(entry.shape.polygons());
            serde_json::to_string(&geometry).map_err(DomainError::internal)?
        } else {
            String::new()
        };
        Ok(Response::new(pb::GetRegionResponse {
            region: Some((&entry.region).into()),
            chain: directory
                .chain(&r.code)
                .into_iter()
                .map(Into::into)
                .collect(),
            geometry_geojson,
            child_count: i32::try_from(entry.children.len()).unwrap_or(i32::MAX),
        }))
    }

    async fn list_regions(
        &self,
        request: Request<pb::ListRegionsRequest>,
    ) -> Result<Response<pb::ListRegionsResponse>, Status> {
        let r = request.into_inner();
        let size = page_size(r.page.as_ref())?;
        let token = r.page.map(|p| p.page_token).unwrap_or_default();
        let directory = self.directory.snapshot();
        let codes: &[String] = if r.parent_code.is_empty() {
            directory.roots()
        } else {
            &directory
                .entry(&r.parent_code)
                .ok_or_else(|| DomainError::NotFound(format!("no region {:?}", r.parent_code)))?
                .children
        };
        let items = codes.iter().filter_map(|c| {
            directory
                .region(c)
                .map(|region| (c.as_str(), pb::Region::from(region)))
        });
        let (regions, next_page_token) = page(items, &token, size);
        Ok(Response::new(pb::ListRegionsResponse {
            regions,
            next_page_token,
        }))
    }

    async fn import_directory(
        &self,
        request: Request<pb::ImportDirectoryRequest>,
    ) -> Result<Response<pb::ImportDirectoryResponse>, Status> {
        let report = self.directory.import(request.into_inner().bundle).await?;
        Ok(Response::new(pb::ImportDirectoryResponse {
            regions: Some(counts(report.regions)),
            units: Some(counts(report.units)),
            members: Some(counts(report.members)),
            categories: Some(counts(report.categories)),
            directory_version: report.version,
        }))
    }

    async fn list_units(
        &self,
        request: Request<pb::ListUnitsRequest>,
    ) -> Result<Response<pb::ListUnitsResponse>, Status> {
        let r = request.into_inner();
        let size = page_size(r.page.as_ref())?;
        let token = r.page.map(|p| p.page_token).unwrap_or_default();
        let directory = self.directory.snapshot();
        if !r.region_code.is_empty() && directory.region(&r.region_code).is_none() {
            return Err(DomainError::NotFound(format!("no region {:?}", r.region_code)).into());
        }
        let items = directory
            .units()
            .filter(|u| r.kind.is_empty() || u.kind == r.kind)
            .filter(|u| {
                r.region_code.is_empty() || directory.is_within(&u.region_code, &r.region_code)
            })
            .map(|u| (u.code.as_str(), pb::Unit::from(u)));
        let (units, next_page_token) = page(items, &token, size);
        Ok(Response::new(pb::ListUnitsResponse {
            units,
            next_page_token,
        }))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let r = request.into_inner();
        let size = page_size(r.page.as_ref())?;
        let token = r.page.map(|p| p.page_token).unwrap_or_default();
        let directory = self.directory.snapshot();
        let mut members: Vec<_> = directory
            .members()
            .filter(|m| r.unit_code.is_empty() || m.unit_code.as_deref() == Some(&r.unit_code))
            .filter(|m| {
                r.region_code.is_empty()
                    || m.region_code
                        .iter()
                        .chain(m.grid_codes.iter())
                        .any(|c| directory.is_within(c, &r.region_code))
                    || m.unit_code.as_ref().is_some_and(|u| {
                        directory
                            .unit(u)
                            .is_some_and(|u| directory.is_within(&u.region_code, &r.region_code))
                    })
            })
            .collect();
        members.sort_by(|a, b| a.sub.cmp(&b.sub));
        let items = members
            .into_iter()
            .map(|m| (m.sub.as_str(), pb::Member::from(m)));
        let (members, next_page_token) = page(items, &token, size);
        Ok(Response::new(pb::ListMembersResponse {
            members,
            next_page_token,
        }))
    }

    async fn list_categories(
        &self,
        _request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let directory = self.directory.snapshot();
        Ok(Response::new(pb::ListCategoriesResponse {
            categories: directory.categories().map(Into::into).collect(),
        }))
    }
}

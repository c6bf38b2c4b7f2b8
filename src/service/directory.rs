//! The directory as the running service sees it: an immutable snapshot swapped whole when the
//! stored directory's version moves, whether the change came through this replica or another.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;

use crate::{
    auth::layer::MemberRoles,
    domain::{
        Caller, DomainError, DomainResult, Role,
        bundle::{self, BundleError, ImportReport},
        directory::{Directory, Located, Member, Region, Tier, Unit},
        rules::{RoutingOverride, Rules},
    },
    geo::{self, CoordSystem},
    storage::{self, directory::ImportError},
};

/// The shared, hot-swappable directory.
#[derive(Debug)]
pub struct LiveDirectory {
    db: DatabaseConnection,
    current: ArcSwap<Directory>,
    max_bundle_bytes: usize,
}

impl From<BundleError> for DomainError {
    fn from(e: BundleError) -> Self {
        if e.record == "bundle" {
            DomainError::invalid("bundle", e.reason)
        } else {
            DomainError::invalid("bundle", e.to_string())
        }
    }
}

/// Latitude and longitude must be finite and within range (DESIGN.md "Locating a point" 5).
pub fn check_position(lat: f64, lon: f64) -> DomainResult<()> {
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(DomainError::invalid(
            "lat",
            format!("{lat} is not a latitude in [-90, 90]"),
        ));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(DomainError::invalid(
            "lon",
            format!("{lon} is not a longitude in [-180, 180]"),
        ));
    }
    Ok(())
}

/// `Locate`: the grid of a point sent in any supported coordinate system, answered by `answer`
/// from the snapshot itself (the grid, the snapshot for its chain and version, and the WGS-84
/// position as (lon, lat)), so that the gRPC answer is built without copying the regions
/// first: `Locate` is every handset's most frequent call.
pub fn locate_in<T>(
    directory: &Directory,
    lat: f64,
    lon: f64,
    system: CoordSystem,
    answer: impl FnOnce(&Located<'_>, &Directory, (f64, f64)) -> T,
) -> DomainResult<T> {
    check_position(lat, lon)?;
    let (wlon, wlat) = geo::to_wgs84(system, lon, lat);
    let hit = directory.locate(wlon, wlat).ok_or_else(|| {
        DomainError::NotFound(format!(
            "no grid covers or lies within {} m of ({wlat:.6}, {wlon:.6}) (WGS-84)",
            geo::SNAP_RADIUS_M
        ))
    })?;
    Ok(answer(&hit, directory, (wlon, wlat)))
}

impl LiveDirectory {
    /// Loads the stored directory and builds its snapshot.
    pub async fn load(
        db: DatabaseConnection,
        max_bundle_bytes: usize,
    ) -> Result<LiveDirectory, storage::StorageError> {
        let parts = storage::directory::load(&db).await?;
        let directory = tokio::task::spawn_blocking(move || Directory::build(parts))
            .await
            .map_err(|e| storage::StorageError::corrupt(format!("building the directory: {e}")))?;
        Ok(LiveDirectory {
            db,
            current: ArcSwap::from_pointee(directory),
            max_bundle_bytes,
        })
    }

    /// The snapshot to answer one request from; consistent for as long as it is held.
    pub fn snapshot(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Rebuilds the snapshot if the stored version differs from the one served. Readers keep
    /// the old snapshot until the new one is complete.
    pub async fn refresh(&self) -> Result<bool, storage::StorageError> {
        let stored = storage::directory::version(&self.db).await?;
        if stored == self.current.load().version {
            return Ok(false);
        }
        let parts = storage::directory::load(&self.db).await?;
        let directory = tokio::task::spawn_blocking(move || Directory::build(parts))
            .await
            .map_err(|e| storage::StorageError::corrupt(format!("building the directory: {e}")))?;
        tracing::info!(
            version = directory.version,
            regions = directory.region_count(),
            grids = directory.grids().len(),
            "directory reloaded"
        );
        self.current.store(Arc::new(directory));
        Ok(true)
    }

    /// Polls the stored version every `interval` until `shutdown` fires, so every replica
    /// serves a new directory within seconds of an import anywhere.
    pub async fn watch(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, "directory refresh failed; serving the previous version");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// `Locate` on the snapshot being served: [`locate_in`].
    pub fn locate_with<T>(
        &self,
        lat: f64,
        lon: f64,
        system: CoordSystem,
        answer: impl FnOnce(&Located<'_>, &Directory, (f64, f64)) -> T,
    ) -> DomainResult<T> {
        locate_in(&self.current.load(), lat, lon, system, answer)
    }

    /// `ImportDirectory`: validate against the current directory, then upsert in one
    /// transaction; retried if another import moved the directory in between.
    ///
    /// With `retire_unlisted_under`, the bundle is the whole subtree of that region: what the
    /// directory holds there and the bundle no longer lists is retired ([`bundle::parse`]).
    pub async fn import(
        &self,
        bytes: Vec<u8>,
        retire_unlisted_under: Option<String>,
    ) -> DomainResult<ImportReport> {
        if bytes.len() > self.max_bundle_bytes {
            return Err(DomainError::ResourceExhausted(format!(
                "bundle is {} bytes; the limit is {} (max_bundle_bytes)",
                bytes.len(),
                self.max_bundle_bytes
            )));
        }
        let bytes = Arc::new(bytes);
        for _ in 0..3 {
            // Validate against the stored directory, not a possibly stale snapshot.
            self.refresh().await.map_err(DomainError::from)?;
            let base = self.snapshot();
            let version = base.version;
            let input = bytes.clone();
            let under = retire_unlisted_under.clone();
            let bundle = tokio::task::spawn_blocking(move || {
                bundle::parse_retiring(&input, &base, under.as_deref())
            })
            .await
            .map_err(DomainError::internal)??;
            match storage::directory::import(&self.db, &bundle, version).await {
                Ok(report) => {
                    self.refresh().await.map_err(DomainError::from)?;
                    return Ok(report);
                }
                Err(ImportError::Moved(moved)) => {
                    tracing::info!(%moved, "directory moved during import; validating again");
                }
                Err(ImportError::Storage(e)) => return Err(e.into()),
            }
        }
        Err(DomainError::Aborted(
            "the directory kept changing during the import; try again".into(),
        ))
    }
}

/// `GetRegionShapes`: the shapes of one tier in a subtree, as GeoJSON.
#[derive(Debug, Clone)]
pub struct Shapes {
    pub geojson: String,
    pub count: usize,
    pub version: i64,
}

/// The metres a web-map pixel spans at the equator at zoom 0 (256-pixel tiles).
const METRES_PER_PIXEL_AT_ZOOM_0: f64 = 156_543.033_928;

/// The finest detail worth keeping at `zoom`, in degrees: half a pixel there.
fn tolerance_deg(zoom: f64) -> f64 {
    METRES_PER_PIXEL_AT_ZOOM_0 / 2f64.powf(zoom) / 2.0 / 111_320.0
}

impl LiveDirectory {
    /// `GetRegionShapes`: the regions of `tier` in the subtree of `region_code` (empty: the
    /// root), or its children when no tier is given; simplified for `zoom` (0: full detail).
    pub fn shapes(
        &self,
        region_code: &str,
        tier: Option<Tier>,
        zoom: f64,
        include_retired: bool,
    ) -> DomainResult<Shapes> {
        use ::geo::Simplify;
        if !zoom.is_finite() || !(0.0..=24.0).contains(&zoom) {
            return Err(DomainError::invalid("zoom", "must be from 0 to 24"));
        }
        let directory = self.snapshot();
        let top = if region_code.is_empty() {
            directory.roots().first().cloned().ok_or_else(|| {
                DomainError::NotFound("the directory is empty: import one first".into())
            })?
        } else {
            region_code.to_owned()
        };
        let top_region = directory
            .region(&top)
            .ok_or_else(|| DomainError::NotFound(format!("no region {top:?}")))?;
        let tier = match tier {
            Some(t) if t < top_region.tier => {
                return Err(DomainError::invalid(
                    "tier",
                    format!("{t} lies above region {top} ({})", top_region.tier),
                ));
            }
            Some(t) => t,
            None => top_region.tier.below().ok_or_else(|| {
                DomainError::invalid(
                    "tier",
                    format!("region {top} is a grid: it has no children"),
                )
            })?,
        };
        // Down the tree to the tier wanted; a region's tier fixes its depth.
        let mut level = vec![top];
        while let Some(first) = level.first().and_then(|c| directory.region(c))
            && first.tier < tier
        {
            level = level
                .iter()
                .filter_map(|c| directory.entry(c))
                .flat_map(|e| e.children.iter().cloned())
                .collect();
        }
        let epsilon = (zoom > 0.0).then(|| tolerance_deg(zoom));
        let mut features = Vec::with_capacity(level.len());
        for code in &level {
            let Some(entry) = directory.entry(code) else {
                continue;
            };
            if entry.region.retired && !include_retired {
                continue;
            }
            let polygons = match epsilon {
                Some(e) => entry.shape.polygons().simplify(e),
                None => entry.shape.polygons().clone(),
            };
            let mut properties = serde_json::Map::new();
            properties.insert("code".into(), entry.region.code.clone().into());
            properties.insert("name".into(), entry.region.name.clone().into());
            properties.insert("tier".into(), entry.region.tier.as_str().into());
            properties.insert(
                "parent".into(),
                entry
                    .region
                    .parent_code
                    .clone()
                    .map_or(serde_json::Value::Null, Into::into),
            );
            properties.insert("retired".into(), entry.region.retired.into());
            features.push(geojson::Feature {
                bbox: None,
                geometry: Some(geojson::Geometry::from(&polygons)),
                id: None,
                properties: Some(properties),
                foreign_members: None,
            });
        }
        let count = features.len();
        let collection = geojson::FeatureCollection {
            bbox: None,
            features,
            foreign_members: None,
        };
        Ok(Shapes {
            geojson: collection.to_string(),
            count,
            version: directory.version,
        })
    }

    /// `WhoAmI`: the caller's record, the region their view centres on, and their scope in
    /// words.
    pub fn who(&self, caller: &Caller) -> DomainResult<(Option<Member>, Option<Region>, String)> {
        let directory = self.snapshot();
        let member = directory.member(&caller.sub).cloned();
        let root = || {
            directory
                .roots()
                .first()
                .and_then(|c| directory.region(c))
                .cloned()
        };
        let (home, scope) = match (caller.role, &member) {
            (Role::Dispatcher | Role::Supervisor, Some(m)) => {
                let region = m.region_code.as_deref().and_then(|c| directory.region(c));
                (
                    region.cloned(),
                    format!(
                        "region {} and below",
                        m.region_code.as_deref().unwrap_or_default()
                    ),
                )
            }
            (Role::UnitStaff, Some(m)) => {
                let unit = m.unit_code.as_deref().and_then(|u| directory.unit(u));
                (
                    unit.as_ref()
                        .and_then(|u| directory.region(&u.region_code))
                        .cloned(),
                    format!(
                        "cases unit {} leads or assists",
                        m.unit_code.as_deref().unwrap_or_default()
                    ),
                )
            }
            (Role::GridMember, Some(m)) => (
                m.grid_codes
                    .first()
                    .and_then(|g| directory.region(g))
                    .cloned(),
                format!("grids {} and own reports", m.grid_codes.join(", ")),
            ),
            (Role::Gateway, _) => (root(), "the cases it brought in".to_owned()),
            (Role::Admin, _) => (root(), "the directory and configuration".to_owned()),
            (role, None) => {
                return Err(DomainError::PermissionDenied(format!(
                    "{} has no {role} member record",
                    caller.sub
                )));
            }
        };
        Ok((member, home, scope))
    }

    /// The region a dispatcher's or supervisor's directory reads are confined to: their own,
    /// or one inside it; an admin reads everything (`None`).
    fn reach(&self, caller: &Caller, region_code: &str) -> DomainResult<Option<String>> {
        let directory = self.snapshot();
        if !region_code.is_empty() && directory.region(region_code).is_none() {
            return Err(DomainError::NotFound(format!("no region {region_code:?}")));
        }
        if caller.role == Role::Admin {
            return Ok(Some(region_code.to_owned()).filter(|c| !c.is_empty()));
        }
        let own = directory
            .member(&caller.sub)
            .and_then(|m| m.region_code.clone())
            .ok_or_else(|| DomainError::PermissionDenied("no region on record".into()))?;
        if region_code.is_empty() {
            return Ok(Some(own));
        }
        if !directory.is_within(region_code, &own) {
            return Err(DomainError::PermissionDenied(format!(
                "region {region_code} lies outside your region {own}"
            )));
        }
        Ok(Some(region_code.to_owned()))
    }

    /// `ListUnits`: units whose jurisdiction lies in the region (and the caller's reach), by
    /// code.
    pub fn units_for(
        &self,
        caller: &Caller,
        region_code: &str,
        kind: &str,
        include_retired: bool,
    ) -> DomainResult<Vec<Unit>> {
        let within = self.reach(caller, region_code)?;
        let directory = self.snapshot();
        Ok(directory
            .units()
            .filter(|u| include_retired || !u.retired)
            .filter(|u| kind.is_empty() || u.kind == kind)
            .filter(|u| {
                within
                    .as_deref()
                    .is_none_or(|r| directory.is_within(&u.region_code, r))
            })
            .cloned()
            .collect())
    }

    /// `ListMembers`: members whose scope lies in the region (and the caller's reach), or of a
    /// unit, by subject; phones masked for all but admins (`true` with a member to mask).
    pub fn members_for(
        &self,
        caller: &Caller,
        region_code: &str,
        unit_code: &str,
        include_retired: bool,
    ) -> DomainResult<Vec<(Member, bool)>> {
        let within = self.reach(caller, region_code)?;
        let directory = self.snapshot();
        let in_region = |m: &Member, region: &str| {
            m.region_code
                .iter()
                .chain(m.grid_codes.iter())
                .any(|c| directory.is_within(c, region))
                || m.unit_code.as_ref().is_some_and(|u| {
                    directory
                        .unit(u)
                        .is_some_and(|u| directory.is_within(&u.region_code, region))
                })
        };
        let mask = caller.role != Role::Admin;
        let mut members: Vec<(Member, bool)> = directory
            .members()
            .filter(|m| include_retired || !m.retired)
            .filter(|m| unit_code.is_empty() || m.unit_code.as_deref() == Some(unit_code))
            .filter(|m| within.as_deref().is_none_or(|r| in_region(m, r)))
            .map(|m| (m.clone(), mask))
            .collect();
        members.sort_by(|a, b| a.0.sub.cmp(&b.0.sub));
        Ok(members)
    }

    /// `ListRoutingOverrides`: the overrides of `rules` that route cases in the region's subtree
    /// (the caller's reach): set on the region, inside it or above it; by category, then by the
    /// region's tier (city first) and code.
    pub fn routing_overrides_for(
        &self,
        caller: &Caller,
        region_code: &str,
        rules: &Rules,
    ) -> DomainResult<Vec<RoutingOverride>> {
        let within = self.reach(caller, region_code)?;
        let directory = self.snapshot();
        let mut overrides: Vec<RoutingOverride> = rules
            .routing_overrides()
            .into_iter()
            .filter(|o| {
                within.as_deref().is_none_or(|r| {
                    directory.is_within(&o.region_code, r) || directory.is_within(r, &o.region_code)
                })
            })
            .collect();
        let tier = |o: &RoutingOverride| directory.region(&o.region_code).map(|r| r.tier);
        overrides.sort_by(|a, b| {
            (&a.category_code, tier(a), &a.region_code).cmp(&(
                &b.category_code,
                tier(b),
                &b.region_code,
            ))
        });
        Ok(overrides)
    }
}

impl MemberRoles for LiveDirectory {
    fn member_role(&self, sub: &str) -> Option<Role> {
        self.current.load().member(sub).map(|m| m.role)
    }

    fn is_retired(&self, sub: &str) -> bool {
        self.current
            .load()
            .member_record(sub)
            .is_some_and(|m| m.retired)
    }
}

//! The directory as the running service sees it: an immutable snapshot swapped whole when the
//! stored directory's version moves, whether the change came through this replica or another.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;

use crate::{
    auth::layer::MemberRoles,
    domain::{
        DomainError, DomainResult, Role,
        bundle::{self, BundleError, ImportReport},
        directory::{Directory, Region},
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

/// Where a point is.
#[derive(Debug, Clone)]
pub struct Location {
    pub grid: Region,
    /// The root first, the grid last.
    pub chain: Vec<Region>,
    pub snapped: bool,
    pub distance_m: f64,
    /// The WGS-84 position used, as (lon, lat).
    pub wgs84: (f64, f64),
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

    /// `Locate`: the grid of a point sent in any supported coordinate system.
    pub fn locate(&self, lat: f64, lon: f64, system: CoordSystem) -> DomainResult<Location> {
        check_position(lat, lon)?;
        let (wlon, wlat) = geo::to_wgs84(system, lon, lat);
        let directory = self.snapshot();
        let hit = directory.locate(wlon, wlat).ok_or_else(|| {
            DomainError::NotFound(format!(
                "no grid covers or lies within {} m of ({wlat:.6}, {wlon:.6}) (WGS-84)",
                geo::SNAP_RADIUS_M
            ))
        })?;
        Ok(Location {
            grid: hit.grid.clone(),
            chain: directory
                .chain(&hit.grid.code)
                .into_iter()
                .cloned()
                .collect(),
            snapped: hit.snapped,
            distance_m: hit.distance_m,
            wgs84: (wlon, wlat),
        })
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

//! The directory's tables: reading a whole snapshot, and importing a bundle as one transaction.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait,
};

use super::{StorageError, entities::*};
use crate::{
    domain::{
        Role,
        bundle::{Bundle, Counts, ImportReport},
        directory::{Category, DirectoryParts, Member, Region, Unit},
    },
    geo::Shape,
};

/// The import was validated against a directory that changed before it could commit.
#[derive(Debug, thiserror::Error)]
#[error("the directory changed during the import (now version {0}); validate again")]
pub struct DirectoryMoved(pub i64);

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Moved(#[from] DirectoryMoved),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sea_orm::DbErr> for ImportError {
    fn from(e: sea_orm::DbErr) -> Self {
        ImportError::Storage(e.into())
    }
}

/// Rows per multi-row INSERT: well inside SQLite's and PostgreSQL's bind-parameter limits.
const INSERT_CHUNK: usize = 500;

pub async fn version(db: &impl ConnectionTrait) -> Result<i64, StorageError> {
    Ok(directory_state::Entity::find_by_id(1)
        .one(db)
        .await?
        .map_or(0, |s| s.version))
}

/// Reads the whole directory. A stored row that no longer parses is a storage fault.
pub async fn load(db: &DatabaseConnection) -> Result<DirectoryParts, StorageError> {
    // One read transaction, so the snapshot is of one version.
    let txn = db.begin().await?;
    let version = version(&txn).await?;
    let regions = region::Entity::find().all(&txn).await?;
    let units = unit::Entity::find().all(&txn).await?;
    let members = member::Entity::find().all(&txn).await?;
    let categories = category::Entity::find().all(&txn).await?;
    txn.commit().await?;
    let corrupt = StorageError::Corrupt;
    let mut parts = DirectoryParts {
        version,
        ..DirectoryParts::default()
    };
    for r in regions {
        let geometry: geojson::Geometry = r
            .geometry
            .parse()
            .map_err(|e| corrupt(format!("region {} geometry: {e}", r.code)))?;
        let polygons = match geo::Geometry::<f64>::try_from(geometry)
            .map_err(|e| corrupt(format!("region {} geometry: {e}", r.code)))?
        {
            geo::Geometry::Polygon(p) => geo::MultiPolygon(vec![p]),
            geo::Geometry::MultiPolygon(m) => m,
            _ => return Err(corrupt(format!("region {} geometry is not areal", r.code))),
        };
        let shape = Shape::new(polygons).map_err(|e| corrupt(format!("region {}: {e}", r.code)))?;
        let tier = r
            .tier
            .parse()
            .map_err(|e| corrupt(format!("region {}: {e}", r.code)))?;
        parts.regions.push((
            Region {
                code: r.code,
                name: r.name,
                tier,
                parent_code: r.parent_code,
                retired: r.retired,
            },
            shape,
        ));
    }
    parts.units = units
        .into_iter()
        .map(|u| Unit {
            code: u.code,
            name: u.name,
            kind: u.kind,
            region_code: u.region_code,
            retired: u.retired,
        })
        .collect();
    for m in members {
        let role: Role = m
            .role
            .parse()
            .map_err(|e| corrupt(format!("member {}: {e}", m.sub)))?;
        let grid_codes: Vec<String> = serde_json::from_str(&m.grid_codes)
            .map_err(|e| corrupt(format!("member {} grids: {e}", m.sub)))?;
        parts.members.push(Member {
            sub: m.sub,
            name: m.name,
            role,
            phone: m.phone,
            grid_codes,
            unit_code: m.unit_code,
            region_code: m.region_code,
            retired: m.retired,
        });
    }
    for c in categories {
        parts.categories.push(Category {
            handling_tier: c
                .handling_tier
                .parse()
                .map_err(|e| corrupt(format!("category {}: {e}", c.code)))?,
            severity: c
                .severity
                .parse()
                .map_err(|e| corrupt(format!("category {}: {e}", c.code)))?,
            code: c.code,
            name: c.name,
            class_code: c.class_code,
            class_name: c.class_name,
            unit_kind: c.unit_kind,
        });
    }
    Ok(parts)
}

/// Upserts a validated bundle in one transaction, provided the directory is still at
/// `validated_against` (the version the bundle was checked against). Bumps the version only
/// when something changed, so importing the same bundle twice changes nothing.
pub async fn import(
    db: &DatabaseConnection,
    bundle: &Bundle,
    validated_against: i64,
) -> Result<ImportReport, ImportError> {
    let txn = super::begin_write(db).await?;
    // Take the write lock first (a row lock on PostgreSQL; SQLite's immediate transaction holds
    // the database lock already), so concurrent imports serialise here rather than deadlock.
    txn.execute_unprepared("UPDATE directory_state SET version = version WHERE id = 1")
        .await?;
    let current = version(&txn).await?;
    if current != validated_against {
        return Err(DirectoryMoved(current).into());
    }
    let mut report = ImportReport {
        version: current,
        ..ImportReport::default()
    };

    let existing: HashMap<String, region::Model> = region::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (m.code.clone(), m))
        .collect();
    let rows = bundle.regions.iter().map(|r| region::Model {
        code: r.region.code.clone(),
        name: r.region.name.clone(),
        tier: r.region.tier.as_str().to_owned(),
        parent_code: r.region.parent_code.clone(),
        geometry: r.geometry_json.clone(),
        retired: r.region.retired,
    });
    report.regions = upsert::<region::Entity, _>(&txn, &existing, rows, |m| m.code.clone()).await?;
    report.regions.retired += count_retiring(
        &existing,
        bundle
            .regions
            .iter()
            .map(|r| (&r.region.code, r.region.retired)),
        |m| m.retired,
    );
    report.regions.retired += retire::<region::Entity, _>(
        &txn,
        region::Column::Code,
        region::Column::Retired,
        &bundle.unlisted.regions,
    )
    .await?;

    let existing: HashMap<String, unit::Model> = unit::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (m.code.clone(), m))
        .collect();
    let rows = bundle.units.iter().map(|u| unit::Model {
        code: u.code.clone(),
        name: u.name.clone(),
        kind: u.kind.clone(),
        region_code: u.region_code.clone(),
        retired: u.retired,
    });
    report.units = upsert::<unit::Entity, _>(&txn, &existing, rows, |m| m.code.clone()).await?;
    report.units.retired += count_retiring(
        &existing,
        bundle.units.iter().map(|u| (&u.code, u.retired)),
        |m| m.retired,
    );
    report.units.retired += retire::<unit::Entity, _>(
        &txn,
        unit::Column::Code,
        unit::Column::Retired,
        &bundle.unlisted.units,
    )
    .await?;

    let existing: HashMap<String, member::Model> = member::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (m.sub.clone(), m))
        .collect();
    let mut rows = Vec::with_capacity(bundle.members.len());
    for m in &bundle.members {
        rows.push(member::Model {
            sub: m.sub.clone(),
            name: m.name.clone(),
            role: m.role.as_str().to_owned(),
            phone: m.phone.clone(),
            unit_code: m.unit_code.clone(),
            region_code: m.region_code.clone(),
            grid_codes: serde_json::to_string(&m.grid_codes)
                .map_err(|e| StorageError::corrupt(e.to_string()))?,
            retired: m.retired,
        });
    }
    report.members =
        upsert::<member::Entity, _>(&txn, &existing, rows.into_iter(), |m| m.sub.clone()).await?;
    report.members.retired += count_retiring(
        &existing,
        bundle.members.iter().map(|m| (&m.sub, m.retired)),
        |m| m.retired,
    );
    report.members.retired += retire::<member::Entity, _>(
        &txn,
        member::Column::Sub,
        member::Column::Retired,
        &bundle.unlisted.members,
    )
    .await?;

    let existing: HashMap<String, category::Model> = category::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (m.code.clone(), m))
        .collect();
    let rows = bundle.categories.iter().map(|c| category::Model {
        code: c.code.clone(),
        name: c.name.clone(),
        class_code: c.class_code.clone(),
        class_name: c.class_name.clone(),
        unit_kind: c.unit_kind.clone(),
        handling_tier: c.handling_tier.as_str().to_owned(),
        severity: c.severity.as_str().to_owned(),
    });
    report.categories =
        upsert::<category::Entity, _>(&txn, &existing, rows, |m| m.code.clone()).await?;

    let changed = [
        report.regions,
        report.units,
        report.members,
        report.categories,
    ]
    .iter()
    .any(|c| c.created + c.updated + c.retired > 0);
    if changed {
        report.version = current + 1;
        directory_state::Entity::update(directory_state::ActiveModel {
            id: Set(1),
            version: Set(report.version),
        })
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(report)
}

/// How many of `records` (key, retired) the bundle retires that `existing` holds active.
fn count_retiring<'a, M>(
    existing: &HashMap<String, M>,
    records: impl Iterator<Item = (&'a String, bool)>,
    retired: impl Fn(&M) -> bool,
) -> usize {
    records
        .filter(|(key, now)| *now && existing.get(*key).is_some_and(|m| !retired(m)))
        .count()
}

/// Retires the active rows with these keys; how many it retired.
async fn retire<E, C>(
    txn: &C,
    key: E::Column,
    retired: E::Column,
    keys: &[String],
) -> Result<usize, sea_orm::DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    use sea_orm::{ColumnTrait, QueryFilter};
    let mut count = 0;
    for chunk in keys.chunks(INSERT_CHUNK) {
        let result = E::update_many()
            .col_expr(retired, sea_orm::sea_query::Expr::value(true))
            .filter(key.is_in(chunk.iter().cloned()))
            .filter(retired.eq(false))
            .exec(txn)
            .await?;
        count += usize::try_from(result.rows_affected).unwrap_or(usize::MAX);
    }
    Ok(count)
}

/// Inserts the rows not in `existing` (in chunks) and updates those that differ.
async fn upsert<E, C>(
    txn: &C,
    existing: &HashMap<String, E::Model>,
    rows: impl Iterator<Item = E::Model>,
    key: impl Fn(&E::Model) -> String,
) -> Result<Counts, sea_orm::DbErr>
where
    E: EntityTrait,
    E::Model: sea_orm::IntoActiveModel<E::ActiveModel> + PartialEq,
    E::ActiveModel: sea_orm::ActiveModelTrait<Entity = E> + Send + Sync,
    C: ConnectionTrait,
{
    let mut counts = Counts::default();
    let mut inserts = Vec::new();
    for row in rows {
        match existing.get(&key(&row)) {
            None => {
                counts.created += 1;
                inserts.push(sea_orm::IntoActiveModel::into_active_model(row));
            }
            Some(old) if *old == row => counts.unchanged += 1,
            Some(_) => {
                counts.updated += 1;
                // Every column set: the whole row is the bundle's.
                let mut active = sea_orm::IntoActiveModel::into_active_model(row);
                active = sea_orm::ActiveModelTrait::reset_all(active);
                E::update(active).exec(txn).await?;
            }
        }
    }
    for chunk in chunks(inserts, INSERT_CHUNK) {
        E::insert_many(chunk).exec(txn).await?;
    }
    Ok(counts)
}

fn chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut iter = items.into_iter().peekable();
    while iter.peek().is_some() {
        out.push(iter.by_ref().take(size).collect());
    }
    out
}

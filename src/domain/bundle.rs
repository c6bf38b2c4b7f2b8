//! The directory bundle (DESIGN.md "Directory bundle"): parsed and validated in full before
//! anything is written. The first problem found is the error, naming the record by its index
//! and code.

use std::collections::{HashMap, HashSet};

use geo::{CoordsIter, MultiPolygon, Validation};
use serde::Deserialize;

use super::{
    Role,
    directory::{Category, Directory, Member, Region, Severity, Tier, Unit},
};
use crate::geo::Shape;

/// How far (metres) a child's vertex may lie outside its parent: the bundle's coordinates carry
/// six decimals (about 0.1 m), so shared edges agree only to within rounding.
pub const CONTAINMENT_TOLERANCE_M: f64 = 1.0;

/// The first thing wrong with a bundle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{record}: {reason}")]
pub struct BundleError {
    /// `feature 12 (371102001001)`, `units[3] (371102.police)`, or `bundle`.
    pub record: String,
    pub reason: String,
}

fn bundle_error(reason: impl Into<String>) -> BundleError {
    BundleError {
        record: "bundle".to_owned(),
        reason: reason.into(),
    }
}

/// A validated region of the bundle, with its geometry in the canonical JSON it is stored as.
#[derive(Debug, Clone)]
pub struct BundleRegion {
    pub region: Region,
    pub shape: Shape,
    pub geometry_json: String,
}

/// A bundle that passed every check against itself and the directory it will be merged into.
#[derive(Debug, Default)]
pub struct Bundle {
    pub regions: Vec<BundleRegion>,
    pub units: Vec<Unit>,
    pub members: Vec<Member>,
    pub categories: Vec<Category>,
}

#[derive(Deserialize)]
struct RawCollection {
    #[serde(rename = "type")]
    kind: String,
    features: Vec<serde_json::Value>,
    #[serde(default)]
    units: Vec<serde_json::Value>,
    #[serde(default)]
    members: Vec<serde_json::Value>,
    #[serde(default)]
    categories: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProperties {
    code: String,
    name: String,
    tier: String,
    parent: Option<String>,
}

#[derive(Deserialize)]
struct RawUnit {
    code: String,
    name: String,
    kind: String,
    region: String,
}

#[derive(Deserialize)]
struct RawMember {
    sub: String,
    name: String,
    role: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    grids: Vec<String>,
    unit: Option<String>,
    region: Option<String>,
}

#[derive(Deserialize)]
struct RawCategory {
    code: String,
    name: String,
    unit_kind: String,
    handling_tier: String,
    severity: String,
    class: String,
    class_name: String,
}

fn code_of(value: &serde_json::Value, key: &str) -> String {
    value
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned()
}

/// Parses and validates `bytes` as a bundle to be merged into `existing`.
pub fn parse(bytes: &[u8], existing: &Directory) -> Result<Bundle, BundleError> {
    let text = std::str::from_utf8(bytes).map_err(|e| bundle_error(format!("not UTF-8: {e}")))?;
    let raw: RawCollection = serde_json::from_str(text)
        .map_err(|e| bundle_error(format!("not a GeoJSON FeatureCollection: {e}")))?;
    if raw.kind != "FeatureCollection" {
        return Err(bundle_error(format!(
            "type is {:?}; a bundle is a GeoJSON FeatureCollection",
            raw.kind
        )));
    }
    let regions = parse_regions(&raw.features, existing)?;
    let units = parse_units(&raw.units, &regions, existing)?;
    let members = parse_members(&raw.members, &regions, &units, existing)?;
    let categories = parse_categories(&raw.categories)?;
    Ok(Bundle {
        regions,
        units,
        members,
        categories,
    })
}

fn parse_regions(
    features: &[serde_json::Value],
    existing: &Directory,
) -> Result<Vec<BundleRegion>, BundleError> {
    let mut out: Vec<BundleRegion> = Vec::with_capacity(features.len());
    let mut index_of: HashMap<String, usize> = HashMap::with_capacity(features.len());
    for (i, feature) in features.iter().enumerate() {
        let fail = |reason: String| BundleError {
            record: format!("feature {i} ({})", code_of(&feature["properties"], "code")),
            reason,
        };
        if feature.get("type").and_then(|t| t.as_str()) != Some("Feature") {
            return Err(fail("not a GeoJSON Feature".into()));
        }
        let props: RawProperties = serde_json::from_value(feature["properties"].clone())
            .map_err(|e| fail(format!("properties: {e}")))?;
        let tier: Tier = props.tier.parse().map_err(fail)?;
        if props.name.trim().is_empty() {
            return Err(fail("name is empty".into()));
        }
        check_code(&props.code, tier, props.parent.as_deref()).map_err(fail)?;
        if index_of.insert(props.code.clone(), i).is_some() {
            return Err(fail(format!("duplicate code {}", props.code)));
        }
        let geometry = feature
            .get("geometry")
            .filter(|g| !g.is_null())
            .ok_or_else(|| fail("geometry is missing".into()))?;
        let (polygons, geometry_json) = parse_geometry(geometry).map_err(fail)?;
        let shape = Shape::new(polygons).map_err(|e| fail(e.to_string()))?;
        out.push(BundleRegion {
            region: Region {
                code: props.code,
                name: props.name,
                tier,
                parent_code: props.parent,
            },
            shape,
            geometry_json,
        });
    }
    // Parents: in the bundle or already in the directory, one tier up, and covering the child.
    let by_code: HashMap<&str, &BundleRegion> =
        out.iter().map(|r| (r.region.code.as_str(), r)).collect();
    for (i, r) in out.iter().enumerate() {
        let fail = |reason: String| BundleError {
            record: format!("feature {i} ({})", r.region.code),
            reason,
        };
        let Some(parent_code) = r.region.parent_code.as_deref() else {
            continue;
        };
        let (parent_tier, parent_shape) = match by_code.get(parent_code) {
            Some(p) => (p.region.tier, &p.shape),
            None => match existing.entry(parent_code) {
                Some(e) => (e.region.tier, &e.shape),
                None => return Err(fail(format!("unknown parent {parent_code}"))),
            },
        };
        if Some(parent_tier) != r.region.tier.parent() {
            return Err(fail(format!(
                "parent {parent_code} is a {parent_tier}; a {} needs a {} parent",
                r.region.tier,
                r.region.tier.parent().map_or("no", Tier::as_str)
            )));
        }
        if let Some(c) = r.shape.polygons().coords_iter().find(|c| {
            !parent_shape.covers(c.x, c.y)
                && parent_shape.distance_m(c.x, c.y) > CONTAINMENT_TOLERANCE_M
        }) {
            return Err(fail(format!(
                "lies outside its parent {parent_code} (vertex {}, {} is more than {CONTAINMENT_TOLERANCE_M} m outside)",
                c.x, c.y
            )));
        }
    }
    Ok(out)
}

/// Codes are digits: district 6 (the national code), township +3, community +3, grid +3.
fn check_code(code: &str, tier: Tier, parent: Option<&str>) -> Result<(), String> {
    if code.len() != tier.code_len() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "code {code:?} is not a {tier} code ({} digits)",
            tier.code_len()
        ));
    }
    match (tier, parent) {
        (Tier::City, Some(p)) => Err(format!("a city has no parent, but {p} is given")),
        (Tier::City, None) => Ok(()),
        (_, None) => Err(format!("a {tier} needs a parent")),
        (Tier::District, Some(_)) => Ok(()),
        (_, Some(p)) if !code.starts_with(p) => {
            Err(format!("code {code} does not extend its parent's code {p}"))
        }
        _ => Ok(()),
    }
}

/// A GeoJSON Polygon or MultiPolygon → geo, valid (closed rings, no self-crossing), with the
/// canonical JSON it is stored as.
fn parse_geometry(value: &serde_json::Value) -> Result<(MultiPolygon<f64>, String), String> {
    let geometry = geojson::Geometry::from_json_value(value.clone())
        .map_err(|e| format!("invalid geometry: {e}"))?;
    let polygons = match geo::Geometry::<f64>::try_from(geometry.clone())
        .map_err(|e| format!("invalid geometry: {e}"))?
    {
        geo::Geometry::Polygon(p) => MultiPolygon(vec![p]),
        geo::Geometry::MultiPolygon(m) => m,
        other => {
            return Err(format!(
                "geometry must be a Polygon or MultiPolygon, not {}",
                geometry_name(&other)
            ));
        }
    };
    for (k, polygon) in polygons.iter().enumerate() {
        if let Err(e) = polygon.check_validation() {
            return Err(format!("invalid geometry (polygon {k}): {e}"));
        }
    }
    let json = serde_json::to_string(&geometry).map_err(|e| format!("geometry: {e}"))?;
    Ok((polygons, json))
}

fn geometry_name(g: &geo::Geometry<f64>) -> &'static str {
    match g {
        geo::Geometry::Point(_) => "a Point",
        geo::Geometry::Line(_) | geo::Geometry::LineString(_) => "a LineString",
        geo::Geometry::MultiPoint(_) => "a MultiPoint",
        geo::Geometry::MultiLineString(_) => "a MultiLineString",
        geo::Geometry::GeometryCollection(_) => "a GeometryCollection",
        _ => "another type",
    }
}

fn region_known(code: &str, regions: &[BundleRegion], existing: &Directory) -> Option<Tier> {
    regions
        .iter()
        .find(|r| r.region.code == code)
        .map(|r| r.region.tier)
        .or_else(|| existing.region(code).map(|r| r.tier))
}

fn parse_units(
    raw: &[serde_json::Value],
    regions: &[BundleRegion],
    existing: &Directory,
) -> Result<Vec<Unit>, BundleError> {
    let region_codes: HashSet<&str> = regions.iter().map(|r| r.region.code.as_str()).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let fail = |reason: String| BundleError {
            record: format!("units[{i}] ({})", code_of(value, "code")),
            reason,
        };
        let u: RawUnit = serde_json::from_value(value.clone()).map_err(|e| fail(e.to_string()))?;
        if u.code.is_empty() || u.name.trim().is_empty() || u.kind.is_empty() {
            return Err(fail("code, name and kind must not be empty".into()));
        }
        if !seen.insert(u.code.clone()) {
            return Err(fail(format!("duplicate code {}", u.code)));
        }
        if !region_codes.contains(u.region.as_str()) && existing.region(&u.region).is_none() {
            return Err(fail(format!("unknown region {}", u.region)));
        }
        out.push(Unit {
            code: u.code,
            name: u.name,
            kind: u.kind,
            region_code: u.region,
        });
    }
    Ok(out)
}

fn parse_members(
    raw: &[serde_json::Value],
    regions: &[BundleRegion],
    units: &[Unit],
    existing: &Directory,
) -> Result<Vec<Member>, BundleError> {
    let unit_codes: HashSet<&str> = units.iter().map(|u| u.code.as_str()).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let fail = |reason: String| BundleError {
            record: format!("members[{i}] ({})", code_of(value, "sub")),
            reason,
        };
        let m: RawMember =
            serde_json::from_value(value.clone()).map_err(|e| fail(e.to_string()))?;
        if m.sub.is_empty() || m.name.trim().is_empty() {
            return Err(fail("sub and name must not be empty".into()));
        }
        if !seen.insert(m.sub.clone()) {
            return Err(fail(format!("duplicate sub {}", m.sub)));
        }
        let role: Role = m
            .role
            .parse()
            .map_err(|e: super::access::UnknownRole| fail(e.to_string()))?;
        let mut member = Member {
            sub: m.sub,
            name: m.name,
            role,
            phone: m.phone,
            grid_codes: Vec::new(),
            unit_code: None,
            region_code: None,
        };
        match role {
            Role::GridMember => {
                if m.grids.is_empty() {
                    return Err(fail("a grid_member needs grids".into()));
                }
                for g in &m.grids {
                    match region_known(g, regions, existing) {
                        Some(Tier::Grid) => {}
                        Some(t) => return Err(fail(format!("{g} is a {t}, not a grid"))),
                        None => return Err(fail(format!("unknown grid {g}"))),
                    }
                }
                member.grid_codes = m.grids;
            }
            Role::UnitStaff => {
                let unit = m
                    .unit
                    .ok_or_else(|| fail("a unit_staff needs a unit".into()))?;
                let known = unit_codes.contains(unit.as_str())
                    || existing.unit(&unit).is_some()
                    || unit
                        .strip_suffix(".center")
                        .is_some_and(|r| region_known(r, regions, existing).is_some());
                if !known {
                    return Err(fail(format!("unknown unit {unit}")));
                }
                member.unit_code = Some(unit);
            }
            Role::Dispatcher | Role::Supervisor => {
                let region = m
                    .region
                    .ok_or_else(|| fail(format!("a {role} needs a region")))?;
                if region_known(&region, regions, existing).is_none() {
                    return Err(fail(format!("unknown region {region}")));
                }
                member.region_code = Some(region);
            }
            Role::Gateway | Role::Admin => {
                return Err(fail(format!(
                    "role {role} is a service identity and has no member record"
                )));
            }
        }
        out.push(member);
    }
    Ok(out)
}

fn parse_categories(raw: &[serde_json::Value]) -> Result<Vec<Category>, BundleError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let fail = |reason: String| BundleError {
            record: format!("categories[{i}] ({})", code_of(value, "code")),
            reason,
        };
        let c: RawCategory =
            serde_json::from_value(value.clone()).map_err(|e| fail(e.to_string()))?;
        if c.code.is_empty() || c.name.trim().is_empty() || c.unit_kind.is_empty() {
            return Err(fail("code, name and unit_kind must not be empty".into()));
        }
        if !seen.insert(c.code.clone()) {
            return Err(fail(format!("duplicate code {}", c.code)));
        }
        out.push(Category {
            code: c.code,
            name: c.name,
            class_code: c.class,
            class_name: c.class_name,
            unit_kind: c.unit_kind,
            handling_tier: c.handling_tier.parse().map_err(fail)?,
            severity: c.severity.parse::<Severity>().map_err(fail)?,
        });
    }
    Ok(out)
}

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

/// What an import did, per kind of record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Active before, retired now: by `"retired": true` (also counted as updated) or for being
    /// left out of a bundle for their subtree.
    pub retired: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    pub regions: Counts,
    pub units: Counts,
    pub members: Counts,
    pub categories: Counts,
    pub version: i64,
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
    /// Active records the directory holds in the subtree the bundle was imported for, which the
    /// bundle no longer lists: they are retired ([`parse`] with `retire_unlisted_under`).
    pub unlisted: Unlisted,
}

/// Codes of records a subtree import retires because its bundle no longer lists them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unlisted {
    pub regions: Vec<String>,
    pub units: Vec<String>,
    pub members: Vec<String>,
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
    #[serde(default)]
    retired: bool,
}

#[derive(Deserialize)]
struct RawUnit {
    code: String,
    name: String,
    kind: String,
    region: String,
    #[serde(default)]
    retired: bool,
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
    #[serde(default)]
    retired: bool,
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
    parse_retiring(bytes, existing, None)
}

/// [`parse`], and with `retire_unlisted_under` (a region code), the bundle describes that region's whole
/// subtree: the subtree's regions, the units whose jurisdiction lies in it and the members
/// whose scope lies in it, which the directory holds and the bundle does not list, are retired.
/// The bundle must list the region itself, so a mistyped code cannot retire a district.
pub fn parse_retiring(
    bytes: &[u8],
    existing: &Directory,
    retire_unlisted_under: Option<&str>,
) -> Result<Bundle, BundleError> {
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
    let mut bundle = Bundle {
        regions,
        units,
        members,
        categories,
        unlisted: Unlisted::default(),
    };
    if let Some(root) = retire_unlisted_under {
        bundle.unlisted = unlisted_under(root, &bundle, existing)?;
    }
    check_retired_parents(&bundle, existing)?;
    Ok(bundle)
}

/// What a bundle for the subtree under `root` leaves out of what `existing` holds there.
fn unlisted_under(
    root: &str,
    bundle: &Bundle,
    existing: &Directory,
) -> Result<Unlisted, BundleError> {
    if !bundle.regions.iter().any(|r| r.region.code == root) {
        return Err(bundle_error(format!(
            "retire_unlisted_under names {root}, which the bundle does not list: a bundle for a \
             subtree lists its top region (with \"retired\": true to retire all of it)"
        )));
    }
    let regions: HashSet<&str> = bundle
        .regions
        .iter()
        .map(|r| r.region.code.as_str())
        .collect();
    let units: HashSet<&str> = bundle.units.iter().map(|u| u.code.as_str()).collect();
    let members: HashSet<&str> = bundle.members.iter().map(|m| m.sub.as_str()).collect();
    // The subtree as the bundle will leave it: its own regions and the directory's.
    let within = |code: &str| {
        let mut next = Some(code.to_owned());
        for _ in 0..=Tier::ALL.len() {
            let Some(c) = next else { return false };
            if c == root {
                return true;
            }
            next = bundle
                .regions
                .iter()
                .find(|r| r.region.code == c)
                .map(|r| r.region.parent_code.clone())
                .unwrap_or_else(|| existing.region(&c).and_then(|r| r.parent_code.clone()));
        }
        false
    };
    let mut out = Unlisted::default();
    let mut codes: Vec<&str> = existing.region_codes().collect();
    codes.sort_unstable();
    for code in codes {
        if let Some(r) = existing.region(code)
            && !r.retired
            && !regions.contains(code)
            && within(code)
        {
            out.regions.push(code.to_owned());
        }
    }
    for u in existing.units() {
        if !u.retired && !units.contains(u.code.as_str()) && within(&u.region_code) {
            out.units.push(u.code.clone());
        }
    }
    let mut subs: Vec<&Member> = existing.members().collect();
    subs.sort_by(|a, b| a.sub.cmp(&b.sub));
    for m in subs {
        if m.retired || members.contains(m.sub.as_str()) {
            continue;
        }
        let unit_region = m.unit_code.as_deref().and_then(|u| {
            bundle
                .units
                .iter()
                .find(|x| x.code == u)
                .map(|x| x.region_code.clone())
                .or_else(|| existing.unit(u).map(|x| x.region_code))
        });
        let places: Vec<&str> = m
            .grid_codes
            .iter()
            .map(String::as_str)
            .chain(m.region_code.as_deref())
            .chain(unit_region.as_deref())
            .collect();
        if !places.is_empty() && places.iter().all(|p| within(p)) {
            out.members.push(m.sub.clone());
        }
    }
    Ok(out)
}

/// An active region under a retired parent would be located but have no chain to route by:
/// refuse the bundle that leaves one, naming it.
fn check_retired_parents(bundle: &Bundle, existing: &Directory) -> Result<(), BundleError> {
    let listed: HashMap<&str, &BundleRegion> = bundle
        .regions
        .iter()
        .map(|r| (r.region.code.as_str(), r))
        .collect();
    let unlisted: HashSet<&str> = bundle.unlisted.regions.iter().map(String::as_str).collect();
    let retired = |code: &str| match listed.get(code) {
        Some(r) => r.region.retired,
        None => unlisted.contains(code) || existing.region(code).is_some_and(|r| r.retired),
    };
    for (i, r) in bundle.regions.iter().enumerate() {
        if let Some(parent) = r.region.parent_code.as_deref()
            && !r.region.retired
            && retired(parent)
        {
            return Err(BundleError {
                record: format!("feature {i} ({})", r.region.code),
                reason: format!("its parent {parent} is retired; retire it too, or move it"),
            });
        }
        if r.region.retired
            && let Some(entry) = existing.entry(&r.region.code)
            && let Some(child) = entry.children.iter().find(|c| !retired(c))
        {
            return Err(BundleError {
                record: format!("feature {i} ({})", r.region.code),
                reason: format!(
                    "is retired but its child {child} is not; retire the children too, or import \
                     the subtree with retire_unlisted_under"
                ),
            });
        }
    }
    Ok(())
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
                retired: props.retired,
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
            retired: u.retired,
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
            retired: m.retired,
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

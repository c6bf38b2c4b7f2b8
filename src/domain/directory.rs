//! The directory's things: tiers, regions, units, members and categories, and the read-only
//! snapshot every request consults.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    str::FromStr,
};

use super::Role;
use crate::geo::{GridIndex, Shape};

/// The maps every call looks a code or subject up in (regions, members): foldhash instead of
/// SipHash. Their keys come from imported directories, never from a caller, so there is no
/// flooding to defend against here, and a lookup is several times cheaper (issue 20).
pub type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// The five tiers of the region tree, from the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    City,
    District,
    Township,
    Community,
    Grid,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::City,
        Tier::District,
        Tier::Township,
        Tier::Community,
        Tier::Grid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::City => "city",
            Tier::District => "district",
            Tier::Township => "township",
            Tier::Community => "community",
            Tier::Grid => "grid",
        }
    }

    /// The tier a region of this tier must have as its parent.
    pub fn parent(self) -> Option<Tier> {
        match self {
            Tier::City => None,
            Tier::District => Some(Tier::City),
            Tier::Township => Some(Tier::District),
            Tier::Community => Some(Tier::Township),
            Tier::Grid => Some(Tier::Community),
        }
    }

    /// The tier below this one; `None` for grids.
    pub fn below(self) -> Option<Tier> {
        match self {
            Tier::City => Some(Tier::District),
            Tier::District => Some(Tier::Township),
            Tier::Township => Some(Tier::Community),
            Tier::Community => Some(Tier::Grid),
            Tier::Grid => None,
        }
    }

    /// How many digits a code of this tier has (DESIGN.md "Directory").
    pub fn code_len(self) -> usize {
        match self {
            Tier::City | Tier::District => 6,
            Tier::Township => 9,
            Tier::Community => 12,
            Tier::Grid => 15,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!("unknown tier {s:?}; expected city, district, township, community or grid")
            })
    }
}

/// How serious a category item is; picks the SLA class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    General,
    Complex,
    Urgent,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::General => "general",
            Severity::Complex => "complex",
            Severity::Urgent => "urgent",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "general" => Ok(Severity::General),
            "complex" => Ok(Severity::Complex),
            "urgent" => Ok(Severity::Urgent),
            _ => Err(format!(
                "unknown severity {s:?}; expected general, complex or urgent"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub parent_code: Option<String>,
    /// Kept with its history, but no longer located or given new cases.
    pub retired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub region_code: String,
    /// Kept with its cases, but no longer routed or dispatched to.
    pub retired: bool,
}

/// The kind of every region's governance center (综治中心).
pub const CENTER_KIND: &str = "center";

/// The code of a region's center: `{region code}.center`.
pub fn center_code(region_code: &str) -> String {
    format!("{region_code}.{CENTER_KIND}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub sub: String,
    pub name: String,
    pub role: Role,
    pub phone: String,
    /// Grid members: their grids.
    pub grid_codes: Vec<String>,
    /// Unit staff: their unit.
    pub unit_code: Option<String>,
    /// Dispatchers and supervisors: their region.
    pub region_code: Option<String>,
    /// Left the job: every call of theirs is refused.
    pub retired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub code: String,
    pub name: String,
    pub class_code: String,
    pub class_name: String,
    pub unit_kind: String,
    pub handling_tier: Tier,
    pub severity: Severity,
}

/// Where [`Directory::locate`] found a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Located<'a> {
    pub grid: &'a Region,
    /// No grid covers the point; it was snapped to this one.
    pub snapped: bool,
    /// Metres to the grid when snapped; 0 when covered.
    pub distance_m: f64,
}

/// A region with what the snapshot knows about it.
#[derive(Debug)]
pub struct RegionEntry {
    pub region: Region,
    pub shape: Shape,
    /// Children's codes, ascending.
    pub children: Vec<String>,
}

/// One consistent, immutable view of the whole directory at one version. Replaced whole when
/// the directory changes; never mutated in place.
#[derive(Debug)]
pub struct Directory {
    pub version: i64,
    regions: FastMap<RegionEntry>,
    /// Root regions' codes (normally the one city), ascending.
    roots: Vec<String>,
    units: BTreeMap<String, Unit>,
    /// Unit codes by jurisdiction region.
    units_by_region: HashMap<String, Vec<String>>,
    members: FastMap<Member>,
    categories: BTreeMap<String, Category>,
    grids: GridIndex,
}

/// The parts a snapshot is built from, as storage reads them.
#[derive(Debug, Default)]
pub struct DirectoryParts {
    pub version: i64,
    pub regions: Vec<(Region, Shape)>,
    pub units: Vec<Unit>,
    pub members: Vec<Member>,
    pub categories: Vec<Category>,
}

impl Directory {
    pub fn build(parts: DirectoryParts) -> Directory {
        let mut regions: FastMap<RegionEntry> =
            FastMap::with_capacity_and_hasher(parts.regions.len(), Default::default());
        let mut grid_shapes = Vec::new();
        for (region, shape) in parts.regions {
            if region.tier == Tier::Grid && !region.retired {
                grid_shapes.push((region.code.clone(), shape.clone()));
            }
            regions.insert(
                region.code.clone(),
                RegionEntry {
                    region,
                    shape,
                    children: Vec::new(),
                },
            );
        }
        let mut roots = Vec::new();
        let links: Vec<(String, Option<String>)> = regions
            .values()
            .map(|e| (e.region.code.clone(), e.region.parent_code.clone()))
            .collect();
        for (code, parent) in links {
            match parent.and_then(|p| regions.get_mut(&p)) {
                Some(parent) => parent.children.push(code),
                None => roots.push(code),
            }
        }
        for entry in regions.values_mut() {
            entry.children.sort();
        }
        roots.sort();
        let mut units_by_region: HashMap<String, Vec<String>> = HashMap::new();
        for unit in &parts.units {
            units_by_region
                .entry(unit.region_code.clone())
                .or_default()
                .push(unit.code.clone());
        }
        Directory {
            version: parts.version,
            roots,
            units: parts
                .units
                .into_iter()
                .map(|u| (u.code.clone(), u))
                .collect(),
            units_by_region,
            members: parts
                .members
                .into_iter()
                .map(|m| (m.sub.clone(), m))
                .collect(),
            categories: parts
                .categories
                .into_iter()
                .map(|c| (c.code.clone(), c))
                .collect(),
            grids: GridIndex::build(grid_shapes),
            regions,
        }
    }

    pub fn empty() -> Directory {
        Directory::build(DirectoryParts::default())
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    pub fn region(&self, code: &str) -> Option<&Region> {
        self.regions.get(code).map(|e| &e.region)
    }

    pub fn entry(&self, code: &str) -> Option<&RegionEntry> {
        self.regions.get(code)
    }

    /// Every region's code, in no particular order.
    pub fn region_codes(&self) -> impl Iterator<Item = &str> {
        self.regions.keys().map(String::as_str)
    }

    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// The region and its ancestors, the root first.
    pub fn chain(&self, code: &str) -> Vec<&Region> {
        let mut chain = Vec::new();
        let mut next = self.region(code);
        while let Some(region) = next {
            chain.push(region);
            // A malformed tree cannot loop forever: there are at most five tiers.
            if chain.len() > Tier::ALL.len() {
                break;
            }
            next = region.parent_code.as_deref().and_then(|p| self.region(p));
        }
        chain.reverse();
        chain
    }

    /// The ancestor of `code` (or itself) at `tier`.
    pub fn ancestor_at(&self, code: &str, tier: Tier) -> Option<&Region> {
        self.chain(code).into_iter().find(|r| r.tier == tier)
    }

    /// Whether `code` is `ancestor` or lies below it.
    pub fn is_within(&self, code: &str, ancestor: &str) -> bool {
        self.chain(code).iter().any(|r| r.code == ancestor)
    }

    /// A unit by code; every region has a center, listed or not.
    pub fn unit(&self, code: &str) -> Option<Unit> {
        if let Some(unit) = self.units.get(code) {
            return Some(unit.clone());
        }
        let region_code = code.strip_suffix(".center")?;
        let region = self.region(region_code)?;
        Some(Unit {
            code: code.to_owned(),
            name: format!("{}综治中心", region.name),
            kind: CENTER_KIND.to_owned(),
            region_code: region.code.clone(),
            retired: region.retired,
        })
    }

    /// A unit that may be given cases: known and not retired.
    pub fn active_unit(&self, code: &str) -> Option<Unit> {
        self.unit(code).filter(|u| !u.retired)
    }

    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// The active unit of `kind` whose jurisdiction is exactly `region_code`, if any.
    pub fn unit_of_kind_at(&self, region_code: &str, kind: &str) -> Option<Unit> {
        if kind == CENTER_KIND {
            return self.active_unit(&center_code(region_code));
        }
        self.units_by_region
            .get(region_code)?
            .iter()
            .filter_map(|c| self.units.get(c))
            .find(|u| u.kind == kind && !u.retired)
            .cloned()
    }

    /// An active member: a retired one is as good as unknown to everything that decides access.
    pub fn member(&self, sub: &str) -> Option<&Member> {
        self.members.get(sub).filter(|m| !m.retired)
    }

    /// A member's record, retired or not.
    pub fn member_record(&self, sub: &str) -> Option<&Member> {
        self.members.get(sub)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn category(&self, code: &str) -> Option<&Category> {
        self.categories.get(code)
    }

    pub fn categories(&self) -> impl Iterator<Item = &Category> {
        self.categories.values()
    }

    pub fn grids(&self) -> &GridIndex {
        &self.grids
    }

    /// The grid a WGS-84 point belongs to (DESIGN.md "Locating a point"): the active grid that
    /// covers it (the smallest code on a shared edge), else the nearest within 50 m.
    pub fn locate(&self, lon: f64, lat: f64) -> Option<Located<'_>> {
        let hit = self.grids.locate(lon, lat)?;
        Some(Located {
            grid: self.region(hit.code)?,
            snapped: hit.snapped,
            distance_m: hit.distance_m,
        })
    }

    /// The lowest active region whose shape covers a WGS-84 point, walking down from the roots.
    pub fn lowest_covering(&self, lon: f64, lat: f64) -> Option<&Region> {
        let mut level: &[String] = &self.roots;
        let mut found = None;
        'down: loop {
            for code in level {
                if let Some(entry) = self.regions.get(code)
                    && !entry.region.retired
                    && entry.shape.covers(lon, lat)
                {
                    found = Some(&entry.region);
                    level = &entry.children;
                    continue 'down;
                }
            }
            return found;
        }
    }
}

// The map: Leaflet for pan and zoom only, and one canvas overlay (a Leaflet renderer) that draws
// the directory's shapes as a few batched Path2Ds and the cases as clustered pins. The canvas is
// redrawn at the end of a move or zoom; while panning it moves with the map pane, and during
// the zoom animation it is scaled with it, so frames stay cheap however many shapes and pins.
//
// Shapes and pins are also kept as visually-hidden DOM lists (`region-shape`, `case-pin`),
// updated imperatively, for assistive technology and tests.
import * as L from "leaflet";
import Supercluster, { type ClusterProperties, type PointFeature } from "supercluster";
import { directory } from "./api";
import { Tier, type Region } from "./gen/gridcase/v1/common_pb";
import { SlaState } from "./gen/gridcase/v1/case_pb";
import { SLA_COLORS, isLate, slaName, slaText, statusName, statusText, tierName } from "./format";
import { store, type Pin } from "./store";
import { t } from "./i18n";

/** The zoom level at which the shapes are projected once; drawing scales from it. */
const Z = 14;
const WORLD = 256 * 2 ** Z;
const R2D = Math.PI / 180;
const MAX_LAT = 85.0511287798;

function projX(lon: number): number {
  return ((lon + 180) / 360) * WORLD;
}
function projY(lat: number): number {
  const l = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat));
  const s = Math.sin(l * R2D);
  return (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * WORLD;
}

export interface Shape {
  code: string;
  name: string;
  tier: string;
  parent: string;
  path: Path2D;
  /** Bounding box in zoom-14 pixels: x0, y0, x1, y1. */
  bb: [number, number, number, number];
}

interface ShapeSet {
  tier: Tier;
  shapes: Shape[];
  buckets: Map<number, Shape[]>;
  /** Every shape's outline in one path, made on first draw. */
  edges?: Path2D;
}

function edgesOf(set: ShapeSet): Path2D {
  if (!set.edges) {
    const p = new Path2D();
    for (const s of set.shapes) p.addPath(s.path);
    set.edges = p;
  }
  return set.edges;
}

const CELL = 1024;
const bucketKey = (cx: number, cy: number) => cx * 65536 + cy;

function geometryPath(g: { type: string; coordinates: unknown }, bb: number[]): Path2D {
  const p = new Path2D();
  const polys = (g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : []) as number[][][][];
  for (const poly of polys) {
    for (const ring of poly) {
      for (let i = 0; i < ring.length; i++) {
        const x = projX(ring[i][0]);
        const y = projY(ring[i][1]);
        if (x < bb[0]) bb[0] = x;
        if (y < bb[1]) bb[1] = y;
        if (x > bb[2]) bb[2] = x;
        if (y > bb[3]) bb[3] = y;
        if (i === 0) p.moveTo(x, y);
        else p.lineTo(x, y);
      }
      p.closePath();
    }
  }
  return p;
}

function parseShapes(geojson: string, tier: Tier): ShapeSet {
  const fc = JSON.parse(geojson) as { features: { properties: Record<string, unknown>; geometry: { type: string; coordinates: unknown } }[] };
  const shapes: Shape[] = [];
  const buckets = new Map<number, Shape[]>();
  for (const f of fc.features) {
    if (!f.geometry) continue;
    const bb = [Infinity, Infinity, -Infinity, -Infinity];
    const path = geometryPath(f.geometry, bb);
    const pr = f.properties ?? {};
    const s: Shape = {
      code: String(pr.code ?? ""),
      name: String(pr.name ?? ""),
      tier: String(pr.tier ?? ""),
      parent: String(pr.parent ?? ""),
      path,
      bb: bb as Shape["bb"],
    };
    shapes.push(s);
    for (let cx = Math.floor(bb[0] / CELL); cx <= Math.floor(bb[2] / CELL); cx++)
      for (let cy = Math.floor(bb[1] / CELL); cy <= Math.floor(bb[3] / CELL); cy++) {
        const k = bucketKey(cx, cy);
        const list = buckets.get(k);
        if (list) list.push(s);
        else buckets.set(k, [s]);
      }
  }
  return { tier, shapes, buckets };
}

/** Which simplification band a zoom falls in; shapes are fetched again when it changes. */
function bandOf(zoom: number): number {
  return zoom < 9 ? 8 : zoom < 11 ? 10 : zoom < 13 ? 12 : 14;
}

const TIER_ORDER = [Tier.CITY, Tier.DISTRICT, Tier.TOWNSHIP, Tier.COMMUNITY, Tier.GRID];
const tierIndex = (t: Tier) => TIER_ORDER.indexOf(t);

/** How many open / late / warned cases a region holds, from the pins. */
export interface Figures {
  open: number;
  late: number;
  warned: number;
}

/** Counts pins per region code: grid codes carry their ancestors' codes as prefixes. */
function countFigures(pins: Iterable<Pin>): Map<string, Figures> {
  const m = new Map<string, Figures>();
  const bump = (k: string, p: Pin) => {
    let f = m.get(k);
    if (!f) m.set(k, (f = { open: 0, late: 0, warned: 0 }));
    f.open++;
    if (isLate(p.sla)) f.late++;
    else if (p.sla === SlaState.WARNED) f.warned++;
  };
  for (const p of pins) {
    const g = p.grid;
    if (!g) continue;
    bump(g.slice(0, 6), p);
    if (g.length >= 9) bump(g.slice(0, 9), p);
    if (g.length >= 12) bump(g.slice(0, 12), p);
    if (g.length > 12) bump(g, p);
  }
  return m;
}

interface PinProps {
  id: string;
  s: number;
}
interface ClusterProps {
  s0: number;
  s1: number;
  s2: number;
  s3: number;
  s4: number;
  s5: number;
}

/** What was drawn where (layer pixels), for clicks and hovers. */
interface Drawn {
  x: number;
  y: number;
  r: number;
  id?: string;
  cluster?: number;
  count?: number;
  lat: number;
  lon: number;
}

const FILLS = ["rgba(248,250,252,0.92)", "rgba(214,232,245,0.92)", "rgba(170,207,234,0.92)", "rgba(120,176,222,0.92)"];
const FILLS_OVER_TILES = ["rgba(255,255,255,0.15)", "rgba(120,176,222,0.28)", "rgba(80,150,210,0.36)", "rgba(40,110,190,0.44)"];
const fillClass = (open: number) => (open === 0 ? 0 : open < 3 ? 1 : open < 10 ? 2 : 3);

export interface MapOptions {
  home: Region;
  /** The region whose subtree the map shows (a grid member's home grid's community). */
  root: string;
  rootTier: Tier;
  homeGeometry: string;
  tileUrl: string | null;
  onPin: (id: string) => void;
  onRegion: (s: Shape | null) => void;
  /** A cluster of cases at one spot was clicked: their ids. */
  onCluster: (ids: string[]) => void;
}

export class CaseMap {
  readonly map: L.Map;
  private overlay: L.Layer & { _draw?: () => void };
  private canvas!: HTMLCanvasElement;
  private origin = { x: 0, y: 0 };
  private sets = new Map<string, ShapeSet>();
  private fine: ShapeSet | null = null;
  private outlines: ShapeSet[] = [];
  private homeShape: Shape | null = null;
  private fillPaths: Path2D[] = [];
  private figures = new Map<string, Figures>();
  private index: Supercluster<PinProps, ClusterProps> | null = null;
  private drawn: Drawn[] = [];
  private hovered: Shape | null = null;
  private selectedRegion: Shape | null = null;
  private selectedCase: string | null = null;
  private band = 0;
  private wanted = "";
  private tip: HTMLDivElement;
  private regionList: HTMLUListElement;
  private pinList: HTMLUListElement;
  private pinItems = new Map<string, HTMLLIElement>();
  private rebuildTimer: number | null = null;
  private lastRebuild = -Infinity;
  private moving = false;
  private rebuildAfterMove = false;
  /** What the index was built from, per case: a change of anything else needs no rebuild. */
  private indexed = new Map<string, { s: number; lat: number; lon: number }>();
  private drawQueued = false;
  private readyResolve!: () => void;
  /** Resolves after the first complete draw of shapes and pins has been painted. */
  readonly ready: Promise<void> = new Promise((r) => (this.readyResolve = r));
  private shapesLoaded = false;
  private pinsLoaded = false;
  private readyMarked = false;
  private unsub: () => void;
  private hitCtx = document.createElement("canvas").getContext("2d")!;

  constructor(
    private el: HTMLElement,
    a11y: HTMLElement,
    private opts: MapOptions,
  ) {
    this.map = L.map(el, {
      zoomSnap: 0.5,
      zoomDelta: 0.5,
      wheelPxPerZoomLevel: 120,
      minZoom: 6,
      maxZoom: 18,
      attributionControl: false,
      zoomControl: true,
      preferCanvas: true,
    });
    if (opts.tileUrl) L.tileLayer(opts.tileUrl, { maxZoom: 18 }).addTo(this.map);
    el.classList.toggle("with-tiles", !!opts.tileUrl);

    this.tip = document.createElement("div");
    this.tip.className = "map-tip";
    this.tip.hidden = true;
    el.appendChild(this.tip);

    this.regionList = document.createElement("ul");
    this.regionList.setAttribute("aria-label", t("map_regions"));
    this.pinList = document.createElement("ul");
    this.pinList.setAttribute("aria-label", t("map_pins"));
    a11y.replaceChildren(this.regionList, this.pinList);

    const home = JSON.parse(opts.homeGeometry || "null");
    if (home) {
      const bb = [Infinity, Infinity, -Infinity, -Infinity];
      const path = geometryPath(home, bb);
      this.homeShape = { code: opts.home.code, name: opts.home.name, tier: tierName(opts.home.tier), parent: opts.home.parentCode, path, bb: bb as Shape["bb"] };
      const sw = this.map.unproject([bb[0], bb[3]], Z);
      const ne = this.map.unproject([bb[2], bb[1]], Z);
      this.map.fitBounds(L.latLngBounds(sw, ne), { padding: [12, 12] });
      this.map.setMaxBounds(L.latLngBounds(sw, ne).pad(0.6));
    } else {
      this.map.setView([35.42, 119.46], 10);
    }

    const self = this;
    const Overlay = (L.Renderer as unknown as { extend: (o: object) => new (o: object) => L.Layer }).extend({
      _initContainer(this: { _container: HTMLCanvasElement }) {
        this._container = self.canvas = document.createElement("canvas");
        self.canvas.className = "case-canvas";
      },
      _destroyContainer(this: { _container: HTMLCanvasElement }) {
        this._container.remove();
      },
      _updatePaths() {},
      _update(this: { _map: L.Map & { _animatingZoom?: boolean }; _bounds?: L.Bounds }) {
        if (this._map._animatingZoom && this._bounds) return;
        (L.Renderer.prototype as unknown as { _update: () => void })._update.call(this);
        const b = this._bounds!;
        L.DomUtil.setPosition(self.canvas, b.min!);
        self.origin = { x: b.min!.x, y: b.min!.y };
        const size = b.getSize();
        const dpr = window.devicePixelRatio || 1;
        // A new backing store only when the size changes (draw() clears it otherwise).
        const w = Math.round(size.x * dpr), h = Math.round(size.y * dpr);
        if (self.canvas.width !== w || self.canvas.height !== h) {
          self.canvas.width = w;
          self.canvas.height = h;
          self.canvas.style.width = size.x + "px";
          self.canvas.style.height = size.y + "px";
        }
        self.draw();
      },
    });
    this.overlay = new Overlay({ padding: 0.2 });
    this.overlay.addTo(this.map);

    this.map.on("zoomend", () => this.checkBand());
    this.map.on("movestart zoomstart", () => (this.moving = true));
    this.map.on("moveend", () => {
      this.moving = false;
      if (this.rebuildAfterMove) this.scheduleRebuild();
    });
    this.map.on("mousemove", (e: L.LeafletMouseEvent) => this.hover(e.containerPoint));
    this.map.on("mouseout", () => this.hover(null));
    this.map.on("click", (e: L.LeafletMouseEvent) => this.click(e.containerPoint));

    this.unsub = store.onPins((changed, removed) => this.pinsChanged(changed, removed));
    if (store.pins.size || store.pinsTruncated) this.pinsChanged(null, []);
    this.checkBand();
  }

  destroy(): void {
    this.unsub();
    if (this.rebuildTimer !== null) clearTimeout(this.rebuildTimer);
    this.map.remove();
  }

  /** Pins arrived (`changed` null: all of them) or changed: the DOM list now, the canvas soon. */
  private pinsChanged(changed: Pin[] | null, removed: string[]): void {
    if (changed === null) {
      this.pinsLoaded = true;
      this.rebuildPinList();
      this.rebuildIndex();
      return;
    }
    let redraw = removed.length > 0;
    for (const p of changed) {
      this.patchPinItem(p);
      // Only what is drawn matters to the canvas: position and SLA state (a status change alone
      // shows in the lists and tooltips, not on the map).
      const was = this.indexed.get(p.id);
      if (!was || was.s !== p.sla || was.lat !== p.lat || was.lon !== p.lon) redraw = true;
    }
    for (const id of removed) {
      this.pinItems.get(id)?.remove();
      this.pinItems.delete(id);
    }
    if (redraw) this.scheduleRebuild();
  }

  /**
   * Supercluster and the fills are rebuilt at most once a second however fast events come, and
   * never in the middle of a drag or zoom (then at its end), so a live burst costs no frames.
   */
  private scheduleRebuild(): void {
    if (this.rebuildTimer !== null) return;
    const wait = Math.max(0, 1000 - (performance.now() - this.lastRebuild));
    this.rebuildTimer = window.setTimeout(() => {
      this.rebuildTimer = null;
      if (this.moving) {
        this.rebuildAfterMove = true;
        return;
      }
      this.rebuildIndex();
    }, wait);
  }

  private rebuildIndex(): void {
    if (this.rebuildTimer !== null) clearTimeout(this.rebuildTimer);
    this.rebuildTimer = null;
    this.rebuildAfterMove = false;
    this.lastRebuild = performance.now();
    const features: PointFeature<PinProps>[] = [];
    this.indexed.clear();
    for (const p of store.pins.values()) {
      features.push({ type: "Feature", properties: { id: p.id, s: p.sla }, geometry: { type: "Point", coordinates: [p.lon, p.lat] } });
      this.indexed.set(p.id, { s: p.sla, lat: p.lat, lon: p.lon });
    }
    const zero = (): ClusterProps => ({ s0: 0, s1: 0, s2: 0, s3: 0, s4: 0, s5: 0 });
    this.index = new Supercluster<PinProps, ClusterProps>({
      radius: 52,
      minZoom: 5,
      maxZoom: 16,
      map: (p) => {
        const c = zero();
        (c as unknown as Record<string, number>)["s" + p.s] = 1;
        return c;
      },
      reduce: (a, b) => {
        a.s0 += b.s0;
        a.s1 += b.s1;
        a.s2 += b.s2;
        a.s3 += b.s3;
        a.s4 += b.s4;
        a.s5 += b.s5;
      },
    }).load(features);
    this.figures = countFigures(store.pins.values());
    this.rebuildFills();
    this.requestDraw();
  }

  private pinItem(p: Pin, li: HTMLLIElement): void {
    li.dataset.testid = "case-pin";
    li.dataset.caseId = p.id;
    li.dataset.slaState = slaName(p.sla);
    li.dataset.status = statusName(p.status);
    li.textContent = `${p.code} ${p.category} ${statusText(p.status)} ${slaText(p.sla)}`;
  }

  private rebuildPinList(): void {
    const frag = document.createDocumentFragment();
    this.pinItems.clear();
    for (const p of store.pins.values()) {
      const li = document.createElement("li");
      this.pinItem(p, li);
      this.pinItems.set(p.id, li);
      frag.appendChild(li);
    }
    this.pinList.replaceChildren(frag);
  }

  private patchPinItem(p: Pin): void {
    let li = this.pinItems.get(p.id);
    if (!li) {
      li = document.createElement("li");
      this.pinItems.set(p.id, li);
      this.pinList.prepend(li);
    }
    this.pinItem(p, li);
  }

  private rebuildRegionList(): void {
    const frag = document.createDocumentFragment();
    const add = (s: Shape) => {
      const li = document.createElement("li");
      li.dataset.testid = "region-shape";
      li.dataset.code = s.code;
      li.dataset.tier = s.tier;
      li.textContent = `${s.name} ${s.code}`;
      frag.appendChild(li);
    };
    if (this.homeShape) add(this.homeShape);
    for (const set of this.outlines) for (const s of set.shapes) add(s);
    if (this.fine) for (const s of this.fine.shapes) add(s);
    this.regionList.replaceChildren(frag);
  }

  /** The tier filled and hovered at a zoom: grids, but communities for a whole city zoomed out. */
  private fineTier(zoom: number): Tier {
    if (this.opts.rootTier === Tier.GRID) return Tier.GRID;
    if (this.opts.rootTier === Tier.CITY && zoom < 10) return Tier.COMMUNITY;
    return Tier.GRID;
  }

  private outlineTiers(band: number, fine: Tier): Tier[] {
    const out: Tier[] = [];
    const root = tierIndex(this.opts.rootTier);
    for (const t of [Tier.DISTRICT, Tier.TOWNSHIP, Tier.COMMUNITY]) {
      if (tierIndex(t) <= root || tierIndex(t) >= tierIndex(fine)) continue;
      if (t === Tier.COMMUNITY && band < 12) continue;
      out.push(t);
    }
    return out;
  }

  /**
   * A tier's shapes simplified for `band`, or finer ones already here: shapes fetched for a
   * closer zoom serve every farther one, so zooming out fetches nothing.
   */
  private async loadSet(tier: Tier, band: number): Promise<ShapeSet> {
    for (const b of [band, 10, 12, 14, 16].filter((b) => b >= band)) {
      const have = this.sets.get(`${this.opts.root}|${tier}|${b}`);
      if (have) return have;
    }
    const r = await directory.getRegionShapes({ regionCode: this.opts.root, tier, zoom: band });
    const set = parseShapes(r.geojson, tier);
    this.sets.set(`${this.opts.root}|${tier}|${band}`, set);
    return set;
  }

  /** Fetches the shapes for the zoom's band when it changed; keeps drawing the old ones meanwhile. */
  private checkBand(): void {
    const zoom = this.map.getZoom();
    const band = bandOf(zoom);
    const fine = this.fineTier(zoom);
    const want = `${band}|${fine}`;
    if (want === this.wanted) return;
    this.wanted = want;
    const tiers = this.outlineTiers(band, fine);
    void Promise.all([this.loadSet(fine, band), ...tiers.map((t) => this.loadSet(t, band))])
      .then(([fineSet, ...outlines]) => {
        if (this.wanted !== want) return;
        const same = fineSet === this.fine && outlines.length === this.outlines.length && outlines.every((o, i) => o === this.outlines[i]);
        this.band = band;
        if (same) return;
        // The list names the regions drawn: it changes only when a tier comes or goes.
        const tiersBefore = [this.fine?.tier, ...this.outlines.map((o) => o.tier)].join();
        this.fine = fineSet;
        this.outlines = outlines;
        if (!this.shapesLoaded) performance.mark("console:shapes-loaded");
        this.shapesLoaded = true;
        this.rebuildFills();
        if ([fineSet.tier, ...outlines.map((o) => o.tier)].join() !== tiersBefore || !this.regionList.childElementCount) this.rebuildRegionList();
        this.requestDraw();
      })
      .catch((e) => {
        console.warn("shapes", e);
        this.wanted = "";
      });
  }

  private rebuildFills(): void {
    const fills = [new Path2D(), new Path2D(), new Path2D(), new Path2D()];
    if (this.fine) for (const s of this.fine.shapes) fills[fillClass(this.figuresOf(s.code, s.tier).open)].addPath(s.path);
    this.fillPaths = fills;
  }

  figuresOf(code: string, tier: string): Figures {
    if (tier === "city") {
      let open = 0, late = 0, warned = 0;
      for (const p of store.pins.values()) {
        open++;
        if (isLate(p.sla)) late++;
        else if (p.sla === SlaState.WARNED) warned++;
      }
      return { open, late, warned };
    }
    return this.figures.get(code) ?? { open: 0, late: 0, warned: 0 };
  }

  private requestDraw(): void {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.draw();
    });
  }

  /** Draws everything for the current view into the canvas (positioned at `origin`). */
  draw(): void {
    const c = this.canvas;
    if (!c || !c.width) return;
    const t0 = performance.now();
    this.drawInto(c);
    const ms = performance.now() - t0;
    drawStats.draws++;
    drawStats.totalMs += ms;
    drawStats.maxMs = Math.max(drawStats.maxMs, ms);
  }

  private drawInto(c: HTMLCanvasElement): void {
    const ctx = c.getContext("2d")!;
    const dpr = window.devicePixelRatio || 1;
    const zoom = this.map.getZoom();
    const k = 2 ** (zoom - Z);
    const po = this.map.getPixelOrigin();
    const ox = po.x + this.origin.x;
    const oy = po.y + this.origin.y;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.setTransform(dpr * k, 0, 0, dpr * k, -dpr * ox, -dpr * oy);
    ctx.lineJoin = "round";
    const tiles = !!this.opts.tileUrl;
    const fills = tiles ? FILLS_OVER_TILES : FILLS;
    if (this.fine) {
      this.fillPaths.forEach((p, i) => {
        ctx.fillStyle = fills[i];
        ctx.fill(p, "evenodd");
      });
      if (zoom >= 10.5 || this.fine.tier !== Tier.GRID) {
        const edges = edgesOf(this.fine);
        ctx.lineWidth = (zoom >= 13 ? 0.9 : 0.6) / k;
        ctx.strokeStyle = "rgba(96,125,150,0.55)";
        ctx.stroke(edges);
      }
    }
    for (const set of this.outlines) {
      const p = edgesOf(set);
      ctx.lineWidth = (set.tier === Tier.COMMUNITY ? 1.1 : set.tier === Tier.TOWNSHIP ? 1.8 : 2.4) / k;
      ctx.strokeStyle = set.tier === Tier.COMMUNITY ? "rgba(70,98,122,0.55)" : "#3d5a73";
      ctx.stroke(p);
    }
    if (this.homeShape) {
      ctx.lineWidth = 3 / k;
      ctx.strokeStyle = "#15324d";
      ctx.stroke(this.homeShape.path);
    }
    if (this.hovered) {
      ctx.fillStyle = "rgba(21,101,192,0.14)";
      ctx.fill(this.hovered.path, "evenodd");
      ctx.lineWidth = 2 / k;
      ctx.strokeStyle = "#1565c0";
      ctx.stroke(this.hovered.path);
    }
    if (this.selectedRegion) {
      ctx.lineWidth = 3 / k;
      ctx.strokeStyle = "#ff6f00";
      ctx.stroke(this.selectedRegion.path);
    }
    // Region names: districts / townships when they are outlined, each where there is room
    // (a label that would overlap one already drawn is left out), without the home's name
    // that every child repeats ("东港区示例街道01" → "示例街道01").
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const labelSet = this.outlines.find((s) => s.tier === (zoom < 10 ? Tier.DISTRICT : Tier.TOWNSHIP));
    if (labelSet && zoom < 13.5) {
      const size = zoom < 11 ? 12 : 14;
      ctx.font = `500 ${size}px "Noto Sans CJK SC","Noto Sans SC","PingFang SC","Microsoft YaHei",sans-serif`;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.lineWidth = 3;
      ctx.strokeStyle = "rgba(255,255,255,0.9)";
      ctx.fillStyle = "#2b4257";
      const prefix = this.opts.home.name;
      const taken: [number, number, number, number][] = [];
      for (const s of labelSet.shapes) {
        const x = ((s.bb[0] + s.bb[2]) / 2) * k - ox;
        const y = ((s.bb[1] + s.bb[3]) / 2) * k - oy;
        if (x < 0 || y < 0 || x > c.width / dpr || y > c.height / dpr) continue;
        const name = prefix && s.name.startsWith(prefix) && s.name.length > prefix.length ? s.name.slice(prefix.length) : s.name;
        const w = ctx.measureText(name).width / 2 + 4, h = size / 2 + 3;
        if (taken.some(([a, b, c2, d]) => x - w < c2 && x + w > a && y - h < d && y + h > b)) continue;
        taken.push([x - w, y - h, x + w, y + h]);
        ctx.strokeText(name, x, y);
        ctx.fillText(name, x, y);
      }
    }
    this.drawPins(ctx, k, ox, oy, zoom);
    if (!this.readyMarked && this.shapesLoaded && this.pinsLoaded && this.index) {
      this.readyMarked = true;
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          performance.mark("console:map-ready");
          this.el.dataset.ready = "true";
          this.readyResolve();
        }),
      );
    }
  }

  private drawPins(ctx: CanvasRenderingContext2D, k: number, ox: number, oy: number, zoom: number): void {
    this.drawn = [];
    if (!this.index) return;
    const w = this.canvas.width / (window.devicePixelRatio || 1);
    const h = this.canvas.height / (window.devicePixelRatio || 1);
    const nw = this.map.unproject([ox, oy], zoom);
    const se = this.map.unproject([ox + w, oy + h], zoom);
    const west = Math.max(-180, nw.lng), east = Math.min(180, se.lng);
    const items = this.index.getClusters([west, se.lat, east, nw.lat], Math.min(17, Math.floor(zoom)));
    const byState = new Map<number, Path2D>();
    const labels: [number, number, string, number][] = [];
    const clusters: [number, number, number, ClusterProps, number][] = [];
    let selected: [number, number] | null = null;
    for (const f of items) {
      const [lon, lat] = f.geometry.coordinates;
      const x = projX(lon) * k - ox;
      const y = projY(lat) * k - oy;
      const pr = f.properties as Partial<ClusterProperties> & Partial<ClusterProps> & Partial<PinProps>;
      if (pr.cluster) {
        const n = pr.point_count!;
        const r = n < 10 ? 13 : n < 100 ? 17 : n < 1000 ? 22 : 27;
        clusters.push([x, y, r, pr as ClusterProps, n]);
        labels.push([x, y, String(pr.point_count_abbreviated), r]);
        this.drawn.push({ x: x + this.origin.x, y: y + this.origin.y, r, cluster: pr.cluster_id, count: n, lat, lon });
      } else {
        const s = pr.s ?? 0;
        let p = byState.get(s);
        if (!p) byState.set(s, (p = new Path2D()));
        pinShape(p, s, x, y, 8);
        this.drawn.push({ x: x + this.origin.x, y: y + this.origin.y, r: 10, id: pr.id, lat, lon });
        if (pr.id === this.selectedCase) selected = [x, y];
      }
    }
    // Clusters: a ring split by SLA state, so a dense area shows how much of it is late. Every
    // wedge of one state goes into one path, so the whole view is a handful of fill calls.
    const wedges = [0, 1, 2, 3, 4, 5].map(() => new Path2D());
    const holes = new Path2D();
    const rims = new Path2D();
    for (const [x, y, r, pr, n] of clusters) {
      let a0 = -Math.PI / 2;
      for (const s of [5, 4, 3, 2, 1, 0]) {
        const cnt = (pr as unknown as Record<string, number>)["s" + s];
        if (!cnt) continue;
        const a1 = a0 + (cnt / n) * Math.PI * 2;
        const w = wedges[s];
        w.moveTo(x, y);
        w.arc(x, y, r, a0, a1);
        w.closePath();
        a0 = a1;
      }
      holes.moveTo(x + r * 0.62, y);
      holes.arc(x, y, r * 0.62, 0, Math.PI * 2);
      rims.moveTo(x + r, y);
      rims.arc(x, y, r, 0, Math.PI * 2);
    }
    wedges.forEach((w, s) => {
      ctx.fillStyle = SLA_COLORS[s];
      ctx.fill(w);
    });
    ctx.fillStyle = "rgba(255,255,255,0.95)";
    ctx.fill(holes);
    ctx.strokeStyle = "rgba(255,255,255,0.9)";
    ctx.lineWidth = 1.5;
    ctx.stroke(rims);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#ffffff";
    for (const s of [0, 1, 2, 3, 4, 5]) {
      const p = byState.get(s);
      if (!p) continue;
      ctx.fillStyle = SLA_COLORS[s];
      ctx.fill(p);
      ctx.stroke(p);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#17212b";
    for (const big of [false, true]) {
      ctx.font = `600 ${big ? 12 : 11}px "Noto Sans CJK SC","Noto Sans SC",system-ui,sans-serif`;
      for (const [x, y, text, r] of labels) if (r > 20 === big) ctx.fillText(text, x, y + 0.5);
    }
    if (selected) {
      ctx.beginPath();
      ctx.arc(selected[0], selected[1], 14, 0, Math.PI * 2);
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#0d47a1";
      ctx.stroke();
    }
  }

  private pinAt(cp: L.Point): Drawn | null {
    const lp = this.map.containerPointToLayerPoint(cp);
    let best: Drawn | null = null;
    let bestD = Infinity;
    for (const d of this.drawn) {
      const dd = (d.x - lp.x) ** 2 + (d.y - lp.y) ** 2;
      if (dd <= d.r * d.r && dd < bestD) {
        best = d;
        bestD = dd;
      }
    }
    return best;
  }

  private shapeAt(cp: L.Point): Shape | null {
    if (!this.fine) return null;
    const ll = this.map.containerPointToLatLng(cp);
    const x = projX(ll.lng), y = projY(ll.lat);
    const list = this.fine.buckets.get(bucketKey(Math.floor(x / CELL), Math.floor(y / CELL)));
    if (!list) return null;
    for (const s of list) {
      if (x < s.bb[0] || x > s.bb[2] || y < s.bb[1] || y > s.bb[3]) continue;
      if (this.hitCtx.isPointInPath(s.path, x, y, "evenodd")) return s;
    }
    return null;
  }

  private hover(cp: L.Point | null): void {
    const pin = cp ? this.pinAt(cp) : null;
    const shape = cp && !pin ? this.shapeAt(cp) : null;
    if (shape !== this.hovered) {
      this.hovered = shape;
      this.requestDraw();
    }
    this.el.style.cursor = pin ? "pointer" : shape ? "default" : "";
    if (!cp || (!pin && !shape)) {
      this.tip.hidden = true;
      return;
    }
    if (pin?.id) {
      const p = store.pins.get(pin.id);
      this.tip.textContent = p ? `${p.code} · ${p.category} · ${statusText(p.status)} · ${slaText(p.sla)}` : pin.id;
    } else if (pin) {
      this.tip.textContent = `${pin.count} ${t("map_cluster")}`;
    } else if (shape) {
      const f = this.figuresOf(shape.code, shape.tier);
      this.tip.textContent = `${shape.name} ${shape.code} · ${t("map_open_cases")} ${f.open} · ${t("map_late_cases")} ${f.late}`;
    }
    this.tip.hidden = false;
    this.tip.style.transform = `translate(${Math.round(cp.x + 14)}px, ${Math.round(cp.y + 14)}px)`;
  }

  private click(cp: L.Point): void {
    const pin = this.pinAt(cp);
    if (pin?.id) {
      this.opts.onPin(pin.id);
      return;
    }
    if (pin && pin.cluster !== undefined && this.index) {
      const z = this.index.getClusterExpansionZoom(pin.cluster);
      // Cases at one spot never split however far one zooms: list them instead.
      if (z > 16 || this.map.getZoom() >= 16) {
        this.opts.onCluster(this.index.getLeaves(pin.cluster, 200).map((f) => f.properties.id));
        return;
      }
      this.map.flyTo([pin.lat, pin.lon], Math.max(z, this.map.getZoom() + 1), { duration: 0.5 });
      return;
    }
    const shape = this.shapeAt(cp);
    this.selectRegion(shape);
    this.opts.onRegion(shape);
  }

  selectRegion(s: Shape | null): void {
    this.selectedRegion = s;
    this.requestDraw();
  }

  selectCase(id: string | null, fly?: { lat: number; lon: number }): void {
    this.selectedCase = id;
    if (fly && fly.lat && fly.lon) {
      this.map.flyTo([fly.lat, fly.lon], Math.max(this.map.getZoom(), 14), { duration: 0.6 });
    }
    this.requestDraw();
  }

  /** The map's container changed size (a panel opened). */
  resize(): void {
    this.map.invalidateSize({ pan: false });
  }

  relabel(): void {
    this.regionList.setAttribute("aria-label", t("map_regions"));
    this.pinList.setAttribute("aria-label", t("map_pins"));
    for (const p of store.pins.values()) {
      const li = this.pinItems.get(p.id);
      if (li) li.textContent = `${p.code} ${p.category} ${statusText(p.status)} ${slaText(p.sla)}`;
    }
  }

  get bandZoom(): number {
    return this.band;
  }
}

/** How long the overlay's draws take, for the benchmark (`window.__gridcaseDraws`). */
const drawStats = { draws: 0, totalMs: 0, maxMs: 0 };
(window as unknown as { __gridcaseDraws: typeof drawStats }).__gridcaseDraws = drawStats;

/** A pin's shape by SLA state, so colour is not the only cue: circle, diamond, square. */
function pinShape(p: Path2D, s: number, x: number, y: number, r: number): void {
  if (s === SlaState.RED_CARD) {
    p.rect(x - r * 0.85, y - r * 0.85, r * 1.7, r * 1.7);
  } else if (s === SlaState.BREACHED || s === SlaState.ESCALATED) {
    p.moveTo(x, y - r * 1.15);
    p.lineTo(x + r * 1.15, y);
    p.lineTo(x, y + r * 1.15);
    p.lineTo(x - r * 1.15, y);
    p.closePath();
  } else {
    p.moveTo(x + r, y);
    p.arc(x, y, r, 0, Math.PI * 2);
  }
}

// API helpers for the end-to-end tests and the benchmark: the same generated code and
// gRPC-Web transport the page uses, driven from Node 20's fetch. Bundled by harness.mjs.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { create } from "@bufbuild/protobuf";
import { CaseService, CaseStatus, Satisfaction, SlaState } from "../../src/gen/gridcase/v1/case_pb";
import { ClockKind, DirectoryService } from "../../src/gen/gridcase/v1/directory_pb";
import { ReportService } from "../../src/gen/gridcase/v1/report_pb";
import { GatewayService } from "../../src/gen/gridcase/v1/gateway_pb";
import { StatsService } from "../../src/gen/gridcase/v1/stats_pb";
import { CoordSystem, Severity, Tier } from "../../src/gen/gridcase/v1/common_pb";
import { Code, ConnectError } from "@connectrpc/connect";

export { CaseStatus, Satisfaction, SlaState, CoordSystem, Tier, Severity, ClockKind, Code, ConnectError, create };

export interface Api {
  directory: Client<typeof DirectoryService>;
  cases: Client<typeof CaseService>;
  reports: Client<typeof ReportService>;
  gateway: Client<typeof GatewayService>;
  stats: Client<typeof StatsService>;
}

export function api(baseUrl: string, token: string): Api {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [auth] });
  return {
    directory: createClient(DirectoryService, transport),
    cases: createClient(CaseService, transport),
    reports: createClient(ReportService, transport),
    gateway: createClient(GatewayService, transport),
    stats: createClient(StatsService, transport),
  };
}

/** Points inside grids: the centroid of each grid's first ring (the demo's grids are convex). */
export async function gridPoints(a: Api, district: string): Promise<{ code: string; lat: number; lon: number }[]> {
  const r = await a.directory.getRegionShapes({ regionCode: district, tier: Tier.GRID, zoom: 0 });
  const fc = JSON.parse(r.geojson);
  const out: { code: string; lat: number; lon: number }[] = [];
  for (const f of fc.features) {
    const g = f.geometry;
    const ring: number[][] = g.type === "Polygon" ? g.coordinates[0] : g.coordinates[0][0];
    let x = 0, y = 0;
    const n = ring.length - 1;
    for (let i = 0; i < n; i++) { x += ring[i][0]; y += ring[i][1]; }
    out.push({ code: f.properties.code, lat: y / n, lon: x / n });
  }
  return out;
}

export async function submit(a: Api, p: { lat: number; lon: number }, category: string, description: string, urgency = Severity.UNSPECIFIED) {
  const r = await a.reports.submitReport({
    clientReportId: crypto.randomUUID(),
    categoryCode: category,
    description,
    location: { lat: p.lat, lon: p.lon, coordSystem: CoordSystem.WGS84 },
    urgency,
  });
  return r.case!;
}

export interface GridPolygon {
  code: string;
  /** Outer rings, [lon, lat] pairs. */
  rings: number[][][];
  bbox: [number, number, number, number];
}

export async function gridPolygons(a: Api, district: string): Promise<GridPolygon[]> {
  const r = await a.directory.getRegionShapes({ regionCode: district, tier: Tier.GRID, zoom: 0 });
  const fc = JSON.parse(r.geojson);
  return fc.features.map((f: { properties: { code: string }; geometry: { type: string; coordinates: number[][][] | number[][][][] } }) => {
    const polys = (f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates) as number[][][][];
    const rings = polys.map((p) => p[0]);
    const bbox: [number, number, number, number] = [180, 90, -180, -90];
    for (const ring of rings)
      for (const [x, y] of ring) {
        bbox[0] = Math.min(bbox[0], x);
        bbox[1] = Math.min(bbox[1], y);
        bbox[2] = Math.max(bbox[2], x);
        bbox[3] = Math.max(bbox[3], y);
      }
    return { code: f.properties.code, rings, bbox };
  });
}

function inRing(ring: number[][], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** A random point well inside a grid (rejection sampling in its bounding box, shrunk a little). */
export function pointIn(g: GridPolygon, rnd: () => number): { lat: number; lon: number } {
  const [x0, y0, x1, y1] = g.bbox;
  const mx = (x1 - x0) * 0.08, my = (y1 - y0) * 0.08;
  for (let i = 0; i < 200; i++) {
    const x = x0 + mx + rnd() * (x1 - x0 - 2 * mx);
    const y = y0 + my + rnd() * (y1 - y0 - 2 * my);
    if (g.rings.some((r) => inRing(r, x, y))) return { lat: y, lon: x };
  }
  const r = g.rings[0];
  const n = r.length - 1;
  return { lat: r.slice(0, n).reduce((s, p) => s + p[1], 0) / n, lon: r.slice(0, n).reduce((s, p) => s + p[0], 0) / n };
}

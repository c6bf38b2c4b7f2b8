// What the page knows of cases: the slim pins of the map (every open case in scope with a
// position), and the full cases it has read. Views subscribe; updates arrive from the queue,
// the detail, the actions and the live event stream.
import type { Case, CasePin } from "./gen/gridcase/v1/case_pb";
import { CaseStatus, SlaState } from "./gen/gridcase/v1/case_pb";
import { Severity } from "./gen/gridcase/v1/common_pb";
import { isOpen } from "./format";

export interface Pin {
  id: string;
  code: string;
  status: CaseStatus;
  lat: number;
  lon: number;
  sla: SlaState;
  category: string;
  unit: string;
  grid: string;
  severity: Severity;
  /** ms since the epoch */
  received: number;
}

export function pinOf(p: CasePin): Pin {
  return {
    id: p.id,
    code: p.code,
    status: p.status,
    lat: p.lat,
    lon: p.lon,
    sla: p.slaState,
    category: p.categoryCode,
    unit: p.unitCode,
    grid: p.gridCode,
    severity: p.severity,
    received: p.receivedAt ? Number(p.receivedAt.seconds) * 1000 : 0,
  };
}

/** A full case as a pin; null when it has no position to show or is no longer open. */
export function pinOfCase(c: Case): Pin | null {
  const loc = c.location;
  if (!loc || (loc.lat === 0 && loc.lon === 0) || !isOpen(c.status)) return null;
  return {
    id: c.id,
    code: c.code,
    status: c.status,
    lat: loc.lat,
    lon: loc.lon,
    sla: c.slaState,
    category: c.categoryCode,
    unit: c.unitCode,
    grid: c.gridCode,
    severity: c.severity,
    received: c.receivedAt ? Number(c.receivedAt.seconds) * 1000 : 0,
  };
}

type PinsListener = (changed: Pin[] | null, removed: string[]) => void;
type CaseListener = (c: Case, isNew: boolean) => void;

class Store {
  pins = new Map<string, Pin>();
  pinsTruncated = false;
  /** Full cases read so far, by id (the latest version wins). */
  cases = new Map<string, Case>();
  private pinListeners = new Set<PinsListener>();
  private caseListeners = new Set<CaseListener>();

  onPins(f: PinsListener): () => void {
    this.pinListeners.add(f);
    return () => this.pinListeners.delete(f);
  }
  onCase(f: CaseListener): () => void {
    this.caseListeners.add(f);
    return () => this.caseListeners.delete(f);
  }

  /** Replaces every pin (the first load). Listeners get `changed = null`: rebuild all. */
  loadPins(pins: CasePin[], truncated: boolean): void {
    this.pins = new Map(pins.map((p) => [p.id, pinOf(p)]));
    this.pinsTruncated = truncated;
    for (const f of this.pinListeners) f(null, []);
  }

  /** The newest state of a case, from any answer that carried it. */
  putCase(c: Case): void {
    const known = this.cases.get(c.id);
    if (known && known.version > c.version) return; // an older answer arriving late
    const isNew = !known && !this.pins.has(c.id);
    this.cases.set(c.id, c);
    const pin = pinOfCase(c);
    if (pin) {
      this.pins.set(c.id, pin);
      for (const f of this.pinListeners) f([pin], []);
    } else if (this.pins.delete(c.id)) {
      for (const f of this.pinListeners) f([], [c.id]);
    }
    for (const f of this.caseListeners) f(c, isNew);
  }

  /**
   * Replaces the pins with a fresh answer, telling listeners only what differs. Returns the ids
   * that are new to the page.
   */
  mergePins(pins: CasePin[], truncated: boolean): string[] {
    const next = new Map<string, Pin>();
    const changed: Pin[] = [];
    const fresh: string[] = [];
    for (const raw of pins) {
      const p = pinOf(raw);
      next.set(p.id, p);
      const was = this.pins.get(p.id);
      if (!was) {
        changed.push(p);
        if (!this.cases.has(p.id)) fresh.push(p.id);
      } else if (was.status !== p.status || was.sla !== p.sla || was.lat !== p.lat || was.lon !== p.lon || was.unit !== p.unit) changed.push(p);
    }
    const removed: string[] = [];
    for (const id of this.pins.keys()) if (!next.has(id)) removed.push(id);
    this.pins = next;
    this.pinsTruncated = truncated;
    if (changed.length || removed.length) for (const f of this.pinListeners) f(changed, removed);
    return fresh;
  }

  /** Cases whose full record is on screen (queue rows, the open case), by view. */
  private watchedBy = new Map<string, Set<string>>();
  watch(view: string, ids: Iterable<string>): void {
    this.watchedBy.set(view, new Set(ids));
  }
  isWatched(id: string): boolean {
    for (const s of this.watchedBy.values()) if (s.has(id)) return true;
    return false;
  }

  clear(): void {
    this.pins = new Map();
    this.cases = new Map();
    this.pinsTruncated = false;
    for (const f of this.pinListeners) f(null, []);
  }
}

export const store = new Store();

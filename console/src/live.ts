// Live updates: one WatchEvents stream for the home region, resumed after the last sequence
// seen when it drops (with back-off), de-duplicated by sequence. Each event makes the page read
// its case again (GetCase), coalesced per case and throttled, so a burst of events on one case
// costs one read, and a case created anywhere in scope appears within seconds.
import { Code, ConnectError } from "@connectrpc/connect";
import type { CaseEvent } from "./gen/gridcase/v1/case_pb";
import { cases, gateway } from "./api";
import { store } from "./store";

export type LiveState = "connecting" | "live" | "retry" | "off";

/** Per case, at most one read in this window; later events of it wait for its end. */
const PER_CASE_MS = 800;
/** Reads in flight at once (HTTP/1.1 gives the origin 6 connections; the stream holds one). */
const CONCURRENCY = 3;
/** This many cases waiting to be read make one ListCasePins instead … */
const BURST = 40;
/** … at most this often. */
const RELOAD_MS = 3000;

export class Live {
  state: LiveState = "off";
  last = 0n;
  private ctrl: AbortController | null = null;
  private stateListeners = new Set<(s: LiveState) => void>();
  private eventListeners = new Set<(e: CaseEvent) => void>();
  /** Cases to read again: those on screen first, then the rest. */
  private pendingShown = new Set<string>();
  private pendingOther = new Set<string>();
  private reloadTimer: number | null = null;
  private lastReload = 0;
  private lastRead = new Map<string, number>();
  private inFlight = 0;
  private timer: number | null = null;

  constructor(private regionCode: string) {}

  onState(f: (s: LiveState) => void): () => void {
    this.stateListeners.add(f);
    return () => this.stateListeners.delete(f);
  }
  onEvent(f: (e: CaseEvent) => void): () => void {
    this.eventListeners.add(f);
    return () => this.eventListeners.delete(f);
  }

  private setState(s: LiveState): void {
    this.state = s;
    for (const f of this.stateListeners) f(s);
  }

  /** Follows events after `after` until stopped. */
  start(after: bigint): void {
    this.last = after;
    this.ctrl = new AbortController();
    void this.run(this.ctrl.signal);
  }

  stop(): void {
    this.ctrl?.abort();
    this.ctrl = null;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
    this.setState("off");
  }

  private async run(signal: AbortSignal): Promise<void> {
    let backoff = 1000;
    while (!signal.aborted) {
      this.setState(this.state === "off" ? "connecting" : "retry");
      const began = Date.now();
      try {
        const stream = gateway.watchEvents(
          { afterSequence: this.last, regionCode: this.regionCode },
          { signal, onHeader: () => this.setState("live") },
        );
        for await (const ev of stream) {
          if (this.state !== "live") this.setState("live");
          if (ev.sequence <= this.last) continue; // at least once: seen already
          this.last = ev.sequence;
          backoff = 1000;
          this.handle(ev);
        }
      } catch (e) {
        if (signal.aborted) return;
        const code = ConnectError.from(e).code;
        // A refused token ends following; the sign-in handler takes over.
        if (code === Code.Unauthenticated || code === Code.PermissionDenied) {
          this.setState("off");
          return;
        }
      }
      if (signal.aborted) return;
      // The stream ended (shutdown, or too far behind): resume after the last sequence seen.
      if (Date.now() - began > 15_000) backoff = 1000;
      this.setState("retry");
      const wait = backoff * (0.75 + Math.random() * 0.5);
      backoff = Math.min(backoff * 2, 15_000);
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  private handle(ev: CaseEvent): void {
    for (const f of this.eventListeners) f(ev);
    this.refresh(ev.caseId);
  }

  /** Reads a case again soon (coalesced, throttled per case). */
  refresh(id: string): void {
    if (store.isWatched(id)) this.pendingShown.add(id);
    else this.pendingOther.add(id);
    this.pump();
  }

  private pump(): void {
    // A burst (a backlog replayed after a reconnect, an SLA sweep over thousands of cases) is
    // answered with one fresh ListCasePins instead of a read per case.
    if (this.pendingOther.size >= BURST) this.queueReload();
    const now = Date.now();
    let nextAt = Infinity;
    const sets = this.reloadTimer === null ? [this.pendingShown, this.pendingOther] : [this.pendingShown];
    for (const set of sets)
      for (const id of set) {
        if (this.inFlight >= CONCURRENCY) break;
        const at = (this.lastRead.get(id) ?? 0) + PER_CASE_MS;
        if (at > now) {
          nextAt = Math.min(nextAt, at);
          continue;
        }
        set.delete(id);
        this.lastRead.set(id, now);
        this.inFlight++;
        cases
          .getCase({ caseId: id })
          .then((r) => r.case && store.putCase(r.case))
          .catch(() => {
            /* out of scope now, or gone: nothing to show */
          })
          .finally(() => {
            this.inFlight--;
            this.pump();
          });
      }
    if (nextAt !== Infinity && this.timer === null) {
      this.timer = window.setTimeout(() => {
        this.timer = null;
        this.pump();
      }, nextAt - now);
    }
    if (this.lastRead.size > 5000) {
      for (const [id, at] of this.lastRead) if (now - at > PER_CASE_MS) this.lastRead.delete(id);
    }
  }

  private queueReload(): void {
    if (this.reloadTimer !== null) return;
    const wait = Math.max(300, this.lastReload + RELOAD_MS - Date.now());
    this.reloadTimer = window.setTimeout(async () => {
      this.pendingOther.clear();
      this.lastReload = Date.now();
      try {
        const r = await cases.listCasePins({ regionCode: this.regionCode });
        const fresh = store.mergePins(r.pins, r.truncated);
        // New cases reach the queue through a read each, when there are few.
        if (fresh.length <= 50) for (const id of fresh) this.pendingShown.add(id);
      } catch {
        /* the next event tries again */
      }
      this.reloadTimer = null;
      this.pump();
    }, wait);
  }
}

/**
 * Where to start following: WatchEvents has no "from now", so take the last event of the
 * newest case in scope, read *before* the pins. Everything after the pins' snapshot is then
 * covered; what lies between is read again, harmlessly (a read gives the current state).
 */
export async function findHead(regionCode: string): Promise<bigint> {
  const list = await cases.listCases({ regionCode, page: { pageSize: 1 } });
  let head = 0n;
  for (const c of list.cases) {
    const r = await cases.getCase({ caseId: c.id, includeEvents: true });
    for (const e of r.events) if (e.sequence > head) head = e.sequence;
  }
  return head;
}

// Names of the API's enums (as data attributes and as words), times in Asia/Shanghai.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { CaseStatus, SlaState, Source, Satisfaction } from "./gen/gridcase/v1/case_pb";
import { Role, Severity, Tier } from "./gen/gridcase/v1/common_pb";
import { ClockKind } from "./gen/gridcase/v1/directory_pb";
import { getLang, tMaybe } from "./i18n";

/** `CASE_STATUS_IN_PROGRESS` → `in_progress`: the contract's own lowercase names. */
function lower(e: Record<number, string>, v: number): string {
  const n = e[v];
  return n === undefined ? "unspecified" : n.toLowerCase();
}

export const statusName = (s: CaseStatus): string => lower(CaseStatus, s);
export const slaName = (s: SlaState): string => lower(SlaState, s);
export const tierName = (s: Tier): string => lower(Tier, s);
export const roleName = (s: Role): string => lower(Role, s);
export const severityName = (s: Severity): string => lower(Severity, s);
export const sourceName = (s: Source): string => lower(Source, s);
export const clockName = (s: ClockKind): string => lower(ClockKind, s);
export const satisfactionName = (s: Satisfaction): string => lower(Satisfaction, s);

export const statusText = (s: CaseStatus) => tMaybe("st_" + statusName(s), statusName(s));
export const slaText = (s: SlaState) => tMaybe("sla_" + slaName(s), slaName(s));
export const tierText = (s: Tier) => tMaybe("tier_" + tierName(s), tierName(s));
export const roleText = (s: Role) => tMaybe("role_" + roleName(s), roleName(s));
export const severityText = (s: Severity) => tMaybe("sev_" + severityName(s), severityName(s));
export const sourceText = (s: Source) => tMaybe("src_" + sourceName(s), sourceName(s));
export const clockText = (s: ClockKind) => tMaybe("clk_" + clockName(s), clockName(s));
export const satisfactionText = (s: Satisfaction) => tMaybe("sat_" + satisfactionName(s), satisfactionName(s));
export const eventKindText = (k: string) => tMaybe("ek_" + k, k);

export const OPEN_STATUSES: CaseStatus[] = [
  CaseStatus.SUBMITTED,
  CaseStatus.REGISTERED,
  CaseStatus.DISPATCHED,
  CaseStatus.ACCEPTED,
  CaseStatus.IN_PROGRESS,
  CaseStatus.RESOLVED,
  CaseStatus.RETURNED,
];
export const ALL_STATUSES: CaseStatus[] = [
  ...OPEN_STATUSES,
  CaseStatus.CLOSED,
  CaseStatus.MERGED,
  CaseStatus.CANCELLED,
];
export const isOpen = (s: CaseStatus) => s !== CaseStatus.CLOSED && s !== CaseStatus.MERGED && s !== CaseStatus.CANCELLED;

/** SLA state colours: distinguishable, and each also has its own pin shape on the map. */
export const SLA_COLORS: Record<number, string> = {
  [SlaState.UNSPECIFIED]: "#78909c",
  [SlaState.ON_TIME]: "#2e7d32",
  [SlaState.WARNED]: "#f9a825",
  [SlaState.BREACHED]: "#ef6c00",
  [SlaState.ESCALATED]: "#d32f2f",
  [SlaState.RED_CARD]: "#7b1fa2",
};
export const SLA_ORDER: SlaState[] = [
  SlaState.ON_TIME,
  SlaState.WARNED,
  SlaState.BREACHED,
  SlaState.ESCALATED,
  SlaState.RED_CARD,
];
export const isLate = (s: SlaState) => s === SlaState.BREACHED || s === SlaState.ESCALATED || s === SlaState.RED_CARD;

export function tsDate(ts: Timestamp | undefined): Date | null {
  if (!ts) return null;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
}

/** Wall-clock parts of an instant in Asia/Shanghai (the practice's time zone, UTC+8). */
const partsFmt = new Intl.DateTimeFormat("en-CA", {
  timeZone: "Asia/Shanghai",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});
function parts(d: Date): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of partsFmt.formatToParts(d)) out[p.type] = p.value;
  return out;
}

/** `2026-11-30 19:48:04`, or `11-30 19:48` when short: one unambiguous form in both languages. */
export function fmtTime(ts: Timestamp | Date | undefined | null, short = false): string {
  const d = ts instanceof Date ? ts : tsDate(ts ?? undefined);
  if (!d) return "—";
  const p = parts(d);
  return short ? `${p.month}-${p.day} ${p.hour}:${p.minute}` : `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** `YYYY-MM` of a date in Asia/Shanghai. */
export function monthOf(d: Date): string {
  const p = parts(d);
  return `${p.year}-${p.month}`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
export function monthLabel(month: string): string {
  const [y, m] = month.split("-").map(Number);
  return getLang() === "zh" ? `${y}年${m}月` : `${MONTHS[m - 1]} ${y}`;
}

/** A statistics period in words: a month (`2026-11`), a quarter (`2026-Q4`) or a year (`2026`). */
export function periodLabel(period: string): string {
  const zh = getLang() === "zh";
  const q = /^(\d{4})-Q([1-4])$/.exec(period);
  if (q) return zh ? `${q[1]}年第${q[2]}季度` : `Q${q[2]} ${q[1]}`;
  if (/^\d{4}$/.test(period)) return zh ? `${period}年` : period;
  return monthLabel(period);
}

/** A duration in words: `2天3小时`, `45分钟` / `2d 3h`, `45m`. */
export function fmtDuration(ms: number): string {
  const zh = getLang() === "zh";
  const m = Math.max(0, Math.round(ms / 60000));
  const d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60), mm = m % 60;
  const parts: string[] = [];
  if (d) parts.push(zh ? `${d}天` : `${d}d`);
  if (h) parts.push(zh ? `${h}小时` : `${h}h`);
  if (!d && (mm || !h)) parts.push(zh ? `${mm}分钟` : `${mm}m`);
  return parts.join(zh ? "" : " ");
}

export function pct(x: number): string {
  return (x * 100).toFixed(1) + "%";
}

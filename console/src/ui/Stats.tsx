import { useEffect, useState } from "preact/hooks";
import type { RankedEntry, Stats as StatsMsg } from "../gen/gridcase/v1/stats_pb";
import { RankFigure } from "../gen/gridcase/v1/stats_pb";
import type { Region } from "../gen/gridcase/v1/common_pb";
import { Tier } from "../gen/gridcase/v1/common_pb";
import { directory, explain, stats } from "../api";
import { fmtTime, monthLabel, monthOf, pct, periodLabel, tierText } from "../format";
import { t } from "../i18n";
import { ErrorBox } from "./common";
import { Ranked, RateBars, Trend, type RankRow, type TrendPoint } from "./charts";
import type { Session } from "./Console";

/** The practice's targets: resolution by tier, satisfaction, local resolution. */
function resolutionTarget(tier: Tier): number {
  return tier === Tier.CITY ? 0.95 : tier === Tier.DISTRICT ? 0.93 : 0.9;
}
const SATISFACTION_TARGET = 0.9;
const LOCAL_TARGET = 0.85;

function lastMonths(n: number): string[] {
  const out: string[] = [];
  const now = new Date();
  let [y, m] = monthOf(now).split("-").map(Number);
  for (let i = 0; i < n; i++) {
    out.push(`${y}-${String(m).padStart(2, "0")}`);
    m--;
    if (m === 0) {
      m = 12;
      y--;
    }
  }
  return out;
}

/** The last `n` quarters and years up to now, the current first: `2026-Q4`, `2026-Q3`, …; `2026`, …. */
function lastQuartersAndYears(quarters: number, years: number): string[] {
  const [y, m] = monthOf(new Date()).split("-").map(Number);
  const out: string[] = [];
  let qy = y, q = Math.floor((m - 1) / 3) + 1;
  for (let i = 0; i < quarters; i++) {
    out.push(`${qy}-Q${q}`);
    q--;
    if (q === 0) {
      q = 4;
      qy--;
    }
  }
  for (let i = 0; i < years; i++) out.push(String(y - i));
  return out;
}

/** The six months of the trend: those ending with the period's last month (no later than now). */
function trendMonths(period: string): string[] {
  const now = monthOf(new Date());
  let end = period;
  const q = /^(\d{4})-Q([1-4])$/.exec(period);
  if (q) end = `${q[1]}-${String(Number(q[2]) * 3).padStart(2, "0")}`;
  else if (/^\d{4}$/.test(period)) end = `${period}-12`;
  if (end > now) end = now;
  let [y, m] = end.split("-").map(Number);
  const out: string[] = [];
  for (let i = 0; i < 6; i++) {
    out.push(`${y}-${String(m).padStart(2, "0")}`);
    m--;
    if (m === 0) {
      m = 12;
      y--;
    }
  }
  return out.reverse();
}

/** RankUnits' entries as chart rows: resolution rate where something was received. */
function rankRows(entries: RankedEntry[]): RankRow[] {
  return entries.map((e) => ({
    label: e.name || e.code,
    value: e.stats && e.stats.received > 0n ? e.stats.resolutionRate : null,
    count: Number(e.stats?.received ?? 0n),
  }));
}

async function mapLimit<T, R>(items: T[], limit: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

type Scope = { case: "regionCode"; value: string } | { case: "unitCode"; value: string };
async function get(scope: Scope, period: string): Promise<{ s: StatsMsg | null; snapshot: boolean; at: string }> {
  try {
    const r = await stats.getStats({ scope, period });
    return { s: r.stats ?? null, snapshot: r.snapshot, at: fmtTime(r.computedAt, true) };
  } catch {
    return { s: null, snapshot: false, at: "" };
  }
}

const rate = (s: StatsMsg | null, f: (s: StatsMsg) => number, denom: (s: StatsMsg) => bigint) => (s && denom(s) > 0n ? f(s) : null);

export function Stats({ session }: { session: Session }) {
  const home = session.who.home!;
  const months = lastMonths(12);
  // 月统计、季通报、年考核: the last twelve months, four quarters and two years.
  const periods = [...months, ...lastQuartersAndYears(4, 2)];
  const [month, setMonth] = useState(months[0]);
  const [main, setMain] = useState<{ s: StatsMsg | null; snapshot: boolean; at: string; period: string } | null>(null);
  const [error, setError] = useState<{ text: string; detail: string } | null>(null);
  const [trend, setTrend] = useState<{ month: string; s: StatsMsg | null }[]>([]);
  const [children, setChildren] = useState<RankRow[]>([]);
  const [units, setUnits] = useState<RankRow[]>([]);
  const [childRegions, setChildRegions] = useState<Region[]>([]);

  useEffect(() => {
    directory.listRegions({ parentCode: home.code, page: { pageSize: 500 } }).then(
      (r) => setChildRegions(r.regions),
      () => setChildRegions([]),
    );
  }, []);

  useEffect(() => {
    let gone = false;
    setMain(null);
    setError(null);
    stats.getStats({ scope: { case: "regionCode", value: home.code }, period: month }).then(
      (r) => !gone && setMain({ s: r.stats ?? null, snapshot: r.snapshot, at: fmtTime(r.computedAt, true), period: month }),
      (e) => {
        if (gone) return;
        const x = explain(e);
        setError({ text: x.text, detail: x.detail });
      },
    );
    const shown = trendMonths(month);
    void mapLimit(shown, 3, (m) => get({ case: "regionCode", value: home.code }, m)).then((rs) => {
      if (!gone) setTrend(rs.map((r, i) => ({ month: shown[i], s: r.s })));
    });
    // 季通报: the units within the region that led cases in the period, ranked by resolution
    // rate by the server (RankUnits), the fifteen with the most cases.
    stats.rankUnits({ regionCode: home.code, period: month, figure: RankFigure.RESOLUTION_RATE }).then(
      (r) =>
        !gone &&
        setUnits(
          rankRows(r.entries)
            .filter((x) => x.count > 0)
            .slice(0, 15),
        ),
      () => !gone && setUnits([]),
    );
    return () => {
      gone = true;
    };
  }, [month]);

  useEffect(() => {
    let gone = false;
    if (!childRegions.length) return;
    // The regions one tier down, ranked by resolution rate (those with no case last).
    stats.rankUnits({ regionCode: home.code, period: month, figure: RankFigure.RESOLUTION_RATE, regions: true }).then(
      (r) => !gone && setChildren(rankRows(r.entries)),
      () => !gone && setChildren([]),
    );
    return () => {
      gone = true;
    };
  }, [month, childRegions]);

  const s = main?.s ?? null;
  // Labels in the current language, made at render time.
  const points: TrendPoint[] = trend.map(({ month: m, s: x }, i) => ({
    label: i === 0 || m.endsWith("-01") ? monthLabel(m) : monthLabel(m).replace(/^\d{4}年/, "").replace(/ \d{4}$/, ""),
    a: Number(x?.received ?? 0n),
    b: Number(x?.resolved ?? 0n),
    rate: rate(x, (y) => y.resolutionRate, (y) => y.received),
    rate2: rate(x, (y) => y.satisfactionRate, (y) => y.evaluated),
  }));
  const resTarget = resolutionTarget(home.tier);
  const childTier = childRegions[0]?.tier ?? Tier.UNSPECIFIED;
  const kpis: [string, string, string?][] = s
    ? [
        [t("stats_received"), String(s.received)],
        [t("stats_resolved"), String(s.resolved)],
        [t("stats_overdue"), String(s.overdue), s.overdue > 0n ? "bad" : ""],
        [t("stats_mean_hours"), s.meanHandlingWorkingHours.toFixed(1)],
        [t("stats_evaluated"), String(s.evaluated)],
        [t("stats_escalations"), String(s.escalations), s.escalations > 0n ? "bad" : ""],
        [t("stats_returns"), String(s.returns)],
        [t("stats_reopens"), String(s.reopens)],
        // On time is judged against extended due times; this many were on time only by one.
        [t("stats_extended"), t("stats_extended_value", { n: String(s.extended), m: String(s.resolvedOnTimeByExtension) })],
      ]
    : [];

  return (
    <section class="stats" data-testid="stats">
      <div class="stats-head">
        <h2>
          {t("stats_title")} · {home.name} <small>({tierText(home.tier)} {home.code})</small>
        </h2>
        <label>
          {t("stats_month")}
          <select value={month} onChange={(e) => setMonth((e.target as HTMLSelectElement).value)} data-testid="stats-month">
            {periods.map((m) => (
              <option key={m} value={m}>
                {periodLabel(m)}
              </option>
            ))}
          </select>
        </label>
        {main ? (
          <span class="chip dim" data-testid="stats-source">
            {main.snapshot ? t("stats_snapshot") : t("stats_live")} · {t("stats_computed")} {main.at}
          </span>
        ) : null}
      </div>
      {error ? <ErrorBox text={error.text} detail={error.detail} /> : null}
      {!main && !error ? <p class="empty">{t("stats_loading")}</p> : null}
      {s ? (
        <>
          <div class="kpis" data-testid="stats-kpis" data-period={main?.period}>
            {kpis.map(([label, value, cls]) => (
              <div class={`kpi ${cls ?? ""}`} key={label}>
                <span class="v">{value}</span>
                <span class="l">{label}</span>
              </div>
            ))}
          </div>
          <div class="charts">
            <figure>
              <figcaption>{t("stats_rates")}</figcaption>
              <RateBars
                title={t("stats_rates")}
                meets={t("stats_meets")}
                misses={t("stats_misses")}
                noData={t("stats_no_data")}
                rows={[
                  { label: t("stats_resolution_rate"), value: rate(s, (x) => x.resolutionRate, (x) => x.received), target: resTarget },
                  { label: t("stats_satisfaction"), value: rate(s, (x) => x.satisfactionRate, (x) => x.evaluated), target: SATISFACTION_TARGET },
                  { label: t("stats_local"), value: rate(s, (x) => x.localResolutionRate, (x) => x.resolved), target: LOCAL_TARGET },
                  { label: t("stats_on_time_rate"), value: rate(s, (x) => x.onTimeRate, (x) => x.resolved) },
                ]}
              />
              <p class="hint">
                {t("stats_resolution_rate")} {t("stats_target")} ≥ {pct(resTarget)} ({tierText(home.tier)}) · {t("stats_satisfaction")} ≥ 90% · {t("stats_local")} ≥ 85%
              </p>
            </figure>
            <figure>
              <figcaption>{t("stats_trend", { n: points.length })}</figcaption>
              <Trend points={points} title={t("stats_trend", { n: trend.length })} labels={[t("stats_received"), t("stats_resolved"), t("stats_resolution_rate"), t("stats_satisfaction")]} />
            </figure>
            {children.length ? (
              <figure>
                <figcaption>{t("stats_children")}</figcaption>
                <Ranked rows={children} target={childTier ? resolutionTarget(childTier) : undefined} title={t("stats_children")} countLabel={t("stats_received")} />
              </figure>
            ) : null}
            {units.length ? (
              <figure>
                <figcaption>{t("stats_units")}</figcaption>
                <Ranked rows={units} title={t("stats_units")} countLabel={t("stats_received")} />
              </figure>
            ) : null}
          </div>
        </>
      ) : null}
    </section>
  );
}

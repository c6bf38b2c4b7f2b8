import { useEffect, useState } from "preact/hooks";
import type { Stats as StatsMsg } from "../gen/gridcase/v1/stats_pb";
import type { Region } from "../gen/gridcase/v1/common_pb";
import { Tier } from "../gen/gridcase/v1/common_pb";
import { directory, explain, stats } from "../api";
import { fmtTime, monthLabel, monthOf, pct, tierText } from "../format";
import { t } from "../i18n";
import { store } from "../store";
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
async function get(scope: Scope, month: string): Promise<{ s: StatsMsg | null; snapshot: boolean; at: string }> {
  try {
    const r = await stats.getStats({ scope, month });
    return { s: r.stats ?? null, snapshot: r.snapshot, at: fmtTime(r.computedAt, true) };
  } catch {
    return { s: null, snapshot: false, at: "" };
  }
}

const rate = (s: StatsMsg | null, f: (s: StatsMsg) => number, denom: (s: StatsMsg) => bigint) => (s && denom(s) > 0n ? f(s) : null);

export function Stats({ session }: { session: Session }) {
  const home = session.who.home!;
  const months = lastMonths(12);
  const [month, setMonth] = useState(months[0]);
  const [main, setMain] = useState<{ s: StatsMsg | null; snapshot: boolean; at: string } | null>(null);
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
    stats.getStats({ scope: { case: "regionCode", value: home.code }, month }).then(
      (r) => !gone && setMain({ s: r.stats ?? null, snapshot: r.snapshot, at: fmtTime(r.computedAt, true) }),
      (e) => {
        if (gone) return;
        const x = explain(e);
        setError({ text: x.text, detail: x.detail });
      },
    );
    const sel = months.indexOf(month);
    const trendMonths = months.slice(sel, sel + 6).reverse();
    void mapLimit(trendMonths, 3, (m) => get({ case: "regionCode", value: home.code }, m)).then((rs) => {
      if (!gone) setTrend(rs.map((r, i) => ({ month: trendMonths[i], s: r.s })));
    });
    // Units: this region's own, and those leading the most open cases on the map.
    const byPins = new Map<string, number>();
    for (const p of store.pins.values()) if (p.unit) byPins.set(p.unit, (byPins.get(p.unit) ?? 0) + 1);
    const busiest = [...byPins.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([code]) => code);
    const codes = [...new Set([...session.units.filter((u) => u.regionCode === home.code && !u.retired).map((u) => u.code), ...busiest])];
    const nameOf = (code: string) =>
      session.units.find((u) => u.code === code)?.name ?? (code.endsWith(".center") ? `${code.slice(0, -7)} ${t("map_center")}` : code);
    void mapLimit(codes, 3, (code) => get({ case: "unitCode", value: code }, month)).then((rs) => {
      if (gone) return;
      setUnits(
        rs
          .map((r, i) => ({ label: nameOf(codes[i]), value: rate(r.s, (s) => s.resolutionRate, (s) => s.received), count: Number(r.s?.received ?? 0n) }))
          .filter((r) => r.count > 0)
          .sort((a, b) => b.count - a.count || (b.value ?? -1) - (a.value ?? -1))
          .slice(0, 15),
      );
    });
    return () => {
      gone = true;
    };
  }, [month, session.units.length]);

  useEffect(() => {
    let gone = false;
    if (!childRegions.length) return;
    void mapLimit(childRegions, 3, (r) => get({ case: "regionCode", value: r.code }, month)).then((rs) => {
      if (gone) return;
      setChildren(
        rs
          .map((r, i) => ({ label: childRegions[i].name, value: rate(r.s, (s) => s.resolutionRate, (s) => s.received), count: Number(r.s?.received ?? 0n) }))
          .sort((a, b) => (b.value ?? -1) - (a.value ?? -1) || b.count - a.count),
      );
    });
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
            {months.map((m) => (
              <option key={m} value={m}>
                {monthLabel(m)}
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
          <div class="kpis" data-testid="stats-kpis">
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

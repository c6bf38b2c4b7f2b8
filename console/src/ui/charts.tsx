// Hand-drawn SVG charts: rate bars against a target, grouped columns with a rate line, ranked
// bars. Text is the system's CJK font; nothing is loaded.

export interface RateRow {
  label: string;
  value: number | null; // 0..1; null: no data
  target?: number; // 0..1
}

const FONT = `"Noto Sans CJK SC","Noto Sans SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif`;

function pctText(v: number | null): string {
  return v === null ? "—" : (v * 100).toFixed(1) + "%";
}

/** One horizontal bar per rate, with its target as a tick; green when it meets it. */
export function RateBars({ rows, meets, misses, noData, title }: { rows: RateRow[]; meets: string; misses: string; noData: string; title: string }) {
  const W = 640, rowH = 46, L = 170, R = 110, H = rows.length * rowH + 10;
  const bw = W - L - R;
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} data-testid="chart-rates" style={{ fontFamily: FONT }}>
      {rows.map((r, i) => {
        const y = 8 + i * rowH;
        const ok = r.value !== null && (r.target === undefined || r.value >= r.target);
        const color = r.value === null ? "#b0bec5" : r.target === undefined ? "#1565c0" : ok ? "#2e7d32" : "#d84315";
        return (
          <g key={r.label}>
            <text x={L - 10} y={y + 19} text-anchor="end" font-size="15" fill="#263238">
              {r.label}
            </text>
            <rect x={L} y={y + 6} width={bw} height={20} rx={4} fill="#eceff1" />
            <rect x={L} y={y + 6} width={Math.max(0, Math.min(1, r.value ?? 0)) * bw} height={20} rx={4} fill={color} />
            {r.target !== undefined ? (
              <g>
                <line x1={L + r.target * bw} x2={L + r.target * bw} y1={y + 1} y2={y + 31} stroke="#263238" stroke-width="2" stroke-dasharray="3 2" />
                <text x={L + r.target * bw} y={y + 42} text-anchor="middle" font-size="11" fill="#546e7a">
                  {(r.target * 100).toFixed(0)}%
                </text>
              </g>
            ) : null}
            <text x={L + bw + 10} y={y + 21} font-size="16" font-weight="600" fill={color}>
              {pctText(r.value)}
            </text>
            {r.target !== undefined ? (
              <text x={W - 4} y={y + 21} text-anchor="end" font-size="12" fill={r.value === null ? "#90a4ae" : ok ? "#2e7d32" : "#d84315"}>
                {r.value === null ? noData : ok ? meets : misses}
              </text>
            ) : null}
          </g>
        );
      })}
    </svg>
  );
}

export interface TrendPoint {
  label: string;
  a: number; // received
  b: number; // resolved
  rate: number | null; // resolution rate
  rate2: number | null; // satisfaction
}

/** Received / resolved columns per month, with the resolution and satisfaction rates as lines. */
export function Trend({ points, labels, title }: { points: TrendPoint[]; labels: [string, string, string, string]; title: string }) {
  const W = 640, H = 260, L = 44, R = 44, T = 30, B = 36;
  const cw = (W - L - R) / Math.max(1, points.length);
  const max = Math.max(1, ...points.map((p) => Math.max(p.a, p.b)));
  const nice = Math.pow(10, Math.floor(Math.log10(max)));
  const top = Math.ceil(max / nice) * nice;
  const y = (v: number) => T + (H - T - B) * (1 - v / top);
  const yr = (v: number) => T + (H - T - B) * (1 - v);
  const line = (f: (p: TrendPoint) => number | null) =>
    points
      .map((p, i) => [L + cw * (i + 0.5), f(p)] as const)
      .filter(([, v]) => v !== null)
      .map(([x, v], i) => `${i ? "L" : "M"}${x.toFixed(1)},${yr(v as number).toFixed(1)}`)
      .join("");
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} data-testid="chart-trend" style={{ fontFamily: FONT }}>
      {[0, 0.5, 1].map((f) => (
        <g key={f}>
          <line x1={L} x2={W - R} y1={y(top * f)} y2={y(top * f)} stroke="#eceff1" />
          <text x={L - 6} y={y(top * f) + 4} text-anchor="end" font-size="11" fill="#78909c">
            {Math.round(top * f)}
          </text>
          <text x={W - R + 6} y={yr(f) + 4} font-size="11" fill="#78909c">
            {Math.round(f * 100)}%
          </text>
        </g>
      ))}
      {points.map((p, i) => {
        const x = L + cw * i;
        const bw = Math.min(26, cw * 0.32);
        return (
          <g key={p.label}>
            <rect x={x + cw / 2 - bw - 1} y={y(p.a)} width={bw} height={Math.max(0, H - B - y(p.a))} fill="#90caf9">
              <title>{`${labels[0]} ${p.a}`}</title>
            </rect>
            <rect x={x + cw / 2 + 1} y={y(p.b)} width={bw} height={Math.max(0, H - B - y(p.b))} fill="#1565c0">
              <title>{`${labels[1]} ${p.b}`}</title>
            </rect>
            <text x={x + cw / 2} y={H - B + 18} text-anchor="middle" font-size="12" fill="#455a64">
              {p.label}
            </text>
          </g>
        );
      })}
      {points.map((p, i) => (
        <g key={"d" + i}>
          {p.rate !== null ? <circle cx={L + cw * (i + 0.5)} cy={yr(p.rate)} r={4} fill="#2e7d32" /> : null}
          {p.rate2 !== null ? <circle cx={L + cw * (i + 0.5)} cy={yr(p.rate2)} r={4} fill="#fff" stroke="#ef6c00" stroke-width="2" /> : null}
        </g>
      ))}
      <path d={line((p) => p.rate)} fill="none" stroke="#2e7d32" stroke-width="2.5" />
      <path d={line((p) => p.rate2)} fill="none" stroke="#ef6c00" stroke-width="2.5" stroke-dasharray="6 3" />
      <g font-size="12" fill="#37474f">
        {legend(labels).map(([x, label, i]) => (
          <g key={i}>
            {i < 2 ? (
              <rect x={x} y={6} width={12} height={12} fill={i === 0 ? "#90caf9" : "#1565c0"} />
            ) : (
              <line x1={x} x2={x + 16} y1={12} y2={12} stroke={i === 2 ? "#2e7d32" : "#ef6c00"} stroke-width="2.5" stroke-dasharray={i === 3 ? "6 3" : undefined} />
            )}
            <text x={x + (i < 2 ? 16 : 20)} y={16}>
              {label}
            </text>
          </g>
        ))}
      </g>
    </svg>
  );
}

/** Legend items side by side, spaced by their text's rough width (CJK is wider than Latin). */
function legend(labels: string[]): [number, string, number][] {
  let x = 44;
  return labels.map((label, i) => {
    const at = x;
    const w = [...label].reduce((n, ch) => n + (ch.charCodeAt(0) > 0x2e80 ? 12 : 6.8), 0);
    x += w + (i < 2 ? 16 : 20) + 18;
    return [at, label, i];
  });
}

export interface RankRow {
  label: string;
  value: number | null; // 0..1
  count: number;
}

/** Ranked horizontal bars of a rate, with a target line and each row's count. */
export function Ranked({ rows, target, title, countLabel }: { rows: RankRow[]; target?: number; title: string; countLabel: string }) {
  const W = 680, rowH = 26, L = 230, R = 150, T = 8;
  const H = T + rows.length * rowH + 22;
  const bw = W - L - R;
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} data-testid="chart-ranked" style={{ fontFamily: FONT }}>
      {rows.map((r, i) => {
        const y = T + i * rowH;
        const ok = r.value !== null && (target === undefined || r.value >= target);
        return (
          <g key={r.label + i}>
            <text x={L - 8} y={y + 17} text-anchor="end" font-size="13" fill="#263238">
              {r.label.length > 22 ? r.label.slice(0, 21) + "…" : r.label}
            </text>
            <rect x={L} y={y + 5} width={bw} height={15} rx={3} fill="#f1f4f6" />
            <rect x={L} y={y + 5} width={Math.max(0, Math.min(1, r.value ?? 0)) * bw} height={15} rx={3} fill={r.value === null ? "#cfd8dc" : ok ? "#43a047" : "#f4511e"} />
            <text x={L + bw + 8} y={y + 17} font-size="12" fill="#37474f">
              {pctText(r.value)} · {countLabel} {r.count}
            </text>
          </g>
        );
      })}
      {target !== undefined ? (
        <g>
          <line x1={L + target * bw} x2={L + target * bw} y1={T} y2={H - 18} stroke="#263238" stroke-width="1.5" stroke-dasharray="4 3" />
          <text x={L + target * bw} y={H - 5} text-anchor="middle" font-size="11" fill="#546e7a">
            {(target * 100).toFixed(0)}%
          </text>
        </g>
      ) : null}
    </svg>
  );
}

import { useEffect, useRef, useState } from "preact/hooks";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CaseStatus, type Case } from "../gen/gridcase/v1/case_pb";
import { cases, explain } from "../api";
import { ALL_STATUSES, OPEN_STATUSES, fmtTime, isLate, slaName, statusName, statusText, tsDate } from "../format";
import { store } from "../store";
import { t } from "../i18n";
import { ErrorBox, SlaBadge, StatusBadge } from "./common";
import type { Session } from "./Console";

interface Filters {
  statuses: CaseStatus[];
  unit: string;
  category: string;
  overdue: boolean;
  /** datetime-local values, Asia/Shanghai */
  from: string;
  to: string;
}

const EMPTY: Filters = { statuses: [], unit: "", category: "", overdue: false, from: "", to: "" };

/** A `datetime-local` value read as Asia/Shanghai wall time (UTC+8, no DST). */
function shanghai(v: string): Date | null {
  if (!v) return null;
  const d = new Date(v + ":00+08:00");
  return isNaN(d.getTime()) ? null : d;
}

function matches(c: Case, f: Filters, region: string): boolean {
  if (f.statuses.length && !f.statuses.includes(c.status)) return false;
  if (f.unit && c.unitCode !== f.unit && !c.assistingUnits.some((a) => a.unitCode === f.unit)) return false;
  if (f.category && c.categoryCode !== f.category) return false;
  if (f.overdue && !isLate(c.slaState)) return false;
  if (region && !c.gridCode.startsWith(region) && !c.regionCode.startsWith(region)) return false;
  const rec = tsDate(c.receivedAt);
  const from = shanghai(f.from), to = shanghai(f.to);
  if (rec && from && rec < from) return false;
  if (rec && to && rec >= to) return false;
  return true;
}

export function Queue({
  session,
  regionFilter,
  onRegionFilter,
  selected,
  onOpen,
}: {
  session: Session;
  regionFilter: string;
  onRegionFilter: (code: string) => void;
  selected: string | null;
  onOpen: (id: string) => void;
}) {
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [pageSize, setPageSize] = useState(50);
  const [tokens, setTokens] = useState<string[]>([""]);
  const [rows, setRows] = useState<Case[]>([]);
  const [next, setNext] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<{ text: string; detail: string } | null>(null);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const page = tokens.length - 1;
  const state = useRef({ filters, region: regionFilter, page, pageSize });
  state.current = { filters, region: regionFilter, page, pageSize };

  const region = regionFilter || session.scopeRegion;
  /** The applied filters as ListCases and ExportCases take them. */
  const query = (f: Filters) => ({
    statuses: f.statuses,
    regionCode: region,
    unitCode: f.unit,
    categoryCode: f.category,
    overdueOnly: f.overdue,
    receivedFrom: shanghai(f.from) ? timestampFromDate(shanghai(f.from)!) : undefined,
    receivedTo: shanghai(f.to) ? timestampFromDate(shanghai(f.to)!) : undefined,
  });
  useEffect(() => {
    let gone = false;
    setLoading(true);
    cases
      .listCases({ ...query(filters), page: { pageSize, pageToken: tokens[tokens.length - 1] } })
      .then(
        (r) => {
          if (gone) return;
          setRows(r.cases);
          setNext(r.nextPageToken);
          setError(null);
          setLoading(false);
          for (const c of r.cases) store.cases.set(c.id, c);
        },
        (e) => {
          if (gone) return;
          const x = explain(e);
          setError({ text: x.text, detail: x.detail });
          setRows([]);
          setLoading(false);
        },
      );
    return () => {
      gone = true;
    };
  }, [filters, region, pageSize, tokens]);

  useEffect(() => store.watch("queue", rows.map((r) => r.id)), [rows]);

  // Live: a known row changes in place; a new case that matches joins the first page.
  useEffect(
    () =>
      store.onCase((c, isNew) => {
        setRows((rs) => {
          const i = rs.findIndex((r) => r.id === c.id);
          if (i >= 0) {
            if (rs[i].version > c.version) return rs;
            const copy = rs.slice();
            copy[i] = c;
            return copy;
          }
          // Not on this page: it joins the first page in its place (newest first) when it
          // matches the filters and is newer than the page's oldest row.
          const s = state.current;
          if (s.page !== 0 || !matches(c, s.filters, s.region || session.scopeRegion)) return rs;
          const rec = tsDate(c.receivedAt)?.getTime() ?? 0;
          const last = rs.length ? (tsDate(rs[rs.length - 1].receivedAt)?.getTime() ?? 0) : 0;
          if (rs.length >= s.pageSize && rec < last) return rs;
          let at = rs.findIndex((r) => (tsDate(r.receivedAt)?.getTime() ?? 0) < rec);
          if (at < 0) at = rs.length;
          if (isNew) setFresh((f) => new Set(f).add(c.id));
          return [...rs.slice(0, at), c, ...rs.slice(at)];
        });
      }),
    [],
  );

  const apply = (e?: Event) => {
    e?.preventDefault();
    setFilters({ ...draft });
    setTokens([""]);
  };
  const reset = () => {
    setDraft(EMPTY);
    setFilters(EMPTY);
    setTokens([""]);
    onRegionFilter("");
  };
  const toggleStatus = (s: CaseStatus) =>
    setDraft((d) => ({ ...d, statuses: d.statuses.includes(s) ? d.statuses.filter((x) => x !== s) : [...d.statuses, s] }));

  // 导出 CSV: every case of the applied filters (not just this page), streamed by ExportCases
  // and saved as one file.
  const [exported, setExported] = useState<number | null>(null);
  const exportCsv = async () => {
    if (exported !== null) return;
    setExported(0);
    try {
      const parts: BlobPart[] = [];
      let n = 0;
      for await (const chunk of cases.exportCases(query(filters))) {
        parts.push(chunk.data as BlobPart);
        n += Number(chunk.rows);
        setExported(n);
      }
      const url = URL.createObjectURL(new Blob(parts, { type: "text/csv;charset=utf-8" }));
      const a = document.createElement("a");
      const stamp = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 16).replace(/[-:T]/g, "");
      a.href = url;
      a.download = `cases-${region || "all"}-${stamp}.csv`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setError(null);
    } catch (e) {
      const x = explain(e);
      setError({ text: x.text, detail: x.detail });
    } finally {
      setExported(null);
    }
  };

  const unitOptions = session.units;
  const catName = (code: string) => session.categories.find((c) => c.code === code)?.name ?? code;

  return (
    <section class="queue" data-testid="queue">
      <div class="panel-head">
        <h2>{t("queue_title")}</h2>
        {regionFilter ? (
          <span class="chip" data-testid="queue-region">
            {t("queue_region")}: {regionFilter}
            <button class="link" aria-label="×" onClick={() => onRegionFilter("")}>
              ×
            </button>
          </span>
        ) : null}
      </div>
      <form class="filters" onSubmit={apply} data-testid="queue-filters">
        <div class="statuses" role="group" aria-label={t("queue_status")}>
          <button type="button" class={draft.statuses.length === 0 ? "chip on" : "chip"} onClick={() => setDraft((d) => ({ ...d, statuses: [] }))}>
            {t("queue_all")}
          </button>
          <button
            type="button"
            class={draft.statuses.length === OPEN_STATUSES.length && OPEN_STATUSES.every((s) => draft.statuses.includes(s)) ? "chip on" : "chip"}
            onClick={() => setDraft((d) => ({ ...d, statuses: [...OPEN_STATUSES] }))}
          >
            {t("queue_open")}
          </button>
          {ALL_STATUSES.map((s) => (
            <label key={s} class={draft.statuses.includes(s) ? "chip on" : "chip"}>
              <input type="checkbox" checked={draft.statuses.includes(s)} onChange={() => toggleStatus(s)} data-testid={`filter-status-${statusName(s)}`} />
              {statusText(s)}
            </label>
          ))}
        </div>
        <div class="row">
          <label>
            {t("queue_unit")}
            {unitOptions.length ? (
              <select value={draft.unit} onChange={(e) => setDraft((d) => ({ ...d, unit: (e.target as HTMLSelectElement).value }))} data-testid="filter-unit">
                <option value="">{t("queue_all")}</option>
                {unitOptions.map((u) => (
                  <option key={u.code} value={u.code}>
                    {u.name} ({u.code})
                  </option>
                ))}
              </select>
            ) : (
              <input value={draft.unit} placeholder="371102.police" onInput={(e) => setDraft((d) => ({ ...d, unit: (e.target as HTMLInputElement).value.trim() }))} data-testid="filter-unit" />
            )}
          </label>
          <label>
            {t("queue_category")}
            {session.categories.length ? (
              <select value={draft.category} onChange={(e) => setDraft((d) => ({ ...d, category: (e.target as HTMLSelectElement).value }))} data-testid="filter-category">
                <option value="">{t("queue_all")}</option>
                {session.categories.map((c) => (
                  <option key={c.code} value={c.code}>
                    {c.className} / {c.name} ({c.code})
                  </option>
                ))}
              </select>
            ) : (
              <input value={draft.category} placeholder="dispute.neighbor" onInput={(e) => setDraft((d) => ({ ...d, category: (e.target as HTMLInputElement).value.trim() }))} data-testid="filter-category" />
            )}
          </label>
        </div>
        <div class="row">
          <label>
            {t("queue_from")}
            <input type="datetime-local" value={draft.from} onInput={(e) => setDraft((d) => ({ ...d, from: (e.target as HTMLInputElement).value }))} data-testid="filter-from" />
          </label>
          <label>
            {t("queue_to")}
            <input type="datetime-local" value={draft.to} onInput={(e) => setDraft((d) => ({ ...d, to: (e.target as HTMLInputElement).value }))} data-testid="filter-to" />
          </label>
        </div>
        <div class="row actions-row">
          <label class="check">
            <input type="checkbox" checked={draft.overdue} onChange={(e) => setDraft((d) => ({ ...d, overdue: (e.target as HTMLInputElement).checked }))} data-testid="filter-overdue" />
            {t("queue_overdue_only")}
          </label>
          <span class="spacer" />
          <button type="button" class="secondary" onClick={reset}>
            {t("queue_reset")}
          </button>
          <button type="submit" class="primary" data-testid="filter-apply">
            {t("queue_apply")}
          </button>
        </div>
      </form>
      {error ? <ErrorBox text={error.text} detail={error.detail} /> : null}
      <div class="table-wrap">
        <table class="cases" aria-busy={loading}>
          <thead>
            <tr>
              <th>{t("col_code")}</th>
              <th>{t("col_category")}</th>
              <th>{t("col_status")}</th>
              <th>{t("col_sla")}</th>
              <th>{t("col_unit")}</th>
              <th>{t("col_received")}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr
                key={c.id}
                data-testid="case-row"
                data-case-id={c.id}
                data-sla-state={slaName(c.slaState)}
                data-status={statusName(c.status)}
                class={(c.id === selected ? "selected " : "") + (fresh.has(c.id) ? "fresh" : "")}
                tabIndex={0}
                onClick={() => onOpen(c.id)}
                onKeyDown={(e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), onOpen(c.id))}
              >
                <td class="code">
                  {c.code}
                  {fresh.has(c.id) ? <span class="new">{t("queue_new")}</span> : null}
                </td>
                <td title={c.categoryCode}>{catName(c.categoryCode)}</td>
                <td>
                  <StatusBadge s={c.status} />
                </td>
                <td>
                  <SlaBadge s={c.slaState} />
                </td>
                <td class="unit">{c.unitCode}</td>
                <td class="time">{fmtTime(c.receivedAt, true)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {!loading && rows.length === 0 && !error ? <p class="empty">{t("queue_empty")}</p> : null}
        {loading ? <p class="empty">{t("queue_loading")}</p> : null}
      </div>
      <div class="pager">
        <button class="secondary" disabled={page === 0} onClick={() => setTokens((ts) => ts.slice(0, -1))} data-testid="page-prev">
          {t("queue_prev")}
        </button>
        <span>{t("queue_page", { n: page + 1 })}</span>
        <button class="secondary" disabled={!next} onClick={() => setTokens((ts) => [...ts, next])} data-testid="page-next">
          {t("queue_next")}
        </button>
        <button class="secondary" disabled={exported !== null} onClick={exportCsv} data-testid="queue-export" title={t("queue_export_hint")}>
          {exported === null ? t("queue_export") : t("queue_exporting", { n: exported })}
        </button>
        <label class="size">
          {t("queue_page_size")}
          <select value={String(pageSize)} onChange={(e) => { setPageSize(Number((e.target as HTMLSelectElement).value)); setTokens([""]); }}>
            {[25, 50, 100, 200, 500].map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </div>
    </section>
  );
}

import { useEffect, useRef, useState } from "preact/hooks";
import { Code } from "@connectrpc/connect";
import { CaseStatus, Satisfaction, type Case, type CaseEvent, type SlaClock } from "../gen/gridcase/v1/case_pb";
import { Role } from "../gen/gridcase/v1/common_pb";
import { cases, explain } from "../api";
import {
  clockText,
  eventKindText,
  fmtDuration,
  fmtTime,
  isOpen,
  roleText,
  satisfactionText,
  severityText,
  slaName,
  sourceText,
  statusName,
  statusText,
  tierText,
  tsDate,
} from "../format";
import { store } from "../store";
import { t, type Key } from "../i18n";
import { ErrorBox, Field, ShortId, SlaBadge, StatusBadge } from "./common";
import type { Session } from "./Console";

type Kind =
  | "dispatch"
  | "whistle"
  | "escalate"
  | "feedback"
  | "close"
  | "merge"
  | "cancel"
  | "accept"
  | "checkin"
  | "return"
  | "progress"
  | "resolve"
  | "evaluate"
  | "callback"
  | "awaitReporter"
  | "resume"
  | "extension"
  | "approveExtension"
  | "refuseExtension"
  | "approveReturn"
  | "refuseReturn";
type FieldName = "unit" | "units" | "reason" | "reasonOpt" | "note" | "noteOpt" | "result" | "question" | "into" | "satisfaction" | "comment" | "duration";

interface ActionDef {
  kind: Kind;
  label: Key;
  fields: FieldName[];
}

const S = CaseStatus;

/** The actions the caller's role may take on the case in its present state (DESIGN.md's lifecycle). */
export function actionsFor(c: Case, session: Session): ActionDef[] {
  const st = c.status;
  const out: ActionDef[] = [];
  const inS = (...ss: CaseStatus[]) => ss.includes(st);
  if (session.role === Role.DISPATCHER) {
    if (inS(S.REGISTERED, S.RETURNED, S.DISPATCHED)) out.push({ kind: "dispatch", label: "act_dispatch", fields: ["unit", "reasonOpt"] });
    if (inS(S.DISPATCHED, S.ACCEPTED, S.IN_PROGRESS)) out.push({ kind: "whistle", label: "act_whistle", fields: ["units", "reasonOpt"] });
    if (inS(S.REGISTERED, S.RETURNED, S.DISPATCHED, S.ACCEPTED, S.IN_PROGRESS)) out.push({ kind: "escalate", label: "act_escalate", fields: ["reason"] });
    if (inS(S.RESOLVED)) {
      out.push({ kind: "feedback", label: "act_feedback", fields: ["note"] });
      // 回访: the reporter's evaluation, taken on a callback (hotline reporters cannot press a button).
      out.push({ kind: "callback", label: "act_callback", fields: ["satisfaction", "comment"] });
      out.push({ kind: "close", label: "act_close", fields: ["reasonOpt"] });
    }
    // What the lead unit asked of the center: an extension, a return after the window.
    if (c.pendingRequest?.kind === "extension") {
      out.push({ kind: "approveExtension", label: "act_approve_extension", fields: ["reasonOpt"] });
      out.push({ kind: "refuseExtension", label: "act_refuse_extension", fields: ["reason"] });
    }
    if (c.pendingRequest?.kind === "return") {
      out.push({ kind: "approveReturn", label: "act_approve_return", fields: ["reasonOpt"] });
      out.push({ kind: "refuseReturn", label: "act_refuse_return", fields: ["reason"] });
    }
    if (isOpen(st)) {
      out.push({ kind: "merge", label: "act_merge", fields: ["into", "reasonOpt"] });
      out.push({ kind: "cancel", label: "act_cancel", fields: ["reason"] });
    }
  } else if (session.role === Role.UNIT_STAFF) {
    const unit = session.who.member?.unitCode ?? "";
    const lead = unit !== "" && c.unitCode === unit;
    if (lead && inS(S.DISPATCHED)) out.push({ kind: "accept", label: "act_accept", fields: [] });
    if (c.assistingUnits.some((a) => a.unitCode === unit && !a.checkedInAt) && isOpen(st)) out.push({ kind: "checkin", label: "act_checkin", fields: [] });
    if (lead && inS(S.DISPATCHED, S.ACCEPTED) && !c.pendingRequest) out.push({ kind: "return", label: "act_return", fields: ["reason"] });
    if (lead && inS(S.ACCEPTED, S.IN_PROGRESS)) {
      out.push({ kind: "progress", label: "act_progress", fields: ["note"] });
      out.push({ kind: "resolve", label: "act_resolve", fields: ["result"] });
      // Waiting on the reporter pauses the resolve clock; asked once until resumed.
      if (c.awaitingReporterSince) out.push({ kind: "resume", label: "act_resume", fields: ["noteOpt"] });
      else out.push({ kind: "awaitReporter", label: "act_await_reporter", fields: ["question"] });
      // 延期: one request at a time, decided by the holding center.
      if (!c.pendingRequest) out.push({ kind: "extension", label: "act_extension", fields: ["duration", "reason"] });
    }
    if (lead && inS(S.RESOLVED)) out.push({ kind: "feedback", label: "act_feedback", fields: ["note"] });
  } else if (session.role === Role.GRID_MEMBER) {
    if (c.reporterSub === session.who.sub && inS(S.RESOLVED)) out.push({ kind: "evaluate", label: "f_evaluation", fields: ["satisfaction", "comment"] });
  }
  return out;
}

interface FormValues {
  duration: string;
  unit: string;
  units: string[];
  text: string;
  into: string;
  satisfaction: Satisfaction;
}

async function perform(kind: Kind, c: Case, v: FormValues): Promise<Case | undefined> {
  const base = { caseId: c.id, expectedVersion: c.version };
  switch (kind) {
    case "dispatch":
      return (await cases.dispatchCase({ ...base, unitCode: v.unit, reason: v.text })).case;
    case "whistle":
      return (await cases.whistleCase({ ...base, unitCodes: v.units, reason: v.text })).case;
    case "escalate":
      return (await cases.escalateCase({ ...base, reason: v.text })).case;
    case "feedback":
      return (await cases.recordFeedback({ ...base, note: v.text })).case;
    case "close":
      return (await cases.closeCase({ ...base, reason: v.text })).case;
    case "merge":
      return (await cases.mergeCase({ ...base, intoCaseId: v.into.trim(), reason: v.text })).case;
    case "cancel":
      return (await cases.cancelCase({ ...base, reason: v.text })).case;
    case "accept":
    case "checkin":
      return (await cases.acceptCase(base)).case;
    case "return":
      return (await cases.returnCase({ ...base, reason: v.text })).case;
    case "progress":
      return (await cases.updateProgress({ ...base, note: v.text })).case;
    case "resolve":
      return (await cases.resolveCase({ ...base, result: v.text })).case;
    case "evaluate":
      return (await cases.evaluateCase({ ...base, satisfaction: v.satisfaction, comment: v.text })).case;
    case "callback":
      return (await cases.evaluateCase({ ...base, satisfaction: v.satisfaction, comment: v.text, byCallback: true })).case;
    case "awaitReporter":
      return (await cases.awaitReporter({ ...base, question: v.text })).case;
    case "resume":
      return (await cases.resumeCase({ ...base, note: v.text })).case;
    case "extension":
      return (await cases.requestExtension({ ...base, duration: v.duration.trim(), reason: v.text })).case;
    case "approveExtension":
    case "refuseExtension":
      return (await cases.decideExtension({ ...base, approve: kind === "approveExtension", reason: v.text })).case;
    case "approveReturn":
    case "refuseReturn":
      return (await cases.decideReturn({ ...base, approve: kind === "approveReturn", reason: v.text })).case;
  }
}

/** The question of the latest wait on the reporter (the `awaiting_reporter` event's reason). */
function question(events: CaseEvent[]): string {
  for (let i = events.length - 1; i >= 0; i--) if (events[i].kind === "awaiting_reporter") return events[i].reason;
  return "";
}

/** Each event's prev_hash against the hash of the event before it (the first against "genesis"). */
export function chainCheck(events: CaseEvent[]): { ok: boolean; links: boolean[]; brokenAt: number } {
  const links = events.map((e, i) => (i === 0 ? e.prevHash === "genesis" || e.prevHash === "" : e.prevHash === events[i - 1].hash));
  const brokenAt = links.findIndex((x) => !x);
  return { ok: brokenAt < 0, links, brokenAt };
}

function clockState(c: SlaClock): { key: Key; cls: string } {
  if (c.stoppedAt) return { key: "clock_stopped", cls: "stopped" };
  if (c.pausedAt) return { key: "clock_paused", cls: "paused" };
  if (c.escalatedAt || c.escalations > 0) return { key: "clock_escalated", cls: "escalated" };
  if (c.breachedAt) return { key: "clock_breached", cls: "breached" };
  if (c.warnedAt) return { key: "clock_warned", cls: "warned" };
  return { key: "clock_running", cls: "running" };
}

function Details({ json }: { json: string }) {
  let obj: Record<string, unknown> | null = null;
  try {
    obj = JSON.parse(json || "null");
  } catch {
    return <code>{json}</code>;
  }
  if (!obj || typeof obj !== "object") return null;
  const entries = Object.entries(obj).filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && v.length === 0));
  if (!entries.length) return null;
  return (
    <dl class="ev-details">
      {entries.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>
        </div>
      ))}
    </dl>
  );
}

export function Detail({ session, caseId, onClose, onOpen }: { session: Session; caseId: string; onClose: () => void; onOpen: (id: string) => void }) {
  const [c, setCase] = useState<Case | null>(null);
  const [events, setEvents] = useState<CaseEvent[]>([]);
  const [error, setError] = useState<{ text: string; detail: string } | null>(null);
  const [notice, setNotice] = useState<{ text: string; detail?: string; kind: "ok" | "warn" } | null>(null);
  const [open, setOpen] = useState<ActionDef | null>(null);
  const [busy, setBusy] = useState(false);
  const [values, setValues] = useState<FormValues>({ duration: "", unit: "", units: [], text: "", into: "", satisfaction: Satisfaction.SATISFIED });
  const [unitFilter, setUnitFilter] = useState("");
  const [now, setNow] = useState(Date.now());
  const version = useRef(-1n);
  const flown = useRef(false);

  const load = async () => {
    try {
      const r = await cases.getCase({ caseId, includeEvents: true });
      if (!r.case) return;
      version.current = r.case.version;
      setCase(r.case);
      setEvents([...r.events].sort((a, b) => (a.sequence < b.sequence ? -1 : 1)));
      setError(null);
      store.putCase(r.case);
      if (!flown.current) {
        flown.current = true;
        session.map?.selectCase(r.case.id, r.case.location);
      }
    } catch (e) {
      const x = explain(e);
      setError({ text: x.text, detail: x.detail });
    }
  };

  useEffect(() => {
    store.watch("detail", [caseId]);
    void load();
    // Someone changed it (live event, or an action here): read it again with its events.
    let timer: number | null = null;
    const unsub = store.onCase((x) => {
      if (x.id !== caseId || x.version <= version.current) return;
      if (timer === null)
        timer = window.setTimeout(() => {
          timer = null;
          void load();
        }, 250);
    });
    const tick = window.setInterval(() => setNow(Date.now()), 30_000);
    return () => {
      store.watch("detail", []);
      unsub();
      if (timer !== null) clearTimeout(timer);
      clearInterval(tick);
    };
  }, [caseId]);

  useEffect(() => {
    if (session.map && c) session.map.selectCase(c.id);
  }, [session.map]);

  const startAction = (a: ActionDef) => {
    setOpen(a);
    setNotice(null);
    setUnitFilter("");
    setValues({ duration: "", unit: c?.unitCode ?? "", units: [], text: "", into: c?.possibleDuplicateOf ?? "", satisfaction: Satisfaction.SATISFIED });
  };

  const confirm = async (e: Event) => {
    e.preventDefault();
    if (!c || !open) return;
    const need = (f: FieldName, ok: boolean, label: Key) => {
      if (open.fields.includes(f) && !ok) throw new Error(t("act_required", { f: t(label) }));
    };
    try {
      need("reason", values.text.trim() !== "", "act_reason");
      need("note", values.text.trim() !== "", "act_note");
      need("result", values.text.trim() !== "", "act_result");
      need("question", values.text.trim() !== "", "act_question");
      need("into", values.into.trim() !== "", "act_into");
      need("units", values.units.length > 0, "act_units");
      need("duration", values.duration.trim() !== "", "act_duration");
    } catch (err) {
      setNotice({ text: (err as Error).message, kind: "warn" });
      return;
    }
    setBusy(true);
    setNotice(null);
    try {
      const updated = await perform(open.kind, c, values);
      if (updated) {
        version.current = updated.version;
        setCase(updated);
        store.putCase(updated);
      }
      setNotice({ text: t("act_done", { a: t(open.label) }), kind: "ok" });
      setOpen(null);
      void load();
    } catch (err) {
      const x = explain(err, statusText(c.status));
      setNotice({ text: x.text, detail: `${t("err_server_says")}: ${x.detail}`, kind: "warn" });
      if (x.code === Code.Aborted || x.code === Code.FailedPrecondition) {
        setOpen(null);
        void load();
      }
    } finally {
      setBusy(false);
    }
  };

  const chain = chainCheck(events);
  const acts = c ? actionsFor(c, session) : [];
  const unitName = (code: string) => session.units.find((u) => u.code === code)?.name;
  const catName = (code: string) => session.categories.find((x) => x.code === code)?.name;
  const unitsShown = session.units.filter((u) => !u.retired && (!unitFilter || u.code.includes(unitFilter) || u.name.includes(unitFilter)));

  return (
    <section class="detail" data-testid="case-detail" data-case-id={caseId} data-status={c ? statusName(c.status) : ""} data-sla-state={c ? slaName(c.slaState) : ""}>
      <div class="panel-head">
        <button class="link back" onClick={onClose} data-testid="detail-close">
          ← {t("detail_back")}
        </button>
        <h2>
          {t("detail_title")} {c ? <span class="code">{c.code}</span> : null}
        </h2>
      </div>
      {error ? <ErrorBox text={error.text} detail={error.detail} /> : null}
      {!c && !error ? <p class="empty">{t("detail_loading")}</p> : null}
      {c ? (
        <div class="detail-body">
          <div class="badges">
            <StatusBadge s={c.status} />
            <SlaBadge s={c.slaState} />
            <span class="badge">{severityText(c.severity)}</span>
            {c.redCard ? <span class="badge red">{t("f_red_card")}</span> : null}
            {c.awaitingReporterSince ? (
              <span class="badge" data-testid="awaiting-reporter">
                {t("f_awaiting")}
              </span>
            ) : null}
          </div>
          <p class="description">{c.description}</p>
          {c.pendingRequest ? (
            <div class="notice warn" data-testid="pending-request" data-kind={c.pendingRequest.kind}>
              <p>
                {c.pendingRequest.kind === "extension"
                  ? t("f_pending_extension", { d: c.pendingRequest.duration, u: c.pendingRequest.unitCode, t: fmtTime(c.pendingRequest.at) })
                  : t("f_pending_return", { u: c.pendingRequest.unitCode, t: fmtTime(c.pendingRequest.at) })}
              </p>
              {c.pendingRequest.reason ? <p class="more">{c.pendingRequest.reason}</p> : null}
            </div>
          ) : null}
          {c.awaitingReporterSince ? (
            <div class="notice warn" data-testid="awaiting-question">
              <p>{t("f_awaiting_since", { t: fmtTime(c.awaitingReporterSince) })}</p>
              {question(events) ? <p class="more">{question(events)}</p> : null}
            </div>
          ) : null}

          <div class="actions" data-testid="actions">
            <h3>{t("actions_title")}</h3>
            {acts.length === 0 ? <p class="hint">{t("actions_none")}</p> : null}
            <div class="action-buttons">
              {acts.map((a) => (
                <button key={a.kind} class={open?.kind === a.kind ? "primary" : "secondary"} data-testid={`action-${a.kind}`} onClick={() => startAction(a)} disabled={busy}>
                  {t(a.label)}
                </button>
              ))}
            </div>
            {notice ? (
              <div class={notice.kind === "ok" ? "notice ok" : "notice warn"} role="status" data-testid="action-result" data-kind={notice.kind}>
                <p>{notice.text}</p>
                {notice.detail ? <p class="more">{notice.detail}</p> : null}
              </div>
            ) : null}
            {open ? (
              <form class="action-form" onSubmit={confirm} data-testid="action-form" data-kind={open.kind}>
                <h4>{t(open.label)}</h4>
                {open.fields.includes("unit") ? (
                  <>
                    <label>
                      {t("act_unit_filter")}
                      <input value={unitFilter} onInput={(e) => setUnitFilter((e.target as HTMLInputElement).value.trim())} placeholder="police / 公安" />
                    </label>
                    <label>
                      {t("act_unit")}
                      <select data-testid="unit-picker" value={values.unit} onChange={(e) => setValues((v) => ({ ...v, unit: (e.target as HTMLSelectElement).value }))} size={8}>
                        {!session.units.some((u) => u.code === c.unitCode) && c.unitCode ? <option value={c.unitCode}>{c.unitCode}</option> : null}
                        {unitsShown.map((u) => (
                          <option key={u.code} value={u.code}>
                            {u.name} — {u.code}
                          </option>
                        ))}
                      </select>
                    </label>
                  </>
                ) : null}
                {open.fields.includes("units") ? (
                  <>
                    <label>
                      {t("act_unit_filter")}
                      <input value={unitFilter} onInput={(e) => setUnitFilter((e.target as HTMLInputElement).value.trim())} />
                    </label>
                    <label>
                      {t("act_units")}
                      <select
                        multiple
                        size={8}
                        data-testid="unit-picker"
                        onChange={(e) => setValues((v) => ({ ...v, units: Array.from((e.target as HTMLSelectElement).selectedOptions).map((o) => o.value) }))}
                      >
                        {unitsShown
                          .filter((u) => u.code !== c.unitCode)
                          .map((u) => (
                            <option key={u.code} value={u.code} selected={values.units.includes(u.code)}>
                              {u.name} — {u.code}
                            </option>
                          ))}
                      </select>
                    </label>
                  </>
                ) : null}
                {open.fields.includes("into") ? (
                  <label>
                    {t("act_into")}
                    <input value={values.into} onInput={(e) => setValues((v) => ({ ...v, into: (e.target as HTMLInputElement).value }))} data-testid="merge-into" />
                  </label>
                ) : null}
                {open.fields.includes("satisfaction") ? (
                  <label>
                    {t("f_evaluation")}
                    <select value={String(values.satisfaction)} onChange={(e) => setValues((v) => ({ ...v, satisfaction: Number((e.target as HTMLSelectElement).value) }))}>
                      {[Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED, Satisfaction.DISSATISFIED].map((s) => (
                        <option key={s} value={String(s)}>
                          {satisfactionText(s)}
                        </option>
                      ))}
                    </select>
                  </label>
                ) : null}
                {open.fields.includes("duration") ? (
                  <label>
                    {t("act_duration")}
                    <input value={values.duration} placeholder="3wd" onInput={(e) => setValues((v) => ({ ...v, duration: (e.target as HTMLInputElement).value }))} data-testid="action-duration" />
                    <small class="hint">{t("act_duration_hint")}</small>
                  </label>
                ) : null}
                {open.fields.some((f) => f === "reason" || f === "reasonOpt" || f === "note" || f === "noteOpt" || f === "result" || f === "question" || f === "comment") ? (
                  <label>
                    {t(
                      open.fields.includes("reason")
                        ? "act_reason"
                        : open.fields.includes("note") || open.fields.includes("noteOpt")
                          ? "act_note"
                          : open.fields.includes("result")
                            ? "act_result"
                            : open.fields.includes("question")
                              ? "act_question"
                              : "act_reason_opt",
                    )}
                    <textarea rows={2} value={values.text} onInput={(e) => setValues((v) => ({ ...v, text: (e.target as HTMLTextAreaElement).value }))} data-testid="action-text" />
                  </label>
                ) : null}
                <div class="form-buttons">
                  <button type="button" class="secondary" onClick={() => setOpen(null)}>
                    {t("act_cancel_form")}
                  </button>
                  <button type="submit" class="primary" data-testid="action-confirm" disabled={busy}>
                    {busy ? t("act_working") : t("act_confirm")}
                  </button>
                </div>
              </form>
            ) : null}
          </div>

          <h3>{t("detail_fields")}</h3>
          <dl class="fields">
            <Field label={t("f_category")}>
              {catName(c.categoryCode) ? `${catName(c.categoryCode)} ` : ""}
              <code>{c.categoryCode}</code>
            </Field>
            <Field label={t("f_unit")}>
              {unitName(c.unitCode) ? `${unitName(c.unitCode)} ` : ""}
              <code>{c.unitCode}</code>
            </Field>
            <Field label={t("f_tier")}>{tierText(c.tier)}</Field>
            <Field label={t("f_region")}>
              <code>{c.regionCode}</code> ({c.regionCode}.center)
            </Field>
            <Field label={t("f_grid")}>
              <code>{c.gridCode || "—"}</code>
            </Field>
            <Field label={t("f_source")}>{sourceText(c.source)}</Field>
            <Field label={t("f_reporter")}>
              <code>{c.reporterSub || "—"}</code> {c.reporterPhone ? `· ${c.reporterPhone}` : ""}
            </Field>
            <Field label={t("f_location")}>
              {c.location && (c.location.lat || c.location.lon) ? (
                <>
                  {c.location.lat.toFixed(6)}, {c.location.lon.toFixed(6)}{" "}
                  <button class="link" data-testid="show-on-map" onClick={() => session.map?.selectCase(c.id, c.location)}>
                    {t("f_show_on_map")}
                  </button>
                  {c.snapped ? <div class="hint">{t("f_snapped", { m: c.snapDistanceM.toFixed(0) })}</div> : null}
                </>
              ) : (
                "—"
              )}
            </Field>
            {c.address ? <Field label={t("f_address")}>{c.address}</Field> : null}
            <Field label={t("f_received")}>{fmtTime(c.receivedAt)}</Field>
            {c.capturedAt ? <Field label={t("f_captured")}>{fmtTime(c.capturedAt)}</Field> : null}
            <Field label={t("f_updated")}>{fmtTime(c.updatedAt)}</Field>
            <Field label={t("f_version")}>
              <span data-testid="case-version">{String(c.version)}</span> · {t("f_cycle")} {c.cycle} · {t("f_reopens")} {c.reopenCount} · {t("f_escalation")} {c.escalationLevel}
            </Field>
            {c.externalId ? <Field label={t("f_external")}>{c.externalId}</Field> : null}
            {c.assistingUnits.length ? (
              <Field label={t("f_assisting")} wide>
                <ul class="plain">
                  {c.assistingUnits.map((a) => (
                    <li key={a.unitCode}>
                      <code>{a.unitCode}</code> — {a.checkedInAt ? `${t("f_checked_in")} ${fmtTime(a.checkedInAt, true)}` : t("f_not_checked_in")}
                    </li>
                  ))}
                </ul>
              </Field>
            ) : null}
            <Field label={t("f_attachments")} wide>
              {c.attachmentIds.length ? (
                <ul class="plain" data-testid="attachments">
                  {c.attachmentIds.map((a) => (
                    <li key={a}>
                      <code>{a}</code>
                    </li>
                  ))}
                </ul>
              ) : (
                t("f_none")
              )}
            </Field>
            {c.possibleDuplicateOf ? (
              <Field label={t("f_duplicate")}>
                <button class="link" onClick={() => onOpen(c.possibleDuplicateOf)}>
                  <ShortId id={c.possibleDuplicateOf} />
                </button>
              </Field>
            ) : null}
            {c.mergedIntoCaseId ? (
              <Field label={t("f_merged_into")}>
                <button class="link" onClick={() => onOpen(c.mergedIntoCaseId)}>
                  <ShortId id={c.mergedIntoCaseId} />
                </button>
              </Field>
            ) : null}
            {c.resolutionText ? (
              <Field label={t("f_resolution")} wide>
                {c.resolutionText} {c.resolvedLocally ? <span class="badge">{t("f_locally")}</span> : null}
              </Field>
            ) : null}
            {c.evaluation ? (
              <Field label={t("f_evaluation")} wide>
                {satisfactionText(c.evaluation.satisfaction)} {c.evaluation.comment ? `— ${c.evaluation.comment}` : ""} ({c.evaluation.byCallback ? `${t("f_by_callback")} ` : ""}{c.evaluation.bySub}, {fmtTime(c.evaluation.at, true)})
              </Field>
            ) : null}
          </dl>

          <h3>{t("clocks_title")}</h3>
          <table class="clocks" data-testid="clocks">
            <thead>
              <tr>
                <th>{t("clock_kind")}</th>
                <th>{t("clock_unit")}</th>
                <th>{t("clock_started")}</th>
                <th>{t("clock_due")}</th>
                <th>{t("clock_state")}</th>
              </tr>
            </thead>
            <tbody>
              {c.clocks.map((k, i) => {
                const st = clockState(k);
                const due = tsDate(k.dueAt)?.getTime() ?? 0;
                const running = !k.stoppedAt && !k.pausedAt;
                return (
                  <tr key={i} class={`clock-${st.cls}`} data-testid="sla-clock" data-state={st.cls}>
                    <td>
                      {clockText(k.kind)} {k.cycle > 1 ? <small>#{k.cycle}</small> : null}
                    </td>
                    <td>
                      <code>{k.unitCode || "—"}</code>
                    </td>
                    <td>{fmtTime(k.startedAt, true)}</td>
                    <td>
                      {fmtTime(k.dueAt, true)}
                      {k.extensions > 0 ? (
                        <small class="extended" data-testid="clock-extended" title={t("clock_original_due", { t: fmtTime(k.originalDueAt, true) })}>
                          {" "}
                          · {t("clock_extended", { n: String(k.extensions), t: fmtTime(k.originalDueAt, true) })}
                        </small>
                      ) : null}
                    </td>
                    <td>
                      <span class={`clock-state ${st.cls}`}>{t(st.key)}</span>
                      {running && due ? <small> · {due >= now ? t("clock_left", { t: fmtDuration(due - now) }) : t("clock_over", { t: fmtDuration(now - due) })}</small> : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>

          <div class="timeline-head">
            <h3>{t("timeline_title")}</h3>
            <span class={chain.ok ? "chain ok" : "chain broken"} data-testid="chain-check" data-ok={String(chain.ok)} title={chain.ok ? t("chain_intact_long") : t("chain_broken_long", { n: chain.brokenAt + 1 })}>
              {chain.ok ? "✓ " + t("chain_intact") : "✗ " + t("chain_broken")}
            </span>
          </div>
          {!chain.ok ? <p class="error">{t("chain_broken_long", { n: chain.brokenAt + 1 })}</p> : null}
          <ol class="timeline">
            {events.map((e, i) => (
              <li key={String(e.sequence)} data-testid="timeline-event" data-kind={e.kind} data-sequence={String(e.sequence)} class={chain.links[i] ? "" : "broken"}>
                <div class="ev-head">
                  <span class="ev-kind">{eventKindText(e.kind)}</span>
                  {e.fromStatus || e.toStatus ? (
                    <span class="ev-move">
                      {e.fromStatus ? statusText(e.fromStatus) : "∅"} → {e.toStatus ? statusText(e.toStatus) : "—"}
                    </span>
                  ) : null}
                  <time>{fmtTime(e.at)}</time>
                </div>
                <div class="ev-line">
                  {t("ev_actor")}: <code>{e.actorSub}</code> ({roleText(e.actorRole)})
                </div>
                {e.reason ? (
                  <div class="ev-line">
                    {t("ev_reason")}: {e.reason}
                  </div>
                ) : null}
                {e.notifyUnits.length || e.notifyMembers.length ? (
                  <div class="ev-line notify">
                    {t("ev_notified")}:{" "}
                    {[...e.notifyUnits, ...e.notifyMembers].map((n) => (
                      <code key={n}>{n}</code>
                    ))}
                  </div>
                ) : null}
                <Details json={e.detailsJson} />
                <div class="ev-hash" title={`prev ${e.prevHash}\nhash ${e.hash}`}>
                  #{String(e.sequence)} · {t("ev_hash")} {e.prevHash.slice(0, 8)} → {e.hash.slice(0, 8)} {chain.links[i] ? "✓" : "✗"}
                </div>
              </li>
            ))}
          </ol>
        </div>
      ) : null}
    </section>
  );
}

import { useEffect, useState } from "preact/hooks";
import type { Alert } from "../gen/gridcase/v1/stats_pb";
import { explain, stats } from "../api";
import { fmtTime, tierText } from "../format";
import { t } from "../i18n";
import { ErrorBox } from "./common";
import type { Session } from "./Console";

const PAGE = 50;

/**
 * 研判预警: the alerts of the caller's region, newest first (ListAlerts). A hotspot names the
 * region, the class and the cases counted; a repeat reporter the phone (whole only for the
 * holding center) and the cases. Each case opens in the map's detail panel. New alerts arrive
 * as `hotspot` / `repeat_reporter` events on the live stream, and the list is read again.
 */
export function Alerts({ session, onOpen }: { session: Session; onOpen: (caseId: string) => void }) {
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [next, setNext] = useState("");
  const [kind, setKind] = useState("");
  const [error, setError] = useState<{ text: string; detail: string } | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let gone = false;
    stats.listAlerts({ kind, page: { pageSize: PAGE } }).then(
      (r) => {
        if (gone) return;
        setAlerts(r.alerts);
        setNext(r.nextPageToken);
        setError(null);
      },
      (e) => {
        if (gone) return;
        const x = explain(e);
        setError({ text: x.text, detail: x.detail });
      },
    );
    return () => {
      gone = true;
    };
  }, [kind, tick]);

  useEffect(() => {
    const live = session.live;
    if (!live) return;
    return live.onEvent((e) => {
      if (e.kind === "hotspot" || e.kind === "repeat_reporter") setTick((x) => x + 1);
    });
  }, [session.live]);

  const more = async () => {
    try {
      const r = await stats.listAlerts({ kind, page: { pageSize: PAGE, pageToken: next } });
      setAlerts((a) => [...(a ?? []), ...r.alerts]);
      setNext(r.nextPageToken);
    } catch (e) {
      const x = explain(e);
      setError({ text: x.text, detail: x.detail });
    }
  };

  return (
    <section class="stats alerts" data-testid="alerts">
      <div class="stats-head">
        <h2>{t("alerts_title")}</h2>
        <label>
          {t("alerts_kind")}
          <select data-testid="alerts-kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)}>
            <option value="">{t("alerts_all")}</option>
            <option value="hotspot">{t("alerts_hotspot")}</option>
            <option value="repeat_reporter">{t("alerts_repeat")}</option>
          </select>
        </label>
        <small>{t("alerts_hint")}</small>
      </div>
      {error ? <ErrorBox text={error.text} detail={error.detail} /> : null}
      {alerts === null ? <p>{t("stats_loading")}</p> : null}
      {alerts !== null && alerts.length === 0 ? <p data-testid="alerts-empty">{t("alerts_none")}</p> : null}
      <ul class="plain alert-list">
        {(alerts ?? []).map((a) => (
          <li key={a.id} class={`alert-item alert-${a.kind}`} data-testid="alert" data-kind={a.kind} data-region={a.regionCode}>
            <div class="alert-line">
              <span class={`badge alert-kind alert-kind-${a.kind}`}>{a.kind === "hotspot" ? t("alerts_hotspot") : t("alerts_repeat")}</span>
              <strong>
                {a.regionName || a.regionCode} <small>({tierText(a.tier)} {a.regionCode})</small>
              </strong>
              {a.kind === "hotspot" ? <span>{a.className || a.classCode}</span> : <span data-testid="alert-phone">{a.reporterPhone}</span>}
              <span class="num" data-testid="alert-count">
                {t("alerts_count", { n: String(a.count) })}
              </span>
              <span class="dim">
                {fmtTime(a.raisedAt)} · {t("alerts_window")} {fmtTime(a.windowFrom, true)} – {fmtTime(a.windowUntil, true)}
              </span>
            </div>
            <div class="alert-cases">
              {a.caseIds.map((id, i) => (
                <button key={id} class="link" data-testid="alert-case" onClick={() => onOpen(id)}>
                  {a.caseCodes[i] || id}
                </button>
              ))}
            </div>
          </li>
        ))}
      </ul>
      {next ? (
        <button class="secondary" data-testid="alerts-more" onClick={() => void more()}>
          {t("alerts_more")}
        </button>
      ) : null}
    </section>
  );
}

import { useEffect, useRef, useState } from "preact/hooks";
import { create } from "@bufbuild/protobuf";
import { Role, Tier, type Region } from "../gen/gridcase/v1/common_pb";
import { UnitSchema, type Category, type Unit, type WhoAmIResponse } from "../gen/gridcase/v1/directory_pb";
import { cases, directory, explain, getToken, loadConfig, tokenExpiry } from "../api";
import { CaseMap, type Shape } from "../map";
import { Live, findHead, type LiveState } from "../live";
import { store } from "../store";
import { getLang, setLang, t } from "../i18n";
import { SLA_COLORS, SLA_ORDER, fmtTime, roleText, slaName, slaText, tierText } from "../format";
import { Queue } from "./Queue";
import { Detail } from "./Detail";
import { Stats } from "./Stats";
import { Alerts } from "./Alerts";
import { ErrorBox, SlaBadge, StatusBadge } from "./common";

export interface Session {
  who: WhoAmIResponse;
  role: Role;
  /** The region pins, queue and live events are scoped to; empty for the caller's whole scope. */
  scopeRegion: string;
  units: Unit[];
  categories: Category[];
  live: Live | null;
  map: CaseMap | null;
}

/**
 * The units a dispatcher may pick: ListUnits' own, after the governance centers of the home
 * region and of its children (every region has a `{code}.center`, but ListUnits lists only the
 * units the directory names, not these implicit centers).
 */
async function allUnits(home: Region): Promise<Unit[]> {
  const out: Unit[] = [];
  let token = "";
  do {
    const r = await directory.listUnits({ regionCode: home.code, page: { pageSize: 500, pageToken: token } });
    out.push(...r.units);
    token = r.nextPageToken;
  } while (token);
  const children = await directory.listRegions({ parentCode: home.code, page: { pageSize: 500 } }).then(
    (r) => r.regions,
    () => [] as Region[],
  );
  const centers = [home, ...children]
    .filter((r) => !out.some((u) => u.code === `${r.code}.center`))
    .map((r) => create(UnitSchema, { code: `${r.code}.center`, name: `${r.name}综治中心`, kind: "center", regionCode: r.code }));
  return [...centers, ...out];
}

export function Console({ who, onSignOut }: { who: WhoAmIResponse; onSignOut: () => void }) {
  const role = who.role;
  const home = who.home!;
  const peopleWithRegion = role === Role.DISPATCHER || role === Role.SUPERVISOR;
  const scopeRegion = peopleWithRegion ? home.code : "";
  const [tab, setTab] = useState<"map" | "stats" | "alerts">("map");
  const [liveState, setLiveState] = useState<LiveState>("connecting");
  const [selected, setSelected] = useState<string | null>(null);
  const [region, setRegion] = useState<Shape | null>(null);
  const [cluster, setCluster] = useState<string[] | null>(null);
  const [regionFilter, setRegionFilter] = useState("");
  const [units, setUnits] = useState<Unit[]>([]);
  const [categories, setCategories] = useState<Category[]>([]);
  const [loadError, setLoadError] = useState<{ text: string; detail: string } | null>(null);
  const [truncated, setTruncated] = useState(false);
  const [, setPinTick] = useState(0);
  const mapEl = useRef<HTMLDivElement>(null);
  const a11yEl = useRef<HTMLDivElement>(null);
  const mapRef = useRef<CaseMap | null>(null);
  const liveRef = useRef<Live | null>(null);
  const [ready, setReady] = useState(false);
  const regionOpen = useRef(false);
  regionOpen.current = region !== null;

  useEffect(() => {
    let gone = false;
    const root = home.tier === Tier.GRID && home.parentCode ? home.parentCode : home.code;
    (async () => {
      // Where to follow events from is read before the pins (see findHead); both run while the
      // region's outline and the config load.
      const pinsP = (async () => {
        // Admins read the directory, not cases (ListCasePins and ListCases are not theirs).
        if (role === Role.ADMIN) return { head: 0n, pins: { pins: [], truncated: false }, error: null };
        const head = await findHead(scopeRegion).catch(() => 0n);
        try {
          const pins = await cases.listCasePins({ regionCode: scopeRegion });
          performance.mark("console:pins-fetched");
          return { head, pins, error: null };
        } catch (e) {
          return { head, pins: null, error: e };
        }
      })();
      const [cfg, reg] = await Promise.all([loadConfig(), directory.getRegion({ code: root, includeGeometry: true })]);
      if (gone) return;
      performance.mark("console:region-fetched");
      const map = new CaseMap(mapEl.current!, a11yEl.current!, {
        home,
        root,
        rootTier: reg.region?.tier ?? home.tier,
        homeGeometry: reg.geometryGeojson,
        tileUrl: cfg.tile_url,
        onPin: (id) => setSelected(id),
        onRegion: (s) => {
          setRegion(s);
          setCluster(null);
        },
        onCluster: (ids) => {
          setCluster(ids);
          setRegion(null);
        },
      });
      mapRef.current = map;
      void map.ready.then(() => !gone && setReady(true));
      const { head, pins, error } = await pinsP;
      if (gone) return;
      if (pins) {
        store.loadPins(pins.pins, pins.truncated);
        performance.mark("console:pins-loaded");
        setTruncated(pins.truncated);
      } else {
        store.loadPins([], false);
        const x = explain(error);
        setLoadError({ text: x.text, detail: x.detail });
      }
      if (role === Role.ADMIN) return setLiveState("off");
      const live = new Live(scopeRegion);
      liveRef.current = live;
      live.onState(setLiveState);
      live.start(head);
    })().catch((e) => {
      const x = explain(e);
      if (!gone) setLoadError({ text: x.text, detail: x.detail });
    });
    if (peopleWithRegion) allUnits(home).then((u) => !gone && setUnits(u), () => {});
    directory.listCategories({}).then((r) => !gone && setCategories(r.categories), () => {});
    // Region figures in the info card follow the pins (while a card is open, once a second).
    let tickTimer: number | null = null;
    const unsub = store.onPins(() => {
      if (!regionOpen.current || tickTimer !== null) return;
      tickTimer = window.setTimeout(() => {
        tickTimer = null;
        setPinTick((x) => x + 1);
      }, 1000);
    });
    return () => {
      gone = true;
      unsub();
      if (tickTimer !== null) clearTimeout(tickTimer);
      liveRef.current?.stop();
      mapRef.current?.destroy();
      mapRef.current = null;
    };
  }, []);

  useEffect(() => {
    mapRef.current?.relabel();
  }, [getLang()]);

  useEffect(() => {
    if (tab === "map") mapRef.current?.resize();
  }, [tab]);

  const session: Session = { who, role, scopeRegion, units, categories, live: liveRef.current, map: mapRef.current };
  const exp = tokenExpiry(getToken());
  const canStats = peopleWithRegion;
  const figures = region && mapRef.current ? mapRef.current.figuresOf(region.code, region.tier) : null;

  return (
    <div class="console" data-testid="console" data-role={roleText(role)}>
      <header class="top">
        <div class="brand">
          <h1>{t("app_title")}</h1>
          <span class="sub">{t("app_subtitle")}</span>
        </div>
        <nav class="tabs" role="tablist">
          <button role="tab" aria-selected={tab === "map"} class={tab === "map" ? "on" : ""} data-testid="tab-map" onClick={() => setTab("map")}>
            {t("tab_map")}
          </button>
          {canStats ? (
            <button role="tab" aria-selected={tab === "stats"} class={tab === "stats" ? "on" : ""} data-testid="tab-stats" onClick={() => setTab("stats")}>
              {t("tab_stats")}
            </button>
          ) : null}
          {canStats ? (
            <button role="tab" aria-selected={tab === "alerts"} class={tab === "alerts" ? "on" : ""} data-testid="tab-alerts" onClick={() => setTab("alerts")}>
              {t("tab_alerts")}
            </button>
          ) : null}
        </nav>
        <div class="who" data-testid="whoami">
          <span class="name">
            {who.member?.name || who.sub} <small>{who.sub}</small>
          </span>
          <span class="chip" data-testid="whoami-role">
            {t("role")}: {roleText(role)}
          </span>
          <span class="chip" title={who.scope} data-testid="whoami-scope">
            {t("home")}: {home.name} ({home.code})
          </span>
          <span class="chip dim scope" title={who.scope} data-testid="whoami-scope-text">
            {t("scope")}: {scopeText(who)}
          </span>
          {exp ? (
            <span class="chip dim">
              {t("token_expires")} {fmtTime(exp, true)}
            </span>
          ) : null}
          <span class={`live live-${liveState}`} data-testid="live-state" data-state={liveState}>
            <i aria-hidden="true" />
            {t(liveState === "live" ? "live_on" : liveState === "connecting" ? "live_connecting" : liveState === "retry" ? "live_retry" : "live_off")}
          </span>
          <button class="link" data-testid="lang-switch" onClick={() => setLang(getLang() === "zh" ? "en" : "zh")}>
            {t("lang_switch")}
          </button>
          <button class="link" data-testid="sign-out" onClick={onSignOut}>
            {t("sign_out")}
          </button>
        </div>
      </header>
      {loadError ? <ErrorBox text={loadError.text} detail={loadError.detail} /> : null}
      <div class="body">
        <section class="mapview" hidden={tab !== "map"}>
          <div class="map-wrap">
            <div class="map" ref={mapEl} data-testid="map" role="application" aria-label={t("tab_map")} />
            {!ready ? <div class="map-loading">{t("map_loading")}</div> : null}
            {truncated ? <div class="map-warn">{t("map_truncated")}</div> : null}
            <Legend />
            {region ? (
              <div class="region-card" data-testid="region-info" data-code={region.code}>
                <button class="close" aria-label={t("map_close")} onClick={() => { setRegion(null); mapRef.current?.selectRegion(null); }}>
                  ×
                </button>
                <h3>{region.name}</h3>
                <dl>
                  <div><dt>{t("map_code")}</dt><dd>{region.code}</dd></div>
                  <div><dt>{t("map_tier")}</dt><dd>{tierText(tierOfName(region.tier))}</dd></div>
                  {region.parent ? <div><dt>{t("map_parent")}</dt><dd>{region.parent}</dd></div> : null}
                  <div><dt>{t("map_center")}</dt><dd>{region.code}.center</dd></div>
                  <div><dt>{t("map_open_cases")}</dt><dd class="num">{figures?.open ?? 0}</dd></div>
                  <div><dt>{t("map_late_cases")}</dt><dd class="num late">{figures?.late ?? 0}</dd></div>
                  <div><dt>{t("map_warned_cases")}</dt><dd class="num warned">{figures?.warned ?? 0}</dd></div>
                </dl>
                <button class="secondary" data-testid="region-filter" onClick={() => setRegionFilter(region.code)}>
                  {t("map_filter_here")}
                </button>
              </div>
            ) : null}
            {cluster ? (
              <div class="region-card cluster-card" data-testid="cluster-list">
                <button class="close" aria-label={t("map_close")} onClick={() => setCluster(null)}>
                  ×
                </button>
                <h3>
                  {cluster.length} {t("map_cluster")}
                </h3>
                <ul class="plain">
                  {cluster.map((id) => {
                    const p = store.pins.get(id);
                    return p ? (
                      <li key={id}>
                        <button class="link" onClick={() => setSelected(id)}>
                          {p.code}
                        </button>{" "}
                        <StatusBadge s={p.status} /> <SlaBadge s={p.sla} />
                      </li>
                    ) : null;
                  })}
                </ul>
              </div>
            ) : null}
          </div>
          <aside class="side">
            <Queue
              session={session}
              regionFilter={regionFilter}
              onRegionFilter={setRegionFilter}
              selected={selected}
              onOpen={(id) => setSelected(id)}
            />
            {selected ? <Detail key={selected} session={session} caseId={selected} onClose={() => { setSelected(null); mapRef.current?.selectCase(null); }} onOpen={setSelected} /> : null}
          </aside>
        </section>
        {tab === "stats" && canStats ? <Stats session={session} /> : null}
        {tab === "alerts" && canStats ? (
          <Alerts
            session={session}
            onOpen={(id) => {
              setTab("map");
              setSelected(id);
            }}
          />
        ) : null}
      </div>
      <div class="sr-only" ref={a11yEl} data-testid="map-a11y" />
    </div>
  );
}

function tierOfName(n: string): Tier {
  return ({ city: Tier.CITY, district: Tier.DISTRICT, township: Tier.TOWNSHIP, community: Tier.COMMUNITY, grid: Tier.GRID } as Record<string, Tier>)[n] ?? Tier.UNSPECIFIED;
}

function Legend() {
  return (
    <div class="legend" aria-label={t("legend")}>
      {SLA_ORDER.map((s) => (
        <span key={s} class="item">
          <i class={`shape shape-${slaName(s)}`} style={{ "--c": SLA_COLORS[s] }} aria-hidden="true" />
          {slaText(s)}
        </span>
      ))}
    </div>
  );
}

/** The caller's scope in the page's language; the same scopes `WhoAmI.scope` names in English. */
function scopeText(who: WhoAmIResponse): string {
  const m = who.member;
  switch (who.role) {
    case Role.DISPATCHER:
    case Role.SUPERVISOR:
      return m?.regionCode ? t("scope_region", { code: m.regionCode }) : who.scope;
    case Role.UNIT_STAFF:
      return m?.unitCode ? t("scope_unit", { unit: m.unitCode }) : who.scope;
    case Role.GRID_MEMBER:
      return m ? t("scope_grids", { grids: m.gridCodes.join(", ") }) : who.scope;
    case Role.GATEWAY:
      return t("scope_gateway");
    case Role.ADMIN:
      return t("scope_admin");
    default:
      return who.scope;
  }
}

// Benchmark (not a pass/fail test): 10,000 open cases in district 371102, a dispatcher's
// console, the time to the first complete render of map + pins, and the frame gaps while
// panning and zooming. Run from the repository: `node console/e2e/perf.mjs`.
//
// Environment: GRIDCASE_BIN (the binary), PERF_CASES (10000), PERF_CONCURRENCY (24),
// PERF_VIEWPORT (1920x1080), THROTTLE (CPU slow-down factor, e.g. 4), PERF_LIVE=N (N case
// changes a second through the API while panning and zooming, as a second measurement).
import os from "node:os";
import { artifact, launchBrowser, startServer } from "./harness.mjs";

const N = Number(process.env.PERF_CASES || 10_000);
const CONC = Number(process.env.PERF_CONCURRENCY || 24);
const [VW, VH] = (process.env.PERF_VIEWPORT || "1920x1080").split("x").map(Number);
const THROTTLE = Number(process.env.THROTTLE || 1);
const LIVE = Number(process.env.PERF_LIVE || 0);
const CATEGORIES = ["dispute.neighbor", "city.clutter", "dispute.family", "dispute.property_mgmt"];

let seed = 20261130;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);

const srv = await startServer();
const h = srv.helpers;
try {
  const now = Math.floor(Date.now() / 1000);
  const dispToken = srv.token("disp-371102", "dispatcher");
  const disp = srv.api(dispToken);
  const grids = await h.gridPolygons(disp, "371102");
  // Grid members' tokens, signed with the server's key (minting 1,378 through the CLI is slow).
  const apis = new Map();
  const apiOf = (code) => {
    let a = apis.get(code);
    if (!a) apis.set(code, (a = srv.api(srv.craft({ sub: `gm-${code}`, role: "grid_member", exp: now + 4 * 3600 }))));
    return a;
  };

  console.log(`seeding ${N} cases over ${grids.length} grids of 371102, ${CONC} at a time …`);
  const t0 = Date.now();
  let next = 0, done = 0, failed = 0;
  const ids = [];
  const worker = async () => {
    while (next < N) {
      const i = next++;
      const g = grids[Math.floor(rnd() * grids.length)];
      const p = h.pointIn(g, rnd);
      try {
        const c = await h.submit(apiOf(g.code), p, CATEGORIES[i % CATEGORIES.length], `perf ${i}`);
        ids.push(c.id);
        done++;
      } catch (e) {
        failed++;
        if (failed < 5) console.log("submit failed:", e.message);
      }
      if ((done + failed) % 2000 === 0) console.log(`  ${done + failed} (${Math.round(((done + failed) / (Date.now() - t0)) * 1000)}/s)`);
    }
  };
  await Promise.all(Array.from({ length: CONC }, worker));
  const seedS = (Date.now() - t0) / 1000;
  console.log(`seeded ${done} cases (${failed} failed) in ${seedS.toFixed(1)} s: ${Math.round(done / seedS)}/s`);
  const pinsT = Date.now();
  const pins = await disp.cases.listCasePins({ regionCode: "371102" });
  console.log(`ListCasePins from Node: ${pins.pins.length} pins in ${Date.now() - pinsT} ms`);

  const browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: VW, height: VH }, deviceScaleFactor: 1, locale: "zh-CN", timezoneId: "Asia/Shanghai" });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  if (THROTTLE > 1) {
    const cdp = await ctx.newCDPSession(page);
    await cdp.send("Emulation.setCPUThrottlingRate", { rate: THROTTLE });
  }
  // Signed in already (token in the tab's session), so navigation start is the page load.
  await page.addInitScript((t) => sessionStorage.setItem("gridcase.token", t), dispToken);
  const load1 = os.loadavg()[0].toFixed(2);
  await page.goto(srv.url + "/");
  await page.waitForFunction(() => performance.getEntriesByName("console:map-ready").length > 0, null, { timeout: 120_000 });
  const marks = await page.evaluate(() =>
    Object.fromEntries(
      ["console:signed-in", "console:region-fetched", "console:shapes-loaded", "console:pins-fetched", "console:pins-loaded", "console:map-ready"].map((n) => [
        n.replace("console:", ""),
        Math.round(performance.getEntriesByName(n)[0]?.startTime ?? -1),
      ]),
    ),
  );
  const counts = await page.evaluate(() => ({
    pins: document.querySelectorAll('[data-testid="case-pin"]').length,
    regions: document.querySelectorAll('[data-testid="region-shape"]').length,
    rows: document.querySelectorAll('[data-testid="case-row"]').length,
  }));
  await page.waitForTimeout(500);
  await page.screenshot({ path: artifact("perf-10k-first-render.png") });

  const measure = async (label, during) => {
    await page.evaluate(() => {
      const w = window;
      w.__frames = [];
      w.__lt = [];
      w.__loaf = [];
      let last = performance.now();
      const tick = (t) => {
        w.__frames.push(t - last);
        last = t;
        w.__raf = requestAnimationFrame(tick);
      };
      w.__raf = requestAnimationFrame(tick);
      try {
        w.__o1 = new PerformanceObserver((l) => l.getEntries().forEach((e) => w.__lt.push(e.duration)));
        w.__o1.observe({ type: "longtask" });
        w.__o2 = new PerformanceObserver((l) =>
          l.getEntries().forEach((e) =>
            w.__loaf.push({
              d: e.duration,
              scripts: e.scripts.map((x) => `${x.invoker}${x.sourceFunctionName ? " " + x.sourceFunctionName : ""} ${Math.round(x.duration)}ms`),
            }),
          ),
        );
        w.__o2.observe({ type: "long-animation-frame" });
      } catch {}
    });
    await page.evaluate(() => Object.assign(window.__gridcaseDraws, { draws: 0, totalMs: 0, maxMs: 0 }));
    const t = Date.now();
    const bg = during ? during() : null;
    const cx = Math.round(VW * 0.3), cy = Math.round(VH * 0.5);
    for (let i = 0; i < 3; i++) {
      await page.mouse.move(cx, cy);
      await page.mouse.down();
      await page.mouse.move(cx + (i % 2 ? -300 : 300), cy + (i % 2 ? 150 : -150), { steps: 30 });
      await page.mouse.up();
      await page.waitForTimeout(300);
    }
    for (const dy of [-300, -300, -300, -300, 300, 300, -600, 600, 600]) {
      await page.mouse.move(cx - 100 + rnd() * 200, cy - 50 + rnd() * 100);
      await page.mouse.wheel(0, dy);
      await page.waitForTimeout(350);
    }
    for (let i = 0; i < 3; i++) {
      await page.mouse.move(cx, cy);
      await page.mouse.down();
      await page.mouse.move(cx - 250, cy + 200, { steps: 30 });
      await page.mouse.up();
      await page.waitForTimeout(300);
    }
    if (bg) await bg.stop();
    const r = await page.evaluate(() => {
      const w = window;
      cancelAnimationFrame(w.__raf);
      w.__o1?.disconnect();
      w.__o2?.disconnect();
      const f = w.__frames.slice(1).sort((a, b) => a - b);
      const d = w.__gridcaseDraws;
      return {
        draws: d.draws,
        drawMean: d.draws ? d.totalMs / d.draws : 0,
        drawMax: d.maxMs,
        frames: f.length,
        p50: f[Math.floor(f.length * 0.5)],
        p95: f[Math.floor(f.length * 0.95)],
        max: f[f.length - 1],
        over50: f.filter((x) => x > 50).length,
        over100: f.filter((x) => x > 100).length,
        longtasks: w.__lt.length,
        longtaskMax: Math.max(0, ...w.__lt),
        loafMax: Math.max(0, ...w.__loaf.map((x) => x.d)),
        loafLong: w.__loaf.filter((x) => x.d > 100).map((x) => `${Math.round(x.d)}ms [${x.scripts.join(", ")}]`),
      };
    });
    const round = (x) => Math.round(x * 10) / 10;
    console.log(
      `${label}: max frame ${round(r.max)} ms, frames over 100 ms ${r.over100}, p95 ${round(r.p95)} ms, p50 ${round(r.p50)} ms, ` +
        `frames ${r.frames}, over 50 ms ${r.over50}, longtasks ${r.longtasks} (max ${round(r.longtaskMax)} ms), LoAF max ${round(r.loafMax)} ms, ${((Date.now() - t) / 1000).toFixed(1)} s`,
    );
    console.log(`  overlay redraws ${r.draws}: mean ${round(r.drawMean)} ms, max ${round(r.drawMax)} ms (script time of the draw calls)`);
    if (r.loafLong.length) console.log(`  long animation frames: ${r.loafLong.join("; ")}`);
    return r;
  };

  console.log(`viewport ${VW}x${VH}, CPU throttle ${THROTTLE}x, load average at page load ${load1}`);
  console.log(`DOM: ${counts.pins} case-pin, ${counts.regions} region-shape, ${counts.rows} case-row`);
  console.log(`first render (map + pins, double rAF after the first full overlay draw): ${marks["map-ready"]} ms`);
  console.log(
    `  marks: signed-in ${marks["signed-in"]} ms, region ${marks["region-fetched"]} ms, shapes ${marks["shapes-loaded"]} ms, ` +
      `pins fetched ${marks["pins-fetched"]} ms, pins loaded ${marks["pins-loaded"]} ms`,
  );
  await measure("pan/zoom");
  await page.screenshot({ path: artifact("perf-10k-after-pan-zoom.png") });

  if (LIVE > 0) {
    // Cases change through the API while the dispatcher pans and zooms: each is a live event,
    // a GetCase, a pin patch and a (throttled) re-cluster on the page.
    const during = () => {
      let stop = false, changed = 0;
      const loop = (async () => {
        let k = 0;
        while (!stop && k < ids.length) {
          const tick = Date.now();
          await Promise.all(
            Array.from({ length: LIVE }, async () => {
              const id = ids[k++ % ids.length];
              try {
                const c = await disp.cases.getCase({ caseId: id });
                await disp.cases.escalateCase({ caseId: id, expectedVersion: c.case.version, reason: "perf: live change" });
                changed++;
              } catch {}
            }),
          );
          await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - tick))));
        }
      })();
      return {
        stop: async () => {
          stop = true;
          await loop;
          console.log(`  (${changed} cases changed through the API during the interaction)`);
        },
      };
    };
    await measure(`pan/zoom with ${LIVE} case changes/s`, during);
  }
  if (errors.length) console.log("page errors:", errors.slice(0, 5));
  await browser.close();
} finally {
  await srv.stop();
}

// End to end: the real gridcase binary serving its embedded console, driven by Debian's
// Chromium through playwright-core, with cases seeded and moved through the real API from Node.
// Run from the repository: `node --test console/e2e/` (or console/e2e/run.sh).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { artifact, launchBrowser, newPage, signIn, spread, startServer, waitMapReady } from "./harness.mjs";

let srv;
let browser;
let h;
let grids = [];
/** Cases seeded before the tests, so the map has pins of several SLA states to show. */
let seeded = [];
let closed = 0;
const started = Date.now();

before(async () => {
  srv = await startServer();
  h = srv.helpers;
  browser = await launchBrowser();
  const admin = srv.api(srv.token("admin", "admin"));
  // A one-minute dispatch clock for one category, so some seeded cases go warned, breached and
  // escalated while the tests run, and the screenshots show every colour.
  await admin.directory.setSlaPolicy({ clock: h.ClockKind.DISPATCH, categoryCode: "city.clutter", duration: "1m" });
  const disp = srv.api(srv.token("disp-371102", "dispatcher"));
  grids = await h.gridPoints(disp, "371102");
  const cats = ["city.clutter", "dispute.neighbor", "city.clutter", "dispute.family"];
  const picks = spread(grids, 60);
  seeded = await Promise.all(
    picks.map((g, i) => h.submit(srv.api(srv.token(`gm-${g.code}`, "grid_member")), g, cats[i % cats.length], `e2e 预置案件 ${i}`)),
  );
  // Eight family disputes through the whole loop (dispatch, accept, resolve, feedback,
  // evaluation, close; one reporter dissatisfied, which reopens it), so the statistics have
  // resolutions and evaluations to show.
  const staff = srv.api(srv.token("staff-371102.justice", "unit_staff"));
  const looped = seeded.filter((c) => c.categoryCode === "dispute.family").slice(0, 8);
  await Promise.all(
    looped.map(async (c, i) => {
      const id = c.id;
      let v = c.version;
      v = (await disp.cases.dispatchCase({ caseId: id, expectedVersion: v, unitCode: "371102.justice", reason: "e2e" })).case.version;
      v = (await staff.cases.acceptCase({ caseId: id, expectedVersion: v })).case.version;
      v = (await staff.cases.resolveCase({ caseId: id, expectedVersion: v, result: "已调解，双方签订协议" })).case.version;
      v = (await staff.cases.recordFeedback({ caseId: id, expectedVersion: v, note: "已电话告知报告人" })).case.version;
      const reporter = srv.api(srv.token(c.reporterSub, "grid_member"));
      const happy = i !== 0;
      v = (
        await reporter.cases.evaluateCase({
          caseId: id,
          expectedVersion: v,
          satisfaction: happy ? h.Satisfaction.SATISFIED : h.Satisfaction.DISSATISFIED,
          comment: happy ? "满意" : "没有解决",
        })
      ).case.version;
      if (happy) {
        await disp.cases.closeCase({ caseId: id, expectedVersion: v, reason: "e2e" });
        closed++;
      }
    }),
  );
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

test("the server serves the console with its CSP, and the page loads nothing from elsewhere", async () => {
  const r = await fetch(srv.url + "/");
  assert.equal(r.status, 200);
  const html = await r.text();
  assert.match(html, /src="\/console\/app\.js"/);
  assert.match(html, /href="\/console\/app\.css"/);
  assert.doesNotMatch(html, /<script>[^<]/, "no inline script");
  const csp = r.headers.get("content-security-policy") ?? "";
  assert.match(csp, /script-src 'self'/);
  for (const f of ["app.js", "app.css"]) {
    const a = await fetch(`${srv.url}/console/${f}`);
    assert.equal(a.status, 200, f);
  }
  const cfg = await (await fetch(srv.url + "/console/config.json")).json();
  assert.equal(cfg.tile_url, null);
});

test("a district dispatcher sees the grids, a new case live, dispatches it, and sees it accepted live", async () => {
  const token = srv.token("disp-371102", "dispatcher");
  const { page, problems, ctx } = await newPage(browser);
  const offOrigin = [];
  page.on("request", (q) => {
    if (!q.url().startsWith(srv.url) && !q.url().startsWith("data:")) offOrigin.push(q.url());
  });
  await signIn(page, srv.url, token);
  await page.getByTestId("whoami").waitFor();
  assert.match(await page.getByTestId("whoami-role").innerText(), /调度员/);
  assert.match(await page.getByTestId("whoami-scope").innerText(), /371102/);
  assert.match(await page.getByTestId("whoami-scope-text").innerText(), /371102 及以下辖区的案件/);
  await waitMapReady(page);

  // The district's grids, drawn from the directory's own geometry.
  const codes = await page.$$eval('[data-testid="region-shape"]', (els) => els.map((e) => e.getAttribute("data-code")));
  const gridCodes = codes.filter((c) => /^371102\d{9}$/.test(c));
  assert.ok(gridCodes.length >= 1000, `grids drawn: ${gridCodes.length}`);
  assert.ok(codes.includes("371102"), "the district's own outline");
  // Hover shows a region's name and code; a click shows its card with the center and figures.
  const box = await page.getByTestId("map").boundingBox();
  let hit = null;
  for (const [fx, fy] of [[0.5, 0.5], [0.45, 0.55], [0.55, 0.45], [0.4, 0.4], [0.6, 0.6], [0.5, 0.35], [0.35, 0.5]]) {
    const x = box.x + box.width * fx, y = box.y + box.height * fy;
    await page.mouse.move(x, y);
    const tip = await page.locator(".map-tip").innerText().catch(() => "");
    if (/371102\d{9}/.test(tip) && (await page.locator(".map-tip").isVisible())) {
      hit = { x, y, tip };
      break;
    }
  }
  assert.ok(hit, "hovering the district shows a grid");
  await page.mouse.click(hit.x, hit.y);
  const card = page.getByTestId("region-info");
  await card.waitFor();
  const code = await card.getAttribute("data-code");
  assert.match(code, /^371102\d{9}$/);
  assert.match(await card.innerText(), new RegExp(`${code}\\.center`));
  await page.locator('[data-testid="region-info"] .close').click();
  // Every seeded case is a pin.
  const pinCount = await page.locator('[data-testid="case-pin"]').count();
  assert.equal(pinCount, seeded.length - closed, "every open case is a pin");
  await page.waitForSelector('[data-testid="live-state"][data-state="live"]');

  // A grid member reports; the case appears without reload, as a row and as a pin.
  const g = grids[Math.floor(grids.length / 2)];
  const gm = srv.api(srv.token(`gm-${g.code}`, "grid_member"));
  const t0 = Date.now();
  const c = await h.submit(gm, g, "dispute.neighbor", "e2e：楼上深夜噪音扰民，协商未果");
  const row = page.locator(`[data-testid="case-row"][data-case-id="${c.id}"]`);
  const pin = page.locator(`[data-testid="case-pin"][data-case-id="${c.id}"]`);
  await row.waitFor({ timeout: 15_000 });
  await pin.waitFor({ state: "attached", timeout: 15_000 });
  const appearedMs = Date.now() - t0;
  assert.equal(await row.getAttribute("data-status"), "registered");
  assert.equal(await pin.getAttribute("data-status"), "registered");
  assert.equal(await row.getAttribute("data-sla-state"), "on_time");
  assert.equal(await pin.getAttribute("data-sla-state"), "on_time");
  console.log(`# new case appeared on the page ${appearedMs} ms after SubmitReport returned`);
  await page.screenshot({ path: artifact("01-dispatcher-map.png") });

  // Open it; dispatch it from the page to a unit chosen in the picker.
  await row.click();
  const detail = page.getByTestId("case-detail");
  await detail.waitFor();
  await page.waitForSelector(`[data-testid="case-detail"][data-case-id="${c.id}"][data-status="registered"]`);
  assert.ok((await page.getByTestId("timeline-event").count()) >= 2, "submitted and registered events");
  assert.equal(await page.getByTestId("chain-check").getAttribute("data-ok"), "true");
  await page.getByTestId("action-dispatch").click();
  const picker = page.getByTestId("unit-picker");
  await picker.waitFor();
  await picker.selectOption("371102.police");
  await page.getByTestId("action-text").fill("e2e：噪音扰民涉及治安，交公安处理");
  await page.waitForTimeout(1200); // the map's flight to the case
  await page.screenshot({ path: artifact("02-case-detail-dispatch.png") });
  await page.getByTestId("action-confirm").click();
  await page.waitForSelector('[data-testid="action-result"][data-kind="ok"]', { timeout: 15_000 });
  await page.waitForSelector(`[data-testid="case-row"][data-case-id="${c.id}"][data-status="dispatched"]`, { timeout: 15_000 });
  const after = await srv.api(token).cases.getCase({ caseId: c.id, includeEvents: true });
  assert.equal(after.case.unitCode, "371102.police");
  assert.equal(after.case.status, h.CaseStatus.DISPATCHED);
  const dispatched = after.events.find((e) => e.kind === "dispatched");
  assert.equal(dispatched.actorSub, "disp-371102");
  assert.ok(dispatched.notifyUnits.includes("371102.police"));

  // The unit's staff accepts through the API; the page follows without reload.
  const staff = srv.api(srv.token("staff-371102.police", "unit_staff"));
  const cur = await staff.cases.getCase({ caseId: c.id });
  await staff.cases.acceptCase({ caseId: c.id, expectedVersion: cur.case.version });
  await page.waitForSelector(`[data-testid="case-row"][data-case-id="${c.id}"][data-status="accepted"]`, { timeout: 15_000 });
  await page.waitForSelector(`[data-testid="case-pin"][data-case-id="${c.id}"][data-status="accepted"]`, { state: "attached", timeout: 15_000 });
  await page.waitForSelector(`[data-testid="case-detail"][data-status="accepted"]`, { timeout: 15_000 });
  await page.waitForSelector('[data-testid="timeline-event"][data-kind="accepted"]', { timeout: 15_000 });
  assert.equal(await page.getByTestId("chain-check").getAttribute("data-ok"), "true");
  await page.screenshot({ path: artifact("03-case-detail-accepted.png") });

  // A dispatcher's action (whistle) shows in the timeline with who was notified.
  assert.ok(await page.getByTestId("action-whistle").isVisible(), "whistle offered on an accepted case");
  assert.equal(await page.getByTestId("action-dispatch").count(), 0, "no dispatch on an accepted case");

  assert.deepEqual(offOrigin, [], "no request leaves the origin");
  assert.deepEqual(problems, [], "no console errors");
  await ctx.close();
});

test("a stale version is refused in plain words and the case is reloaded", async () => {
  const token = srv.token("disp-371102", "dispatcher");
  const { page, ctx } = await newPage(browser);
  // No live stream for this page, so it keeps the old version while the API changes the case.
  await page.route("**/gridcase.v1.GatewayService/WatchEvents", (r) => r.abort());
  await signIn(page, srv.url, token);
  await waitMapReady(page);
  const g = grids[7];
  const c = await h.submit(srv.api(srv.token(`gm-${g.code}`, "grid_member")), g, "dispute.neighbor", "e2e：版本冲突");
  // Filter the queue to registered cases, so the new case is found on a fresh page load.
  await page.getByTestId("filter-status-registered").check();
  await page.getByTestId("filter-apply").click();
  const row = page.locator(`[data-testid="case-row"][data-case-id="${c.id}"]`);
  await row.waitFor({ timeout: 15_000 });
  await row.click();
  await page.waitForSelector(`[data-testid="case-detail"][data-case-id="${c.id}"][data-status="registered"]`);
  await page.getByTestId("action-dispatch").click();
  // Someone else dispatches it meanwhile.
  const other = srv.api(token);
  await other.cases.dispatchCase({ caseId: c.id, expectedVersion: c.version, unitCode: "371102.justice", reason: "another dispatcher" });
  await page.getByTestId("unit-picker").selectOption("371102.police");
  await page.getByTestId("action-confirm").click();
  const result = page.locator('[data-testid="action-result"][data-kind="warn"]');
  await result.waitFor({ timeout: 15_000 });
  assert.match(await result.innerText(), /刚刚被别人改动过/);
  await page.waitForSelector(`[data-testid="case-detail"][data-status="dispatched"]`, { timeout: 15_000 });
  await ctx.close();
});

test("a grid member is not offered the dispatcher's actions, and the API refuses them", async () => {
  const c = seeded[1]; // dispute.neighbor, still registered
  const sub = `gm-${c.gridCode}`;
  const token = srv.token(sub, "grid_member");
  const { page, ctx } = await newPage(browser);
  await signIn(page, srv.url, token);
  await page.getByTestId("whoami").waitFor();
  assert.match(await page.getByTestId("whoami-role").innerText(), /网格员/);
  assert.match(await page.getByTestId("whoami-scope-text").innerText(), new RegExp(`网格 ${c.gridCode}`));
  assert.equal(await page.getByTestId("tab-stats").count(), 0, "no statistics for grid members");
  const row = page.locator(`[data-testid="case-row"][data-case-id="${c.id}"]`);
  await row.waitFor({ timeout: 20_000 });
  await row.click();
  await page.waitForSelector(`[data-testid="case-detail"][data-case-id="${c.id}"][data-status="registered"]`);
  await page.getByTestId("timeline-event").first().waitFor();
  assert.equal(await page.getByTestId("action-dispatch").count(), 0, "no dispatch button");
  assert.equal(await page.getByTestId("unit-picker").count(), 0);
  await page.screenshot({ path: artifact("08-grid-member-case.png") });
  const gm = srv.api(token);
  const cur = await gm.cases.getCase({ caseId: c.id });
  await assert.rejects(
    gm.cases.dispatchCase({ caseId: c.id, expectedVersion: cur.case.version, unitCode: "371102.police" }),
    (e) => e.code === h.Code.PermissionDenied,
  );
  await ctx.close();
});

test("the lead unit asks for an extension on the page, the center approves it there, and the clock shows it", async () => {
  const g = grids[11];
  const disp = srv.api(srv.token("disp-371102", "dispatcher"));
  const staffApi = srv.api(srv.token("staff-371102.justice", "unit_staff"));
  let c = await h.submit(srv.api(srv.token(`gm-${g.code}`, "grid_member")), g, "dispute.neighbor", "e2e：邻里纠纷需多部门协调");
  c = (await disp.cases.dispatchCase({ caseId: c.id, expectedVersion: c.version, unitCode: "371102.justice", reason: "e2e" })).case;
  c = (await staffApi.cases.acceptCase({ caseId: c.id, expectedVersion: c.version })).case;

  // The unit's staff asks on its page.
  const unit = await newPage(browser);
  await signIn(unit.page, srv.url, srv.token("staff-371102.justice", "unit_staff"));
  const row = unit.page.locator(`[data-testid="case-row"][data-case-id="${c.id}"]`);
  await row.waitFor({ timeout: 20_000 });
  await row.click();
  await unit.page.waitForSelector(`[data-testid="case-detail"][data-case-id="${c.id}"][data-status="accepted"]`);
  await unit.page.getByTestId("action-extension").click();
  await unit.page.getByTestId("action-duration").fill("3wd");
  await unit.page.getByTestId("action-text").fill("需协调住建部门现场勘验");
  await unit.page.getByTestId("action-confirm").click();
  await unit.page.waitForSelector('[data-testid="action-result"][data-kind="ok"]', { timeout: 15_000 });
  await unit.page.waitForSelector('[data-testid="pending-request"][data-kind="extension"]', { timeout: 15_000 });
  assert.match(await unit.page.getByTestId("pending-request").innerText(), /3wd/);
  assert.equal(await unit.page.getByTestId("action-extension").count(), 0, "one request at a time");

  // The center approves on its page; the resolve clock shows the extension on both pages.
  const center = await newPage(browser);
  await signIn(center.page, srv.url, srv.token("disp-371102", "dispatcher"));
  const crow = center.page.locator(`[data-testid="case-row"][data-case-id="${c.id}"]`);
  await crow.waitFor({ timeout: 20_000 });
  await crow.click();
  await center.page.waitForSelector('[data-testid="pending-request"][data-kind="extension"]', { timeout: 15_000 });
  await center.page.getByTestId("action-approveExtension").click();
  await center.page.getByTestId("action-confirm").click();
  await center.page.waitForSelector('[data-testid="action-result"][data-kind="ok"]', { timeout: 15_000 });
  await center.page.getByTestId("clock-extended").waitFor({ timeout: 15_000 });
  assert.equal(await center.page.getByTestId("pending-request").count(), 0);
  await center.page.waitForSelector('[data-testid="timeline-event"][data-kind="extension_decided"]', { timeout: 15_000 });
  await center.page.screenshot({ path: artifact("09-extension-approved.png") });
  await unit.page.getByTestId("clock-extended").waitFor({ timeout: 15_000 });
  const now = await disp.cases.getCase({ caseId: c.id });
  const resolve = now.case.clocks.find((k) => k.kind === h.ClockKind.RESOLVE);
  assert.equal(resolve.extensions, 1);
  assert.ok(resolve.originalDueAt, "the due time before the extension is kept");
  assert.deepEqual(unit.problems, [], "no console errors");
  assert.deepEqual(center.problems, [], "no console errors");
  await unit.ctx.close();
  await center.ctx.close();
});

test("a garbage, an expired or a running-out token returns to sign-in with the reason", async () => {
  const { page, ctx } = await newPage(browser);
  // Garbage.
  await signIn(page, srv.url, "not-a-token");
  const err = page.getByTestId("signin-error");
  await err.waitFor();
  assert.match(await err.innerText(), /令牌被拒绝.*invalid token/);
  // Expired (signed with the server's key, exp an hour ago).
  const now = Math.floor(Date.now() / 1000);
  const expired = srv.craft({ sub: "disp-371102", role: "dispatcher", exp: now - 3600, iat: now - 7200, nbf: now - 7200 });
  await signIn(page, srv.url, expired);
  await page.waitForFunction(() => /ExpiredSignature|expired/i.test(document.querySelector('[data-testid="signin-error"]')?.textContent ?? ""));
  assert.match(await err.innerText(), /令牌已过期/);
  await page.screenshot({ path: artifact("09-signin-expired.png") });
  // A good signature, but a role the member record does not have: WhoAmI refuses it.
  await signIn(page, srv.url, srv.token("disp-371102", "supervisor"));
  await page.waitForFunction(() => /not a supervisor/.test(document.querySelector('[data-testid="signin-error"]')?.textContent ?? ""));
  assert.match(await err.innerText(), /令牌被拒绝/);
  console.log(`# wrong role at sign-in: ${await err.innerText()}`);
  // Signed in, then the token runs out: back to sign-in, saying so.
  const short = srv.craft({ sub: "disp-371102", role: "dispatcher", exp: now + 6 });
  await signIn(page, srv.url, short);
  await page.getByTestId("whoami").waitFor();
  await page.getByTestId("signin-token").waitFor({ timeout: 20_000 });
  assert.match(await page.getByTestId("signin-error").innerText(), /登录已过期/);
  // A token refused on reload (kept in sessionStorage, then replaced).
  await signIn(page, srv.url, srv.token("disp-371102", "dispatcher"));
  await page.getByTestId("whoami").waitFor();
  // Replace it while no page of the console runs (a running page would itself notice the
  // refusal on its next call, sign out and forget the token), then load the console again.
  await page.goto(srv.url + "/console/config.json");
  await page.evaluate(() => sessionStorage.setItem("gridcase.token", "garbage.garbage.garbage"));
  await page.goto(srv.url + "/");
  await page.getByTestId("signin-error").waitFor();
  assert.match(await page.getByTestId("signin-error").innerText(), /令牌被拒绝/);
  // The sign-in page says how to get a demo token.
  assert.match(await page.getByTestId("signin").innerText(), /gridcase token --sub disp-371102 --role dispatcher/);
  await ctx.close();
});

test("the live stream resumes after a server restart and misses nothing", async () => {
  const { page, ctx } = await newPage(browser);
  await signIn(page, srv.url, srv.token("disp-371102", "dispatcher"));
  await waitMapReady(page);
  await page.waitForSelector('[data-testid="live-state"][data-state="live"]');
  await srv.halt();
  await page.waitForSelector('[data-testid="live-state"][data-state="retry"]', { timeout: 15_000 });
  await srv.launch();
  // A case made the moment the server is back, before the page has reconnected (its back-off).
  const g = grids[11];
  const c = await h.submit(srv.api(srv.token(`gm-${g.code}`, "grid_member")), g, "dispute.neighbor", "e2e：重启之后");
  await page.locator(`[data-testid="case-row"][data-case-id="${c.id}"]`).waitFor({ timeout: 40_000 });
  await page.locator(`[data-testid="case-pin"][data-case-id="${c.id}"]`).waitFor({ state: "attached", timeout: 10_000 });
  await page.waitForSelector('[data-testid="live-state"][data-state="live"]');
  await ctx.close();
});

test("a configured tile server is drawn under the shapes, and nothing else leaves the origin", async () => {
  // A stand-in intranet tile server on this machine: one small PNG for every tile.
  const http = await import("node:http");
  const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mN88P/PfwAJNQPXK/Y9uQAAAABJRU5ErkJggg==", "base64");
  let tiles = 0;
  const tileServer = http.createServer((q, s) => {
    tiles++;
    s.writeHead(200, { "content-type": "image/png" });
    s.end(png);
  });
  await new Promise((r) => tileServer.listen(0, "127.0.0.1", r));
  const tileUrl = `http://127.0.0.1:${tileServer.address().port}/{z}/{x}/{y}.png`;
  const withTiles = await startServer({ env: { GRIDCASE_CONSOLE_TILE_URL: tileUrl } });
  try {
    const cfg = await (await fetch(withTiles.url + "/console/config.json")).json();
    assert.equal(cfg.tile_url, tileUrl);
    const { page, problems, ctx } = await newPage(browser);
    await signIn(page, withTiles.url, withTiles.token("disp-371102", "dispatcher"));
    await waitMapReady(page);
    await page.waitForFunction(() => document.querySelectorAll(".leaflet-tile-loaded").length > 0, null, { timeout: 15_000 });
    assert.ok(tiles > 0, "tiles were fetched");
    assert.deepEqual(problems, [], "no CSP violation or other console error");
    await ctx.close();
  } finally {
    await withTiles.stop();
    tileServer.close();
  }
});

test("a supervisor sees the city's statistics against the targets", async () => {
  const { page, problems, ctx } = await newPage(browser);
  await signIn(page, srv.url, srv.token("sup-371100", "supervisor"));
  await page.getByTestId("whoami").waitFor();
  assert.match(await page.getByTestId("whoami-role").innerText(), /督导/);
  await waitMapReady(page);
  // Wait (at most until 80 s after the seeding) for the one-minute clocks to run late, so
  // the map shows pins of several states.
  const lateBy = started + 80_000 - Date.now();
  if (lateBy > 0) {
    await page
      .waitForSelector('[data-testid="case-pin"][data-sla-state="breached"]', { state: "attached", timeout: lateBy })
      .catch(() => {});
  }
  const states = await page.$$eval('[data-testid="case-pin"]', (els) => [...new Set(els.map((e) => e.getAttribute("data-sla-state")))].sort());
  console.log(`# pin SLA states on the supervisor's map: ${states.join(", ")}`);
  await page.screenshot({ path: artifact("04-supervisor-city-map.png") });
  await page.getByTestId("tab-stats").click();
  const kpis = page.getByTestId("stats-kpis");
  await kpis.waitFor({ timeout: 20_000 });
  const received = Number((await kpis.locator(".kpi .v").first().innerText()).trim());
  assert.ok(received >= seeded.length, `received this month: ${received}`);
  await page.getByTestId("chart-rates").waitFor();
  await page.getByTestId("chart-trend").waitFor();
  await page.getByTestId("chart-ranked").first().waitFor({ timeout: 20_000 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: artifact("05-supervisor-statistics.png") });
  // 季通报、年考核: the period switch offers quarters and years; this year's figures hold at least
  // this month's cases, and the rankings come from RankUnits for the period.
  const select = page.getByTestId("stats-month");
  const options = await select.locator("option").evaluateAll((os) => os.map((o) => o.value));
  const year = options.find((v) => /^\d{4}$/.test(v));
  assert.ok(options.some((v) => /^\d{4}-Q[1-4]$/.test(v)) && year, `periods offered: ${options.join(", ")}`);
  await select.selectOption(year);
  const yearly = page.locator(`[data-testid="stats-kpis"][data-period="${year}"]`);
  await yearly.waitFor({ timeout: 20_000 });
  const receivedInYear = Number((await yearly.locator(".kpi .v").first().innerText()).trim());
  assert.ok(receivedInYear >= received, `received in ${year}: ${receivedInYear}, this month: ${received}`);
  await page.getByTestId("chart-ranked").first().waitFor({ timeout: 20_000 });
  await select.selectOption(options[0]);
  await kpis.waitFor({ timeout: 20_000 });
  // The English view.
  await page.getByTestId("lang-switch").click();
  await page.waitForFunction(() => document.documentElement.lang === "en");
  assert.match(await page.locator(".stats-head h2").innerText(), /Statistics/);
  await page.screenshot({ path: artifact("06-statistics-english.png") });
  await page.getByTestId("tab-map").click();
  await page.waitForTimeout(300);
  await page.screenshot({ path: artifact("07-map-english.png") });
  await page.getByTestId("lang-switch").click();
  assert.deepEqual(problems, [], "no console errors");
  await ctx.close();
});

test("导出 CSV downloads every case of the applied filters, as ListCases lists them", async () => {
  const token = srv.token("disp-371102", "dispatcher");
  const { page, problems, ctx } = await newPage(browser);
  await signIn(page, srv.url, token);
  await page.getByTestId("whoami").waitFor();
  await page.getByTestId("filter-status-registered").check();
  await page.getByTestId("filter-apply").click();
  await page.getByTestId("case-row").first().waitFor({ timeout: 20_000 });
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 30_000 }), page.getByTestId("queue-export").click()]);
  assert.match(download.suggestedFilename(), /^cases-371102-\d{12}\.csv$/);
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], "a UTF-8 BOM");
  const text = bytes.subarray(3).toString("utf8");
  assert.ok(text.startsWith("案件ID,统一编码,状态,"), text.slice(0, 40));
  // The same cases ListCases gives this dispatcher for registered cases, newest first.
  const api = srv.api(token);
  const ids = [];
  let pageToken = "";
  do {
    const r = await api.cases.listCases({ statuses: [h.CaseStatus.REGISTERED], regionCode: "371102", page: { pageSize: 500, pageToken } });
    ids.push(...r.cases.map((c) => c.id));
    pageToken = r.nextPageToken;
  } while (pageToken);
  // Case ids are UUIDs and come first on each row: no quoting, no line breaks to parse around.
  const exported = text.split("\r\n").slice(1).map((line) => line.match(/^([0-9a-f-]{36}),/)?.[1]).filter(Boolean);
  assert.ok(ids.length > 0);
  assert.deepEqual(exported, ids);
  assert.equal(await page.getByTestId("queue-export").innerText(), "导出 CSV");
  assert.deepEqual(problems, [], "no console errors");
  await ctx.close();
});

test("a district dispatcher is alerted live to cases piling up in one community and opens them", async () => {
  const { page, problems, ctx } = await newPage(browser);
  await signIn(page, srv.url, srv.token("disp-371102", "dispatcher"));
  await waitMapReady(page);
  await page.waitForSelector('[data-testid="live-state"][data-state="live"]');
  await page.getByTestId("tab-alerts").click();
  await page.locator('[data-testid="alerts-empty"], [data-testid="alert"]').first().waitFor({ timeout: 15_000 });
  // Five environmental cases (a class nothing else seeds) in one grid: its community's alert
  // (5 within 72 hours), raised by the server within seconds and listed without a reload.
  const g = grids[1];
  const community = g.code.slice(0, 12);
  const gm = srv.api(srv.token(`gm-${g.code}`, "grid_member"));
  const made = [];
  for (let i = 0; i < 5; i++) made.push(await h.submit(gm, g, "environment.garbage", `e2e 垃圾堆放 ${i}`));
  const t0 = Date.now();
  const alert = page.locator(`[data-testid="alert"][data-kind="hotspot"][data-region="${community}"]`);
  await alert.waitFor({ timeout: 20_000 });
  console.log(`# the hotspot alert was listed ${Date.now() - t0} ms after the fifth case`);
  assert.match(await alert.getByTestId("alert-count").innerText(), /5/);
  assert.match(await alert.innerText(), /环境保护/);
  const codes = await alert.getByTestId("alert-case").allInnerTexts();
  assert.deepEqual([...codes].sort(), made.map((c) => c.code).sort(), "the alert names the five cases");
  await page.screenshot({ path: artifact("08-alerts.png") });
  // A case of the alert opens in the map's detail panel.
  await alert.getByTestId("alert-case").last().click();
  await page.waitForSelector(`[data-testid="case-detail"][data-case-id="${made[4].id}"]`, { timeout: 15_000 });
  assert.deepEqual(problems, [], "no console errors");
  await ctx.close();
});


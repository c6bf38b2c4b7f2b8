// Shared by the end-to-end tests and the benchmark: starts the real gridcase binary on a free
// port with its own data dir and SQLite file, mints tokens with its `token` command, drives the
// API from Node through the same gRPC-Web client the page uses, and launches Debian's Chromium.
import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const CONSOLE_DIR = path.resolve(here, "..");
export const REPO = path.resolve(CONSOLE_DIR, "..");
export const BIN = process.env.GRIDCASE_BIN || path.join(REPO, "target/debug/gridcase");
export const ARTIFACTS = path.join(here, "artifacts");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SECRET = "e2e-secret-for-the-console-tests-0123456789";

/** The TypeScript API helpers (e2e/lib/api.ts), bundled for Node with esbuild, then imported. */
let helpers = null;
export async function apiHelpers() {
  if (helpers) return helpers;
  const { buildSync } = await import("esbuild");
  const out = path.join(here, ".build", "api.mjs");
  buildSync({
    entryPoints: [path.join(here, "lib", "api.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: out,
    logLevel: "warning",
  });
  helpers = await import(out);
  return helpers;
}

async function freePort() {
  return await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * `gridcase serve --demo` on a free port. Returns its URL, a token minter, an API factory and a
 * stop function. `env` adds settings (e.g. GRIDCASE_CONSOLE_TILE_URL).
 */
export async function startServer({ env: extra = {} } = {}) {
  if (!fs.existsSync(BIN)) throw new Error(`no gridcase binary at ${BIN}: cargo build --bin gridcase, or set GRIDCASE_BIN`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gridcase-console-e2e-"));
  const port = await freePort();
  const env = {
    ...process.env,
    GRIDCASE_DATABASE_URL: `sqlite://${dir}/db.sqlite?mode=rwc`,
    GRIDCASE_DATA_DIR: path.join(dir, "data"),
    GRIDCASE_LISTEN: `127.0.0.1:${port}`,
    GRIDCASE_JWT_SECRET: SECRET,
    RUST_LOG: process.env.RUST_LOG || "warn",
    ...extra,
  };
  const url = `http://127.0.0.1:${port}`;
  let child = null;
  let exited = null;
  const launch = async () => {
    const log = fs.openSync(path.join(dir, "server.log"), "a");
    exited = null;
    child = spawn(BIN, ["serve", "--demo"], { env, cwd: dir, stdio: ["ignore", log, log] });
    child.on("exit", (code, sig) => (exited = { code, sig }));
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (exited) throw new Error(`gridcase exited early (${JSON.stringify(exited)}); log: ${fs.readFileSync(path.join(dir, "server.log"), "utf8").slice(-2000)}`);
      try {
        const r = await fetch(url + "/console/config.json");
        if (r.ok) break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error("gridcase did not start within 120 s");
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const halt = async () => {
    if (exited || !child) return;
    const c = child;
    c.kill("SIGTERM");
    await new Promise((r) => {
      const t = setTimeout(() => {
        c.kill("SIGKILL");
        r();
      }, 15_000);
      c.once("exit", () => {
        clearTimeout(t);
        r();
      });
    });
  };
  await launch();
  const token = (sub, role, ttl) =>
    execFileSync(BIN, ["token", "--sub", sub, "--role", role, ...(ttl ? ["--ttl", ttl] : [])], { env, cwd: dir }).toString().trim();
  /** A token signed with the server's own secret, with claims of our choosing (e.g. expired). */
  const craft = (claims) => {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const body = b64({ iss: "gridcase", aud: "gridcase", iat: now, nbf: now - 5, ...claims });
    const head = b64({ typ: "JWT", alg: "HS256" });
    const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
    return `${head}.${body}.${sig}`;
  };
  const h = await apiHelpers();
  const api = (tok) => h.api(url, tok);
  const stop = async () => {
    await halt();
    if (!process.env.KEEP_E2E_DIR) fs.rmSync(dir, { recursive: true, force: true });
  };
  /** Stops the server and starts it again on the same port and database. */
  const restart = async (downMs = 0) => {
    await halt();
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    await launch();
  };
  return { url, dir, port, token, craft, api, stop, halt, launch, restart, helpers: h };
}

export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A page with its console errors and failed requests collected (CSP violations show there). */
export async function newPage(browser, { width = 1600, height = 900, locale = "zh-CN" } = {}) {
  const ctx = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1, locale, timezoneId: "Asia/Shanghai" });
  const page = await ctx.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  return { ctx, page, problems };
}

export async function signIn(page, url, token) {
  await page.goto(url + "/");
  await page.getByTestId("signin-token").fill(token);
  await page.getByTestId("signin-submit").click();
}

export async function waitMapReady(page, timeout = 60_000) {
  await page.waitForFunction(() => performance.getEntriesByName("console:map-ready").length > 0, null, { timeout });
}

export function artifact(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/** Mints nothing, decides nothing: picks `n` grids of a district spread evenly. */
export function spread(points, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(points[Math.floor((i * points.length) / n) % points.length]);
  return out;
}

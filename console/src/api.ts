// The gridcase API through gRPC-Web on the page's own origin. Every call carries the signed-in
// token; an UNAUTHENTICATED answer anywhere signs the page out with the reason.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { CaseService } from "./gen/gridcase/v1/case_pb";
import { DirectoryService } from "./gen/gridcase/v1/directory_pb";
import { GatewayService } from "./gen/gridcase/v1/gateway_pb";
import { StatsService } from "./gen/gridcase/v1/stats_pb";
import { t, type Key } from "./i18n";

const TOKEN_KEY = "gridcase.token";

export function getToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return memoryToken;
  }
}
let memoryToken = "";

export function setToken(token: string): void {
  memoryToken = token;
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage refused: keep it in memory for this page */
  }
}

/** Called when any answer says the token is no longer good. */
let onUnauthenticated: (reason: string) => void = () => {};
export function setUnauthenticatedHandler(f: (reason: string) => void): void {
  onUnauthenticated = f;
}

const auth: Interceptor = (next) => async (req) => {
  req.header.set("authorization", `Bearer ${getToken()}`);
  try {
    return await next(req);
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code === Code.Unauthenticated) onUnauthenticated(err.rawMessage);
    throw e;
  }
};

const transport = createGrpcWebTransport({ baseUrl: location.origin, interceptors: [auth] });

export const directory: Client<typeof DirectoryService> = createClient(DirectoryService, transport);
export const cases: Client<typeof CaseService> = createClient(CaseService, transport);
export const gateway: Client<typeof GatewayService> = createClient(GatewayService, transport);
export const stats: Client<typeof StatsService> = createClient(StatsService, transport);

export interface ConsoleConfig {
  tile_url: string | null;
  version: string;
}

export async function loadConfig(): Promise<ConsoleConfig> {
  try {
    const r = await fetch("/console/config.json", { cache: "no-cache" });
    if (r.ok) return (await r.json()) as ConsoleConfig;
  } catch {
    /* served without the config: no tiles */
  }
  return { tile_url: null, version: "" };
}

/** The expiry of a JWT, read without checking it (the server checks). */
export function tokenExpiry(token: string): Date | null {
  try {
    const part = token.split(".")[1];
    if (!part) return null;
    const json = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    return typeof json.exp === "number" ? new Date(json.exp * 1000) : null;
  } catch {
    return null;
  }
}

export function errorCode(e: unknown): Code {
  return ConnectError.from(e).code;
}

/**
 * A refusal in words a dispatcher understands: what happened, then the server's own message
 * (which names the state or the field) for the curious.
 */
export function explain(e: unknown, status?: string): { text: string; detail: string; code: Code } {
  const err = ConnectError.from(e);
  const byCode: Partial<Record<Code, Key>> = {
    [Code.Aborted]: "err_aborted",
    [Code.FailedPrecondition]: "err_precondition",
    [Code.PermissionDenied]: "err_denied",
    [Code.InvalidArgument]: "err_invalid",
    [Code.NotFound]: "err_not_found",
    [Code.Unavailable]: "err_unavailable",
    [Code.Unauthenticated]: "signin_expired",
  };
  const key = byCode[err.code] ?? "err_unknown";
  return { text: t(key, { s: status ?? "" }), detail: err.rawMessage, code: err.code };
}

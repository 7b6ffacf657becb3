/**
 * The admin HTTP server, on its own port (Kubernetes probes and Prometheus reach it; the proxy port stays the app's):
 *
 *   GET  /healthz   200 "ok" while the process runs
 *   GET  /readyz    200 when the proxy is listening and not draining, else 503 (never depends on Redis)
 *   GET  /status    200 JSON: pod, version, lease holder, controller state, latest verdict
 *   GET  /metrics   Prometheus text
 *   POST /rollback  {"reason": "...", "actor": "..."}   bearer token; 403 when no token is configured
 *   POST /reset     {"reason": "...", "actor": "...", "flag": "10"}
 *
 * A server given no rollback and reset handlers (the router's) answers 404 on both POST routes.
 *
 * Bearer tokens are compared in constant time (SHA-256 digests through timingSafeEqual). Bodies over 16 KiB: 413.
 * Failed tokens are rate-limited per address (429 with Retry-After once its bucket is empty, auth-limiter.ts) and
 * their log lines sampled. `reason` and `actor` lose every control and bidirectional-control character before they go
 * anywhere (src/core/text.ts); the flag of POST /reset is an integer percentage 0..100 (parseWeight) or a 400.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../config/logger.ts';
import { cleanText } from '../core/text.ts';
import { parseWeight } from '../core/weight.ts';
import { AuthLimiter, type AuthLimiterOptions } from './auth-limiter.ts';

const MAX_BODY_BYTES = 16 * 1024;

export interface AdminRequestBody {
  readonly reason: string;
  readonly actor: string;
  /** POST /reset only: the flag's new value, an integer percentage 0..100 as text, or null to leave it. */
  readonly flag: string | null;
}

export interface AdminHandlers {
  ready(): boolean;
  status(): unknown;
  metrics(req: IncomingMessage, res: ServerResponse): void;
  /** Resolves to a short JSON-able result; rejects when Redis refuses (answered 503). Absent: POST /rollback is 404. */
  rollback?(body: AdminRequestBody): Promise<unknown>;
  /** As rollback. Absent: POST /reset is 404. */
  reset?(body: AdminRequestBody): Promise<unknown>;
  /** Further routes (integration endpoints, rollout controls), matched on method and path before the 404. */
  routes?: readonly AdminRoute[];
}

/** What an extra route answers: an HTTP status and a body (a string is sent as text/plain, anything else as JSON). */
export interface AdminReply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * An extra admin route. `auth: true` puts it behind the bearer token exactly as POST /rollback (403 when no token is
 * configured, 401 on a wrong one); the raw body (at most 16 KiB, else 413) and the parsed query are handed over.
 * A rejected promise is answered 503 with its message.
 */
export interface AdminRoute {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly auth: boolean;
  handle(request: AdminRouteRequest): Promise<AdminReply> | AdminReply;
}

export interface AdminRouteRequest {
  readonly query: URLSearchParams;
  /** The request body as UTF-8 text ('' for a GET). */
  readonly body: string;
  readonly remote: string;
  readonly headers: IncomingMessage['headers'];
}

export interface AdminServer {
  readonly server: Server;
  listen(port: number, host: string): Promise<{ port: number; host: string }>;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text =
    typeof body === 'string'
      ? body
      : JSON.stringify(body, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'cache-control': 'no-store',
  });
  res.end(text);
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** True when the Authorization header carries `Bearer <token>`; constant time in the token's content. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = header?.startsWith('Bearer ') ? header.slice(7) : '';
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0;
}

async function readBody(req: IncomingMessage): Promise<string | null> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseBody(text: string, remote: string): AdminRequestBody | string {
  let raw: unknown = {};
  if (text.trim() !== '') {
    try {
      raw = JSON.parse(text);
    } catch {
      return 'body must be JSON';
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'body must be a JSON object';
  const b = raw as Record<string, unknown>;
  if (b.reason !== undefined && typeof b.reason !== 'string') return 'reason must be a string';
  if (b.actor !== undefined && typeof b.actor !== 'string') return 'actor must be a string';
  const weight = b.flag === undefined ? null : parseWeight(b.flag);
  if (weight !== null && !weight.ok) return `flag ${weight.reason}`;
  return {
    reason: cleanText((b.reason as string | undefined) ?? '', 500) || 'no reason given',
    actor: `${cleanText((b.actor as string | undefined) ?? '', 100) || 'admin-api'}@${remote}`,
    flag: weight === null ? null : String(weight.weight),
  };
}

/**
 * @param token bearer token of the mutating endpoints; undefined or empty disables them (403)
 * @param limits the failed-token limiter's settings (tests use a manual clock)
 */
export function createAdminServer(
  handlers: AdminHandlers,
  token: string | undefined,
  logger: Logger,
  limits: AuthLimiterOptions = {},
): AdminServer {
  const limiter = new AuthLimiter(limits);
  const mutating = async (req: IncomingMessage, res: ServerResponse, action: 'rollback' | 'reset'): Promise<void> => {
    const handler = handlers[action];
    if (handler === undefined) return send(res, 404, { error: `no route /${action}` });
    if (!authorized(req, res, action)) return;
    const text = await readBody(req);
    if (text === null) return send(res, 413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
    const body = parseBody(text, req.socket.remoteAddress ?? 'unknown');
    if (typeof body === 'string') return send(res, 400, { error: body });
    logger.warn({ action, actor: body.actor, reason: body.reason, flag: body.flag }, `admin ${action} requested`);
    try {
      send(res, 200, await handler(body));
    } catch (err) {
      send(res, 503, { error: `redis refused the ${action}: ${(err as Error).message}` });
    }
  };

  const authorized = (req: IncomingMessage, res: ServerResponse, action: string): boolean => {
    if (!token) {
      send(res, 403, { error: `${req.method} /${action} is disabled: set CANARY_GATE_ADMIN_TOKEN to enable it` });
      return false;
    }
    const remote = req.socket.remoteAddress ?? 'unknown';
    const retryAfterS = limiter.retryAfterS(remote);
    if (retryAfterS > 0) {
      const skipped = limiter.sample();
      if (skipped !== null) logger.warn({ action, remote, skipped }, 'admin request refused: too many failed tokens');
      res.setHeader('retry-after', String(retryAfterS));
      send(res, 429, { error: `too many failed tokens: retry in ${retryAfterS} s` });
      return false;
    }
    if (!bearerMatches(req.headers.authorization, token)) {
      limiter.failed(remote);
      const skipped = limiter.sample();
      if (skipped !== null) logger.warn({ action, remote, skipped }, 'admin request refused: bad or missing bearer token');
      res.setHeader('www-authenticate', 'Bearer');
      send(res, 401, { error: 'missing or wrong bearer token' });
      return false;
    }
    return true;
  };

  const extra = async (req: IncomingMessage, res: ServerResponse, route: AdminRoute, query: URLSearchParams): Promise<void> => {
    if (route.auth && !authorized(req, res, route.path.replace(/^\//, ''))) return;
    const body = req.method === 'GET' ? '' : await readBody(req);
    if (body === null) return send(res, 413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
    try {
      const reply = await route.handle({ query, body, remote: req.socket.remoteAddress ?? 'unknown', headers: req.headers });
      for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
      send(res, reply.status, reply.body);
    } catch (err) {
      send(res, 503, { error: (err as Error).message });
    }
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const path = url.pathname;
    const route = `${req.method} ${path}`;
    const own = handlers.routes?.filter((r) => r.path === path) ?? [];
    const match = own.find((r) => r.method === req.method);
    if (match !== undefined) return void extra(req, res, match, url.searchParams);
    if (own.length > 0) return send(res, 405, { error: `${req.method} not allowed on ${path}` });
    switch (route) {
      case 'GET /healthz':
        return send(res, 200, 'ok\n');
      case 'GET /readyz':
        return handlers.ready() ? send(res, 200, 'ready\n') : send(res, 503, 'not ready\n');
      case 'GET /status':
        return send(res, 200, handlers.status());
      case 'GET /metrics':
        return handlers.metrics(req, res);
      case 'POST /rollback':
        return void mutating(req, res, 'rollback');
      case 'POST /reset':
        return void mutating(req, res, 'reset');
      default:
        if (['/healthz', '/readyz', '/status', '/metrics', '/rollback', '/reset'].includes(path ?? '')) {
          return send(res, 405, { error: `${req.method} not allowed on ${path}` });
        }
        return send(res, 404, { error: `no route ${path}` });
    }
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;

  return {
    server,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const a = server.address() as AddressInfo;
          resolve({ port: a.port, host: a.address });
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * The config schema (zod). Types derive from it; every problem is reported with its path and reason.
 * Durations become ms (numbers), ratios stay 0..1.
 */
import { isIP } from 'node:net';
import ms from 'ms';
import { z } from 'zod';
import { SEQUENTIAL_CHECKS, type SequentialCheckName } from '../core/checks.ts';
import { REDIS_MODES } from './redis-target.ts';

/** Reads a positive duration (`5s`, `250ms`, `1m`, or a number of ms) as ms; an issue on `ctx` otherwise. */
function toMs(input: number | string, ctx: z.RefinementCtx): number {
  // `ms('')` throws instead of returning undefined: an empty string must become an issue, not an exception.
  const value = typeof input === 'number' ? input : input.trim() === '' ? undefined : ms(input as ms.StringValue);
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    ctx.issues.push({ code: 'custom', input, message: `must be a positive duration such as 5s or 250ms (got ${JSON.stringify(input)})` });
    return z.NEVER;
  }
  return value;
}

/** A positive duration: `5s`, `250ms`, `1m`, or a number of ms. Output: ms. */
export const duration = z.union([z.number(), z.string()]).transform(toMs);
/** A duration or 0 (off). Output: ms. */
const durationOrOff = z.union([z.number(), z.string()]).transform((input, ctx) => (input === 0 || input === '0' ? 0 : toMs(input, ctx)));
const ratio = z.number().min(0, 'must be a ratio between 0 and 1').max(1, 'must be a ratio between 0 and 1 (0.05 means 5 %)');
const multiplier = z.number().gt(1, 'must be a multiplier above 1 such as 1.5');
const multiplierOrOff = z.number().refine((v) => v === 0 || v > 1, 'must be 0 (off) or a multiplier above 1 such as 1.5');
const port = z.number().int('must be an integer').min(0).max(65535);
const name = z.string().min(1, 'must not be empty');
/** `5xx` or `429`; YAML reads an unquoted 429 as a number, so numbers are taken as their text. */
const statusClass = z
  .union([z.string(), z.number()])
  .transform(String)
  .pipe(z.string().regex(/^([1-5]xx|[1-5][0-9][0-9])$/, 'must be a status class such as 5xx or a code such as 429'));
const noDataAction = z.enum(['hold', 'rollback', 'pass']);
const routeTemplate = z
  .string()
  .refine((t) => t.startsWith('/'), 'must start with /')
  .refine((t) => {
    try {
      new URLPattern({ pathname: t });
      return true;
    } catch {
      return false;
    }
  }, 'must be a URLPattern pathname such as /users/:id');
/** The scheme only: hosts, database and master name are read by readRedisTarget (src/config/redis-target.ts) at load. */
const redisUrl = z
  .string()
  .refine((u) => /^rediss?(\+sentinel)?:\/\/[^\s]+$/.test(u), 'must be a redis://, rediss://, redis+sentinel:// or rediss+sentinel:// URL');
/** An IPv4 or IPv6 address (`10.0.0.7`) or a CIDR range (`10.0.0.0/8`, `fd00::/8`). */
const ipOrRange = z.string().refine((entry) => {
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  const bits = /^[0-9]{1,3}$/.test(prefix) ? Number(prefix) : -1;
  return bits >= 0 && bits <= (family === 4 ? 32 : 128);
}, 'must be an IP address such as 10.0.0.7 or a CIDR range such as 10.0.0.0/8');
const httpUrl = z.string().refine((u) => /^https?:\/\//.test(u) && URL.canParse(u), 'must be an http:// or https:// URL');
/** A header or cookie name (an RFC 9110 token), or empty for off. */
const tokenOrOff = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]*$/, 'must be a header or cookie name (letters, digits, - _ . and the like), or empty for off');

export const configSchema = z.strictObject({
  service: z.string().regex(/^[A-Za-z0-9._-]+$/, 'must be letters, digits, dot, dash or underscore'),
  pod: z.strictObject({ name: z.string(), version: name }),
  versions: z.strictObject({ baseline: name, canary: name }),
  proxy: z.strictObject({
    host: name,
    port,
    upstream: httpUrl,
    connections: z.number().int().min(1),
    connectTimeout: duration,
    headersTimeout: duration,
    bodyTimeout: duration,
    keepAliveTimeout: duration,
    clientHeadersTimeout: duration,
    queueTimeout: duration,
    clientBodyTimeout: duration,
    clientBodyMinRate: z.number().min(0, 'must be 0 (off) or a rate in bytes per second such as 500'),
    trustedProxies: z.array(ipOrRange),
    errorStatuses: z.array(statusClass),
    routes: z.array(routeTemplate),
  }),
  admin: z.strictObject({ host: name, port }),
  redis: z.strictObject({
    mode: z.enum(REDIS_MODES),
    url: redisUrl,
    nodes: z.array(z.string()),
    masterName: z.string(),
    sentinelPassword: z.string(),
    keyPrefix: name,
    commandTimeout: duration,
    connectTimeout: duration,
  }),
  window: z.strictObject({
    slot: duration,
    slots: z.number().int('must be an integer').min(1).max(1440),
    publishBuffer: z.number().int().min(1),
  }),
  evaluation: z.strictObject({
    enabled: z.boolean(),
    delay: duration,
    leaseTtl: duration,
  }),
  policy: z.strictObject({
    advisory: z.boolean(),
    minSamples: z.number().int().min(1),
    consecutiveBreaches: z.number().int().min(1),
    consecutiveNoData: z.number().int().min(1),
    latency: z.strictObject({
      relativeP95: multiplier,
      warnRelativeP95: z.number().min(0),
      absoluteP95: duration,
      relativeP50: multiplierOrOff,
      relativeP99: multiplierOrOff,
      absoluteP50: durationOrOff,
      absoluteP99: durationOrOff,
    }),
    errors: z.strictObject({
      relativeRatio: multiplier,
      baselineFloor: ratio,
      absoluteRatio: ratio,
      warnRatio: ratio,
    }),
    noData: z.strictObject({
      noTraffic: noDataAction,
      canaryMissing: noDataAction,
      baselineMissing: noDataAction,
      redisUnreachable: noDataAction,
    }),
    throughput: z.strictObject({ drop: z.number().min(0).lt(1, 'must be below 1 (0.5 means half the traffic the flag gives)') }),
    for: z.strictObject(
      Object.fromEntries(SEQUENTIAL_CHECKS.map((name) => [name, durationOrOff])) as Record<SequentialCheckName, typeof durationOrOff>,
    ),
    trafficShareAlpha: z.number().min(0).max(0.5, 'must be at most 0.5'),
    statistics: z.strictObject({
      enabled: z.boolean(),
      method: z.enum(['sequential', 'window']),
      warnRate: z.number().gt(0, 'must be above 0').max(0.5, 'must be at most 0.5'),
      falseRollbackRate: z.number().gt(0, 'must be above 0').max(0.5, 'must be at most 0.5'),
      horizon: duration,
      grossErrorRatio: ratio,
    }),
  }),
  flag: z.strictObject({
    key: name,
    rollbackValue: z.union([z.string(), z.number()]).transform(String),
    auditMaxLen: z.number().int().min(1),
  }),
  router: z.strictObject({
    host: name,
    port,
    adminHost: name,
    adminPort: port,
    baselineUpstream: httpUrl,
    canaryUpstream: httpUrl,
    pollInterval: duration,
    stickyHeader: tokenOrOff,
    stickyCookie: tokenOrOff,
  }),
  log: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  }),
});

/** A validated config. Durations are ms. Deep-frozen by the loader. */
export type Config = z.output<typeof configSchema>;

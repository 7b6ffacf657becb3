/**
 * The config schema (zod). Types derive from it; every problem is reported with its path and reason.
 * Durations become ms (numbers), ratios stay 0..1.
 */
import { isIP } from 'node:net';
import ms from 'ms';
import { z } from 'zod';
import { SEQUENTIAL_CHECKS, type SequentialCheckName } from '../core/checks.ts';
import { parseWeight } from '../core/weight.ts';
import type { RolloutStep } from '../core/rollout-plan.ts';

/** A positive duration (`5s`, `250ms`, `1m`, or a number of ms) as ms; undefined when it is not one. */
function durationMs(input: number | string): number | undefined {
  // `ms('')` throws instead of returning undefined: an empty string must become an issue, not an exception.
  const value = typeof input === 'number' ? input : input.trim() === '' ? undefined : ms(input as ms.StringValue);
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}
import { REDIS_MODES } from './redis-target.ts';

/** Reads a positive duration (`5s`, `250ms`, `1m`, or a number of ms) as ms; an issue on `ctx` otherwise. */
function toMs(input: number | string, ctx: z.RefinementCtx): number {
  const value = durationMs(input);
  if (value === undefined) {
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
const httpProtocol = z.enum(['http1', 'h2c']);
/** A gRPC status code, 0..16; YAML and the environment may give it as text. */
const grpcCode = z
  .union([z.number(), z.string()])
  .transform(Number)
  .pipe(
    z
      .number()
      .int('must be a gRPC status code 0..16 such as 14')
      .min(0, 'must be a gRPC status code 0..16')
      .max(16, 'must be a gRPC status code 0..16'),
  );
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

/**
 * One rollout step in Argo Rollouts' vocabulary: `{setWeight: 5}`, `{pause: {duration: 10m}}` or `{pause: {}}` (wait for
 * a person). The environment (a comma-separated list) writes the same steps as text: `5`, `pause 10m`, `pause`.
 * Output: a {@link RolloutStep}.
 */
const rolloutStep = z.union([z.string(), z.number(), z.record(z.string(), z.unknown())]).transform((input, ctx): RolloutStep => {
  const fail = (message: string): RolloutStep => {
    ctx.issues.push({ code: 'custom', input, message });
    return z.NEVER;
  };
  const pause = (text: unknown): RolloutStep => {
    if (text === undefined || text === null) return { pause: { durationMs: null } };
    const value = typeof text === 'number' || typeof text === 'string' ? durationMs(text) : undefined;
    if (value === undefined) return fail(`pause.duration must be a positive duration such as 10m (got ${JSON.stringify(text)})`);
    return { pause: { durationMs: value } };
  };
  const weight = (value: unknown): RolloutStep => {
    const parsed = parseWeight(value);
    return parsed.ok ? { setWeight: parsed.weight } : fail(`setWeight ${parsed.reason}`);
  };
  if (typeof input === 'number') return weight(input);
  if (typeof input === 'string') {
    const text = input.trim();
    if (/^pause\b/.test(text)) return pause(text.slice(5).trim() || undefined);
    return weight(text.replace(/%$/, '').replace(/^setWeight:?\s*/, ''));
  }
  const keys = Object.keys(input);
  if (keys.length === 1 && keys[0] === 'setWeight') return weight(input.setWeight);
  if (keys.length === 1 && keys[0] === 'pause') {
    const p = input.pause;
    if (p === null || p === undefined) return pause(undefined);
    if (typeof p !== 'object' || Array.isArray(p) || Object.keys(p).some((k) => k !== 'duration'))
      return fail('pause must be {} (wait for a person) or {duration: 10m}');
    return pause((p as { duration?: unknown }).duration);
  }
  return fail('must be {setWeight: 5}, {pause: {duration: 10m}} or {pause: {}}');
});

/** The steps as a whole: at least one setWeight, the first step a setWeight, weights rising. */
const rolloutSteps = z.array(rolloutStep).superRefine((steps, ctx) => {
  let last = 0;
  steps.forEach((step, i) => {
    if ('pause' in step && i === 0) ctx.addIssue({ code: 'custom', path: [i], message: 'the first step must be a setWeight' });
    if ('setWeight' in step) {
      if (step.setWeight === 0) ctx.addIssue({ code: 'custom', path: [i], message: 'setWeight must be at least 1 (abort sets 0)' });
      else if (step.setWeight <= last)
        ctx.addIssue({ code: 'custom', path: [i], message: `weights must rise: ${step.setWeight} after ${last}` });
      last = step.setWeight;
    }
  });
  if (steps.length === 0) ctx.addIssue({ code: 'custom', message: 'must hold at least one setWeight step' });
});

export const configSchema = z.strictObject({
  service: z.string().regex(/^[A-Za-z0-9._-]+$/, 'must be letters, digits, dot, dash or underscore'),
  pod: z.strictObject({ name: z.string(), version: name }),
  versions: z.strictObject({ baseline: name, canary: name, namedByRequest: z.boolean() }),
  proxy: z.strictObject({
    host: name,
    port,
    protocol: httpProtocol,
    upstream: httpUrl,
    upstreamProtocol: httpProtocol,
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
    grpcErrorCodes: z.array(grpcCode),
    routes: z.array(routeTemplate),
    tls: z.strictObject({ certFile: z.string(), keyFile: z.string(), clientCaFile: z.string(), reloadInterval: durationOrOff }),
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
    rollbackValue: z.union([z.string(), z.number()]).transform((input, ctx) => {
      const weight = parseWeight(input);
      if (weight.ok) return String(weight.weight);
      ctx.issues.push({ code: 'custom', input, message: weight.reason });
      return z.NEVER;
    }),
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
  rollout: z.strictObject({
    steps: rolloutSteps,
    minStepTime: duration,
  }),
  log: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  }),
});

/** A validated config. Durations are ms. Deep-frozen by the loader. */
export type Config = z.output<typeof configSchema>;

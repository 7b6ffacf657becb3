/**
 * Load profiles: small YAML files in `loadtests/` that say what load to offer, for how long, and what to watch while
 * it runs. Parsed with `yaml`, validated with zod; every problem names the field (`stages.1.rate: ...`). Durations
 * are written `30s`, `250ms` or `2m` (a bare number is ms) and become ms; rates are requests per second.
 *
 * Every run is bounded twice: by `duration` (the stages must fit in it) and by `maxRequests` (default: 1.2 x the
 * requests the stages offer). Targets are loopback only unless the caller allows otherwise (see target.ts).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { DEFAULTS } from '../config/defaults.ts';
import { SERVICE_PLACEHOLDER } from '../config/load.ts';
import { duration } from '../config/schema.ts';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import { DEMO_DEFAULTS } from '../demo/defaults.ts';

/** Every default of a profile, in one place. */
export const PROFILE_DEFAULTS = {
  /** Where the load goes when neither the profile nor `--target` says. */
  target: 'http://127.0.0.1:8080',
  connections: 10,
  /** Per-request timeout, ms. */
  timeoutMs: 10_000,
  /** maxRequests, when left out, is this many times the requests the stages offer. */
  maxRequestsFactor: 1.2,
  /** Timeline sample interval, ms. */
  sampleMs: 1000,
  /** Top-level field of a JSON response body that names the version. */
  versionJsonField: 'version',
  /** Steps of a ramp stage when `steps` is left out. */
  rampSteps: 10,
  /** The demo service's flag (flag.key's default for service demo-api). */
  flagKey: DEFAULTS.flag.key.replaceAll(SERVICE_PLACEHOLDER, DEFAULTS.service),
  rollbackValue: DEFAULTS.flag.rollbackValue,
  /** Canary share the demo fleet's rollout starts at, percent. */
  demoStartPercentage: DEMO_DEFAULTS.startPercentage,
} as const;

const rate = z
  .number()
  .int('must be a whole number of requests per second')
  .positive('must be a positive rate (requests per second)')
  .max(100_000, 'must be at most 100000 rps');
const path = z.string().startsWith('/', 'must start with / (the target gives the scheme, host and port)');
const headerValue = z.union([z.string(), z.number()]).transform(String);

const requestSchema = z.strictObject({
  method: z
    .enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], {
      message: 'must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
    })
    .default('GET'),
  path: path.default('/'),
  headers: z.record(z.string(), headerValue).default({}),
  /** A string is sent as is; a mapping or list is sent as JSON (content-type application/json unless set). */
  body: z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
  /** Relative share of this request in the mix, 1..100. */
  weight: z.number().int('must be a whole number').min(1, 'must be at least 1').max(100, 'must be at most 100').default(1),
});

const stageSchema = z.strictObject({
  duration,
  rate,
  /** Ramp: the stage goes from `rate` to `rampTo` in `steps` equal steps. */
  rampTo: rate.optional(),
  steps: z.number().int('must be a whole number').min(2, 'must be at least 2').max(100, 'must be at most 100').optional(),
});

const profileSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lower-case letters, digits and dashes'),
    description: z.string().default(''),
    /** Origin the load goes to; `--target` overrides it. */
    target: z.string().default(PROFILE_DEFAULTS.target),
    connections: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(1000, 'must be at most 1000')
      .default(PROFILE_DEFAULTS.connections),
    /** Offered rate when there are no stages, rps. */
    rate: rate.optional(),
    /** The whole run's bound; the stages must fit in it. Output: ms. */
    duration,
    /** Hard stop: the run ends after this many responses and errors. */
    maxRequests: z.number().int('must be a whole number').positive('must be positive').optional(),
    /** Per-request timeout. Output: ms. */
    timeout: duration.default(PROFILE_DEFAULTS.timeoutMs),
    stages: z
      .array(stageSchema)
      .min(1, 'must list at least one stage, or leave stages out and set rate')
      .max(50, 'must list at most 50 stages')
      .optional(),
    requests: z
      .array(requestSchema)
      .min(1, 'must list at least one request')
      .max(20, 'must list at most 20 requests')
      .default([{ method: 'GET', path: '/', headers: {}, weight: 1 }]),
    versions: z
      .strictObject({
        /** Response header that names the version (checked first). */
        header: z.string().min(1).toLowerCase().optional(),
        /** Top-level field of a JSON response body that names the version; '' turns it off. */
        jsonField: z.string().default(PROFILE_DEFAULTS.versionJsonField),
      })
      .default({ jsonField: PROFILE_DEFAULTS.versionJsonField }),
    monitor: z
      .strictObject({
        /** Timeline sample interval. Output: ms. */
        every: duration.default(PROFILE_DEFAULTS.sampleMs),
        /** Admin base URLs of sidecars (http://127.0.0.1:9901) whose /status gives the gate's view. */
        sidecars: z.array(z.url({ message: 'must be a URL such as http://127.0.0.1:9901' })).default([]),
        redis: z
          .strictObject({
            url: z
              .string()
              .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
              .optional(),
            flagKey: z.string().min(1).default(PROFILE_DEFAULTS.flagKey),
            rollbackValue: headerValue.default(PROFILE_DEFAULTS.rollbackValue),
          })
          .optional(),
      })
      .default({ every: PROFILE_DEFAULTS.sampleMs, sidecars: [] }),
    /** Start the demo fleet (two demo apps, two sidecars, a router) and send the load to its router. */
    demo: z
      .strictObject({
        /** When v2 regresses, from the start of the load; default halfway through `duration`. Output: ms. */
        regressAt: duration.optional(),
        /** Canary share the rollout starts at, percent. */
        startPercentage: z.number().min(1, 'must be 1..100').max(100, 'must be 1..100').default(PROFILE_DEFAULTS.demoStartPercentage),
      })
      .optional(),
  })
  .superRefine((p, ctx) => {
    if (p.stages === undefined && p.rate === undefined)
      ctx.addIssue({ code: 'custom', path: ['rate'], message: 'is required when there are no stages' });
    p.stages?.forEach((s, i) => {
      if (s.steps !== undefined && s.rampTo === undefined)
        ctx.addIssue({ code: 'custom', path: ['stages', i, 'steps'], message: 'needs rampTo (steps split a ramp)' });
    });
    const stagesMs = (p.stages ?? []).reduce((sum, s) => sum + s.duration, 0);
    if (stagesMs > p.duration) {
      ctx.addIssue({
        code: 'custom',
        path: ['stages'],
        message: `last ${stagesMs / 1000} s but duration is ${p.duration / 1000} s: shorten the stages or raise duration`,
      });
    }
    if (p.demo?.regressAt !== undefined && p.demo.regressAt >= p.duration) {
      ctx.addIssue({
        code: 'custom',
        path: ['demo', 'regressAt'],
        message: `must come before the end of the run (${p.demo.regressAt / 1000} s >= duration ${p.duration / 1000} s)`,
      });
    }
  });

type ParsedProfile = z.output<typeof profileSchema>;

/** One request of the mix, ready for autocannon. */
export interface ProfileRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
  readonly weight: number;
}

/** One autocannon run: a constant offered rate for a time. Ramps are split into such steps. */
export interface LoadStep {
  /** Label for tables and charts, e.g. `stage 2` or `stage 1 step 3/10`. */
  readonly label: string;
  /** Offered rate, rps. */
  readonly rateRps: number;
  /** Length, ms. */
  readonly durationMs: number;
}

/** A validated load profile. Durations in ms, rates in rps. */
export interface LoadProfile {
  readonly name: string;
  readonly description: string;
  readonly target: string;
  readonly connections: number;
  /** The run's bound, ms. */
  readonly durationMs: number;
  /** The run's request bound (responses plus errors). */
  readonly maxRequests: number;
  /** Per-request timeout, ms. */
  readonly timeoutMs: number;
  /** Successive constant-rate steps; their sum fits in durationMs. */
  readonly steps: readonly LoadStep[];
  readonly requests: readonly ProfileRequest[];
  readonly versions: { readonly header: string | undefined; readonly jsonField: string };
  readonly monitor: {
    /** Sample interval, ms. */
    readonly everyMs: number;
    readonly sidecars: readonly string[];
    readonly redis: { readonly url: string | undefined; readonly flagKey: string; readonly rollbackValue: string } | undefined;
  };
  /** Start the demo fleet; v2 regresses at regressAtMs after the load starts (null: never). */
  readonly demo: { readonly regressAtMs: number | null; readonly startPercentage: number } | undefined;
}

/** Splits the profile's stages (or its single rate) into constant-rate steps. */
function stepsOf(p: ParsedProfile): LoadStep[] {
  if (p.stages === undefined) return [{ label: 'steady', rateRps: p.rate!, durationMs: p.duration }];
  const steps: LoadStep[] = [];
  p.stages.forEach((s, i) => {
    if (s.rampTo === undefined) {
      steps.push({ label: `stage ${i + 1}`, rateRps: s.rate, durationMs: s.duration });
      return;
    }
    const n = s.steps ?? PROFILE_DEFAULTS.rampSteps;
    for (let k = 0; k < n; k++) {
      const rateRps = Math.max(1, Math.round(s.rate + ((s.rampTo - s.rate) * k) / (n - 1)));
      steps.push({ label: `stage ${i + 1} step ${k + 1}/${n}`, rateRps, durationMs: s.duration / n });
    }
  });
  return steps;
}

function requestOf(r: ParsedProfile['requests'][number]): ProfileRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(r.headers)) headers[name.toLowerCase()] = value;
  let body: string | undefined;
  if (typeof r.body === 'string') body = r.body;
  else if (r.body !== undefined) {
    body = JSON.stringify(r.body);
    headers['content-type'] ??= 'application/json';
  }
  return { method: r.method, path: r.path, headers, body, weight: r.weight };
}

/** Requests the steps offer in all (each step is capped at its share, see run.ts): sum of rate x seconds, rounded per step. */
export function offeredRequests(steps: readonly LoadStep[]): number {
  return steps.reduce((sum, s) => sum + Math.max(1, Math.round((s.rateRps * s.durationMs) / 1000)), 0);
}

function problemsOf(error: z.ZodError): string[] {
  return error.issues.flatMap((issue) => {
    const where = (keys: PropertyKey[]): string => keys.map(String).join('.') || '(root)';
    if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `${where([...issue.path, k])}: unknown field`);
    return [`${where(issue.path)}: ${issue.message}`];
  });
}

/**
 * Validates a parsed YAML document as a load profile.
 * @param raw the document (from `yaml.parse`)
 * @param source file name for messages
 * @throws CanaryGateError `CG_CONFIG_INVALID` with one `details` line per problem, `field.path: reason`
 */
export function profileFrom(raw: unknown, source: string): LoadProfile {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, `load profile ${source} must hold a mapping`, {
      details: ['(root): must be a mapping of fields'],
    });
  }
  const parsed = profileSchema.safeParse(raw);
  if (!parsed.success) {
    const details = problemsOf(parsed.error);
    throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, `invalid load profile ${source}: ${details.length} problem(s)`, { details });
  }
  const p = parsed.data;
  const steps = stepsOf(p);
  const maxRequests = p.maxRequests ?? Math.max(p.connections, Math.ceil(offeredRequests(steps) * PROFILE_DEFAULTS.maxRequestsFactor));
  return {
    name: p.name,
    description: p.description,
    target: p.target,
    connections: p.connections,
    durationMs: p.duration,
    maxRequests,
    timeoutMs: p.timeout,
    steps,
    requests: p.requests.map(requestOf),
    versions: { header: p.versions.header, jsonField: p.versions.jsonField },
    monitor: {
      everyMs: p.monitor.every,
      sidecars: p.monitor.sidecars,
      redis: p.monitor.redis && {
        url: p.monitor.redis.url,
        flagKey: p.monitor.redis.flagKey,
        rollbackValue: p.monitor.redis.rollbackValue,
      },
    },
    demo: p.demo && { regressAtMs: p.demo.regressAt ?? p.duration / 2, startPercentage: p.demo.startPercentage },
  };
}

/**
 * Parses a profile's YAML text.
 * @throws CanaryGateError `CG_CONFIG_UNREADABLE` when the text is not YAML (with the line), `CG_CONFIG_INVALID` as {@link profileFrom}
 */
export function parseProfile(text: string, source: string): LoadProfile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError ? ` at line ${err.linePos?.[0]?.line ?? '?'}` : '';
    throw new CanaryGateError(
      ErrorCodes.CONFIG_UNREADABLE,
      `load profile ${source} is not valid YAML${where}: ${(err as Error).message.split('\n')[0]}`,
      { cause: err },
    );
  }
  return profileFrom(raw, source);
}

/**
 * Reads and validates a profile file.
 * @throws CanaryGateError `CG_CONFIG_UNREADABLE` when the file cannot be read or is not YAML; `CG_CONFIG_INVALID`
 */
export function loadProfile(file: string): LoadProfile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CanaryGateError(ErrorCodes.CONFIG_UNREADABLE, `cannot read load profile ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseProfile(text, file);
}

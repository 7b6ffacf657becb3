/**
 * The decision record as read back from Redis (the latch, the dry-run latch, an audit stream entry): validated in full
 * with zod before anything latches on it, because anyone who can write to Redis can write that key. A record that is
 * too long, not JSON, or not of this shape is `corrupt`; a valid one keeps only the fields below, each capped, so
 * what `/status`, the logs and `canary-gate explain` show of it is bounded.
 *
 * Numbers may be `null` in a record: JSON has no NaN (a figure of an empty window) and JSON.stringify writes null;
 * they are read back as NaN, which every printer shows as `-`.
 */
import { z } from 'zod';
import { SEQUENTIAL_CHECKS } from '../core/checks.ts';
import type { RollbackDecision } from '../core/controller.ts';
import { OUTCOME_ORDER } from '../core/verdict.ts';

/** Longest decision record read, bytes (a record with every check and its evidence is 5-10 KB). Longer: corrupt. */
export const MAX_DECISION_BYTES = 64 * 1024;

/** Longest reason of a decision or a check, characters. */
const MAX_REASON = 4000;

const num = z
  .number()
  .nullable()
  .transform((v) => v ?? Number.NaN);
const count = z.number().int().min(0);
const text = (max: number) => z.string().max(max);

const windowEvidence = z.object({
  rule: text(1000),
  count: num,
  requests: num,
  latencyThresholdMs: num.nullable(),
  tolerated: num,
  lowerBound: num,
  alpha: num,
  neededRequests: num.nullable(),
});

const sequentialEvidence = z.object({
  method: z.literal('cusum'),
  rule: text(1000),
  statistic: num,
  failThreshold: num,
  // Records written before the field existed read as NaN ("-").
  falseAlarmRate: num.optional().transform((v) => v ?? Number.NaN),
  warnThreshold: num,
  p0: num,
  p1: num,
  observedRate: num,
  trialsPerS: num,
  latencyThresholdMs: z.number().nullable(),
  secondsToDecision: z.number().nullable(),
  secondsToDetect: z.number().nullable(),
  underpowered: z.boolean(),
  risingSinceMs: z.number().nullable(),
  aboveSinceMs: z.number().nullable(),
  canaryRequests: num,
});

const checkResult = z.object({
  check: z.enum([...SEQUENTIAL_CHECKS, 'no_data', 'traffic_share']),
  outcome: z.enum(OUTCOME_ORDER),
  observed: num,
  threshold: num,
  unit: z.enum(['ms', 'ratio']),
  reason: text(MAX_REASON),
  evidence: z.union([sequentialEvidence, windowEvidence]).optional(),
});

const figures = z.object({
  version: text(100),
  requests: num,
  errors: num,
  errorRatio: num,
  p50Ms: num,
  p95Ms: num,
  p99Ms: num,
  requestsPerSecond: num,
  pods: num,
});

/** The decision record's schema: every field `canary-gate explain`, `/status` and the evaluator read. */
export const decisionSchema = z.object({
  state: z.literal('rolled_back'),
  trigger: z.enum(['automatic', 'manual']),
  reason: text(MAX_REASON),
  checks: z.array(checkResult).max(32),
  baseline: figures.nullable(),
  canary: figures.nullable(),
  consecutiveBreaches: count,
  atMs: z.number().int().min(0).max(8.64e15),
  at: text(64),
  by: text(300),
  configHash: z
    .string()
    .regex(/^[0-9a-f]{16}$/)
    .optional(),
});

/**
 * Parses a stored decision record.
 * @param text the key's or the audit entry's value
 * @returns the decision, or null when it is longer than {@link MAX_DECISION_BYTES}, not JSON or not of the schema
 *   (never throws)
 */
export function parseDecision(text: string): RollbackDecision | null {
  if (Buffer.byteLength(text) > MAX_DECISION_BYTES) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = decisionSchema.safeParse(raw);
  return parsed.success ? (parsed.data as RollbackDecision) : null;
}

/** Cuts a text to at most `max` characters. */
const cut = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

/**
 * The decision as it is stored: every text within the schema's caps, and within {@link MAX_DECISION_BYTES} (the
 * checks' evidence is left out when the whole would not fit), so that a decision this sidecar writes always reads
 * back as one.
 * @returns the JSON text to store
 */
export function storedDecision(decision: RollbackDecision): string {
  const fitted: RollbackDecision = {
    ...decision,
    reason: cut(decision.reason, MAX_REASON),
    by: cut(decision.by, 300),
    checks: decision.checks.slice(0, 32).map((c) => ({
      ...c,
      reason: cut(c.reason, MAX_REASON),
      ...(c.evidence === undefined ? {} : { evidence: { ...c.evidence, rule: cut(c.evidence.rule, 1000) } }),
    })),
  };
  const text = JSON.stringify(fitted);
  if (Buffer.byteLength(text) <= MAX_DECISION_BYTES) return text;
  return JSON.stringify({
    ...fitted,
    checks: fitted.checks.map(({ evidence: _evidence, ...c }) => ({ ...c, reason: cut(c.reason, 500) })),
  });
}

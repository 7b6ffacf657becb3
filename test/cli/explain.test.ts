/**
 * `canary-gate explain` against a real Redis: the latched decision written by the fenced rollback script, and one
 * read back from the audit stream by id, printed as a table with every check's evidence; nothing latched: exit 1.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { explainDecision } from '../../src/core/explain.ts';
import { step, initialState, type RollbackDecision } from '../../src/core/controller.ts';
import { createHistogram, quantileUs, recordLatency } from '../../src/core/histogram.ts';
import type { SlotCounts } from '../../src/core/window.ts';
import { EMPTY_DETECTOR } from '../../src/core/detector.ts';
import { DEFAULT_JUDGE_POLICY, evaluateWindow, judge, type JudgePolicy } from '../../src/core/judge.ts';
import { isSequential } from '../../src/core/verdict.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import type { WindowSnapshot } from '../../src/core/window.ts';
import { RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { client, dropService, REDIS_URL, uniqueService } from '../helpers/redis.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const service = uniqueService('explain');
const flagKey = `cg-explain:flag:{${service}}`;
const env = {
  PATH: process.env.PATH ?? '',
  REDIS_URL,
  SERVICE_NAME: service,
  CANARY_GATE_REDIS_KEY_PREFIX: 'cg-explain',
  CANARY_GATE_FLAG_KEY: flagKey,
};
const run = (args: string[]) => spawnSync(process.execPath, [MAIN, 'explain', ...args], { encoding: 'utf8', env, timeout: 30_000 });

/** A window of `requests` requests at `latencyMs` each (a little spread), `errors` of them errors. */
function window(version: string, requests: number, errors: number, latencyMs: number): WindowSnapshot {
  const h = createHistogram();
  for (let i = 0; i < requests; i++) recordLatency(h, latencyMs * 1000 * (0.8 + (0.4 * i) / requests));
  return {
    version,
    requests,
    errors,
    errorRatio: errors / requests,
    p50Us: quantileUs(h, 0.5),
    p95Us: quantileUs(h, 0.95),
    p99Us: quantileUs(h, 0.99),
    requestsPerSecond: requests / 60,
    windowMs: 60_000,
    pods: 2,
    slotsReported: 12,
    quantileUs: (q) => quantileUs(h, q),
  };
}

const WINDOW_METHOD: JudgePolicy = { ...DEFAULT_JUDGE_POLICY, statistics: { ...DEFAULT_JUDGE_POLICY.statistics, method: 'window' } };

/** The decision the controller makes after three failing evaluations of a canary with 30 % errors (window method). */
function decide(): RollbackDecision {
  const verdict = judge(WINDOW_METHOD, window('v1', 5000, 10, 40), window('v2', 400, 120, 45), 1_700_000_000_000);
  let state = initialState(0);
  let decision: RollbackDecision | null = null;
  for (let i = 0; i < 3; i++) ({ state, decision } = step({ consecutiveBreaches: 3 }, state, verdict, 'pod-a'));
  return { ...decision!, configHash: '0123456789abcdef' };
}

/**
 * The decision of the default (sequential) method: slots of 1/12 of each window, the canary at 9 % errors from the
 * sixth slot on; evaluated slot by slot until the controller rolls back.
 */
function decideSequential(): { decision: RollbackDecision; slot: number } {
  const slotMs = 5000;
  const slot = (requests: number, errors: number, slowShare: number): SlotCounts => ({
    requests,
    errors,
    countAbove: () => Math.round(requests * slowShare),
  });
  let detector = EMPTY_DETECTOR;
  let state = initialState(0);
  for (let last = 0; last < 60; last++) {
    const bad = (i: number): boolean => i >= 5;
    const slots = {
      firstSlot: last - 11,
      lastSlot: last,
      slotMs,
      slotsOf: (i: number) => ({ baseline: slot(417, 1, 0.05), canary: slot(33, bad(i) ? 3 : 0, 0.05) }),
    };
    const evaluated = evaluateWindow(DEFAULT_JUDGE_POLICY, detector, window('v1', 5000, 10, 40), window('v2', 400, 120, 45), slots, null);
    detector = evaluated.detector;
    const next = step({ consecutiveBreaches: 1 }, state, evaluated.verdict, 'pod-a');
    state = next.state;
    if (next.decision !== null) return { decision: next.decision, slot: last };
  }
  throw new Error('no rollback in 60 slots');
}

const redis = await client();
afterAll(async () => {
  await dropService(redis, 'cg-explain', service, flagKey);
  redis.disconnect();
});

describe('canary-gate explain', () => {
  it('says so and exits 1 when nothing is latched', () => {
    const r = run([]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`no rollback decision for ${service} is latched`);
  });

  it('prints the latched decision: header, both versions, every check with its evidence, each reason', async () => {
    const decision = decide();
    const flags = new RedisFlagStore(redis, serviceKeys('cg-explain', service), { flagKey, rollbackValue: '0', auditMaxLen: 100 });
    expect(await flags.rollback(decision, 0)).toBe('written');
    const r = run([]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(explainDecision(decision));
    expect(r.stdout).toMatch(/^automatic rollback at .* by pod-a \(config 0123456789abcdef\)$/m);
    expect(r.stdout).toMatch(/^check\s+result\s+observed\s+threshold\s+counted\s+lower bound\s+tolerated\s+alpha\s+needs$/m);
    expect(r.stdout).toMatch(/^error_ratio_absolute\s+fail\s+30\.00 %\s+5\.00 %\s+120\/400/m);
    expect(r.stdout).toMatch(/^requests\s+5000\s+400$/m);
    for (const c of decision.checks) expect(r.stdout).toContain(`${c.check}: ${c.evidence!.rule}. ${c.reason}`);

    const [entry] = await redis.xrange(serviceKeys('cg-explain', service).audit, '-', '+');
    const byId = run(['--id', entry![0]]);
    expect(byId.status).toBe(0);
    expect(byId.stdout).toBe(r.stdout);
    expect(run(['--id', '1-0']).status).toBe(1);
  });

  it("shows each sequential check's statistic, its thresholds and the time it took to decide", () => {
    const { decision, slot } = decideSequential();
    expect(slot).toBeGreaterThan(5);
    const text = explainDecision(decision);
    expect(text).toMatch(
      /^check\s+result\s+observed\s+threshold\s+statistic\s+fail at\s+false alarms\s+warn at\s+rate\s+healthy\s+regressed\s+decided in$/m,
    );
    const relative = decision.checks.find((c) => c.check === 'error_ratio_relative')!;
    expect(relative.outcome).toBe('fail');
    const e = relative.evidence;
    expect(isSequential(e) && e.statistic >= e.failThreshold && e.risingSinceMs !== null && e.aboveSinceMs !== null).toBe(true);
    const decidedS = isSequential(e) ? (e.aboveSinceMs! - e.risingSinceMs!) / 1000 : Number.NaN;
    expect(text).toMatch(new RegExp(`^error_ratio_relative\\s+fail\\s+.*\\s${Math.round(decidedS)} s$`, 'm'));
    // The fail threshold's share of the false-rollback rate, next to it.
    const [fail, rate] = isSequential(e) ? [e.failThreshold, e.falseAlarmRate] : [Number.NaN, Number.NaN];
    expect(rate).toBeGreaterThan(0);
    expect(text).toMatch(new RegExp(`^error_ratio_relative\\s+fail\\s+.*\\s${fail.toFixed(2)}\\s+${(rate * 100).toFixed(2)} %\\s`, 'm'));
    expect(text).toMatch(/^latency_p95_relative\s+pass\s+/m);
    expect(text).toContain(`error_ratio_relative: ${relative.evidence!.rule}. ${relative.reason}`);
  });
});

/**
 * Recording, replay and tune: synthetic recordings made with the sidecar's own recorder and payload encoder (seeded
 * traffic), a live recording of sidecars whose canary fails, and the CLI commands on them.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lognormal from '@stdlib/random-base-lognormal';
import randu from '@stdlib/random-base-randu';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildSidecar } from '../../src/app/sidecar.ts';
import { judgePolicyOf } from '../../src/config/policy.ts';
import { loadConfig } from '../../src/config/load.ts';
import { CanaryGateError } from '../../src/core/errors.ts';
import { initHistograms } from '../../src/core/histogram.ts';
import { encodeSlotPayload } from '../../src/core/slot-payload.ts';
import { SlotRecorder } from '../../src/core/slot-recorder.ts';
import { recordFleet } from '../../src/replay/record.ts';
import { parseRecording, readRecording, type Recording, recordingLine } from '../../src/replay/recording.ts';
import { replay, type ReplayPolicy } from '../../src/replay/replay.ts';
import { tune } from '../../src/replay/tune.ts';
import { client, dropService, REDIS_URL, silent, uniqueService } from '../helpers/redis.ts';
import { startUpstream } from '../helpers/upstream.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const dir = mkdtempSync(join(tmpdir(), 'cg-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});

interface Synthetic {
  readonly slots: number;
  /** Requests per slot per version. */
  readonly baselinePerSlot: number;
  readonly canaryPerSlot: number;
  readonly errorRatio: number;
  /** From this slot on (0-based) the canary has `regressedErrorRatio` errors and `regressedSlowdown` x latency. */
  readonly regressAt?: number;
  readonly regressedErrorRatio?: number;
  readonly regressedSlowdown?: number;
  readonly flag?: number;
  /** From this slot on (0-based) the flag reads `step.flag` and the canary gets `step.canaryPerSlot` requests. */
  readonly step?: { readonly at: number; readonly flag: number; readonly canaryPerSlot: number; readonly baselinePerSlot: number };
  readonly seed: number;
}

/** A recording of 5 s slots from one baseline and one canary pod, made with SlotRecorder and encodeSlotPayload. */
function synthetic(name: string, s: Synthetic): string {
  initHistograms();
  const slotMs = 5000;
  const first = 360_000_000;
  const latency = lognormal.factory(Math.log(40_000), 0.4, { seed: s.seed });
  const uniform = randu.factory({ seed: s.seed + 1 });
  const lines = [recordingLine({ kind: 'meta', service: 'synthetic', baseline: 'v1', canary: 'v2', slotMs, slots: 12 })];
  for (let i = 0; i < s.slots; i++) {
    const slot = first + i;
    const regressed = s.regressAt !== undefined && i >= s.regressAt;
    const stepped = s.step !== undefined && i >= s.step.at;
    for (const [version, n] of [
      ['v1', stepped ? s.step!.baselinePerSlot : s.baselinePerSlot],
      ['v2', stepped ? s.step!.canaryPerSlot : s.canaryPerSlot],
    ] as const) {
      const recorder = new SlotRecorder(slotMs, slot * slotMs);
      const bad = version === 'v2' && regressed;
      const errorRatio = bad ? (s.regressedErrorRatio ?? s.errorRatio) : s.errorRatio;
      for (let r = 0; r < n; r++) recorder.record(latency() * (bad ? (s.regressedSlowdown ?? 1) : 1), uniform() < errorRatio);
      lines.push(
        recordingLine({ kind: 'slot', version, slot, pod: `${version}-a`, payload: encodeSlotPayload(recorder.seal((slot + 1) * slotMs)) }),
      );
    }
    lines.push(recordingLine({ kind: 'flag', slot, percent: stepped ? s.step!.flag : (s.flag ?? 1) }));
  }
  const path = join(dir, name);
  writeFileSync(path, lines.join(''));
  return path;
}

const defaults = loadConfig({ env: {} });
const base: ReplayPolicy = { judge: judgePolicyOf(defaults), consecutiveBreaches: 3, slots: 12 };
const run = (args: string[]) =>
  spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' }, timeout: 60_000 });

// 1 % share of 100 rps for 5 minutes (60 slots): 495 baseline and 5 canary requests per slot, 0.5 % errors on both.
const lowTraffic = { slots: 60, baselinePerSlot: 495, canaryPerSlot: 5, errorRatio: 0.005 };
const healthyFiles = [1, 2, 3, 4].map((seed) => synthetic(`healthy-${seed}.ndjson`, { ...lowTraffic, seed }));
const regressedFiles = [5, 6].map((seed) =>
  synthetic(`regressed-${seed}.ndjson`, {
    ...lowTraffic,
    canaryPerSlot: 25,
    flag: 5,
    baselinePerSlot: 475,
    regressAt: 20,
    regressedErrorRatio: 0.3,
    seed,
  }),
);

describe('replay', () => {
  it('is deterministic, leaves a healthy recording alone and rolls back a regressed one after the regression, saying why', async () => {
    const healthy = await readRecording(healthyFiles[0]!);
    const first = replay(healthy, base);
    expect(replay(healthy, base)).toEqual(first);
    expect(first.decision).toBeNull();
    expect(first.evaluations).toBe(60);

    const result = replay(await readRecording(regressedFiles[0]!), base);
    expect(result.decision).not.toBeNull();
    expect(result.rollbackAfterS).toBeGreaterThan(20 * 5);
    expect(result.decision!.reason).toMatch(/^3 consecutive failing evaluations: .*error_ratio/);
    expect(result.transitions.at(-1)).toMatch(/ROLLBACK/);
  });

  it('holds the traffic share against the weight only over windows that ran under it, as the evaluator does', async () => {
    // 5 % of 500 requests per slot, then the rollout steps to 50 % at slot 30 and the router follows: the 12 windows that
    // straddle the step mix both weights, which is no sample-ratio mismatch. A router that ignores the step is one.
    const before = { slots: 60, baselinePerSlot: 475, canaryPerSlot: 25, errorRatio: 0.005, flag: 5, seed: 11 };
    const followed = replay(
      await readRecording(
        synthetic('step-followed.ndjson', { ...before, step: { at: 30, flag: 50, canaryPerSlot: 250, baselinePerSlot: 250 } }),
      ),
      base,
    );
    expect(followed.transitions.join('\n')).not.toMatch(/sample-ratio mismatch/);
    expect(followed.decision).toBeNull();
    const ignored = replay(
      await readRecording(
        synthetic('step-ignored.ndjson', { ...before, step: { at: 30, flag: 50, canaryPerSlot: 25, baselinePerSlot: 475 } }),
      ),
      base,
    );
    expect(ignored.transitions.join('\n')).toMatch(
      /sample-ratio mismatch: the canary has 5\.\d+ % of \d+ requests, the flag gives it 50 %/,
    );
  });

  it('skips and counts a corrupt payload, and names the line of a broken recording', () => {
    const text = `${recordingLine({ kind: 'meta', service: 's', baseline: 'v1', canary: 'v2', slotMs: 5000, slots: 12 })}${recordingLine({ kind: 'slot', version: 'v2', slot: 7, pod: 'p', payload: 'garbage' })}`;
    expect(replay(parseRecording('x', text), base).corrupt).toBe(1);
    expect(() => parseRecording('rec.ndjson', `${text}{"kind":"slot","version":"v1"}\n`)).toThrow(
      /^rec\.ndjson:3: a slot line needs version, slot \(integer\), pod and payload$/,
    );
    expect(() => parseRecording('rec.ndjson', '{"kind":"slot"}\n')).toThrow(CanaryGateError);
    expect(() => parseRecording('rec.ndjson', 'nope\n')).toThrow(/rec\.ndjson:1: not JSON/);
  });
});

describe('tune', () => {
  it('shows the thresholds-only rule rolling back healthy low-traffic canaries, and the default policy neither false nor missed', async () => {
    const healthy: Recording[] = await Promise.all(healthyFiles.map(readRecording));
    const regressed: Recording[] = await Promise.all(regressedFiles.map(readRecording));
    const lowMinimum: ReplayPolicy = { ...base, judge: { ...base.judge, minSamples: 50 } };
    const rows = tune(lowMinimum, healthy, regressed);
    const row = (statistics: boolean, consecutiveBreaches: number) =>
      rows.find(
        (r) =>
          r.statistics === statistics &&
          r.relativeP95 === 1.5 &&
          r.relativeErrorRatio === 2 &&
          r.consecutiveBreaches === consecutiveBreaches,
      )!;
    expect(row(false, 1).falseRollbacks).toBeGreaterThan(0);
    expect(row(true, 3)).toMatchObject({ falseRollbacks: 0, missedRollbacks: 0 });
    expect(row(true, 3).medianDetectionS).toBeGreaterThan(100);
    expect(rows[0]!.falseRollbacks + rows[0]!.missedRollbacks).toBe(0);
  }, 120_000);

  it('runs from the command line and prints the table', () => {
    const r = run(['tune', '--healthy', healthyFiles[0]!, '--regressed', regressedFiles[0]!]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^statistics\s+p95 x\s+errors x\s+streak\s+false rollbacks \(of 1\)\s+missed \(of 1\)\s+median detection$/m);
    expect(r.stdout.trim().split('\n')).toHaveLength(1 + 54);
  });
});

describe('record, then replay from the command line', () => {
  it('records a live fleet whose canary fails, and the replay of that recording rolls it back', async () => {
    const service = uniqueService('record');
    const redis = await client();
    cleanups.push(async () => {
      await dropService(redis, 'cg-rec', service, `cg-rec:flag:{${service}}`);
      redis.disconnect();
    });
    await redis.set(`cg-rec:flag:{${service}}`, '50');
    const env = {
      SERVICE_NAME: service,
      REDIS_URL,
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      CANARY_GATE_PROXY_HOST: '127.0.0.1',
      CANARY_GATE_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_REDIS_KEY_PREFIX: 'cg-rec',
      CANARY_GATE_FLAG_KEY: `cg-rec:flag:{${service}}`,
      CANARY_GATE_WINDOW_SLOT: '250ms',
      CANARY_GATE_WINDOW_SLOTS: '8',
      CANARY_GATE_EVALUATION_DELAY: '100ms',
      CANARY_GATE_EVALUATION_ENABLED: 'false',
      CANARY_GATE_LOG_LEVEL: 'silent',
    };
    const ok = await startUpstream();
    const failing = await startUpstream((_req, res) => void res.writeHead(503).end('x'));
    cleanups.push(
      () => ok.close(),
      () => failing.close(),
    );
    const proxies: string[] = [];
    for (const [pod, version, upstream] of [
      ['a', 'v1', ok.url],
      ['b', 'v2', failing.url],
    ] as const) {
      const sidecar = buildSidecar(loadConfig({ env: { ...env, POD_NAME: pod, POD_VERSION: version, UPSTREAM_URL: upstream } }), {
        logger: silent,
        adminToken: '',
      });
      const { proxyPort } = await sidecar.start();
      cleanups.push(() => sidecar.destroy());
      proxies.push(`http://127.0.0.1:${proxyPort}`);
    }
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) await (await request(`${proxies[i % 2]}/`)).body.dump();
    })();
    const out = join(dir, 'live.ndjson');
    const counts = await recordFleet(loadConfig({ env }), { out, durationMs: 3000, logger: silent });
    loading = false;
    await load;
    expect(counts.slots).toBeGreaterThan(10);
    expect(counts.flags).toBeGreaterThan(5);
    const recording = await readRecording(out);
    expect(recording.flags.every((f) => f.percent === 50)).toBe(true);

    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, 'window:\n  slots: 8\npolicy:\n  minSamples: 20\n');
    const r = run(['replay', '--policy', policyFile, out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ROLLBACK: a failing evaluation: [a-z0-9_]+: canary /);
    expect(r.stdout).toMatch(/^v2: rolled back after \d+\.\d s \(slot \d+\)$/m);
    expect(run(['replay', join(dir, 'missing.ndjson')]).status).toBe(2);
  });
});

/**
 * Every benchmark at a tiny size (BENCH_SMOKE=1), so that none rots: each must run to the end and write a result with
 * the machine, the parameters and figures of the expected shape, and the bench/README.md tables must render from them.
 * Figures are not asserted: a smoke run measures nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchTables, decisionQualityTable } from '../../bench/readme-table.ts';

const ROOT = join(import.meta.dirname, '../..');
const results = mkdtempSync(join(tmpdir(), 'cg-bench-smoke-'));
afterAll(() => rmSync(results, { recursive: true, force: true }));

const expected: Record<string, string[]> = {
  'recording-cost': ['contender', 'nsPerRequest'],
  'p95-accuracy': ['distribution', 'exactP95Ms', 'hdrP95Ms', 'hdrRelativeError', 'prometheusP95Ms', 'prometheusRelativeError'],
  'fleet-scale': ['pods', 'firstReadMs', 'steadyReadMs', 'bytesPerPodPerSlot'],
  'proxy-overhead': [
    'contender',
    'rps',
    'ratioToDirect',
    'cpuUsPerRequest',
    'rssIdleMiB',
    'rssAfterLoadMiB',
    ...[1000, 2000].flatMap((rate) => [
      `p50MsAt${rate}`,
      `p99MsAt${rate}`,
      `p999MsAt${rate}`,
      `addedP99MsAt${rate}`,
      `addedP99MsVsBareAt${rate}`,
      `cpuUsPerRequestAt${rate}`,
      `lateSendsAt${rate}`,
      `errorsAt${rate}`,
    ]),
  ],
  'detection-latency': ['canaryRps', 'policy', 'secondsToFlag'],
  memory: ['requests', 'rssMiB'],
  'decision-quality': ['scenario', 'sharePercent', 'relativeP95', 'contender', 'rollouts'],
};

describe('benchmarks at smoke size', () => {
  it.each(Object.keys(expected))(
    '%s runs and writes its result',
    (name) => {
      const r = spawnSync(process.execPath, [join(ROOT, 'bench', `${name}.ts`)], {
        encoding: 'utf8',
        env: { ...process.env, BENCH_SMOKE: '1', BENCH_RESULTS_DIR: results },
        timeout: 120_000,
      });
      expect(r.status, r.stderr).toBe(0);
      const result = JSON.parse(readFileSync(join(results, `${name}.json`), 'utf8'));
      expect(result).toMatchObject({ name, smoke: true, machine: { cores: expect.any(Number), node: process.version } });
      expect(result.figures.length).toBeGreaterThan(0);
      for (const figure of result.figures) expect(Object.keys(figure)).toEqual(expect.arrayContaining(expected[name]!));
      if (name === 'proxy-overhead') {
        // Every contender answered every request, and every proxy's CPU and memory were read from /proc.
        for (const figure of result.figures) {
          expect(figure, figure.contender).toMatchObject({ saturationErrors: 0, errorsAt1000: 0, errorsAt2000: 0 });
          if (figure.contender !== 'direct') expect(figure.rssIdleMiB, figure.contender).toBeGreaterThan(0);
        }
        expect(result.figures.map((f: { contender: string }) => f.contender)).toEqual([
          'direct',
          'canary-gate',
          'bare undici proxy',
          'nginx',
          'HAProxy',
        ]);
        // The targets are computed from the figures: one per target, each met or not, or inconclusive with a reason
        // (a smoke run on a busy machine may be).
        expect(result.targets).toHaveLength(4);
        for (const t of result.targets) {
          if (t.met === null) expect(t.inconclusive, t.target).toMatch(/late/);
          else expect(typeof t.met, t.target).toBe('boolean');
        }
        expect(result.targets[0].met).toBe(result.targets[0].canaryGate <= 80);
      }
    },
    150_000,
  );

  it('renders the bench/README.md tables from the results, marked as smoke size', () => {
    const tables = `${benchTables(results)}\n${decisionQualityTable(results)}`;
    for (const name of Object.keys(expected)) expect(tables).toContain(`**${name}**`);
    expect(tables).toContain('SMOKE SIZE: not a measurement');
  });
});

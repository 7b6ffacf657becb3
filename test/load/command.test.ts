/** The `load` subcommand on a commander program, as main.ts registers it: files written, tables printed, errors. */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { CanaryGateError, ErrorCodes } from '../../src/core/errors.ts';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { progressLine, registerLoadCommand, resolveProfile } from '../../src/load/command.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

let upstream: Upstream;
let dir: string;

beforeAll(async () => {
  upstream = await startUpstream();
  dir = await mkdtemp(join(tmpdir(), 'cg-load-cmd-'));
});

afterAll(async () => {
  await upstream?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

/** Runs `canary-gate load ...args` in process; resolves to what it printed on stdout. */
async function load(...args: string[]): Promise<string> {
  const program = new Command('canary-gate').exitOverride();
  registerLoadCommand(program);
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  await program.parseAsync(['load', ...args], { from: 'user' });
  return out;
}

it('runs a profile file, prints the table and writes both reports', async () => {
  const file = join(dir, 'mini.yaml');
  await writeFile(file, 'name: mini\nconnections: 2\nrate: 10\nduration: 1s\n');
  const out = await load(file, '--target', upstream.url, '--out', join(dir, 'out'), '--no-progress');
  expect(out).toMatch(/^load profile mini: 1 step\(s\), 1 s at most, 12 requests at most$/m);
  expect(out).toMatch(/^total +10 +\d+ /m);
  const written = (await readdir(join(dir, 'out'))).sort();
  expect(written.map((f) => f.replace(/-\d{4}-.*\./, '-TIME.'))).toEqual(['mini-TIME.html', 'mini-TIME.json']);
  expect(out).toContain(`wrote ${join(dir, 'out', written[0]!)}`);
  expect(process.exitCode).toBeUndefined();
});

it('exits 1 with --expect-rollback when no flag turned', async () => {
  const file = join(dir, 'expect.yaml');
  await writeFile(file, 'name: expect\nconnections: 1\nrate: 5\nduration: 500ms\n');
  await load(file, '--target', upstream.url, '--out', join(dir, 'out2'), '--no-progress', '--expect-rollback');
  expect(process.exitCode).toBe(1);
});

it('throws CG_CONFIG_INVALID naming the field for a bad profile, before any load', async () => {
  const file = join(dir, 'bad.yaml');
  await writeFile(file, 'name: bad\nrate: fast\nduration: 1s\n');
  const err = await load(file, '--target', upstream.url).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CanaryGateError);
  expect((err as CanaryGateError).code).toBe(ErrorCodes.CONFIG_INVALID);
  expect((err as CanaryGateError).details).toEqual([expect.stringMatching(/^rate: /)]);
});

it('refuses a target off loopback unless --allow-non-loopback', async () => {
  const err = await load('steady', '--target', 'http://192.0.2.10:8080').catch((e: unknown) => e);
  expect((err as CanaryGateError).details[0]).toMatch(/^target: 192\.0\.2\.10 is not a loopback address/);
});

it('sends a profile without a demo section to a demo fleet with --demo, v2 healthy, the flag watched', async () => {
  const redis = await startRedisServer();
  const saved = process.env.REDIS_URL;
  process.env.REDIS_URL = redis.url; // a private Redis: the fleet clears its service's keys when it starts
  try {
    const file = join(dir, 'plain.yaml');
    await writeFile(file, 'name: plain\nrate: 50\nduration: 3s\nrequests:\n  - { path: /api/items }\n');
    const out = await load(file, '--demo', '--out', dir, '--no-progress');
    expect(out).toMatch(/^v1 +\d+/m);
    expect(out).toMatch(/^v2 +\d+/m);
    expect(out).toContain('flag feature:{demo-api}:v2_traffic_percentage: 10 at start, 10 at end');
    expect(out).toMatch(/demo: v2 did not regress; router sent v1 \d+, v2 [1-9]\d*/);
    await expect(load(file, '--demo', '--target', upstream.url, '--out', dir)).rejects.toThrow(/starts its own demo fleet/);
  } finally {
    if (saved === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = saved;
    await redis.stop();
  }
});

it('finds bundled profiles by name', () => {
  expect(resolveProfile('spike')).toMatch(/loadtests\/spike\.yaml$/);
  expect(resolveProfile('./my/own.yaml')).toBe('./my/own.yaml');
});

it('draws a progress bar over the run', () => {
  const line = progressLine(
    {
      tS: 15,
      offeredRps: 100,
      achievedRps: 99,
      versions: { all: { requests: 99, errors: 0, errorRatio: 0, p50Ms: 10, p95Ms: 21.37, p99Ms: 30, maxMs: 40 } },
      flag: '10',
    },
    { elapsedS: 15, durationS: 60, step: 'steady', offeredRps: 100, requests: 1500, maxRequests: 7200 },
    20,
  );
  expect(line).toBe('[=====               ]  25 % 15/60 s steady 100 rps 1500 req p95 21.4 ms flag 10');
});

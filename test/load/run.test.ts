/**
 * A real load run: a tiny profile against a real HTTP server on loopback that answers as two versions, with the
 * flag in the real Redis; then the JSON result and the HTML report on disk.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProfile } from '../../src/load/profile.ts';
import { writeReports } from '../../src/load/report.ts';
import { runProfile, type LoadResult } from '../../src/load/run.ts';
import { summaryTable } from '../../src/load/table.ts';
import { client, REDIS_URL, uniqueService } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import type { Redis } from 'ioredis';

/** Answers every other request as v2 (slower, every 4th of its answers a 500) and the rest as v1. */
function twoVersions(seen: { requests: string[]; bodies: string[] }) {
  let n = 0;
  return (req: IncomingMessage, res: ServerResponse): void => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.requests.push(`${req.method} ${req.url}`);
      if (req.method === 'POST') seen.bodies.push(body);
      const i = n++;
      const v2 = i % 2 === 1;
      const status = v2 && i % 8 === 1 ? 500 : 200;
      setTimeout(
        () => {
          res.writeHead(status, { 'content-type': 'application/json', ...(v2 ? {} : { 'x-app-version': 'v1' }) });
          res.end(JSON.stringify(v2 ? { version: 'v2' } : { ok: true }));
        },
        v2 ? 25 : 1,
      );
    });
  };
}

describe('a short run against a real server', () => {
  let upstream: Upstream;
  let redis: Redis;
  let out: string;
  let result: LoadResult;
  const seen = { requests: [] as string[], bodies: [] as string[] };
  const flagKey = `${uniqueService('load-flag')}:flag`;

  beforeAll(async () => {
    upstream = await startUpstream(twoVersions(seen));
    redis = await client();
    out = await mkdtemp(join(tmpdir(), 'cg-load-'));
    await redis.set(flagKey, '10');
    const profile = parseProfile(
      [
        'name: tiny',
        'connections: 4',
        'duration: 3s',
        'maxRequests: 1000',
        'stages:',
        '  - { duration: 1s, rate: 20 }',
        '  - { duration: 1500ms, rate: 40 }',
        'requests:',
        '  - { method: GET, path: /items, weight: 3 }',
        '  - { method: POST, path: /items, body: { name: widget }, weight: 1 }',
        'versions: { header: x-app-version, jsonField: version }',
        'monitor:',
        '  every: 500ms',
        `  redis: { flagKey: "${flagKey}", rollbackValue: "0" }`,
      ].join('\n'),
      'tiny.yaml',
    );
    const rollbackLater = setTimeout(() => void redis.set(flagKey, '0'), 1200);
    try {
      result = await runProfile(profile, { target: upstream.url, redisUrl: REDIS_URL });
    } finally {
      clearTimeout(rollbackLater);
    }
  });

  afterAll(async () => {
    await redis?.del(flagKey);
    redis?.disconnect();
    await upstream?.close();
    await rm(out, { recursive: true, force: true });
  });

  it('runs every step to its end and counts what the server answered', () => {
    expect(result.stopReason).toBe('completed');
    expect(result.steps.map((s) => [s.label, s.offeredRps])).toEqual([
      ['stage 1', 20],
      ['stage 2', 40],
    ]);
    expect(result.totals.requests).toBe(result.steps.reduce((sum, s) => sum + s.requests, 0));
    // Each step sends at most rate x its length (20 x 1 s, 40 x 1.5 s), and holds its length even when done early.
    const [one, two] = result.steps;
    expect(one!.requests).toBeLessThanOrEqual(20);
    expect(one!.requests).toBeGreaterThanOrEqual(20 - 4);
    expect(two!.requests).toBeLessThanOrEqual(60);
    expect(two!.requests).toBeGreaterThanOrEqual(60 - 4);
    expect(one!.durationS).toBeGreaterThanOrEqual(1);
    expect(two!.durationS).toBeGreaterThanOrEqual(1.5);
    expect(result.totals.requests).toBeGreaterThan(0);
    // In-flight requests at the end of a step are sent but never answered.
    expect(seen.requests.length).toBeGreaterThanOrEqual(result.totals.requests);
    expect(seen.requests.length).toBeLessThanOrEqual(result.totals.requests + 2 * 4);
  });

  it('sends the request mix in proportion to its weights, with the JSON body', () => {
    const posts = seen.requests.filter((r) => r === 'POST /items').length;
    const gets = seen.requests.filter((r) => r === 'GET /items').length;
    expect(posts + gets).toBe(seen.requests.length);
    expect(gets).toBeGreaterThan(2 * posts);
    expect(gets).toBeLessThan(4 * posts + 8);
    expect(new Set(seen.bodies)).toEqual(new Set(['{"name":"widget"}']));
  });

  it('splits latency and errors by the version each response named', () => {
    const { v1, v2 } = result.versions;
    expect(v1 && v2).toBeTruthy();
    expect(v1!.requests + v2!.requests).toBe(result.totals.requests);
    expect(v1!.errors).toBe(0);
    expect(v2!.errors).toBeGreaterThan(0);
    expect(v2!.p50Ms).toBeGreaterThan(v1!.p50Ms);
    expect(result.totals.non2xx).toBe(result.totals.statusCodes['500']);
    expect(result.totals.errors).toBe(v2!.errors);
  });

  it('samples a timeline with both versions and the flag', () => {
    expect(result.timeline.length).toBeGreaterThanOrEqual(4);
    expect(result.timeline.some((p) => p.versions.v1 && p.versions.v2)).toBe(true);
    expect(result.timeline.reduce((sum, p) => sum + (p.versions.all?.requests ?? 0), 0)).toBe(result.totals.requests);
    const flags = result.timeline.map((p) => p.flag);
    expect(flags[0]).toBe('10');
    expect(flags.at(-1)).toBe('0');
  });

  it('marks the moment the flag turned to its rollback value', () => {
    expect(result.flag).toMatchObject({ key: flagKey, first: '10', last: '0' });
    expect(result.rollback?.flag).toBe('0');
    const first0 = result.timeline.find((p) => p.flag === '0')!;
    expect(result.rollback?.tS).toBe(first0.tS);
    expect(result.events.filter((e) => e.kind === 'rollback')).toHaveLength(1);
  });

  it('writes the JSON result and a self-contained HTML report', async () => {
    const paths = await writeReports(result, out);
    const json = JSON.parse(await readFile(paths.json, 'utf8')) as LoadResult;
    expect(json.schema).toBe('canary-gate/load-result/1');
    expect(json.totals.requests).toBe(result.totals.requests);
    expect(json.timeline).toHaveLength(result.timeline.length);
    const html = await readFile(paths.html, 'utf8');
    expect(html).toContain('<script type="application/json" id="result">');
    expect(html).toContain('uPlot');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
  });

  it('ends with a table of steps, the total and each version', () => {
    const text = summaryTable(result);
    expect(text).toMatch(/^step +offered rps +requests +rps +p50 ms +p95 ms +p99 ms +errors +non-2xx$/m);
    expect(text).toMatch(new RegExp(`^total +\\d+ +${result.totals.requests} `, 'm'));
    expect(text).toMatch(/^v2 +\d+ /m);
    expect(text).toContain(`rollback at ${result.rollback!.tS} s`);
  });
});

describe('bounds', () => {
  let upstream: Upstream;
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(() => upstream?.close());

  it('stops by itself after maxRequests', async () => {
    const profile = parseProfile('name: capped\nconnections: 2\nrate: 200\nduration: 10s\nmaxRequests: 30\n', 'capped.yaml');
    const result = await runProfile(profile, { target: upstream.url });
    expect(result.stopReason).toBe('max-requests');
    expect(result.totals.requests).toBeGreaterThanOrEqual(30);
    expect(result.totals.requests).toBeLessThanOrEqual(30 + 2);
    expect(result.elapsedS).toBeLessThan(10);
  });

  it('stops when its signal aborts, and still returns what it measured', async () => {
    const profile = parseProfile('name: aborted\nconnections: 2\nrate: 50\nduration: 10s\n', 'aborted.yaml');
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 400);
    const result = await runProfile(profile, { target: upstream.url, signal: abort.signal });
    expect(result.stopReason).toBe('aborted');
    expect(result.events.at(-1)).toMatchObject({ kind: 'stop', text: 'stopped by the user' });
    expect(result.elapsedS).toBeLessThan(10);
  });

  it('refuses a target that is not loopback before sending anything', async () => {
    const profile = parseProfile('name: remote\nrate: 5\nduration: 1s\n', 'remote.yaml');
    await expect(runProfile(profile, { target: 'http://192.0.2.1:8080' })).rejects.toThrow(/invalid load target/);
  });
});

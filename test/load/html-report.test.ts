/**
 * The HTML report opens from disk in a real browser (Debian's chromium, headless, through playwright-core) with no
 * server and no network, and draws its charts: each chart's canvas holds drawn pixels and its legend names the series.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { htmlReport } from '../../src/load/html-report.ts';
import type { VersionFigures } from '../../src/load/recorder.ts';
import type { LoadResult, StepResult, TimelinePoint } from '../../src/load/run.ts';

const CHROMIUM = '/usr/bin/chromium';

/** The little of a canvas the page checks read (the project compiles without the DOM library). */
interface CanvasLike {
  readonly width: number;
  readonly height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const figures = (p95Ms: number, errorRatio: number, requests = 100): VersionFigures => ({
  requests,
  errors: Math.round(requests * errorRatio),
  errorRatio,
  p50Ms: p95Ms / 2,
  p95Ms,
  p99Ms: p95Ms * 1.3,
  maxMs: p95Ms * 2,
});

/** Twenty seconds of a canary that regresses at 8 s and is rolled back at 14 s; one interval without v2 (NaN). */
function sampleResult(): LoadResult {
  const timeline: TimelinePoint[] = [];
  for (let t = 1; t <= 20; t++) {
    const bad = t > 8 && t <= 14;
    timeline.push({
      tS: t,
      offeredRps: 200,
      achievedRps: 199 + (t % 2),
      versions: {
        v1: figures(40, 0.001, 180),
        ...(t === 5 ? {} : { v2: figures(bad ? 110 : 42, bad ? 0.1 : 0, t > 14 ? 0 : 20) }),
        all: figures(bad ? 60 : 41, bad ? 0.01 : 0.001, 200),
      },
      flag: t >= 14 ? '0' : '10',
      gate: {
        outcome: bad ? 'fail' : 'pass',
        atMs: t * 1000,
        baseline: { version: 'v1', requests: 1800, p95Ms: 40, errorRatio: 0.001 },
        canary: { version: 'v2', requests: 200, p95Ms: bad ? 105 : 41, errorRatio: bad ? 0.09 : null },
      },
    });
  }
  const step: StepResult = {
    label: 'steady',
    offeredRps: 200,
    durationS: 20,
    requests: 4000,
    achievedRps: 200,
    errors: 20,
    p50Ms: 20,
    p95Ms: 45,
    p99Ms: 80,
    non2xx: 20,
    failures: 0,
    statusCodes: { 200: 3980, 500: 20 },
  };
  return {
    schema: 'canary-gate/load-result/1',
    profile: { name: 'canary-regression', description: 'a <b>synthetic</b> run', durationS: 20, maxRequests: 5000, connections: 10 },
    target: 'http://127.0.0.1:1',
    startedAt: '2026-01-01T00:00:00.000Z',
    elapsedS: 20,
    stopReason: 'completed',
    steps: [step],
    totals: { ...step, label: 'total', maxMs: 200, errorRatio: 0.005 },
    versions: { v1: figures(40, 0.001, 3600), v2: figures(70, 0.03, 400) },
    timeline,
    events: [
      { tS: 0, kind: 'step', text: 'steady: 200 rps for 20 s' },
      { tS: 8, kind: 'regression', text: 'v2 regresses now' },
      { tS: 14, kind: 'rollback', text: 'feature:v2_traffic_percentage = 0' },
    ],
    flag: { key: 'feature:v2_traffic_percentage', rollbackValue: '0', first: '10', last: '0' },
    rollback: { tS: 14, flag: '0' },
    demo: { regressAtS: 8, routed: { baseline: 3600, canary: 400 } },
  };
}

let browser: Browser;
let dir: string;

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  dir = await mkdtemp(join(tmpdir(), 'cg-load-html-'));
});

afterAll(async () => {
  await browser?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Opens a report from disk; resolves to the page and every error the page raised or logged. */
async function open(result: LoadResult, name: string) {
  const file = join(dir, name);
  await writeFile(file, htmlReport(result));
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(file).href);
  await page.waitForSelector('html[data-charts-rendered]', { timeout: 10_000 });
  return { page, errors, requests };
}

it('renders the four charts from disk, with no network and no script error', async () => {
  const { page, errors, requests } = await open(sampleResult(), 'report.html');
  expect(errors).toEqual([]);
  expect(requests.every((u) => u.startsWith('file:'))).toBe(true);
  expect(await page.getAttribute('html', 'data-charts-rendered')).toBe('4');
  for (const id of ['chart-latency', 'chart-errors', 'chart-traffic', 'chart-flag']) {
    const drawn = await page.$eval(`#${id} canvas`, (canvas) => {
      const c = canvas as unknown as CanvasLike;
      const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) painted++;
      return { width: c.width, height: c.height, painted };
    });
    expect(drawn.width, id).toBeGreaterThan(100);
    expect(drawn.painted, id).toBeGreaterThan(500);
  }
  const legend = async (id: string) => page.$$eval(`#${id} .u-legend .u-label`, (els) => els.map((e) => e.textContent));
  expect(await legend('chart-latency')).toEqual(['s', 'v1 p95', 'v1 p99', 'v2 p95', 'v2 p99', 'all p95', 'all p99']);
  expect(await legend('chart-flag')).toEqual(['s', 'flag feature:v2_traffic_percentage', 'gate p95 v1', 'gate p95 v2']);
  expect(await page.textContent('#flag-note')).toBe('Rolled back at 14 s (flag = 0).');
  expect(await page.textContent('h1')).toBe('canary-gate load: canary-regression');
  expect(await page.$$eval('#versions tr', (rows) => rows.length)).toBe(3);
  expect(await page.textContent('body')).toContain('a <b>synthetic</b> run');
  await page.close();
});

it('draws the rollback marker where the flag turned', async () => {
  const withMarker = await open(sampleResult(), 'marker.html');
  const noMarker = await open({ ...sampleResult(), events: [], rollback: null }, 'no-marker.html');
  // The marker is a vertical red line at 14 s: compare one pixel column of the throughput chart, with and without.
  const column = (page: typeof withMarker.page) =>
    page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { querySelector(selector: string): unknown } }).document;
      const u = doc.querySelector('#chart-traffic canvas') as CanvasLike;
      const ctx = u.getContext('2d')!;
      const reds: number[] = [];
      for (let x = 0; x < u.width; x++) {
        const d = ctx.getImageData(x, Math.round(u.height / 3), 1, 1).data;
        if (d[0]! > 180 && d[1]! < 90 && d[2]! < 90 && d[3]! > 200) reds.push(x);
      }
      return reds;
    });
  expect((await column(withMarker.page)).length).toBeGreaterThan(0);
  expect(await column(noMarker.page)).toEqual([]);
  expect(await noMarker.page.textContent('#flag-note')).toBe('No rollback during the run.');
  await withMarker.page.close();
  await noMarker.page.close();
});

it('says so when no flag was watched, and still draws the other charts', async () => {
  const result = sampleResult();
  const { page, errors } = await open(
    { ...result, flag: null, rollback: null, timeline: result.timeline.map(({ flag: _f, gate: _g, ...p }) => p) },
    'no-flag.html',
  );
  expect(errors).toEqual([]);
  expect(await page.getAttribute('html', 'data-charts-rendered')).toBe('3');
  expect(await page.textContent('#flag-note')).toMatch(/^No flag watched: add monitor.redis/);
  await page.close();
});

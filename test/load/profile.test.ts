/** Load profiles: the bundled ones parse, bad ones fail with the field's path, targets stay on loopback. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CanaryGateError, ErrorCodes } from '../../src/core/errors.ts';
import { PROFILES_DIR, resolveProfile } from '../../src/load/command.ts';
import { loadProfile, offeredRequests, parseProfile } from '../../src/load/profile.ts';
import { mixSequence, versionOf } from '../../src/load/request-mix.ts';
import { checkTarget } from '../../src/load/target.ts';

/** The error's detail lines, or a failure when parsing succeeds or throws something else. */
function problems(yaml: string): string[] {
  try {
    parseProfile(yaml, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(CanaryGateError);
    expect((err as CanaryGateError).code).toBe(ErrorCodes.CONFIG_INVALID);
    return [...(err as CanaryGateError).details];
  }
  throw new Error('expected the profile to be refused');
}

describe('bundled profiles', () => {
  it('ships the five documented profiles', () => {
    const names = readdirSync(PROFILES_DIR)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.replace('.yaml', ''))
      .sort();
    expect(names).toEqual(['canary-regression', 'ramp', 'spike', 'steady', 'sustained-1k']);
  });

  it('steady offers 100 rps for 60 s through a read-heavy mix', () => {
    const p = loadProfile(resolveProfile('steady'));
    expect(p.steps).toEqual([{ label: 'steady', rateRps: 100, durationMs: 60_000 }]);
    expect(p.requests.map((r) => `${r.method} ${r.path} x${r.weight}`)).toEqual(['GET /api/items x3', 'POST /api/items x1']);
    expect(p.requests[1]!.body).toBe('{"name":"widget","quantity":1}');
    expect(p.requests[1]!.headers['content-type']).toBe('application/json');
    expect(p.monitor.redis?.flagKey).toBe('feature:{demo-api}:v2_traffic_percentage');
  });

  it('spike goes 100 -> 500 -> 100 rps, 30 s each', () => {
    const p = loadProfile(resolveProfile('spike'));
    expect(p.steps.map((s) => [s.rateRps, s.durationMs])).toEqual([
      [100, 30_000],
      [500, 30_000],
      [100, 30_000],
    ]);
  });

  it('sustained-1k offers 1000 rps', () => {
    expect(loadProfile(resolveProfile('sustained-1k')).steps.map((s) => s.rateRps)).toEqual([1000]);
  });

  it('ramp climbs from 10 to 1000 rps in equal steps', () => {
    const p = loadProfile(resolveProfile('ramp'));
    const rates = p.steps.map((s) => s.rateRps);
    expect(rates[0]).toBe(10);
    expect(rates.at(-1)).toBe(1000);
    expect(rates).toEqual([...rates].sort((a, b) => a - b));
    expect(p.steps.reduce((sum, s) => sum + s.durationMs, 0)).toBe(p.durationMs);
  });

  it('canary-regression starts the demo fleet and regresses v2 halfway', () => {
    const p = loadProfile(resolveProfile('canary-regression'));
    expect(p.demo).toEqual({ regressAtMs: p.durationMs / 2, startPercentage: 10 });
  });

  it('every bundled profile is bounded by a request count near what it offers', () => {
    for (const name of ['steady', 'spike', 'sustained-1k', 'ramp', 'canary-regression']) {
      const p = loadProfile(resolveProfile(name));
      expect(p.maxRequests, name).toBeGreaterThanOrEqual(offeredRequests(p.steps));
      expect(p.maxRequests, name).toBeLessThanOrEqual(Math.ceil(offeredRequests(p.steps) * 1.2));
    }
  });
});

describe('parsing', () => {
  it('fills defaults for a minimal profile', () => {
    const p = parseProfile('name: mini\nrate: 5\nduration: 2s\n', 'mini.yaml');
    expect(p).toMatchObject({ target: 'http://127.0.0.1:8080', connections: 10, durationMs: 2000, timeoutMs: 10_000, maxRequests: 12 });
    expect(p.requests).toEqual([{ method: 'GET', path: '/', headers: {}, body: undefined, weight: 1 }]);
    expect(p.versions).toEqual({ header: undefined, jsonField: 'version' });
    expect(p.monitor).toEqual({ everyMs: 1000, sidecars: [], redis: undefined });
  });

  it('splits a ramp into steps that add up to its duration', () => {
    const p = parseProfile('name: r\nduration: 4s\nstages:\n  - { duration: 4s, rate: 10, rampTo: 40, steps: 4 }\n', 'r.yaml');
    expect(p.steps.map((s) => [s.rateRps, s.durationMs])).toEqual([
      [10, 1000],
      [20, 1000],
      [30, 1000],
      [40, 1000],
    ]);
  });

  it.each([
    ['a missing name', 'rate: 5\nduration: 2s', 'name: '],
    ['a missing duration', 'name: x\nrate: 5', 'duration: '],
    ['neither rate nor stages', 'name: x\nduration: 2s', 'rate: is required when there are no stages'],
    ['a negative rate', 'name: x\nrate: -1\nduration: 2s', 'rate: must be a positive rate'],
    ['a fractional rate', 'name: x\nrate: 2.5\nduration: 2s', 'rate: must be a whole number'],
    ['a bad duration', 'name: x\nrate: 5\nduration: soon', 'duration: must be a positive duration'],
    [
      'a bad stage rate',
      'name: x\nduration: 10s\nstages:\n  - { duration: 1s, rate: 5 }\n  - { duration: 1s, rate: zero }',
      'stages.1.rate: ',
    ],
    [
      'stages longer than duration',
      'name: x\nduration: 1s\nstages:\n  - { duration: 2s, rate: 5 }',
      'stages: last 2 s but duration is 1 s',
    ],
    ['steps without rampTo', 'name: x\nduration: 1s\nstages:\n  - { duration: 1s, rate: 5, steps: 3 }', 'stages.0.steps: needs rampTo'],
    ['a path without a slash', 'name: x\nrate: 5\nduration: 2s\nrequests:\n  - { path: api }', 'requests.0.path: must start with /'],
    ['an unknown method', 'name: x\nrate: 5\nduration: 2s\nrequests:\n  - { method: FETCH }', 'requests.0.method: must be one of'],
    ['a zero weight', 'name: x\nrate: 5\nduration: 2s\nrequests:\n  - { weight: 0 }', 'requests.0.weight: must be at least 1'],
    ['an unknown field', 'name: x\nrate: 5\nduration: 2s\nrps: 5', 'rps: unknown field'],
    ['an unknown nested field', 'name: x\nrate: 5\nduration: 2s\nmonitor: { redis: { key: f } }', 'monitor.redis.key: unknown field'],
    ['a bad sidecar URL', 'name: x\nrate: 5\nduration: 2s\nmonitor: { sidecars: [nope] }', 'monitor.sidecars.0: must be a URL'],
    [
      'a regression after the end',
      'name: x\nrate: 5\nduration: 2s\ndemo: { regressAt: 3s }',
      'demo.regressAt: must come before the end of the run',
    ],
    ['zero connections', 'name: x\nrate: 5\nduration: 2s\nconnections: 0', 'connections: must be at least 1'],
  ])('refuses %s, naming the field', (_case, yaml, expected) => {
    const lines = problems(yaml);
    expect(
      lines.some((l) => l.startsWith(expected) || l.includes(expected)),
      lines.join('\n'),
    ).toBe(true);
  });

  it('reports every problem at once', () => {
    expect(problems('name: X\nrate: 0\nduration: 0').length).toBe(3);
  });

  it('names the line of a YAML syntax error', () => {
    try {
      parseProfile('name: x\nrate: [5\nduration: 2s\n', 'broken.yaml');
      throw new Error('expected a YAML error');
    } catch (err) {
      expect((err as CanaryGateError).code).toBe(ErrorCodes.CONFIG_UNREADABLE);
      expect((err as Error).message).toMatch(/broken\.yaml is not valid YAML at line \d/);
    }
  });

  it('says which file it could not read', () => {
    expect(() => loadProfile(join(PROFILES_DIR, 'no-such-profile.yaml'))).toThrow(/cannot read load profile .*no-such-profile\.yaml/);
  });
});

describe('targets', () => {
  it.each(['http://127.0.0.1:8080', 'http://127.1.2.3:80', 'http://localhost:3000', 'http://[::1]:8080', 'https://127.0.0.1'])(
    'accepts loopback %s',
    (target) => {
      expect(checkTarget(target)).toBe(new URL(target).origin);
    },
  );

  it.each([
    ['http://10.0.0.1:8080', 'is not a loopback address'],
    ['http://example.test', 'is not a loopback address'],
    ['http://0.0.0.0:8080', 'is not a loopback address'],
    ['http://127.0.0.1:8080/api', 'must be an origin'],
    ['ftp://127.0.0.1', 'must be http or https'],
    ['127.0.0.1:8080', 'must be a URL'],
  ])('refuses %s', (target, reason) => {
    try {
      checkTarget(target);
      throw new Error('expected a refusal');
    } catch (err) {
      expect((err as CanaryGateError).details[0]).toMatch(new RegExp(`^target: .*${reason}`));
    }
  });

  it('accepts another host only when asked', () => {
    expect(checkTarget('http://10.0.0.1:8080', true)).toBe('http://10.0.0.1:8080');
  });
});

describe('request mix and version tags', () => {
  it('interleaves requests in proportion to their weights', () => {
    const r = (path: string, weight: number) => ({ method: 'GET', path, headers: {}, body: undefined, weight });
    expect(mixSequence([r('/a', 3), r('/b', 1)]).map((x) => x.path)).toEqual(['/a', '/a', '/b', '/a']);
    const seq = mixSequence([r('/a', 2), r('/b', 3), r('/c', 1)]).map((x) => x.path);
    expect([seq.filter((p) => p === '/a').length, seq.filter((p) => p === '/b').length, seq.filter((p) => p === '/c').length]).toEqual([
      2, 3, 1,
    ]);
  });

  it('reads the version from the header first, then the JSON body', () => {
    const versions = { header: 'x-version', jsonField: 'version' };
    expect(versionOf('{"version":"v2"}', { 'x-version': 'v1' }, versions)).toBe('v1');
    expect(versionOf('{"version":"v2"}', {}, versions)).toBe('v2');
    expect(versionOf('not json', {}, versions)).toBeNull();
    expect(versionOf('{"version":7}', {}, versions)).toBeNull();
    expect(versionOf('{"version":"v2"}', {}, { header: undefined, jsonField: '' })).toBeNull();
  });
});

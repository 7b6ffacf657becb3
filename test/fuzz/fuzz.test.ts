/**
 * Fuzzing with fast-check (seeded, bounded runs) of the two parsers that take outside input:
 * - the fleet payload decoder: random text, random JSON objects, and valid payloads truncated or with a character
 *   flipped must decode to a self-consistent slot or throw CG_PAYLOAD_CORRUPT, never anything else;
 * - the config loader: random YAML documents and environment values must give a valid config or throw
 *   CG_CONFIG_INVALID / CG_CONFIG_UNREADABLE with one line per problem, never anything else.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { CanaryGateError, ErrorCodes } from '../../src/core/errors.ts';
import { initHistograms } from '../../src/core/histogram.ts';
import { decodeSlotPayload, encodeSlotPayload } from '../../src/core/slot-payload.ts';
import { SlotRecorder } from '../../src/core/slot-recorder.ts';

const SEED = 20261123;
const dir = mkdtempSync(join(tmpdir(), 'cg-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Decodes and checks the outcome: a consistent slot, or the payload-corrupt error. Anything else fails the property. */
function decodesOrIsCorrupt(text: string, slot: number): void {
  try {
    const d = decodeSlotPayload(text, slot, 5000);
    try {
      expect(d.slotIndex).toBe(slot);
      expect(d.errors).toBeLessThanOrEqual(d.requests);
      expect(d.histogram.totalCount).toBe(d.requests);
    } finally {
      d.histogram.destroy();
    }
  } catch (err) {
    if (!(err instanceof CanaryGateError) || err.code !== ErrorCodes.PAYLOAD_CORRUPT) throw err;
  }
}

describe('fuzz: fleet payload decoder', () => {
  initHistograms();
  const valid = (() => {
    const r = new SlotRecorder(5000, 7 * 5000);
    for (let i = 0; i < 300; i++) r.record(1000 + i * 37, i % 50 === 0);
    return encodeSlotPayload(r.seal(8 * 5000));
  })();

  it('random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => decodesOrIsCorrupt(text, 7)),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('random JSON values, and objects with the payload keys and random values', () => {
    const value = fc.oneof(
      fc.integer(),
      fc.double(),
      fc.string({ maxLength: 40 }),
      fc.constant(null),
      fc.boolean(),
      fc.base64String({ maxLength: 80 }),
    );
    fc.assert(
      fc.property(fc.jsonValue(), (v) => decodesOrIsCorrupt(JSON.stringify(v) ?? 'null', 7)),
      { seed: SEED, numRuns: 1000 },
    );
    fc.assert(
      fc.property(
        fc.record(
          {
            v: fc.oneof(fc.constant(1), value),
            slot: fc.oneof(fc.constant(7), value),
            slotMs: fc.oneof(fc.constant(5000), value),
            requests: value,
            errors: value,
            hist: value,
          },
          { requiredKeys: [] },
        ),
        (p) => decodesOrIsCorrupt(JSON.stringify(p), 7),
      ),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('a valid payload truncated anywhere, or with one character changed', () => {
    decodesOrIsCorrupt(valid, 7); // the untouched payload decodes
    fc.assert(
      fc.property(fc.nat({ max: valid.length - 1 }), (cut) => decodesOrIsCorrupt(valid.slice(0, cut), 7)),
      { seed: SEED, numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 32, max: 126 }), (at, code) =>
        decodesOrIsCorrupt(valid.slice(0, at) + String.fromCharCode(code) + valid.slice(at + 1), 7),
      ),
      { seed: SEED, numRuns: 1500 },
    );
  });
});

/** Loads and checks the outcome: a config, or a config error naming each problem. */
function loadsOrExplains(options: Parameters<typeof loadConfig>[0]): void {
  try {
    const config = loadConfig(options);
    expect(config.window.slot).toBeGreaterThan(0);
  } catch (err) {
    if (!(err instanceof CanaryGateError)) throw err;
    expect([ErrorCodes.CONFIG_INVALID, ErrorCodes.CONFIG_UNREADABLE]).toContain(err.code);
    if (err.code === ErrorCodes.CONFIG_INVALID) {
      expect(err.details.length).toBeGreaterThan(0);
      for (const line of err.details) expect(line).toMatch(/^.+: \S/); // "field: reason"
    }
  }
}

describe('fuzz: config loader', () => {
  const paths = [
    'service',
    'proxy.port',
    'proxy.upstream',
    'proxy.errorStatuses',
    'proxy.routes',
    'window.slot',
    'window.slots',
    'evaluation.delay',
    'policy.minSamples',
    'policy.latency.absoluteP95',
    'policy.errors.absoluteRatio',
    'policy.noData.canaryMissing',
    'policy.statistics.horizon',
    'flag.key',
    'log.level',
    'redis.url',
  ];
  const leaf = fc.oneof(
    fc.integer({ min: -1e6, max: 1e6 }),
    fc.double({ noNaN: false }),
    fc.string({ maxLength: 20 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
    fc.constantFrom('5s', '0ms', '-1s', '2h', 'hold', 'rollback', '5xx', '/a/:b', 'redis://x', 'http://127.0.0.1:1'),
  );

  it('random YAML documents over the real field names (and a few others)', () => {
    const doc = fc.dictionary(fc.constantFrom(...paths, 'unknown.field', 'policy'), leaf, { maxKeys: 6 }).map((flat) => {
      const tree: Record<string, unknown> = {};
      for (const [path, v] of Object.entries(flat)) {
        const parts = path.split('.');
        let node = tree;
        for (const part of parts.slice(0, -1))
          node = (node[part] = typeof node[part] === 'object' && node[part] !== null ? node[part] : {}) as Record<string, unknown>;
        node[parts.at(-1)!] = v;
      }
      return tree;
    });
    let i = 0;
    fc.assert(
      fc.property(doc, (tree) => {
        const file = join(dir, `c${i++}.yaml`);
        writeFileSync(file, stringify(tree));
        loadsOrExplains({ file, env: {} });
      }),
      { seed: SEED, numRuns: 600 },
    );
  });

  it('random bytes as a YAML file', () => {
    let i = 0;
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        const file = join(dir, `r${i++}.yaml`);
        writeFileSync(file, text);
        loadsOrExplains({ file, env: {} });
      }),
      { seed: SEED, numRuns: 600 },
    );
  });

  it('random environment values for real variables', () => {
    const names = [
      'CANARY_GATE_WINDOW_SLOT',
      'CANARY_GATE_WINDOW_SLOTS',
      'PROXY_PORT',
      'REDIS_URL',
      'CANARY_GATE_PROXY_ERROR_STATUSES',
      'CANARY_GATE_PROXY_ROUTES',
      'CANARY_GATE_POLICY_STATISTICS_ENABLED',
      'CANARY_GATE_POLICY_NO_DATA_NO_TRAFFIC',
      'CANARY_GATE_POLICY_TRAFFIC_SHARE_ALPHA',
      'SERVICE_NAME',
    ];
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names), fc.string({ maxLength: 24 }), { maxKeys: 4 }), (env) =>
        loadsOrExplains({ env }),
      ),
      { seed: SEED, numRuns: 1500 },
    );
  });
});

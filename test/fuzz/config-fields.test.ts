/**
 * Fuzzing the config loader over every field it has (fast-check, seeded, bounded runs), beside fuzz.test.ts which
 * samples a few: every leaf path of DEFAULTS in a YAML file, sections replaced by scalars or lists, and every
 * environment variable (long names and aliases) with YAML-significant and over-long text. The outcome is a config
 * that the schema accepts again as it is, or CanaryGateError CG_CONFIG_INVALID / CG_CONFIG_UNREADABLE whose every
 * detail names a field that exists (or an unknown key under one) and, when an environment variable set it, names the
 * variable; never another exception.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ENV_ALIASES } from '../../src/config/defaults.ts';
import { envNameOf, leafPaths, loadConfig, type LoadOptions } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';
import { CanaryGateError, ErrorCodes } from '../../src/core/errors.ts';

const SEED = 11_2026;
const dir = mkdtempSync(join(tmpdir(), 'cg-fuzz-fields-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LEAVES = leafPaths().map(([path]) => path);
const SECTIONS = [
  ...new Set(
    LEAVES.flatMap((p) =>
      p
        .split('.')
        .slice(0, -1)
        .map((_, i, parts) => parts.slice(0, i + 1).join('.')),
    ),
  ),
];
const LISTS = new Set(
  leafPaths()
    .filter(([, v]) => Array.isArray(v))
    .map(([p]) => p),
);
const ENV_NAMES = [...LEAVES.map(envNameOf), ...Object.keys(ENV_ALIASES)];

/** Whether a detail's path names a field: a leaf, a section, an element of a list field, or an unknown key in a section. */
function namesAField(path: string): boolean {
  if (path === '(root)' || LEAVES.includes(path) || SECTIONS.includes(path)) return true;
  const parent = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : '';
  const last = path.slice(path.lastIndexOf('.') + 1);
  if (LISTS.has(parent) && /^\d+$/.test(last)) return true;
  return parent === '' || SECTIONS.includes(parent);
}

/** Loads; checks the outcome as the header says; returns the config or the error's details. */
function loadChecked(options: LoadOptions, envSet: readonly string[] = []): string[] | 'ok' {
  let config;
  try {
    config = loadConfig({ hostname: 'fuzz-host', ...options });
  } catch (err) {
    if (!(err instanceof CanaryGateError)) throw err;
    expect([ErrorCodes.CONFIG_INVALID, ErrorCodes.CONFIG_UNREADABLE]).toContain(err.code);
    if (err.code === ErrorCodes.CONFIG_UNREADABLE) return [err.message];
    expect(err.details.length).toBeGreaterThan(0);
    for (const line of err.details) {
      const match = /^(\S+): (.+?)(?: \(from ([A-Z0-9_]+)\))?$/.exec(line);
      expect(match, line).not.toBeNull();
      expect(namesAField(match![1]!), line).toBe(true);
      if (match![3] !== undefined) expect(envSet, line).toContain(match![3]);
    }
    return [...err.details];
  }
  // Accepted: frozen, and the schema takes it again as it is (durations already in ms).
  expect(Object.isFrozen(config) && Object.isFrozen(config.policy.latency)).toBe(true);
  const again = configSchema.safeParse(structuredClone(config));
  expect(again.success, JSON.stringify(again.error?.issues)).toBe(true);
  expect(again.data).toEqual(config);
  return 'ok';
}

const special = fc.constantFrom(
  '~',
  'null',
  '.nan',
  '.inf',
  '-.inf',
  '0x1F',
  '0o17',
  '1e400',
  '-0',
  '&a [*a]',
  '!!binary aGk=',
  '{',
  '[1, 2',
  '{a: 1}',
  '- a',
  'yes',
  'on',
  'off',
  ': x',
  '"',
  "'",
  '#',
  '5s',
  '0ms',
  '-1s',
  '1.5h',
  '2d',
  '  5s  ',
  '5 s',
  '5xx',
  '429,5xx',
  ',,,',
  '/a/:b',
  'redis://',
  'rediss://user:pw@h:1/2',
  'http://x',
  'hold',
  'rollback',
  'true',
  '0',
  '1',
  '0.5',
);
const text = fc.oneof(special, fc.string({ maxLength: 30 }), fc.string({ minLength: 90, maxLength: 160 }));
const scalar = fc.oneof(text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
const value = fc.oneof(
  scalar,
  fc.array(scalar, { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('a', 'port', 'slot', 'url'), scalar, { maxKeys: 2 }),
);

/** A tree from flat `path -> value` pairs (a later section value replaces what an earlier path put under it). */
function tree(flat: Record<string, unknown>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [path, v] of Object.entries(flat)) {
    const keys = path.split('.');
    let node = root;
    for (const key of keys.slice(0, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null || Array.isArray(node[key])) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[keys.at(-1)!] = v;
  }
  return root;
}

describe('fuzz: every config field', () => {
  it('YAML files over every leaf and section path, with unknown keys: a config or errors that name real fields', () => {
    const path = fc.oneof(
      fc.constantFrom(...LEAVES),
      fc.constantFrom(...SECTIONS),
      fc.constantFrom(...SECTIONS).map((s) => `${s}.colour`),
    );
    let i = 0;
    let accepted = 0;
    fc.assert(
      fc.property(fc.dictionary(path, value, { minKeys: 1, maxKeys: 5 }), (flat) => {
        const file = join(dir, `f${i++}.yaml`);
        writeFileSync(file, stringify(tree(flat)));
        if (loadChecked({ file, env: {} }) === 'ok') accepted++;
      }),
      { seed: SEED, numRuns: 500 },
    );
    expect(accepted).toBeGreaterThan(0); // the runs reached the accepting side too
  });

  it('every environment variable with YAML-significant and over-long text: a config or errors that name the field and the variable', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...ENV_NAMES), text, { minKeys: 1, maxKeys: 4 }), (env) => {
        if (
          loadChecked(
            { env },
            Object.keys(env).filter((k) => env[k] !== ''),
          ) === 'ok'
        )
          accepted++;
      }),
      { seed: SEED, numRuns: 1000 },
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it('a problem from the environment names the variable that set it, long name or alias', () => {
    for (const name of ENV_NAMES) {
      const details = loadChecked({ env: { [name]: '{not: [a, value' } }, [name]);
      if (details === 'ok') continue; // a string field takes any text
      // A cross-field problem (a baseline that pod.version no longer matches) names the other field and quotes the text.
      expect(
        details.some((d) => d.endsWith(`(from ${name})`) || d.includes('{not: [a, value')),
        `${name}: ${details.join('; ')}`,
      ).toBe(true);
    }
  });

  // Known defect (see the report of issue 5): src/config/load.ts mergeOver assigns `out[k] = ...`; for the key
  // `__proto__` (which the yaml package returns as an own key) that sets the object's prototype instead, so a misplaced
  // section under `__proto__` is silently ignored instead of reported as an unknown field. Flip to `it` once fixed.
  it('a __proto__ key in the file is reported as an unknown field', () => {
    for (const yaml of ['__proto__:\n  service: elsewhere\n', 'proxy:\n  __proto__:\n    port: 1\n']) {
      const file = join(dir, `proto-${yaml.length}.yaml`);
      writeFileSync(file, yaml);
      expect(loadChecked({ file, env: {} })).toEqual([expect.stringMatching(/__proto__: unknown field$/)]);
    }
  });
});

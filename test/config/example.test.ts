/**
 * config/example.yaml documents every field with its default, and config/default.yaml (the demo's) loads.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ADMIN_TOKEN_ENV, DEFAULTS } from '../../src/config/defaults.ts';
import { envNamesOf, exampleFields } from '../../src/config/docs.ts';
import { leafPaths, loadConfig } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';

const EXAMPLE = fileURLToPath(new URL('../../config/example.yaml', import.meta.url));
const DEMO = fileURLToPath(new URL('../../config/default.yaml', import.meta.url));
const exampleText = readFileSync(EXAMPLE, 'utf8');
const fields = exampleFields(exampleText);
const byPath = new Map(fields.map((f) => [f.path, f]));
const LEAVES = leafPaths().map(([path]) => path);

/** The value at a dotted path of a tree. */
function at(tree: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], tree);
}

describe('config/example.yaml', () => {
  it('holds every leaf path of DEFAULTS exactly once, and nothing else', () => {
    const paths = fields.map((f) => f.path);
    expect(new Set(paths).size).toBe(paths.length);
    expect([...paths].sort()).toEqual([...LEAVES].sort());
  });

  // Both sides through the schema, so `5s` in the file and 5000 ms compare equal, as do `"0"` and 0.
  const fromExample = configSchema.parse(parseYaml(exampleText));
  const fromDefaults = configSchema.parse(structuredClone(DEFAULTS));
  it.each(LEAVES)('%s has the default value', (path) => {
    expect(at(fromExample, path)).toEqual(at(fromDefaults, path));
  });

  it.each(LEAVES)('%s has a comment that describes it and names its environment variables', (path) => {
    const comment = byPath.get(path)?.comment ?? [];
    const env = comment.filter((line) => line.startsWith('Env:'));
    const description = comment.filter((line) => !line.startsWith('Env:')).join(' ');
    expect(description.length).toBeGreaterThan(20);
    expect(env).toEqual([`Env: ${envNamesOf(path).join(', ')}`]);
  });

  it('says in its header that the admin token comes only from the environment', () => {
    const header = exampleText.slice(0, exampleText.indexOf('\nservice:'));
    expect(header).toContain(ADMIN_TOKEN_ENV);
    expect(header).toMatch(/never from this file/);
    expect(header).toMatch(/POST \/rollback and POST \/reset are disabled/);
  });

  it('loads into the same config as the defaults alone', () => {
    expect(loadConfig({ file: EXAMPLE, env: {}, hostname: 'h' })).toEqual(loadConfig({ env: {}, hostname: 'h' }));
  });
});

describe('config/default.yaml (the demo)', () => {
  it('loads with the demo values', () => {
    const c = loadConfig({ file: DEMO, env: {}, hostname: 'h' });
    expect(c.service).toBe('demo-api');
    expect(c.window).toMatchObject({ slot: 1000, slots: 10 });
    expect(c.evaluation).toMatchObject({ delay: 250, leaseTtl: 3000 });
    expect(c.redis.commandTimeout).toBe(250);
    expect(c.proxy.host).toBe('127.0.0.1');
    expect(c.admin.host).toBe('127.0.0.1');
    expect(c.log.level).toBe('warn');
  });

  it('keeps the production policy', () => {
    const c = loadConfig({ file: DEMO, env: {}, hostname: 'h' });
    expect(c.policy).toEqual(loadConfig({ env: {}, hostname: 'h' }).policy);
    expect(c.policy).toMatchObject({ minSamples: 100, consecutiveBreaches: 1 });
  });

  it('takes the per-sidecar fields the demo sets', () => {
    const env = {
      POD_NAME: 'canary-1',
      POD_VERSION: 'v2',
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      UPSTREAM_URL: 'http://127.0.0.1:3002',
      REDIS_URL: 'redis://127.0.0.1:6390',
    };
    const c = loadConfig({ file: DEMO, env });
    expect(c.pod).toEqual({ name: 'canary-1', version: 'v2' });
    expect(c.proxy).toMatchObject({ port: 0, upstream: 'http://127.0.0.1:3002' });
    expect(c.redis.url).toBe('redis://127.0.0.1:6390');
  });
});

/**
 * loadConfig: files, environment overrides, durations, validation errors, freezing, the host name fallback.
 * YAML fixtures are written to a private temp dir, removed after.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CanaryGateError, ErrorCodes } from '../../src/core/errors.ts';
import { DEFAULTS } from '../../src/config/defaults.ts';
import { envNameOf, leafPaths, loadConfig, type LoadOptions } from '../../src/config/load.ts';
import { duration, type Config } from '../../src/config/schema.ts';

let dir = '';
let count = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'canary-gate-config-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `text` to a fresh YAML file in the temp dir and returns its path. */
function fixture(text: string): string {
  const file = join(dir, `config-${++count}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** The CanaryGateError that loadConfig throws; anything else (a plain Error, no error) fails the test. */
function loadError(options: LoadOptions): CanaryGateError {
  try {
    loadConfig(options);
  } catch (err) {
    if (err instanceof CanaryGateError) return err;
    throw err;
  }
  throw new Error('expected loadConfig to throw');
}

const load = (options: LoadOptions): Config => loadConfig({ env: {}, hostname: 'test-host', ...options });

describe('a file with several problems', () => {
  it('gives one CG_CONFIG_INVALID error that names every path', () => {
    const file = fixture('proxy:\n  port: eighty\nwindow:\n  colour: red\n  slot: -5s\n');
    const err = loadError({ file, env: {} });
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.message).toContain(file);
    expect(err.details).toHaveLength(3);
    expect(err.details).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^proxy\.port: .*expected number/),
        'window.colour: unknown field',
        expect.stringMatching(/^window\.slot: must be a positive duration .*-5s/),
      ]),
    );
  });
});

describe('files that cannot be read', () => {
  it.each([
    ['a missing file', () => join(dir, 'missing.yaml'), /cannot read config file/],
    [
      'a directory',
      () => {
        const d = join(dir, 'a-directory.yaml');
        mkdirSync(d, { recursive: true });
        return d;
      },
      /cannot read config file/,
    ],
    ['an unclosed flow list', () => fixture('proxy:\n  errorStatuses: [5xx\n'), /not valid YAML at line/],
    ['a bad indentation', () => fixture('proxy:\n  port: 1\n port: 2\n'), /not valid YAML/],
    ['a duplicated key', () => fixture('proxy:\n  port: 1\n  port: 2\n'), /not valid YAML/],
  ])('%s gives CG_CONFIG_UNREADABLE', (_name, make, message) => {
    const err = loadError({ file: make(), env: {} });
    expect(err.code).toBe(ErrorCodes.CONFIG_UNREADABLE);
    expect(err.message).toMatch(message);
  });

  it('a file that is not a mapping gives CG_CONFIG_INVALID', () => {
    const err = loadError({ file: fixture('- a\n- b\n'), env: {} });
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.details).toEqual(['(root): must be a mapping of fields']);
  });

  it('an empty file keeps the defaults', () => {
    expect(load({ file: fixture('# nothing here\n') })).toEqual(load({}));
  });
});

describe('values the schema reads', () => {
  it.each<[string, string, (c: Config) => unknown, unknown]>([
    ['an unquoted status code (a YAML number)', 'proxy:\n  errorStatuses: [5xx, 429]\n', (c) => c.proxy.errorStatuses, ['5xx', '429']],
    ['an unquoted rollback value (a YAML number)', 'flag:\n  rollbackValue: 0\n', (c) => c.flag.rollbackValue, '0'],
    ['a boolean', 'evaluation:\n  enabled: false\n', (c) => c.evaluation.enabled, false],
    ['a ratio at its bound', 'policy:\n  errors:\n    absoluteRatio: 1\n', (c) => c.policy.errors.absoluteRatio, 1],
    ['the default flag key, one per service', 'service: checkout\n', (c) => c.flag.key, 'feature:{checkout}:v2_traffic_percentage'],
    [
      'the global flag key of before 0.2',
      'flag:\n  key: feature:v2_traffic_percentage\n',
      (c) => c.flag.key,
      'feature:v2_traffic_percentage',
    ],
    ['a redis+sentinel:// URL (sentinel mode)', 'redis:\n  url: redis+sentinel://s1:26379,s2/primary/1\n', (c) => c.redis.mode, 'sentinel'],
    ['Cluster seed nodes', 'redis:\n  mode: cluster\n  url: redis://:pw@a:7000,b:7001\n', (c) => c.redis.mode, 'cluster'],
  ])('%s', (_name, yaml, pick, expected) => {
    expect(pick(load({ file: fixture(yaml) }))).toEqual(expected);
  });
});

describe('values the schema refuses', () => {
  it.each([
    [
      'a ratio above 1 (percent instead of ratio)',
      'policy:\n  errors:\n    absoluteRatio: 5\n',
      'policy.errors.absoluteRatio: must be a ratio between 0 and 1 (0.05 means 5 %)',
    ],
    ['a negative ratio', 'policy:\n  errors:\n    baselineFloor: -0.1\n', 'policy.errors.baselineFloor: must be a ratio between 0 and 1'],
    [
      'a zero multiplier',
      'policy:\n  latency:\n    relativeP95: 0\n',
      'policy.latency.relativeP95: must be a multiplier above 1 such as 1.5',
    ],
    [
      'a multiplier of 1 (no regression to detect)',
      'policy:\n  errors:\n    relativeRatio: 1\n',
      'policy.errors.relativeRatio: must be a multiplier above 1 such as 1.5',
    ],
    [
      'an optional quantile check at 0.9',
      'policy:\n  latency:\n    relativeP99: 0.9\n',
      'policy.latency.relativeP99: must be 0 (off) or a multiplier above 1 such as 1.5',
    ],
    [
      'an unknown statistics method',
      'policy:\n  statistics:\n    method: bayes\n',
      'policy.statistics.method: Invalid option: expected one of "sequential"|"window"',
    ],
    [
      'a throughput drop of 100 %',
      'policy:\n  throughput:\n    drop: 1\n',
      'policy.throughput.drop: must be below 1 (0.5 means half the traffic the flag gives)',
    ],
    [
      'a negative hold duration',
      'policy:\n  for:\n    error_ratio_absolute: -5s\n',
      'policy.for.error_ratio_absolute: must be a positive duration such as 5s or 250ms (got "-5s")',
    ],
    [
      'a pod version that is neither baseline nor canary',
      'pod:\n  version: v3\n',
      'pod.version: must be the baseline (v1) or the canary (v2), got "v3"',
    ],
    ['the same baseline and canary', 'versions:\n  canary: v1\n', 'versions.canary: must differ from versions.baseline'],
    [
      'a p95 warning at its failing level',
      'policy:\n  latency:\n    warnRelativeP95: 1.5\n',
      'policy.latency.warnRelativeP95: must be below policy.latency.relativeP95 (1.5 >= 1.5)',
    ],
    [
      'an error warning past the absolute line',
      'policy:\n  errors:\n    warnRatio: 0.06\n',
      'policy.errors.warnRatio: must be below policy.errors.absoluteRatio (0.06 >= 0.05)',
    ],
    [
      'an evaluation delay as long as the slot',
      'window:\n  slot: 1s\nevaluation:\n  delay: 1s\n',
      'evaluation.delay: must be shorter than window.slot (1000 ms >= 1000 ms)',
    ],
    [
      'a lease shorter than two command timeouts',
      'evaluation:\n  leaseTtl: 900ms\n',
      'evaluation.leaseTtl: must be at least twice redis.commandTimeout (900 ms < 2 x 500 ms)',
    ],
    ['a port out of range', 'admin:\n  port: 70000\n', 'admin.port: Too big: expected number to be <=65535'],
    [
      'a status that is no class nor code',
      'proxy:\n  errorStatuses: [5xx, teapot]\n',
      'proxy.errorStatuses.1: must be a status class such as 5xx or a code such as 429',
    ],
    [
      'a URL that is not Redis',
      'redis:\n  url: http://127.0.0.1:6379\n',
      'redis.url: must be a redis://, rediss://, redis+sentinel:// or rediss+sentinel:// URL',
    ],
    [
      'several hosts for one server',
      'redis:\n  url: redis://a:6379,b:6379\n',
      'redis.url: lists 2 hosts: set redis.mode to cluster (seed nodes of a Redis Cluster) or sentinel (Sentinels)',
    ],
    [
      'a host without a port number',
      'redis:\n  mode: cluster\n  nodes: ["a:63x9"]\n  url: redis://a\n',
      'redis.nodes: "a:63x9" is not a host:port',
    ],
    [
      'a database on a Cluster',
      'redis:\n  mode: cluster\n  url: redis://a:6379,b:6379/2\n',
      'redis.url: names database 2: a Redis Cluster has only database 0',
    ],
    [
      'sentinels without a master name',
      'redis:\n  mode: sentinel\n  url: redis://s1:26379,s2:26379\n',
      'redis.masterName: must name the primary the Sentinels monitor (or end redis.url in /<masterName>)',
    ],
    [
      'a sentinel URL in cluster mode',
      'redis:\n  mode: cluster\n  url: redis+sentinel://s1/m\n',
      'redis.mode: is cluster, but redis.url is a redis+sentinel:// URL',
    ],
    [
      'a master name outside sentinel mode',
      'redis:\n  masterName: m\n',
      'redis.masterName: is only read in sentinel mode (mode is standalone)',
    ],
    [
      'a global flag key on a Cluster',
      'redis:\n  mode: cluster\n  url: redis://a:6379\nflag:\n  key: feature:v2_traffic_percentage\n',
      'flag.key: must carry the service\'s hash tag {demo-api} on a Redis Cluster (got "feature:v2_traffic_percentage"), e.g. feature:{<service>}:v2_traffic_percentage',
    ],
    [
      'an unknown log level',
      'log:\n  level: verbose\n',
      'log.level: Invalid option: expected one of "trace"|"debug"|"info"|"warn"|"error"|"fatal"|"silent"',
    ],
    ['an empty pod section', 'pod:\n', 'pod: Invalid input: expected object, received null'],
    [
      'a router upstream that is not HTTP',
      'router:\n  canaryUpstream: 127.0.0.1:8082\n',
      'router.canaryUpstream: must be an http:// or https:// URL',
    ],
    [
      'a sticky header that is no header name',
      'router:\n  stickyHeader: "x user"\n',
      'router.stickyHeader: must be a header or cookie name (letters, digits, - _ . and the like), or empty for off',
    ],
  ])('%s', (_name, yaml, detail) => {
    const err = loadError({ file: fixture(yaml), env: {} });
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.details).toEqual([detail]);
  });
});

describe('durations', () => {
  it.each([
    ['5s', 5000],
    ['250ms', 250],
    ['1m', 60_000],
    [300, 300],
    ['1.5s', 1500],
    ['300', 300],
  ])('%j is %i ms', (input, expected) => {
    expect(duration.parse(input)).toBe(expected);
    const file = fixture(`policy:\n  latency:\n    absoluteP95: ${JSON.stringify(input)}\n`);
    expect(load({ file }).policy.latency.absoluteP95).toBe(expected);
  });

  it.each([['-5s'], [0], [-1], [''], ['  '], ['soon'], ['5 parsecs'], [true]])('%j is refused with the field path', (input) => {
    const err = loadError({ file: fixture(`policy:\n  latency:\n    absoluteP95: ${JSON.stringify(input)}\n`), env: {} });
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.details).toHaveLength(1);
    expect(err.details[0]).toMatch(/^policy\.latency\.absoluteP95: /);
  });
});

describe('environment overrides', () => {
  it.each<[string, string, (c: Config) => unknown, unknown]>([
    ['REDIS_URL', 'rediss://user:pw@redis.example:6380/2', (c) => c.redis.url, 'rediss://user:pw@redis.example:6380/2'],
    ['POD_NAME', 'api-7f9c-x2', (c) => c.pod.name, 'api-7f9c-x2'],
    ['POD_VERSION', 'v2', (c) => c.pod.version, 'v2'],
    ['UPSTREAM_URL', 'http://127.0.0.1:4000', (c) => c.proxy.upstream, 'http://127.0.0.1:4000'],
    ['PROXY_PORT', '8081', (c) => c.proxy.port, 8081],
    ['ADMIN_PORT', '9091', (c) => c.admin.port, 9091],
    ['SERVICE_NAME', 'checkout', (c) => c.service, 'checkout'],
    ['CANARY_GATE_POLICY_LATENCY_RELATIVE_P95', '1.3', (c) => c.policy.latency.relativeP95, 1.3],
    ['CANARY_GATE_POLICY_ERRORS_ABSOLUTE_RATIO', '0.02', (c) => c.policy.errors.absoluteRatio, 0.02],
    ['CANARY_GATE_WINDOW_SLOT', '2s', (c) => c.window.slot, 2000],
    ['CANARY_GATE_WINDOW_SLOTS', '6', (c) => c.window.slots, 6],
    ['CANARY_GATE_EVALUATION_LEASE_TTL', '20000', (c) => c.evaluation.leaseTtl, 20_000],
    ['CANARY_GATE_EVALUATION_ENABLED', 'false', (c) => c.evaluation.enabled, false],
    ['CANARY_GATE_PROXY_ERROR_STATUSES', '5xx, 429', (c) => c.proxy.errorStatuses, ['5xx', '429']],
    ['CANARY_GATE_PROXY_GRPC_ERROR_CODES', '2, 14', (c) => c.proxy.grpcErrorCodes, [2, 14]],
    ['CANARY_GATE_PROXY_PROTOCOL', 'h2c', (c) => c.proxy.protocol, 'h2c'],
    ['CANARY_GATE_FLAG_ROLLBACK_VALUE', '10', (c) => c.flag.rollbackValue, '10'],
    ['CANARY_GATE_LOG_LEVEL', 'debug', (c) => c.log.level, 'debug'],
  ])('%s=%s', (name, value, pick, expected) => {
    expect(pick(load({ env: { [name]: value } }))).toEqual(expected);
  });

  it.each<[string, Record<string, string>, (c: Config) => unknown, unknown]>([
    ['a long name wins over an alias', { PROXY_PORT: '1111', CANARY_GATE_PROXY_PORT: '2222' }, (c) => c.proxy.port, 2222],
    [
      'a long name wins over an alias, in either order',
      { CANARY_GATE_REDIS_URL: 'redis://long:1', REDIS_URL: 'redis://short:1' },
      (c) => c.redis.url,
      'redis://long:1',
    ],
    ['an empty variable is ignored', { PROXY_PORT: '' }, (c) => c.proxy.port, 7000],
    ['the environment wins over the file', { PROXY_PORT: '7001' }, (c) => c.proxy.port, 7001],
  ])('%s', (_name, env, pick, expected) => {
    const file = fixture('proxy:\n  port: 7000\n');
    expect(pick(load({ file, env }))).toEqual(expected);
  });

  it.each(leafPaths().map(([path]) => path))('%s has a long name that is read', (path) => {
    // Read: the value either changes the config or makes it invalid; ignored, the config would stay the default.
    const env = { [envNameOf(path)]: '!bad' };
    let changed: boolean;
    try {
      changed = JSON.stringify(load({ env })) !== JSON.stringify(load({}));
    } catch (err) {
      changed = err instanceof CanaryGateError && err.code === ErrorCodes.CONFIG_INVALID;
    }
    expect(changed).toBe(true);
  });

  it.each([
    [{ PROXY_PORT: 'eighty' }, /^proxy\.port: .* \(from PROXY_PORT\)$/],
    [
      { CANARY_GATE_POLICY_ERRORS_ABSOLUTE_RATIO: '5' },
      /^policy\.errors\.absoluteRatio: must be a ratio .* \(from CANARY_GATE_POLICY_ERRORS_ABSOLUTE_RATIO\)$/,
    ],
    [{ REDIS_URL: 'localhost:6379' }, /^redis\.url: .* \(from REDIS_URL\)$/],
    [{ CANARY_GATE_WINDOW_SLOT: 'soon' }, /^window\.slot: .*"soon".* \(from CANARY_GATE_WINDOW_SLOT\)$/],
    [{ CANARY_GATE_PROXY_ERROR_STATUSES: '5xx,teapot' }, /^proxy\.errorStatuses\.1: .* \(from CANARY_GATE_PROXY_ERROR_STATUSES\)$/],
    [
      { CANARY_GATE_PROXY_GRPC_ERROR_CODES: '2,99' },
      /^proxy\.grpcErrorCodes\.1: must be a gRPC status code .* \(from CANARY_GATE_PROXY_GRPC_ERROR_CODES\)$/,
    ],
    [{ CANARY_GATE_PROXY_UPSTREAM_PROTOCOL: 'h3' }, /^proxy\.upstreamProtocol: .* \(from CANARY_GATE_PROXY_UPSTREAM_PROTOCOL\)$/],
    [{ POD_VERSION: 'v3' }, /^pod\.version: must be the baseline .* \(from POD_VERSION\)$/],
    [{ PROXY_PORT: '8081', CANARY_GATE_PROXY_PORT: 'x' }, /^proxy\.port: .* \(from CANARY_GATE_PROXY_PORT\)$/],
    [
      { CANARY_GATE_WINDOW_SLOT: '250ms' },
      /^evaluation\.delay: must be shorter than window\.slot .* \(window\.slot from CANARY_GATE_WINDOW_SLOT\)$/,
    ],
    [
      { CANARY_GATE_WINDOW_SLOT: '250ms', CANARY_GATE_EVALUATION_DELAY: '300ms' },
      /^evaluation\.delay: .* \(from CANARY_GATE_EVALUATION_DELAY; window\.slot from CANARY_GATE_WINDOW_SLOT\)$/,
    ],
    [{ CANARY_GATE_PROXY_PORT: '!x' }, /^proxy\.port: .*string.* \(from CANARY_GATE_PROXY_PORT\)$/],
  ])('a problem in %j names the variable', (env, detail) => {
    const err = loadError({ env });
    expect(err.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(err.details).toHaveLength(1);
    expect(err.details[0]).toMatch(detail);
  });
});

describe('the loaded config', () => {
  it('is deep-frozen', () => {
    const c = load({});
    for (const node of [c, c.pod, c.proxy, c.proxy.errorStatuses, c.policy, c.policy.latency, c.policy.errors, c.log]) {
      expect(Object.isFrozen(node)).toBe(true);
    }
    expect(() => {
      (c.policy.latency as { relativeP95: number }).relativeP95 = 9;
    }).toThrow(TypeError);
    expect(() => (c.proxy.errorStatuses as string[]).push('4xx')).toThrow(TypeError);
  });

  it('leaves DEFAULTS untouched', () => {
    const before = structuredClone(DEFAULTS);
    load({ file: fixture('proxy:\n  errorStatuses: [5xx, 429]\n'), env: { PROXY_PORT: '1234' } });
    expect(DEFAULTS).toEqual(before);
    expect(Object.isFrozen(DEFAULTS)).toBe(false);
  });

  it.each<[string, LoadOptions, string]>([
    ['the hostname option when pod.name is empty', { env: {}, hostname: 'node-a' }, 'node-a'],
    ['POD_NAME before the hostname option', { env: { POD_NAME: 'api-1' }, hostname: 'node-a' }, 'api-1'],
    ['pod.name from the file before the hostname option', { file: 'pod:\n  name: api-2\n', env: {}, hostname: 'node-a' }, 'api-2'],
    ['the machine host name without the option', { env: {} }, hostname()],
  ])('pod.name is %s', (_name, options, expected) => {
    const file = options.file === undefined ? undefined : fixture(options.file);
    expect(loadConfig({ ...options, file }).pod.name).toBe(expected);
  });
});

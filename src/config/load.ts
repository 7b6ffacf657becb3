/**
 * Loads the config: DEFAULTS, then the YAML file, then the environment; validated once by the schema, then
 * deep-frozen. Every problem names the field's path (and the environment variable it came from) and the reason.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml, parseDocument, YAMLParseError } from 'yaml';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import { DEFAULTS, ENV_ALIASES } from './defaults.ts';
import { hashTagOf, readRedisTarget } from './redis-target.ts';
import { configSchema, type Config } from './schema.ts';
import { readTlsFiles } from './tls-files.ts';

/** Stands for the service's name in flag.key (`feature:{<service>}:v2_traffic_percentage`). */
export const SERVICE_PLACEHOLDER = '<service>';

type Tree = Record<string, unknown>;
const isTree = (x: unknown): x is Tree => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Every leaf path of DEFAULTS with its default value, e.g. ['policy.minSamples', 100]. */
export function leafPaths(tree: Tree = DEFAULTS, prefix = ''): Array<[string, unknown]> {
  return Object.entries(tree).flatMap(([key, value]) =>
    isTree(value) ? leafPaths(value, `${prefix}${key}.`) : [[`${prefix}${key}`, value] as [string, unknown]],
  );
}

/** `policy.latency.relativeP95` -> `CANARY_GATE_POLICY_LATENCY_RELATIVE_P95`. */
export function envNameOf(path: string): string {
  return `CANARY_GATE_${path
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/\./g, '_')
    .toUpperCase()}`;
}

function mergeOver(base: unknown, over: unknown): unknown {
  if (!isTree(base) || !isTree(over)) return over === undefined ? base : over;
  const out: Tree = { ...base };
  // defineProperty, not assignment: a `__proto__` key from YAML must stay a key (and be reported as unknown), not
  // replace the object's prototype (found by fuzzing, test/fuzz/config-fields.test.ts).
  for (const [k, v] of Object.entries(over)) {
    Object.defineProperty(out, k, {
      value: mergeOver(Object.hasOwn(base, k) ? base[k] : undefined, v),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function setPath(tree: Tree, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = tree;
  for (const key of keys.slice(0, -1)) {
    if (!isTree(node[key])) node[key] = {};
    node = node[key] as Tree;
  }
  node[keys[keys.length - 1]!] = value;
}

/** Reads an environment string as the type of the field's default: numbers and booleans as YAML scalars, lists split on commas. */
function fromEnv(text: string, sample: unknown): unknown {
  if (Array.isArray(sample))
    return text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  if (typeof sample === 'string') return text;
  // A value YAML does not read cleanly (a tag such as `!x`, a stray `:`) stays the string it is, so the validation
  // error names the field and shows the value, and the yaml library prints no warning of its own.
  const doc = parseDocument(text, { logLevel: 'silent' });
  if (doc.errors.length > 0 || doc.warnings.length > 0) return text;
  try {
    return doc.toJS(); // throws on an alias without its anchor (`*a`)
  } catch {
    return text;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export interface LoadOptions {
  /** YAML file path; omitted: DEFAULTS and the environment only. */
  readonly file?: string | undefined;
  /** Environment (tests pass their own; the CLI passes process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Used when pod.name is empty. */
  readonly hostname?: string;
}

/**
 * @returns the validated, deep-frozen config (durations in ms)
 * @throws CanaryGateError `CG_CONFIG_UNREADABLE` when the file cannot be read or is not YAML;
 *   `CG_CONFIG_INVALID` with one `details` line per problem (`path: reason`) otherwise
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? {};
  let fromFile: unknown = {};
  if (options.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      throw new CanaryGateError(ErrorCodes.CONFIG_UNREADABLE, `cannot read config file ${options.file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      fromFile = parseYaml(text) ?? {};
    } catch (err) {
      const where = err instanceof YAMLParseError ? ` at line ${err.linePos?.[0]?.line ?? '?'}` : '';
      throw new CanaryGateError(
        ErrorCodes.CONFIG_UNREADABLE,
        `config file ${options.file} is not valid YAML${where}: ${(err as Error).message.split('\n')[0]}`,
        { cause: err },
      );
    }
    if (!isTree(fromFile)) {
      throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, `config file ${options.file} must hold a mapping`, {
        details: ['(root): must be a mapping of fields'],
      });
    }
  }
  const raw = mergeOver(structuredClone(DEFAULTS), fromFile) as Tree;

  const sources = new Map<string, string>();
  const defaults = new Map(leafPaths());
  for (const [alias, path] of Object.entries(ENV_ALIASES)) {
    const text = env[alias];
    if (text !== undefined && text !== '') {
      setPath(raw, path, fromEnv(text, defaults.get(path)));
      sources.set(path, alias);
    }
  }
  for (const [path, sample] of defaults) {
    const name = envNameOf(path);
    const text = env[name];
    if (text !== undefined && text !== '') {
      setPath(raw, path, fromEnv(text, sample));
      sources.set(path, name);
    }
  }

  const parsed = configSchema.safeParse(raw);
  const problems: string[] = [];
  // `path: reason (from ENV_NAME)`. A list element's path (proxy.errorStatuses.1) is looked up by its field's path.
  // A rule across fields also names where the other fields it compares came from.
  const sourceOf = (path: string): string | undefined => {
    let field = path;
    while (field !== '' && !sources.has(field)) field = field.includes('.') ? field.slice(0, field.lastIndexOf('.')) : '';
    return sources.get(field);
  };
  const problem = (path: string, reason: string, ...related: string[]): void => {
    const own = sourceOf(path);
    const from = [own && `from ${own}`, ...related.map((r) => sourceOf(r) && `${r} from ${sourceOf(r)}`)].filter(Boolean).join('; ');
    problems.push(`${path || '(root)'}: ${reason}${from ? ` (${from})` : ''}`);
  };
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k].join('.')) : [issue.path.join('.')];
      for (const path of keys) problem(path, issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message);
    }
  } else {
    const c = parsed.data;
    if (c.versions.baseline === c.versions.canary) problem('versions.canary', 'must differ from versions.baseline', 'versions.baseline');
    if (!c.versions.namedByRequest && c.pod.version !== c.versions.baseline && c.pod.version !== c.versions.canary) {
      problem(
        'pod.version',
        `must be the baseline (${c.versions.baseline}) or the canary (${c.versions.canary}), got ${JSON.stringify(c.pod.version)}`,
        'versions.baseline',
        'versions.canary',
      );
    }
    if (c.versions.namedByRequest && !c.policy.advisory) {
      problem(
        'policy.advisory',
        'must be true when versions.namedByRequest is (Argo Rollouts owns the weights and the abort)',
        'versions.namedByRequest',
      );
    }
    if (c.evaluation.delay >= c.window.slot)
      problem('evaluation.delay', `must be shorter than window.slot (${c.evaluation.delay} ms >= ${c.window.slot} ms)`, 'window.slot');
    // A warning level at or past its failing level never warns before it fails: name both fields.
    if (c.policy.latency.warnRelativeP95 > 0 && c.policy.latency.warnRelativeP95 >= c.policy.latency.relativeP95) {
      problem(
        'policy.latency.warnRelativeP95',
        `must be below policy.latency.relativeP95 (${c.policy.latency.warnRelativeP95} >= ${c.policy.latency.relativeP95})`,
        'policy.latency.relativeP95',
      );
    }
    if (c.policy.errors.warnRatio > 0 && c.policy.errors.warnRatio >= c.policy.errors.absoluteRatio) {
      problem(
        'policy.errors.warnRatio',
        `must be below policy.errors.absoluteRatio (${c.policy.errors.warnRatio} >= ${c.policy.errors.absoluteRatio})`,
        'policy.errors.absoluteRatio',
      );
    }
    // `<service>` in the flag key is the service's name: one flag per service, in the service's hash slot.
    c.flag.key = c.flag.key.replaceAll(SERVICE_PLACEHOLDER, c.service);
    const target = readRedisTarget(c.redis);
    if (Array.isArray(target)) {
      for (const p of target) problem(p.path, p.reason);
    } else {
      c.redis.mode = target.mode;
      // The rollback and reset scripts write the flag with the service's keys: on a Cluster they must share a slot.
      if (target.mode === 'cluster' && hashTagOf(c.flag.key) !== c.service) {
        problem(
          'flag.key',
          `must carry the service's hash tag {${c.service}} on a Redis Cluster (got ${JSON.stringify(c.flag.key)}), e.g. feature:{<service>}:v2_traffic_percentage`,
          'redis.mode',
        );
      }
    }
    // TLS: both files or neither; read and matched now, so that a bad file fails the start rather than each handshake.
    const { certFile, keyFile } = c.proxy.tls;
    if (certFile !== '' && keyFile === '')
      problem(
        'proxy.tls.keyFile',
        `must name the private key file of the certificate in proxy.tls.certFile (${certFile})`,
        'proxy.tls.certFile',
      );
    else if (certFile === '' && keyFile !== '')
      problem('proxy.tls.certFile', `must name the certificate file of the key in proxy.tls.keyFile (${keyFile})`, 'proxy.tls.keyFile');
    else if (certFile === '' && c.proxy.tls.clientCaFile !== '')
      problem(
        'proxy.tls.clientCaFile',
        'needs proxy.tls.certFile and keyFile: client certificates are asked for on the TLS port only',
        'proxy.tls.certFile',
      );
    else if (certFile !== '') {
      if (c.proxy.protocol === 'h2c') {
        problem(
          'proxy.protocol',
          'must be http1 when proxy.tls is set: the TLS port negotiates h2 or http/1.1 by ALPN (h2c is HTTP/2 in cleartext)',
          'proxy.tls.certFile',
        );
      }
      const material = readTlsFiles(c.proxy.tls);
      if (Array.isArray(material)) for (const p of material) problem(p.path, p.reason);
    }
    if (c.evaluation.leaseTtl < 2 * c.redis.commandTimeout) {
      problem(
        'evaluation.leaseTtl',
        `must be at least twice redis.commandTimeout (${c.evaluation.leaseTtl} ms < 2 x ${c.redis.commandTimeout} ms)`,
        'redis.commandTimeout',
      );
    }
  }
  if (problems.length > 0) {
    throw new CanaryGateError(
      ErrorCodes.CONFIG_INVALID,
      `invalid config${options.file ? ` in ${options.file}` : ''}: ${problems.length} problem(s)`,
      { details: problems },
    );
  }
  const config = parsed.data!;
  if (config.pod.name === '') config.pod.name = options.hostname ?? hostname();
  return deepFreeze(config);
}

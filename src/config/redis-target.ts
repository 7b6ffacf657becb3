/**
 * Where Redis is: one server, a Redis Cluster, or a primary that Sentinels manage. Read from `redis.mode`,
 * `redis.url`, `redis.nodes`, `redis.masterName` and `redis.sentinelPassword` once, at config load, so that a wrong combination fails at
 * start-up with the field's path (exit 2), and the client (src/fleet/redis-client.ts) only translates the result into
 * ioredis options.
 *
 * URL conventions (the ones redis-py, Lettuce and the Redis docs use, with several hosts as in most clients):
 *   standalone  redis://[user:password@]host:port[/db]                 rediss:// for TLS
 *   cluster     redis://[user:password@]host:port[,host:port...]      seed nodes; the client discovers the rest
 *   sentinel    redis+sentinel://[user:password@]host:26379[,host:26379...]/<masterName>[/db]
 *                                                                      rediss+sentinel:// for TLS
 * A `redis+sentinel://` URL selects the sentinel mode by itself. User and password authenticate to the data nodes
 * (the primary and its replicas, or every Cluster node); the Sentinels get `redis.sentinelPassword`, if any.
 */

/** One `host:port`. */
export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** How to reach Redis, as read from the config. */
export interface RedisTarget {
  readonly mode: RedisMode;
  /** standalone: the server; cluster: seed nodes; sentinel: the Sentinels. */
  readonly nodes: readonly RedisAddress[];
  /** sentinel only: the name the Sentinels monitor the primary under. */
  readonly masterName: string;
  /** sentinel only: the Sentinels' own password, or undefined. */
  readonly sentinelPassword: string | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** Database number (standalone and sentinel; a Cluster has only database 0). */
  readonly db: number;
  readonly tls: boolean;
}

export const REDIS_MODES = ['standalone', 'cluster', 'sentinel'] as const;
export type RedisMode = (typeof REDIS_MODES)[number];

/** The fields of the config's `redis` section this reader uses. */
export interface RedisTargetFields {
  readonly mode: RedisMode;
  readonly url: string;
  readonly nodes: readonly string[];
  readonly masterName: string;
  /** Absent or empty: the Sentinels are asked without a password. */
  readonly sentinelPassword?: string;
}

/** A config problem: the field's path and the reason. */
export interface RedisTargetProblem {
  readonly path: string;
  readonly reason: string;
}

const SCHEME = /^(rediss?)(\+sentinel)?:\/\/(.*)$/s;

/** `host:port`, `[v6]:port` or a bare host (`defaultPort` then); null when it is neither. */
export function parseAddress(text: string, defaultPort: number): RedisAddress | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]/?#@,\s]+)(?::([0-9]{1,5}))?$/.exec(text.trim());
  if (m === null) return null;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/**
 * Reads the Redis target of a config's `redis` section.
 * @returns the target, or the problems (each with its field's path) when the fields do not describe one
 */
export function readRedisTarget(fields: RedisTargetFields): RedisTarget | RedisTargetProblem[] {
  const problems: RedisTargetProblem[] = [];
  const m = SCHEME.exec(fields.url);
  if (m === null) return [{ path: 'redis.url', reason: 'must be a redis://, rediss://, redis+sentinel:// or rediss+sentinel:// URL' }];
  const sentinelUrl = m[2] !== undefined;
  // A sentinel URL selects the sentinel mode; standalone is the default, so it cannot have been meant.
  const mode: RedisMode = sentinelUrl && fields.mode === 'standalone' ? 'sentinel' : fields.mode;
  if (sentinelUrl && mode === 'cluster')
    problems.push({ path: 'redis.mode', reason: 'is cluster, but redis.url is a redis+sentinel:// URL' });

  const rest = m[3]!;
  const authority = rest.slice(0, rest.search(/[/?#]|$/));
  const path = rest.slice(authority.length).replace(/[?#].*$/s, '');
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at) : '';
  const hostList = authority.slice(at + 1);
  const decode = (s: string | undefined): string | undefined => {
    if (s === undefined || s === '') return undefined;
    try {
      return decodeURIComponent(s);
    } catch {
      problems.push({ path: 'redis.url', reason: 'has a part that is not valid percent-encoding' });
      return undefined;
    }
  };
  const colon = userinfo.indexOf(':');
  const username = decode(colon < 0 ? userinfo : userinfo.slice(0, colon));
  const password = colon < 0 ? undefined : decode(userinfo.slice(colon + 1));

  const defaultPort = mode === 'sentinel' ? 26379 : 6379;
  const urlHosts = hostList === '' ? [] : hostList.split(',');
  const listed = fields.nodes.length > 0 ? fields.nodes : urlHosts;
  const source = fields.nodes.length > 0 ? 'redis.nodes' : 'redis.url';
  const nodes: RedisAddress[] = [];
  for (const text of listed) {
    const address = parseAddress(text, defaultPort);
    if (address === null) problems.push({ path: source, reason: `${JSON.stringify(text)} is not a host:port` });
    else nodes.push(address);
  }
  if (nodes.length === 0 && problems.length === 0) problems.push({ path: source, reason: 'names no host' });

  // Path: /<db> (standalone, cluster) or /<masterName>[/<db>] (sentinel).
  const segments = path.split('/').filter((s) => s !== '');
  let masterName = fields.masterName;
  let dbText: string | undefined;
  if (sentinelUrl) {
    if (segments[0] !== undefined && masterName === '') masterName = decode(segments[0]) ?? '';
    dbText = segments[1];
    if (segments.length > 2) problems.push({ path: 'redis.url', reason: 'must end in /<masterName> or /<masterName>/<db>' });
  } else {
    dbText = segments[0];
    if (segments.length > 1) problems.push({ path: 'redis.url', reason: 'must end in /<db> at most' });
  }
  const db = dbText === undefined ? 0 : /^[0-9]{1,5}$/.test(dbText) ? Number(dbText) : Number.NaN;
  if (Number.isNaN(db)) problems.push({ path: 'redis.url', reason: `database ${JSON.stringify(dbText)} must be a number such as 0` });

  if (mode === 'standalone' && nodes.length > 1)
    problems.push({
      path: source,
      reason: `lists ${nodes.length} hosts: set redis.mode to cluster (seed nodes of a Redis Cluster) or sentinel (Sentinels)`,
    });
  if (mode === 'cluster' && db !== 0)
    problems.push({ path: 'redis.url', reason: 'names database ' + db + ': a Redis Cluster has only database 0' });
  if (mode === 'sentinel' && masterName === '')
    problems.push({ path: 'redis.masterName', reason: 'must name the primary the Sentinels monitor (or end redis.url in /<masterName>)' });
  if (mode !== 'sentinel' && fields.masterName !== '')
    problems.push({ path: 'redis.masterName', reason: `is only read in sentinel mode (mode is ${mode})` });
  const sentinelPassword = fields.sentinelPassword === undefined || fields.sentinelPassword === '' ? undefined : fields.sentinelPassword;
  if (mode !== 'sentinel' && sentinelPassword !== undefined)
    problems.push({ path: 'redis.sentinelPassword', reason: `is only read in sentinel mode (mode is ${mode})` });
  if (problems.length > 0) return problems;
  return { mode, nodes, masterName, sentinelPassword, username, password, db: Number.isNaN(db) ? 0 : db, tls: m[1] === 'rediss' };
}

/**
 * The Redis Cluster hash tag of a key: the text between the first `{` and the next `}` when it is not empty, else the
 * whole key (the rule of the Cluster specification, "Hash tags"). Keys with the same hash tag share a slot.
 */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/**
 * Real Redis Cluster and Sentinel setups for tests, made of private `redis-server` processes on free loopback ports
 * (no persistence; their files in a temporary folder). `redis-cli --cluster create` builds the Cluster; a Sentinel is
 * `redis-server <conf> --sentinel` (no redis-sentinel package needed). `stop()` kills every process started here and
 * removes the folder; it is safe to call twice, and after a process was killed by the test.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, startRedisServer } from '../../src/demo/find-redis.ts';

const run = promisify(execFile);
type Server = Awaited<ReturnType<typeof startRedisServer>>;

/** Node timeout of the test Cluster and down-after of the test Sentinel, ms: a failover takes about twice this. */
export const HA_TIMEOUT_MS = 1000;

/** A started redis-server, killable by the test. */
export interface HaNode {
  readonly port: number;
  readonly server: Server;
  /** SIGKILL (a crash); resolves when the process is gone. */
  kill(): Promise<void>;
}

/** Every process started here and not yet gone: killed when the test worker exits, should a test leave any behind. */
const running = new Set<Server['process']>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function nodeOf(server: Server): HaNode {
  running.add(server.process);
  server.process.once('exit', () => running.delete(server.process));
  return {
    port: server.port,
    server,
    kill: async () => {
      if (server.process.exitCode !== null || server.process.signalCode !== null) return;
      const gone = new Promise((resolve) => server.process.once('exit', resolve));
      server.process.kill('SIGKILL');
      await gone;
    },
  };
}

/** Polls `check` every 100 ms until it returns a value; throws `what` after `timeoutMs`. */
async function until<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Passwords of the servers started here that require one, by port. */
const passwords = new Map<number, string>();

/** One-shot command to 127.0.0.1:`port` on a plain client that gives up fast. */
async function ask(port: number, ...args: string[]): Promise<unknown> {
  const c = new Redis({
    port,
    host: '127.0.0.1',
    password: passwords.get(port),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
    commandTimeout: 1000,
    retryStrategy: () => null,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await c.call(args[0]!, ...args.slice(1));
  } finally {
    c.disconnect();
  }
}

export interface TestCluster {
  readonly nodes: readonly HaNode[];
  /** `redis://127.0.0.1:p1,127.0.0.1:p2,...`: every node as a seed. */
  readonly url: string;
  /** The node that serves `key`'s slot as primary now. */
  primaryOf(key: string): Promise<HaNode>;
  /** Replicas connected to `node` now (INFO replication, connected_slaves). */
  replicasOf(node: HaNode): Promise<number>;
  stop(): Promise<void>;
}

/** Six nodes, three primaries with one replica each; resolves when every node reports cluster_state:ok. */
export async function startCluster(): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'cg-cluster-'));
  const nodes: HaNode[] = [];
  const stop = async (): Promise<void> => {
    for (const n of nodes) await n.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 6; i++) {
      const port = await freePort();
      const server = await startRedisServer(
        [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          String(HA_TIMEOUT_MS),
          '--dir',
          dir,
          // A replica's first sync starts at once (default: 5 s later), so that the Cluster can fail over soon.
          '--repl-diskless-sync-delay',
          '0',
        ],
        port,
      );
      nodes.push(nodeOf(server));
    }
    await run(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
      {
        timeout: 20_000,
      },
    );
    for (const n of nodes) {
      await until(
        async () => (String(await ask(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok') ? true : undefined),
        15_000,
        `cluster_state:ok on ${n.port}`,
      );
      // A replica that never synced cannot be elected: wait for every replica's link to its primary.
      await until(
        async () => {
          const info = String(await ask(n.port, 'INFO', 'replication'));
          return info.includes('role:master') || info.includes('master_link_status:up') ? true : undefined;
        },
        15_000,
        `the replica on ${n.port} in sync`,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes,
    url: `redis://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    async primaryOf(key) {
      const alive = nodes.filter((n) => n.server.process.exitCode === null && n.server.process.signalCode === null);
      const slot = Number(await ask(alive[0]!.port, 'CLUSTER', 'KEYSLOT', key));
      const ranges = (await ask(alive[0]!.port, 'CLUSTER', 'SLOTS')) as Array<
        [number, number, [string, number, ...unknown[]], ...unknown[]]
      >;
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      const node = nodes.find((n) => n.port === Number(range?.[2][1]));
      if (node === undefined) throw new Error(`no primary serves slot ${slot}`);
      return node;
    },
    async replicasOf(node) {
      return Number(/connected_slaves:(\d+)/.exec(String(await ask(node.port, 'INFO', 'replication')))?.[1] ?? 0);
    },
    stop,
  };
}

export interface TestSentinel {
  readonly primary: HaNode;
  readonly replica: HaNode;
  readonly sentinel: HaNode;
  readonly masterName: string;
  /** `redis+sentinel://127.0.0.1:<sentinel port>/<masterName>`. */
  readonly url: string;
  /** The primary's port as the Sentinel reports it now. */
  primaryPort(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A primary, a replica in sync with it, and one Sentinel (quorum 1) that knows both.
 * @param sentinelPassword the Sentinel's `requirepass`, or none
 */
export async function startSentinel(masterName = 'cg-primary', sentinelPassword?: string): Promise<TestSentinel> {
  const dir = mkdtempSync(join(tmpdir(), 'cg-sentinel-'));
  const nodes: HaNode[] = [];
  const stop = async (): Promise<void> => {
    for (const n of nodes) await n.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const primary = nodeOf(await startRedisServer(['--dir', dir, '--repl-diskless-sync-delay', '0']));
    nodes.push(primary);
    const replica = nodeOf(
      await startRedisServer(['--dir', dir, '--repl-diskless-sync-delay', '0', '--replicaof', '127.0.0.1', String(primary.port)]),
    );
    nodes.push(replica);
    await until(
      async () => (String(await ask(replica.port, 'INFO', 'replication')).includes('master_link_status:up') ? true : undefined),
      10_000,
      'the replica in sync',
    );
    const port = await freePort();
    if (sentinelPassword !== undefined) passwords.set(port, sentinelPassword);
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 1`,
        `sentinel down-after-milliseconds ${masterName} ${HA_TIMEOUT_MS}`,
        `sentinel failover-timeout ${masterName} 5000`,
        `sentinel parallel-syncs ${masterName} 1`,
        ...(sentinelPassword === undefined ? [] : [`requirepass ${sentinelPassword}`]),
        '',
      ].join('\n'),
    );
    const sentinel = nodeOf(await startSentinelProcess(conf, port));
    nodes.push(sentinel);
    await until(
      async () => {
        const replicas = (await ask(port, 'SENTINEL', 'REPLICAS', masterName)) as unknown[];
        return replicas.length > 0 ? true : undefined;
      },
      10_000,
      'the Sentinel to discover the replica',
    );
    return {
      primary,
      replica,
      sentinel,
      masterName,
      url: `redis+sentinel://127.0.0.1:${port}/${masterName}`,
      primaryPort: async () => Number(((await ask(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as string[])[1]),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startSentinelProcess(conf: string, port: number): Promise<Server> {
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await until(async () => ((await ask(port, 'PING')) === 'PONG' ? true : undefined), 5000, `the Sentinel on ${port}`);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

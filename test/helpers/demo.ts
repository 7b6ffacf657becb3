/** Runs `canary-gate demo` as a child process against a private redis-server, as a user would with REDIS_URL set. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/load.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import type { RolloutState } from '../../src/core/rollout.ts';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { DEMO_CONFIG } from '../../src/demo/fleet.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

export interface DemoRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The flag's value in the demo's Redis after the run. */
  readonly flag: string | null;
  /** The flag key of the demo's config (never hard-coded: the config names it). */
  readonly flagKey: string;
  /** The rollout in the demo's Redis after the run, or null. */
  readonly rollout: RolloutState | null;
}

export async function runDemoProcess(args: string[], timeoutMs: number): Promise<DemoRun> {
  const redis = await startRedisServer();
  try {
    const child = spawn(process.execPath, [MAIN, 'demo', ...args], {
      env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    clearTimeout(timer);
    const config = loadConfig({ file: DEMO_CONFIG, env: {} });
    const client = new Redis(redis.url);
    const flag = await client.get(config.flag.key);
    const rollout = await client.get(serviceKeys(config.redis.keyPrefix, config.service).rollout);
    client.disconnect();
    return {
      code,
      stdout,
      stderr,
      flag,
      flagKey: config.flag.key,
      rollout: rollout === null ? null : (JSON.parse(rollout) as RolloutState),
    };
  } finally {
    await redis.stop();
  }
}

/** How long a test lets the demo run, ms. */
const DEMO_TIMEOUT_MS = 150_000;

/**
 * Runs the demo with `args` ({@link runDemoProcess}) and, when it did not exit 0, prints its key lines (steps,
 * rollbacks, timing) so that the test's log says why; `seconds` is the wall time of the whole run.
 */
export async function runDemo(args: string[]): Promise<DemoRun & { readonly seconds: number }> {
  const started = Date.now();
  const run = await runDemoProcess(args, DEMO_TIMEOUT_MS);
  const seconds = (Date.now() - started) / 1000;
  if (run.code !== 0)
    console.log(
      run.stdout
        .split('\n')
        .filter((l) => /(>>>|ROLL|time per|no rollback)/.test(l))
        .join('\n'),
    );
  return { ...run, seconds };
}

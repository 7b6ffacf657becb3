/** Runs `canary-gate demo` as a child process against a private redis-server, as a user would with REDIS_URL set. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedisServer } from '../../src/demo/find-redis.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

export interface DemoRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The flag's value in the demo's Redis after the run. */
  readonly flag: string | null;
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
    const client = new Redis(redis.url);
    const flag = await client.get('feature:{demo-api}:v2_traffic_percentage');
    client.disconnect();
    return { code, stdout, stderr, flag };
  } finally {
    await redis.stop();
  }
}

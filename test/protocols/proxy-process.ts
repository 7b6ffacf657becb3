/**
 * The proxy in a process of its own, so that a test can read its resident memory (`/proc/<pid>/status`) apart from
 * the test runner's, the client's and the app's. Run as a script with PROXY_CONFIG (JSON of the proxy config), it
 * prints `{"port":N}` once it listens, then one JSON line per record (ProxiedRequest), and exits on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../src/config/schema.ts';
import type { ProxiedRequest } from '../../src/proxy/proxy-server.ts';

export interface ProxyProcess {
  readonly url: string;
  readonly pid: number;
  /** Records printed by the proxy so far, in order. */
  readonly records: ProxiedRequest[];
  /** The process's resident set size now, bytes (VmRSS). */
  rssBytes(): number;
  close(): Promise<void>;
}

/** VmRSS of process `pid`, bytes, from /proc (Linux). */
export function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  if (line === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(line.replace(/[^0-9]/g, '')) * 1024;
}

/**
 * Starts the proxy with `config` in a child process; resolves once it listens.
 * @param nodeFlags Node/V8 flags of the child (`--max-semi-space-size=1`), to measure what a runtime flag changes
 */
export function startProxyProcess(config: Config['proxy'], nodeFlags: readonly string[] = []): Promise<ProxyProcess> {
  const child: ChildProcess = spawn(process.execPath, [...nodeFlags, fileURLToPath(import.meta.url)], {
    env: { PATH: process.env.PATH ?? '', PROXY_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const records: ProxiedRequest[] = [];
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the proxy process exited (${code}) before it listened`)));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      let newline = out.indexOf('\n');
      while (newline >= 0) {
        const line = JSON.parse(out.slice(0, newline)) as { port?: number } & ProxiedRequest;
        out = out.slice(newline + 1);
        newline = out.indexOf('\n');
        if (line.port === undefined) {
          records.push(line);
          continue;
        }
        resolve({
          url: `http://127.0.0.1:${line.port}`,
          pid: child.pid!,
          records,
          rssBytes: () => rssOf(child.pid!),
          close: () =>
            new Promise<void>((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    });
  });
}

async function serve(): Promise<void> {
  const { createProxyServer } = await import('../../src/proxy/proxy-server.ts');
  const { createLogger } = await import('../../src/config/logger.ts');
  const config = JSON.parse(process.env.PROXY_CONFIG ?? '{}') as Config['proxy'];
  const proxy = createProxyServer({
    config,
    recorder: { record: (r) => void process.stdout.write(`${JSON.stringify(r)}\n`) },
    logger: createLogger('silent'),
  });
  const { port } = await proxy.listen();
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.once('SIGTERM', () => void proxy.destroy().then(() => process.exit(0)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) void serve();

/**
 * A healthy app in a process of its own, as in a pod (the app does not share the proxy's event loop, so its pauses
 * are not the proxy's and the other way round). It reads each request's whole body, waits `serviceMs`, then answers
 * `ok`, or `largeBytes` bytes on `/large`. Run as a script, it prints `{"port":N}` once it listens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface AppProcess {
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the app in a child process and resolves once it listens on a free loopback port. */
export function startAppProcess(serviceMs: number, largeBytes = 0): Promise<AppProcess> {
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { PATH: process.env.PATH ?? '', APP_SERVICE_MS: String(serviceMs), APP_LARGE_BYTES: String(largeBytes) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the app process exited (${code}) before it listened`)));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0]!;
      if (!out.includes('\n')) return;
      const { port } = JSON.parse(line) as { port: number };
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      });
    });
  });
}

function serve(): void {
  const serviceMs = Number(process.env.APP_SERVICE_MS ?? 0);
  const large = Buffer.alloc(Number(process.env.APP_LARGE_BYTES ?? 0), 7);
  const server = createServer((req, res) => {
    req.resume();
    req.once('end', () =>
      setTimeout(() => {
        const body = req.url === '/large' ? large : Buffer.from('ok');
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
        res.end(body);
      }, serviceMs),
    );
  });
  server.keepAliveTimeout = 10_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
  process.once('SIGTERM', () => process.exit(0));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve();

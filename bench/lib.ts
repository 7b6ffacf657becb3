/**
 * Shared parts of the benchmarks: where results go, what they record about the machine, medians, pinning processes
 * to cores with taskset, child processes that announce their port, /proc readings of CPU time and RSS, and the load
 * generators: autocannon (a Node child), wrk (closed loop, `--latency` output parsed) and the C open-loop client
 * (bench/servers/open-loop.c, compiled with cc).
 *
 * Every benchmark runs its contenders side by side in one process tree and writes `bench/results/<name>.json`
 * (or `$BENCH_RESULTS_DIR/<name>.json`). `BENCH_SMOKE=1` shrinks every size so that the smoke test keeps them from rotting.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = resolve(import.meta.dirname, '..');
export const NODE = process.execPath;
export const SMOKE = process.env.BENCH_SMOKE === '1';
const RESULTS = process.env.BENCH_RESULTS_DIR ?? join(ROOT, 'bench/results');

/** The machine a result was measured on. */
export function machine(): Record<string, unknown> {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    // A run on uncommitted code (TypeScript sources, the lockfile) says so: its figures belong to no commit.
    const changed = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bench', 'package-lock.json'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    if (changed.split('\n').some((line) => line.trim().endsWith('.ts') || line.includes('package-lock.json'))) commit += '+uncommitted';
  } catch {
    // not a git checkout
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: process.platform,
    commit,
  };
}

/**
 * Writes `<results>/<name>.json` with the machine, the parameters, the figures and any `extra` top-level blocks
 * (e.g. proxy-overhead's `targets`).
 * @returns the path written
 */
export async function writeResult(
  name: string,
  params: Record<string, unknown>,
  figures: unknown,
  extra: Record<string, unknown> = {},
): Promise<string> {
  await mkdir(RESULTS, { recursive: true });
  const path = join(RESULTS, `${name}.json`);
  await writeFile(
    path,
    `${JSON.stringify({ name, at: new Date().toISOString(), smoke: SMOKE, machine: machine(), params, figures, ...extra }, null, 2)}\n`,
  );
  return path;
}

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Whether `taskset` exists (util-linux); without it processes run unpinned and the result says so. */
export const HAS_TASKSET = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
})();

/** Cores for the system under test and for the load generator (distinct when the machine has two or more). */
export const CORES = { system: '0', load: cpus().length > 1 ? '1' : '0' } as const;

/** Spawns `command args` pinned to `core` (when taskset exists). */
export function spawnPinned(core: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = HAS_TASKSET
    ? spawn('taskset', ['-c', core, command, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(command, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  // Say which process ended and how, so that a contender dying mid-run is named rather than a later /proc read failing.
  child.once('exit', (code, signal) =>
    console.error(`bench: pid ${child.pid} (${args.find((a) => /\.[jt]s$/.test(a)) ?? command}) exited, code ${code}, signal ${signal}`),
  );
  return child;
}

/**
 * Starts a bench server script (bench/servers/*.ts) pinned to the system core; it prints `{"port": N}` on its first line.
 * @returns the child and its port
 */
export async function startServer(
  script: string,
  args: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawnPinned(CORES.system, NODE, [join(ROOT, 'bench/servers', script), ...args], env);
  const line = await firstLine(child);
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

/** The first line a child prints on stdout. @throws when it exits first */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((res, rej) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => {
      rl.close();
      res(line);
    });
    child.once('exit', (code) => rej(new Error(`exited ${code} before printing`)));
  });
}

/** Stops a child and waits for it. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** The pid that does the work: taskset execs its command, so the child's pid is the process itself. */
export const pidOf = (child: ChildProcess): number => child.pid!;

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the comm field; clock ticks of 1/100 s on Linux.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident set size of a process, bytes, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Runs a bench/servers script in a child pinned to the load core with `options` as JSON in argv[2]; resolves to the JSON line it prints. */
async function loadChild<T>(script: string, options: object): Promise<T> {
  const child = spawnPinned(CORES.load, NODE, [join(ROOT, 'bench/servers', script), JSON.stringify(options)]);
  const line = await firstLine(child);
  await new Promise((r) => child.once('exit', r));
  return JSON.parse(line) as T;
}

/** Runs autocannon (closed loop: throughput at saturation, or a fixed amount) in a child pinned to the load core (see bench/servers/load.ts). */
export const load = (options: { url: string; connections: number; durationS: number; amount?: number }): Promise<LoadSummary> =>
  loadChild('load.ts', options);

/**
 * The Debian package of every command a benchmark needs that is missing from PATH, as one message, or null when all
 * are there. `needs`: command name -> Debian package (e.g. `{ wrk: 'wrk', cc: 'gcc' }`).
 */
export function missingCommands(needs: Readonly<Record<string, string>>): string | null {
  const missing = Object.entries(needs).filter(([command]) => commandPath(command) === null);
  if (missing.length === 0) return null;
  return `missing ${missing.map(([c]) => c).join(', ')}: apt-get install ${[...new Set(missing.map(([, pkg]) => pkg))].join(' ')}`;
}

/** Absolute path of `command` on PATH, or null. */
export function commandPath(command: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * Runs `command args` pinned to `core` and resolves to its stdout.
 * @throws when it exits non-zero (the message carries its stderr)
 */
export function runPinned(core: string, command: string, args: readonly string[]): Promise<string> {
  const [cmd, argv] = HAS_TASKSET ? ['taskset', ['-c', core, command, ...args]] : [command, [...args]];
  return new Promise((res, rej) =>
    execFile(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? rej(new Error(`${command} ${args.join(' ')} failed: ${stderr || err.message}`)) : res(stdout),
    ),
  );
}

/** What wrk reports for one run at saturation (closed loop). */
export interface WrkSummary {
  readonly requests: number;
  /** Achieved requests/s over the run. */
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses. */
  readonly errors: number;
}

/**
 * Runs wrk (Debian package `wrk`) pinned to the load core: one thread, `connections` keep-alive connections for
 * `durationS` seconds, closed loop (throughput at saturation).
 */
export async function wrk(options: { url: string; connections: number; durationS: number }): Promise<WrkSummary> {
  const out = await runPinned(CORES.load, 'wrk', ['-t1', `-c${options.connections}`, `-d${options.durationS}s`, '--latency', options.url]);
  return parseWrk(out);
}

/**
 * Parses `wrk --latency` output: `N requests in Xs`, `Requests/sec:`, the 50 % and 99 % rows of the latency
 * distribution (units us, ms, s, m), `Socket errors:` and `Non-2xx or 3xx responses:`.
 * @throws when the request count or rate is missing (the text is in the message)
 */
export function parseWrk(text: string): WrkSummary {
  const requests = /(\d+) requests in /.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!requests || !rps) throw new Error(`unexpected wrk output:\n${text}`);
  const toMs: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
  const quantileMs = (q: string): number => {
    const m = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(text);
    return m ? Number(m[1]) * toMs[m[2]!]! : Number.NaN;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(requests[1]),
    rps: Number(rps[1]),
    p50Ms: quantileMs('50'),
    p99Ms: quantileMs('99'),
    errors: (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0),
  };
}

/**
 * Compiles the C open-loop generator (bench/servers/open-loop.c) with `cc -O2` into `dir`.
 * @returns the path of the binary
 * @throws when cc is missing or the compile fails
 */
export function compileOpenLoop(dir: string): string {
  const bin = join(dir, 'open-loop');
  execFileSync('cc', ['-O2', '-Wall', '-o', bin, join(ROOT, 'bench/servers/open-loop.c')], { stdio: ['ignore', 'inherit', 'inherit'] });
  return bin;
}

/**
 * Runs the C open-loop generator `bin` (see compileOpenLoop) pinned to the load core: latency at a fixed offered rate
 * (requests/s), measured from each request's due time, over `connections` keep-alive connections (default 32).
 */
export async function openLoop(
  bin: string,
  options: { url: string; rate: number; durationS: number; connections?: number },
): Promise<OpenLoopSummary> {
  const u = new URL(options.url);
  const out = await runPinned(CORES.load, bin, [
    u.hostname,
    u.port,
    u.pathname + u.search,
    String(options.rate),
    String(options.durationS),
    String(options.connections ?? 32),
  ]);
  return JSON.parse(out) as OpenLoopSummary;
}

/** What the open-loop generator prints: counts, rates (requests/s) and latencies (ms, from due time to response end). */
export interface OpenLoopSummary {
  readonly requests: number;
  readonly rps: number;
  readonly offeredRps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  /** Requests that failed or were never answered. */
  readonly errors: number;
  readonly non2xx: number;
  /** Requests sent more than 1 ms after their due time (a generator that could not keep up, or every connection busy). */
  readonly late: number;
}

export interface LoadSummary {
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly non2xx: number;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The node flags of the image's ENTRYPOINT (`["node", <flags>..., "dist/cli/bin.js"]`): what production runs. */
export function imageNodeFlags(): string[] {
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
  const args = entry === undefined ? [] : (JSON.parse(entry) as string[]);
  return args.slice(1, Math.max(1, args.indexOf('dist/cli/bin.js')));
}

/** Runs `npm run build` when dist/cli/bin.js is missing or older than src/ (or tsconfig.json). @returns whether it built */
export function buildIfStale(): boolean {
  const built = join(ROOT, 'dist/cli/bin.js');
  const newestSourceMs = (dir: string): number =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newestSourceMs(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
      ),
    );
  const sourceMs = Math.max(newestSourceMs(join(ROOT, 'src')), statSync(join(ROOT, 'tsconfig.json')).mtimeMs);
  if (existsSync(built) && statSync(built).mtimeMs >= sourceMs) return false;
  console.error('bench: dist/ is missing or older than src/: npm run build');
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  return true;
}

/**
 * A real Prometheus for the tests: Debian's `prometheus` package (`.ci/run` installs it), started on a free loopback
 * port with a config derived from the committed config/prometheus.yml, and its HTTP API.
 *
 * Debian builds Prometheus without Kubernetes service discovery, so the derived config swaps the job's
 * `kubernetes_sd_configs` for `file_sd_configs` and keeps its relabeling: the targets file carries the
 * `__meta_kubernetes_*` labels that Kubernetes discovery would, so the committed relabel rules run for real.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { parse, stringify } from 'yaml';
import { freePort } from '../../src/demo/find-redis.ts';
import { eventually } from './redis.ts';

const run = promisify(execFile);
export const CONFIG_DIR = resolve(import.meta.dirname, '../../config');

/** Absolute paths of the binaries, or a clear error naming the package to install. */
export async function prometheusBinaries(): Promise<{ prometheus: string; promtool: string }> {
  const which = async (name: string): Promise<string> => {
    try {
      return (await run('sh', ['-c', `command -v ${name}`])).stdout.trim();
    } catch {
      throw new Error(`${name} not found: install Debian's prometheus package (apt-get install prometheus), as .ci/run does`);
    }
  };
  return { prometheus: await which('prometheus'), promtool: await which('promtool') };
}

/** Runs promtool; resolves to its combined output, rejects with it when the exit code is not 0. */
export async function promtool(...args: string[]): Promise<string> {
  const { promtool: bin } = await prometheusBinaries();
  try {
    const { stdout, stderr } = await run(bin, args);
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

/** A target as Kubernetes pod discovery would describe it: the labels the committed relabel rules read. */
export interface PodTarget {
  readonly address: string;
  readonly namespace: string;
  readonly app: string;
  readonly pod: string;
  /** The admin port, as in the pod's prometheus.io/port annotation. */
  readonly port: number;
}

function fileSdGroup(t: PodTarget): { targets: string[]; labels: Record<string, string> } {
  return {
    targets: [`${t.address}:80`],
    labels: {
      __meta_kubernetes_namespace: t.namespace,
      __meta_kubernetes_pod_name: t.pod,
      __meta_kubernetes_pod_label_app: t.app,
      __meta_kubernetes_pod_phase: 'Running',
      __meta_kubernetes_pod_annotation_prometheus_io_scrape: 'true',
      __meta_kubernetes_pod_annotation_prometheus_io_port: String(t.port),
      __meta_kubernetes_pod_annotation_prometheus_io_path: '/metrics',
    },
  };
}

/**
 * config/prometheus.yml with its Kubernetes discovery swapped for a targets file, the rule file by absolute path,
 * and the given scrape and evaluation interval.
 */
export async function derivedConfig(targetsFile: string, interval: string): Promise<Record<string, unknown>> {
  const config = parse(await readFile(join(CONFIG_DIR, 'prometheus.yml'), 'utf8')) as {
    global: Record<string, string>;
    rule_files: string[];
    scrape_configs: Array<Record<string, unknown>>;
  };
  config.global.scrape_interval = interval;
  config.global.evaluation_interval = interval;
  config.rule_files = config.rule_files.map((f) => join(CONFIG_DIR, f));
  for (const job of config.scrape_configs) {
    if (!('kubernetes_sd_configs' in job)) continue;
    delete job.kubernetes_sd_configs;
    job.file_sd_configs = [{ files: [targetsFile], refresh_interval: interval }];
  }
  return config;
}

export interface RunningPrometheus {
  readonly url: string;
  readonly dir: string;
  /** Query results are vectors (instant) or matrices (range) of series with labels. */
  query(expr: string, at?: number): Promise<Array<{ metric: Record<string, string> }>>;
  queryRange(
    expr: string,
    startS: number,
    endS: number,
    stepS: number,
  ): Promise<Array<{ metric: Record<string, string>; values: unknown[] }>>;
  rules(): Promise<Array<{ name: string; health: string; lastError?: string; query: string }>>;
  stop(): Promise<void>;
}

/**
 * Starts Prometheus scraping `targets` every `interval`, with the committed alert rules, and waits until it is ready.
 * @throws when the binary is missing, the derived config does not pass promtool, or it is not ready in 20 s
 */
export async function startPrometheus(targets: readonly PodTarget[], interval = '1s'): Promise<RunningPrometheus> {
  const { prometheus } = await prometheusBinaries();
  const dir = await mkdtemp(join(tmpdir(), 'cg-prom-'));
  const targetsFile = join(dir, 'targets.json');
  await writeFile(targetsFile, JSON.stringify(targets.map(fileSdGroup)));
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, stringify(await derivedConfig(targetsFile, interval)));
  await promtool('check', 'config', configFile);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    prometheus,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const api = async <T>(path: string, params: Record<string, string> = {}): Promise<T> => {
    const form = new URLSearchParams(params).toString();
    const res = form
      ? await request(`${url}${path}`, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } })
      : await request(`${url}${path}`);
    const body = (await res.body.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${log}`);
        const res = await request(`${url}/-/ready`).catch(() => null);
        if (res === null) return undefined;
        await res.body.dump();
        return res.statusCode === 200 ? true : undefined;
      },
      20_000,
      'prometheus ready',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    dir,
    query: async (expr, at) =>
      (
        await api<{ result: Array<{ metric: Record<string, string> }> }>(
          '/api/v1/query',
          at === undefined ? { query: expr } : { query: expr, time: String(at) },
        )
      ).result,
    queryRange: async (expr, startS, endS, stepS) =>
      (
        await api<{ result: Array<{ metric: Record<string, string>; values: unknown[] }> }>('/api/v1/query_range', {
          query: expr,
          start: String(startS),
          end: String(endS),
          step: String(stepS),
        })
      ).result,
    rules: async () => {
      const data = await api<{ groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; query: string }> }> }>(
        '/api/v1/rules',
      );
      return data.groups.flatMap((g) => g.rules);
    },
    stop,
  };
}

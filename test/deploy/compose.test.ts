/**
 * The compose stack (deploy/compose/compose.yaml). No Docker engine here: the file is parsed with `yaml` and checked
 * for what `docker compose up` needs (services, ports, bind mounts that exist, depends_on, Grafana's provisioning
 * paths, Prometheus's targets against the sidecars' admin ports, the sidecars' config as canary-gate loads it), by a
 * checker that a broken copy shows can fail. The stack's demo app script and its router (canary-gate route on the
 * stack's config) run here for real with Node 24 against the machine's Redis, with the environment the compose file
 * gives them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { parse } from 'yaml';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { promtool } from '../helpers/prometheus.ts';
import { binomialInterval } from '../helpers/binomial.ts';
import { eventually, REDIS_URL, uniqueService } from '../helpers/redis.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const COMPOSE_DIR = join(ROOT, 'deploy/compose');
const COMPOSE_FILE = join(COMPOSE_DIR, 'compose.yaml');

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: Array<string | { type: string; source: string; target: string }>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
}
interface Compose {
  services: Record<string, Service>;
}
interface Mount {
  host: string;
  target: string;
  readOnly: boolean;
}
interface PublishedPort {
  hostIp: string;
  host: number;
  container: number;
}

const readCompose = (): Compose => parse(readFileSync(COMPOSE_FILE, 'utf8')) as Compose;
const yamlFile = <T>(path: string): T => parse(readFileSync(path, 'utf8')) as T;

/** Bind mounts, short (`./a:/b:ro`) or long syntax, with host paths resolved against the compose file's folder. */
function mountsOf(service: Service): Mount[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { host: resolve(COMPOSE_DIR, v.source), target: v.target, readOnly: false };
    const [host = '', target = '', mode = ''] = v.split(':');
    return { host: resolve(COMPOSE_DIR, host), target, readOnly: mode.split(',').includes('ro') };
  });
}

/** `127.0.0.1:9091:9090` -> host IP, host port, container port. */
function portsOf(service: Service): PublishedPort[] {
  return (service.ports ?? []).map((p) => {
    const parts = p.split(':');
    const [hostIp, host, container] = parts.length === 3 ? parts : ['0.0.0.0', ...parts];
    return { hostIp: hostIp!, host: Number(host), container: Number(container) };
  });
}

/** The host file mounted at `containerPath` (a file mount, or a file inside a mounted folder), or undefined. */
function hostPathOf(service: Service, containerPath: string): string | undefined {
  for (const m of mountsOf(service)) {
    if (m.target === containerPath) return m.host;
    if (containerPath.startsWith(`${m.target}/`)) return join(m.host, containerPath.slice(m.target.length + 1));
  }
  return undefined;
}

const sidecarNames = (c: Compose): string[] => Object.keys(c.services).filter((n) => c.services[n]!.command?.[0] === 'run');

/** The config a sidecar service runs with: its mounted --config file and its environment, loaded as canary-gate does. */
function sidecarConfig(service: Service) {
  const command = service.command ?? [];
  const file = hostPathOf(service, command[command.indexOf('--config') + 1] ?? '');
  if (file === undefined) throw new Error('the --config file is not mounted');
  return loadConfig({ file, env: service.environment ?? {}, hostname: 'compose-test' });
}

/** Every problem that would stop the stack from starting or working as described; [] for a sound file. */
function problemsOf(c: Compose): string[] {
  const problems: string[] = [];
  const names = new Set(Object.keys(c.services));
  const hostPorts = new Map<number, string>();
  for (const [name, s] of Object.entries(c.services)) {
    if (!s.image && !s.build) problems.push(`${name}: neither image nor build`);
    if (s.image && !s.build && !/:[\w.-]+$/.test(s.image)) problems.push(`${name}: image ${s.image} has no pinned tag`);
    if (s.image?.endsWith(':latest')) problems.push(`${name}: image ${s.image} is not pinned`);
    if (s.build && !existsSync(join(resolve(COMPOSE_DIR, s.build.context), s.build.dockerfile ?? 'Dockerfile')))
      problems.push(`${name}: no Dockerfile in the build context`);
    for (const m of mountsOf(s)) if (!existsSync(m.host)) problems.push(`${name}: mounted host path ${m.host} does not exist`);
    for (const dep of Object.keys(s.depends_on ?? {})) if (!names.has(dep)) problems.push(`${name}: depends_on unknown service ${dep}`);
    for (const p of portsOf(s)) {
      if (p.hostIp !== '127.0.0.1') problems.push(`${name}: port ${p.host} published beyond loopback`);
      if (hostPorts.has(p.host)) problems.push(`${name}: host port ${p.host} also published by ${hostPorts.get(p.host)}`);
      hostPorts.set(p.host, name);
    }
    // A node script run from the repository's layout must find itself and the src/ it imports.
    const script = s.entrypoint?.find((a) => a.startsWith('deploy/compose/'));
    if (script !== undefined) {
      if (hostPathOf(s, `/app/${script}`) !== join(ROOT, script)) problems.push(`${name}: ${script} is not mounted at /app/${script}`);
      if (hostPathOf(s, '/app/src') !== join(ROOT, 'src')) problems.push(`${name}: src/ is not mounted at /app/src`);
    }
  }

  // Sidecars: a valid config; their app, Redis and admin port as the rest of the stack expects.
  const sidecars = sidecarNames(c);
  if (sidecars.length !== 2) problems.push(`expected 2 sidecars (command run), found ${sidecars.length}`);
  const admin = new Map<
    string,
    { port: number; pod: string; service: string; version: string; proxyPort: number; flagKey: string; baseline: string }
  >();
  for (const name of sidecars) {
    const s = c.services[name]!;
    let config;
    try {
      config = sidecarConfig(s);
    } catch (err) {
      problems.push(`${name}: config refused: ${(err as Error).message} ${((err as { details?: string[] }).details ?? []).join('; ')}`);
      continue;
    }
    admin.set(name, {
      port: config.admin.port,
      pod: config.pod.name,
      service: config.service,
      version: config.pod.version,
      proxyPort: config.proxy.port,
      flagKey: config.flag.key,
      baseline: config.versions.baseline,
    });
    if (!portsOf(s).some((p) => p.container === config.admin.port))
      problems.push(`${name}: admin port ${config.admin.port} is not published`);
    if (config.admin.host !== '0.0.0.0' || config.proxy.host !== '0.0.0.0')
      problems.push(`${name}: proxy and admin must listen on 0.0.0.0 to be reached from other containers`);
    const upstream = new URL(config.proxy.upstream);
    const app = c.services[upstream.hostname];
    if (app === undefined) problems.push(`${name}: upstream ${config.proxy.upstream} is no service`);
    else {
      if (app.environment?.PORT !== upstream.port)
        problems.push(`${name}: upstream port ${upstream.port} but ${upstream.hostname} listens on ${app.environment?.PORT}`);
      if (app.environment?.VERSION !== config.pod.version)
        problems.push(`${name}: records ${config.pod.version} in front of ${upstream.hostname} (${app.environment?.VERSION})`);
      if (!(upstream.hostname in (s.depends_on ?? {}))) problems.push(`${name}: does not depend on its app ${upstream.hostname}`);
    }
    const redisHost = new URL(config.redis.url).hostname;
    if (!names.has(redisHost)) problems.push(`${name}: redis.url host ${redisHost} is no service`);
    else if (!(redisHost in (s.depends_on ?? {}))) problems.push(`${name}: does not depend on ${redisHost}`);
  }
  if (new Set([...admin.values()].map((a) => a.version)).size !== admin.size) problems.push('the sidecars do not run one version each');

  // Router (canary-gate route): to each sidecar's proxy port, the baseline's as baselineUpstream, following the flag
  // the sidecars write, listening where its port is published and checked.
  const router = c.services.router;
  let routerAdmin: string | undefined;
  if (router === undefined || router.command?.[0] !== 'route') problems.push('no router service running canary-gate route');
  else {
    let config: ReturnType<typeof sidecarConfig> | undefined;
    try {
      config = sidecarConfig(router);
    } catch (err) {
      problems.push(`router: config refused: ${(err as Error).message} ${((err as { details?: string[] }).details ?? []).join('; ')}`);
    }
    if (config !== undefined) {
      for (const [field, baseline] of [
        ['baselineUpstream', true],
        ['canaryUpstream', false],
      ] as const) {
        const url = new URL(config.router[field]);
        const target = admin.get(url.hostname);
        if (target === undefined) problems.push(`router: router.${field} ${url.href} is no sidecar`);
        else {
          if (Number(url.port) !== target.proxyPort)
            problems.push(`router: router.${field} port ${url.port} but ${url.hostname} proxies on ${target.proxyPort}`);
          if ((target.version === target.baseline) !== baseline)
            problems.push(`router: router.${field} points at ${url.hostname}, which runs ${target.version}`);
          if (!(url.hostname in (router.depends_on ?? {}))) problems.push(`router: does not depend on ${url.hostname}`);
        }
      }
      for (const a of admin.values())
        if (config.flag.key !== a.flagKey) problems.push(`router: flag.key ${config.flag.key} but the sidecars write ${a.flagKey}`);
      if (!portsOf(router).some((p) => p.container === config.router.port))
        problems.push(`router: router.port ${config.router.port} is not published`);
      routerAdmin = `router:${config.router.adminPort}`;
      if (!router.healthcheck?.test?.join(' ').includes(`:${config.router.adminPort}/readyz`))
        problems.push(`router: the healthcheck does not read /readyz on router.adminPort ${config.router.adminPort}`);
    }
  }
  // The rollout: canary-gate rollout start on the same config, before the router takes traffic.
  const rollout = c.services.rollout;
  if (rollout?.command?.slice(0, 2).join(' ') !== 'rollout start') problems.push('rollout: does not run canary-gate rollout start');
  else if (router?.depends_on?.rollout?.condition !== 'service_completed_successfully')
    problems.push('router: does not wait for the rollout to start');

  // Prometheus: its config where --config.file says, its rule files next to it, one target per sidecar admin port.
  const prometheus = c.services.prometheus;
  const configPath = prometheus?.command?.find((a) => a.startsWith('--config.file='))?.slice('--config.file='.length);
  const promConfigFile = prometheus && configPath ? hostPathOf(prometheus, configPath) : undefined;
  if (prometheus === undefined || configPath === undefined || promConfigFile === undefined || !existsSync(promConfigFile))
    problems.push('prometheus: no mounted --config.file');
  else {
    const promConfig = yamlFile<{
      rule_files?: string[];
      scrape_configs: Array<{ job_name: string; static_configs?: Array<{ targets: string[]; labels?: Record<string, string> }> }>;
    }>(promConfigFile);
    for (const rules of promConfig.rule_files ?? []) {
      if (hostPathOf(prometheus, posix.resolve(posix.dirname(configPath), rules)) === undefined)
        problems.push(`prometheus: rule file ${rules} is not mounted next to the config`);
    }
    const scraped = new Map<string, Record<string, string>>();
    for (const job of promConfig.scrape_configs)
      for (const group of job.static_configs ?? []) for (const t of group.targets) scraped.set(t, group.labels ?? {});
    const expected = new Set([...admin].map(([name, a]) => `${name}:${a.port}`));
    if (routerAdmin !== undefined) expected.add(routerAdmin);
    for (const target of scraped.keys()) if (!expected.has(target)) problems.push(`prometheus: target ${target} is no admin port`);
    // The router's own metrics (canary_gate_router_*): what it routed to each version after the flag changed.
    if (routerAdmin !== undefined && !scraped.has(routerAdmin))
      problems.push(`prometheus: the router's admin port ${routerAdmin} is not scraped`);
    for (const [name, a] of admin) {
      const labels = scraped.get(`${name}:${a.port}`);
      if (labels === undefined) problems.push(`prometheus: sidecar ${name} admin port ${a.port} is not scraped`);
      else if (labels.namespace === undefined || labels.service !== a.service || labels.pod !== a.pod) {
        problems.push(`prometheus: ${name}'s labels ${JSON.stringify(labels)} are not namespace, service ${a.service}, pod ${a.pod}`);
      }
    }
  }

  // Grafana: provisioning folders where Grafana reads them, every bundled dashboard where the provider looks.
  const grafana = c.services.grafana;
  if (grafana === undefined) problems.push('no grafana service');
  else {
    for (const kind of ['dashboards', 'datasources']) {
      if (hostPathOf(grafana, `/etc/grafana/provisioning/${kind}`) !== join(ROOT, 'dashboards/provisioning', kind))
        problems.push(`grafana: dashboards/provisioning/${kind} is not mounted at /etc/grafana/provisioning/${kind}`);
    }
    const providers = yamlFile<{ providers: Array<{ options: { path: string } }> }>(
      join(ROOT, 'dashboards/provisioning/dashboards/canary-gate.yaml'),
    ).providers;
    for (const json of readdirSync(join(ROOT, 'dashboards')).filter((f) => f.endsWith('.json'))) {
      const found = providers.some((p) => hostPathOf(grafana, posix.join(p.options.path, json)) === join(ROOT, 'dashboards', json));
      if (!found)
        problems.push(
          `grafana: dashboards/${json} is not mounted under a provider's path (${providers.map((p) => p.options.path).join(', ')})`,
        );
    }
    const url = grafana.environment?.PROMETHEUS_URL;
    const promPort = prometheus ? portsOf(prometheus)[0]?.container : undefined;
    if (url === undefined || new URL(url).hostname !== 'prometheus' || Number(new URL(url).port) !== promPort)
      problems.push(`grafana: PROMETHEUS_URL ${url} is not the prometheus service's port ${promPort}`);
  }
  return problems;
}

describe('deploy/compose/compose.yaml', () => {
  const compose = readCompose();

  it('has the stack: Redis, two demo apps and their sidecars, a router, load, Prometheus and Grafana', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'app-v1',
      'app-v2',
      'grafana',
      'load',
      'prometheus',
      'redis',
      'rollout',
      'router',
      'sidecar-v1',
      'sidecar-v2',
    ]);
    expect(sidecarNames(compose).sort()).toEqual(['sidecar-v1', 'sidecar-v2']);
    for (const name of sidecarNames(compose)) expect(compose.services[name]!.build).toEqual({ context: '../..', dockerfile: 'Dockerfile' });
  });

  it('passes every check: mounts exist, depends_on, ports, Grafana provisioning paths, Prometheus targets, sidecar configs', () => {
    expect(problemsOf(compose)).toEqual([]);
  });

  it('publishes the router, Prometheus, Grafana and both sidecar admin ports on loopback', () => {
    const published = Object.fromEntries(
      Object.entries(compose.services).flatMap(([n, s]) => portsOf(s).map((p) => [`${n}:${p.container}`, p.host])),
    );
    expect(published).toEqual({
      'router:8000': 8000,
      'prometheus:9090': 9090,
      'grafana:3000': 3000,
      'sidecar-v1:9090': 9091,
      'sidecar-v2:9090': 9092,
    });
  });

  it.each<[string, (c: Compose) => void, RegExp]>([
    [
      'a mount of a missing file',
      (c) => c.services.grafana!.volumes!.push('../../dashboards/missing.json:/x.json:ro'),
      /grafana: mounted host path .*missing\.json does not exist/,
    ],
    [
      'depends_on a missing service',
      (c) => (c.services.router!.depends_on!.nginx = { condition: 'service_started' }),
      /router: depends_on unknown service nginx/,
    ],
    [
      'a dashboard mounted where no provider looks',
      (c) =>
        (c.services.grafana!.volumes = c.services.grafana!.volumes!.map((v) =>
          String(v).replace('/var/lib/grafana/dashboards/canary-gate/sidecar', '/var/lib/grafana/sidecar'),
        )),
      /grafana: dashboards\/sidecar-health\.json is not mounted/,
    ],
    [
      'a provisioning folder at the wrong path',
      (c) =>
        (c.services.grafana!.volumes = c.services.grafana!.volumes!.map((v) =>
          String(v).replace(':/etc/grafana/provisioning/datasources', ':/etc/grafana/datasources'),
        )),
      /grafana: dashboards\/provisioning\/datasources is not mounted/,
    ],
    [
      'a sidecar admin port Prometheus does not scrape',
      (c) => (c.services['sidecar-v2']!.environment!.ADMIN_PORT = '9100'),
      /prometheus: target sidecar-v2:9090 is no admin port[\s\S]*sidecar-v2 admin port 9100 is not scraped/,
    ],
    [
      'a router admin port Prometheus does not scrape',
      (c) => (c.services.router!.environment!.CANARY_GATE_ROUTER_ADMIN_PORT = '9199'),
      /prometheus: target router:9093 is no admin port[\s\S]*router's admin port router:9199 is not scraped/,
    ],
    [
      'a sidecar config canary-gate refuses',
      (c) => (c.services['sidecar-v1']!.environment!.POD_VERSION = 'v3'),
      /sidecar-v1: config refused: .*pod\.version/,
    ],
    [
      'a sidecar in front of the wrong app',
      (c) => (c.services['sidecar-v1']!.environment!.UPSTREAM_URL = 'http://app-v2:3000'),
      /sidecar-v1: records v1 in front of app-v2 \(v2\)/,
    ],
    [
      'the router reading another flag',
      (c) => (c.services.router!.environment!.CANARY_GATE_FLAG_KEY = 'flag'),
      /router: flag\.key flag but the sidecars write /,
    ],
    [
      'baseline and canary swapped in the router',
      (c) =>
        Object.assign(c.services.router!.environment!, {
          CANARY_GATE_ROUTER_BASELINE_UPSTREAM: 'http://sidecar-v2:8080',
          CANARY_GATE_ROUTER_CANARY_UPSTREAM: 'http://sidecar-v1:8080',
        }),
      /router: router\.baselineUpstream points at sidecar-v2, which runs v2/,
    ],
    [
      'a router whose port is not published',
      (c) => (c.services.router!.environment!.CANARY_GATE_ROUTER_PORT = '8001'),
      /router: router\.port 8001 is not published/,
    ],
    [
      'a router that takes traffic before the rollout started',
      (c) => delete c.services.router!.depends_on!.rollout,
      /router: does not wait for the rollout to start/,
    ],
    [
      'a port published to every interface',
      (c) => (c.services.grafana!.ports = ['3000:3000']),
      /grafana: port 3000 published beyond loopback/,
    ],
    [
      'an unpinned image',
      (c) => (c.services.prometheus!.image = 'prom/prometheus:latest'),
      /prometheus: image prom\/prometheus:latest is not pinned/,
    ],
    [
      'a script that is not mounted',
      (c) => (c.services['app-v1']!.volumes = c.services['app-v1']!.volumes!.filter((v) => !String(v).includes('demo-app.ts'))),
      /app-v1: deploy\/compose\/demo-app\.ts is not mounted/,
    ],
  ])('the checker finds %s', (_name, breakIt, problem) => {
    const broken = readCompose();
    breakIt(broken);
    expect(problemsOf(broken).join('\n')).toMatch(problem);
  });

  it('Prometheus config passes promtool with the alert rules beside it, as mounted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-compose-prom-'));
    try {
      const prometheus = compose.services.prometheus!;
      for (const m of mountsOf(prometheus))
        if (m.target.startsWith('/etc/prometheus/')) copyFileSync(m.host, join(dir, posix.basename(m.target)));
      const out = await promtool('check', 'config', join(dir, 'prometheus.yml'));
      expect(out).toMatch(/SUCCESS: 1 rule files found/);
      expect(out).toMatch(/SUCCESS: \d+ rules found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the datasource provisioning reads PROMETHEUS_URL, which the Grafana service sets', () => {
    const text = readFileSync(join(ROOT, 'dashboards/provisioning/datasources/prometheus.yaml'), 'utf8');
    expect(text).toContain('url: ${PROMETHEUS_URL}');
    expect(compose.services.grafana!.environment!.PROMETHEUS_URL).toBe('http://prometheus:9090');
  });
});

// The stack's scripts, run as the compose file runs them (its environment), on loopback and free ports.
const children: ChildProcess[] = [];
const clients: Redis[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});
afterAll(() => {
  for (const c of clients) c.disconnect();
});

/** Starts `node <script>` with the service's environment and `extra`; resolves its first stdout line and the output so far. */
async function runScript(
  service: string,
  extra: Record<string, string>,
): Promise<{ child: ChildProcess; firstLine: string; output: () => string }> {
  const s = readCompose().services[service]!;
  const script = join(ROOT, s.entrypoint!.find((a) => a.startsWith('deploy/compose/'))!);
  return startService([script], { ...s.environment, ...extra }, `${service} to start`);
}

/** Spawns node with `args` and `env` (plus PATH); resolves with its first line of output once it printed one. */
async function startService(
  args: string[],
  env: Record<string, string>,
  what: string,
): Promise<{ child: ChildProcess; firstLine: string; output: () => string }> {
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const firstLine = await eventually(
    () => (out.includes('\n') ? out.split('\n')[0] : child.exitCode !== null ? `exited ${child.exitCode}: ${out}` : undefined),
    10_000,
    what,
  );
  return { child, firstLine, output: () => out };
}

/** Runs the router service's command (`canary-gate route --config <mounted config>`) with its environment and `extra`. */
async function runRoute(extra: Record<string, string>): Promise<{ child: ChildProcess; firstLine: string }> {
  const s = readCompose().services.router!;
  const command = s.command!;
  const config = hostPathOf(s, command[command.indexOf('--config') + 1]!)!;
  const { child, firstLine } = await startService(
    [join(ROOT, 'src/cli/main.ts'), command[0]!, '--config', config],
    { ...s.environment, ...extra },
    'the router to start',
  );
  return { child, firstLine };
}

const portOf = (line: string): number => Number(/:(\d+)(?::|$)/.exec(line)?.[1]);

describe('the stack scripts, run with the compose environment', () => {
  it('demo apps answer as their version; v2 regresses on SIGUSR2; canary-gate route splits by the flag and falls back to v1 at 0', async () => {
    const redis = new Redis(REDIS_URL);
    clients.push(redis);
    const flagKey = `${uniqueService('compose')}:flag`;
    const apps: Record<string, number> = {};
    let v2!: Awaited<ReturnType<typeof runScript>>;
    for (const name of ['app-v1', 'app-v2']) {
      const run = await runScript(name, { PORT: '0', HOST: '127.0.0.1', REGRESS_AFTER_S: '0' });
      expect(run.firstLine).toMatch(new RegExp(`^demo app ${name.slice(4)} listening on 127\\.0\\.0\\.1:\\d+$`));
      apps[name] = portOf(run.firstLine);
      if (name === 'app-v2') v2 = run;
    }
    await redis.set(flagKey, '50');
    try {
      // The sidecars' place is taken by the apps themselves: the router's split is what is under test here.
      const router = await runRoute({
        CANARY_GATE_ROUTER_HOST: '127.0.0.1',
        CANARY_GATE_ROUTER_PORT: '0',
        CANARY_GATE_ROUTER_ADMIN_HOST: '127.0.0.1',
        CANARY_GATE_ROUTER_ADMIN_PORT: '0',
        CANARY_GATE_ROUTER_POLL_INTERVAL: '50ms',
        CANARY_GATE_ROUTER_BASELINE_UPSTREAM: `http://127.0.0.1:${apps['app-v1']}`,
        CANARY_GATE_ROUTER_CANARY_UPSTREAM: `http://127.0.0.1:${apps['app-v2']}`,
        CANARY_GATE_FLAG_KEY: flagKey,
        CANARY_GATE_LOG_LEVEL: 'warn',
        REDIS_URL,
      });
      expect(router.firstLine).toContain('weight 50 %');
      const url = `http://127.0.0.1:${/ :(\d+) -> /.exec(router.firstLine)?.[1]}`;
      const admin = `http://127.0.0.1:${/admin :(\d+)/.exec(router.firstLine)?.[1]}`;
      const versions = async (n: number): Promise<Record<string, number>> => {
        const seen: Record<string, number> = {};
        for (let i = 0; i < n; i++) {
          const res = await request(`${url}/api/items`);
          const body = (await res.body.json()) as { version: string };
          seen[body.version] = (seen[body.version] ?? 0) + 1;
        }
        return seen;
      };
      // 80 draws at 50 %: each version's count inside its 99.9 % binomial bounds.
      const [low, high] = binomialInterval(80, 0.5);
      const split = await versions(80);
      expect(split.v1! + split.v2!).toBe(80);
      expect(split.v2).toBeGreaterThanOrEqual(low);
      expect(split.v2).toBeLessThanOrEqual(high);
      await redis.set(flagKey, '0');
      await eventually(
        async () => ((await (await request(`${admin}/status`)).body.json()) as { weightPercent: number }).weightPercent === 0 || undefined,
        5000,
        'the router to read 0',
      );
      expect(await versions(20)).toEqual({ v1: 20 });
      const state = (await (await request(`${admin}/status`)).body.json()) as {
        baseline: { requests: number };
        canary: { requests: number };
      };
      expect([state.baseline.requests, state.canary.requests]).toEqual([split.v1! + 20, split.v2]);

      v2.child.kill('SIGUSR2');
      await eventually(
        () => (v2.output().includes('demo app v2 regresses (SIGUSR2): median 50 ms, 10 % errors') ? true : undefined),
        5000,
        'v2 to regress',
      );
    } finally {
      await redis.del(flagKey);
    }
  });
});

/**
 * There is no Docker engine on the build machines: the Dockerfile is checked by reading it (parsed with
 * dockerfile-ast), and CI runs the deps and runtime stages' own commands in a clean folder (.ci/run). The image holds
 * only what the sidecar imports: the static import graph of the CLI is walked here and compared with package.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Copy, DockerfileParser, type Instruction } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';
import { missingOptionalPackage, OPTIONAL_PACKAGES } from '../../src/cli/optional.ts';

const ROOT = join(import.meta.dirname, '../..');
const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const froms = dockerfile.getFROMs();
const stage = (name: string): Instruction[] => {
  const at = froms.findIndex((f) => f.getBuildStage() === name);
  const start = froms[at]!.getRange().start.line;
  const end = froms[at + 1]?.getRange().start.line ?? Number.POSITIVE_INFINITY;
  return dockerfile.getInstructions().filter((i) => i.getRange().start.line >= start && i.getRange().start.line < end);
};
const runtime = stage('runtime');
const of = (list: Instruction[], keyword: string) => list.filter((i) => i.getKeyword() === keyword);
const args = (i: Instruction) => i.getArgumentsContent() ?? '';

describe('Dockerfile', () => {
  it('builds, installs the production packages and runs in three stages, all on the official Node 24 slim image', () => {
    for (const from of froms) expect(from.getImage()).toBe('node:24-slim');
    expect(froms.map((f) => f.getBuildStage())).toEqual(['build', 'deps', 'runtime']);
  });

  it('installs no dev and no optional package, and copies only node_modules, dist and config into the runtime stage', () => {
    expect(of(stage('deps'), 'RUN').map(args).join('\n')).toContain('npm ci --omit=dev --omit=optional');
    const copies = of(runtime, 'COPY').filter((c): c is Copy => c instanceof Copy);
    const fromStages = copies.filter((c) => c.getFromFlag() !== null);
    expect(fromStages.map((c) => [c.getFromFlag()!.getValue(), ...c.getArguments().map((a) => a.getValue())])).toEqual([
      ['deps', '/app/node_modules', './node_modules'],
      ['build', '/app/dist', './dist'],
    ]);
    expect(copies.filter((c) => c.getFromFlag() === null).map((c) => c.getArguments()[0]!.getValue())).toEqual(['package.json', 'config']);
  });

  it('runs no package manager in the runtime stage and removes npm, npx and corepack from it', () => {
    const runs = of(runtime, 'RUN').map(args);
    // No command of a RUN starts a package manager (their paths may be named, to remove them).
    for (const run of runs) expect(run).not.toMatch(/(^|&&|;|\|)\s*(npm|npx|yarn|corepack)\b/);
    const removed = runs.join(' ');
    for (const path of ['/usr/local/lib/node_modules', '/usr/local/bin/npm', '/usr/local/bin/npx', '/usr/local/bin/corepack']) {
      expect(removed).toContain(path);
    }
    expect(removed).toMatch(/^rm -rf /);
  });

  it('runs as a non-root user given by number (the kubelet checks runAsNonRoot against a UID)', () => {
    const users = of(runtime, 'USER').map(args);
    expect(users).toHaveLength(1);
    expect(users[0]).toMatch(/^[0-9]+(:[0-9]+)?$/);
    expect(Number(users[0]!.split(':')[0])).toBeGreaterThan(0);
  });

  it('checks health on /healthz of the admin port', () => {
    const health = of(runtime, 'HEALTHCHECK').map(args);
    expect(health).toHaveLength(1);
    expect(health[0]).toContain('/healthz');
    expect(health[0]).toContain('9090');
  });

  it('starts the bin in exec form so the process receives SIGTERM and drains', () => {
    const entry = of(runtime, 'ENTRYPOINT').map(args);
    expect(entry).toHaveLength(1);
    const argv = JSON.parse(entry[0]!) as string[];
    expect(argv[0]).toBe('node');
    expect(argv.at(-1)).toBe('dist/cli/bin.js');
    expect(of(runtime, 'STOPSIGNAL').map(args)).toEqual(['SIGTERM']);
    const cmd = JSON.parse(of(runtime, 'CMD').map(args)[0]!) as string[];
    expect(cmd[0]).toBe('run');
    expect(existsSync(join(ROOT, cmd[cmd.indexOf('--config') + 1]!))).toBe(true);
  });

  it('runs node with the same heap flags as `npm start`, the ones README\'s "Runtime flags" gives and measures', () => {
    const imageFlags = (JSON.parse(of(runtime, 'ENTRYPOINT').map(args)[0]!) as string[]).slice(1, -1);
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
    const startFlags = start.split(/\s+/).slice(1, start.split(/\s+/).indexOf('dist/cli/bin.js'));
    expect(imageFlags.length).toBeGreaterThan(0);
    expect(startFlags).toEqual(imageFlags);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const flag of imageFlags) expect(readme, flag).toContain(`\`${flag}\``);
  });

  it('copies only files that exist', () => {
    const fromContext = of(dockerfile.getInstructions(), 'COPY').filter((c) => c instanceof Copy && c.getFromFlag() === null);
    expect(fromContext.length).toBeGreaterThan(3);
    for (const copy of fromContext) {
      const parts = copy.getArguments().map((a) => a.getValue());
      for (const source of parts.slice(0, -1)) expect(existsSync(join(ROOT, source)), source).toBe(true);
    }
  });

  it('keeps node_modules, dist, .git and tests out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['node_modules', 'dist', '.git', 'test']) expect(ignored).toContain(entry);
  });
});

/** Bare package names imported (statically, not `import type`) by `file` and everything it imports relatively. */
function staticPackages(file: string, seen = new Set<string>(), found = new Set<string>()): Set<string> {
  if (seen.has(file)) return found;
  seen.add(file);
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) staticPackages(resolve(dirname(file), spec), seen, found);
    else if (!spec.startsWith('node:'))
      found.add(
        spec
          .split('/')
          .slice(0, spec.startsWith('@') ? 2 : 1)
          .join('/'),
      );
  }
  return found;
}

describe('the packages of the image', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
  const production = Object.keys(pkg.dependencies!);
  const used = staticPackages(join(ROOT, 'src/cli/main.ts'));
  const peersOf = (name: string): string[] =>
    Object.keys(
      (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as Record<string, any>).peerDependencies ?? {},
    );

  it('the walk finds what the sidecar imports (so the checks below can fail)', () => {
    for (const name of ['ioredis', 'zod', 'pino', 'hdr-histogram-js', 'commander']) expect(used).toContain(name);
    expect(staticPackages(join(ROOT, 'src/load/run.ts'))).toContain('autocannon');
  });

  it('holds every package the CLI imports statically (every sidecar command) in dependencies', () => {
    for (const name of used) expect(production, name).toContain(name);
  });

  it('holds nothing else in dependencies but the peers those packages need', () => {
    const peers = new Set([...used].flatMap(peersOf));
    for (const name of production) expect(used.has(name) || peers.has(name), name).toBe(true);
  });

  it("keeps the demo's, the load profiles' and the dashboards' packages in the optional group, out of the image", () => {
    const optional = Object.keys(pkg.optionalDependencies ?? {});
    for (const name of [
      'autocannon',
      'uplot',
      '@grafana/grafana-foundation-sdk',
      '@stdlib/random-base-lognormal',
      '@stdlib/random-base-randu',
    ]) {
      expect(optional).toContain(name);
      expect(used.has(name), name).toBe(false);
    }
  });

  it("names a missing optional package (the image's `demo`) instead of failing with a stack trace", async () => {
    expect([...OPTIONAL_PACKAGES].sort()).toEqual(Object.keys(pkg.optionalDependencies ?? {}).sort());
    const absent: string = 'autocannon-is-not-installed';
    const missing = await import(absent).catch((err: unknown) => err);
    expect(missingOptionalPackage(missing)).toBeNull();
    const err = Object.assign(new Error("Cannot find package 'autocannon' imported from /app/dist/load/run.js"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    expect(missingOptionalPackage(err)).toBe('autocannon');
    expect(missingOptionalPackage(new Error('other'))).toBeNull();
  });
});

/**
 * There is no Docker engine on the build machines: the Dockerfile is checked by reading it (parsed with
 * dockerfile-ast), and CI runs the runtime stage's own commands in a clean folder (.ci/run).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Copy, DockerfileParser, type Instruction } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const froms = dockerfile.getFROMs();
const runtimeStart = froms[froms.length - 1]!.getRange().start.line;
const runtime = dockerfile.getInstructions().filter((i) => i.getRange().start.line >= runtimeStart);
const of = (list: Instruction[], keyword: string) => list.filter((i) => i.getKeyword() === keyword);
const args = (i: Instruction) => i.getArgumentsContent() ?? '';

describe('Dockerfile', () => {
  it('builds in one stage and runs in another, both on the official Node 24 slim image', () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from.getImage()).toBe('node:24-slim');
    expect(froms.map((f) => f.getBuildStage())).toEqual(['build', 'runtime']);
  });

  it('installs production dependencies only in the runtime stage and copies dist from the build stage', () => {
    const runs = of(runtime, 'RUN').map(args).join('\n');
    expect(runs).toContain('npm ci --omit=dev');
    const fromBuild = of(runtime, 'COPY').filter((c) => c instanceof Copy && c.getFromFlag()?.getValue() === 'build');
    expect(fromBuild.map((c) => c.getArguments().map((a) => a.getValue()))).toEqual([['/app/dist', './dist']]);
  });

  it('runs as a non-root user', () => {
    const users = of(runtime, 'USER').map(args);
    expect(users.length).toBe(1);
    expect(users[0]).not.toMatch(/^(root|0)(:|$)/);
  });

  it('checks health on /healthz of the admin port', () => {
    const health = of(runtime, 'HEALTHCHECK').map(args);
    expect(health).toHaveLength(1);
    expect(health[0]).toContain('/healthz');
    expect(health[0]).toContain('9090');
  });

  it('starts the bin in exec form so the process receives SIGTERM and drains', () => {
    const entry = of(runtime, 'ENTRYPOINT').map(args);
    expect(entry).toEqual(['["node", "dist/cli/bin.js"]']);
    expect(of(runtime, 'STOPSIGNAL').map(args)).toEqual(['SIGTERM']);
    const cmd = JSON.parse(of(runtime, 'CMD').map(args)[0]!) as string[];
    expect(cmd[0]).toBe('run');
    expect(existsSync(join(ROOT, cmd[cmd.indexOf('--config') + 1]!))).toBe(true);
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

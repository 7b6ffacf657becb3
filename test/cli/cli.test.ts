/** The `canary-gate` command as a user runs it: a real child process, its output and exit code. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const dir = mkdtempSync(join(tmpdir(), 'cg-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('canary-gate check-config', () => {
  it('prints ok for the shipped configs', () => {
    for (const file of ['config/default.yaml', 'config/example.yaml']) {
      const r = run(['check-config', join(import.meta.dirname, '../..', file)]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('ok\n');
      expect(r.code).toBe(0);
    }
  });

  it('names a wrong type, an unknown key and a negative duration, and exits 2', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'proxy:\n  port: "eighty"\nwindow:\n  slot: -5s\n  colour: blue\n');
    const r = run(['check-config', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).not.toContain('ok');
    expect(r.stderr).toMatch(/proxy\.port: .*number/);
    expect(r.stderr).toMatch(/window\.colour: unknown field/);
    expect(r.stderr).toMatch(/window\.slot: must be a positive duration .*-5s/);
  });

  it('names an environment override that is wrong, and exits 2', () => {
    const r = run(['check-config', join(import.meta.dirname, '../../config/example.yaml')], { PROXY_PORT: 'http' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/proxy\.port: .*PROXY_PORT/);
  });

  it('exits 2 on a missing file and on a usage error', () => {
    expect(run(['check-config', join(dir, 'missing.yaml')]).code).toBe(2);
    expect(run(['no-such-command']).code).toBe(2);
  });

  it('prints help with every subcommand', () => {
    const r = run(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['run', 'check-config', 'reset', 'rollback', 'demo']) expect(r.stdout).toContain(cmd);
  });
});

describe('canary-gate demo', () => {
  it('exits 2 and says how to get Redis when the one named by REDIS_URL does not answer', async () => {
    const { freePort } = await import('../../src/demo/find-redis.ts');
    const r = run(['demo'], { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not answer PING; start that Redis or unset REDIS_URL/);
  });
});

/**
 * Every command the README shows runs from a clone as written: each `canary-gate <command>` of the Commands table
 * answers `--help` through `npm run canary-gate -- <command>` (the project's own Node, no build, no global link), each
 * `npm run <script>` names a script of package.json, and no line asks for `npx canary-gate`, which npm cannot resolve
 * inside the package itself (it would look the name up in the registry).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** The subcommands the Commands table lists, e.g. `run`, `check-config`. */
const tableCommands = [...new Set([...readme.matchAll(/^\| `canary-gate ([a-z-]+)/gm)].map((m) => m[1]!))];
/** Lines of the README's code blocks that run npm. */
const codeLines = [...readme.matchAll(/```(?:sh|bash)?\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n')).map((l) => l.trim());
const npmRuns = codeLines.filter((l) => /(^|\s)npm run /.test(l)).map((l) => l.replace('npm run --silent ', 'npm run '));

describe('README commands from a clone', () => {
  it('lists the commands and shows them through npm run', () => {
    expect(tableCommands).toEqual(
      expect.arrayContaining(['run', 'check-config', 'reset', 'rollback', 'demo', 'explain', 'record', 'replay', 'tune', 'load']),
    );
    expect(npmRuns.length).toBeGreaterThanOrEqual(3);
    expect(readme).not.toMatch(/npx canary-gate/);
  });

  it('names only scripts that package.json has', () => {
    for (const line of npmRuns) {
      const script = /npm run ([\w:-]+)/.exec(line)![1]!;
      expect(Object.keys(scripts), line).toContain(script);
    }
  });

  it.each(tableCommands)('`npm run canary-gate -- %s --help` answers with its usage', (command) => {
    const r = spawnSync('npm', ['run', '--silent', 'canary-gate', '--', command, '--help'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`Usage: canary-gate ${command}`);
  });

  it('every `npm run canary-gate -- <command>` line of a code block names a listed command', () => {
    const used = npmRuns.map((l) => /npm run canary-gate -- ([a-z-]+)/.exec(l)?.[1]).filter((c): c is string => c !== undefined);
    expect(used.length).toBeGreaterThan(0);
    for (const command of used) expect(tableCommands).toContain(command);
  });
});

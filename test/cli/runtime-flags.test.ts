/**
 * The V8 flags of src/cli/runtime-flags.ts must be set before the CLI's module graph allocates: main.ts (the module
 * both `npm start` and the image's bin run) imports that module before any other, and the module sets each flag.
 * Their effect on the tail is measured in bench/proxy-overhead.ts, not here.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { V8_RUNTIME_FLAGS } from '../../src/cli/runtime-flags.ts';

const ROOT = join(import.meta.dirname, '../..');
const importsOf = (file: string): string[] =>
  [...readFileSync(join(ROOT, file), 'utf8').matchAll(/^import\s+(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!);

it('is the first module main.ts imports, so that it runs before the rest of the graph is loaded', () => {
  expect(importsOf('src/cli/main.ts')[0]).toBe('./runtime-flags.ts');
  // The bin checks the Node version, then loads main.ts and nothing else.
  expect(readFileSync(join(ROOT, 'src/cli/bin.ts'), 'utf8')).toMatch(/await import\('\.\/main\.ts'\);\s*$/);
});

it('names only flags this V8 knows (setFlagsFromString ignores an unknown or renamed one silently)', () => {
  expect(V8_RUNTIME_FLAGS).toContain('--no-allocation-site-pretenuring');
  const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
  for (const flag of V8_RUNTIME_FLAGS) {
    const name = flag.replace(/^--no-/, '--');
    expect(options, flag).toMatch(new RegExp(`^\\s*${name}\\s.*\\n\\s*type: bool`, 'm'));
  }
});

/** The README stays true: its configuration table is the one generated from config/example.yaml. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { configTable, TABLE_END, TABLE_START } from '../src/config/docs.ts';
import { ERROR_TABLE, ErrorCodes } from '../src/core/errors.ts';

const readme = readFileSync(join(import.meta.dirname, '../README.md'), 'utf8');

it('carries the configuration table generated from config/example.yaml', () => {
  const section = readme.slice(readme.indexOf(TABLE_START) + TABLE_START.length, readme.indexOf(TABLE_END)).trim();
  expect(section).toBe(configTable().trim());
});

it('lists every error code in its Errors table, with the exit code the CLI uses, and nothing else', () => {
  const section = readme.slice(readme.indexOf('## Errors'), readme.indexOf('## Commands'));
  const rows = [...section.matchAll(/^\| `(CG_\w+)` \| (\d) \| (.+?) \| (.+?) \|$/gm)].map((m) => [m[1], Number(m[2]), m[3], m[4]]);
  expect(rows).toEqual(Object.entries(ERROR_TABLE).map(([code, row]) => [code, row.exitCode, row.meaning, row.todo]));
  for (const code of Object.values(ErrorCodes)) expect(Object.keys(ERROR_TABLE)).toContain(code);
});

it('maps concepts to files that exist ("Where things live")', () => {
  const section = readme.slice(readme.indexOf('## Where things live'), readme.indexOf('## Quick start'));
  const paths = [...section.matchAll(/`([\w./-]+)`/g)].map((m) => m[1]!);
  expect(paths.length).toBeGreaterThan(20);
  const missing = paths.filter((p) => !existsSync(join(import.meta.dirname, '..', p)));
  expect(missing).toEqual([]);
});

it('has a table of contents that lists every section, in order', () => {
  const toc = readme.slice(readme.indexOf('## Contents'), readme.indexOf('## Where things live'));
  const listed = [...toc.matchAll(/^- \[(.+?)\]\(#/gm)].map((m) => m[1]);
  const sections = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]).filter((h) => h !== 'Contents');
  expect(listed).toEqual(sections);
});

/** The README stays true: its configuration table is the one generated from config/example.yaml. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { configTable, TABLE_END, TABLE_START } from '../src/config/docs.ts';
import { ErrorCodes } from '../src/core/errors.ts';

const readme = readFileSync(join(import.meta.dirname, '../README.md'), 'utf8');

it('carries the configuration table generated from config/example.yaml', () => {
  const section = readme.slice(readme.indexOf(TABLE_START) + TABLE_START.length, readme.indexOf(TABLE_END)).trim();
  expect(section).toBe(configTable().trim());
});

it('lists every error code in its Errors table', () => {
  for (const code of Object.values(ErrorCodes)) expect(readme).toContain(`| \`${code}\` |`);
});

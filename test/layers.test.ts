/**
 * The layer rule (.dependency-cruiser.cjs, run by `npm run lint`): src/ keeps it, and each rule fires on a fixture
 * tree (test/fixtures/layers/src) that breaks it once, so a rule that matches nothing cannot pass unnoticed.
 */
import { join } from 'node:path';
import { cruise, type IReporterOutput } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import { expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

async function violations(dir: string): Promise<string[]> {
  const options = await extractDepcruiseOptions(join(ROOT, '.dependency-cruiser.cjs'));
  const previous = process.cwd();
  process.chdir(ROOT);
  let output: IReporterOutput;
  try {
    output = await cruise([dir], { ...options, validate: true });
  } finally {
    process.chdir(previous);
  }
  if (typeof output.output === 'string') throw new Error(output.output);
  return output.output.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
}

it('src/ keeps the layer rule', async () => {
  expect(await violations('src')).toEqual([]);
});

it('flags each broken rule in the fixture tree, and only those', async () => {
  const F = 'test/fixtures/layers/src';
  expect(await violations(F)).toEqual([
    `app-is-inside-the-cli: ${F}/app/uses-cli.ts -> ${F}/cli/main.ts`,
    `config-imports-core-only: ${F}/config/reaches-out.ts -> ${F}/proxy/thing.ts`,
    `core-is-pure: ${F}/core/impure.ts -> http`,
    `core-is-pure: ${F}/core/impure.ts -> ${F}/fleet/thing.ts`,
    `integrations-are-routes: ${F}/integrations/reaches-out.ts -> ${F}/proxy/thing.ts`,
    `no-circular: ${F}/app/uses-cli.ts -> ${F}/cli/main.ts`,
    `proxy-is-an-adapter: ${F}/proxy/thing.ts -> ${F}/fleet/thing.ts`,
    `router-is-a-composition: ${F}/router/reaches-out.ts -> ${F}/cli/main.ts`,
  ]);
});

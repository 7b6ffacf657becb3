/**
 * The README's configuration table, generated from config/example.yaml and the schema's paths.
 */
import { describe, expect, it } from 'vitest';
import { configTable, exampleFields, renderReadmeSection, TABLE_END, TABLE_START } from '../../src/config/docs.ts';
import { envNameOf, leafPaths } from '../../src/config/load.ts';

const table = configTable();
const lines = table.split('\n');
const rowOf = (path: string): string => lines.find((line) => line.startsWith(`| \`${path}\` |`)) ?? '';

describe('configTable', () => {
  it('has a header and one row per leaf of DEFAULTS, in their order', () => {
    expect(lines.slice(0, 2)).toEqual(['| Field | Default | Env | Description |', '| --- | --- | --- | --- |']);
    expect(lines.slice(2).map((line) => line.split(' | ')[0])).toEqual(leafPaths().map(([path]) => `| \`${path}\``));
  });

  it.each([
    ['redis.url', '`redis://127.0.0.1:6379`', '`CANARY_GATE_REDIS_URL`<br>`REDIS_URL`'],
    ['window.slot', '`5s`', '`CANARY_GATE_WINDOW_SLOT`'],
    ['pod.name', '`""` (empty)', '`CANARY_GATE_POD_NAME`<br>`POD_NAME`'],
    ['proxy.errorStatuses', '`5xx`', '`CANARY_GATE_PROXY_ERROR_STATUSES`'],
    ['policy.latency.relativeP95', '`1.5`', '`CANARY_GATE_POLICY_LATENCY_RELATIVE_P95`'],
  ])('%s shows its default and environment names', (path, shown, env) => {
    const cells = rowOf(path).split(' | ');
    expect(cells[1]).toBe(shown);
    expect(cells[2]).toBe(env);
    expect(cells[3]!.length).toBeGreaterThan(20);
  });

  it.each(leafPaths().map(([path]) => path))('%s: five cells, no Env: line, no raw HTML', (path) => {
    const row = rowOf(path);
    expect(row.split(/(?<!\\)\|/)).toHaveLength(6);
    expect(row).toContain(envNameOf(path));
    expect(row).not.toContain('Env:');
    expect(row.replace(/<br>/g, '')).not.toMatch(/<[a-z]/);
  });
});

describe('exampleFields', () => {
  it("takes the comment of a map's first key and drops the file header", () => {
    const fields = exampleFields('# header\n\n# first\na: 1\nb:\n  # nested first\n  c: [x]\n  # nested second\n  d: ""\n');
    expect(fields).toEqual([
      { path: 'a', value: 1, comment: ['first'] },
      { path: 'b.c', value: ['x'], comment: ['nested first'] },
      { path: 'b.d', value: '', comment: ['nested second'] },
    ]);
  });

  it('refuses text that is not YAML', () => {
    expect(() => exampleFields('a: [1\n')).toThrow(/not valid YAML/);
  });
});

describe('renderReadmeSection', () => {
  const readme = `# canary-gate\n\n## Configuration\n\n${TABLE_START}\nold table\n${TABLE_END}\n\n## Errors\n`;

  it('replaces the text between the markers and keeps the rest', () => {
    const out = renderReadmeSection(readme);
    expect(out).toBe(`# canary-gate\n\n## Configuration\n\n${TABLE_START}\n\n${table}\n\n${TABLE_END}\n\n## Errors\n`);
  });

  it('gives the same text when run again', () => {
    const once = renderReadmeSection(readme);
    expect(renderReadmeSection(once)).toBe(once);
  });

  it.each([
    ['no markers', '# readme\n'],
    ['only the start marker', `${TABLE_START}\n`],
    ['the markers out of order', `${TABLE_END}\n${TABLE_START}\n`],
  ])('refuses a README with %s', (_name, text) => {
    expect(() => renderReadmeSection(text)).toThrow(/config-table/);
  });
});

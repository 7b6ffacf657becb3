/**
 * The README's benchmark table, generated from bench/results/*.json (the latest run of each benchmark), between the
 * `<!-- bench-table:start -->` and `<!-- bench-table:end -->` markers. `--write` rewrites README.md; without it the
 * table is printed.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib.ts';

interface Result {
  readonly name: string;
  readonly at: string;
  readonly smoke: boolean;
  readonly machine: { cpu: string; cores: number; node: string; commit: string };
  readonly params: Record<string, unknown>;
  readonly figures: Array<Record<string, unknown>>;
}

const read = (name: string, dir = join(ROOT, 'bench/results')): Result | null => {
  const path = join(dir, `${name}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Result) : null;
};
const fmt = (v: unknown): string => (v === null || v === undefined ? '-' : typeof v === 'number' ? String(Number(v.toPrecision(4))) : String(v));

/** Markdown for every result found in `dir`: one table per benchmark, with when, where and at which commit it ran. */
export function benchTables(dir?: string): string {
  const out: string[] = [];
  for (const name of ['proxy-overhead', 'recording-cost', 'p95-accuracy', 'detection-latency', 'fleet-scale', 'memory']) {
    const r = read(name, dir);
    if (r === null) {
      out.push(`**${name}**: not run yet (\`npm run bench -- ${name}\`).`, '');
      continue;
    }
    const columns = Object.keys(r.figures[0] ?? {});
    out.push(
      `**${name}** (${r.at.slice(0, 10)}, ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}, commit ${r.machine.commit}${r.smoke ? ', SMOKE SIZE: not a measurement' : ''})`,
      '',
      `| ${columns.join(' | ')} |`,
      `| ${columns.map(() => '---').join(' | ')} |`,
      ...r.figures.map((f) => `| ${columns.map((c) => fmt(f[c])).join(' | ')} |`),
      '',
    );
  }
  return out.join('\n');
}

if (import.meta.main) {
  const tables = benchTables();
  if (process.argv.includes('--write')) {
    const path = join(ROOT, 'README.md');
    const readme = readFileSync(path, 'utf8');
    const start = readme.indexOf('<!-- bench-table:start -->');
    const end = readme.indexOf('<!-- bench-table:end -->');
    if (start === -1 || end === -1) throw new Error('README.md has no bench-table markers');
    writeFileSync(path, `${readme.slice(0, start)}<!-- bench-table:start -->\n${tables}${readme.slice(end)}`);
    console.log('README.md: benchmark tables regenerated');
  } else {
    process.stdout.write(tables);
  }
}

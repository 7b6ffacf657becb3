/**
 * Writes a run's result: `<profile>-<time>.json` (the {@link LoadResult}, NaN as null) and `<profile>-<time>.html`
 * (the self-contained report) into one folder, created when missing.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { htmlReport } from './html-report.ts';
import type { LoadResult } from './run.ts';

/** The result as pretty JSON, NaN and Infinity as null. */
export function resultJson(result: LoadResult): string {
  return `${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
}

/**
 * @param outDir folder for both files
 * @returns the paths written
 */
export async function writeReports(result: LoadResult, outDir: string): Promise<{ json: string; html: string }> {
  await mkdir(outDir, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, '-');
  const base = join(outDir, `${result.profile.name}-${stamp}`);
  const paths = { json: `${base}.json`, html: `${base}.html` };
  await writeFile(paths.json, resultJson(result));
  await writeFile(paths.html, htmlReport(result));
  return paths;
}

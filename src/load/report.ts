/**
 * Writes a run's result: `<profile>-<time>.json` (the {@link LoadResult}, NaN as null) and `<profile>-<time>.html`
 * (the self-contained report) into one folder, created when missing.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { finiteOrNull, htmlReport } from './html-report.ts';
import type { LoadResult } from './result.ts';

/**
 * @param outDir folder for both files
 * @returns the paths written
 */
export async function writeReports(result: LoadResult, outDir: string): Promise<{ json: string; html: string }> {
  await mkdir(outDir, { recursive: true });
  const base = join(outDir, `${result.profile.name}-${result.startedAt.replace(/[:.]/g, '-')}`);
  const paths = { json: `${base}.json`, html: `${base}.html` };
  await writeFile(paths.json, `${JSON.stringify(result, finiteOrNull, 2)}\n`);
  await writeFile(paths.html, htmlReport(result));
  return paths;
}

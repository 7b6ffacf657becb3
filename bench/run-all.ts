/**
 * `npm run bench`: every benchmark, one after the other (each a child process, so that none inherits another's heap
 * or JIT state), then the README table regenerated from bench/results. Pass names to run a subset:
 * `npm run bench -- proxy-overhead memory`.
 *
 * The whole set stops the memory benchmark at 1 M requests so that it ends within 15 minutes on 2 cores, plus about
 * 11 minutes of decision-quality simulation; the 5 M checkpoint (15 to 25 minutes of saturation alone, machine to
 * machine) runs with `npm run bench -- memory`. BENCH_MEMORY_REQUESTS wins.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { NODE, ROOT } from './lib.ts';

export const BENCHMARKS = [
  'recording-cost',
  'p95-accuracy',
  'fleet-scale',
  'proxy-overhead',
  'detection-latency',
  'decision-quality',
  'memory',
] as const;

const chosen = process.argv.slice(2).length ? process.argv.slice(2) : [...BENCHMARKS];
const env =
  process.argv.slice(2).length === 0 && process.env.BENCH_MEMORY_REQUESTS === undefined
    ? { ...process.env, BENCH_MEMORY_REQUESTS: '500000,1000000' }
    : process.env;
for (const name of chosen) {
  if (!(BENCHMARKS as readonly string[]).includes(name)) {
    console.error(`unknown benchmark ${name}; one of ${BENCHMARKS.join(', ')}`);
    process.exit(2);
  }
  console.log(`\n== ${name}`);
  const r = spawnSync(NODE, [join(ROOT, 'bench', `${name}.ts`)], { stdio: 'inherit', env });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const r = spawnSync(NODE, [join(ROOT, 'bench/readme-table.ts'), '--write'], { stdio: 'inherit' });
process.exit(r.status ?? 1);

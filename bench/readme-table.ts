/**
 * The benchmark tables of bench/README.md, generated from bench/results/*.json (the latest run of each benchmark): one table per
 * benchmark between the `<!-- bench-table:start -->` and `<!-- bench-table:end -->` markers, and the decision-quality
 * tables (too many rows for one generic table) between `<!-- decision-quality:start -->` and
 * `<!-- decision-quality:end -->`. `--write` rewrites bench/README.md; without it the tables are printed.
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
  /** proxy-overhead only: issue 14's per-pod targets with canary-gate's figures (bench/proxy-overhead.ts). */
  readonly targets?: Array<Record<string, unknown>>;
}

const read = (name: string, dir = join(ROOT, 'bench/results')): Result | null => {
  const path = join(dir, `${name}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Result) : null;
};
const fmt = (v: unknown): string =>
  v === null || v === undefined ? '-' : typeof v === 'number' ? String(Number(v.toPrecision(4))) : String(v);

/** Markdown for every result found in `dir`: one table per benchmark, with when, where and at which commit it ran. */
export function benchTables(dir?: string): string {
  const out: string[] = [];
  for (const name of ['proxy-overhead', 'recording-cost', 'p95-accuracy', 'detection-latency', 'fleet-scale', 'memory']) {
    const r = read(name, dir);
    if (r === null) {
      out.push(`**${name}**: not run yet (\`npm run bench -- ${name}\`).`, '');
      continue;
    }
    if (name === 'proxy-overhead' && r.targets) {
      out.push(proxyOverheadTables(r));
      continue;
    }
    const columns = Object.keys(r.figures[0] ?? {});
    out.push(
      header(r),
      '',
      `| ${columns.join(' | ')} |`,
      `| ${columns.map(() => '---').join(' | ')} |`,
      ...r.figures.map((f) => `| ${columns.map((c) => fmt(f[c])).join(' | ')} |`),
      '',
    );
  }
  return out.join('\n');
}

/**
 * The per-pod cost tables from bench/results/proxy-overhead.json: one row per contender (saturation, CPU per request,
 * latency at each offered rate and what it adds to direct, RSS), then the targets with canary-gate's figures.
 */
function proxyOverheadTables(r: Result): string {
  const rates = (r.params.rates as number[] | undefined) ?? [1000, 2000];
  const ms = (v: unknown): string => (typeof v === 'number' ? fmt(v) : '-');
  const signed = (v: unknown): string => (typeof v === 'number' ? `${v >= 0 ? '+' : ''}${fmt(v)} ms` : '-');
  const rows = r.figures.map((f) => {
    const direct = f.contender === 'direct';
    const cpu = [f.cpuUsPerRequest, ...rates.map((rate) => f[`cpuUsPerRequestAt${rate}`])];
    const cells = [
      String(f.contender),
      `${fmt(f.rps)} (${fmt(f.ratioToDirect)}x)`,
      cpu.every((v) => typeof v !== 'number') ? '-' : cpu.map(fmt).join(' · '),
      ...rates.flatMap((rate) => [
        [f[`p50MsAt${rate}`], f[`p99MsAt${rate}`], f[`p999MsAt${rate}`]].map(ms).join(' / '),
        direct
          ? '-'
          : `${signed(f[`addedP99MsAt${rate}`])}${typeof f[`addedP99MsVsBareAt${rate}`] === 'number' ? ` (${signed(f[`addedP99MsVsBareAt${rate}`])} vs bare)` : ''}`,
      ]),
      typeof f.rssIdleMiB === 'number' ? `${fmt(f.rssIdleMiB)} / ${fmt(f.rssAfterLoadMiB)}` : '-',
    ];
    return `| ${cells.join(' | ')} |`;
  });
  const columns = [
    'contender',
    `saturation rps (vs direct), ${r.params.wrkConnections ?? 16} conns`,
    `CPU µs/request: saturation · ${rates.map((rate) => `${rate}`).join(' · ')} rps`,
    ...rates.flatMap((rate) => [`p50 / p99 / p99.9 at ${rate} rps, ms`, `added p99 at ${rate} rps`]),
    'RSS idle / after load, MiB',
  ];
  const flags = r.params.gateNodeFlags ? `${r.params.gateNodeFlags} ` : '';
  const targets = (r.targets ?? []).map(
    (t) =>
      `| ${t.target} | ${fmt(t.canaryGate)} ${t.unit} | ${fmt(t.limit)} ${t.unit}${t.limitFrom ? ` (${t.limitFrom})` : ''} | ${t.met === true ? 'met' : t.met === false ? 'not met' : `inconclusive: ${t.inconclusive ?? 'not measured'}`} |`,
  );
  return [
    header(r),
    '',
    `canary-gate ran \`node ${flags}${r.params.gateEntry ?? 'src/cli/main.ts'} run\`; medians over ${r.params.rounds} round${r.params.rounds === 1 ? '' : 's'}.`,
    '',
    `| ${columns.join(' | ')} |`,
    `| ${columns.map(() => '---').join(' | ')} |`,
    ...rows,
    '',
    '| target (issue 14) | canary-gate | limit | met |',
    '| --- | --- | --- | --- |',
    ...targets,
    '',
  ].join('\n');
}

/** Header line of a result: when, where, at which commit, and whether it is a smoke run. */
const header = (r: Result): string =>
  `**${r.name}** (${r.at.slice(0, 10)}, ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}, commit ${r.machine.commit}${r.smoke ? ', SMOKE SIZE: not a measurement' : ''})`;

type Row = Record<string, unknown>;
const CONTENDERS = ['sequential', 'window', 'thresholds', 'oracle'] as const;
const percent = (v: unknown): string => (typeof v === 'number' ? `${Number((v * 100).toPrecision(3))} %` : '-');
const seconds = (v: unknown): string => (typeof v === 'number' ? `${Math.round(v)}` : 'never');

/**
 * The decision-quality tables from bench/results/decision-quality.json (bench/decision-quality.ts): false rollbacks
 * of healthy canaries (A/A), then detection rate and median / p90 seconds from the change to the rollback.
 */
export function decisionQualityTable(dir?: string): string {
  const r = read('decision-quality', dir);
  if (r === null) return '**decision-quality**: not run yet (`npm run bench -- decision-quality`).\n';
  const figures = r.figures as Row[];
  const cells = new Map<string, Map<string, Row>>();
  for (const f of figures) {
    const key = `${f.scenario}|${f.sharePercent}|${f.relativeP95}`;
    if (!cells.has(key)) cells.set(key, new Map());
    cells.get(key)!.set(String(f.contender), f);
  }
  const label = (f: Row): string => `${f.scenario}${f.relativeP95 !== 1.5 ? ` (relativeP95 ${f.relativeP95})` : ''}`;
  const aa: string[] = [];
  const regressions: string[] = [];
  for (const row of cells.values()) {
    const first = row.values().next().value!;
    const cell = (c: string, show: (f: Row) => string): string => (row.has(c) ? show(row.get(c)!) : '-');
    if (first.falseRollbacks !== undefined) {
      const tuned = (f: Row): string =>
        f.oracleTuning !== undefined && f.oracleTuning !== 'errors x10' ? `, tuned for ${f.oracleTuning}` : '';
      const rollbacks = (f: Row): string => `${percent(f.falseRollbackRate)} (${f.falseRollbacks}/${f.rollouts}${tuned(f)})`;
      aa.push(
        `| ${label(first)} | ${first.sharePercent} % | ${CONTENDERS.map((c) => cell(c, rollbacks)).join(' | ')} | ${cell('sequential', (f) => percent(f.warnShare))} |`,
      );
    } else {
      const early = (f: Row): string =>
        typeof f.rollbacksBeforeChange === 'number' && f.rollbacksBeforeChange > 0 ? ` (${f.rollbacksBeforeChange} before the change)` : '';
      const detected = (f: Row): string => `${percent(f.detectionRate)} · ${seconds(f.medianS)} / ${seconds(f.p90S)}${early(f)}`;
      const ratio = cell('sequential', (f) => (typeof f.medianToOracle === 'number' ? `${f.medianToOracle.toFixed(2)}` : '-'));
      regressions.push(
        `| ${label(first)} | ${first.sharePercent} % | ${CONTENDERS.map((c) => cell(c, detected)).join(' | ')} | ${cell('sequential', (f) => seconds(f.firstWarnMedianS))} | ${ratio} |`,
      );
    }
  }
  const counts = (regressed: boolean): string =>
    CONTENDERS.map(
      (c) => `${c} ${figures.find((f) => f.contender === c && (f.falseRollbacks === undefined) === regressed)?.rollouts ?? '-'}`,
    ).join(', ');
  return [
    header(r),
    '',
    `Healthy canary (A/A) over a ${Math.round(((r.params.horizonSlots as number) * (r.params.slotMs as number)) / 60_000)} min rollout: false rollbacks (rollouts: ${counts(false)}); the oracle is tuned for 10x errors unless said; warn share: evaluations of \`sequential\` with a warning.`,
    '',
    '| scenario | canary share | sequential | window | thresholds | oracle | sequential warn share |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...aa,
    '',
    `Regression from slot ${r.params.changeSlot}, each rollout until its rollback or ${Math.round(((r.params.afterChangeSlots as number) * (r.params.slotMs as number)) / 60_000)} min after the change: detection rate · median / p90 seconds from the change to the rollback over all rollouts (never: that quantile was not detected; a rollback before the change counts as not detected); rollouts: ${counts(true)}.`,
    '',
    '| scenario | canary share | sequential | window | thresholds | oracle | sequential first warn, median s | sequential / oracle median |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...regressions,
    '',
  ].join('\n');
}

/** Replaces the text between `start` and `end` in `text`. @throws when a marker is missing */
function between(text: string, start: string, end: string, body: string): string {
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from === -1 || to === -1) throw new Error(`bench/README.md has no ${start} ... ${end} markers`);
  return `${text.slice(0, from)}${start}\n${body}${text.slice(to)}`;
}

if (import.meta.main) {
  const tables = benchTables();
  const decisions = decisionQualityTable();
  if (process.argv.includes('--write')) {
    const path = join(ROOT, 'bench/README.md');
    let readme = readFileSync(path, 'utf8');
    readme = between(readme, '<!-- bench-table:start -->', '<!-- bench-table:end -->', tables);
    readme = between(readme, '<!-- decision-quality:start -->', '<!-- decision-quality:end -->', decisions);
    writeFileSync(path, readme);
    console.log('bench/README.md: benchmark tables regenerated');
  } else {
    process.stdout.write(`${tables}\n${decisions}`);
  }
}

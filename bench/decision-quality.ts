/**
 * Decision quality: how often each method rolls back a healthy canary, and how fast it rolls back a regressed one,
 * over thousands of simulated 2 h rollouts of a synthetic fleet (bench/synthetic-fleet.ts: Poisson traffic, binomial
 * errors, lognormal latencies with the sampling noise of empirical quantiles; no HDR histogram is recorded).
 *
 * Contenders, each replaying the same synthetic stream per rollout seed, through `evaluateWindow` and the
 * controller's `step` as the evaluator does (one evaluation per 5 s slot, window 12 slots, flag = the canary share):
 * - sequential: DEFAULT_JUDGE_POLICY (one CUSUM per check, two for the relative error check), consecutiveBreaches 1;
 * - window: the previous method (per-window exact tests, Bonferroni over the horizon), consecutiveBreaches 3;
 * - thresholds: statistics off, point estimates against the thresholds (Flagger/Argo style), consecutiveBreaches 3;
 * - oracle: a CUSUM that knows the true rates (bench/decision-oracle.ts), h calibrated per share on separate A/A
 *   rollouts to 1 % false rollbacks over 2 h.
 * Cells: A/A at each share over the 2 h horizon; regressions from slot 24 (2 min), each rollout running until its
 * rollback or 30 min after the change. Times are from the change to the end of the slot whose evaluation rolled back.
 * Medians and p90s are over all rollouts of a cell, an undetected one counting as never (null when the quantile is
 * not detected). Cells run on `WORKERS` worker threads. `BENCH_SMOKE=1`: a few rollouts over a short horizon.
 */
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { initialState, step } from '../src/core/controller.ts';
import { EMPTY_DETECTOR } from '../src/core/detector.ts';
import { DEFAULT_JUDGE_POLICY, evaluateWindow, type JudgePolicy } from '../src/core/judge.ts';
import { calibrateThreshold, oracleMaxima, oracleRollbackSlot, oracleTuning, type OracleTuning } from './decision-oracle.ts';
import { SMOKE, writeResult } from './lib.ts';
import { decisionQualityTable } from './readme-table.ts';
import { DEFAULT_FLEET, generateStream, SyntheticRun, type FleetParams, type Regression } from './synthetic-fleet.ts';

const SHARES = [0.01, 0.05, 0.25, 0.5];
const CHANGE_SLOT = 24;
const AFTER_CHANGE_SLOTS = SMOKE ? 24 : 360; // 30 min
const HORIZON_SLOTS = SMOKE ? 120 : DEFAULT_FLEET.horizonSlots;
const WORKERS = Math.max(1, Math.min(2, availableParallelism()));
/** Rollouts per cell and contender; sequential and oracle never below 1000 (A/A) and 200 (regressions). */
const COUNTS = SMOKE
  ? {
      calibration: 40,
      aa: { sequential: 6, oracle: 6, window: 3, thresholds: 3 },
      regression: { sequential: 3, oracle: 3, window: 2, thresholds: 2 },
    }
  : {
      calibration: Number(process.env.BENCH_DQ_CALIBRATION ?? 2000),
      aa: {
        sequential: 1000,
        oracle: 1000,
        window: Number(process.env.BENCH_DQ_AA_WINDOW ?? 200),
        thresholds: Number(process.env.BENCH_DQ_AA_THRESHOLDS ?? 200),
      },
      regression: { sequential: 200, oracle: 200, window: 100, thresholds: 100 },
    };
const CHUNK = SMOKE ? 3 : 25;

type ContenderName = 'sequential' | 'window' | 'thresholds' | 'oracle';
const CONTENDERS: readonly ContenderName[] = ['sequential', 'window', 'thresholds', 'oracle'];

/** A regression scenario; the oracle is tuned for its kind and factor. */
interface Scenario {
  readonly name: string;
  readonly kind: 'errors' | 'latency';
  readonly factor: number;
  /** false: A/A (kind and factor then name the oracle's tuning whose false rollbacks are reported). */
  readonly regressed: boolean;
}
const SCENARIOS: readonly Scenario[] = [
  { name: 'A/A', kind: 'errors', factor: 10, regressed: false },
  { name: 'errors x2', kind: 'errors', factor: 2, regressed: true },
  { name: 'errors x10', kind: 'errors', factor: 10, regressed: true },
  { name: 'p95 x1.2', kind: 'latency', factor: 1.2, regressed: true },
  { name: 'p95 x1.5', kind: 'latency', factor: 1.5, regressed: true },
  { name: 'p95 x1.7', kind: 'latency', factor: 1.7, regressed: true },
  { name: 'p95 x2', kind: 'latency', factor: 2, regressed: true },
];
/** The oracle tunings calibrated per share: every scenario's, and the extra row's. */
const TUNINGS: ReadonlyArray<{ kind: 'errors' | 'latency'; factor: number }> = [
  { kind: 'errors', factor: 2 },
  { kind: 'errors', factor: 10 },
  { kind: 'latency', factor: 1.2 },
  { kind: 'latency', factor: 1.35 },
  { kind: 'latency', factor: 1.5 },
  { kind: 'latency', factor: 1.7 },
  { kind: 'latency', factor: 2 },
];
const tuningIndex = (kind: 'errors' | 'latency', factor: number): number =>
  TUNINGS.findIndex((t) => t.kind === kind && t.factor === factor);

/** One cell: a scenario at a share, with an optional relative p95 rule for the judge's contenders. */
interface Cell {
  readonly id: number;
  readonly scenario: Scenario;
  readonly share: number;
  readonly relativeP95: number | null;
}
const CELLS: Cell[] = [];
for (const scenario of SCENARIOS) for (const share of SHARES) CELLS.push({ id: CELLS.length, scenario, share, relativeP95: null });
// The question: a relative p95 rule of 1.2 against a canary 35 % slower, at 50 % share (and its A/A).
CELLS.push({ id: CELLS.length, scenario: { name: 'A/A', kind: 'latency', factor: 1.35, regressed: false }, share: 0.5, relativeP95: 1.2 });
CELLS.push({
  id: CELLS.length,
  scenario: { name: 'p95 x1.35', kind: 'latency', factor: 1.35, regressed: true },
  share: 0.5,
  relativeP95: 1.2,
});

function fleetOf(cell: Pick<Cell, 'scenario' | 'share'>): FleetParams {
  const { scenario } = cell;
  const regression: Regression | null = scenario.regressed
    ? {
        atSlot: CHANGE_SLOT,
        errorFactor: scenario.kind === 'errors' ? scenario.factor : 1,
        latencyFactor: scenario.kind === 'latency' ? scenario.factor : 1,
      }
    : null;
  return { ...DEFAULT_FLEET, canaryShare: cell.share, horizonSlots: HORIZON_SLOTS, regression };
}
const slotsOf = (cell: Cell): number => (cell.scenario.regressed ? CHANGE_SLOT + AFTER_CHANGE_SLOTS : HORIZON_SLOTS);
/** Rollout seeds: disjoint per cell, and from the calibration seeds. */
const seedOf = (cellId: number, rollout: number): number => 1_000_000 * (cellId + 1) + rollout;
const calibrationSeedOf = (shareIndex: number, rollout: number): number => 900_000_000 + 1_000_000 * shareIndex + rollout;

function policyOf(
  name: Exclude<ContenderName, 'oracle'>,
  relativeP95: number | null,
): { policy: JudgePolicy; consecutiveBreaches: number } {
  const base =
    relativeP95 === null ? DEFAULT_JUDGE_POLICY : { ...DEFAULT_JUDGE_POLICY, latency: { ...DEFAULT_JUDGE_POLICY.latency, relativeP95 } };
  if (name === 'sequential') return { policy: base, consecutiveBreaches: 1 };
  if (name === 'window') return { policy: { ...base, statistics: { ...base.statistics, method: 'window' } }, consecutiveBreaches: 3 };
  return { policy: { ...base, statistics: { ...base.statistics, enabled: false } }, consecutiveBreaches: 3 };
}

/** What one contender did in one rollout. */
interface RolloutOutcome {
  /** The slot whose evaluation rolled back, or null. */
  readonly rollbackSlot: number | null;
  /** The first slot at or after the change (A/A: after the start) whose verdict warned or rolled back (sequential), else null. */
  readonly firstWarnSlot: number | null;
  readonly evaluations: number;
  readonly warnEvaluations: number;
  /** A/A oracle: the maximum of every tuning's statistic. */
  readonly maxima?: number[];
}

/** A rollout judged by `evaluateWindow` and `step`, one evaluation per slot, until rollback or `slots`. */
function judgeRollout(
  run: SyntheticRun,
  policy: JudgePolicy,
  consecutiveBreaches: number,
  slots: number,
  flagPercent: number,
  fromSlot: number,
): RolloutOutcome {
  const { windowSlots, slotMs } = run.stream.params;
  let detector = EMPTY_DETECTOR;
  let state = initialState(0);
  let warnEvaluations = 0;
  let firstWarnSlot: number | null = null;
  const slotsOf = (i: number): ReturnType<SyntheticRun['slotsOf']> => run.slotsOf(i);
  for (let slot = 0; slot < slots; slot++) {
    const baseline = run.window('baseline', slot);
    const canary = run.window('canary', slot);
    const evaluated = evaluateWindow(
      policy,
      detector,
      baseline,
      canary,
      { firstSlot: Math.max(0, slot - windowSlots + 1), lastSlot: slot, slotMs, slotsOf },
      flagPercent,
    );
    detector = evaluated.detector;
    const { verdict } = evaluated;
    const warned = verdict.outcome === 'warn' || verdict.checks.some((c) => c.outcome === 'warn');
    if (warned) warnEvaluations++;
    const next = step({ consecutiveBreaches }, state, verdict, 'bench');
    state = next.state;
    if (firstWarnSlot === null && slot >= fromSlot && (warned || next.decision !== null)) firstWarnSlot = slot;
    if (next.decision !== null) return { rollbackSlot: slot, firstWarnSlot, evaluations: slot + 1, warnEvaluations };
  }
  return { rollbackSlot: null, firstWarnSlot, evaluations: slots, warnEvaluations };
}

/** A unit of work for a worker. */
type Job =
  | { readonly kind: 'calibrate'; readonly shareIndex: number; readonly from: number; readonly to: number }
  | {
      readonly kind: 'rollouts';
      readonly cellId: number;
      readonly contender: ContenderName;
      readonly from: number;
      readonly to: number;
      readonly h: number;
    };
type JobResult = { readonly job: Job; readonly outcomes: RolloutOutcome[]; readonly maxima: number[][] };

const tuningsOf = (share: number): OracleTuning[] => {
  const params = { ...DEFAULT_FLEET, canaryShare: share };
  return TUNINGS.map((t) => oracleTuning(params, t.kind, t.factor));
};

function runJob(job: Job): JobResult {
  if (job.kind === 'calibrate') {
    const params: FleetParams = { ...DEFAULT_FLEET, canaryShare: SHARES[job.shareIndex]!, horizonSlots: HORIZON_SLOTS };
    const tunings = tuningsOf(params.canaryShare);
    const maxima: number[][] = [];
    for (let r = job.from; r < job.to; r++) {
      const seed = calibrationSeedOf(job.shareIndex, r);
      maxima.push(oracleMaxima(new SyntheticRun(generateStream(params, seed), [seed, 4]), tunings, HORIZON_SLOTS));
    }
    return { job, outcomes: [], maxima };
  }
  const cell = CELLS[job.cellId]!;
  const params = fleetOf(cell);
  const slots = slotsOf(cell);
  const fromSlot = cell.scenario.regressed ? CHANGE_SLOT : 0;
  const outcomes: RolloutOutcome[] = [];
  for (let r = job.from; r < job.to; r++) {
    const seed = seedOf(cell.id, r);
    const stream = generateStream(params, seed, slots);
    const run = new SyntheticRun(stream, [seed, CONTENDERS.indexOf(job.contender) + 1]);
    if (job.contender === 'oracle') {
      if (!cell.scenario.regressed) {
        const maxima = oracleMaxima(run, tuningsOf(cell.share), slots);
        const rollback = maxima[tuningIndex(cell.scenario.kind, cell.scenario.factor)]! >= job.h;
        outcomes.push({ rollbackSlot: rollback ? slots - 1 : null, firstWarnSlot: null, evaluations: slots, warnEvaluations: 0, maxima });
      } else {
        const rollbackSlot = oracleRollbackSlot(
          run,
          tuningsOf(cell.share)[tuningIndex(cell.scenario.kind, cell.scenario.factor)]!,
          job.h,
          slots,
        );
        outcomes.push({ rollbackSlot, firstWarnSlot: null, evaluations: slots, warnEvaluations: 0 });
      }
      continue;
    }
    const { policy, consecutiveBreaches } = policyOf(job.contender, cell.relativeP95);
    outcomes.push(judgeRollout(run, policy, consecutiveBreaches, slots, cell.share * 100, fromSlot));
  }
  return { job, outcomes, maxima: [] };
}

/** Slots a job replays: its cost, about. */
const slotsOfJob = (job: Job): number => (job.to - job.from) * (job.kind === 'calibrate' ? HORIZON_SLOTS : slotsOf(CELLS[job.cellId]!));

/** Runs jobs on WORKERS threads, the longest first so that the threads finish together; reports progress on stderr. */
async function runAll(jobs: Job[], label: string): Promise<JobResult[]> {
  const queue = [...jobs].sort((a, b) => slotsOfJob(b) - slotsOfJob(a));
  const total = queue.length;
  let reported = 0;
  const results: JobResult[] = [];
  const workers = Array.from({ length: WORKERS }, () => new Worker(new URL(import.meta.url)));
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve, reject) => {
          const next = (): void => {
            const job = queue.shift();
            if (job === undefined) {
              resolve();
              return;
            }
            worker.postMessage(job);
          };
          worker.on('message', (result: JobResult) => {
            results.push(result);
            if (results.length >= reported + total / 10 || results.length === total) {
              reported = results.length;
              console.error(`decision-quality: ${label} ${results.length}/${total} jobs`);
            }
            next();
          });
          worker.on('error', reject);
          next();
        }),
    ),
  );
  await Promise.all(workers.map((w) => w.terminate()));
  return results;
}

const chunks = (total: number, make: (from: number, to: number) => Job): Job[] => {
  const out: Job[] = [];
  for (let from = 0; from < total; from += CHUNK) out.push(make(from, Math.min(total, from + CHUNK)));
  return out;
};

/** The q quantile of seconds over all rollouts, undetected ones (Infinity) included; null when it falls on one. */
function quantileS(values: readonly number[], q: number): number | null {
  const sorted = [...values].sort((a, b) => a - b);
  const v = sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return v === undefined || !Number.isFinite(v) ? null : v;
}

async function main(): Promise<void> {
  const startedMs = performance.now();
  const slotS = DEFAULT_FLEET.slotMs / 1000;

  // Phase 1: the oracle's thresholds, per share and tuning, from A/A rollouts with their own seeds.
  const calibration = await runAll(
    SHARES.flatMap((_, shareIndex) => chunks(COUNTS.calibration, (from, to) => ({ kind: 'calibrate', shareIndex, from, to }))),
    'oracle calibration',
  );
  const thresholds = SHARES.map((_, shareIndex) => {
    const maxima = calibration.filter((r) => r.job.kind === 'calibrate' && r.job.shareIndex === shareIndex).flatMap((r) => r.maxima);
    return TUNINGS.map((_t, k) =>
      calibrateThreshold(
        maxima.map((m) => m[k]!),
        0.01,
      ),
    );
  });
  const hOf = (cell: Cell): number => thresholds[SHARES.indexOf(cell.share)]![tuningIndex(cell.scenario.kind, cell.scenario.factor)]!;
  const calibratedS = (performance.now() - startedMs) / 1000;

  // Phase 2: every cell and contender.
  const countOf = (cell: Cell, c: ContenderName): number => (cell.scenario.regressed ? COUNTS.regression : COUNTS.aa)[c];
  const jobs = CELLS.flatMap((cell) =>
    CONTENDERS.flatMap((contender) =>
      chunks(countOf(cell, contender), (from, to) => ({ kind: 'rollouts', cellId: cell.id, contender, from, to, h: hOf(cell) })),
    ),
  );
  const results = await runAll(jobs, 'rollouts');

  const figures = [];
  for (const cell of CELLS) {
    const changeSlot = cell.scenario.regressed ? CHANGE_SLOT : 0;
    const secondsTo = (slot: number | null): number => (slot === null ? Infinity : (slot + 1) * slotS - changeSlot * slotS);
    const rows: Record<string, Record<string, unknown>> = {};
    for (const contender of CONTENDERS) {
      const outcomes = results
        .filter((r) => r.job.kind === 'rollouts' && r.job.cellId === cell.id && r.job.contender === contender)
        .sort((a, b) => (a.job as { from: number }).from - (b.job as { from: number }).from)
        .flatMap((r) => r.outcomes);
      const n = outcomes.length;
      const row: Record<string, unknown> = {
        scenario: cell.scenario.name,
        sharePercent: cell.share * 100,
        relativeP95: cell.relativeP95 ?? DEFAULT_JUDGE_POLICY.latency.relativeP95,
        contender,
        rollouts: n,
      };
      if (!cell.scenario.regressed) {
        const rollbacks = outcomes.filter((o) => o.rollbackSlot !== null).length;
        row.falseRollbacks = rollbacks;
        row.falseRollbackRate = rollbacks / n;
        if (contender === 'sequential')
          row.warnShare = outcomes.reduce((s, o) => s + o.warnEvaluations, 0) / outcomes.reduce((s, o) => s + o.evaluations, 0);
        if (contender === 'oracle') {
          row.oracleH = hOf(cell);
          row.oracleTuning = `${cell.scenario.kind} x${cell.scenario.factor}`;
        }
      } else {
        const early = outcomes.filter((o) => o.rollbackSlot !== null && o.rollbackSlot < changeSlot).length;
        const seconds = outcomes.map((o) =>
          o.rollbackSlot !== null && o.rollbackSlot >= changeSlot ? secondsTo(o.rollbackSlot) : Infinity,
        );
        row.detectionRate = seconds.filter(Number.isFinite).length / n;
        row.medianS = quantileS(seconds, 0.5);
        row.p90S = quantileS(seconds, 0.9);
        row.rollbacksBeforeChange = early;
        if (contender === 'sequential') {
          const warned = outcomes.map((o) => secondsTo(o.firstWarnSlot));
          row.firstWarnMedianS = quantileS(warned, 0.5);
          row.firstWarnP90S = quantileS(warned, 0.9);
        }
        if (contender === 'oracle') row.oracleH = hOf(cell);
      }
      rows[contender] = row;
    }
    const seq = rows.sequential!;
    const oracle = rows.oracle!;
    if (typeof seq.medianS === 'number' && typeof oracle.medianS === 'number') seq.medianToOracle = seq.medianS / oracle.medianS;
    figures.push(...Object.values(rows));
  }
  const runS = (performance.now() - startedMs) / 1000;
  const params = {
    totalRps: DEFAULT_FLEET.totalRps,
    shares: SHARES,
    slotMs: DEFAULT_FLEET.slotMs,
    windowSlots: DEFAULT_FLEET.windowSlots,
    horizonSlots: HORIZON_SLOTS,
    baselineErrorRatio: DEFAULT_FLEET.baselineErrorRatio,
    latency: { medianMs: DEFAULT_FLEET.latencyMedianMs, sigma: DEFAULT_FLEET.latencySigma },
    changeSlot: CHANGE_SLOT,
    afterChangeSlots: AFTER_CHANGE_SLOTS,
    counts: COUNTS,
    workers: WORKERS,
    consecutiveBreaches: { sequential: 1, window: 3, thresholds: 3 },
    oracle: {
      falseRollbackRate: 0.01,
      calibrationRollouts: COUNTS.calibration,
      thresholds: Object.fromEntries(
        SHARES.map((s, i) => [`${s * 100}%`, Object.fromEntries(TUNINGS.map((t, k) => [`${t.kind} x${t.factor}`, thresholds[i]![k]]))]),
      ),
    },
    runSeconds: Math.round(runS),
    calibrationSeconds: Math.round(calibratedS),
  };
  const path = await writeResult('decision-quality', params, figures);
  console.log(decisionQualityTable(dirname(path)));
  console.log(`${jobs.length} jobs, ${Math.round(runS)} s on ${WORKERS} workers (calibration ${Math.round(calibratedS)} s); wrote ${path}`);
}

// The same module is the main thread (cells, aggregation, output) and each worker (jobs).
if (isMainThread) await main();
else parentPort!.on('message', (job: Job) => parentPort!.postMessage(runJob(job)));

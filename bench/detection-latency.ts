/**
 * Detection latency: seconds from the moment v2 regresses (median latency 20 -> 50 ms, so p95 about x2.5; errors
 * 0.1 % -> 10 %) to the rollback flag in Redis, at 20, 100 and 1000 canary requests per second, with the default
 * policy (sequential statistics, the first failing evaluation rolls back), the previous per-window tests (3
 * consecutive breaches) and thresholds only (3 consecutive breaches, as Flagger counts). Runs the demo's fleet (two
 * apps, two sidecars, a router, 1 s slots, 10-slot window) in this process, on a real Redis.
 */
import { runDemo } from '../src/demo/scenario.ts';
import { median, SMOKE, writeResult } from './lib.ts';

const CASES = SMOKE
  ? [{ canaryRps: 20, rate: 200, percentage: 10 }]
  : [
      { canaryRps: 20, rate: 200, percentage: 10 },
      { canaryRps: 100, rate: 1000, percentage: 10 },
      { canaryRps: 1000, rate: 2000, percentage: 50 },
    ];
const ROUNDS = SMOKE ? 1 : 2;
const STREAK_3 = { CANARY_GATE_POLICY_CONSECUTIVE_BREACHES: '3' };
const POLICIES = SMOKE
  ? ([['default', {}]] as const)
  : ([
      ['default', {}],
      ['window tests (previous)', { ...STREAK_3, CANARY_GATE_POLICY_STATISTICS_METHOD: 'window' }],
      ['thresholds only', { ...STREAK_3, CANARY_GATE_POLICY_STATISTICS_ENABLED: 'false' }],
    ] as const);

const figures = [];
for (const c of CASES) {
  for (const [policy, env] of POLICIES) {
    const seconds: number[] = [];
    let achieved = '';
    for (let round = 0; round < ROUNDS; round++) {
      const lines: string[] = [];
      const code = await runDemo({
        healthy: false,
        durationS: SMOKE ? 25 : 45,
        regressAtS: SMOKE ? 3 : 12,
        regressAtWeight: 100,
        rate: c.rate,
        startPercentage: c.percentage,
        env: { ...process.env, ...env, CANARY_GATE_LOG_LEVEL: 'silent' },
        print: (line) => lines.push(line),
      });
      const found = lines.map((l) => /^seconds from regression to flag: ([\d.]+)/.exec(l)).find((m) => m !== null);
      if (code === 0 && found) seconds.push(Number(found[1]));
      achieved = lines.find((l) => l.startsWith('requests routed')) ?? achieved;
    }
    figures.push({
      canaryRps: c.canaryRps,
      offeredRps: c.rate,
      canaryShare: c.percentage,
      policy,
      secondsToFlag: seconds.length ? median(seconds) : null,
      runs: ROUNDS,
      detected: seconds.length,
      routed: achieved,
    });
  }
}
const path = await writeResult(
  'detection-latency',
  { rounds: ROUNDS, slot: '1s', windowSlots: 10, consecutiveBreaches: { default: 1, 'window tests (previous)': 3, 'thresholds only': 3 } },
  figures,
);
console.table(figures);
console.log(`wrote ${path}`);

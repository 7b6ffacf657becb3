/**
 * What the validated config means to the core: the judge's policy (durations in ms become µs, alpha spent over the
 * horizon) and the hash that names the config a decision was made under. The sidecar, the CLI and replay all map a
 * config through here, so that they judge alike.
 */
import { createHash } from 'node:crypto';
import { STATISTICAL_CHECKS, type JudgePolicy } from '../core/judge.ts';
import { evaluationAlpha } from '../core/statistics.ts';
import type { Config } from './schema.ts';

/** The judge's policy from the config (durations in ms become µs). */
export function judgePolicyOf(config: Config): JudgePolicy {
  const p = config.policy;
  return {
    minSamples: p.minSamples,
    latency: {
      relativeP95: p.latency.relativeP95,
      warnRelativeP95: p.latency.warnRelativeP95,
      absoluteP95Us: p.latency.absoluteP95 * 1000,
      relativeP50: p.latency.relativeP50,
      relativeP99: p.latency.relativeP99,
      absoluteP50Us: p.latency.absoluteP50 * 1000,
      absoluteP99Us: p.latency.absoluteP99 * 1000,
    },
    errors: { ...p.errors },
    throughputDrop: p.throughput.drop,
    // Only the checks asked to hold a breach: 0 (the default) is "at once", as an absent entry is.
    forMs: Object.fromEntries(Object.entries(p.for).filter(([, ms]) => ms > 0)),
    noData: { ...p.noData },
    trafficShareAlpha: p.trafficShareAlpha,
    statistics: {
      enabled: p.statistics.enabled,
      method: p.statistics.method,
      falseRollbackRate: p.statistics.falseRollbackRate,
      horizonMs: p.statistics.horizon,
      warnRate: p.statistics.warnRate,
      alpha: evaluationAlpha(p.statistics.falseRollbackRate, config.window.slot, p.statistics.horizon, STATISTICAL_CHECKS),
      grossErrorRatio: p.statistics.grossErrorRatio,
    },
  };
}

/** sha256 of the validated config's JSON, first 16 hex digits: names the policy a decision was made under. */
export function configHash(config: Config): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
}

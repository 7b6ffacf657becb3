/** Bounds for counts that should follow a binomial law: a split of requests, users in buckets. */
import binomialQuantile from '@stdlib/stats-base-dists-binomial-quantile';

/** The central `level` interval of Binomial(n, p): 0.999 leaves 0.05 % out on each side. */
export function binomialInterval(n: number, p: number, level = 0.999): [number, number] {
  const tail = (1 - level) / 2;
  return [binomialQuantile(tail, n, p), binomialQuantile(1 - tail, n, p)];
}

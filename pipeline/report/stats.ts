/**
 * The report's statistics: a 95 % interval for one accuracy and the paired exact McNemar test for
 * two models scored on the same eval images.
 *
 * - Interval: Wilson's score interval (Wilson 1927), which stays inside [0, 1] and keeps close to
 *   its nominal coverage at the accuracies and sample sizes of a report, where the plain normal
 *   interval does not near 0 or 1.
 * - McNemar (McNemar 1947), exact form: only the discordant images carry information; under the null
 *   hypothesis (both models equally accurate) each of the b + c discordant images is equally likely
 *   to favour either model, so min(b, c) ~ Binomial(b + c, 1/2), and the two-sided p-value is
 *   2 · P(X ≤ min(b, c)) capped at 1 (the "exact binomial" McNemar test, as statsmodels'
 *   `mcnemar(exact=True)`).
 */

/** z for a two-sided 95 % interval. */
export const Z95 = 1.959963984540054;

export interface Interval {
  low: number;
  high: number;
}

/** Wilson score interval for `successes` out of `n` (n ≥ 1). */
export function wilsonInterval(successes: number, n: number, z = Z95): Interval {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`an interval needs at least one trial (got n = ${n})`);
  if (!Number.isInteger(successes) || successes < 0 || successes > n) throw new RangeError(`successes ${successes} is outside 0..${n}`);
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/**
 * P(X ≤ k) for X ~ Binomial(n, 1/2), summed in log space so that n in the hundreds of thousands
 * neither overflows the binomial coefficients nor underflows 2^-n.
 */
export function binomialHalfCdf(k: number, n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer (got ${n})`);
  if (k < 0) return 0;
  if (k >= n) return 1;
  const logHalfN = -n * Math.LN2;
  // log C(n, i) built up term by term; log-sum-exp relative to the largest term (the last, as k < n/2
  // is the case that matters; for k ≥ n/2 the max is still tracked explicitly).
  const logs: number[] = [];
  let logC = 0;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    logs.push(logC + logHalfN);
  }
  const max = Math.max(...logs);
  let sum = 0;
  for (const l of logs) sum += Math.exp(l - max);
  return Math.min(1, Math.exp(max) * sum);
}

export interface PairedTest {
  /** Images both models were scored on. */
  n: number;
  bothRight: number;
  /** Right for the first model only (b). */
  onlyFirst: number;
  /** Right for the second model only (c). */
  onlySecond: number;
  bothWrong: number;
  /** Second minus first accuracy. */
  difference: number;
  /** Two-sided exact McNemar p-value. */
  pValue: number;
}

/** The two-sided exact McNemar p-value from the discordant counts b and c. */
export function mcnemarExactP(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  return Math.min(1, 2 * binomialHalfCdf(Math.min(b, c), n));
}

/** Paired comparison of two models' per-image correctness (same images, same order). */
export function mcnemarExact(first: ArrayLike<boolean | number>, second: ArrayLike<boolean | number>): PairedTest {
  if (first.length !== second.length) throw new RangeError(`paired test needs the same images: ${first.length} vs ${second.length} results`);
  let both = 0, b = 0, c = 0, none = 0;
  for (let i = 0; i < first.length; i++) {
    const x = !!first[i], y = !!second[i];
    if (x && y) both++;
    else if (x) b++;
    else if (y) c++;
    else none++;
  }
  const n = first.length;
  return { n, bothRight: both, onlyFirst: b, onlySecond: c, bothWrong: none, difference: n ? (c - b) / n : 0, pValue: mcnemarExactP(b, c) };
}

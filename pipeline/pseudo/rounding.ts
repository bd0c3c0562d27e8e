/**
 * Seeded stochastic rounding of repeat counts. The random draw for a sample is a hash of
 * (seed, shard, key), not a position in a random stream, so the result does not depend on the
 * order in which shards are read or on how many processes read them.
 */

/** cyrb53: a small, well-mixed 53-bit string hash (public domain, bryc). */
function cyrb53(str: string, seed: number): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** A uniform number in [0, 1) fixed by seed, shard and key. */
export function sampleUniform(seed: number, shard: string, key: string): number {
  return cyrb53(`${shard}\u0000${key}`, seed >>> 0) / 2 ** 53;
}

/** floor(rate) or floor(rate)+1, the latter with probability frac(rate): expectation = rate. */
export function stochasticRound(rate: number, u: number): number {
  const whole = Math.floor(rate);
  return whole + (u < rate - whole ? 1 : 0);
}

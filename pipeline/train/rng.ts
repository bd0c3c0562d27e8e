/**
 * Seeded, serialisable randomness for training. Every random choice in the train stage (data order,
 * augmentation, dropout/stochastic-depth masks) is derived from the run seed and a counter (epoch,
 * step, sample index) through `mix`, so a resumed run replays exactly the draws an uninterrupted run
 * would make. `Sfc32` is the stream generator (small, fast, 128-bit state that goes into checkpoints).
 */

/** Hashes any list of integers to a 32-bit value (murmur3 finaliser chain). Stateless seed derivation. */
export function mix(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    // Fold doubles beyond 32 bits (e.g. large step counts) in two halves so no bits are lost.
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    for (const v of [lo, hi]) {
      let k = Math.imul(v, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h ^= k;
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export type RngState = [number, number, number, number];

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): passes PractRand, state is 4 uint32. */
export class Sfc32 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | RngState) {
    if (Array.isArray(seed)) {
      [this.a, this.b, this.c, this.d] = seed.map((v) => v >>> 0) as RngState;
    } else {
      this.a = mix(seed, 1);
      this.b = mix(seed, 2);
      this.c = mix(seed, 3);
      this.d = 1;
      for (let i = 0; i < 12; i++) this.nextUint32(); // the authors' recommended warm-up
    }
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  state(): RngState {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }
}

/** Fisher-Yates permutation of 0..n-1 drawn from `rng`. */
export function permutation(n: number, rng: Sfc32): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/**
 * Runs `fn` with `Math.random` replaced by a generator seeded from `seed`. tfjs weight initialisers
 * without an explicit seed seed themselves from `Math.random()`, so building a model inside this
 * makes its initial weights a pure function of `seed` without touching the model code. Only for
 * synchronous code (nothing else can run in between); the original is always restored.
 */
export function withSeededMathRandom<T>(seed: number, fn: () => T): T {
  const original = Math.random;
  const rng = new Sfc32(seed);
  Math.random = () => rng.next();
  try {
    return fn();
  } finally {
    Math.random = original;
  }
}

/**
 * Seeded, platform-independent randomness for shuffles and augmentation. Math.random cannot be
 * seeded, and resumable imports/training need the exact same order on every run and machine.
 */
import { createHash } from 'node:crypto';

/** A 32-bit seed from any mix of numbers and strings (sha256, so nearby seeds are unrelated). */
export function seedFrom(...parts: (string | number)[]): number {
  return createHash('sha256').update(JSON.stringify(parts)).digest().readUInt32LE(0);
}

/** mulberry32: tiny, fast, good enough for shuffling and crop sampling. Returns [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** In-place Fisher-Yates shuffle. */
export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

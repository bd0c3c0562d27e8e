/**
 * Per-image top-1 correctness of one model on the eval set, kept compactly (one bit per image) in
 * the model's evaluation object so that any two models can later be compared pairwise (McNemar)
 * without re-running them. The images are identified by a hash of their ids in scoring order: two
 * results pair only when they scored the same images in the same order.
 */
import { createHash } from 'node:crypto';

export interface PerImageCorrectness {
  /** sha256 (hex) of the scored images' ids ("<shard>/<key>"), newline-separated, in scoring order. */
  imagesSha256: string;
  count: number;
  /** Bitset, bit i (least significant first within each byte) = image i correct; base64. */
  correct: string;
}

export class CorrectnessRecorder {
  private readonly hash = createHash('sha256');
  private bytes = new Uint8Array(1024);
  private n = 0;

  add(imageId: string, correct: boolean): void {
    this.hash.update(this.n === 0 ? imageId : `\n${imageId}`);
    if (this.n >> 3 >= this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    if (correct) this.bytes[this.n >> 3]! |= 1 << (this.n & 7);
    this.n++;
  }

  result(): PerImageCorrectness {
    return { imagesSha256: this.hash.digest('hex'), count: this.n, correct: Buffer.from(this.bytes.subarray(0, (this.n + 7) >> 3)).toString('base64') };
  }
}

/** The bits back as 0/1 per image; an error naming `what` when the bitset does not hold `count` images. */
export function decodeCorrectness(p: PerImageCorrectness, what: string): Uint8Array {
  const bytes = Buffer.from(p.correct, 'base64');
  if (bytes.length !== (p.count + 7) >> 3) throw new Error(`${what}: per-image results hold ${bytes.length} bytes, expected ${(p.count + 7) >> 3} for ${p.count} images`);
  const out = new Uint8Array(p.count);
  for (let i = 0; i < p.count; i++) out[i] = (bytes[i >> 3]! >> (i & 7)) & 1;
  return out;
}

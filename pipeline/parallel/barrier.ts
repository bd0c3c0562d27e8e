/**
 * A reusable barrier for worker threads over a SharedArrayBuffer (Atomics.wait / notify), that the
 * coordinating thread can break: when a worker dies, the others must not wait for it forever.
 *
 * Words: [arrived, generation, broken]. The last worker to arrive resets `arrived` and bumps
 * `generation`, which releases the others. `Barrier.break` (callable from any thread, including the
 * main thread, which may notify but not wait) sets `broken` and bumps `generation`: every waiter
 * wakes and throws, and so does every later `wait`.
 */

/** The shared words of one barrier. */
export type BarrierControl = SharedArrayBuffer;

const ARRIVED = 0;
const GENERATION = 1;
const BROKEN = 2;

export class BarrierBrokenError extends Error {
  override name = 'BarrierBrokenError';
  constructor() {
    super('another worker failed: this step was abandoned');
  }
}

export class Barrier {
  private readonly words: Int32Array;

  constructor(
    control: BarrierControl,
    private readonly parties: number,
  ) {
    this.words = new Int32Array(control);
  }

  static allocate(): BarrierControl {
    return new SharedArrayBuffer(4 * 3);
  }

  /** Makes every current and future `wait` on this control throw BarrierBrokenError. */
  static break(control: BarrierControl): void {
    const words = new Int32Array(control);
    Atomics.store(words, BROKEN, 1);
    // Bumping the generation too means a waiter about to call Atomics.wait cannot miss the notify.
    Atomics.add(words, GENERATION, 1);
    Atomics.notify(words, GENERATION);
  }

  wait(): void {
    const w = this.words;
    if (Atomics.load(w, BROKEN)) throw new BarrierBrokenError();
    const generation = Atomics.load(w, GENERATION);
    if (Atomics.add(w, ARRIVED, 1) === this.parties - 1) {
      Atomics.store(w, ARRIVED, 0);
      Atomics.add(w, GENERATION, 1);
      Atomics.notify(w, GENERATION);
      return;
    }
    while (Atomics.load(w, GENERATION) === generation) Atomics.wait(w, GENERATION, generation);
    // `break` sets the flag before it bumps the generation, so a release by `break` is seen here.
    if (Atomics.load(w, BROKEN)) throw new BarrierBrokenError();
  }
}

/**
 * Softmax and top-k of a batch of logits in plain JS (the ONNX path: the runtime returns logits,
 * and for k ≤ classes ≤ a few thousand per image this is microseconds next to the forward pass).
 * Ties keep the lower class index first, as tf.topk does.
 */
import type { TopK } from '../pseudo/teacher.js';

export function topKOfLogits(logits: Float32Array, n: number, classes: number, k: number): TopK {
  if (logits.length !== n * classes) throw new Error(`topK: ${logits.length} logits for ${n} x ${classes}`);
  const kk = Math.min(k, classes);
  const out: TopK = { classes: new Int32Array(n * kk), probs: new Float32Array(n * kk), k: kk };
  const probs = new Float64Array(classes);
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    let max = -Infinity;
    for (let j = 0; j < classes; j++) max = Math.max(max, row[j]!);
    let sum = 0;
    for (let j = 0; j < classes; j++) sum += probs[j] = Math.exp(row[j]! - max);
    // Partial selection: keep the best kk indices in `order`, best first.
    order.length = 0;
    for (let j = 0; j < classes; j++) {
      const p = probs[j]!;
      if (order.length === kk && p <= probs[order[kk - 1]!]!) continue;
      let at = order.length;
      while (at > 0 && p > probs[order[at - 1]!]!) at--;
      order.splice(at, 0, j);
      if (order.length > kk) order.pop();
    }
    for (let r = 0; r < kk; r++) {
      out.classes[i * kk + r] = order[r]!;
      out.probs[i * kk + r] = probs[order[r]!]! / sum;
    }
  }
  return out;
}

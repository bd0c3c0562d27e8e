/**
 * The seeded random source for the model's training-time noise (stochastic depth and dropout).
 *
 * Why not tf.layers' own `seed`: a tf.layers Dropout with `seed` passes the same seed to every call,
 * so it draws the *same* mask at every step; without a seed it uses an unseeded generator. Training
 * must be deterministic given a seed and resumable exactly, so the model's noise layers draw from
 * this process-wide counter-based generator instead:
 *
 *   seedModelNoise(seed)          // once, before training
 *   const s = modelNoiseState()   // save in a checkpoint
 *   setModelNoiseState(s)         // restore on resume
 *
 * Each draw (one per noise layer per training forward pass) derives an independent stream from
 * (seed, counter) and advances the counter, so the state is two integers. Layers draw in graph
 * order, so the same seed, data and backend give the same masks. Inference (training=false) never
 * draws.
 *
 * Data-parallel training: a worker's batch holds some rows of the global batch. With
 * `setModelNoiseRows`, each draw is made for the whole global batch and the worker keeps its rows,
 * so a sample's dropout / stochastic-depth mask is the same whatever the number of workers.
 */

export interface ModelNoiseState {
  seed: number;
  counter: number;
}

let state: ModelNoiseState = { seed: 0, counter: 0 };
/** Global row of each local row, and the global batch size (data-parallel workers only). */
let rows: { global: Int32Array; total: number } | undefined;

/**
 * Local row r of every noise layer's input is row `global[r]` of a global batch of `total` rows;
 * undefined: the local batch is the whole batch (the default).
 */
export function setModelNoiseRows(map?: { global: Int32Array; total: number }): void {
  if (map?.global.some((g) => !(g >= 0 && g < map.total))) throw new Error(`model noise rows: every global row must be in 0..${map.total - 1}`);
  rows = map;
}

export function seedModelNoise(seed: number): void {
  if (!Number.isInteger(seed)) throw new Error(`model noise seed must be an integer, got ${seed}`);
  state = { seed: seed >>> 0, counter: 0 };
}

export function modelNoiseState(): ModelNoiseState {
  return { ...state };
}

export function setModelNoiseState(s: ModelNoiseState): void {
  if (!Number.isInteger(s?.seed) || !Number.isInteger(s?.counter) || s.counter < 0) {
    throw new Error(`invalid model noise state ${JSON.stringify(s)}: expected {seed, counter} integers`);
  }
  state = { seed: s.seed >>> 0, counter: s.counter };
}

/** splitmix32-style integer hash: decorrelates consecutive (seed, counter) pairs. */
function mix(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

/**
 * n uniforms in [0, 1) from a fresh stream; advances the counter by one. n counts whole rows of the
 * layer's input (n = rows x values per row); with a row map (setModelNoiseRows) the stream is drawn
 * for the global batch and this worker's rows are picked out of it.
 */
export function drawUniforms(n: number): Float32Array {
  let a = mix(state.seed ^ mix(state.counter));
  state.counter++;
  const map = rows;
  const per = map ? n / map.global.length : 1;
  if (map && !Number.isInteger(per)) throw new Error(`model noise: ${n} values do not split into ${map.global.length} rows`);
  const out = new Float32Array(map ? map.total * per : n);
  for (let i = 0; i < out.length; i++) {
    // mulberry32
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  if (!map) return out;
  const mine = new Float32Array(n);
  map.global.forEach((g, r) => mine.set(out.subarray(g * per, (g + 1) * per), r * per));
  return mine;
}

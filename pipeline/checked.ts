/**
 * Checked look-ups for indices and keys that come from data or from another module (a label, a
 * class id, a shard number, a saved tensor list), where `!` would turn a broken promise into a
 * `TypeError` or a silent `NaN` far from its cause. Indices a loop bound makes evident keep `!`.
 */

/** `items[index]`, or a RangeError naming `what` when there is no such element. */
export function at<T>(items: ArrayLike<T>, index: number, what: string): T {
  const v = items[index];
  if (v === undefined) {
    throw new RangeError(items.length === 0 ? `${what}: index ${index} of an empty list` : `${what}: index ${index} is outside 0..${items.length - 1}`);
  }
  return v;
}

/** `map.get(key)`, or a RangeError naming `what` when the key is absent. */
export function getOrThrow<K, V>(map: ReadonlyMap<K, V>, key: K, what: string): V {
  const v = map.get(key);
  if (v === undefined) throw new RangeError(`${what}: no entry for ${String(key)}`);
  return v;
}

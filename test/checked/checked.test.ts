/**
 * pipeline/checked.ts: a look-up that misses throws a RangeError naming what was looked up and
 * where, instead of handing `undefined` on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { at, getOrThrow } from '../../pipeline/checked.js';

test('at: in range returns the element, out of range names what and the range', () => {
  assert.equal(at([10, 20, 30], 2, 'scores'), 30);
  assert.equal(at(new Float32Array([0.5]), 0, 'loss'), 0.5);
  assert.throws(() => at([10, 20, 30], 3, 'scores'), { name: 'RangeError', message: 'scores: index 3 is outside 0..2' });
  assert.throws(() => at([], 0, 'top-1 class'), { name: 'RangeError', message: 'top-1 class: index 0 of an empty list' });
  assert.throws(() => at([1], Number.NaN, 'x'), RangeError);
});

test('getOrThrow: a present key returns its value (falsy ones too), an absent key names what', () => {
  const m = new Map<string, number>([['a', 0]]);
  assert.equal(getOrThrow(m, 'a', 'offsets'), 0);
  assert.throws(() => getOrThrow(m, 'b', 'offsets of shard-000001.tar'), { name: 'RangeError', message: 'offsets of shard-000001.tar: no entry for b' });
});

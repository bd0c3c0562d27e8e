/**
 * Child process for the reader memory test: reads the first N shards of a dataset (consuming
 * and dropping every sample) and prints its peak RSS, so each measurement starts from a fresh
 * process. Usage: reader-memory-child <dataset dir> <shards>
 * Started with --expose-gc, it collects garbage whenever a new shard begins: the peak then
 * measures what the reader retains, not how lazily V8 frees dropped shard buffers.
 */
import { readDataset } from '../../pipeline/data/reader.js';

const [dir, n] = process.argv.slice(2);
let samples = 0;
let bytes = 0;
let shard = -1;
const gc = (globalThis as { gc?: () => void }).gc;
for await (const s of readDataset(dir!, { shardList: Array.from({ length: Number(n) }, (_, i) => i), prefetch: { shards: 2, bytes: 32 << 20 } })) {
  if (s.shard !== shard) {
    shard = s.shard;
    gc?.();
  }
  samples++;
  bytes += s.image.length;
}
console.log(JSON.stringify({ samples, bytes, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));

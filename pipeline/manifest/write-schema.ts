/**
 * Writes manifests/schema.json from the zod manifest schema (run by `npm run build`, or from the
 * sources with `npx tsx pipeline/manifest/write-schema.ts`). The output path is found from the
 * package root (nearest package.json above this file), so it is the same from dist/ and sources.
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { manifestSchema } from './schema.js';

function packageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`write-schema: no package.json above ${from}`);
  }
}

const out = path.join(packageRoot(path.dirname(fileURLToPath(import.meta.url))), 'manifests', 'schema.json');
const schema = z.toJSONSchema(manifestSchema, { io: 'input' });
writeFileSync(out, JSON.stringify(schema, null, 2) + '\n');

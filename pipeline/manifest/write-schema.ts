/** Writes manifests/schema.json from the zod manifest schema (run by `npm run build`). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { manifestSchema } from './schema.js';

const out = fileURLToPath(new URL('../../../manifests/schema.json', import.meta.url));
const schema = z.toJSONSchema(manifestSchema, { io: 'input' });
writeFileSync(out, JSON.stringify(schema, null, 2) + '\n');

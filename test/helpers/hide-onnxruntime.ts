/**
 * `node --import <this file>`: the process (and the worker processes it starts with the same
 * execArgv) sees no onnxruntime-node, as on a machine where the optional dependency did not
 * install. The real package stays where it is; only its resolution fails, the way a missing
 * package fails.
 */
import { register } from 'node:module';

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
register(new URL(`./hide-onnxruntime-hooks${ext}`, import.meta.url));

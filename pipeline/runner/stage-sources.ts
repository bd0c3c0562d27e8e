/**
 * What a stage kind's code is made of, for the code-version lock (./code-versions.ts): every source
 * file its stage directory (`stages/<kind>/`, worker entry points included) loads, followed through
 * relative imports inside the repository, each with its sha256; and the npm packages those files
 * import, with their installed versions from package-lock.json. `import type` / `export type` lines
 * are left out: they vanish at compile time.
 *
 *   npm run stage-versions                                    show which kinds changed
 *   npm run stage-versions -- --update [--same-output a,b]    record the current sources in the lock
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { STAGE_CODE_VERSIONS, type StageCodeVersions } from './code-versions.js';

export const LOCK_FILE = 'stage-versions.lock.json';

export interface KindSources {
  /** sha256 over the files and packages below. */
  hash: string;
  /** Repository-relative path → first 16 hex of the file's sha256. */
  files: Record<string, string>;
  /** npm package → installed version. */
  packages: Record<string, string>;
}

export interface LockEntry extends KindSources {
  version: number;
}

export interface Lock {
  format: 1;
  kinds: Record<string, LockEntry>;
}

/** The repository root: the directory above this file holding the lock file (or package.json). */
export function repoRootOf(from = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; ) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'stages'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no repository root (package.json + stages/) above ${from}`);
    dir = up;
  }
}

// import x from '…', import { a } from '…', export { a } from '…', export * from '…', import '…',
// import('…'): the specifier of each, unless the statement is type-only.
const STATIC = /(?:^|[;\n])\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/g;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
// new URL(`./replica-worker${ext}`, import.meta.url): a module of the same directory that a worker
// thread or process loads by URL (its code runs for the stage as much as an import's does).
const WORKER_URL = /\bnew URL\(\s*[`'"](\.\/[^`'"$]+?)(\$\{ext\})?[`'"]\s*,\s*import\.meta\.url\s*\)/g;

/** Runtime import specifiers of a TypeScript source, with the same-directory modules it loads by URL. */
export function importSpecifiers(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(STATIC)) if (!m[2]) out.push(m[3]!);
  for (const m of source.matchAll(DYNAMIC)) out.push(m[1]!);
  for (const m of source.matchAll(WORKER_URL)) out.push(m[2] ? `${m[1]!}.js` : m[1]!);
  return out;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

function installedVersions(repo: string): Record<string, string> {
  const lock = JSON.parse(readFileSync(path.join(repo, 'package-lock.json'), 'utf8')) as { packages?: Record<string, { version?: string }> };
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(lock.packages ?? {})) {
    const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(key);
    if (m && v.version) out[m[1]!] = v.version;
  }
  return out;
}

/** The sources of one stage kind (see the module comment). */
export function kindSources(repo: string, kind: string, versions = installedVersions(repo)): KindSources {
  const dir = path.join(repo, 'stages', kind);
  const roots = readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => path.join(dir, f));
  const files: Record<string, string> = {};
  const packages: Record<string, string> = {};
  const todo = [...roots];
  while (todo.length > 0) {
    const file = todo.pop()!;
    const rel = path.relative(repo, file).split(path.sep).join('/');
    if (rel in files) continue;
    const text = readFileSync(file);
    files[rel] = createHash('sha256').update(text).digest('hex').slice(0, 16);
    for (const spec of importSpecifiers(text.toString('utf8'))) {
      if (spec.startsWith('node:')) continue;
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
        if (!existsSync(target)) throw new Error(`${rel}: imports ${spec}, but ${path.relative(repo, target)} does not exist`);
        todo.push(target);
      } else {
        const name = packageName(spec);
        packages[name] = versions[name] ?? 'not installed';
      }
    }
  }
  const sorted = <T>(o: Record<string, T>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const body = { files: sorted(files), packages: sorted(packages) };
  return { hash: createHash('sha256').update(JSON.stringify(body)).digest('hex'), ...body };
}

export function readLock(repo: string): Lock {
  const file = path.join(repo, LOCK_FILE);
  if (!existsSync(file)) return { format: 1, kinds: {} };
  return JSON.parse(readFileSync(file, 'utf8')) as Lock;
}

export interface KindCheck {
  kind: string;
  version: number;
  locked?: LockEntry;
  current: KindSources;
  /** Files added, removed or changed since the lock. */
  changedFiles: string[];
  changedPackages: string[];
  /** Sources differ from the lock. */
  changed: boolean;
  /** The code version differs from the lock's. */
  bumped: boolean;
}

export function checkKinds(repo: string, versions: StageCodeVersions = STAGE_CODE_VERSIONS): KindCheck[] {
  const lock = readLock(repo);
  const installed = installedVersions(repo);
  return Object.entries(versions).map(([kind, version]) => {
    const locked = lock.kinds[kind];
    const current = kindSources(repo, kind, installed);
    const diff = (a: Record<string, string> = {}, b: Record<string, string>) => [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).sort();
    return {
      kind,
      version,
      locked,
      current,
      changedFiles: diff(locked?.files, current.files),
      changedPackages: diff(locked?.packages, current.packages),
      changed: locked?.hash !== current.hash,
      bumped: locked?.version !== version,
    };
  });
}

/** One line per kind that needs attention, with what to do (empty when the lock is current). */
export function lockProblems(checks: KindCheck[]): string[] {
  const out: string[] = [];
  for (const c of checks) {
    if (!c.locked) {
      out.push(`${c.kind}: not in ${LOCK_FILE}; run \`npm run stage-versions -- --update\``);
      continue;
    }
    const what = [...c.changedFiles, ...c.changedPackages.map((p) => `package ${p}`)].slice(0, 8).join(', ');
    if (c.changed && !c.bumped) {
      out.push(
        `${c.kind}: its sources changed since ${LOCK_FILE} (${what}) but its code version is still ${c.version}. If outputs can change, ` +
          `bump ${c.kind} in pipeline/runner/code-versions.ts and run \`npm run stage-versions -- --update\`; if they cannot, ` +
          `run \`npm run stage-versions -- --update --same-output ${c.kind}\``,
      );
    } else if (c.bumped) {
      out.push(`${c.kind}: code version ${c.version} in pipeline/runner/code-versions.ts, ${c.locked.version} in ${LOCK_FILE}: run \`npm run stage-versions -- --update\``);
    }
  }
  return out;
}

/** Records the current sources; refuses kinds changed without a bump or a same-output mark. */
export function updateLock(repo: string, sameOutput: string[], versions: StageCodeVersions = STAGE_CODE_VERSIONS): { updated: string[]; refused: string[] } {
  const checks = checkKinds(repo, versions);
  const lock = readLock(repo);
  const updated: string[] = [];
  const refused: string[] = [];
  for (const c of checks) {
    if (!c.changed && !c.bumped) continue;
    if (c.locked && c.changed && !c.bumped && !sameOutput.includes(c.kind)) {
      refused.push(c.kind);
      continue;
    }
    lock.kinds[c.kind] = { version: c.version, ...c.current };
    updated.push(`${c.kind} v${c.version}`);
  }
  lock.kinds = Object.fromEntries(Object.entries(lock.kinds).sort(([a], [b]) => (a < b ? -1 : 1)));
  writeFileSync(path.join(repo, LOCK_FILE), JSON.stringify(lock, null, 1) + '\n');
  return { updated, refused };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { update: { type: 'boolean', default: false }, 'same-output': { type: 'string', default: '' } } });
  const repo = repoRootOf();
  const same = values['same-output'].split(',').map((s) => s.trim()).filter(Boolean);
  for (const kind of same) if (!(kind in STAGE_CODE_VERSIONS)) throw new Error(`--same-output ${kind}: not a stage kind (${Object.keys(STAGE_CODE_VERSIONS).join(', ')})`);
  if (values.update) {
    const { updated, refused } = updateLock(repo, same);
    if (updated.length) console.log(`${LOCK_FILE}: recorded ${updated.join(', ')}`);
    else console.log(`${LOCK_FILE}: already current`);
    if (refused.length) {
      for (const p of lockProblems(checkKinds(repo)).filter((p) => refused.some((k) => p.startsWith(`${k}:`)))) console.error(p);
      process.exitCode = 1;
    }
    return;
  }
  const problems = lockProblems(checkKinds(repo));
  for (const p of problems) console.log(p);
  if (problems.length === 0) console.log(`${LOCK_FILE}: current (${Object.entries(STAGE_CODE_VERSIONS).map(([k, v]) => `${k} v${v}`).join(', ')})`);
  process.exitCode = problems.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();

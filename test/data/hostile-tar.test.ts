/**
 * Hostile WebDataset archives: a member whose name climbs out with `..` or is absolute, a symbolic
 * link, a hard link. Each is refused with the tar and the member named, by the copying import, by
 * in-place indexing and by the CLI, and nothing is written: no dataset in the target store, no file
 * outside it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar-stream';
import { HostileMemberError } from '../../pipeline/data/tar.js';
import { importDataset } from '../../stages/import/run-import.js';
import { indexWebDatasetInPlace } from '../../stages/import/wds-in-place.js';
import { openWebDatasetSource } from '../../stages/import/wds-source.js';
import { cliArgv } from '../helpers/cli.js';
import { picture } from './fixtures.js';
import { tempDir } from './helpers.js';

type Member = { name: string; body?: Buffer; type?: 'file' | 'symlink' | 'link'; linkname?: string };

async function tarOf(members: Member[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const m of members) {
    if (m.type === 'symlink' || m.type === 'link') pack.entry({ name: m.name, type: m.type, linkname: m.linkname });
    else pack.entry({ name: m.name }, m.body!);
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const dir = tempDir({ after }, 'selftrain-hostile-');

/** Each case: the hostile member (after one good sample) and what the message must say about it. */
const cases: { label: string; member: (png: Buffer) => Member; says: RegExp }[] = [
  { label: 'a ".." member name', member: (png) => ({ name: '../../escaped.png', body: png }), says: /has a "\.\." path segment/ },
  { label: 'a ".." segment inside the name', member: (png) => ({ name: 'a/../../../escaped.png', body: png }), says: /has a "\.\." path segment/ },
  { label: 'an absolute member name', member: (png) => ({ name: `${dir}/absolute-escape.png`, body: png }), says: /has an absolute path/ },
  { label: 'a symbolic link', member: () => ({ name: 'link1.png', type: 'symlink', linkname: '/etc/passwd' }), says: /is a symbolic link \(to "\/etc\/passwd"\)/ },
  { label: 'a hard link', member: () => ({ name: 'link2.png', type: 'link', linkname: 'good.png' }), says: /is a hard link \(to "good\.png"\)/ },
];

let png: Buffer;
before(async () => {
  png = await picture(8, 8, 'png', 1);
});

/** A source directory holding one clean tar and one with the hostile member; returns its path. */
async function sourceWith(c: (typeof cases)[number], n: number): Promise<{ src: string; hostile: Member }> {
  const src = path.join(dir, `case-${n}`, 'src');
  mkdirSync(src, { recursive: true });
  writeFileSync(path.join(src, 'part-0.tar'), await tarOf([{ name: 'ok.png', body: png }, { name: 'ok.cls', body: Buffer.from('0') }]));
  const hostile = c.member(png);
  writeFileSync(path.join(src, 'part-1.tar'), await tarOf([{ name: 'good.png', body: png }, { name: 'good.cls', body: Buffer.from('1') }, hostile]));
  return { src, hostile };
}

/** Every file below `root`, relative, sorted (to prove nothing new appeared anywhere). */
function filesBelow(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

describe('hostile WebDataset members are refused, naming tar and member', () => {
  cases.forEach((c, n) => {
    test(c.label, async () => {
      const { src, hostile } = await sourceWith(c, n);
      const existing = filesBelow(dir);
      const tarName = `${src}/part-1.tar`;
      const names = (err: unknown): boolean => {
        assert.ok(err instanceof HostileMemberError, `expected HostileMemberError, got ${(err as Error)?.name}: ${(err as Error)?.message}`);
        assert.ok(err.message.includes(tarName), `names the tar: ${err.message}`);
        assert.ok(err.message.includes(JSON.stringify(hostile.name)), `names the member: ${err.message}`);
        assert.match(err.message, c.says);
        return true;
      };

      // The copying import: refused while indexing the source, before anything is written.
      const target = path.join(dir, `case-${n}`, 'imported');
      await assert.rejects(async () => importDataset(await openWebDatasetSource(src), target, { samplesPerShard: 10 }), names);
      assert.equal(existsSync(path.join(target, 'dataset.json')), false, 'no dataset written');

      // In-place indexing: no side index, no dataset.json beside the tars.
      await assert.rejects(indexWebDatasetInPlace(src), names);
      assert.deepEqual(readdirSync(src).sort(), ['part-0.tar', 'part-1.tar']);

      // The CLI says the same and exits non-zero.
      const [cmd, args] = cliArgv('dataset', 'import', src, '--to', path.join(dir, `case-${n}`, 'cli'), '--classes', 'a,b');
      const res = await promisify(execFile)(cmd, args).then(
        () => assert.fail('the CLI import of a hostile tar succeeded'),
        (e: { code?: number; stderr?: string }) => e,
      );
      assert.notEqual(res.code, 0);
      assert.ok(res.stderr?.includes(JSON.stringify(hostile.name)) && res.stderr.includes('part-1.tar'), `CLI names tar and member:\n${res.stderr}`);
      assert.match(res.stderr ?? '', c.says);

      // Nothing was written anywhere: only the two source tars are new under the test directory.
      assert.deepEqual(filesBelow(dir), existing, 'no file appeared inside or outside the stores');
    });
  });
});

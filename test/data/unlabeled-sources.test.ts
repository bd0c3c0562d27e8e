/**
 * Unlabeled pools as users have them, imported as unlabeled sets (no class list, no .cls, each
 * sample's .json keeping where it came from): a flat directory, a tree of any shape (whose folder
 * names must not become classes), a list file, and img2dataset-style WebDataset tars without .cls.
 * Bad files are skipped with a one-line reason; libvips' many-line message stays in the record.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { readDataset } from '../../pipeline/data/reader.js';
import { verifyDataset } from '../../pipeline/data/verify.js';
import { detectFormat, openImportSource } from '../../stages/import/open-source.js';
import { importDataset } from '../../stages/import/run-import.js';
import { cliArgv } from '../helpers/cli.js';
import { assertLibvipsDetailKept } from '../helpers/libvips.js';
import { makeTar, picture } from './fixtures.js';
import { tempDir } from './helpers.js';

const run = promisify(execFile);
const dir = tempDir({ after });

/** Every sample's .json of a dataset, in dataset order. */
async function origins(uri: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const s of readDataset(uri)) {
    assert.equal(s.label, undefined, `${s.key} has a label`);
    out.push(s.json);
  }
  return out;
}

describe('flat directory', () => {
  const flat = `${dir}/flat`;
  before(async () => {
    mkdirSync(flat, { recursive: true });
    for (let i = 0; i < 5; i++) writeFileSync(`${flat}/p${i}.png`, await picture(10 + i, 12, 'png', i));
    writeFileSync(`${flat}/photo.JPG`, await picture(20, 16, 'jpeg', 7));
    writeFileSync(`${flat}/anim.gif`, await picture(9, 9, 'gif', 8));
    const jpg = await picture(64, 64, 'jpeg', 9);
    writeFileSync(`${flat}/broken.jpg`, jpg.subarray(0, Math.floor(jpg.length / 2)));
    writeFileSync(`${flat}/captions.txt`, 'a caption\n');
    writeFileSync(`${flat}/.DS_Store`, 'junk');
  });

  test('auto-detected as a tree; imports as an unlabeled set with paths; bad files one line each', async () => {
    assert.equal(await detectFormat(flat), 'tree');
    const [cmd, args] = cliArgv('dataset', 'import', flat, '--to', `${dir}/flat-ds`, '--samples-per-shard', '3');
    const out = await run(cmd, args);
    assert.match(out.stdout, /importing 8 samples \(tree, unlabeled\)/);
    assert.match(out.stdout, /7 samples in 3 shards/);
    // One line per skipped file: the JPEG's libvips warnings (five lines) are not printed.
    const skippedLines = out.stdout.split('\n').filter((l) => /^ {4}\S/.test(l));
    assert.equal(skippedLines.length, 2, out.stdout);
    assert.doesNotMatch(out.stdout, /VipsJpeg: Bogus marker length/);
    const idx = (await openDataset(`${dir}/flat-ds`)).index;
    assert.equal(idx.labeled, false);
    assert.deepEqual(idx.classes, []);
    assert.equal(idx.classCounts, undefined);
    const broken = idx.skipped!.find((s) => s.where === 'broken.jpg')!;
    // sharp appends libvips' error buffer, which is process-wide: concurrent decodes can add lines to
    // it or clear it, so the detail after "corrupt header:" varies from run to run (seen in CI: full,
    // one line, and empty). One line, and the reason sharp gives, is what holds.
    assert.match(broken.reason, /^not decodable: Input buffer has corrupt header:( .*VipsJpeg: premature end of JPEG image( \(\+\d+ more line\(s\)\))?)?$/);
    assert.ok(!broken.reason.includes('\n'));
    assertLibvipsDetailKept(broken);
    assert.match(idx.skipped!.find((s) => s.where === 'captions.txt')!.reason, /not an image file name \(\.txt\): not fetched/);
    assert.equal(idx.skipped!.length, 2, '.DS_Store is ignored, not skipped');
    const paths = (await origins(`${dir}/flat-ds`)).map((j) => (j as { path: string }).path);
    assert.deepEqual(paths, ['anim.gif', 'p0.png', 'p1.png', 'p2.png', 'p3.png', 'p4.png', 'photo.JPG']);
    assert.deepEqual((await verifyDataset(`${dir}/flat-ds`)).problems, []);
  });
});

describe('a tree of any shape', () => {
  const tree = `${dir}/tree`;
  before(async () => {
    // Two top-level folders (which a class-folder importer would take as 2 classes), files at the
    // root, and nesting of uneven depth.
    mkdirSync(`${tree}/cam-a/2024/05/01`, { recursive: true });
    mkdirSync(`${tree}/cam-b`, { recursive: true });
    writeFileSync(`${tree}/root.png`, await picture(8, 8, 'png', 1));
    writeFileSync(`${tree}/cam-a/2024/05/01/x.webp`, await picture(11, 9, 'webp', 2));
    writeFileSync(`${tree}/cam-a/2024/y.png`, await picture(7, 13, 'png', 3));
    writeFileSync(`${tree}/cam-b/z.tiff`, await picture(6, 6, 'tiff', 4));
  });

  test('--unlabeled: folder names are not classes; every file once, with its relative path', async () => {
    assert.equal(await detectFormat(tree), 'folder', 'auto alone would see class folders');
    const [cmd, args] = cliArgv('dataset', 'import', tree, '--to', `${dir}/tree-ds`, '--unlabeled');
    const out = await run(cmd, args);
    assert.match(out.stdout, /importing 4 samples \(tree, unlabeled\)/);
    const idx = (await openDataset(`${dir}/tree-ds`)).index;
    assert.deepEqual([idx.labeled, idx.classes, idx.samples], [false, [], 4]);
    const paths = (await origins(`${dir}/tree-ds`)).map((j) => (j as { path: string }).path);
    assert.deepEqual(paths, ['cam-a/2024/05/01/x.webp', 'cam-a/2024/y.png', 'cam-b/z.tiff', 'root.png']);
  });
});

describe('list file', () => {
  test('absolute and relative paths, comments and blanks; a missing file is skipped naming its line', async () => {
    mkdirSync(`${dir}/listed/sub`, { recursive: true });
    writeFileSync(`${dir}/listed/a.png`, await picture(8, 9, 'png', 5));
    writeFileSync(`${dir}/listed/sub/b.jpg`, await picture(10, 10, 'jpeg', 6));
    writeFileSync(`${dir}/elsewhere.webp`, await picture(12, 12, 'webp', 7));
    const list = `${dir}/listed/pool.txt`;
    writeFileSync(list, ['# my pool', 'a.png', '', 'sub/b.jpg', `${dir}/elsewhere.webp`, `file://${dir}/listed/a.png`, 'gone.png'].join('\n') + '\n');
    assert.equal(await detectFormat(list), 'list');
    const source = await openImportSource(list);
    assert.deepEqual([source.kind, source.classes, source.entries.length], ['list', [], 5]);
    const res = await importDataset(source, `${dir}/list-ds`);
    const idx = res.outputs[0]!.index;
    assert.equal(idx.samples, 4);
    assert.equal(idx.skipped!.length, 1);
    assert.equal(idx.skipped![0]!.where, 'gone.png');
    assert.match(idx.skipped![0]!.reason, /^cannot read: not found: file:\/\/\/.*gone\.png$/);
    assert.deepEqual(await origins(`${dir}/list-ds`), [{ path: 'a.png' }, { path: 'sub/b.jpg' }, { path: `${dir}/elsewhere.webp` }, { uri: `file://${dir}/listed/a.png` }]);
  });
});

describe('WebDataset tars without .cls (img2dataset output)', () => {
  test('.jpg + .json + .txt samples import as an unlabeled set; the .json is kept', async () => {
    const src = `${dir}/img2dataset`;
    mkdirSync(src, { recursive: true });
    const members: [string, Buffer | string][] = [];
    for (let i = 0; i < 4; i++) {
      const key = `00000000${i}`;
      members.push([`${key}.jpg`, await picture(16, 12, 'jpeg', 20 + i)], [`${key}.json`, JSON.stringify({ url: `https://example.org/${i}.jpg`, key, status: 'success' })], [`${key}.txt`, `caption ${i}`]);
    }
    writeFileSync(`${src}/00000.tar`, await makeTar(members));
    // img2dataset also writes these beside the tars: they are not shards.
    writeFileSync(`${src}/00000_stats.json`, '{"count": 4}');
    writeFileSync(`${src}/00000.parquet`, 'PAR1');
    const source = await openImportSource(src);
    assert.deepEqual([source.kind, source.classes, source.entries.length], ['webdataset', [], 4]);
    const res = await importDataset(source, `${dir}/img2dataset-ds`, { unlabeled: { groundTruth: false } });
    const idx = res.outputs[0]!.index;
    assert.deepEqual([idx.labeled, idx.classes, idx.samples, idx.skipped], [false, [], 4, undefined]);
    const json = (await origins(`${dir}/img2dataset-ds`)) as { url: string }[];
    assert.deepEqual(json.map((j) => j.url), [0, 1, 2, 3].map((i) => `https://example.org/${i}.jpg`));
  });
});

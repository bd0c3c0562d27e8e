/**
 * Image-folder and WebDataset imports on small trees made here: mixed formats, and every kind
 * of bad input (corrupt JPEG, zero-byte file, non-image, 20000×20000 PNG bomb, member without
 * .cls, class index out of range, truncated tar) is recorded naming the file or shard+key, and
 * skipped; the good samples import and verify.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { readDataset } from '../../pipeline/data/reader.js';
import { verifyDataset } from '../../pipeline/data/verify.js';
import { openFolderSource } from '../../stages/import/folder-source.js';
import { openWebDatasetSource } from '../../stages/import/wds-source.js';
import { importDataset } from '../../stages/import/run-import.js';
import { cliArgv } from '../helpers/cli.js';
import { bombPng, makeTar, picture } from './fixtures.js';
import { tempDir } from './helpers.js';

const run = promisify(execFile);
const dir = tempDir({ after });
let bomb: Buffer;
before(async () => {
  bomb = await bombPng(20000);
});

describe('image-folder import', () => {
  const root = `${dir}/tree`;
  before(async () => {
    mkdirSync(`${root}/bird`, { recursive: true });
    mkdirSync(`${root}/cat/nested`, { recursive: true });
    writeFileSync(`${root}/bird/a.png`, await picture(40, 30, 'png', 1));
    writeFileSync(`${root}/bird/b.jpg`, await picture(33, 47, 'jpeg', 2));
    writeFileSync(`${root}/bird/c.webp`, await picture(20, 20, 'webp', 3));
    writeFileSync(`${root}/cat/d.gif`, await picture(16, 24, 'gif', 4));
    writeFileSync(`${root}/cat/nested/e.tiff`, await picture(25, 25, 'tiff', 5));
    const jpg = await picture(64, 64, 'jpeg', 6);
    writeFileSync(`${root}/cat/broken.jpg`, jpg.subarray(0, Math.floor(jpg.length / 2)));
    writeFileSync(`${root}/cat/empty.png`, Buffer.alloc(0));
    writeFileSync(`${root}/cat/notes.txt`, 'not an image at all\n');
    writeFileSync(`${root}/cat/bomb.png`, bomb);
  });

  test('mixed formats import; corrupt, empty, non-image and bomb files are skipped by name', async () => {
    const src = await openFolderSource(root);
    assert.deepEqual(src.classes, ['bird', 'cat']);
    const res = await importDataset(src, `${dir}/folder-ds`, { samplesPerShard: 2 });
    const idx = res.outputs[0]!.index;
    assert.equal(idx.samples, 5);
    assert.deepEqual(idx.classCounts, [3, 2]);
    assert.equal(idx.shards.length, 5); // 9 files, 2 per shard; skipped files leave holes
    const skipped = new Map(idx.skipped!.map((s) => [s.where, s.reason]));
    assert.deepEqual([...skipped.keys()].sort(), ['cat/bomb.png', 'cat/broken.jpg', 'cat/empty.png', 'cat/notes.txt']);
    assert.match(skipped.get('cat/empty.png')!, /empty \(0 bytes\)/);
    assert.match(skipped.get('cat/bomb.png')!, /pixel limit/);
    assert.match(skipped.get('cat/notes.txt')!, /not decodable/);
    assert.match(skipped.get('cat/broken.jpg')!, /not decodable/);

    const samples = [];
    for await (const s of readDataset(`${dir}/folder-ds`)) samples.push(s);
    const byPath = new Map(samples.map((s) => [(s.json as { path: string }).path, s]));
    assert.equal(byPath.get('bird/a.png')!.ext, 'png');
    assert.equal(byPath.get('bird/b.jpg')!.ext, 'jpg');
    assert.equal(byPath.get('bird/c.webp')!.ext, 'webp');
    assert.equal(byPath.get('cat/d.gif')!.ext, 'png'); // converted: not a WebDataset image type
    assert.equal(byPath.get('cat/nested/e.tiff')!.label, 1);
    // Stored as they were: the JPEG bytes are the file's bytes (no re-encoding).
    assert.deepEqual(byPath.get('bird/b.jpg')!.image, await picture(33, 47, 'jpeg', 2));
    const meta = await sharp(byPath.get('cat/nested/e.tiff')!.image).metadata();
    assert.equal(meta.width, 25);
    const v = await verifyDataset(`${dir}/folder-ds`);
    assert.deepEqual(v.problems, []);
  });
});

describe('WebDataset import', () => {
  const src = `${dir}/wds-src`;
  before(async () => {
    mkdirSync(src, { recursive: true });
    const good = await makeTar([
      ['s1.png', await picture(12, 12, 'png')],
      ['s1.cls', '0'],
      ['s2.jpg', await picture(20, 10, 'jpeg')],
      ['s2.cls', '1'],
      ['s3.png', await picture(8, 8, 'png')], // no .cls
      ['s4.png', await picture(8, 8, 'png')],
      ['s4.cls', '7'], // out of range for 2 classes
      ['s5.png', 'hello, I am text'],
      ['s5.cls', '0'],
      ['s6.jpg', Buffer.alloc(0)],
      ['s6.cls', '1'],
      ['s7.png', bomb],
      ['s7.cls', '0'],
      ['s8.webp', await picture(9, 9, 'webp')],
      ['s8.cls', '1'],
      ['s8.json', '{"caption":"x"}'],
    ]);
    writeFileSync(`${src}/part-a.tar`, good);
    const second = await makeTar([
      ['t1.png', await picture(10, 10, 'png')],
      ['t1.cls', '1'],
      ['t2.png', await picture(64, 64, 'png', 9)],
      ['t2.cls', '0'],
    ]);
    writeFileSync(`${src}/part-b.tar`, second.subarray(0, 1024 + 512 + 300)); // cut inside t2.png
  });

  test('good samples import; each bad one is recorded naming its tar and key', async () => {
    const source = await openWebDatasetSource(src, { classes: ['a', 'b'] });
    const res = await importDataset(source, `${dir}/wds-ds`, { samplesPerShard: 3 });
    const idx = res.outputs[0]!.index;
    // t1 is complete but sits right before the cut: a sample may have more members than seen,
    // so the tail sample of a truncated tar is dropped with the rest (the reason names it).
    assert.equal(idx.samples, 3);
    const reasons = idx.skipped!.map((s) => s.reason);
    const find = (re: RegExp) => reasons.find((r) => re.test(r));
    assert.ok(find(/part-a\.tar: sample "s3": no \.cls member/), reasons.join('\n'));
    assert.ok(find(/part-a\.tar: sample "s4": class index 7 out of range/), reasons.join('\n'));
    assert.ok(find(/part-a\.tar key "s5": not decodable/), reasons.join('\n'));
    assert.ok(find(/part-a\.tar: sample "s6": \.jpg member is empty/), reasons.join('\n'));
    assert.ok(find(/part-a\.tar key "s7": refused: .*pixel limit/), reasons.join('\n'));
    assert.ok(find(/part-b\.tar: unreadable tar after member "t1\.cls": Unexpected end of data/), reasons.join('\n'));
    assert.equal(reasons.length, 6);
    const keys = [];
    for await (const s of readDataset(`${dir}/wds-ds`)) keys.push([s.key, s.label, s.json ?? null]);
    assert.deepEqual(keys, [['s1', 0, null], ['s2', 1, null], ['s8', 1, { caption: 'x' }]]);
    assert.equal((await verifyDataset(`${dir}/wds-ds`)).ok, true);
  });

  test('CLI: import prints the skipped samples; verify of a damaged dataset exits 1 naming shard and key', async () => {
    const [cmd, args] = cliArgv('dataset', 'import', src, '--to', `${dir}/wds-cli`, '--classes', 'a,b', '--samples-per-shard', '2');
    const out = await run(cmd, args);
    assert.match(out.stdout, /3 samples in 3 shards/);
    assert.match(out.stdout, /sample "s4": class index 7 out of range/);
    // Damage: swap one image's bytes for text of the same length inside the shard (sha256 and decode fail).
    const { readFileSync } = await import('node:fs');
    const shard = `${dir}/wds-cli/shard-000000.tar`;
    const bytes = readFileSync(shard);
    const at = bytes.indexOf(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    bytes.fill(0x41, at, at + 40);
    writeFileSync(shard, bytes);
    const [vc, va] = cliArgv('dataset', 'verify', `${dir}/wds-cli`);
    const err = await run(vc, va).then(() => undefined, (e: { code: number; stdout: string }) => e);
    assert.ok(err, 'verify must fail');
    assert.equal(err.code, 1);
    assert.match(err.stdout, /FAILED/);
    assert.match(err.stdout, /shard-000000\.tar: sha256 [0-9a-f]+ does not match/);
    assert.match(err.stdout, /shard-000000\.tar: sample "s1" \(\.png\): not decodable/);
  });

  test('in place: clean tars are indexed where they are and read as they are; bad ones are refused with the list', async () => {
    const clean = `${dir}/wds-clean`;
    mkdirSync(clean, { recursive: true });
    writeFileSync(`${clean}/000.tar`, await makeTar([['x/a.jpg', await picture(12, 9, 'jpeg')], ['x/a.cls', '1'], ['x/b.webp', await picture(9, 12, 'webp')], ['x/b.cls', '0']]));
    writeFileSync(`${clean}/001.tar`, await makeTar([['y/c.png', await picture(8, 8, 'png')], ['y/c.cls', '2'], ['y/c.json', '{"k":1}']]));
    const [cmd, args] = cliArgv('dataset', 'import', clean, '--in-place', '--classes', 'p,q,r');
    assert.match((await run(cmd, args)).stdout, /indexed in place: 3 samples in 2 tars/);
    const got = [];
    for await (const s of readDataset(clean)) got.push([s.key, s.label, s.ext]);
    assert.deepEqual(got, [['x/a', 1, 'jpg'], ['x/b', 0, 'webp'], ['y/c', 2, 'png']]);
    assert.equal((await verifyDataset(clean)).ok, true);
    const { indexWebDatasetInPlace } = await import('../../stages/import/wds-in-place.js');
    await assert.rejects(indexWebDatasetInPlace(src, { classes: ['a', 'b'] }), (err: Error) =>
      /cannot index in place/.test(err.message) && /part-a\.tar: sample "s4": class index 7 out of range/.test(err.message) && /part-b\.tar: unreadable tar/.test(err.message),
    );
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(`${src}/dataset.json`), false, 'nothing written for a refused index');
  });

  test('reader: a truncated shard is a DataError naming the shard, not a crash or hang', async () => {
    const { copyFileSync, truncateSync } = await import('node:fs');
    mkdirSync(`${dir}/wds-trunc`, { recursive: true });
    for (const f of ['dataset.json', 'shard-000000.tar', 'shard-000000.idx.json', 'shard-000001.tar', 'shard-000001.idx.json']) copyFileSync(`${dir}/wds-ds/${f}`, `${dir}/wds-trunc/${f}`);
    truncateSync(`${dir}/wds-trunc/shard-000001.tar`, 700);
    await assert.rejects(async () => {
      for await (const _ of readDataset(`${dir}/wds-trunc`, { verifyHashes: false })) void _;
    }, /shard-000001\.tar is corrupted \(truncated\): expected sha256 [0-9a-f]{64} \(\d+ bytes\), got sha256 [0-9a-f]{64} \(700 bytes\)/);
    const v = await verifyDataset(`${dir}/wds-trunc`);
    assert.equal(v.ok, false);
    assert.ok(v.problems.some((p) => /shard-000001\.tar: unreadable tar after member/.test(p)), v.problems.join('\n'));
  });
});

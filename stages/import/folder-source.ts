/**
 * Image-folder tree `root/<class-name>/<file>` (torchvision ImageFolder layout: classes are the
 * sub-directory names sorted, files sorted within a class; nested directories are walked).
 * PNG, JPEG and WebP files are stored as they are (no re-encoding); any other format sharp
 * reads (GIF, TIFF, AVIF, ...) is converted to PNG with its EXIF orientation applied. Every
 * image is decoded once at import, so a corrupt file is recorded (with its path) and skipped.
 * Keys are the sample's position in the sorted tree (`img-00000042`); the original path is kept
 * in the sample's `.json` member.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import { DEFAULT_LIMIT_INPUT_PIXELS } from '../../pipeline/data/preprocess.js';
import { checkDecodable } from '../../pipeline/data/verify.js';
import { DataError } from '../../pipeline/data/types.js';
import { extForFormat, loadQueued, type ImportSource, type LoadedSample, type SourceEntry } from './source.js';

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  const items = (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const d of items) {
    if (d.name.startsWith('.')) continue; // .DS_Store and friends
    const p = path.join(dir, d.name);
    if (d.isDirectory()) out.push(...(await walk(p)));
    else if (d.isFile()) out.push(p);
  }
  return out;
}

export interface FolderOptions {
  concurrency?: number;
  limitInputPixels?: number;
}

/** Loads one image file: bytes as they are for png/jpeg/webp, else converted to PNG. */
export async function loadImageFile(bytes: Buffer, where: string, limitInputPixels: number): Promise<Pick<LoadedSample, 'image' | 'ext' | 'error' | 'where'>> {
  const why = await checkDecodable(bytes, limitInputPixels);
  if (why) return { error: why, where };
  const meta = await sharp(bytes, { limitInputPixels }).metadata();
  const ext = extForFormat(meta.format);
  if (ext) return { image: bytes, ext };
  const png = await sharp(bytes, { limitInputPixels }).autoOrient().png().toBuffer();
  return { image: png, ext: 'png' };
}

export async function openFolderSource(root: string, o: FolderOptions = {}): Promise<ImportSource> {
  const top = (await fs.readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('.'));
  const classes = top.map((d) => d.name).sort();
  if (classes.length === 0) throw new DataError(`${root}: no class sub-directories (expected root/<class-name>/<image files>)`, { uri: root });
  const files: string[] = [];
  const entries: SourceEntry[] = [];
  let totalBytes = 0;
  for (const [label, cls] of classes.entries()) {
    for (const f of await walk(path.join(root, cls))) {
      const ref = files.length;
      files.push(f);
      totalBytes += (await fs.stat(f)).size;
      entries.push({ key: `img-${String(ref).padStart(8, '0')}`, label, ref });
    }
  }
  if (entries.length === 0) throw new DataError(`${root}: the class directories hold no files`, { uri: root });
  const limit = o.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  const concurrency = o.concurrency ?? 4;
  return {
    kind: 'folder',
    classes,
    entries,
    identity: { kind: 'folder', root: path.resolve(root), files: files.length, bytes: totalBytes, limitInputPixels: limit },
    bytesPerEntry: Math.max(1024, Math.ceil(totalBytes / entries.length) * 2),
    problems: [],
    load: (wanted) =>
      loadQueued(wanted, concurrency, async (entry) => {
        const file = files[entry.ref]!;
        const rel = path.relative(root, file);
        let bytes: Buffer;
        try {
          bytes = await fs.readFile(file);
        } catch (err) {
          return { entry, error: `cannot read: ${(err as Error).message}`, where: rel };
        }
        return { entry, json: { path: rel }, ...(await loadImageFile(bytes, rel, limit)) };
      }),
    close: async () => undefined,
  };
}

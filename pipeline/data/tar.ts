/**
 * Shard tar files via tar-stream (never hand-written tar). Writing is deterministic — fixed
 * mtime, mode and owner — so the same samples always give the same bytes and sha256 on every
 * store. Reading reports each member's data offset (tar-stream's `header.byteOffset`) so a
 * side index can serve ranged reads of single samples.
 */
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { DataError, IMAGE_EXTENSIONS, type ImageExt } from './types.js';

export interface SampleToPack {
  key: string;
  ext: ImageExt;
  image: Uint8Array;
  label?: number;
  json?: unknown;
}

export interface TarMember {
  name: string;
  /** Offset of the member's data in the tar. */
  offset: number;
  data: Buffer;
}

const EPOCH = new Date(0);

/** WebDataset key/extension split: the extension starts at the first '.' of the last path part. */
export function splitMemberName(name: string): { key: string; ext: string } {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot < 0) return { key: name, ext: '' };
  return { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}

export function isImageExt(ext: string): ext is ImageExt {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(ext);
}

export interface PackedShard {
  tar: Buffer;
  /** Data offset of every member, by member name. */
  offsets: Map<string, number>;
}

/**
 * Packs samples (image, then .cls, then .json per key) into one tar buffer, and reports each
 * member's data offset. Offsets are computed from the ustar layout (512-byte header, data padded
 * to 512) and accepted only if they add up to the exact tar length; otherwise (e.g. tar-stream
 * added PAX headers for a long name) they are read back by parsing the tar.
 */
export async function packShard(samples: SampleToPack[]): Promise<PackedShard> {
  const tarBytes = await packTar(samples);
  const offsets = new Map<string, number>();
  let pos = 0;
  const place = (name: string, size: number) => {
    offsets.set(name, pos + 512);
    pos += 512 + Math.ceil(size / 512) * 512;
  };
  for (const s of samples) {
    place(`${s.key}.${s.ext}`, s.image.byteLength);
    if (s.label !== undefined) place(`${s.key}.cls`, Buffer.byteLength(String(s.label)));
    if (s.json !== undefined) place(`${s.key}.json`, Buffer.byteLength(JSON.stringify(s.json)));
  }
  if (pos + 1024 !== tarBytes.length) {
    offsets.clear();
    for await (const m of readTarMembers(tarBytes, 'packed shard')) offsets.set(m.name, m.offset);
  }
  return { tar: tarBytes, offsets };
}

async function packTar(samples: SampleToPack[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  const header = (name: string, size: number) => ({ name, size, mtime: EPOCH, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '' });
  // Entries with a buffer body are queued by tar-stream in call order; no need to await each.
  const add = (name: string, data: Uint8Array) => pack.entry(header(name, data.byteLength), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  for (const s of samples) {
    if (s.key.includes('.') || s.key === '') throw new DataError(`sample key "${s.key}" is empty or contains "." (WebDataset keys end at the first dot)`, { key: s.key });
  }
  for (const s of samples) {
    add(`${s.key}.${s.ext}`, s.image);
    if (s.label !== undefined) add(`${s.key}.cls`, Buffer.from(String(s.label)));
    if (s.json !== undefined) add(`${s.key}.json`, Buffer.from(JSON.stringify(s.json)));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A tar member that no WebDataset shard may hold: a name that is absolute or climbs out of the
 * archive (`..`), or a link/device/fifo instead of a regular file. Tools that extract shards
 * (`tar x`, Python's tarfile before 3.14's default filter) would write such members outside their
 * target directory, so a shard holding one is refused as a whole rather than skipped member by
 * member: it was made by something that is not a WebDataset writer.
 */
export class HostileMemberError extends DataError {
  constructor(where: string, member: string, why: string) {
    super(`${where}: member ${JSON.stringify(member)} ${why}: refused (WebDataset members are regular files with relative names inside the archive)`, { shard: where, key: member });
    this.name = 'HostileMemberError';
  }
}

const LINK_OR_SPECIAL: Record<string, string> = {
  symlink: 'is a symbolic link',
  link: 'is a hard link',
  'character-device': 'is a character device',
  'block-device': 'is a block device',
  fifo: 'is a FIFO',
};

/** Why a member name would escape the directory it is extracted to, or undefined when it is safe. */
export function unsafeMemberName(name: string): string | undefined {
  if (name.includes('\0')) return 'has a NUL byte in its name';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name) || name.startsWith('\\')) return 'has an absolute path';
  if (name.split(/[\\/]/).includes('..')) return 'has a ".." path segment';
  return undefined;
}

/** Throws HostileMemberError for a member a WebDataset reader must not accept. */
function checkMember(header: tar.Header, where: string): void {
  const why = unsafeMemberName(header.name) ?? LINK_OR_SPECIAL[header.type ?? 'file'];
  if (why) throw new HostileMemberError(where, header.name, header.linkname ? `${why} (to ${JSON.stringify(header.linkname)})` : why);
}

/**
 * Every regular-file member of a tar, in order, with its data offset. A truncated or garbled
 * tar throws a DataError naming `where` (the shard) and the last good member; a member with an
 * unsafe name or of a link/special type throws a HostileMemberError naming shard and member
 * (directory entries, which carry no data, are passed over).
 * Members are collected with tar-stream's event API in batches (much cheaper than async-iterating
 * each entry stream); the source is paused while a batch is consumed, so memory stays bounded.
 */
export async function* readTarMembers(input: Buffer | Readable, where: string): AsyncGenerator<TarMember> {
  const extract = tar.extract();
  const source = Buffer.isBuffer(input) ? Readable.from([input]) : input;
  let batch: TarMember[] = [];
  let failure: unknown;
  let finished = false;
  let wake: (() => void) | undefined;
  let resumeNext: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  extract.on('entry', (header, stream, next) => {
    const h = header as tar.Header & { byteOffset?: number };
    try {
      checkMember(h, where);
    } catch (err) {
      stream.on('error', () => undefined); // destroying the parser fails the member's stream too
      extract.destroy(err as Error);
      return;
    }
    const parts: Buffer[] = [];
    stream.on('data', (c: unknown) => void parts.push(c as Buffer));
    stream.on('end', () => {
      if (h.type === 'file' || h.type === 'contiguous-file') batch.push({ name: h.name, offset: h.byteOffset ?? -1, data: parts.length === 1 ? parts[0]! : Buffer.concat(parts) });
      if (batch.length >= 256) {
        resumeNext = next; // hold the parser until the consumer took this batch
        notify();
      } else next();
    });
  });
  extract.on('finish', () => {
    finished = true;
    notify();
  });
  extract.on('error', (err: unknown) => {
    failure = err;
    notify();
  });
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract as unknown as NodeJS.WritableStream);
  let last = '(start of file)';
  try {
    for (;;) {
      if (batch.length === 0 && !finished && failure === undefined) await new Promise<void>((r) => (wake = r));
      const got = batch;
      batch = [];
      for (const m of got) {
        last = m.name;
        yield m;
      }
      if (failure !== undefined) throw failure;
      if (finished && batch.length === 0) return;
      const n = resumeNext;
      resumeNext = undefined;
      n?.();
    }
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${where}: unreadable tar after member "${last}": ${(err as Error).message}`, { shard: where }, { cause: err });
  } finally {
    source.unpipe?.(extract as unknown as NodeJS.WritableStream);
    extract.destroy();
    if (!Buffer.isBuffer(input)) (source as Readable).destroy();
  }
}

/** Members of one sample (adjacent members sharing a key), keyed by extension. */
export interface MemberGroup {
  key: string;
  members: Map<string, TarMember>;
}

/**
 * Groups adjacent members by key, as WebDataset does. A key that appears again after other keys
 * is reported (it would otherwise silently split one sample into two).
 */
export async function* groupMembers(members: AsyncIterable<TarMember>, where: string): AsyncGenerator<MemberGroup> {
  let cur: MemberGroup | undefined;
  const seen = new Set<string>();
  for await (const m of members) {
    const { key, ext } = splitMemberName(m.name);
    if (cur && cur.key === key) {
      if (cur.members.has(ext)) throw new DataError(`${where}: key "${key}" has two ".${ext}" members`, { shard: where, key });
      cur.members.set(ext, m);
      continue;
    }
    if (cur) yield cur;
    if (seen.has(key)) throw new DataError(`${where}: key "${key}" appears twice, not adjacent`, { shard: where, key });
    seen.add(key);
    cur = { key, members: new Map([[ext, m]]) };
  }
  if (cur) yield cur;
}

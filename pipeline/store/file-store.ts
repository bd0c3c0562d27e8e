/**
 * `file://` store: a local directory. Writes go to a temp file in the target's own directory
 * (same filesystem, so the final step is an atomic rename/link), are fsynced before they become
 * visible, and temp files are never listed. Keys are checked so nothing escapes the root.
 *
 * Verified reads: beside each object `<dir>/<name>` a digest file `<dir>/.selftrain-sha256-<name>`
 * records the sha256 and size `put` wrote, and the inode of the file that holds them. It is
 * written before the object's rename, so a visible object always has its record; a record whose
 * inode is not the object's (a crash between the two renames, or a file replaced by another tool)
 * is ignored and the object read unverified. Damage in place (a flipped byte, a truncation) keeps
 * the inode and fails the read with IntegrityError.
 *
 * A full disk (ENOSPC, EDQUOT) fails the write with a StoreError naming the store and the object
 * and leaves nothing partial behind: the temp file is removed, the old object (if any) stays.
 */
import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { digestMismatch, Hasher, parseDigest, verifyingStream } from './digest.js';
import { checkKey, checkPrefix, compareKeys, DIGEST_MARKER, TEMP_MARKER } from './keys.js';
import { afterCommit } from './kill-point.js';
import { isNoSpace, NotFoundError, StoreError, type Body, type Digest, type GetOptions, type ObjectInfo, type ObjectStore } from './types.js';
import { objectUri } from './uri.js';

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** getStream reads objects with a recorded digest up to this size whole, checked, before handing them out. */
const BUFFERED_STREAM_MAX = 64 * 1024 * 1024;

/** What a digest file holds: the object's digest and the inode it was recorded for. */
interface DigestRecord extends Digest {
  ino: string;
}

function digestPath(objectPath: string): string {
  return path.join(path.dirname(objectPath), DIGEST_MARKER + path.basename(objectPath));
}

/** Whether a directory entry is store bookkeeping (a temp or digest file), never an object. */
function isBookkeeping(name: string): boolean {
  return name.includes(TEMP_MARKER) || name.startsWith(DIGEST_MARKER);
}

export class FileStore implements ObjectStore {
  readonly root: string;
  readonly uri: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.uri = pathToFileURL(this.root).href;
  }

  private keyUri(key: string): string {
    return objectUri(this, key);
  }

  private pathOf(key: string): string {
    checkKey(key, this.uri);
    return path.join(this.root, ...key.split('/'));
  }

  private fail(op: string, key: string, err: unknown): never {
    if (err instanceof StoreError) throw err;
    const code = errno(err);
    const cause = code ? `${code}: ${(err as Error).message}` : String(err);
    if (isNoSpace(err)) {
      throw new StoreError(
        `${op} ${this.keyUri(key)} failed: no space left on the device holding the store ${this.uri} (${code}); ` +
          'nothing partial was written (the object is absent or its previous version): free space and run again',
        this.keyUri(key),
        { cause: err },
      );
    }
    if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST') {
      // "a" and "a/b" cannot both exist on a filesystem; say so instead of a raw errno.
      throw new StoreError(`${op} ${this.keyUri(key)}: a key and a key prefix collide on the filesystem (${cause})`, this.keyUri(key), { cause: err });
    }
    throw new StoreError(`${op} ${this.keyUri(key)} failed: ${cause}`, this.keyUri(key), { cause: err });
  }

  /**
   * The digest recorded for the file open as `handle` (inode `ino`), or undefined when there is
   * none for that inode. Read after opening the object, so a concurrent put can only make the
   * record not apply (read unverified), never make the old bytes look corrupted.
   */
  private async recordedDigest(p: string, ino: bigint): Promise<Digest | undefined> {
    let text: string;
    try {
      text = await fs.readFile(digestPath(p), 'utf8');
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes(errno(err) ?? '')) return undefined;
      throw err;
    }
    let rec: Partial<DigestRecord>;
    try {
      rec = JSON.parse(text) as Partial<DigestRecord>;
    } catch {
      return undefined; // a digest file cut short by a power loss: no record
    }
    return rec.ino === String(ino) ? parseDigest(rec) : undefined;
  }

  /** Opens an existing regular file for reading; NotFoundError otherwise. */
  private async openObject(key: string, p: string): Promise<{ handle: fs.FileHandle; ino: bigint; size: number }> {
    const handle = await fs.open(p, 'r');
    try {
      const st = await handle.stat({ bigint: true });
      if (!st.isFile()) throw new NotFoundError(this.keyUri(key));
      return { handle, ino: st.ino, size: Number(st.size) };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Buffer> {
    const p = this.pathOf(key);
    let opened: Awaited<ReturnType<FileStore['openObject']>> | undefined;
    try {
      opened = await this.openObject(key, p);
      const bytes = await opened.handle.readFile();
      if (opts.verify === false) return bytes;
      const expected = await this.recordedDigest(p, opened.ino);
      const bad = expected && digestMismatch(this.keyUri(key), expected, bytes);
      if (bad) throw bad;
      return bytes;
    } catch (err) {
      if (['ENOENT', 'EISDIR', 'ENOTDIR'].includes(errno(err) ?? '')) throw new NotFoundError(this.keyUri(key));
      return this.fail('get', key, err);
    } finally {
      await opened?.handle.close();
    }
  }

  async getStream(key: string): Promise<Readable> {
    const p = this.pathOf(key);
    let opened: Awaited<ReturnType<FileStore['openObject']>>;
    let expected: Digest | undefined;
    try {
      // Open first so a missing key fails here, not later as a stream 'error' event.
      opened = await this.openObject(key, p);
      expected = await this.recordedDigest(p, opened.ino).catch(async (err: unknown) => {
        await opened.handle.close();
        throw err;
      });
    } catch (err) {
      if (['ENOENT', 'EISDIR', 'ENOTDIR'].includes(errno(err) ?? '')) throw new NotFoundError(this.keyUri(key));
      this.fail('getStream', key, err);
    }
    if (expected && expected.size <= BUFFERED_STREAM_MAX) {
      // Read whole and checked before it is handed out (as on S3): a consumer never sees a byte of
      // a damaged object, and fails with IntegrityError rather than with whatever the bytes do to it.
      try {
        const bytes = await opened.handle.readFile();
        const bad = digestMismatch(this.keyUri(key), expected, bytes);
        if (bad) throw bad;
        return Readable.from([bytes], { objectMode: false });
      } catch (err) {
        return this.fail('getStream', key, err);
      } finally {
        await opened.handle.close();
      }
    }
    const stream = opened.handle.createReadStream(); // closes the handle when the stream ends or is destroyed
    return expected ? verifyingStream(stream, expected, this.keyUri(key)) : stream;
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer> {
    checkRange(start, end, this.keyUri(key));
    const p = this.pathOf(key);
    let handle: fs.FileHandle | undefined;
    try {
      handle = await fs.open(p, 'r');
      const size = (await handle.stat()).size;
      // Like S3, a range past the end is clipped to the object's size.
      const stop = Math.min(end, size);
      if (start >= stop) return Buffer.alloc(0);
      const buf = Buffer.alloc(stop - start);
      let off = 0;
      while (off < buf.length) {
        const { bytesRead } = await handle.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return buf.subarray(0, off);
    } catch (err) {
      if (['ENOENT', 'EISDIR', 'ENOTDIR'].includes(errno(err) ?? '')) throw new NotFoundError(this.keyUri(key));
      return this.fail('getRange', key, err);
    } finally {
      await handle?.close();
    }
  }

  /**
   * Writes body to a fresh, fsynced temp file beside `final`; returns the temp path and the digest
   * record of its bytes (its inode is the object's once renamed or linked into place).
   */
  private async writeTemp(final: string, body: Body): Promise<{ tmp: string; record: DigestRecord }> {
    const dir = path.dirname(final);
    const tmp = path.join(dir, `${TEMP_MARKER}${path.basename(final)}.${process.pid}.${randomBytes(6).toString('hex')}`);
    // A concurrent delete may remove an emptied parent directory between mkdir and open: retry.
    for (let attempt = 0; ; attempt++) {
      await fs.mkdir(dir, { recursive: true });
      let handle: fs.FileHandle;
      try {
        handle = await fs.open(tmp, 'wx');
      } catch (err) {
        if (errno(err) === 'ENOENT' && attempt < 5) continue;
        throw err;
      }
      const hasher = new Hasher();
      try {
        if (typeof body === 'string' || body instanceof Uint8Array) {
          const bytes = typeof body === 'string' ? Buffer.from(body) : body;
          hasher.update(bytes);
          await handle.writeFile(bytes);
        } else {
          for await (const chunk of body as Readable) {
            const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
            hasher.update(bytes);
            let off = 0;
            while (off < bytes.length) off += (await handle.write(bytes, off, bytes.length - off)).bytesWritten;
          }
        }
        await handle.sync();
        const { ino } = await handle.stat({ bigint: true });
        await handle.close();
        return { tmp, record: { ...hasher.digest(), ino: String(ino) } };
      } catch (err) {
        await handle.close().catch(() => {});
        await fs.rm(tmp, { force: true });
        throw err;
      }
    }
  }

  /**
   * Writes the digest record of `final` (atomically: temp + rename). Not fsynced: after a power
   * loss a lost or empty record only makes the object unverified, never wrong.
   */
  private async writeDigest(final: string, record: DigestRecord): Promise<void> {
    const target = digestPath(final);
    const tmp = `${path.join(path.dirname(final), TEMP_MARKER)}${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}`;
    try {
      await fs.writeFile(tmp, JSON.stringify(record), { flag: 'wx' });
      await fs.rename(tmp, target);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  /** fsync the directory so the rename/link itself survives a power loss (best effort). */
  private async syncDir(dir: string): Promise<void> {
    let handle: fs.FileHandle | undefined;
    try {
      handle = await fs.open(dir, 'r');
      await handle.sync();
    } catch {
      // Some filesystems refuse fsync on directories; the data itself is already synced.
    } finally {
      await handle?.close().catch(() => {});
    }
  }

  async put(key: string, body: Body): Promise<void> {
    const final = this.pathOf(key);
    let tmp: string | undefined;
    try {
      const written = await this.writeTemp(final, body);
      tmp = written.tmp;
      // The record first: once the object is visible, its digest is recorded.
      await this.writeDigest(final, written.record);
      await fs.rename(tmp, final);
      tmp = undefined;
      await this.syncDir(path.dirname(final));
    } catch (err) {
      if (tmp) await fs.rm(tmp, { force: true });
      this.fail('put', key, err);
    }
    afterCommit(this.keyUri(key));
  }

  async putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean> {
    const final = this.pathOf(key);
    let tmp: string | undefined;
    try {
      const written = await this.writeTemp(final, body);
      tmp = written.tmp;
      // link() fails with EEXIST if the key exists, atomically, and the object appears whole.
      try {
        await fs.link(tmp, final);
      } catch (err) {
        if (errno(err) === 'EEXIST' && (await fs.stat(final)).isFile()) return false;
        throw err;
      }
      // Recorded only once we own the key (before, it would overwrite the winner's record); a
      // crash in between leaves this small object unverified, not wrong.
      await this.writeDigest(final, written.record);
      await this.syncDir(path.dirname(final));
      afterCommit(this.keyUri(key));
      return true;
    } catch (err) {
      return this.fail('putIfAbsent', key, err);
    } finally {
      if (tmp) await fs.rm(tmp, { force: true });
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const p = this.pathOf(key);
    try {
      const st = await fs.stat(p, { bigint: true });
      if (!st.isFile()) return undefined;
      const info: ObjectInfo = { key, size: Number(st.size), mtimeMs: Number(st.mtimeMs) };
      const digest = await this.recordedDigest(p, st.ino);
      if (digest) info.sha256 = digest.sha256;
      return info;
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes(errno(err) ?? '')) return undefined;
      this.fail('head', key, err);
    }
  }

  /**
   * Walks the directories that can hold keys starting with `prefix` (only the deepest one the
   * prefix names, then below), calling `onEntry` with each non-directory entry's relative path.
   */
  private async walkPrefix(prefix: string, onEntry: (rel: string, entry: Dirent) => Promise<void>): Promise<void> {
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const walk = async (relDir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(path.join(this.root, ...(relDir ? relDir.split('/') : [])), { withFileTypes: true });
      } catch (err) {
        if (['ENOENT', 'ENOTDIR'].includes(errno(err) ?? '')) return;
        throw err;
      }
      for (const e of entries) {
        const rel = relDir ? `${relDir}/${e.name}` : e.name;
        if (e.isDirectory()) {
          // Descend only where keys below could still match the prefix.
          if (`${rel}/`.startsWith(prefix) || prefix.startsWith(`${rel}/`)) await walk(rel);
        } else {
          await onEntry(rel, e);
        }
      }
    };
    await walk(dirPart);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    checkPrefix(prefix, this.uri);
    const out: ObjectInfo[] = [];
    try {
      await this.walkPrefix(prefix, async (rel, e) => {
        if (isBookkeeping(e.name) || !(e.isFile() || e.isSymbolicLink()) || !rel.startsWith(prefix)) return;
        try {
          // stat follows symlinks: a linked file (e.g. a dataset shard) is an object like any other.
          const st = await fs.stat(path.join(this.root, ...rel.split('/')));
          if (st.isFile()) out.push({ key: rel, size: st.size, mtimeMs: st.mtimeMs });
        } catch (err) {
          if (errno(err) !== 'ENOENT') throw err; // deleted while listing: not part of the result
        }
      });
    } catch (err) {
      this.fail('list', prefix, err);
    }
    return out.sort((a, b) => compareKeys(a.key, b.key));
  }

  async delete(key: string): Promise<void> {
    const p = this.pathOf(key);
    try {
      await fs.unlink(p);
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes(errno(err) ?? '')) {
        await this.removeDigest(key, p); // a record left by a crash: the key is absent either way
        return;
      }
      if (errno(err) === 'EISDIR' || errno(err) === 'EPERM') {
        // A directory is a prefix, not an object: nothing to delete at this key.
        if ((await fs.stat(p).catch(() => undefined))?.isDirectory()) return;
      }
      this.fail('delete', key, err);
    }
    // After the object: a crash in between leaves a record without an object, which no read uses.
    await this.removeDigest(key, p);
    await this.pruneEmptyDirs(path.dirname(p));
  }

  private async removeDigest(key: string, p: string): Promise<void> {
    try {
      await fs.unlink(digestPath(p));
    } catch (err) {
      if (!['ENOENT', 'ENOTDIR'].includes(errno(err) ?? '')) this.fail('delete', key, err);
    }
  }

  /** Removes now-empty parent directories up to (not including) the root, so prefixes vanish like on S3. */
  private async pruneEmptyDirs(dir: string): Promise<void> {
    while (dir.startsWith(this.root + path.sep)) {
      try {
        await fs.rmdir(dir);
      } catch {
        return; // not empty (or gone): stop
      }
      dir = path.dirname(dir);
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    for (const { key } of await this.list(prefix)) await this.delete(key);
    // Digest records whose object is gone (a crash between a put's two renames, or within a
    // delete) would keep emptied directories alive: remove those under the prefix too.
    const orphans: string[] = [];
    try {
      await this.walkPrefix(prefix, async (rel, e) => {
        if (!e.name.startsWith(DIGEST_MARKER)) return;
        const dir = rel.slice(0, rel.length - e.name.length);
        if (`${dir}${e.name.slice(DIGEST_MARKER.length)}`.startsWith(prefix)) orphans.push(rel);
      });
      for (const rel of orphans) {
        const p = path.join(this.root, ...rel.split('/'));
        const object = path.join(path.dirname(p), path.basename(p).slice(DIGEST_MARKER.length));
        if (await fs.lstat(object).then(() => true, () => false)) continue; // written meanwhile: keep its record
        await fs.rm(p, { force: true });
        await this.pruneEmptyDirs(path.dirname(p));
      }
    } catch (err) {
      this.fail('deletePrefix', prefix, err);
    }
  }

  sub(prefix: string): ObjectStore {
    checkPrefix(prefix, this.uri);
    const clean = prefix.replace(/\/+$/, '');
    return clean ? new FileStore(path.join(this.root, ...clean.split('/'))) : this;
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }
}

/** Validates a [start, end) byte range. */
export function checkRange(start: number, end: number, uri: string): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new StoreError(`invalid byte range [${start}, ${end}) for ${uri}: need integers 0 <= start <= end`, uri);
  }
}

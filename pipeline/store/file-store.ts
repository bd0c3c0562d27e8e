/**
 * `file://` store: a local directory. Writes go to a temp file in the target's own directory
 * (same filesystem, so the final step is an atomic rename/link), are fsynced before they become
 * visible, and temp files are never listed. Keys are checked so nothing escapes the root.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { checkKey, checkPrefix, compareKeys, TEMP_MARKER } from './keys.js';
import { NotFoundError, StoreError, type Body, type ObjectInfo, type ObjectStore } from './types.js';
import { objectUri } from './uri.js';

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
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
    if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST') {
      // "a" and "a/b" cannot both exist on a filesystem; say so instead of a raw errno.
      throw new StoreError(`${op} ${this.keyUri(key)}: a key and a key prefix collide on the filesystem (${cause})`, this.keyUri(key), { cause: err });
    }
    throw new StoreError(`${op} ${this.keyUri(key)} failed: ${cause}`, this.keyUri(key), { cause: err });
  }

  async get(key: string): Promise<Buffer> {
    const p = this.pathOf(key);
    try {
      return await fs.readFile(p);
    } catch (err) {
      if (['ENOENT', 'EISDIR', 'ENOTDIR'].includes(errno(err) ?? '')) throw new NotFoundError(this.keyUri(key));
      this.fail('get', key, err);
    }
  }

  async getStream(key: string): Promise<Readable> {
    const p = this.pathOf(key);
    let handle: fs.FileHandle;
    try {
      // Open first so a missing key fails here, not later as a stream 'error' event.
      handle = await fs.open(p, 'r');
      if (!(await handle.stat()).isFile()) {
        await handle.close();
        throw new NotFoundError(this.keyUri(key));
      }
    } catch (err) {
      if (['ENOENT', 'EISDIR', 'ENOTDIR'].includes(errno(err) ?? '')) throw new NotFoundError(this.keyUri(key));
      this.fail('getStream', key, err);
    }
    return handle.createReadStream(); // closes the handle when the stream ends or is destroyed
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

  /** Writes body to a fresh, fsynced temp file beside `final`; returns the temp path. */
  private async writeTemp(final: string, body: Body): Promise<string> {
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
      try {
        if (typeof body === 'string' || body instanceof Uint8Array) {
          await handle.writeFile(body);
        } else {
          for await (const chunk of body as Readable) {
            const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
            let off = 0;
            while (off < bytes.length) off += (await handle.write(bytes, off, bytes.length - off)).bytesWritten;
          }
        }
        await handle.sync();
      } catch (err) {
        await handle.close().catch(() => {});
        await fs.rm(tmp, { force: true });
        throw err;
      }
      await handle.close();
      return tmp;
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
      tmp = await this.writeTemp(final, body);
      await fs.rename(tmp, final);
      tmp = undefined;
      await this.syncDir(path.dirname(final));
    } catch (err) {
      if (tmp) await fs.rm(tmp, { force: true });
      this.fail('put', key, err);
    }
  }

  async putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean> {
    const final = this.pathOf(key);
    let tmp: string | undefined;
    try {
      tmp = await this.writeTemp(final, body);
      // link() fails with EEXIST if the key exists, atomically, and the object appears whole.
      try {
        await fs.link(tmp, final);
      } catch (err) {
        if (errno(err) === 'EEXIST' && (await fs.stat(final)).isFile()) return false;
        throw err;
      }
      await this.syncDir(path.dirname(final));
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
      const st = await fs.stat(p);
      if (!st.isFile()) return undefined;
      return { key, size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes(errno(err) ?? '')) return undefined;
      this.fail('head', key, err);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    checkPrefix(prefix, this.uri);
    // Walk only the deepest directory the prefix names, then filter by the full prefix.
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const out: ObjectInfo[] = [];
    const walk = async (relDir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(path.join(this.root, ...(relDir ? relDir.split('/') : [])), { withFileTypes: true });
      } catch (err) {
        if (['ENOENT', 'ENOTDIR'].includes(errno(err) ?? '')) return;
        throw err;
      }
      for (const e of entries) {
        if (e.name.includes(TEMP_MARKER)) continue;
        const rel = relDir ? `${relDir}/${e.name}` : e.name;
        if (e.isDirectory()) {
          // Descend only where keys below could still match the prefix.
          if (`${rel}/`.startsWith(prefix) || prefix.startsWith(`${rel}/`)) await walk(rel);
        } else if ((e.isFile() || e.isSymbolicLink()) && rel.startsWith(prefix)) {
          try {
            // stat follows symlinks: a linked file (e.g. a dataset shard) is an object like any other.
            const st = await fs.stat(path.join(this.root, ...rel.split('/')));
            if (st.isFile()) out.push({ key: rel, size: st.size, mtimeMs: st.mtimeMs });
          } catch (err) {
            if (errno(err) !== 'ENOENT') throw err; // deleted while listing: not part of the result
          }
        }
      }
    };
    try {
      await walk(dirPart);
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
      if (['ENOENT', 'ENOTDIR'].includes(errno(err) ?? '')) return;
      if (errno(err) === 'EISDIR' || errno(err) === 'EPERM') {
        // A directory is a prefix, not an object: nothing to delete at this key.
        if ((await fs.stat(p).catch(() => undefined))?.isDirectory()) return;
      }
      this.fail('delete', key, err);
    }
    await this.pruneEmptyDirs(path.dirname(p));
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

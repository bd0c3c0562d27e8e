/**
 * One file over HTTP(S) into place, the way torchvision's `download_url` does it but resumable:
 *  - the body goes to `<dest>.part`; a retry after a cut connection asks for the rest
 *    (`Range: bytes=<have>-`) and appends when the server answers 206 from that offset, else starts
 *    over (200, or a 206 from elsewhere);
 *  - when the transfer is complete the caller's `verify` checks the file (a checksum); a file that
 *    fails it is deleted and fetched once more from scratch, then the download fails naming the URL;
 *  - only a verified file is renamed to `dest`, so a file under its final name is always whole;
 *  - a stalled transfer (no byte for `idleTimeoutMs`) counts as cut.
 * Node's own fetch (undici) does the HTTP; no dependency needed.
 */
import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';

export interface DownloadOptions {
  url: string;
  dest: string;
  /** Throws (with a message saying what differs) when the complete file is not the expected one. */
  verify(file: string): Promise<void>;
  /** Bytes in the part file so far (resumed bytes included) and the file's size when known. */
  onProgress?(bytes: number, total: number | undefined): void;
  /** Transfers that may be cut before the download fails (each resumes where the last stopped). */
  retries?: number;
  /** Wait before retry k: k × retryDelayMs (a server that dropped us gets a moment). */
  retryDelayMs?: number;
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

/** The download could not be completed; `offline` when no connection to the host could be made. */
export class DownloadError extends Error {
  constructor(
    message: string,
    readonly url: string,
    readonly offline: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DownloadError';
  }
}

/** The file arrived whole but is not the expected one (checksum mismatch). */
export class VerifyError extends Error {
  override name = 'VerifyError';
}

/** Errors that mean "no connection at all" (no network, DNS, refused): retrying soon will not help. */
const CONNECT_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function describe(err: unknown): string {
  const code = errorCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0; // nothing downloaded yet
    throw err;
  }
}

interface Attempt {
  /** Bytes in the part file after this attempt. */
  bytes: number;
  /** The whole file's size, when the server said. */
  total: number | undefined;
  /** The body ended normally. */
  complete: boolean;
}

/** One HTTP request, appending to (or restarting) the part file. Throws on HTTP errors and cuts. */
async function transfer(o: DownloadOptions, part: string, have: number): Promise<Attempt> {
  const idle = o.idleTimeoutMs ?? 30_000;
  const stall = new AbortController();
  let timer = setTimeout(() => stall.abort(new Error(`no data for ${idle / 1000} s`)), idle);
  const poke = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stall.abort(new Error(`no data for ${idle / 1000} s`)), idle);
  };
  const signal = o.signal ? AbortSignal.any([o.signal, stall.signal]) : stall.signal;
  try {
    const res = await fetch(o.url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal, redirect: 'follow' });
    if (res.status === 416 && have > 0) {
      // Nothing left to send from `have`: the part is complete (verify decides), or longer than the file.
      await res.body?.cancel();
      return { bytes: have, total: undefined, complete: true };
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new DownloadError(`${o.url}: HTTP ${res.status} ${res.statusText}`, o.url, false);
    }
    const range = res.status === 206 ? /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '') : null;
    const resumed = range !== null && Number(range[1]) === have;
    if (res.status === 206 && !resumed) {
      // A part from somewhere else than asked: unusable. Start over with a plain request.
      await res.body?.cancel();
      await fs.rm(part, { force: true });
      return { bytes: 0, total: undefined, complete: false };
    }
    const start = resumed ? have : 0;
    const length = Number(res.headers.get('content-length') ?? NaN);
    const total = range && range[2] !== '*' ? Number(range[2]) : Number.isFinite(length) ? start + length : undefined;
    if (!res.body) throw new DownloadError(`${o.url}: empty response body`, o.url, false);
    const out = createWriteStream(part, { flags: resumed ? 'a' : 'w' });
    const closed = new Promise<void>((resolve, reject) => {
      out.once('close', resolve);
      out.once('error', reject);
    });
    let bytes = start;
    try {
      for await (const chunk of res.body) {
        poke();
        const buf = chunk as Uint8Array;
        if (!out.write(buf)) await new Promise<void>((resolve) => out.once('drain', resolve));
        bytes += buf.byteLength;
        o.onProgress?.(bytes, total);
      }
    } finally {
      out.end();
      await closed;
    }
    return { bytes, total, complete: true };
  } finally {
    clearTimeout(timer);
  }
}

/** Downloads `url` to `dest` (see the file comment). Resolves once `dest` exists and verified. */
export async function downloadFile(o: DownloadOptions): Promise<void> {
  const part = `${o.dest}.part`;
  const retries = o.retries ?? 5;
  let cuts = 0;
  let corrupt = 0;
  let everConnected = false;
  for (;;) {
    o.signal?.throwIfAborted();
    const have = await sizeOf(part);
    let attempt: Attempt | undefined;
    try {
      attempt = await transfer(o, part, have);
      everConnected = true;
    } catch (err) {
      if (err instanceof DownloadError || o.signal?.aborted) throw err;
      const code = errorCode(err);
      const connectFailure = code !== undefined && CONNECT_CODES.has(code);
      if (!connectFailure) everConnected = true;
      // Nothing reached the host: no network here (or a wrong URL); a couple of quick tries only.
      const limit = connectFailure && !everConnected ? Math.min(retries, 1) : retries;
      if (++cuts > limit) {
        throw new DownloadError(`${o.url}: ${describe(err)}${cuts > 1 ? ` (after ${cuts} attempts)` : ''}`, o.url, connectFailure && !everConnected, { cause: err });
      }
      await new Promise((resolve) => setTimeout(resolve, cuts * (o.retryDelayMs ?? 1000)));
      continue;
    }
    if (!attempt.complete || (attempt.total !== undefined && attempt.bytes < attempt.total)) {
      // The body ended early without an error (some servers close instead of resetting): resume.
      if (++cuts > retries) throw new DownloadError(`${o.url}: transfer stopped at ${attempt.bytes} of ${attempt.total} bytes (after ${cuts} attempts)`, o.url, false);
      continue;
    }
    try {
      await o.verify(part);
    } catch (err) {
      await fs.rm(part, { force: true });
      if (!(err instanceof VerifyError)) throw err;
      if (++corrupt > 1) throw new DownloadError(`${o.url}: the downloaded file is not the expected one, twice: ${err.message}`, o.url, false, { cause: err });
      continue;
    }
    await fs.rename(part, o.dest);
    return;
  }
}

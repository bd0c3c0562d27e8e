/**
 * `s3://bucket/prefix` store on any S3-compatible service via @aws-sdk/client-s3.
 *
 * Configuration is the standard AWS one (credential chain incl. AWS_PROFILE, AWS_REGION,
 * AWS_ENDPOINT_URL[_S3]) plus an explicit endpoint override. With a custom endpoint we use
 * path-style addressing, and checksums are computed/validated only WHEN_REQUIRED because
 * S3-compatible servers (Swift's s3api) refuse the SDK's default aws-chunked streaming checksums.
 * Retries (5xx, throttling, connection resets) are the SDK's standard strategy with backoff.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { checkKey, checkPrefix, compareKeys, joinPrefix } from './keys.js';
import { digestMismatch, digestOf, Hasher } from './digest.js';
import { afterCommit } from './kill-point.js';
import { checkRange } from './file-store.js';
import { describeS3Error, endpointLabel, isNotFound, type S3ErrorContext } from './s3-errors.js';
import { IntegrityError, StoreError, type Body, type Digest, type GetOptions, type ObjectInfo, type ObjectStore, type PutOptions } from './types.js';

const MiB = 1024 * 1024;

/**
 * Reads of a body that arrives cut short, garbled or not at all (a connection dropped mid-body,
 * a proxy that truncates) are retried this many times in all: the SDK retries requests, not
 * bodies. A body that still does not match its recorded digest then is corrupt at rest.
 */
const BODY_ATTEMPTS = 4;

/** The digest `put` records in the object's user metadata (x-amz-meta-sha256, x-amz-meta-size). */
function digestMetadata(d: Digest): Record<string, string> {
  return { sha256: d.sha256, size: String(d.size) };
}

function recordedDigest(metadata: Record<string, string> | undefined): Digest | undefined {
  const sha256 = metadata?.['sha256'];
  const size = Number(metadata?.['size']);
  return sha256 && /^[0-9a-f]{64}$/.test(sha256) && Number.isSafeInteger(size) ? { sha256, size } : undefined;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' for the bucket root), without leading/trailing '/'. */
  prefix?: string;
  /** Endpoint override (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / AWS's own). */
  endpoint?: string;
  /** Region (else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1). */
  region?: string;
  /** Total attempts per request including retries (SDK standard retry strategy). Default 5. */
  maxAttempts?: number;
  /** Buffers larger than this are uploaded as multipart. Default 16 MiB. */
  multipartThreshold?: number;
  /** Multipart part size (S3 minimum 5 MiB). Default 8 MiB. */
  partSize?: number;
  /** Keys per ListObjectsV2 page (max 1000). Tests lower it to exercise pagination. */
  listPageSize?: number;
  /** getStream reads objects up to this size whole, verified, before handing them out. Default 64 MiB. */
  bufferedStreamMax?: number;
  /** Explicit keys instead of the standard credential chain (env, AWS_PROFILE, SSO, IMDS...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Force the If-None-Match support decision instead of probing ('auto', the default, probes once). */
  conditionalPut?: 'auto' | 'native' | 'fallback';
  /** How long the putIfAbsent fallback waits before re-reading its claim. Default 250 ms. */
  claimSettleMs?: number;
  /** Where the one-per-process fallback warning goes. Default: process.emitWarning. */
  warn?: (message: string) => void;
}

/** Resolved settings shared by a store and every sub-store made from it. */
interface Shared {
  client: S3Client;
  bucket: string;
  endpoint: string;
  opts: Required<Pick<S3StoreOptions, 'multipartThreshold' | 'partSize' | 'listPageSize' | 'bufferedStreamMax' | 'claimSettleMs' | 'conditionalPut'>> &
    Pick<S3StoreOptions, 'warn'>;
}

/** If-None-Match support per endpoint+bucket, probed once per process. */
const conditionalSupport = new Map<string, Promise<boolean>>();
/** Buckets known to exist (so a 404 on HEAD means a missing key, not a missing bucket). */
const knownBuckets = new Map<string, Promise<void>>();
let warnedFallback = false;

function envEndpoint(): string | undefined {
  return process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
}

/**
 * The SDK's own region chain (AWS_REGION, then the AWS_PROFILE's `region` in ~/.aws/config),
 * defaulting to us-east-1 where it would fail with "Region is missing" (S3-compatible servers
 * rarely care about the region).
 */
let awsConfigRegion: Promise<string> | undefined;
function regionFromAwsConfig(): Promise<string> {
  // The SDK asks for the region on every request: resolve once per process.
  awsConfigRegion ??= (async () => {
    const probe = new S3Client({});
    try {
      return await probe.config.region();
    } catch {
      return 'us-east-1';
    } finally {
      probe.destroy();
    }
  })();
  return awsConfigRegion;
}

/**
 * Swift's s3api (like AWS before 2024) refuses DeleteObjects without Content-MD5, which current
 * SDKs no longer send; this adds it from the serialized XML body.
 */
function addContentMd5ForDeleteObjects(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName === 'DeleteObjectsCommand' && request.headers && (typeof request.body === 'string' || request.body instanceof Uint8Array)) {
        request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
      }
      return next(args);
    },
    { step: 'build', name: 'selftrainContentMd5ForDeleteObjects' },
  );
}

export class S3Store implements ObjectStore {
  readonly uri: string;
  private readonly shared: Shared;
  private readonly prefix: string;

  constructor(opts: S3StoreOptions);
  constructor(shared: Shared, prefix: string);
  constructor(a: S3StoreOptions | Shared, prefix?: string) {
    if ('client' in a) {
      this.shared = a;
      this.prefix = prefix ?? '';
    } else {
      const endpoint = a.endpoint || envEndpoint();
      const explicitRegion = a.region || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
      const client = new S3Client({
        region: explicitRegion ?? regionFromAwsConfig,
        ...(a.credentials ? { credentials: a.credentials } : {}),
        ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        maxAttempts: a.maxAttempts ?? 5,
        retryMode: 'standard',
        // Fail fast on a dead host; requestTimeout is socket idle time, not total duration.
        requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
      });
      addContentMd5ForDeleteObjects(client);
      this.shared = {
        client,
        bucket: a.bucket,
        endpoint: endpoint ?? (explicitRegion ? `https://s3.${explicitRegion}.amazonaws.com` : 'AWS S3'),
        opts: {
          multipartThreshold: a.multipartThreshold ?? 16 * MiB,
          partSize: Math.max(a.partSize ?? 8 * MiB, 5 * MiB),
          listPageSize: Math.min(Math.max(a.listPageSize ?? 1000, 1), 1000),
          bufferedStreamMax: a.bufferedStreamMax ?? 64 * MiB,
          claimSettleMs: a.claimSettleMs ?? 250,
          conditionalPut: a.conditionalPut ?? 'auto',
          warn: a.warn,
        },
      };
      this.prefix = (a.prefix ?? '').replace(/^\/+|\/+$/g, '');
    }
    this.uri = `s3://${this.shared.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
  }

  private get client(): S3Client {
    return this.shared.client;
  }

  private get bucket(): string {
    return this.shared.bucket;
  }

  /** The full object key in the bucket for a store key. */
  private fullKey(key: string): string {
    checkKey(key, this.uri);
    return joinPrefix(this.prefix, key);
  }

  private ctx(op: string, key?: string): S3ErrorContext {
    return { op, endpoint: endpointLabel(this.shared.endpoint), bucket: this.bucket, key: key === undefined ? this.prefix : joinPrefix(this.prefix, key) };
  }

  /** Runs one SDK call and turns its failures into one-line StoreErrors. */
  private async call<T>(op: string, key: string | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw describeS3Error(err, this.ctx(op, key));
    }
  }

  /** Throws BucketNotFoundError if the bucket is missing (HEAD 404s cannot tell a key from a bucket). */
  private ensureBucket(): Promise<void> {
    const id = `${this.shared.endpoint} ${this.bucket}`;
    let known = knownBuckets.get(id);
    if (!known) {
      known = this.client.send(new HeadBucketCommand({ Bucket: this.bucket })).then(
        () => undefined,
        (err: unknown) => {
          // HEAD responses have no body, so a missing bucket shows up as a bare 404 here.
          throw describeS3Error(isNotFound(err) ? Object.assign(new Error('no such bucket'), { name: 'NoSuchBucket' }) : err, this.ctx('head', ''));
        },
      );
      knownBuckets.set(id, known);
      known.catch(() => knownBuckets.delete(id));
    }
    return known;
  }

  private keyUri(key: string): string {
    return `${this.uri}/${key}`;
  }

  /**
   * Reads a whole body and checks it: as long as the response said (a connection dropped
   * mid-body), and matching the digest recorded at put. Failures are retried with a fresh GET
   * (`first` is the response already in hand, if any); the last one is thrown.
   */
  private async readWhole(op: string, key: string, Key: string, first?: GetObjectCommandOutput, verify = true): Promise<Buffer> {
    let problem: Error | undefined;
    for (let attempt = 1; attempt <= BODY_ATTEMPTS; attempt++) {
      if (attempt > 1) await sleep(50 * 2 ** attempt);
      const res = attempt === 1 && first ? first : await this.call(op, key, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key })));
      let bytes: Buffer;
      try {
        // A view of the SDK's byte array, not a copy: it is this call's own (the collected body).
        const body = await res.Body!.transformToByteArray();
        bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      } catch (err) {
        problem = describeS3Error(err, this.ctx(op, key));
        continue;
      }
      const expected = recordedDigest(res.Metadata);
      if (res.ContentLength !== undefined && bytes.length !== res.ContentLength) {
        problem = new IntegrityError(this.keyUri(key), expected ?? { sha256: '(not recorded)', size: res.ContentLength }, digestOf(bytes), `the response announced ${res.ContentLength} bytes`);
        continue;
      }
      problem = verify && expected ? digestMismatch(this.keyUri(key), expected, bytes) : undefined;
      if (!problem) return bytes;
    }
    throw problem!;
  }

  async get(key: string, opts: GetOptions = {}): Promise<Buffer> {
    return this.readWhole('get', key, this.fullKey(key), undefined, opts.verify !== false);
  }

  /**
   * Objects up to `bufferedStreamMax` are read whole (verified and retried like `get`) and handed
   * out as a stream; bigger ones stream, resuming with a ranged GET of the same version after a
   * dropped connection, and are verified when the stream ends.
   */
  async getStream(key: string): Promise<Readable> {
    const Key = this.fullKey(key);
    const res = await this.call('getStream', key, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key })));
    if (res.ContentLength === undefined || res.ContentLength <= this.shared.opts.bufferedStreamMax) {
      return Readable.from([await this.readWhole('getStream', key, Key, res)], { objectMode: false });
    }
    return Readable.from(this.resumingBody(key, Key, res), { objectMode: false });
  }

  private async *resumingBody(key: string, Key: string, first: GetObjectCommandOutput): AsyncGenerator<Buffer> {
    const total = first.ContentLength!;
    const expected = recordedDigest(first.Metadata);
    const hasher = new Hasher();
    let res = first;
    for (let failures = 0; ; ) {
      try {
        for await (const chunk of res.Body as Readable) {
          const bytes = chunk as Buffer;
          hasher.update(bytes);
          yield bytes;
        }
        if (hasher.size >= total) break;
        throw new Error(`body ended after ${hasher.size} of ${total} bytes`);
      } catch (err) {
        if (++failures >= BODY_ATTEMPTS) throw describeS3Error(err, this.ctx('getStream', key));
        await sleep(50 * 2 ** failures);
        // The rest of the same version: If-Match refuses an object replaced meanwhile (412).
        res = await this.call('getStream', key, () =>
          this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=${hasher.size}-`, IfMatch: first.ETag })),
        );
      }
    }
    const actual = hasher.digest();
    if (actual.size !== total || (expected && actual.sha256 !== expected.sha256)) {
      throw new IntegrityError(this.keyUri(key), expected ?? { sha256: '(not recorded)', size: total }, actual);
    }
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer> {
    checkRange(start, end, this.keyUri(key));
    const Key = this.fullKey(key);
    if (start === end) {
      // An empty range has no HTTP form; still report a missing key like the other reads.
      if (!(await this.head(key))) await this.get(key);
      return Buffer.alloc(0);
    }
    let problem: Error | undefined;
    for (let attempt = 1; attempt <= BODY_ATTEMPTS; attempt++) {
      if (attempt > 1) await sleep(50 * 2 ** attempt);
      let res: GetObjectCommandOutput;
      try {
        res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=${start}-${end - 1}` }));
      } catch (err) {
        // Like file://, a range starting at or past the end is empty (S3 answers 416).
        if (statusOf(err) === 416) return Buffer.alloc(0);
        throw describeS3Error(err, this.ctx('getRange', key));
      }
      try {
        const bytes = Buffer.from(await res.Body!.transformToByteArray());
        // Only the length of a range can be checked; the response says how long it is.
        if (res.ContentLength === undefined || bytes.length === res.ContentLength) return bytes;
        problem = new StoreError(`getRange ${this.keyUri(key)} from byte ${start}: the body ended after ${bytes.length} of the ${res.ContentLength} bytes announced`, this.keyUri(key));
      } catch (err) {
        problem = describeS3Error(err, this.ctx('getRange', key));
      }
    }
    throw problem!;
  }

  async put(key: string, body: Body, opts: PutOptions = {}): Promise<void> {
    await this.putObject(key, body, opts);
    afterCommit(this.keyUri(key));
  }

  private async putObject(key: string, body: Body, opts: PutOptions): Promise<void> {
    const Key = this.fullKey(key);
    const params: PutObjectCommandInput = { Bucket: this.bucket, Key, ContentType: opts.contentType };
    if (typeof body === 'string') body = Buffer.from(body);
    if (body instanceof Uint8Array) {
      const Metadata = digestMetadata(digestOf(body));
      if (body.length <= this.shared.opts.multipartThreshold) {
        // A buffer is replayable, so the SDK can retry this single PUT as a whole.
        await this.call('put', key, () => this.client.send(new PutObjectCommand({ ...params, Metadata, Body: body, ContentLength: body.length })));
      } else {
        await this.call('put', key, () => this.upload({ ...params, Metadata, Body: body }));
      }
      return;
    }
    // A stream: its digest is known only at the end, so it is recorded after the upload by
    // copying the object onto itself with the digest in its metadata (atomic, server-side).
    const hasher = new Hasher();
    const source = body;
    const hashed = Readable.from(
      (async function* () {
        for await (const chunk of source) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
          hasher.update(bytes);
          yield bytes;
        }
      })(),
      { objectMode: false },
    );
    await this.call('put', key, () => this.upload({ ...params, Body: hashed }));
    const digest = hasher.digest();
    // A single copy handles up to 5 GiB; a bigger streamed object stays unrecorded (read unverified).
    if (digest.size <= 5 * 1024 * MiB) {
      await this.call('put', key, () =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key,
            CopySource: `${this.bucket}/${encodeURIComponent(Key).replace(/%2F/g, '/')}`,
            MetadataDirective: 'REPLACE',
            Metadata: digestMetadata(digest),
            ContentType: opts.contentType,
          }),
        ),
      );
    }
  }

  /**
   * Multipart upload (lib-storage): parts are buffered, so each is retryable, and a body that fits
   * in one part is a single PUT. S3 makes the object visible only on CompleteMultipartUpload,
   * which keeps put atomic.
   */
  private async upload(params: PutObjectCommandInput): Promise<void> {
    const upload = new Upload({ client: this.client, params, partSize: this.shared.opts.partSize, queueSize: 4, leavePartsOnError: false });
    await upload.done();
  }

  /** Whether this endpoint+bucket honours `If-None-Match: *` (probed once per process). */
  private supportsConditionalPut(): Promise<boolean> {
    const mode = this.shared.opts.conditionalPut;
    if (mode !== 'auto') return Promise.resolve(mode === 'native');
    const id = `${this.shared.endpoint} ${this.bucket}`;
    let probe = conditionalSupport.get(id);
    if (!probe) {
      probe = this.probeConditionalPut();
      conditionalSupport.set(id, probe);
      probe.catch(() => conditionalSupport.delete(id));
    }
    return probe;
  }

  /** Which putIfAbsent protocol this store uses (probes the service on first call). */
  async conditionalPutMode(): Promise<'native' | 'fallback'> {
    return (await this.supportsConditionalPut()) ? 'native' : 'fallback';
  }

  /**
   * Writes a scratch object twice with If-None-Match: *. A service that supports it accepts the
   * first and answers 412 to the second; one that does not answers 501, or overwrites silently.
   */
  private async probeConditionalPut(): Promise<boolean> {
    const Key = joinPrefix(this.prefix, `.selftrain-conditional-put-probe-${process.pid}-${randomBytes(6).toString('hex')}`);
    const attempt = async (): Promise<'ok' | 'precondition' | 'unsupported'> => {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: Buffer.from('probe'), IfNoneMatch: '*' }));
        return 'ok';
      } catch (err) {
        const status = statusOf(err);
        if (status === 412 || status === 409) return 'precondition';
        if (status === 501 || (err as Error).name === 'NotImplemented') return 'unsupported';
        throw describeS3Error(err, this.ctx('probe conditional put'));
      }
    };
    try {
      const first = await attempt();
      if (first !== 'ok') return false;
      return (await attempt()) === 'precondition';
    } finally {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch(() => {});
    }
  }

  private warnFallbackOnce(): void {
    if (warnedFallback) return;
    warnedFallback = true;
    const msg =
      `${endpointLabel(this.shared.endpoint)} (bucket ${this.bucket}) does not support conditional writes (If-None-Match: *); ` +
      'putIfAbsent falls back to a best-effort check-then-claim protocol that two writers racing within a fraction of a second can both win';
    if (this.shared.opts.warn) this.shared.opts.warn(msg);
    else process.emitWarning(msg, { code: 'SELFTRAIN_S3_NO_CONDITIONAL_PUT' });
  }

  async putIfAbsent(key: string, body: Uint8Array | string, opts: PutOptions = {}): Promise<boolean> {
    const created = await this.createIfAbsent(key, body, opts);
    if (created) afterCommit(this.keyUri(key));
    return created;
  }

  private async createIfAbsent(key: string, body: Uint8Array | string, opts: PutOptions): Promise<boolean> {
    const Key = this.fullKey(key);
    const Body = typeof body === 'string' ? Buffer.from(body) : body;
    const Metadata = digestMetadata(digestOf(Body));
    if (await this.supportsConditionalPut()) {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentLength: Body.length, ContentType: opts.contentType, Metadata, IfNoneMatch: '*' }));
        return true;
      } catch (err) {
        const status = statusOf(err);
        // 412: exists. 409: another conditional write to this key is in flight (AWS); it wins.
        if (status === 412 || status === 409) return false;
        throw describeS3Error(err, this.ctx('putIfAbsent', key));
      }
    }
    this.warnFallbackOnce();
    return this.putIfAbsentFallback(key, Key, Body, { ...opts, Metadata });
  }

  /**
   * Best-effort conditional create for services without If-None-Match:
   *  1. HEAD the key: present -> false.
   *  2. PUT the object tagged with a random claim token (x-amz-meta-selftrain-claim).
   *  3. Wait claimSettleMs, HEAD again: our token -> true, another writer's token -> false.
   * Of writers that overlap, the last PUT wins and only its writer returns true, unless one writer
   * re-reads before the other has written (both then return true). The object is always whole.
   */
  private async putIfAbsentFallback(key: string, Key: string, Body: Uint8Array, opts: PutOptions & { Metadata: Record<string, string> }): Promise<boolean> {
    if (await this.head(key)) return false;
    const token = `${process.pid}-${Date.now()}-${randomBytes(8).toString('hex')}`;
    await this.call('putIfAbsent', key, () =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentLength: Body.length, ContentType: opts.contentType, Metadata: { ...opts.Metadata, 'selftrain-claim': token } }),
      ),
    );
    await sleep(this.shared.opts.claimSettleMs);
    const res = await this.call('putIfAbsent', key, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key })));
    return res.Metadata?.['selftrain-claim'] === token;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const Key = this.fullKey(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      const info: ObjectInfo = { key, size: res.ContentLength ?? 0, mtimeMs: res.LastModified?.getTime() ?? 0, etag: res.ETag };
      const digest = recordedDigest(res.Metadata);
      if (digest) info.sha256 = digest.sha256;
      return info;
    } catch (err) {
      if (isNotFound(err)) {
        await this.ensureBucket();
        return undefined;
      }
      throw describeS3Error(err, this.ctx('head', key));
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    for await (const page of this.listPages(prefix)) out.push(...page);
    return out.sort((a, b) => compareKeys(a.key, b.key));
  }

  /** One ListObjectsV2 page at a time (listPageSize keys), in the service's key order. */
  async *listPages(prefix: string): AsyncGenerator<ObjectInfo[]> {
    checkPrefix(prefix, this.uri);
    // A store's root prefix is a directory: list below "<prefix>/", never "<prefix>-other".
    const rootPrefix = this.prefix ? `${this.prefix}/` : '';
    let ContinuationToken: string | undefined;
    do {
      const res = await this.call('list', prefix, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: rootPrefix + prefix, MaxKeys: this.shared.opts.listPageSize, ContinuationToken }),
        ),
      );
      const page: ObjectInfo[] = [];
      for (const o of res.Contents ?? []) {
        if (!o.Key) continue;
        page.push({ key: o.Key.slice(rootPrefix.length), size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0, etag: o.ETag });
      }
      ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
      if (res.IsTruncated && !ContinuationToken) {
        throw describeS3Error(new Error('listing truncated without a continuation token'), this.ctx('list', prefix));
      }
      yield page;
    } while (ContinuationToken);
  }

  async delete(key: string): Promise<void> {
    const Key = this.fullKey(key);
    await this.call('delete', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })));
  }

  async deletePrefix(prefix: string): Promise<void> {
    const keys = (await this.list(prefix)).map((o) => joinPrefix(this.prefix, o.key));
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const res = await this.call('deletePrefix', prefix, () =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })),
      );
      const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const e = failed[0]!;
        throw describeS3Error(Object.assign(new Error(e.Message ?? 'delete failed'), { name: e.Code ?? 'DeleteError' }), this.ctx('deletePrefix', e.Key?.slice(this.prefix ? this.prefix.length + 1 : 0)));
      }
    }
  }

  sub(prefix: string): ObjectStore {
    checkPrefix(prefix, this.uri);
    const clean = prefix.replace(/\/+$/, '');
    return clean ? new S3Store(this.shared, joinPrefix(this.prefix, clean)) : this;
  }

  /** Destroys the client's sockets (sub-stores share it): idle keep-alives would hold the process ~60 s. */
  async close(): Promise<void> {
    this.shared.client.destroy();
  }
}

/**
 * Maps AWS SDK failures to one-line StoreErrors that name the endpoint, bucket, key and cause,
 * so the CLI can print `error: <message>` without a stack trace. Secrets never appear: we only
 * use the error code/message the service sent, and scrub the secret key defensively anyway.
 */
import {
  BucketNotFoundError,
  NotFoundError,
  StoreAccessError,
  StoreError,
  StoreUnreachableError,
} from './types.js';

export interface S3ErrorContext {
  op: string;
  endpoint: string;
  bucket: string;
  key: string;
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  errors?: SdkError[];
  $metadata?: { httpStatusCode?: number };
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE']);
const ACCESS_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired', 'AllAccessDisabled']);

/** Endpoint URL without credentials or query, for messages. */
export function endpointLabel(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return endpoint;
  }
}

export function isNotFound(err: unknown): boolean {
  const e = err as SdkError;
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || (e?.$metadata?.httpStatusCode === 404 && e?.name !== 'NoSuchBucket');
}

function networkCode(e: SdkError | undefined, depth = 0): string | undefined {
  if (!e || depth > 3) return undefined;
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  if (e.name === 'TimeoutError') return 'timeout';
  // Node's happy-eyeballs connect (localhost -> ::1 and 127.0.0.1) throws an AggregateError.
  for (const inner of e.errors ?? []) {
    const c = networkCode(inner, depth + 1);
    if (c) return c;
  }
  return networkCode((e as { cause?: SdkError }).cause, depth + 1);
}

function scrub(text: string): string {
  const secret = process.env.AWS_SECRET_ACCESS_KEY;
  let out = text.replace(/\s+/g, ' ').trim();
  if (secret && secret.length >= 4) out = out.split(secret).join('***');
  return out;
}

export function describeS3Error(err: unknown, ctx: S3ErrorContext): StoreError {
  if (err instanceof StoreError) return err;
  const e = (err ?? {}) as SdkError;
  const where = `s3://${ctx.bucket}${ctx.key ? `/${ctx.key}` : ''}`;
  const at = `${where} at ${ctx.endpoint}`;
  // Bodiless responses (HEAD) leave the SDK with no error code: it names them 'Unknown' or the status.
  const name = e.name && !['Error', 'Unknown', 'UnknownError'].includes(e.name) && !/^\d+$/.test(e.name) ? e.name : undefined;
  const status = e.$metadata?.httpStatusCode;

  const net = networkCode(e);
  if (net) return new StoreUnreachableError(`cannot reach S3 endpoint ${ctx.endpoint} (${net}) while trying to ${ctx.op} ${where}`, where, { cause: err });
  if (name === 'NoSuchBucket') return new BucketNotFoundError(`bucket "${ctx.bucket}" does not exist at ${ctx.endpoint} (${ctx.op} ${where})`, where, { cause: err });
  if (name === 'NoSuchKey' || name === 'NotFound') return new NotFoundError(where);
  if (name === 'CredentialsProviderError') {
    return new StoreAccessError(`no AWS credentials for ${ctx.endpoint}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (${scrub(e.message ?? '')})`, where, { cause: err });
  }
  if ((name && ACCESS_CODES.has(name)) || status === 403) {
    const hint = name === 'AccessDenied' ? 'the credentials lack permission' : 'check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE';
    return new StoreAccessError(`${ctx.endpoint} refused the credentials for ${ctx.op} ${where}: ${name ?? `HTTP ${status}`} (${hint})`, where, { cause: err });
  }
  const detail = scrub([name, status ? `HTTP ${status}` : undefined, e.message && e.message !== name ? e.message : undefined].filter(Boolean).join(', '));
  return new StoreError(`${ctx.op} ${at} failed: ${detail || 'unknown error'}`, where, { cause: err });
}

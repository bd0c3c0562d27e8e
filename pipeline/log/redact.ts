/**
 * The one place that keeps secrets out of logs, stage records and error messages. Everything the
 * project prints or stores about a run goes through `redact` (structured values) or `redactText`
 * (strings), so a secret can leak only by bypassing both — which code review can spot.
 *
 * What counts as a secret:
 * - the values of AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (and AWS_SECURITY_TOKEN, the old
 *   name), wherever they appear in a string, read from the environment at call time;
 * - AWS access key ids (AKIA…/ASIA…), which identify an account's credentials;
 * - the password part of `scheme://user:password@host` URLs and presigned-URL signature params;
 * - any object field whose name says secret/token/password/credential(s)/authorization/
 *   accessKeyId/secretAccessKey/sessionToken/apiKey/privateKey, whatever its value.
 */
export const REDACTED = '[redacted]';

const secretEnvVars = ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN'];

/** Field names whose values are never shown. Matched case-insensitively on the whole name. */
const secretFieldPattern = /secret|token|passw(or)?d|credentials?$|authorization|access_?key(_?id)?$|api_?key|private_?key|signature/i;

const accessKeyIdPattern = /\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b/g;
const urlPasswordPattern = /([a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:)[^@\s/]+@/gi;
const presignedParamPattern = /([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId)=)[^&\s"']+/gi;

export function isSecretField(name: string): boolean {
  return secretFieldPattern.test(name);
}

/** Replaces every secret inside a string. */
export function redactText(text: string): string {
  let out = text;
  for (const name of secretEnvVars) {
    const value = process.env[name];
    // Very short values would blank out ordinary words; real keys are long, test keys ("testing") are >= 4.
    if (value && value.length >= 4) out = out.split(value).join(REDACTED);
  }
  return out
    .replace(accessKeyIdPattern, REDACTED)
    .replace(urlPasswordPattern, `$1${REDACTED}@`)
    .replace(presignedParamPattern, `$1${REDACTED}`);
}

/** A deep copy of `value` with secret fields blanked and secrets inside strings replaced. */
export function redact<T>(value: T): T {
  return redactInner(value, new WeakSet()) as T;
}

function redactInner(value: unknown, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (value instanceof Error) return { name: value.name, message: redactText(value.message) };
  if (Array.isArray(value)) return value.map((v) => redactInner(v, seen));
  if (value instanceof Date) return value.toISOString();
  if (ArrayBuffer.isView(value)) return `[${value.constructor.name} ${value.byteLength} bytes]`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretField(k) && v !== undefined && v !== null && v !== '' ? REDACTED : redactInner(v, seen);
  }
  return out;
}

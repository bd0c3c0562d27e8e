/**
 * One-line, secret-free descriptions of errors for the CLI: the user sees what failed and where
 * (the store and manifest errors already name their URI/field), never a stack trace unless asked.
 */
import { redactText } from './redact.js';

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? ` (cause: ${err.cause.message})` : '';
    return redactText(`${err.message}${cause}`);
  }
  return redactText(String(err));
}

export function errorStack(err: unknown): string | undefined {
  return err instanceof Error && err.stack ? redactText(err.stack) : undefined;
}

/** The shape of a zod error's issues (structural, so this module needs no zod import). */
interface IssueList {
  issues: readonly { path: readonly PropertyKey[]; message: string }[];
}

/** A zod error as one line: `path.to.field: message; other.field: message` (`root` for an empty path). */
export function formatZodIssues(error: IssueList, root = '(root)'): string {
  return error.issues.map((i) => `${i.path.map(String).join('.') || root}: ${i.message}`).join('; ');
}

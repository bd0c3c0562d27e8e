/** Module resolve hook for hide-onnxruntime.ts: `onnxruntime-node` cannot be found. */
type Next = (specifier: string, context: unknown) => unknown;

export function resolve(specifier: string, context: unknown, next: Next): unknown {
  if (specifier === 'onnxruntime-node' || specifier.startsWith('onnxruntime-node/')) {
    throw Object.assign(new Error(`Cannot find package '${specifier}' (hidden by test/helpers/hide-onnxruntime)`), { code: 'ERR_MODULE_NOT_FOUND' });
  }
  return next(specifier, context);
}

// `new Promise(capture)` hands out a promise's resolve/reject without allocating an executor
// closure per promise: the executor runs synchronously, so `captured` holds them right after,
// until the next `new Promise(capture)`. Read both before anything else can create one.

export const captured: {
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
} = { resolve: () => {}, reject: () => {} };

export function capture(resolve: (value: never) => void, reject: (err: unknown) => void): void {
  captured.resolve = resolve as (value: unknown) => void;
  captured.reject = reject;
}

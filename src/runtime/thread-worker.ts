// Runs inside each worker thread of a ThreadPool (threads.ts) as piscina's entry module: loads the
// user's work module once, calls its exported function for every task, sends back results (moving
// the buffers marked with `transfer`, not copying them) and errors with their code and data intact.
// Work modules may import `transfer` from here; this file has no side effects on import.

import type { Transferable } from 'node:worker_threads';
import { Piscina } from 'piscina';

const TRANSFER = Symbol.for('foundation.thread.transfer');

/** A result whose listed buffers move to the main thread instead of being copied. */
interface Marked<T> {
  [TRANSFER]: readonly Transferable[];
  value: T;
}

/**
 * Marks a work function's result so the listed ArrayBuffers (or MessagePorts) are transferred to
 * the main thread: zero-copy, and unusable in this thread afterwards. Without it, results are
 * copied by the structured clone algorithm. A SharedArrayBuffer is never listed: it is shared
 * as is, by both threads.
 */
export function transfer<T>(value: T, list: readonly Transferable[]): T {
  return { [TRANSFER]: list, value } satisfies Marked<T> as unknown as T;
}

function isMarked(v: unknown): v is Marked<unknown> {
  return typeof v === 'object' && v !== null && TRANSFER in v;
}

/** What an outcome looks like on its way back (ThreadPool turns it into a value or a rejection). */
export type ThreadOutcome =
  | { ok: true; value: unknown }
  | {
      ok: false;
      error: { name: string; message: string; stack?: string; code?: unknown; data?: unknown };
    };

export interface ThreadWorkerData {
  /** file: URL of the work module. */
  module: string;
  /** Name of the exported function. */
  export: string;
}

let work: Promise<(input: unknown) => unknown> | undefined;

function loadWork(): Promise<(input: unknown) => unknown> {
  const { module, export: name } = Piscina.workerData as ThreadWorkerData;
  return import(module).then((m: Record<string, unknown>) => {
    const fn = m[name];
    if (typeof fn !== 'function') {
      throw new TypeError(`${module} has no exported function "${name}"`);
    }
    return fn as (input: unknown) => unknown;
  });
}

function errorShape(err: unknown): Extract<ThreadOutcome, { ok: false }>['error'] {
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; data?: unknown };
    const shape: Extract<ThreadOutcome, { ok: false }>['error'] = {
      name: e.name,
      message: e.message,
    };
    if (e.stack !== undefined) shape.stack = e.stack;
    if (e.code !== undefined) shape.code = e.code;
    if (e.data !== undefined) {
      try {
        shape.data = structuredClone(e.data);
      } catch {
        // data that cannot cross threads is left behind; code and message still do
      }
    }
    return shape;
  }
  return { name: 'Error', message: String(err) };
}

/** piscina calls this once per task; it never throws, so a failed task keeps its thread. */
export default async function runTask(input: unknown): Promise<unknown> {
  work ??= loadWork();
  let outcome: ThreadOutcome;
  try {
    const result = await (await work)(input);
    if (isMarked(result)) {
      const value: ThreadOutcome = { ok: true, value: result.value };
      return Piscina.move({
        [Piscina.transferableSymbol]: [...result[TRANSFER]],
        [Piscina.valueSymbol]: value,
      } as unknown as ArrayBuffer);
    }
    outcome = { ok: true, value: result };
  } catch (err) {
    outcome = { ok: false, error: errorShape(err) };
  }
  return outcome;
}

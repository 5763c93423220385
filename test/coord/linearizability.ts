// A linearizability checker for the Jepsen-style Raft tests: the Wing & Gong search with Lowe's
// memoization, as Porcupine implements it. A history is a list of operations with invocation and
// response times (Infinity when the outcome is unknown: the operation may or may not have taken
// effect); the checker searches for a total order that respects real time and the sequential model.

export interface Operation<I, O> {
  call: number;
  /** Infinity: no response seen (crash, timeout) — it may have happened at any time after `call`. */
  ret: number;
  input: I;
  /** Ignored by the model for operations with ret = Infinity. */
  output: O | undefined;
}

export interface Model<S, I, O> {
  init(): S;
  /** Applies `input` to `s`; ok false when `output` is impossible from `s`. `output` undefined: unknown. */
  step(s: S, input: I, output: O | undefined): { ok: boolean; next: S };
  /** A string identifying a state (for memoization). */
  key(s: S): string;
}

interface Ev {
  op: number;
  isCall: boolean;
  time: number;
  match: Ev | undefined; // call → its return
  prev: Ev | undefined;
  next: Ev | undefined;
}

/** True when some total order of `ops` is consistent with real time and `model`. */
export function isLinearizable<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): boolean {
  if (ops.length === 0) return true;
  const evs: Ev[] = [];
  ops.forEach((o, i) => {
    const call: Ev = {
      op: i,
      isCall: true,
      time: o.call,
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    const ret: Ev = {
      op: i,
      isCall: false,
      time: o.ret,
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    call.match = ret;
    evs.push(call, ret);
  });
  // Calls before returns at equal times: ties count as concurrent (the permissive reading).
  evs.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Ev = {
    op: -1,
    isCall: false,
    time: -1,
    match: undefined,
    prev: undefined,
    next: evs[0],
  };
  for (let i = 0; i < evs.length; i++) {
    evs[i]!.prev = i === 0 ? head : evs[i - 1];
    evs[i]!.next = evs[i + 1];
  }
  const lift = (call: Ev) => {
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const r = call.match!;
    r.prev!.next = r.next;
    if (r.next) r.next.prev = r.prev;
  };
  const unlift = (call: Ev) => {
    const r = call.match!;
    r.prev!.next = r;
    if (r.next) r.next.prev = r;
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };
  let state = model.init();
  let linearized = 0n;
  const cache = new Set<string>();
  const stack: Array<{ call: Ev; state: S }> = [];
  let entry = head.next;
  while (head.next !== undefined) {
    if (entry === undefined) return false;
    if (entry.isCall) {
      const o = ops[entry.op]!;
      const r = model.step(
        state,
        o.input,
        o.ret === Number.POSITIVE_INFINITY ? undefined : o.output,
      );
      if (r.ok) {
        const bits = linearized | (1n << BigInt(entry.op));
        const key = `${bits.toString(36)}|${model.key(r.next)}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ call: entry, state });
          state = r.next;
          linearized = bits;
          lift(entry);
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // A return whose call could not be linearized before it: backtrack.
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      linearized &= ~(1n << BigInt(top.call.op));
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return true;
}

// ---- the KV register model (one key; histories are checked per key) ----

export type KvInput =
  | { op: 'put'; value: string }
  | { op: 'get' }
  | { op: 'del' }
  | { op: 'cas'; expected: string | null; value: string };
export type KvOutput = { value: string | null } | { ok: boolean } | Record<string, never>;

export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,
  key: (s) => (s === null ? '\u0000' : s),
  step(s, input, output) {
    switch (input.op) {
      case 'put':
        return { ok: true, next: input.value };
      case 'del':
        return { ok: true, next: null };
      case 'get':
        return {
          ok: output === undefined || (output as { value: string | null }).value === s,
          next: s,
        };
      case 'cas': {
        const hit = s === input.expected;
        if (output !== undefined && (output as { ok: boolean }).ok !== hit)
          return { ok: false, next: s };
        return { ok: true, next: hit ? input.value : s };
      }
    }
  },
};

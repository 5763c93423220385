// Process identifiers. A Pid names one actor on one node: `{ node, id }`, printed like Erlang's
// `<node.42>`, serialisable as a plain object, so a pid received from another node is usable as is.

// The actor a pid was created for, reachable from the pid itself while that actor lives: a local
// send through the pid an actor got from spawn (or ctx.self) skips the id lookup. A private field,
// so it never shows: not in JSON, msgpackr, structuredClone, util.inspect or deep equality. A pid
// that crossed the wire or was built with `new Pid` has none, and is looked up by id.
let getActor: (p: Pid) => unknown;
let setActor: (p: Pid, actor: unknown) => void;

// The key of the type-only protocol slot below: declared, never created, so it costs nothing at
// runtime and no value can ever fill it.
declare const protocol: unique symbol;

/**
 * Carries an actor's protocol (what it accepts and answers, see `Protocol` in behaviour.ts) at
 * the type level only. A `Pid<P>` from `spawn` has it; so can a name: `{ name, node }` or
 * `{ global }` typed as `Typed<P>` (see `ActorRef`). Nothing is stored: it is always absent at
 * runtime, which is why a plain `{ name, node }` literal can be given this type without a cast.
 */
export interface Typed<P> {
  readonly [protocol]?: P;
}

/**
 * A process identifier. `P` is the actor's protocol when the pid came from a typed `spawn`
 * (`unknown` otherwise): `node.call(pid, msg)` then checks `msg` and types the reply. A typed pid
 * widens to `Pid` (untyped) wherever one is expected.
 */
export class Pid<P = unknown> implements Typed<P> {
  declare readonly [protocol]?: P;
  #actor: unknown = undefined;

  constructor(
    readonly node: string,
    readonly id: number,
  ) {}

  static {
    getActor = (p) => p.#actor;
    setActor = (p, actor) => {
      p.#actor = actor;
    };
  }

  toString(): string {
    return `<${this.node}.${this.id}>`;
  }

  toJSON(): { node: string; id: number } {
    return { node: this.node, id: this.id };
  }

  equals(other: PidLike): boolean {
    return other.node === this.node && other.id === this.id;
  }
}

/** Anything shaped like a pid (a Pid, or one that crossed the wire as a plain object). */
export interface PidLike {
  node: string;
  id: number;
}

export function isPid(v: unknown): v is PidLike {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as PidLike).node === 'string' &&
    Number.isInteger((v as PidLike).id)
  );
}

export function toPid(p: PidLike): Pid {
  return p instanceof Pid ? p : new Pid(p.node, p.id);
}

/** A string key for maps and sets. */
export function pidKey(p: PidLike): string {
  return `${p.node}\u0000${p.id}`;
}

/** Internal (runtime only): the live local actor bound to this very Pid object, if any. */
export function boundActor(p: Pid): unknown {
  return getActor(p);
}

/** Internal (runtime only): binds `p` to its actor at spawn, and unbinds it (undefined) at exit. */
export function bindActor(p: Pid, actor: unknown): void {
  setActor(p, actor);
}

// Process identifiers. A Pid names one actor on one node: `{ node, id }`, printed like Erlang's
// `<node.42>`, serialisable as a plain object, so a pid received from another node is usable as is.

export class Pid {
  constructor(
    readonly node: string,
    readonly id: number,
  ) {}

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

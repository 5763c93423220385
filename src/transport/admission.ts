// Admission of unauthenticated connections: a cap on how many may be pending (accepted, handshake
// not finished) in total and per source address, so one source cannot take every slot and lock
// everyone else out. The TCP transport takes a ticket per socket before reading a byte (before TLS
// too); the peer manager releases it when the Foundation handshake settles.

/** Most connections that may be pending (TCP accepted, handshake not finished) at once. */
export const DEFAULT_MAX_PENDING_CONNECTIONS = 256;
/** Most pending connections from one source address (an IPv6 source counts per /64). */
export const DEFAULT_MAX_PENDING_PER_SOURCE = 32;
/** How long a freshly accepted socket may stay silent before it is dropped, in ms. */
export const DEFAULT_FIRST_BYTE_TIMEOUT_MS = 2000;

export interface AdmissionLimits {
  /** Most pending connections in total. */
  maxPending: number;
  /** Most pending connections from one source (see `sourceKey`). */
  maxPendingPerSource: number;
}

/** A held admission slot. `release` is idempotent: call it on every way out. */
export interface AdmissionTicket {
  readonly source: string;
  release(): void;
}

/** Why a connection was refused, for the (throttled) log line. */
export interface Refusal {
  source: string;
  limit: 'total' | 'source';
  pending: number;
  pendingFromSource: number;
}

/**
 * The key per-source limits count by: an IPv4 address as is (an IPv4-mapped IPv6 address as its
 * IPv4 form), an IPv6 address by its /64 prefix (one host usually owns a whole /64, so counting
 * single IPv6 addresses would limit nothing), anything else (an in-memory address) as given.
 */
export function sourceKey(address: string): string {
  const a = address.toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  if (mapped) return mapped[1]!;
  if (!a.includes(':') || a.includes('.') || /[^0-9a-f:%]/.test(a)) return address;
  const bare = a.split('%')[0]!;
  const [head = '', tail = ''] = bare.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = bare.includes('::')
    ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
    : h;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g || '0', 16).toString(16))
    .join(':')}::/64`;
}

export class Admission {
  private total = 0;
  private readonly bySource = new Map<string, number>();
  /** Connections refused so far (for tests and stats). */
  refused = 0;

  /** @param onRefused told about every refusal; must not block (throttle logging there). */
  constructor(
    readonly limits: AdmissionLimits,
    private readonly onRefused: (r: Refusal) => void = () => {},
  ) {}

  /** Connections pending now, in total. */
  get pending(): number {
    return this.total;
  }

  /** Connections pending now from the source of `address`. */
  pendingFrom(address: string): number {
    return this.bySource.get(sourceKey(address)) ?? 0;
  }

  /** Takes a slot for a connection from `address`, or returns undefined when a limit is reached. */
  admit(address: string): AdmissionTicket | undefined {
    const source = sourceKey(address);
    const fromSource = this.bySource.get(source) ?? 0;
    const limit =
      fromSource >= this.limits.maxPendingPerSource
        ? 'source'
        : this.total >= this.limits.maxPending
          ? 'total'
          : undefined;
    if (limit) {
      this.refused++;
      this.onRefused({ source, limit, pending: this.total, pendingFromSource: fromSource });
      return undefined;
    }
    this.total++;
    this.bySource.set(source, fromSource + 1);
    let held = true;
    return {
      source,
      release: () => {
        if (!held) return;
        held = false;
        this.total--;
        const n = (this.bySource.get(source) ?? 1) - 1;
        if (n > 0) this.bySource.set(source, n);
        else this.bySource.delete(source);
      },
    };
  }
}

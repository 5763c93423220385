// SWIM membership with Lifeguard's refinements, over the control channel of a full mesh:
// round-robin probes, indirect probes through k members (with nacks), suspicion that the suspect
// refutes with a higher incarnation, suspicion timeouts that shrink with independent
// confirmations, a local-health score that slows this node's verdicts when it is itself unwell,
// and timer-lateness checks so a node whose event loop stalled never condemns others.
// Changes are pushed to every member at once (TCP, full mesh) and repaired by periodic push-pull.

import type { Identity } from '../transport/handshake.js';
import type { PeerHello } from '../transport/link.js';
import { MSG } from '../transport/protocol.js';
import { type Address, formatAddress } from '../transport/types.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { MembershipTiming } from './presets.js';

export type MemberStatus = 'alive' | 'suspect' | 'down' | 'left';

/** A member as the public API shows it. */
export interface Member {
  name: string;
  /** `host:port` other nodes dial. */
  address: string;
  status: MemberStatus;
  incarnation: number;
  self?: true;
}

export interface ChangeInfo {
  /** Status before this change (undefined for a member seen for the first time). */
  previous: MemberStatus | undefined;
  /** Why: 'join', 'rejoin', 'refuted', 'probe-failed', 'suspected', 'suspicion-timeout', 'declared-down', 'leave', 'sync'. */
  reason: string;
  /** The node whose message caused the change, when it was not this node. */
  by?: string;
  /** The cluster this change happened in (set by the node; useful when a node is in several). */
  cluster?: string;
}

/** What membership needs from the layers below; injected so it runs on any transport. */
export interface MembershipIO {
  /** Sends a control message to a peer; must not throw. */
  send(name: string, msg: unknown[]): void;
  /** Dials an address and authenticates; resolves with who answered. */
  join(address: Address): Promise<PeerHello>;
  /** Records a member's address so it can be dialled. */
  learn(name: string, address: Address, incarnation: number): void;
  /** Keep (or stop keeping) the control connection open. */
  keepAlive(name: string, on: boolean): void;
  /** Drop connections to a down member, remembering its address. */
  disconnect(name: string): void;
  /** Forget a member that left or was reaped. */
  remove(name: string): void;
}

/** Incarnations and ports from the wire: only values that cannot poison comparisons. */
const incOk = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const portOk = (v: unknown): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;

const RANK: Record<MemberStatus, number> = { alive: 0, suspect: 1, down: 2, left: 3 };
const STATUS_CODE: MemberStatus[] = ['alive', 'suspect', 'down', 'left'];

interface Suspicion {
  startedAt: number;
  confirmations: Set<string>;
  timer: TimerHandle | undefined;
  rearmed: boolean;
}

interface State {
  name: string;
  address: Address;
  status: MemberStatus;
  incarnation: number;
  since: number;
  suspicion: Suspicion | undefined;
  /** Discovery stopped listing it: forget it once it is down. */
  unlisted?: boolean;
}

interface Probe {
  seq: number;
  target: string;
  timer: TimerHandle | undefined;
  nacks: number;
  expectedNacks: number;
  done: (acked: boolean) => void;
}

interface Relay {
  origin: string;
  originSeq: number;
  timer: TimerHandle;
}

export class Membership {
  private readonly members = new Map<string, State>();
  private incarnation: number;
  private awareness = 0;
  private seq = 0;
  private readonly probes = new Map<number, Probe>();
  private readonly relays = new Map<number, Relay>();
  private probeOrder: string[] = [];
  private probeIndex = 0;
  private roundTimer: TimerHandle | undefined;
  private readonly timers: TimerHandle[] = [];
  private readonly joining = new Set<string>();
  private readonly lastHint = new Map<string, number>();
  private running = false;
  private left = false;

  constructor(
    private readonly self: Identity,
    private readonly timing: MembershipTiming,
    private readonly io: MembershipIO,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly onChange: (member: Member, info: ChangeInfo) => void,
    private readonly random: () => number = Math.random,
  ) {
    this.incarnation = self.incarnation;
  }

  get selfIncarnation(): number {
    return this.incarnation;
  }

  /** Local health score (Lifeguard): 0 is healthy; probe timeouts scale with 1 + score. */
  get health(): number {
    return this.awareness;
  }

  start(): void {
    this.running = true;
    this.scheduleRound(this.timing.probeIntervalMs * this.random());
    this.timers.push(this.clock.setInterval(() => this.syncRandom(), this.timing.syncIntervalMs));
    this.timers.push(
      this.clock.setInterval(() => this.reconnectDown(), this.timing.reconnectIntervalMs),
    );
    this.timers.push(
      this.clock.setInterval(() => this.reap(), Math.max(1000, this.timing.downRetentionMs / 10)),
    );
  }

  /** Every member including this node, sorted by name. */
  list(): Member[] {
    const out: Member[] = [
      {
        name: this.self.name,
        address: formatAddress(this.self.address),
        status: this.left ? 'left' : 'alive',
        incarnation: this.incarnation,
        self: true,
      },
    ];
    for (const m of this.members.values()) out.push(this.view(m));
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  status(name: string): MemberStatus | undefined {
    if (name === this.self.name) return this.left ? 'left' : 'alive';
    return this.members.get(name)?.status;
  }

  /** Alive or suspect members other than this node: the ones we talk to. */
  private live(): State[] {
    return [...this.members.values()].filter((m) => m.status === 'alive' || m.status === 'suspect');
  }

  private view(m: State): Member {
    return {
      name: m.name,
      address: formatAddress(m.address),
      status: m.status,
      incarnation: m.incarnation,
    };
  }

  /** Joins the cluster through whichever node listens at `address`. */
  async join(address: Address): Promise<string | undefined> {
    const key = formatAddress(address);
    if (!this.running || this.left || this.joining.has(key)) return undefined;
    if (key === formatAddress(this.self.address)) return undefined;
    this.joining.add(key);
    try {
      const hello = await this.io.join(address);
      const m = this.members.get(hello.name);
      if (m?.status !== 'alive') this.io.send(hello.name, [MSG.SYNC, this.snapshot()]);
      return hello.name;
    } finally {
      this.joining.delete(key);
    }
  }

  /** Graceful leave: tells every member, then stops probing. */
  leave(): void {
    if (this.left) return;
    this.left = true;
    this.broadcast([MSG.LEAVE, this.self.name, this.incarnation]);
    this.stop();
  }

  stop(): void {
    this.running = false;
    this.roundTimer?.cancel();
    for (const t of this.timers) t.cancel();
    this.timers.length = 0;
    for (const p of this.probes.values()) p.timer?.cancel();
    this.probes.clear();
    for (const r of this.relays.values()) r.timer.cancel();
    this.relays.clear();
    for (const m of this.members.values()) m.suspicion?.timer?.cancel();
  }

  /**
   * Whether a node that just authenticated may use `name`: refused when a live member already has
   * that name at another address (a second process with the same name).
   */
  acceptPeer(name: string, address: Address, incarnation: number): boolean {
    const m = this.members.get(name);
    if (!m || m.status === 'down' || m.status === 'left') return true;
    return formatAddress(m.address) === formatAddress(address) || incarnation === m.incarnation;
  }

  /** A connection to or from `name` dropped: probe it now rather than at its turn. */
  hint(name: string): void {
    const m = this.members.get(name);
    if (!this.running || !m || (m.status !== 'alive' && m.status !== 'suspect')) return;
    const now = this.clock.now();
    if ((this.lastHint.get(name) ?? -Infinity) > now - this.timing.probeIntervalMs) return;
    this.lastHint.set(name, now);
    for (const p of this.probes.values()) if (p.target === name) return;
    this.probe(name, () => {});
  }

  // ---- probing ----

  private scale(ms: number): number {
    return ms * (1 + this.awareness);
  }

  private adjustAwareness(delta: number): void {
    this.awareness = Math.max(0, Math.min(this.timing.awarenessMax, this.awareness + delta));
  }

  private scheduleRound(delay: number): void {
    if (!this.running) return;
    this.roundTimer = this.clock.setTimeout(() => this.round(), delay);
  }

  private nextTarget(): string | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (this.probeIndex < this.probeOrder.length) {
        const name = this.probeOrder[this.probeIndex++]!;
        const m = this.members.get(name);
        if (m && (m.status === 'alive' || m.status === 'suspect')) return name;
      }
      // A new shuffled pass (SWIM's round-robin with random order bounds time-to-first-probe).
      this.probeOrder = this.live().map((m) => m.name);
      for (let i = this.probeOrder.length - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1));
        [this.probeOrder[i], this.probeOrder[j]] = [this.probeOrder[j]!, this.probeOrder[i]!];
      }
      this.probeIndex = 0;
    }
    return undefined;
  }

  private round(): void {
    if (!this.running) return;
    const started = this.clock.now();
    const interval = this.scale(this.timing.probeIntervalMs);
    const target = this.nextTarget();
    if (!target) {
      this.scheduleRound(interval);
      return;
    }
    this.probe(target, () =>
      this.scheduleRound(Math.max(0, started + interval - this.clock.now())),
    );
  }

  /** Lateness-checked timer: `fn(late)` learns whether the loop stalled past the tolerance. */
  private after(ms: number, fn: (late: boolean) => void): TimerHandle {
    const due = this.clock.now() + ms;
    return this.clock.setTimeout(() => fn(this.clock.now() - due > this.timing.lagToleranceMs), ms);
  }

  private probe(target: string, finished: () => void): void {
    const seq = ++this.seq;
    const timeout = this.scale(this.timing.probeTimeoutMs);
    const indirectWindow = this.scale(
      Math.max(
        this.timing.probeIntervalMs - this.timing.probeTimeoutMs,
        this.timing.probeTimeoutMs,
      ),
    );
    const p: Probe = {
      seq,
      target,
      timer: undefined,
      nacks: 0,
      expectedNacks: 0,
      done: (acked) => {
        p.timer?.cancel();
        this.probes.delete(seq);
        if (acked) this.adjustAwareness(-1);
        finished();
      },
    };
    this.probes.set(seq, p);
    // Lifeguard's buddy system: tell a suspect it is suspected, so it can refute at once.
    const t = this.members.get(target);
    if (t?.status === 'suspect')
      this.io.send(target, [MSG.SUSPECT, target, t.incarnation, this.self.name]);
    this.io.send(target, [MSG.PING, seq, target]);
    p.timer = this.after(timeout, (late) => {
      if (late) {
        // Our own loop stalled: the ack may be sitting unread in a socket. Not a verdict.
        this.adjustAwareness(1);
        return p.done(false);
      }
      const helpers = this.pickRandom(
        this.live().filter((m) => m.name !== target && m.status === 'alive'),
        this.timing.indirectChecks,
      );
      for (const h of helpers) this.io.send(h.name, [MSG.PING_REQ, seq, target]);
      p.expectedNacks = helpers.length;
      p.timer = this.after(indirectWindow, (late2) => {
        if (late2) {
          this.adjustAwareness(1);
          return p.done(false);
        }
        // Lifeguard: helpers that did not even nack suggest the problem is on our side.
        if (p.expectedNacks > 0 && p.nacks < p.expectedNacks) this.adjustAwareness(1);
        const m = this.members.get(target);
        // Suspect it, or confirm an existing suspicion independently (Lifeguard: each
        // independent confirmation shortens the suspicion timeout).
        const confirms = m?.status === 'suspect' && !m.suspicion?.confirmations.has(this.self.name);
        if (m && (m.status === 'alive' || confirms)) {
          this.log.debug({ member: target }, 'probe failed; suspecting');
          this.suspect(m, m.incarnation, this.self.name, 'probe-failed');
          this.broadcast([MSG.SUSPECT, m.name, m.incarnation, this.self.name]);
        }
        p.done(false);
      });
    });
  }

  private pickRandom<T>(items: T[], k: number): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a.slice(0, k);
  }

  // ---- state changes ----

  private emit(m: State, previous: MemberStatus | undefined, reason: string, by?: string): void {
    const info: ChangeInfo = { previous, reason };
    if (by !== undefined && by !== this.self.name) info.by = by;
    this.onChange(this.view(m), info);
  }

  private suspicionTimeout(s: Suspicion): number {
    const { suspicionMinMs: min, suspicionMaxMs: max } = this.timing;
    const k = Math.max(1, Math.min(this.timing.indirectChecks, this.live().length - 1));
    const c = s.confirmations.size - 1;
    const frac = Math.log(c + 1) / Math.log(k + 1);
    return Math.max(min, max - (max - min) * Math.min(1, frac));
  }

  private armSuspicion(m: State): void {
    const s = m.suspicion;
    if (!s || !this.running) return;
    s.timer?.cancel();
    const remaining = s.startedAt + this.suspicionTimeout(s) - this.clock.now();
    s.timer = this.after(Math.max(0, remaining), (late) => {
      if (m.status !== 'suspect' || m.suspicion !== s) return;
      if (late && !s.rearmed) {
        // We were stalled; a refutation may be unread. Give I/O a probe-timeout to catch up.
        s.rearmed = true;
        s.startedAt = this.clock.now() - this.suspicionTimeout(s) + this.timing.probeTimeoutMs;
        this.adjustAwareness(1);
        return this.armSuspicion(m);
      }
      this.markDown(m, m.incarnation, this.self.name, 'suspicion-timeout');
      this.broadcast([MSG.DOWN, m.name, m.incarnation, this.self.name]);
    });
  }

  private suspect(m: State, inc: number, by: string, reason: string): void {
    if (m.status === 'suspect' && inc === m.incarnation && m.suspicion) {
      if (!m.suspicion.confirmations.has(by)) {
        m.suspicion.confirmations.add(by);
        this.armSuspicion(m);
      }
      return;
    }
    const prev = m.status;
    m.suspicion?.timer?.cancel();
    m.status = 'suspect';
    m.incarnation = inc;
    m.since = this.clock.now();
    m.suspicion = {
      startedAt: this.clock.now(),
      confirmations: new Set([by]),
      timer: undefined,
      rearmed: false,
    };
    this.armSuspicion(m);
    // Tell the suspect itself, whoever we heard it from: a rumour that reached us through a third
    // node's sync might not have reached it, and only it can refute.
    this.io.send(m.name, [MSG.SUSPECT, m.name, inc, by]);
    this.emit(m, prev, reason, by);
  }

  private markAlive(m: State, inc: number, address: Address, reason: string, by?: string): void {
    const prev = m.status;
    m.suspicion?.timer?.cancel();
    m.suspicion = undefined;
    m.incarnation = inc;
    m.address = address;
    m.status = 'alive';
    if (prev === 'down' || prev === 'left') m.unlisted = false;
    m.since = this.clock.now();
    this.io.learn(m.name, address, inc);
    this.io.keepAlive(m.name, true);
    if (prev !== 'alive') this.emit(m, prev, reason, by);
  }

  private markDown(m: State, inc: number, by: string, reason: string): void {
    const prev = m.status;
    m.suspicion?.timer?.cancel();
    m.suspicion = undefined;
    m.status = 'down';
    m.incarnation = inc;
    m.since = this.clock.now();
    this.io.disconnect(m.name);
    this.emit(m, prev, reason, by);
    if (m.unlisted) {
      this.members.delete(m.name);
      this.io.remove(m.name);
    }
  }

  private markLeft(m: State, inc: number, by: string): void {
    const prev = m.status;
    m.suspicion?.timer?.cancel();
    m.suspicion = undefined;
    m.status = 'left';
    m.incarnation = inc;
    m.since = this.clock.now();
    this.io.remove(m.name);
    this.emit(m, prev, 'leave', by);
  }

  /** Someone says we are suspect/down/left: outlive the rumour with a higher incarnation. */
  private refute(inc: number, teller: string | undefined): void {
    if (this.left) return;
    this.incarnation = Math.max(this.incarnation, inc) + 1;
    this.adjustAwareness(1);
    const msg = [
      MSG.ALIVE,
      this.self.name,
      this.incarnation,
      this.self.address.host,
      this.self.address.port,
    ];
    this.broadcast(msg);
    if (teller && !this.live().some((m) => m.name === teller)) this.io.send(teller, msg);
  }

  /** Applies one piece of news about `name`, whoever it came from. Returns true if it changed state. */
  private apply(
    name: string,
    inc: number,
    status: MemberStatus,
    address: Address | undefined,
    by: string,
    reason: string,
  ): boolean {
    if (name === this.self.name) {
      if (status !== 'alive' ? inc >= this.incarnation : inc > this.incarnation)
        this.refute(inc, by);
      return false;
    }
    let m = this.members.get(name);
    if (!m) {
      if ((status !== 'alive' && status !== 'suspect') || !address) return false;
      m = {
        name,
        address,
        status: 'alive',
        incarnation: inc,
        since: this.clock.now(),
        suspicion: undefined,
      };
      this.members.set(name, m);
      this.io.learn(name, address, inc);
      this.io.keepAlive(name, true);
      this.emit(m, undefined, 'join', by);
      // First-hand news of a new member (from the member itself) is passed on: faster formation.
      if (by === name) this.broadcast([MSG.ALIVE, name, inc, address.host, address.port], by);
      if (status === 'suspect') this.suspect(m, inc, by, reason);
      return true;
    }
    const newer = inc > m.incarnation;
    const stronger = inc === m.incarnation && RANK[status] > RANK[m.status];
    if (status === 'suspect' && m.status === 'suspect' && inc === m.incarnation) {
      // Another node independently suspects it: a confirmation (shortens the timeout).
      this.suspect(m, inc, by, reason);
      return false;
    }
    if (!newer && !stronger) return false;
    switch (status) {
      case 'alive': {
        const wasGone = m.status === 'down' || m.status === 'left';
        this.markAlive(m, inc, address ?? m.address, wasGone ? 'rejoin' : 'refuted', by);
        if (wasGone && by === name)
          this.broadcast([MSG.ALIVE, name, inc, m.address.host, m.address.port], by);
        return true;
      }
      case 'suspect':
        this.suspect(m, inc, by, reason);
        return true;
      case 'down':
        this.markDown(m, inc, by, reason);
        return true;
      case 'left':
        this.markLeft(m, inc, by);
        return true;
    }
  }

  private snapshot(): unknown[] {
    const out: unknown[] = [
      [this.self.name, this.incarnation, 0, this.self.address.host, this.self.address.port],
    ];
    for (const m of this.members.values()) {
      out.push([m.name, m.incarnation, RANK[m.status], m.address.host, m.address.port]);
    }
    return out;
  }

  private merge(entries: unknown, from: string): void {
    if (!Array.isArray(entries)) return;
    for (const e of entries.slice(0, 10_000)) {
      if (!Array.isArray(e)) continue;
      const [name, inc, code, host, port] = e;
      const status = Number.isInteger(code) ? STATUS_CODE[code as number] : undefined;
      if (typeof name !== 'string' || !incOk(inc) || !status) continue;
      const address = typeof host === 'string' && portOk(port) ? { host, port } : undefined;
      this.apply(name, inc, status, address, from, 'sync');
    }
  }

  private broadcast(msg: unknown[], except?: string): void {
    for (const m of this.live()) if (m.name !== except) this.io.send(m.name, msg);
  }

  private syncRandom(): void {
    const [m] = this.pickRandom(this.live(), 1);
    if (m) this.io.send(m.name, [MSG.SYNC, this.snapshot()]);
  }

  private reconnectDown(): void {
    const down = [...this.members.values()].filter((m) => m.status === 'down');
    const [m] = this.pickRandom(down, 1);
    if (m) this.join(m.address).catch(() => {});
  }

  /**
   * Discovery no longer lists `address`: forget a down/left member there now; probe an alive one
   * at once (liveness is membership's call, not discovery's).
   */
  forget(address: Address): void {
    const key = formatAddress(address);
    for (const m of [...this.members.values()]) {
      if (formatAddress(m.address) !== key) continue;
      if (m.status === 'down' || m.status === 'left') {
        this.members.delete(m.name);
        this.io.remove(m.name);
      } else {
        // Still alive or suspect: probe now; if it is then declared down it is dropped at once
        // instead of being re-dialled for downRetentionMs.
        m.unlisted = true;
        this.hint(m.name);
      }
    }
  }

  private reap(): void {
    const cutoff = this.clock.now() - this.timing.downRetentionMs;
    for (const m of [...this.members.values()]) {
      if ((m.status === 'down' || m.status === 'left') && m.since < cutoff) {
        this.members.delete(m.name);
        this.lastHint.delete(m.name);
        this.io.remove(m.name);
      }
    }
  }

  // ---- inbound ----

  /** Handles one control message from an authenticated peer. Never throws on bad input. */
  handle(from: PeerHello, msg: unknown[]): void {
    if (!this.running) return;
    const [type, a, b, c, d] = msg;
    switch (type) {
      case MSG.PING:
        // An ack only if the ping is for us (not for a previous owner of this address).
        if (typeof a === 'number' && b === this.self.name) this.io.send(from.name, [MSG.ACK, a]);
        return;
      case MSG.ACK: {
        if (typeof a !== 'number') return;
        const relay = this.relays.get(a);
        if (relay) {
          relay.timer.cancel();
          this.relays.delete(a);
          this.io.send(relay.origin, [MSG.ACK, relay.originSeq]);
          return;
        }
        this.probes.get(a)?.done(true);
        return;
      }
      case MSG.NACK: {
        const p = typeof a === 'number' ? this.probes.get(a) : undefined;
        if (p) p.nacks++;
        return;
      }
      case MSG.PING_REQ: {
        if (typeof a !== 'number' || typeof b !== 'string' || !this.members.has(b)) return;
        const seq = ++this.seq;
        const timer = this.clock.setTimeout(() => {
          this.relays.delete(seq);
          this.io.send(from.name, [MSG.NACK, a]);
        }, this.timing.probeTimeoutMs * 0.8);
        this.relays.set(seq, { origin: from.name, originSeq: a, timer });
        this.io.send(b, [MSG.PING, seq, b]);
        return;
      }
      case MSG.ALIVE:
        if (typeof a === 'string' && incOk(b) && typeof c === 'string' && portOk(d)) {
          this.apply(a, b, 'alive', { host: c, port: d }, from.name, 'gossip');
        }
        return;
      case MSG.SUSPECT:
        if (typeof a === 'string' && incOk(b)) {
          this.apply(
            a,
            b,
            'suspect',
            undefined,
            typeof c === 'string' ? c : from.name,
            'suspected',
          );
        }
        return;
      case MSG.DOWN:
        if (typeof a === 'string' && incOk(b)) {
          this.apply(
            a,
            b,
            'down',
            undefined,
            typeof c === 'string' ? c : from.name,
            'declared-down',
          );
        }
        return;
      case MSG.LEAVE:
        if (typeof a === 'string' && incOk(b))
          this.apply(a, b, 'left', undefined, from.name, 'leave');
        return;
      case MSG.SYNC:
        this.merge(a, from.name);
        this.io.send(from.name, [MSG.SYNC_REPLY, this.snapshot()]);
        return;
      case MSG.SYNC_REPLY:
        this.merge(a, from.name);
        return;
    }
  }
}

// SWIM membership with Lifeguard's refinements, over the control channel of a full mesh:
// round-robin probes, indirect probes through k members (with nacks), suspicion that the suspect
// refutes with a higher incarnation, suspicion timeouts that shrink with independent
// confirmations, a local-health score that slows this node's verdicts when it is itself unwell,
// and timer-lateness checks so a node whose event loop stalled never condemns others.
// Changes are pushed to every member at once (TCP, full mesh) and repaired by periodic push-pull.
// Membership is the one owner of the member table, and the trust boundary between members: only
// a member raises its own incarnation, a member enters the table only once it has spoken to this
// node itself, and what hearsay may make this node dial is capped (docs/membership.md, "Trust").

import { FoundationError } from '../errors.js';
import type { Identity } from '../transport/handshake.js';
import type { PeerHello } from '../transport/link.js';
import { type Address, formatAddress } from '../transport/types.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { MembershipTiming } from './presets.js';
import {
  decodeMembership,
  encodeMembership,
  type MemberStatus,
  type MembershipMessage,
  type SyncEntry,
} from './wire.js';

export type { MemberStatus } from './wire.js';

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
  /**
   * Dials an address and authenticates; resolves with who answered. The node that answered is
   * reported to `Membership.dialled` before this resolves.
   */
  join(address: Address): Promise<PeerHello>;
  /** Hands the connection pool a member's address (the only way the pool learns of peers). */
  learn(name: string, address: Address, incarnation: number): void;
  /** Keep (or stop keeping) the control connection open. */
  keepAlive(name: string, on: boolean): void;
  /** Drop connections to a down member, remembering its address. */
  disconnect(name: string): void;
  /** Forget a member that left or was reaped. */
  remove(name: string): void;
}

/** Caps on what one member's messages can make this node learn and dial. */
export interface MembershipLimits {
  /** Most unknown members one message (SYNC, ALIVE) may make this node dial. */
  learnPerMessage: number;
  /** Most dials to not-yet-members in flight at once (hearsay and discovery joins together). */
  pendingMembers: number;
}

/**
 * 16 per message: a member joining a large cluster still meets everyone at once, because every
 * member dials the newcomer when its seed announces it; only the newcomer's own dials are capped.
 */
export const DEFAULT_LEARN_PER_MESSAGE = 16;
/** 64 dials to unknown addresses in flight: discovery of a 64-node cluster in one pass. */
export const DEFAULT_PENDING_MEMBERS = 64;

export const DEFAULT_MEMBERSHIP_LIMITS: Readonly<MembershipLimits> = Object.freeze({
  learnPerMessage: DEFAULT_LEARN_PER_MESSAGE,
  pendingMembers: DEFAULT_PENDING_MEMBERS,
});

/**
 * Incarnations start at the wall-clock time in ms and grow by one per refutation, so a genuine
 * one is never far ahead of the receiver's wall clock. One more than 2^40 ms (~35 years: any clock
 * skew and ~10^12 refutations) ahead is refused, so nothing can approach 2^53 (where +1 stops
 * being exact) and a refutation is always possible.
 */
export const INCARNATION_LEAD_MS = 2 ** 40;
/**
 * A claim about this node at an incarnation above its own is refuted by jumping past it (a
 * restarted node meeting its previous life's incarnation), but only up to 2^32 ms (~50 days) ahead
 * of its wall clock: far inside every peer's INCARNATION_LEAD_MS, so no message can push this
 * node's incarnation to where peers would refuse it.
 */
export const SELF_INCARNATION_LEAD_MS = 2 ** 32;
/** Most indirect probes this node relays for others at once (PING_REQ); more are ignored. */
export const MAX_RELAYS = 1024;

const RANK: Record<MemberStatus, number> = { alive: 0, suspect: 1, down: 2, left: 3 };

interface Suspicion {
  startedAt: number;
  /**
   * Members whose own suspicion this node counted: the first suspecter and each independent
   * confirmer (per authenticated sender). Empty for a suspicion that came from a push-pull view,
   * which is never counted: it may be this node's own suspicion coming back.
   */
  confirmations: Set<string>;
  timer: TimerHandle | undefined;
  rearmed: boolean;
}

interface State {
  name: string;
  address: Address;
  status: MemberStatus;
  /** The highest incarnation this member announced itself (only the member raises it). */
  incarnation: number;
  since: number;
  suspicion: Suspicion | undefined;
  /** Discovery stopped listing it: forget it once it is down. */
  unlisted?: boolean;
}

interface Probe {
  seq: number;
  target: string;
  /** Members asked to probe the target: only they (and the target) may answer for it. */
  helpers: Set<string>;
  timer: TimerHandle | undefined;
  /** Helpers that answered NACK (they reached us, not the target). */
  nacked: Set<string>;
  /** A round-robin probe (only those move local health on their outcome, as in memberlist). */
  rotation: boolean;
  done: (acked: boolean) => void;
}

interface Relay {
  origin: string;
  originSeq: number;
  target: string;
  timer: TimerHandle;
}

/** One piece of news about a member. `teller` is the authenticated node it came from. */
interface News {
  name: string;
  inc: number;
  status: MemberStatus;
  address: Address | undefined;
  teller: string;
  reason: string;
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
  /** Addresses being dialled for a node that is not (yet) a member: discovery joins and hearsay. */
  private readonly joining = new Set<string>();
  private readonly lastHint = new Map<string, number>();
  /** When each down/left member that spoke to us was last told so (so it refutes at once). */
  private readonly lastNudge = new Map<string, number>();
  /** When each member that held a stale verdict about this node was last told our incarnation. */
  private readonly lastCorrection = new Map<string, number>();
  /** Re-dials of down members waiting for their address's backoff to end (one per member). */
  private readonly redials = new Map<string, TimerHandle>();
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
    private readonly limits: MembershipLimits = DEFAULT_MEMBERSHIP_LIMITS,
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

  /** Dials in flight to addresses of nodes that are not members yet (at most `pendingMembers`). */
  get pendingDials(): number {
    return this.joining.size;
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

  private tell(name: string, msg: MembershipMessage): void {
    this.io.send(name, encodeMembership(msg));
  }

  /**
   * Joins the cluster through whichever node listens at `address` (discovery, `node.join`,
   * re-dialling a down member), then exchanges views with it. Resolves undefined when there is
   * nothing to do (this node's own address, or a dial to that address is already under way).
   * Rejects with FND_ERR_DIAL_RATE_LIMITED (`reason: 'pending'`) while `pendingMembers` dials to
   * non-members are in flight, or with the dial's own error.
   */
  async join(address: Address): Promise<string | undefined> {
    const key = formatAddress(address);
    const aliveThere = new Set(
      [...this.members.values()]
        .filter((m) => m.status === 'alive' && formatAddress(m.address) === key)
        .map((m) => m.name),
    );
    const hello = await this.dial(address);
    // A node this node did not already see alive there gets our view, and answers with its own.
    if (hello && !aliveThere.has(hello.name) && this.members.has(hello.name))
      this.tell(hello.name, { type: 'sync', entries: this.snapshot() });
    return hello?.name;
  }

  /** One bounded dial to an address: the answering node is met first-hand (see `dialled`). */
  private async dial(address: Address): Promise<PeerHello | undefined> {
    const key = formatAddress(address);
    if (!this.running || this.left || this.joining.has(key)) return undefined;
    if (key === formatAddress(this.self.address)) return undefined;
    if (this.joining.size >= this.limits.pendingMembers) {
      throw new FoundationError(
        'FND_ERR_DIAL_RATE_LIMITED',
        `not dialling ${key}: ${this.joining.size} dials to non-members already in flight`,
        { address: key, reason: 'pending', retryInMs: this.timing.probeIntervalMs },
      );
    }
    this.joining.add(key);
    try {
      return await this.io.join(address);
    } finally {
      this.joining.delete(key);
    }
  }

  /**
   * Hearsay says `name` is alive at `address` at an incarnation this node has not heard from it:
   * dial it to hear it first-hand (the dial's hello is what counts). Returns whether a dial started.
   */
  private verify(name: string, address: Address): boolean {
    const key = formatAddress(address);
    if (this.joining.has(key) || this.joining.size >= this.limits.pendingMembers) return false;
    if (!this.running || this.left || key === formatAddress(this.self.address)) return false;
    this.dial(address).catch((err: Error) =>
      this.log.debug({ member: name, address: key, err: err.message }, 'member not verified'),
    );
    return true;
  }

  /** Graceful leave: tells every member, then stops probing. */
  leave(): void {
    if (this.left) return;
    this.left = true;
    this.broadcast({ type: 'leave', name: this.self.name, incarnation: this.incarnation });
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
    for (const t of this.redials.values()) t.cancel();
    this.redials.clear();
  }

  /** Largest incarnation of another node this node accepts now (see INCARNATION_LEAD_MS). */
  private maxIncarnation(): number {
    return Math.floor(this.clock.wallNow()) + INCARNATION_LEAD_MS;
  }

  /**
   * A node that just authenticated on an inbound connection (any channel): refused when a live
   * member already has that name at another address with another incarnation (a second process
   * with the same name), or when its incarnation is out of range. Otherwise this is first-hand
   * news of it (a member only ever enters the table this way or by `dialled`).
   */
  acceptPeer(
    name: string,
    address: Address,
    incarnation: number,
  ):
    | { code: 'FND_ERR_HANDSHAKE_DUPLICATE_NAME' | 'FND_ERR_INCARNATION_RANGE'; message: string }
    | undefined {
    if (incarnation > this.maxIncarnation()) {
      return {
        code: 'FND_ERR_INCARNATION_RANGE',
        message: `node ${name} announced incarnation ${incarnation}, more than ${INCARNATION_LEAD_MS} ms ahead of this node's clock`,
      };
    }
    const m = this.members.get(name);
    if (
      m &&
      (m.status === 'alive' || m.status === 'suspect') &&
      formatAddress(m.address) !== formatAddress(address) &&
      incarnation !== m.incarnation
    ) {
      return {
        code: 'FND_ERR_HANDSHAKE_DUPLICATE_NAME',
        message: `node name "${name}" is already used by a live member at another address`,
      };
    }
    this.contact(name, incarnation, address);
    return undefined;
  }

  /** A dial this node made was answered and authenticated by `hello.name`: first-hand news of it. */
  dialled(hello: PeerHello): void {
    if (hello.incarnation > this.maxIncarnation()) {
      this.log.warn(
        { peer: hello.name, incarnation: hello.incarnation, code: 'FND_ERR_INCARNATION_RANGE' },
        'dialled node announced an out-of-range incarnation; not a member',
      );
      return;
    }
    if (!hello.address.host || hello.address.port < 1) return;
    this.contact(hello.name, hello.incarnation, hello.address);
  }

  /**
   * `name` itself, on an authenticated connection, says it is alive at `inc` (see `apply`: the
   * pool is handed its address, which also adopts a control link that PeerManager.join offers).
   */
  private contact(name: string, inc: number, address: Address): void {
    if (!this.running || this.left || name === this.self.name) return;
    this.apply({ name, inc, status: 'alive', address, teller: name, reason: 'join' }, undefined);
  }

  /** A connection to or from `name` dropped: probe it now rather than at its turn. */
  hint(name: string): void {
    const m = this.members.get(name);
    if (!this.running || !m || (m.status !== 'alive' && m.status !== 'suspect')) return;
    if (!this.oncePerInterval(this.lastHint, name)) return;
    for (const p of this.probes.values()) if (p.target === name) return;
    this.probe(name, () => {}, false);
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
    this.probe(
      target,
      () => this.scheduleRound(Math.max(0, started + interval - this.clock.now())),
      true,
    );
  }

  /** Lateness-checked timer: `fn(late)` learns whether the loop stalled past the tolerance. */
  private after(ms: number, fn: (late: boolean) => void): TimerHandle {
    const due = this.clock.now() + ms;
    return this.clock.setTimeout(() => fn(this.clock.now() - due > this.timing.lagToleranceMs), ms);
  }

  private probe(target: string, finished: () => void, rotation: boolean): void {
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
      helpers: new Set(),
      timer: undefined,
      nacked: new Set(),
      rotation,
      done: (acked) => {
        p.timer?.cancel();
        this.probes.delete(seq);
        if (acked && rotation) this.adjustAwareness(-1);
        finished();
      },
    };
    this.probes.set(seq, p);
    // Lifeguard's buddy system: tell a suspect it is suspected, so it can refute at once.
    const t = this.members.get(target);
    if (t?.status === 'suspect')
      this.tell(target, {
        type: 'suspect',
        name: target,
        incarnation: t.incarnation,
        by: this.self.name,
      });
    this.tell(target, { type: 'ping', seq, target });
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
      for (const h of helpers) {
        p.helpers.add(h.name);
        this.tell(h.name, { type: 'ping-req', seq, target });
      }
      p.timer = this.after(indirectWindow, (late2) => {
        if (late2) {
          this.adjustAwareness(1);
          return p.done(false);
        }
        // Lifeguard: helpers that did not even nack suggest the problem is on our side, unless
        // another helper's nack arrived in time (then this node's loop and links work, and the
        // silent ones are more likely cut off themselves). Silent helpers are probed now rather
        // than at their turn, so a partition is found in about one probe, not a rotation pass.
        const silent = [...p.helpers].filter((h) => !p.nacked.has(h));
        if (silent.length > 0 && p.nacked.size === 0 && rotation) this.adjustAwareness(1);
        for (const h of silent) this.hint(h);
        const m = this.members.get(target);
        // Suspect it, or confirm an existing suspicion independently (Lifeguard: each
        // independent confirmation shortens the suspicion timeout).
        const confirms = m?.status === 'suspect' && !m.suspicion?.confirmations.has(this.self.name);
        if (m && (m.status === 'alive' || confirms)) {
          this.log.debug({ member: target }, 'probe failed; suspecting');
          this.suspect(m, m.incarnation, this.self.name, 'probe-failed');
          this.broadcast({
            type: 'suspect',
            name: m.name,
            incarnation: m.incarnation,
            by: this.self.name,
          });
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

  /**
   * Lifeguard's dynamic suspicion timeout, with memberlist's k: `suspicionConfirmations`
   * independent confirmations bring it from suspicionMaxMs down to suspicionMinMs (logarithmically).
   * When fewer live members than k could confirm (the suspect and this node not counted), none is
   * waited for: suspicionMinMs from the start.
   */
  private suspicionTimeout(s: Suspicion): number {
    const { suspicionMinMs: min, suspicionMaxMs: max } = this.timing;
    const k = this.timing.suspicionConfirmations;
    if (k <= 0 || this.live().length - 1 < k) return min;
    const c = Math.max(0, s.confirmations.size - 1);
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
      this.broadcast({
        type: 'down',
        name: m.name,
        incarnation: m.incarnation,
        by: this.self.name,
      });
    });
  }

  /**
   * `by` suspects `m` at `inc`: starts a suspicion, or confirms the running one. `counted` false
   * (push-pull) starts one without counting anyone and never confirms one.
   */
  private suspect(m: State, inc: number, by: string, reason: string, counted = true): void {
    if (m.status === 'suspect' && inc === m.incarnation && m.suspicion) {
      if (counted && !m.suspicion.confirmations.has(by)) {
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
      confirmations: counted ? new Set([by]) : new Set(),
      timer: undefined,
      rearmed: false,
    };
    this.armSuspicion(m);
    // Tell the suspect itself, whoever we heard it from: a rumour that reached us through a third
    // node's sync might not have reached it, and only it can refute.
    this.tell(m.name, { type: 'suspect', name: m.name, incarnation: inc, by });
    this.emit(m, prev, reason, by);
    // Someone else's suspicion: check it ourselves now rather than at its turn in the rotation. A
    // failed probe is this node's independent confirmation (so a real failure is confirmed within
    // one probe); an answered one confirms nothing, and the suspect refutes meanwhile.
    if (by !== this.self.name) this.hint(m.name);
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

  /**
   * A member this node holds down, left or suspect at the incarnation it still announces is
   * talking to us: tell it (at most once per probe interval), so it refutes now rather than when a
   * probe or a SYNC of ours happens to reach it. Heals a partition as soon as one connection
   * crosses it.
   */
  private nudge(m: State): void {
    if (!this.oncePerInterval(this.lastNudge, m.name)) return;
    this.tell(m.name, {
      type: m.status === 'suspect' ? 'suspect' : 'down',
      name: m.name,
      incarnation: m.incarnation,
      by: this.self.name,
    });
  }

  /**
   * `teller` holds a verdict about this node at an incarnation it outlived: tell it the current
   * one, first-hand (at most once per probe interval per member, so stale gossip cannot make this
   * node send more than that).
   */
  private correct(teller: string): void {
    if (this.left || !this.oncePerInterval(this.lastCorrection, teller)) return;
    this.tell(teller, {
      type: 'alive',
      name: this.self.name,
      incarnation: this.incarnation,
      address: this.self.address,
    });
  }

  /** True at most once per probe interval per `name` in `last` (which it updates). */
  private oncePerInterval(last: Map<string, number>, name: string): boolean {
    const now = this.clock.now();
    if ((last.get(name) ?? -Infinity) > now - this.timing.probeIntervalMs) return false;
    last.set(name, now);
    return true;
  }

  /** Someone says we are suspect/down/left: outlive the rumour with a higher incarnation. */
  private refute(inc: number, teller: string): void {
    if (this.left) return;
    this.incarnation = Math.max(this.incarnation, inc) + 1;
    this.adjustAwareness(1);
    const msg: MembershipMessage = {
      type: 'alive',
      name: this.self.name,
      incarnation: this.incarnation,
      address: this.self.address,
    };
    this.broadcast(msg);
    if (!this.live().some((m) => m.name === teller)) this.tell(teller, msg);
  }

  /**
   * Applies one piece of news about a member. The trust rules (docs/membership.md, "Trust"):
   * - Only a member raises its own incarnation: news from anyone else (`teller !== name`) at an
   *   incarnation above the one the member announced to this node is ignored.
   * - A member enters the table only first-hand; hearsay about an unknown one (or about a newer
   *   incarnation) at most starts one bounded dial to hear it first-hand (`budget`).
   * - LEAVE counts only from the leaving node itself.
   * Returns whether it started a verifying dial.
   */
  private apply(n: News, budget: { left: number } | undefined): boolean {
    const { name, inc, status, address, teller, reason } = n;
    if (name === this.self.name) {
      const claimed = status !== 'alive' ? inc >= this.incarnation : inc > this.incarnation;
      if (!claimed) {
        // Suspect or down at an incarnation we outlived: the teller missed our refutation (it was
        // cut off when we gossiped it). Nothing to refute, but it needs our incarnation, or it
        // keeps the verdict until its suspicion times out and declares us down.
        if (status === 'suspect' || status === 'down') this.correct(teller);
        return false;
      }
      if (inc > this.incarnation && inc > this.clock.wallNow() + SELF_INCARNATION_LEAD_MS) {
        this.log.debug(
          { by: teller, incarnation: inc, code: 'FND_ERR_INCARNATION_RANGE' },
          'ignored a claim about this node far above its own incarnation',
        );
        return false;
      }
      this.refute(inc, teller);
      return false;
    }
    const firstHand = teller === name;
    const m = this.members.get(name);
    if (!m) {
      if ((status !== 'alive' && status !== 'suspect') || !address) return false;
      if (!firstHand) return this.hearsay(name, address, budget);
      const fresh: State = {
        name,
        address,
        status: 'alive',
        incarnation: inc,
        since: this.clock.now(),
        suspicion: undefined,
      };
      this.members.set(name, fresh);
      this.io.learn(name, address, inc);
      this.io.keepAlive(name, true);
      this.emit(fresh, undefined, 'join', teller);
      // First-hand news of a new member is passed on: the others dial it to meet it themselves.
      this.broadcast({ type: 'alive', name, incarnation: inc, address }, name);
      return false;
    }
    if (!firstHand && inc > m.incarnation) {
      // Not what the member itself announced to us: a stale view of ours, or a forgery. Only a
      // live-looking claim is worth a dial to find out; a negative one is simply ignored.
      if (status === 'alive' || status === 'suspect')
        return this.hearsay(name, address ?? m.address, budget);
      this.log.debug(
        { member: name, incarnation: inc, announced: m.incarnation, by: teller, status },
        'ignored news above the incarnation the member announced',
      );
      return false;
    }
    // Only the leaving node sends LEAVE; a view (SYNC) may still carry `left` at the same
    // incarnation to nodes that missed the LEAVE.
    if (status === 'left' && reason === 'leave' && !firstHand) return false;
    if (firstHand && status === 'alive' && inc === m.incarnation) {
      // It speaks to us: keep its address in the pool (also while we hold it down or left at this
      // incarnation, so our SYNC_REPLY reaches it and it can refute) and clear its dial backoff.
      // A newer incarnation does the same through markAlive below.
      this.io.learn(name, m.address, inc);
      if (m.status === 'down' || m.status === 'left') this.nudge(m);
    }
    if (reason === 'sync' && !firstHand && (status === 'down' || status === 'suspect')) {
      // Push-pull (memberlist's mergeState): another node's verdict is only a reason to suspect,
      // never a `down` here, and never a confirmation: it may be an old verdict from the other
      // side of a healed partition, or this node's own suspicion coming back. The member is told
      // (see `suspect`) and refutes; a real failure is confirmed by probes.
      if (inc === m.incarnation && m.status === 'alive')
        this.suspect(m, inc, teller, reason, false);
      return false;
    }
    const newer = inc > m.incarnation;
    const stronger = inc === m.incarnation && RANK[status] > RANK[m.status];
    if (status === 'suspect' && m.status === 'suspect' && inc === m.incarnation) {
      // Another node independently suspects it: a confirmation (shortens the timeout). Counted
      // per authenticated sender, so one member cannot confirm in the name of others.
      this.suspect(m, inc, teller, reason);
      return false;
    }
    if (!newer && !stronger) return false;
    switch (status) {
      case 'alive': {
        // Only first-hand news can get here (an incarnation above ours).
        const wasGone = m.status === 'down' || m.status === 'left';
        this.markAlive(m, inc, address ?? m.address, wasGone ? 'rejoin' : 'refuted', teller);
        if (wasGone)
          this.broadcast({ type: 'alive', name, incarnation: inc, address: m.address }, name);
        return false;
      }
      case 'suspect':
        this.suspect(m, inc, teller, reason);
        return false;
      case 'down':
        this.markDown(m, inc, teller, reason);
        return false;
      case 'left':
        this.markLeft(m, inc, teller);
        return false;
    }
  }

  /** Hearsay about a member: dial it (bounded per message and in total) to hear it first-hand. */
  private hearsay(name: string, address: Address, budget: { left: number } | undefined): boolean {
    if (budget && budget.left <= 0) return false;
    if (!this.verify(name, address)) return false;
    if (budget) budget.left--;
    return true;
  }

  private snapshot(): SyncEntry[] {
    const out: SyncEntry[] = [
      {
        name: this.self.name,
        incarnation: this.incarnation,
        status: 'alive',
        address: this.self.address,
      },
    ];
    for (const m of this.members.values()) {
      out.push({ name: m.name, incarnation: m.incarnation, status: m.status, address: m.address });
    }
    return out;
  }

  /** Merges a decoded view from `from`: its own entry is first-hand, the rest hearsay. */
  private merge(entries: SyncEntry[], from: string): void {
    const budget = { left: this.limits.learnPerMessage };
    for (const e of entries) {
      this.apply(
        {
          name: e.name,
          inc: e.incarnation,
          status: e.status,
          address: e.address,
          teller: from,
          reason: 'sync',
        },
        budget,
      );
    }
  }

  private broadcast(msg: MembershipMessage, except?: string): void {
    const wire = encodeMembership(msg);
    for (const m of this.live()) if (m.name !== except) this.io.send(m.name, wire);
  }

  private syncRandom(): void {
    const [m] = this.pickRandom(this.live(), 1);
    if (m) this.tell(m.name, { type: 'sync', entries: this.snapshot() });
  }

  /**
   * Re-dials down members (each at most once per tick and while no dial to it is in flight; the
   * dial limiter backs off addresses that keep failing), at most `learnPerMessage` per tick.
   * Every down member is tried, not one: after a partition any crossing connection heals it.
   */
  private reconnectDown(): void {
    const down = [...this.members.values()].filter(
      (m) => m.status === 'down' && !this.joining.has(formatAddress(m.address)),
    );
    for (const m of this.pickRandom(down, this.limits.learnPerMessage)) this.redial(m);
  }

  /**
   * One re-dial of a down member. When the dial limiter still backs its address off (its last
   * dial failed less than the backoff ago, e.g. timed out just before this tick), it is tried
   * again the moment the backoff ends, once, rather than a whole reconnect interval later.
   */
  private redial(m: State, retry = true): void {
    this.join(m.address).catch((err: unknown) => {
      if (!retry || !(err instanceof FoundationError) || err.code !== 'FND_ERR_DIAL_RATE_LIMITED')
        return;
      const wait = err.data?.retryInMs;
      if (err.data?.reason !== 'backoff' || typeof wait !== 'number') return;
      if (wait >= this.timing.reconnectIntervalMs || this.redials.has(m.name)) return;
      const timer = this.clock.setTimeout(() => {
        this.redials.delete(m.name);
        if (this.running && m.status === 'down' && this.members.get(m.name) === m)
          this.redial(m, false);
      }, wait + 1);
      this.redials.set(m.name, timer);
    });
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
        this.lastNudge.delete(m.name);
        this.lastCorrection.delete(m.name);
        this.io.remove(m.name);
      }
    }
  }

  // ---- inbound ----

  /** The incarnations a message carries (all are range-checked before anything changes). */
  private static incarnations(msg: MembershipMessage): number[] {
    switch (msg.type) {
      case 'alive':
      case 'suspect':
      case 'down':
      case 'leave':
        return [msg.incarnation];
      case 'sync':
      case 'sync-reply':
        return msg.entries.map((e) => e.incarnation);
      default:
        return [];
    }
  }

  /**
   * Handles one control message from an authenticated peer. Decoded and bounds-checked whole
   * first (src/cluster/wire.ts); a malformed or out-of-range message changes nothing. Never
   * throws on bad input.
   */
  handle(from: PeerHello, raw: unknown[]): void {
    if (!this.running) return;
    const decoded = decodeMembership(raw);
    if (!decoded.ok) {
      if (!decoded.unknown)
        this.log.debug(
          { peer: from.name, code: 'FND_ERR_MEMBERSHIP_MESSAGE', reason: decoded.reason },
          'ignored a malformed membership message',
        );
      return;
    }
    const msg = decoded.msg;
    const max = this.maxIncarnation();
    for (const inc of Membership.incarnations(msg)) {
      if (inc > max) {
        this.log.debug(
          { peer: from.name, code: 'FND_ERR_INCARNATION_RANGE', incarnation: inc, limit: max },
          'ignored a membership message with an out-of-range incarnation',
        );
        return;
      }
    }
    const teller = from.name;
    // A member this node holds down or left is cut off from us: what it says about others is
    // stale at best (TCP even delivers, when a partition heals, verdicts it queued during the
    // split), so only what it says about itself and about this node counts, and it is told it is
    // down so it refutes at once. A suspect sender's DOWN counts as its suspicion only.
    const senderStatus = this.members.get(teller)?.status;
    const cutOff = senderStatus === 'down' || senderStatus === 'left';
    // Likewise a member this node suspects is told so whenever it speaks: after a partition or a
    // blackhole heals, this node may not probe it before the suspicion times out (its own probes
    // were scaled down by Lifeguard while it was cut off), but the suspect probes this node.
    if (cutOff || senderStatus === 'suspect') this.nudge(this.members.get(teller)!);
    switch (msg.type) {
      case 'ping':
        // An ack only if the ping is for us (not for a previous owner of this address).
        if (msg.target === this.self.name) this.tell(teller, { type: 'ack', seq: msg.seq });
        return;
      case 'ack': {
        const relay = this.relays.get(msg.seq);
        if (relay) {
          if (teller !== relay.target) return;
          relay.timer.cancel();
          this.relays.delete(msg.seq);
          this.tell(relay.origin, { type: 'ack', seq: relay.originSeq });
          return;
        }
        // Only the target, or a helper asked to relay, may answer a probe.
        const p = this.probes.get(msg.seq);
        if (p && (teller === p.target || p.helpers.has(teller))) p.done(true);
        return;
      }
      case 'nack': {
        const p = this.probes.get(msg.seq);
        if (p?.helpers.has(teller)) p.nacked.add(teller);
        return;
      }
      case 'ping-req': {
        if (!this.members.has(msg.target) || this.relays.size >= MAX_RELAYS) return;
        const seq = ++this.seq;
        const timer = this.clock.setTimeout(() => {
          this.relays.delete(seq);
          this.tell(teller, { type: 'nack', seq: msg.seq });
        }, this.timing.probeTimeoutMs * 0.8);
        this.relays.set(seq, { origin: teller, originSeq: msg.seq, target: msg.target, timer });
        this.tell(msg.target, { type: 'ping', seq, target: msg.target });
        return;
      }
      case 'alive':
        this.apply(
          {
            name: msg.name,
            inc: msg.incarnation,
            status: 'alive',
            address: msg.address,
            teller,
            reason: 'gossip',
          },
          { left: this.limits.learnPerMessage },
        );
        return;
      case 'suspect':
      case 'down': {
        if (cutOff && msg.name !== this.self.name && msg.name !== teller) return;
        const weak = msg.type === 'down' && senderStatus === 'suspect';
        this.apply(
          {
            name: msg.name,
            inc: msg.incarnation,
            status: weak ? 'suspect' : msg.type,
            address: undefined,
            teller,
            reason: msg.type === 'suspect' || weak ? 'suspected' : 'declared-down',
          },
          undefined,
        );
        return;
      }
      case 'leave':
        this.apply(
          {
            name: msg.name,
            inc: msg.incarnation,
            status: 'left',
            address: undefined,
            teller,
            reason: 'leave',
          },
          undefined,
        );
        return;
      case 'sync':
      case 'sync-reply': {
        const entries = cutOff
          ? msg.entries.filter((e) => e.name === teller || e.name === this.self.name)
          : msg.entries;
        this.merge(entries, teller);
        if (msg.type === 'sync')
          this.tell(teller, { type: 'sync-reply', entries: this.snapshot() });
        return;
      }
    }
  }
}

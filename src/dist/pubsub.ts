// Topic pub/sub (`node.pubsub`): subscribe a handler or a local actor to a topic or a NATS-style
// pattern (`orders.*` one token, `orders.>` one or more), publish cluster-wide. Interest is
// replicated (each node announces its own patterns), so a message goes only to nodes with a
// matching subscriber — Phoenix.PubSub sends to every node. Queue groups deliver each message to
// one member of the group cluster-wide (NATS queue groups, Moleculer's balanced events).
import { FoundationError } from '../errors.js';
import { Pid, type PidLike } from '../runtime/pid.js';
import type { DistContext } from './context.js';
import { Replica } from './replica.js';
import { DIST_KINDS, decodePublish, isName } from './wire.js';

/** Gets each message published on a matching topic, with the topic. Must not block; errors are logged. */
export type TopicHandler = (msg: unknown, topic: string) => void;

export interface PublishOptions {
  /** Carry the publisher's request context (withContext) to handlers. Default true. */
  context?: boolean;
}

export interface SubscribeOptions {
  /** Join queue group `queue`: each message goes to one member of the group, cluster-wide. */
  queue?: string;
}

export interface Subscription {
  readonly topic: string;
  readonly queue: string | undefined;
  /** Stops this subscription (idempotent). */
  unsubscribe(): void;
}

interface Sub {
  id: number;
  pattern: string;
  tokens: string[];
  queue: string | undefined;
  handler: TopicHandler | undefined;
  pid: Pid | undefined;
}

interface Route {
  /** Nodes with at least one plain (non-queue) subscriber matching the topic. */
  plain: string[];
  /** Queue group → nodes with a member matching the topic. */
  queues: Map<string, string[]>;
}

const SEP = '\u0000';
/** Most distinct topics whose routes are cached; the cache is cleared when it fills or interest changes. */
const ROUTE_CACHE = 10_000;

/** Whether a pattern's tokens match a topic's tokens (NATS rules: `*` one token, `>` the rest). */
export function matches(pattern: string[], topic: string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '>') return topic.length > i;
    if (i >= topic.length) return false;
    if (p !== '*' && p !== topic[i]) return false;
  }
  return pattern.length === topic.length;
}

function validPattern(tokens: string[], wildcards: boolean): boolean {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '') return false;
    if (t === '>' || t === '*') {
      if (!wildcards || (t === '>' && i !== tokens.length - 1)) return false;
    }
  }
  return true;
}

export class PubSub {
  private readonly replica: Replica<number>;
  private nextId = 1;
  private readonly subs = new Map<number, Sub>();
  /** Local subscriptions by exact topic, and the wildcard ones. */
  private readonly exact = new Map<string, Set<Sub>>();
  private readonly wild = new Set<Sub>();
  /** Local actor id → its subscriptions (dropped when it exits). */
  private readonly byActor = new Map<number, Set<number>>();
  /** Interest of every node, this one included: node → (queue ␀ pattern) → count. */
  private routes = new Map<string, Route>();
  /**
   * Round-robin positions per queue group (remote groups by name, this node's own members under
   * a local key). Queue names come and go with peers' subscriptions: bounded like the caches, by
   * starting over when full (a group then starts again from its first member).
   */
  private readonly rr = new Map<string, number>();
  /** Local subscriptions matching a topic, cached per topic; cleared when they change. */
  private readonly localCache = new Map<string, Sub[]>();
  /** Local deliveries waiting: a handler that publishes does not recurse. */
  private readonly inbox: Array<[string, unknown, string[] | undefined, unknown]> = [];
  private draining = false;
  /** Counters for diagnostics and tests (see stats()). */
  private sent = 0;
  private received = 0;
  private delivered = 0;

  constructor(private readonly ctx: DistContext) {
    this.replica = new Replica<number>(ctx, {
      kind: DIST_KINDS.interest,
      maxKeyLength: ctx.limits.maxNameLength * 2 + 1,
      decodeValue: (v) =>
        typeof v === 'number' && Number.isSafeInteger(v) && v >= 1
          ? { ok: true, value: v }
          : { ok: false, reason: 'bad count' },
    });
    this.replica.onChange(() => {
      this.routes = new Map();
    });
    ctx.net.on(DIST_KINDS.publish, (payload, from) => {
      if (!ctx.members.isPeer(from)) return;
      const d = decodePublish(payload, ctx.limits);
      if (!d.ok) {
        ctx.log.warn({ from, reason: d.reason }, 'publish message refused');
        return;
      }
      this.received++;
      this.enqueue(d.value.topic, d.value.msg, d.value.q, d.value.ctx);
    });
    ctx.system.onExit((pid) => {
      if (pid.node !== ctx.self) return;
      const ids = this.byActor.get(pid.id);
      if (!ids) return;
      this.byActor.delete(pid.id);
      for (const id of ids) this.remove(id);
    });
  }

  /**
   * Subscribes `target` (a handler, or a live local actor that gets each message as is) to a topic
   * or pattern. Returns the subscription; `unsubscribe()` ends it. An actor's subscriptions end
   * when it exits.
   */
  subscribe(
    topic: string,
    target: TopicHandler | PidLike,
    opts: SubscribeOptions = {},
  ): Subscription {
    const tokens = this.checkTopic(topic, true);
    const queue = opts.queue;
    if (
      queue !== undefined &&
      (!isName(queue, this.ctx.limits.maxNameLength) || queue.includes(SEP))
    ) {
      throw new FoundationError('FND_ERR_INVALID_OPTION', 'option "queue": a non-empty string', {
        field: 'queue',
      });
    }
    let pid: Pid | undefined;
    let handler: TopicHandler | undefined;
    if (typeof target === 'function') handler = target;
    else {
      if (target.node !== this.ctx.self || !this.ctx.system.isAlive(target)) {
        throw new FoundationError(
          'FND_ERR_NOPROC',
          `${target.node}.${target.id} is not a live local actor`,
          {
            pid: { node: target.node, id: target.id },
          },
        );
      }
      pid = new Pid(target.node, target.id);
    }
    const key = (queue ?? '') + SEP + topic;
    const count = this.replica.ownEntries().get(key) ?? 0;
    this.replica.set(key, count + 1); // throws FND_ERR_DIST_LIMIT before anything is kept
    const sub: Sub = { id: this.nextId++, pattern: topic, tokens, queue, handler, pid };
    this.subs.set(sub.id, sub);
    this.localCache.clear();
    if (tokens.includes('*') || tokens.includes('>')) this.wild.add(sub);
    else {
      let set = this.exact.get(topic);
      if (!set) {
        set = new Set();
        this.exact.set(topic, set);
      }
      set.add(sub);
    }
    if (pid) {
      let ids = this.byActor.get(pid.id);
      if (!ids) {
        ids = new Set();
        this.byActor.set(pid.id, ids);
      }
      ids.add(sub.id);
    }
    return { topic, queue, unsubscribe: () => this.remove(sub.id) };
  }

  private remove(id: number): void {
    const sub = this.subs.get(id);
    if (!sub) return;
    this.subs.delete(id);
    this.localCache.clear();
    this.wild.delete(sub);
    const set = this.exact.get(sub.pattern);
    if (set?.delete(sub) && set.size === 0) this.exact.delete(sub.pattern);
    if (sub.pid) this.byActor.get(sub.pid.id)?.delete(id);
    const key = (sub.queue ?? '') + SEP + sub.pattern;
    const count = this.replica.ownEntries().get(key) ?? 0;
    if (count > 1) this.replica.set(key, count - 1);
    else this.replica.delete(key);
  }

  private checkTopic(topic: unknown, wildcards: boolean): string[] {
    const tokens = isName(topic, this.ctx.limits.maxNameLength) ? topic.split('.') : undefined;
    if (!tokens || !validPattern(tokens, wildcards)) {
      throw new FoundationError(
        'FND_ERR_INVALID_OPTION',
        `option "topic": dot-separated non-empty tokens${wildcards ? " ('*' one token, '>' the rest, last)" : ' without wildcards'}, at most ${this.ctx.limits.maxNameLength} characters`,
        { field: 'topic' },
      );
    }
    return tokens;
  }

  /**
   * Sends `msg` to every subscriber of `topic` in the cluster (and to one member of each matching
   * queue group), only to nodes that have one. At most once; ordered per publisher → subscriber.
   */
  publish(topic: string, msg: unknown, opts?: PublishOptions): void {
    // The publisher's request context (withContext), when there is one: handlers run inside it.
    const c = opts?.context === false ? undefined : this.ctx.propagation?.capture();
    let route = this.routes.get(topic);
    if (!route) {
      route = this.route(this.checkTopic(topic, false));
      if (this.routes.size >= ROUTE_CACHE) this.routes = new Map();
      this.routes.set(topic, route);
    }
    let chosen: Map<string, string[]> | undefined;
    for (const [q, nodes] of route.queues) {
      const n = this.turn(q);
      const node = nodes[n % nodes.length]!;
      if (!chosen) chosen = new Map();
      const list = chosen.get(node);
      if (list) list.push(q);
      else chosen.set(node, [q]);
    }
    if (!chosen) {
      // The common case: the same message for every node, encoded once for all of them.
      this.fanOut(route.plain, topic, msg, c);
      return;
    }
    const same: string[] = [];
    for (const node of route.plain) {
      const qs = chosen.get(node);
      if (qs) this.deliverTo(node, topic, msg, qs, c);
      else same.push(node);
    }
    this.fanOut(same, topic, msg, c);
    for (const [node, qs] of chosen)
      if (!route.plain.includes(node)) this.deliverTo(node, topic, msg, qs, c);
  }

  private fanOut(nodes: string[], topic: string, msg: unknown, c: unknown): void {
    let remote = nodes;
    const self = nodes.indexOf(this.ctx.self);
    if (self >= 0) {
      remote = nodes.filter((n) => n !== this.ctx.self);
      this.enqueue(topic, msg, undefined, c);
    }
    if (remote.length === 0) return;
    if (remote.length === 1) {
      this.deliverTo(remote[0]!, topic, msg, undefined, c);
      return;
    }
    try {
      const payload = c === undefined ? [topic, msg] : [topic, msg, null, c];
      const skipped = this.ctx.net.sendMany(remote, DIST_KINDS.publish, payload);
      this.sent += remote.length - skipped.length;
    } catch (err) {
      this.ctx.log.debug({ topic, err: (err as Error).message }, 'publish not sent');
    }
  }

  /** Delivers to this node's subscribers only (and one local member of each matching queue group). */
  publishLocal(topic: string, msg: unknown): void {
    this.checkTopic(topic, false);
    const qs = new Set<string>();
    for (const s of this.localMatches(topic)) if (s.queue !== undefined) qs.add(s.queue);
    this.enqueue(topic, msg, [...qs], this.ctx.propagation?.capture());
  }

  /** Nodes with interest in `topic` right now (this node included), for tests and diagnostics. */
  interestedNodes(topic: string): string[] {
    const r = this.route(this.checkTopic(topic, false));
    const all = new Set(r.plain);
    for (const ns of r.queues.values()) for (const n of ns) all.add(n);
    return [...all].sort();
  }

  private deliverTo(
    node: string,
    topic: string,
    msg: unknown,
    qs: string[] | undefined,
    c: unknown,
  ): void {
    if (node === this.ctx.self) {
      this.enqueue(topic, msg, qs, c);
      return;
    }
    try {
      const payload =
        c !== undefined ? [topic, msg, qs ?? null, c] : qs ? [topic, msg, qs] : [topic, msg];
      this.ctx.net.send(node, DIST_KINDS.publish, payload);
      this.sent++;
    } catch (err) {
      this.ctx.log.debug({ to: node, err: (err as Error).message }, 'publish not sent');
    }
  }

  private route(tokens: string[]): Route {
    const plain: string[] = [];
    const queues = new Map<string, string[]>();
    const owners = [this.ctx.self, ...this.replica.owners()].sort();
    for (const owner of owners) {
      const entries = this.replica.entriesOf(owner);
      if (!entries) continue;
      let hasPlain = false;
      for (const key of entries.keys()) {
        const i = key.indexOf(SEP);
        const queue = key.slice(0, i);
        if (queue === '' && hasPlain) continue;
        if (!matches(key.slice(i + 1).split('.'), tokens)) continue;
        if (queue === '') hasPlain = true;
        else {
          const ns = queues.get(queue);
          if (!ns) queues.set(queue, [owner]);
          else if (ns[ns.length - 1] !== owner) ns.push(owner);
        }
      }
      if (hasPlain) plain.push(owner);
    }
    return { plain, queues };
  }

  private localMatches(topic: string): Sub[] {
    let hit = this.localCache.get(topic);
    if (hit) return hit;
    hit = this.matchLocal(topic);
    if (this.localCache.size >= ROUTE_CACHE) this.localCache.clear();
    this.localCache.set(topic, hit);
    return hit;
  }

  private matchLocal(topic: string): Sub[] {
    const out: Sub[] = [];
    const ex = this.exact.get(topic);
    if (ex) for (const s of ex) out.push(s);
    if (this.wild.size > 0) {
      const tokens = topic.split('.');
      for (const s of this.wild) if (matches(s.tokens, tokens)) out.push(s);
    }
    return out;
  }

  private enqueue(topic: string, msg: unknown, qs: string[] | undefined, c: unknown): void {
    this.inbox.push([topic, msg, qs, c]);
    if (this.draining) return;
    this.draining = true;
    try {
      for (let i = 0; i < this.inbox.length; i++) {
        const [t, m, q, c] = this.inbox[i]!;
        this.deliverLocal(t, m, q, c);
      }
    } finally {
      this.inbox.length = 0;
      this.draining = false;
    }
  }

  private deliverLocal(topic: string, msg: unknown, qs: string[] | undefined, c: unknown): void {
    let groups: Map<string, Sub[]> | undefined;
    for (const s of this.localMatches(topic)) {
      if (s.queue === undefined) this.deliver(s, topic, msg, c);
      else if (qs?.includes(s.queue)) {
        if (!groups) groups = new Map();
        const g = groups.get(s.queue);
        if (g) g.push(s);
        else groups.set(s.queue, [s]);
      }
    }
    if (!groups) return;
    for (const [q, members] of groups) {
      const n = this.turn(`${SEP}local${SEP}${q}`);
      this.deliver(members[n % members.length]!, topic, msg, c);
    }
  }

  /** The next round-robin position of queue group `key`. */
  private turn(key: string): number {
    const n = this.rr.get(key);
    if (n === undefined && this.rr.size >= ROUTE_CACHE) this.rr.clear();
    this.rr.set(key, (n ?? 0) + 1);
    return n ?? 0;
  }

  private deliver(s: Sub, topic: string, msg: unknown, c: unknown): void {
    this.delivered++;
    if (s.pid) {
      try {
        // Sent inside the publisher's context (none: outside any), so the actor's handler runs
        // in it, as a subscribed function would (the actor runtime carries it).
        const p = this.ctx.propagation;
        const pid = s.pid;
        if (p) p.run(c, () => this.ctx.system.send(pid, msg));
        else this.ctx.system.send(pid, msg);
      } catch (err) {
        // A full 'reject' mailbox: this subscriber misses the message; the others still get it.
        this.ctx.log.debug(
          { topic, pid: String(s.pid), err: (err as Error).message },
          'not delivered',
        );
      }
      return;
    }
    try {
      const p = this.ctx.propagation;
      if (p) p.run(c, () => s.handler!(msg, topic));
      else s.handler!(msg, topic);
    } catch (err) {
      this.ctx.log.error({ topic, err: (err as Error).message }, 'subscriber threw');
    }
  }

  /**
   * Since start: `sent` — messages this node put on the wire for other nodes (one per node per
   * publish); `received` — such messages other nodes sent here; `delivered` — deliveries to local
   * subscribers (handlers and actors).
   */
  stats(): { sent: number; received: number; delivered: number } {
    return { sent: this.sent, received: this.received, delivered: this.delivered };
  }

  stop(): void {
    this.replica.stop();
  }
}

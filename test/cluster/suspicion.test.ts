// Lifeguard's suspicion rules as Foundation implements them (docs/membership.md, "Suspicion"),
// on one Membership driven message by message under a manual clock: how many confirmations
// shorten a suspicion (memberlist's k), that push-pull views neither declare anyone down nor
// confirm a suspicion, and that news at a lower incarnation is ignored. Every probe this node
// sends is answered at once, so only the messages a test sends can suspect or confirm.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ChangeInfo, type Member, Membership } from '../../src/cluster/membership.js';
import { PRESETS } from '../../src/cluster/presets.js';
import { encodeMembership, type MembershipMessage } from '../../src/cluster/wire.js';
import { FoundationError } from '../../src/errors.js';
import { ManualClock } from '../../src/testing.js';
import type { PeerHello } from '../../src/transport/link.js';
import { MSG } from '../../src/transport/protocol.js';
import { createLogger } from '../../src/util/log.js';

const BASE_INC = 1_700_000_000_000;
const timing = {
  ...PRESETS.lan,
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  suspicionMinMs: 2000,
  suspicionMaxMs: 20_000,
  suspicionConfirmations: 1,
  syncIntervalMs: 1_000_000,
  reconnectIntervalMs: 1_000_000,
};

interface Event {
  event: string;
  member: string;
  status: string;
  reason: string;
  by: string | undefined;
  at: number;
}

function hello(name: string, incarnation = BASE_INC): PeerHello {
  return {
    name,
    incarnation,
    address: { host: `10.0.0.${name.charCodeAt(0)}`, port: 4000 },
    channel: 'control',
    version: 1,
    encrypted: false,
  };
}

/** An ALIVE about `name` at `incarnation`, with the address its hello gives. */
function aliveMsg(name: string, incarnation: number) {
  return { type: 'alive', name, incarnation, address: hello(name).address } as const;
}

/** `me` plus `others` met first-hand; `silent` members never answer a probe. */
function setup(
  others: string[],
  over: Partial<typeof timing> = {},
  silent: string[] = [],
  join: (address: { host: string; port: number }) => Promise<PeerHello> = () =>
    new Promise<never>(() => {}),
) {
  const clock = new ManualClock();
  const events: Event[] = [];
  const sent: Array<{ to: string; msg: unknown[]; health: number }> = [];
  let m!: Membership;
  const io = {
    send(to: string, msg: unknown[]) {
      sent.push({ to, msg, health: m?.health ?? 0 });
      // Answer pings (direct or relayed) at once unless the target is silent.
      if (msg[0] === MSG.PING && !silent.includes(to))
        queueMicrotask(() => m.handle(hello(to), [MSG.ACK, msg[1]]));
      // A helper answers for the target (ACK), or says it could not reach it (NACK); a silent
      // helper says nothing.
      if (msg[0] === MSG.PING_REQ && !silent.includes(to)) {
        const answer = silent.includes(msg[2] as string) ? MSG.NACK : MSG.ACK;
        queueMicrotask(() => m.handle(hello(to), [answer, msg[1]]));
      }
    },
    join,
    learn() {},
    keepAlive() {},
    disconnect() {},
    remove() {},
  };
  m = new Membership(
    { cluster: 'c', name: 'me', incarnation: BASE_INC, address: { host: '10.0.0.1', port: 4000 } },
    { ...timing, ...over },
    io,
    clock,
    createLogger('silent'),
    (member: Member, info: ChangeInfo) =>
      events.push({
        event: member.status,
        member: member.name,
        status: member.status,
        reason: info.reason,
        by: info.by,
        at: clock.now(),
      }),
    () => 0.5,
  );
  m.start();
  for (const o of others) m.acceptPeer(o, hello(o).address, BASE_INC);
  events.length = 0;
  const say = (from: string, msg: MembershipMessage) =>
    m.handle(hello(from), encodeMembership(msg));
  const entry = (name: string, status: Member['status'], incarnation = BASE_INC) => ({
    name,
    incarnation,
    status,
    address: hello(name).address,
  });
  /** Moves the clock `ms` forward, letting the queued answers run after each timer. */
  const tick = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) {
      clock.tick(Math.min(10, ms - t));
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  return { m, clock, events, sent, say, entry, tick };
}

describe('suspicion timeout (Lifeguard, memberlist k)', () => {
  it('one independent confirmation (k = 1) brings the suspicion down to suspicionMinMs', async () => {
    const t = setup(['a', 'b', 'c', 'x']);
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    assert.equal(t.m.status('x'), 'suspect');
    await t.tick(100);
    t.say('b', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'b' });
    await t.tick(timing.suspicionMinMs - 200);
    assert.equal(t.m.status('x'), 'suspect', 'still suspect before suspicionMinMs');
    await t.tick(300);
    assert.equal(
      t.m.status('x'),
      'down',
      'a confirmed suspicion must be declared down at suspicionMinMs, not suspicionMaxMs',
    );
    const down = t.events.find((e) => e.status === 'down');
    assert.equal(down?.reason, 'suspicion-timeout');
  });

  it('without a confirmation the suspicion lasts suspicionMaxMs', async () => {
    const t = setup(['a', 'b', 'c', 'x']);
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    await t.tick(timing.suspicionMaxMs - 100);
    assert.equal(t.m.status('x'), 'suspect', 'an unconfirmed suspicion waits suspicionMaxMs');
    await t.tick(200);
    assert.equal(t.m.status('x'), 'down');
  });

  it('the same suspecter twice is one confirmation, not two', async () => {
    const t = setup(['a', 'b', 'c', 'x'], { suspicionConfirmations: 1 });
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    // `by` is not trusted: the sender is a, whatever the message says.
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'b' });
    await t.tick(timing.suspicionMinMs + 500);
    assert.equal(t.m.status('x'), 'suspect');
  });

  it('with fewer live members than k to confirm, the timeout is suspicionMinMs from the start', async () => {
    // Two other members: x (the suspect) and a. k = 2 cannot be reached, so none is waited for.
    const t = setup(['a', 'x'], { suspicionConfirmations: 2 });
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    await t.tick(timing.suspicionMinMs + 100);
    assert.equal(t.m.status('x'), 'down');
  });

  it('k = 2 needs two confirmations for suspicionMinMs; one gives a timeout in between', async () => {
    const t = setup(['a', 'b', 'c', 'x'], { suspicionConfirmations: 2 });
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    t.say('b', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'b' });
    // max − (max − min)·log 2 / log 3 ≈ 8 643 ms
    await t.tick(8500);
    assert.equal(t.m.status('x'), 'suspect');
    await t.tick(300);
    assert.equal(t.m.status('x'), 'down');
    const t2 = setup(['a', 'b', 'c', 'x'], { suspicionConfirmations: 2 });
    for (const s of ['a', 'b', 'c'])
      t2.say(s, { type: 'suspect', name: 'x', incarnation: BASE_INC, by: s });
    await t2.tick(timing.suspicionMinMs + 100);
    assert.equal(t2.m.status('x'), 'down');
  });

  it("someone else's suspicion makes this node probe the suspect at once; its failed probe confirms", async () => {
    const t = setup(['a', 'b', 'c', 'x'], {}, ['x']);
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    assert.ok(
      t.sent.some((s) => s.to === 'x' && s.msg[0] === MSG.PING),
      'a ping to x right after hearing the suspicion',
    );
    // The probe fails (x is silent): this node's own confirmation makes C = 1 = k.
    await t.tick(timing.suspicionMinMs + 100);
    assert.equal(t.m.status('x'), 'down');
  });
});

describe('push-pull (SYNC) never declares down and never confirms', () => {
  it('a SYNC entry `down` about a member alive here is a suspicion here, not a down', async () => {
    const t = setup(['a', 'b', 'c', 'x']);
    t.say('a', { type: 'sync', entries: [t.entry('a', 'alive'), t.entry('x', 'down')] });
    assert.equal(t.m.status('x'), 'suspect');
    assert.deepEqual(
      t.events.map((e) => [e.member, e.status, e.reason, e.by]),
      [['x', 'suspect', 'sync', 'a']],
    );
    assert.ok(
      t.sent.some((s) => s.to === 'x' && s.msg[0] === MSG.SUSPECT),
      'the suspect is told, so it can refute',
    );
    // x refutes: alive again, and never declared down.
    t.say('x', aliveMsg('x', BASE_INC + 1));
    await t.tick(timing.suspicionMaxMs + 1000);
    assert.equal(t.m.status('x'), 'alive');
    assert.ok(!t.events.some((e) => e.status === 'down'), JSON.stringify(t.events));
  });

  it('SYNC entries `suspect` or `down` from other members do not confirm a suspicion', async () => {
    const t = setup(['a', 'b', 'c', 'x']);
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    t.say('b', { type: 'sync', entries: [t.entry('b', 'alive'), t.entry('x', 'suspect')] });
    t.say('c', { type: 'sync-reply', entries: [t.entry('c', 'alive'), t.entry('x', 'down')] });
    await t.tick(timing.suspicionMinMs + 1000);
    assert.equal(
      t.m.status('x'),
      'suspect',
      'push-pull entries must not count as independent confirmations',
    );
    await t.tick(timing.suspicionMaxMs);
    assert.equal(t.m.status('x'), 'down');
    assert.equal(t.events.find((e) => e.status === 'down')?.reason, 'suspicion-timeout');
  });

  it("this node's own suspicion coming back through another node's SYNC is not a confirmation", async () => {
    const t = setup(['a', 'b', 'c', 'x'], {}, ['x']);
    // Probe rounds run; x never answers, so this node suspects it by itself.
    for (let i = 0; i < 20 && t.m.status('x') !== 'suspect'; i++) await t.tick(500);
    assert.equal(t.m.status('x'), 'suspect');
    const since = t.clock.now();
    // Its suspicion comes back from a and b inside their views.
    t.say('a', { type: 'sync', entries: [t.entry('a', 'alive'), t.entry('x', 'suspect')] });
    t.say('b', { type: 'sync', entries: [t.entry('b', 'alive'), t.entry('x', 'suspect')] });
    await t.tick(timing.suspicionMinMs + 1000);
    assert.equal(t.m.status('x'), 'suspect', 'its own suspicion, echoed, shortened the timeout');
    await t.tick(timing.suspicionMaxMs);
    assert.equal(t.m.status('x'), 'down');
    assert.ok(t.clock.now() - since >= timing.suspicionMaxMs - 1000);
  });
});

describe('incarnations: news older than what a member announced is ignored', () => {
  it('SUSPECT and DOWN at a lower incarnation change nothing', async () => {
    const t = setup(['a', 'b', 'x']);
    t.m.acceptPeer('x', hello('x').address, BASE_INC + 5);
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC + 4, by: 'a' });
    t.say('b', { type: 'down', name: 'x', incarnation: BASE_INC + 4, by: 'b' });
    assert.equal(t.m.status('x'), 'alive');
    assert.equal(t.m.list().find((e) => e.name === 'x')?.incarnation, BASE_INC + 5);
    assert.deepEqual(t.events, []);
  });

  it("a member's own ALIVE at a lower incarnation does not end a suspicion", async () => {
    const t = setup(['a', 'b', 'x']);
    t.m.acceptPeer('x', hello('x').address, BASE_INC + 5);
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC + 5, by: 'a' });
    t.say('x', aliveMsg('x', BASE_INC + 3));
    assert.equal(t.m.status('x'), 'suspect');
    t.say('x', aliveMsg('x', BASE_INC + 6));
    assert.equal(t.m.status('x'), 'alive');
  });
});

describe('healing: a member held down that speaks to this node is told so', () => {
  it('its first-hand message at the incarnation held down gets a DOWN back, at most once per probe interval', async () => {
    const t = setup(['a', 'b', 'x']);
    t.say('a', { type: 'down', name: 'x', incarnation: BASE_INC, by: 'a' });
    assert.equal(t.m.status('x'), 'down');
    t.sent.length = 0;
    t.m.acceptPeer('x', hello('x').address, BASE_INC);
    t.m.acceptPeer('x', hello('x').address, BASE_INC);
    const told = t.sent.filter((s) => s.to === 'x' && s.msg[0] === MSG.DOWN);
    assert.equal(told.length, 1);
    assert.deepEqual(told[0]!.msg.slice(1, 3), ['x', BASE_INC]);
    await t.tick(timing.probeIntervalMs + 10);
    t.m.acceptPeer('x', hello('x').address, BASE_INC);
    assert.equal(t.sent.filter((s) => s.to === 'x' && s.msg[0] === MSG.DOWN).length, 2);
  });
});

describe('verdicts of members this node cannot reach', () => {
  it('a member held down speaks only for itself: its SUSPECT, DOWN and SYNC entries about others are ignored, and it is told it is down', async () => {
    const t = setup(['a', 'b', 'x']);
    t.say('b', { type: 'down', name: 'a', incarnation: BASE_INC, by: 'b' });
    assert.equal(t.m.status('a'), 'down');
    t.events.length = 0;
    t.sent.length = 0;
    // Verdicts it queued during a partition, delivered when the link came back.
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    t.say('a', { type: 'down', name: 'x', incarnation: BASE_INC, by: 'a' });
    t.say('a', { type: 'sync', entries: [t.entry('a', 'alive'), t.entry('x', 'down')] });
    assert.equal(t.m.status('x'), 'alive');
    assert.deepEqual(t.events, [], 'no event about x from a member held down');
    const told = t.sent.filter((s) => s.to === 'a' && s.msg[0] === MSG.DOWN && s.msg[1] === 'a');
    assert.equal(told.length, 1, 'told once (per probe interval) that it is down, so it refutes');
    // It refutes: alive again, and from then on its verdicts count.
    t.say('a', aliveMsg('a', BASE_INC + 1));
    assert.equal(t.m.status('a'), 'alive');
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    assert.equal(t.m.status('x'), 'suspect');
  });

  it('a member held down may still say this node is down: this node refutes', async () => {
    const t = setup(['a', 'b']);
    t.say('b', { type: 'down', name: 'a', incarnation: BASE_INC, by: 'b' });
    const before = t.m.selfIncarnation;
    t.say('a', { type: 'sync', entries: [t.entry('a', 'alive'), t.entry('me', 'down')] });
    assert.ok(t.m.selfIncarnation > before, 'refuted with a higher incarnation');
  });

  it('a verdict about this node at an incarnation it outlived is answered with its current one, first-hand, at most once per probe interval per member', async () => {
    // b was cut off while this node refuted a's suspicion: b missed the new incarnation, and its
    // buddy-system SUSPECT (or, later, its DOWN) carries the old one. Refuting again would not
    // reach b any better; b needs the incarnation it missed, or it declares this node down when
    // its suspicion times out.
    const t = setup(['a', 'b']);
    t.say('a', { type: 'suspect', name: 'me', incarnation: BASE_INC, by: 'a' });
    const current = t.m.selfIncarnation;
    assert.ok(current > BASE_INC, 'refuted a');
    t.sent.length = 0;
    const toB = () => t.sent.filter((s) => s.to === 'b' && s.msg[0] === MSG.ALIVE);
    t.say('b', { type: 'suspect', name: 'me', incarnation: BASE_INC, by: 'b' });
    assert.equal(toB().length, 1, 'b is told');
    assert.deepEqual(toB()[0]!.msg.slice(1, 3), ['me', current], 'this node, current incarnation');
    assert.equal(t.m.selfIncarnation, current, 'no new refutation for a stale claim');
    t.say('b', { type: 'suspect', name: 'me', incarnation: BASE_INC, by: 'b' });
    t.say('b', { type: 'down', name: 'me', incarnation: BASE_INC, by: 'b' });
    assert.equal(toB().length, 1, 'once per probe interval');
    assert.equal(
      t.sent.filter((s) => s.to === 'a' && s.msg[0] === MSG.ALIVE).length,
      0,
      'a, which has the current incarnation, is not told',
    );
    await t.tick(timing.probeIntervalMs + 10);
    t.say('b', { type: 'down', name: 'me', incarnation: BASE_INC, by: 'b' });
    assert.equal(toB().length, 2, 'a stale DOWN is answered too, after the interval');
    // A stale ALIVE is no verdict: nothing to correct.
    t.say('b', aliveMsg('me', BASE_INC));
    assert.equal(toB().length, 2);
  });

  it('a member holding a stale suspicion clears it when the suspect tells it its current incarnation', async () => {
    const t = setup(['a', 'x']);
    t.say('a', { type: 'suspect', name: 'x', incarnation: BASE_INC, by: 'a' });
    assert.equal(t.m.status('x'), 'suspect');
    t.say('x', aliveMsg('x', BASE_INC + 1));
    assert.equal(t.m.status('x'), 'alive');
    await t.tick(timing.suspicionMaxMs + 1000);
    assert.equal(t.m.status('x'), 'alive', 'the suspicion timer was cancelled');
  });

  it('a DOWN from a member held suspect counts only as its suspicion', async () => {
    const t = setup(['a', 'b', 'c', 'x']);
    t.say('b', { type: 'suspect', name: 'a', incarnation: BASE_INC, by: 'b' });
    t.say('a', { type: 'down', name: 'x', incarnation: BASE_INC, by: 'a' });
    assert.equal(t.m.status('x'), 'suspect');
    const e = t.events.find((ev) => ev.member === 'x');
    assert.deepEqual([e?.status, e?.reason, e?.by], ['suspect', 'suspected', 'a']);
  });
});

describe('probing: silent helpers and local health', () => {
  it('helpers that neither ACK nor NACK are probed at once; a NACK in time keeps health at 0', async () => {
    // x is the silent target, c a silent helper; a and b answer NACK for x.
    const t = setup(['a', 'b', 'c', 'x'], {}, ['x', 'c']);
    for (let i = 0; i < 40 && t.m.status('x') !== 'suspect'; i++) await t.tick(100);
    assert.equal(t.m.status('x'), 'suspect');
    const reqs = t.sent.filter((s) => s.msg[0] === MSG.PING_REQ && s.msg[2] === 'x');
    assert.ok(
      reqs.some((s) => s.to === 'c'),
      `c was asked to help: ${JSON.stringify(reqs)}`,
    );
    // In the same step that suspects x (before its SUSPECT goes out), c is pinged.
    const i = t.sent.findIndex((s) => s.msg[0] === MSG.SUSPECT && s.msg[1] === 'x');
    const lastReq = t.sent
      .slice(0, i)
      .map((s) => s.msg[0] === MSG.PING_REQ && s.msg[2] === 'x')
      .lastIndexOf(true);
    assert.ok(
      t.sent.slice(lastReq, i).some((s) => s.to === 'c' && s.msg[0] === MSG.PING),
      'the silent helper c is probed right after the failed probe',
    );
    // Health as it was at every message sent (a later ACK may lower it again at once).
    assert.equal(
      Math.max(...t.sent.map((s) => s.health)),
      0,
      'a and b nacked in time: this node is not the problem',
    );
  });

  it('when every helper stays silent, health rises (the problem may be this node)', async () => {
    const t = setup(['a', 'b', 'x'], {}, ['x', 'a', 'b']);
    for (let i = 0; i < 40 && t.m.health === 0; i++) await t.tick(100);
    assert.ok(t.m.health >= 1);
  });
});

describe('re-dialling down members', () => {
  it('every down member is re-dialled each reconnect interval; one refused by its backoff is retried when the backoff ends', async () => {
    const dials: Array<{ host: string; at: number }> = [];
    let clock!: ManualClock;
    const t = setup(['a', 'b', 'c', 'x'], { reconnectIntervalMs: 1000 }, [], (address) => {
      dials.push({ host: address.host, at: clock.now() });
      // c's address is still backed off for 300 ms after a failed dial.
      if (
        address.host === hello('c').address.host &&
        dials.filter((d) => d.host === address.host).length === 1
      )
        return Promise.reject(
          new FoundationError('FND_ERR_DIAL_RATE_LIMITED', 'backed off', {
            reason: 'backoff',
            retryInMs: 300,
          }),
        );
      return Promise.reject(new Error('connect ETIMEDOUT'));
    });
    clock = t.clock;
    for (const n of ['a', 'b', 'c'])
      t.say('x', { type: 'down', name: n, incarnation: BASE_INC, by: 'x' });
    const start = t.clock.now();
    await t.tick(1500);
    const first = dials.filter((d) => d.at - start <= 1000).map((d) => d.host);
    assert.deepEqual(
      [...first].sort(),
      ['a', 'b', 'c'].map((n) => hello(n).address.host).sort(),
      'all three down members dialled in one reconnect tick',
    );
    const c = dials.filter((d) => d.host === hello('c').address.host);
    assert.equal(c.length, 2, 'c dialled again once its backoff ended');
    assert.ok(c[1]!.at - c[0]!.at >= 300 && c[1]!.at - c[0]!.at < 1000, JSON.stringify(c));
  });
});

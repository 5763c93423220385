// Bounded mailboxes: 'reject' refuses at the sender with FND_ERR_MAILBOX_FULL (send, cast, call,
// sendAsync), 'drop-oldest' and 'drop-newest' keep the right messages and reject the calls they
// drop, and system messages (EXIT, DOWN) still reach an actor whose mailbox is full.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FoundationError } from '../../src/errors.js';
import type { DownMessage, ExitMessage, MailboxOptions } from '../../src/runtime/behaviour.js';
import type { Pid } from '../../src/runtime/pid.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { flushIO, systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { rejectedWith, rejectsWithCode, track } from '../helpers/assert.js';

const log = createLogger('silent');
const system = () => new ActorSystem({ nodeName: 'n', clock: systemClock, log });

async function until(cond: () => boolean, what: string, rounds = 10_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.fail(`not reached after ${rounds} event-loop turns: ${what}`);
}

/**
 * An actor whose first message ('block') holds it until `release()`, so the test can fill its
 * mailbox while it is busy. Records every message it handles (calls as {call: msg}).
 */
async function blocked(
  sys: ActorSystem,
  mailbox: MailboxOptions,
  extra: { trapExits?: boolean } = {},
): Promise<{ pid: Pid; handled: unknown[]; release: () => void }> {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const handled: unknown[] = [];
  const pid = sys.spawn(
    {
      async handleInfo(m) {
        handled.push(m);
        if (m === 'block') await gate;
      },
      handleCall(m) {
        handled.push({ call: m });
        return m;
      },
      handleCast(m) {
        handled.push({ cast: m });
      },
    },
    { mailbox, ...extra },
  );
  sys.send(pid, 'block');
  await until(() => handled.length === 1, 'actor blocked on its first message');
  return { pid, handled, release };
}

const isFull = (e: unknown) => (e as FoundationError).code === 'FND_ERR_MAILBOX_FULL';

describe("overflow 'reject'", () => {
  it('refuses the message past max at the sender, for send, cast, call and sendAsync', async () => {
    const sys = system();
    const a = await blocked(sys, { max: 3, overflow: 'reject' });
    sys.send(a.pid, 1);
    sys.cast(a.pid, 2);
    await sys.sendAsync(a.pid, 3);
    assert.equal(sys.mailboxDepth(), 3);
    let thrown: unknown;
    try {
      sys.send(a.pid, 4);
    } catch (err) {
      thrown = err;
    }
    assert.ok(isFull(thrown), `send threw ${String(thrown)}`);
    const data = (thrown as FoundationError).data as { pid: unknown; max: number };
    assert.deepEqual(data, { pid: { node: 'n', id: a.pid.id }, max: 3 });
    assert.throws(() => sys.cast(a.pid, 5), isFull);
    await rejectsWithCode(sys.call(a.pid, 6), 'FND_ERR_MAILBOX_FULL');
    await rejectsWithCode(sys.sendAsync(a.pid, 7), 'FND_ERR_MAILBOX_FULL');
    // Refusals are not drops: nothing was taken out of the mailbox.
    assert.equal(sys.dropped, 0);
    a.release();
    await until(() => a.handled.length === 4, 'accepted messages handled');
    await flushIO(4);
    assert.deepEqual(a.handled, ['block', 1, { cast: 2 }, 3]);
    // With room again, sends are accepted.
    assert.equal(await sys.call(a.pid, 'again'), 'again');
  });

  it('an actor sending to a full mailbox gets the error in its own handler (and may catch it)', async () => {
    const sys = system();
    const a = await blocked(sys, { max: 1, overflow: 'reject' });
    sys.send(a.pid, 'fills it');
    const outcomes: string[] = [];
    const sender = sys.spawn((_m, ctx) => {
      try {
        ctx.send(a.pid, 'too many');
        outcomes.push('sent');
      } catch (err) {
        outcomes.push((err as FoundationError).code);
      }
    });
    sys.send(sender, 'go');
    await until(() => outcomes.length === 1, 'sender ran');
    assert.deepEqual(outcomes, ['FND_ERR_MAILBOX_FULL']);
    assert.ok(sys.isAlive(sender));
  });
});

describe("overflow 'drop-oldest'", () => {
  it('keeps the newest max messages', async () => {
    const sys = system();
    const a = await blocked(sys, { max: 3, overflow: 'drop-oldest' });
    for (let i = 1; i <= 7; i++) sys.send(a.pid, i);
    assert.equal(sys.mailboxDepth(), 3);
    assert.equal(sys.dropped, 4);
    a.release();
    await until(() => a.handled.length === 4, 'kept messages handled');
    await flushIO(4);
    assert.deepEqual(a.handled, ['block', 5, 6, 7]);
  });

  it('rejects a call it pushes out with FND_ERR_MAILBOX_FULL; a kept call is answered', async () => {
    const sys = system();
    const a = await blocked(sys, { max: 2, overflow: 'drop-oldest' });
    const early = track(sys.call(a.pid, 'early'));
    sys.send(a.pid, 'x');
    sys.send(a.pid, 'y'); // pushes 'early' out
    await flushIO();
    const err = rejectedWith(early, 'FND_ERR_MAILBOX_FULL', 'the dropped call');
    assert.match(err.message, /dropped/);
    const kept = track(sys.call(a.pid, 'kept')); // pushes 'x' out
    a.release();
    await until(() => kept.result.state !== 'pending', 'kept call answered');
    assert.deepEqual(kept.result, { state: 'fulfilled', value: 'kept' });
    assert.deepEqual(a.handled, ['block', 'y', { call: 'kept' }]);
  });
});

describe("overflow 'drop-newest'", () => {
  it('keeps the oldest max messages', async () => {
    const sys = system();
    const a = await blocked(sys, { max: 3, overflow: 'drop-newest' });
    for (let i = 1; i <= 7; i++) sys.send(a.pid, i);
    assert.equal(sys.mailboxDepth(), 3);
    assert.equal(sys.dropped, 4);
    // A send that is dropped is not an error for the sender (that is what 'reject' is for).
    await sys.sendAsync(a.pid, 8);
    assert.equal(sys.dropped, 5);
    a.release();
    await until(() => a.handled.length === 4, 'kept messages handled');
    await flushIO(4);
    assert.deepEqual(a.handled, ['block', 1, 2, 3]);
  });

  it('rejects the call it drops with FND_ERR_MAILBOX_FULL', async () => {
    const sys = system();
    const a = await blocked(sys, { max: 1, overflow: 'drop-newest' });
    const first = track(sys.call(a.pid, 'first'));
    const dropped = await rejectsWithCode(sys.call(a.pid, 'second'), 'FND_ERR_MAILBOX_FULL');
    assert.deepEqual((dropped.data as { pid: unknown }).pid, { node: 'n', id: a.pid.id });
    a.release();
    await until(() => first.result.state !== 'pending', 'first answered');
    assert.deepEqual(first.result, { state: 'fulfilled', value: 'first' });
  });
});

/**
 * A trapping actor blocked on its first message, with a bound of 2 and `overflow`; an actor linked
 * to it that crashes on 'crash', and one it monitors.
 */
async function watchedAndLinked(sys: ActorSystem, overflow: MailboxOptions['overflow']) {
  const a = await blocked(sys, { max: 2, overflow }, { trapExits: true });
  const linked = sys.spawn(
    (m) => {
      if (m === 'crash') throw new Error('linked crash');
    },
    { link: a.pid },
  );
  const watched = sys.spawn(() => {});
  // The monitor belongs to the blocked actor: monitor on its behalf through the system API.
  const ref = sys.monitor(watched, a.pid);
  return { a, linked, watched, ref };
}

describe('system messages at a full mailbox', () => {
  for (const overflow of ['reject', 'drop-newest', 'drop-oldest'] as const) {
    it(`EXIT and DOWN still arrive when the mailbox is full ('${overflow}')`, async () => {
      const sys = system();
      const { a, linked, watched, ref } = await watchedAndLinked(sys, overflow);
      const refs = [ref];
      sys.send(a.pid, 'm1');
      sys.send(a.pid, 'm2');
      assert.equal(sys.mailboxDepth(), 2, 'mailbox full');
      sys.send(linked, 'crash');
      await until(() => !sys.isAlive(linked), 'linked actor crashed');
      sys.exit(watched, 'shutdown');
      await flushIO(4);
      a.release();
      await until(
        () => a.handled.some((m) => (m as DownMessage).type === 'DOWN'),
        `DOWN handled by the actor with a full '${overflow}' mailbox`,
        2000,
      );
      const exit = a.handled.find((m) => (m as ExitMessage).type === 'EXIT') as ExitMessage;
      assert.ok(exit, 'the EXIT from the linked actor arrived');
      assert.ok(linked.equals(exit.from));
      assert.equal((exit.reason as Error).message, 'linked crash');
      const down = a.handled.find((m) => (m as DownMessage).type === 'DOWN') as DownMessage;
      assert.equal(down.ref, refs[0]);
      assert.equal(down.reason, 'shutdown');
      assert.ok(sys.isAlive(a.pid));
    });
  }

  for (const overflow of ['reject', 'drop-newest', 'drop-oldest'] as const) {
    it(`EXIT and DOWN waiting first are neither counted nor dropped by later messages ('${overflow}')`, async () => {
      const sys = system();
      const { a, linked, watched } = await watchedAndLinked(sys, overflow);
      sys.send(linked, 'crash');
      await until(() => !sys.isAlive(linked), 'linked actor crashed');
      sys.exit(watched, 'shutdown');
      await flushIO(4);
      // Two system messages waiting: the bound of 2 still takes two ordinary ones.
      sys.send(a.pid, 'm1');
      sys.send(a.pid, 'm2');
      a.release();
      await until(() => a.handled.length === 5, 'everything handled', 2000);
      const kinds = a.handled.map((m) => (typeof m === 'string' ? m : (m as ExitMessage).type));
      assert.deepEqual(kinds, ['block', 'EXIT', 'DOWN', 'm1', 'm2']);
      assert.equal(sys.dropped, 0);
    });
  }
});

// Names: local registration (register/whereis/unregister, spawn({ name }), sending and calling by
// name or {name, node}, names released on exit, FND_ERR_NAME_TAKEN), and the Foundation 1.x
// ServiceRegistry (register/lookup/listServices/unregister, health, removal when the actor exits),
// standalone and as node.serviceRegistry on a running node.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FoundationError } from '../../src/errors.js';
import type { DownMessage } from '../../src/runtime/behaviour.js';
import type { PidLike } from '../../src/runtime/pid.js';
import { ServiceRegistry } from '../../src/runtime/service-registry.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { InMemoryNetwork } from '../../src/transport/memory.js';
import { flushIO, ManualClock, systemClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { startMemNode } from '../helpers/nodes.js';

const log = createLogger('silent');
const system = () => new ActorSystem({ nodeName: 'n', clock: systemClock, log });

async function until(cond: () => boolean, what: string, rounds = 10_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  assert.fail(`not reached after ${rounds} event-loop turns: ${what}`);
}

const coded = (code: string) => (e: unknown) => e instanceof FoundationError && e.code === code;

function exitAndWait(sys: ActorSystem, pid: PidLike, reason = 'shutdown'): Promise<void> {
  const downs: DownMessage[] = [];
  sys.monitor(pid, (d) => downs.push(d));
  sys.exit(pid, reason);
  return until(() => downs.length === 1, 'exit');
}

describe('local names', () => {
  it('register / whereis / unregister', () => {
    const sys = system();
    const pid = sys.spawn(() => {});
    assert.equal(sys.whereis('svc'), undefined);
    sys.register('svc', pid);
    assert.ok(sys.whereis('svc')?.equals(pid));
    sys.register('svc', pid); // same actor, same name: fine
    assert.deepEqual(sys.registered(), ['svc']);
    sys.unregister('svc');
    assert.equal(sys.whereis('svc'), undefined);
    sys.unregister('svc'); // idempotent
    assert.deepEqual(sys.registered(), []);
    assert.ok(sys.isAlive(pid), 'unregistering does not touch the actor');
  });

  it('spawn({ name }) registers; registering again under another name moves the actor', () => {
    const sys = system();
    const pid = sys.spawn(() => {}, { name: 'first' });
    assert.ok(sys.whereis('first')?.equals(pid));
    sys.register('second', pid);
    assert.equal(sys.whereis('first'), undefined, 'an actor has one name');
    assert.ok(sys.whereis('second')?.equals(pid));
  });

  it('send, cast, call and sendAsync work by name and by { name, node }', async () => {
    const sys = system();
    const got: unknown[] = [];
    sys.spawn(
      {
        handleInfo: (m) => void got.push(['info', m]),
        handleCast: (m) => void got.push(['cast', m]),
        handleCall: (m) => m,
      },
      { name: 'echo' },
    );
    sys.send('echo', 1);
    sys.cast('echo', 2);
    await sys.sendAsync('echo', 3);
    sys.send({ name: 'echo', node: 'n' }, 4);
    assert.equal(await sys.call('echo', 'by name'), 'by name');
    assert.equal(await sys.call({ name: 'echo', node: 'n' }, 'by name@node'), 'by name@node');
    assert.deepEqual(got, [
      ['info', 1],
      ['cast', 2],
      ['info', 3],
      ['info', 4],
    ]);
  });

  it('an actor sends to a name through its context', async () => {
    const sys = system();
    const got: unknown[] = [];
    sys.spawn((m) => void got.push(m), { name: 'sink' });
    const src = sys.spawn((m, ctx) => ctx.send('sink', `via ctx: ${m}`));
    sys.send(src, 'x');
    await until(() => got.length === 1, 'delivered');
    assert.deepEqual(got, ['via ctx: x']);
  });

  it('a name that is not registered: send drops, sendAsync and call reject with FND_ERR_NOPROC', async () => {
    const sys = system();
    sys.send('ghost', 'dropped');
    sys.cast('ghost', 'dropped');
    await rejectsWithCode(sys.sendAsync('ghost', 'x'), 'FND_ERR_NOPROC');
    const err = await rejectsWithCode(sys.call('ghost', 'x'), 'FND_ERR_NOPROC');
    assert.match(err.message, /"ghost"/);
  });

  it('names are released when the actor exits, for any reason, and can be taken again', async () => {
    const sys = system();
    for (const reason of ['normal', 'shutdown', 'kill', 'crash']) {
      const name = `svc-${reason}`;
      const pid = sys.spawn(
        (m, ctx) => {
          if (m === 'crash') throw new Error('crash');
          if (m === 'normal') ctx.stop();
        },
        { name },
      );
      if (reason === 'crash' || reason === 'normal') {
        const downs: DownMessage[] = [];
        sys.monitor(pid, (d) => downs.push(d));
        sys.send(name, reason);
        await until(() => downs.length === 1, `${reason} exit`);
      } else await exitAndWait(sys, pid, reason);
      assert.equal(sys.whereis(name), undefined, `released after ${reason}`);
      const again = sys.spawn(() => 'new', { name });
      assert.equal(await sys.call(name, 'x'), 'new');
      assert.ok(sys.whereis(name)?.equals(again));
    }
  });

  it('FND_ERR_NAME_TAKEN when another live actor holds the name', () => {
    const sys = system();
    const a = sys.spawn(() => {}, { name: 'taken' });
    const b = sys.spawn(() => {});
    assert.throws(() => sys.register('taken', b), coded('FND_ERR_NAME_TAKEN'));
    const before = sys.size;
    assert.throws(() => sys.spawn(() => {}, { name: 'taken' }), coded('FND_ERR_NAME_TAKEN'));
    assert.equal(sys.size, before, 'the refused spawn created no actor');
    assert.ok(sys.whereis('taken')?.equals(a));
    try {
      sys.register('taken', b);
    } catch (err) {
      assert.deepEqual((err as FoundationError).data, { name: 'taken' });
    }
  });

  it('registering a dead or remote pid is refused with FND_ERR_NOPROC', async () => {
    const sys = system();
    const pid = sys.spawn(() => {});
    await exitAndWait(sys, pid);
    assert.throws(() => sys.register('x', pid), coded('FND_ERR_NOPROC'));
    assert.throws(() => sys.register('x', { node: 'other', id: 1 }), coded('FND_ERR_NOPROC'));
    assert.equal(sys.whereis('x'), undefined);
  });

  it('a name re-registered to a new actor is not released by the old actor’s exit', async () => {
    const sys = system();
    const old = sys.spawn(() => {}, { name: 'svc' });
    sys.unregister('svc');
    const fresh = sys.spawn(() => {}, { name: 'svc' });
    await exitAndWait(sys, old);
    assert.ok(sys.whereis('svc')?.equals(fresh));
  });
});

describe('ServiceRegistry', () => {
  it('register / lookup / listServices / unregister, with health', () => {
    const sys = system();
    const reg = new ServiceRegistry(sys);
    const a = sys.spawn(() => {});
    const b = sys.spawn(() => {});
    const t0 = Date.now();
    reg.register('billing', 'invoices', a);
    reg.register('billing', 'payments', b);
    reg.register('auth', 'sessions', a);
    const t1 = Date.now();
    assert.ok(reg.lookup('billing', 'invoices')?.equals(a));
    assert.ok(reg.lookup('auth', 'sessions')?.equals(a));
    assert.equal(reg.lookup('billing', 'nothing'), undefined);
    assert.equal(reg.lookup('nowhere', 'invoices'), undefined);
    assert.deepEqual(reg.namespaces().sort(), ['auth', 'billing']);
    const list = reg.listServices('billing').sort((x, y) => x.name.localeCompare(y.name));
    assert.deepEqual(
      list.map(({ namespace, name, pid, healthy }) => ({ namespace, name, id: pid.id, healthy })),
      [
        { namespace: 'billing', name: 'invoices', id: a.id, healthy: true },
        { namespace: 'billing', name: 'payments', id: b.id, healthy: true },
      ],
    );
    for (const s of list) assert.ok(s.registeredAt >= t0 && s.registeredAt <= t1);
    assert.deepEqual(reg.listServices('empty'), []);
    assert.equal(reg.unregister('billing', 'invoices'), true);
    assert.equal(reg.unregister('billing', 'invoices'), false);
    assert.equal(reg.lookup('billing', 'invoices'), undefined);
    assert.equal(reg.unregister('billing', 'payments'), true);
    assert.deepEqual(reg.namespaces(), ['auth'], 'an emptied namespace disappears');
  });

  it('FND_ERR_NAME_TAKEN for a live holder; the same pid may register again', () => {
    const sys = system();
    const reg = new ServiceRegistry(sys);
    const a = sys.spawn(() => {});
    const b = sys.spawn(() => {});
    reg.register('ns', 'svc', a);
    reg.register('ns', 'svc', a);
    assert.throws(() => reg.register('ns', 'svc', b), coded('FND_ERR_NAME_TAKEN'));
    assert.ok(reg.lookup('ns', 'svc')?.equals(a));
    // Same name in another namespace is a different service.
    reg.register('other', 'svc', b);
    assert.ok(reg.lookup('other', 'svc')?.equals(b));
  });

  it('refuses a dead or remote pid with FND_ERR_NOPROC', async () => {
    const sys = system();
    const reg = new ServiceRegistry(sys);
    const a = sys.spawn(() => {});
    await exitAndWait(sys, a);
    assert.throws(() => reg.register('ns', 'svc', a), coded('FND_ERR_NOPROC'));
    assert.throws(
      () => reg.register('ns', 'svc', { node: 'elsewhere', id: 3 }),
      coded('FND_ERR_NOPROC'),
    );
  });

  it('removes every service of an actor when it exits; the name is free again', async () => {
    const sys = system();
    const reg = new ServiceRegistry(sys);
    const a = sys.spawn((m) => {
      if (m === 'crash') throw new Error('crash');
    });
    const b = sys.spawn(() => {});
    reg.register('ns', 'one', a);
    reg.register('ns', 'two', a);
    reg.register('ns2', 'three', a);
    reg.register('ns', 'keep', b);
    const downs: DownMessage[] = [];
    sys.monitor(a, (d) => downs.push(d));
    sys.send(a, 'crash');
    await until(() => downs.length === 1, 'crash');
    assert.equal(reg.lookup('ns', 'one'), undefined);
    assert.deepEqual(
      reg.listServices('ns').map((s) => [s.name, s.healthy]),
      [['keep', true]],
    );
    assert.deepEqual(reg.namespaces(), ['ns']);
    reg.register('ns', 'one', b);
    assert.ok(reg.lookup('ns', 'one')?.equals(b));
  });

  it('is node.serviceRegistry on a running node, and follows node.spawn / node.exit', async () => {
    const netw = new InMemoryNetwork();
    const clock = new ManualClock();
    const node = await startMemNode(netw, clock, { name: 'svcnode' });
    try {
      const pid = node.spawn(() => 'pong', { name: 'pinger' });
      assert.ok(node.whereis('pinger')?.equals(pid));
      node.serviceRegistry.register('app', 'ping', pid);
      const found = node.serviceRegistry.lookup('app', 'ping');
      assert.ok(found);
      assert.equal(await node.call(found, 'ping'), 'pong');
      assert.equal(await node.call('pinger', 'ping'), 'pong');
      assert.equal(await node.call({ name: 'pinger', node: 'svcnode' }, 'ping'), 'pong');
      assert.deepEqual(
        node.serviceRegistry.listServices('app').map((s) => s.healthy),
        [true],
      );
      node.unregister('pinger');
      assert.equal(node.whereis('pinger'), undefined);
      node.register('pinger', pid);
      node.exit(pid, 'shutdown');
      await until(() => !node.actors.isAlive(pid), 'exit');
      await flushIO();
      assert.equal(node.serviceRegistry.lookup('app', 'ping'), undefined);
      assert.deepEqual(node.serviceRegistry.listServices('app'), []);
      assert.equal(node.whereis('pinger'), undefined);
    } finally {
      await node.stop();
    }
  });
});

describe('names from inside a behaviour', () => {
  it('ctx.register / ctx.whereis / ctx.unregister act for the actor itself', async () => {
    const sys = system();
    const seen: unknown[] = [];
    const pid = sys.spawn((msg, ctx) => {
      if (msg === 'claim') ctx.register('me');
      if (msg === 'look') seen.push(ctx.whereis('me'));
      if (msg === 'drop') ctx.unregister('me');
    });
    sys.send(pid, 'claim');
    sys.send(pid, 'look');
    await until(() => seen.length === 1, 'look');
    assert.equal(String(seen[0]), String(pid));
    assert.equal(String(sys.whereis('me')), String(pid));
    sys.send(pid, 'drop');
    await until(() => sys.whereis('me') === undefined, 'dropped');
  });
});

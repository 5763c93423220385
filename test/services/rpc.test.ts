// Typed calls on the in-memory network: a contract types node.services.get(...) at compile time
// (@ts-expect-error lines fail the build if a wrong call type-checks); zod schemas refuse bad
// arguments on the caller (nothing sent) and on the serving node (a caller without the schema);
// dynamic calls; action errors keep their cause; deadlines propagate into nested calls; a
// malicious member's malformed call is refused with FND_ERR_SERVICE_MESSAGE.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { contract, currentContext, type FoundationNode } from '../../src/index.js';
import { SVC_KINDS } from '../../src/services/wire.js';
import { rejectsWithCode } from '../helpers/assert.js';
import { startMeshedCluster, tickUntil } from '../helpers/nodes.js';
import { done, ready } from './util.js';

interface Greeter {
  hello(name: string): string;
  add(a: number, b: number): Promise<number>;
  user(u: { name: string; age: number }): string;
}

const greeter = contract<Greeter>('greeter', {
  user: { input: z.tuple([z.object({ name: z.string(), age: z.number().int().min(0) })]) },
  hello: { idempotent: true },
});

describe('typed service calls', () => {
  it('calls through a contract, typed end to end, and dynamically by name', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.service(greeter, {
        hello: (n) => `hello ${n}`,
        add: async (x, y) => x + y,
        user: (u) => `${u.name}/${u.age}`,
      });
      await ready(c, a, 'greeter');
      const g = a.services.get(greeter);
      assert.equal(await done(c, g.hello('bob')), 'hello bob');
      const sum: number = await done(c, g.add(2, 3));
      assert.equal(sum, 5);
      assert.equal(await done(c, a.services.call('greeter.hello', ['eve'])), 'hello eve');
      assert.equal(await done(c, a.services.call('greeter.hello', 'one-arg')), 'hello one-arg');
      const typed = a.services.get<Greeter>('greeter');
      assert.equal(await done(c, typed.user({ name: 'x', age: 3 })), 'x/3');
      if (Date.now() < 0) {
        // Compile-time checks only (never run): each line must be a type error.
        // @ts-expect-error wrong argument type
        void g.hello(42);
        // @ts-expect-error unknown action
        void g.goodbye('x');
        // @ts-expect-error missing argument
        void typed.add(1);
        // @ts-expect-error the handler must match the contract
        b.service(greeter, { hello: (n: number) => n, add: async () => 1, user: () => '' });
      }
    } finally {
      await c.stop();
    }
  });

  it('refuses bad arguments on the caller (nothing sent) and on the server, naming the field', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      let ran = 0;
      b.service(greeter, {
        hello: (n) => `hello ${n}`,
        add: async (x, y) => x + y,
        user: (u) => {
          ran++;
          return u.name;
        },
      });
      await ready(c, a, 'greeter');
      // A caller without the contract: the serving node validates.
      const e2 = await rejectsWithCode(
        done(c, a.services.call('greeter.user', [{ name: 7, age: 1 }])),
        'FND_ERR_VALIDATION',
      );
      assert.equal(e2.data?.field, '0.name');
      assert.equal(e2.data?.side, 'server');
      // With the contract the caller refuses before sending anything.
      const before = a.messenger.inFlight;
      const e1 = await rejectsWithCode(
        a.services.get(greeter).user({ name: 'x', age: -1 }),
        'FND_ERR_VALIDATION',
      );
      assert.equal(e1.data?.field, '0.age');
      assert.equal(e1.data?.side, 'caller');
      assert.equal(a.messenger.inFlight, before, 'nothing was sent');
      assert.equal(ran, 0);
    } finally {
      await c.stop();
    }
  });

  it('reports action errors with their cause, unknown actions and services with coded errors', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      b.service('m', {
        boom: () => {
          throw Object.assign(new Error('kaput'), { code: 'E_KAPUT' });
        },
        later: async () => {
          throw new Error('async kaput');
        },
      });
      await ready(c, a, 'm');
      const e = await rejectsWithCode(done(c, a.services.call('m.boom')), 'FND_ERR_SERVICE_ACTION');
      assert.deepEqual((e.data as { cause: unknown }).cause, { code: 'E_KAPUT', message: 'kaput' });
      await rejectsWithCode(done(c, a.services.call('m.later')), 'FND_ERR_SERVICE_ACTION');
      await rejectsWithCode(done(c, a.services.call('m.nope')), 'FND_ERR_SERVICE_NOT_FOUND');
      await rejectsWithCode(done(c, a.services.call('zz.top')), 'FND_ERR_SERVICE_NOT_FOUND');
      await rejectsWithCode(a.services.call('nodot'), 'FND_ERR_INVALID_OPTION');
      for (const bad of [{ timeout: -1 }, { timeout: Number.NaN }, { retry: { retries: 1.5 } }]) {
        await rejectsWithCode(a.services.call('m.boom', [], bad), 'FND_ERR_INVALID_OPTION');
      }
      await rejectsWithCode(
        a.services.call('m.boom', [], { balancer: 'consistent-hash' }),
        'FND_ERR_INVALID_OPTION',
      );
      await rejectsWithCode(
        a.services.call('m.boom', [], { balancer: 'nope' as 'random' }),
        'FND_ERR_INVALID_OPTION',
      );
    } finally {
      await c.stop();
    }
  });

  it('propagates the deadline into nested calls', async () => {
    const c = await startMeshedCluster(['a', 'b', 'c']);
    try {
      const [a, b, cc] = c.nodes as [FoundationNode, FoundationNode, FoundationNode];
      const seen: number[] = [];
      cc.service('inner', {
        slow: () => {
          seen.push((currentContext()?.deadline ?? 0) - c.clock.now());
          return new Promise(() => {}); // never answers
        },
      });
      b.service('outer', {
        go: async () => {
          seen.push((currentContext()?.deadline ?? 0) - c.clock.now());
          // Asks for 60 s but inherits what is left of the caller's 500 ms.
          return b.services.call('inner.slow', [], { timeout: 60_000, retry: false });
        },
      });
      await ready(c, a, 'outer');
      await ready(c, b, 'inner');
      const p = a.services.call('outer.go', [], { timeout: 500, retry: false });
      await rejectsWithCode(done(c, p), 'FND_ERR_REQUEST_TIMEOUT');
      assert.equal(seen.length, 2);
      assert.ok(seen[0]! <= 500 && seen[1]! <= seen[0]!, `deadlines ${seen}`);
      // b's nested request (asked for 60 s) expired with the caller's deadline, not 60 s later.
      await tickUntil(c.clock, c.net, () => b.messenger.inFlight === 0, 'nested call expired', {
        maxMs: 1000,
      });
    } finally {
      await c.stop();
    }
  });

  it('returns every kind of result as it was (arrays included); a malformed reply is refused', async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      const results: unknown[] = [
        'x',
        7,
        null,
        { k: [1, 2] },
        [],
        [1],
        [null, 5],
        [[1], 2],
        new Uint8Array([1, 2]),
      ];
      b.service('r', { at: (i: number) => results[i], none: () => undefined });
      await ready(c, a, 'r');
      for (let i = 0; i < results.length; i++) {
        const got = await done(c, a.services.call('r.at', [i]));
        if (results[i] instanceof Uint8Array)
          assert.deepEqual(new Uint8Array(got as Uint8Array), results[i]);
        else assert.deepEqual(got, results[i], `result ${i}`);
      }
      // undefined: null once encoded (the in-memory network passes it as is).
      assert.equal((await done(c, a.services.call('r.none'))) ?? null, null);
      // A member that answers with what no node sends: refused, coded.
      for (const bad of [
        [1, 2, 3],
        [null, -1],
        [null, 'id'],
      ]) {
        b.messenger.handle(SVC_KINDS.call, () => bad);
        await rejectsWithCode(
          done(c, a.services.call('r.at', [0], { retry: false })),
          'FND_ERR_SERVICE_MESSAGE',
        );
      }
    } finally {
      await c.stop();
    }
  });

  it("refuses a malicious member's malformed call with FND_ERR_SERVICE_MESSAGE and runs nothing", async () => {
    const c = await startMeshedCluster(['a', 'b']);
    try {
      const [a, b] = c.nodes as [FoundationNode, FoundationNode];
      let ran = 0;
      a.service('t', { x: () => ran++ });
      await ready(c, b, 't');
      const bad: unknown[] = [
        'not an array',
        ['t.x'],
        ['t.x', 'args', 100],
        ['t.x', -1],
        ['t.x', 100, ...Array.from({ length: 65 }, () => 0)],
        ['t.x', { tp: 'garbage' }, 100],
        ['t.x', { bg: 'x'.repeat(9000) }, 100],
        ['t.x', { s: [[5, 1]] }, 100, 1],
        ['t.x', [], 100],
        ['t.x', null, 100],
        [`${'x'.repeat(600)}.x`, 100],
        ['tx', 100],
        ['t.x.y', 100],
        ['.x', 100],
        ['t', 'x', [], 100],
      ];
      for (const p of bad) {
        await rejectsWithCode(
          done(c, b.messenger.request('a', SVC_KINDS.call, p)),
          'FND_ERR_SERVICE_MESSAGE',
        );
      }
      assert.equal(ran, 0);
      // The same member's well-formed call still works (only the bad messages were refused).
      assert.deepEqual(await done(c, b.messenger.request('a', SVC_KINDS.call, ['t.x', 100])), 0);
    } finally {
      await c.stop();
    }
  });
});

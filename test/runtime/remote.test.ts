// The actor layer's wire decoder (src/runtime/remote.ts): what it accepts (round trips of what
// this node sends), what it refuses as malformed or forged, its bounds, and fuzzing: garbage
// from a member never throws, and a refused message changes nothing at all (actors, links,
// monitors, mailboxes, outbound signals).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isFoundationError } from '../../src/errors.js';
import { Pid } from '../../src/runtime/pid.js';
import {
  ACTOR_KINDS,
  decodeActorMessage,
  encode,
  MAX_ACTOR_NAME,
  MAX_NODE_NAME,
  MAX_REASON,
  MAX_REF,
  monitorRef,
  type RemoteRouter,
  reasonIn,
} from '../../src/runtime/remote.js';
import { ActorSystem } from '../../src/runtime/system.js';
import { ManualClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';

const log = createLogger('silent');
const RUNS = 400;
const anything = fc.anything({
  withBigInt: true,
  withNullPrototype: true,
  withBoxedValues: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withSparseArray: true,
  withDate: true,
  withObjectString: true,
});

describe('decodeActorMessage: accepts what nodes send', () => {
  const p = new Pid('a', 7);
  it('round-trips every encoder', () => {
    const ref = monitorRef();
    const cases: Array<[string, unknown[], unknown]> = [
      [
        ACTOR_KINDS.send,
        encode.message(3, { x: 1 }),
        { kind: 'send', to: 3, msg: { x: 1 }, ctx: undefined },
      ],
      [
        ACTOR_KINDS.cast,
        encode.message('svc', 'hi'),
        { kind: 'cast', to: 'svc', msg: 'hi', ctx: undefined },
      ],
      [
        ACTOR_KINDS.deliver,
        encode.message(3, null),
        { kind: 'deliver', to: 3, msg: null, ctx: undefined },
      ],
      [
        ACTOR_KINDS.call,
        encode.call(3, 'q', p),
        { kind: 'call', to: 3, msg: 'q', from: p, ctx: undefined },
      ],
      [
        ACTOR_KINDS.call,
        encode.call(3, 'q', undefined),
        { kind: 'call', to: 3, msg: 'q', from: undefined, ctx: undefined },
      ],
      // The sender's request context, a trailing field only when there is one.
      [
        ACTOR_KINDS.send,
        encode.message(3, 'm', { tp: 'x' }),
        { kind: 'send', to: 3, msg: 'm', ctx: { tp: 'x' } },
      ],
      [
        ACTOR_KINDS.call,
        encode.call(3, 'q', p, { bg: 'k=v' }),
        { kind: 'call', to: 3, msg: 'q', from: p, ctx: { bg: 'k=v' } },
      ],
    ];
    assert.equal(encode.message(3, 'm').length, 2, 'no context: nothing extra on the wire');
    assert.equal(encode.call(3, 'q', p).length, 3, 'no context: nothing extra on the wire');
    for (const [kind, payload, want] of cases) {
      assert.deepEqual(decodeActorMessage(kind, payload, 'a'), { ok: true, value: want });
    }
    const signals: Array<[unknown[], unknown]> = [
      [encode.link(p, 2), { type: 'link', from: p, to: 2 }],
      [encode.unlink(p, 2), { type: 'unlink', from: p, to: 2 }],
      [
        encode.exit(p, 2, new Error('boom'), true),
        { type: 'exit', from: p, to: 2, reason: { message: 'boom', code: 'ERR' }, viaLink: true },
      ],
      [
        encode.exit(p, 2, 'kill', false),
        { type: 'exit', from: p, to: 2, reason: 'kill', viaLink: false },
      ],
      [encode.monitor(ref, 2), { type: 'monitor', ref, to: 2 }],
      [encode.demonitor(ref, 2), { type: 'demonitor', ref, to: 2 }],
      [encode.down(ref, p, 'normal'), { type: 'down', ref, pid: p, reason: 'normal' }],
    ];
    for (const [payload, signal] of signals) {
      assert.deepEqual(decodeActorMessage(ACTOR_KINDS.signal, payload, 'a'), {
        ok: true,
        value: { kind: 'signal', signal },
      });
    }
  });

  it('round-trips any well-formed pid, id and ref (property)', () => {
    const node = fc.string({ minLength: 1, maxLength: MAX_NODE_NAME });
    const id = fc.nat({ max: Number.MAX_SAFE_INTEGER });
    fc.assert(
      fc.property(node, id, id, (n, i, to) => {
        const from = new Pid(n, i);
        const d = decodeActorMessage(ACTOR_KINDS.signal, encode.link(from, to), n);
        assert.deepEqual(d, {
          ok: true,
          value: { kind: 'signal', signal: { type: 'link', from, to } },
        });
      }),
      { numRuns: RUNS },
    );
  });
});

describe('decodeActorMessage: refuses malformed, out-of-bounds and forged messages', () => {
  const wire = (payload: unknown, kind: string = ACTOR_KINDS.signal) =>
    decodeActorMessage(kind, payload, 'a');
  const code = (payload: unknown, kind?: string) => {
    const d = wire(payload, kind);
    return d.ok ? 'accepted' : d.code;
  };

  it('malformed shapes and bounds → FND_ERR_ACTOR_WIRE', () => {
    const long = (n: number) => 'x'.repeat(n);
    const malformed: Array<[unknown, string?]> = [
      [null],
      [{}],
      ['link'],
      [[]],
      [['link', ['a', 1]]],
      [['link', ['a', 1], 2, 'extra']],
      [['link', ['a', -1], 2]],
      [['link', ['a', 1.5], 2]],
      [['link', ['a', 2 ** 53], 2]],
      [['link', ['a', Number.NaN], 2]],
      [['link', ['', 1], 2]],
      [['link', [long(MAX_NODE_NAME + 1), 1], 2]],
      [['link', { node: 'a', id: 1 }, 2]],
      [['link', ['a', 1, 'x'], 2]],
      [['link', ['a', 1], '2']],
      [['exit', ['a', 1], 2, 'r', 2]],
      [['exit', ['a', 1], 2]],
      [['monitor', long(MAX_REF + 1), 2]],
      [['monitor', '', 2]],
      [['monitor', 5, 2]],
      [['demonitor', 'r', -2]],
      [['down', 'r', ['a'], 'x']],
      [['down', 'r', ['a', 1]]],
      [['nope', 1, 2]],
      [[1, 2, 3]],
      [[2n, 1], ACTOR_KINDS.send],
      [[long(MAX_ACTOR_NAME + 1), 'm'], ACTOR_KINDS.send],
      [['', 'm'], ACTOR_KINDS.send],
      [[1], ACTOR_KINDS.send],
      [[1, 'm', null], ACTOR_KINDS.cast],
      [[1, 'm', 'ctx'], ACTOR_KINDS.send],
      [[1, 'm', {}, 'extra'], ACTOR_KINDS.send],
      [[1, 'm', null, []], ACTOR_KINDS.call],
      [[1, 'm', null, {}, 'extra'], ACTOR_KINDS.call],
      [[1, 'm'], ACTOR_KINDS.call],
      [[1, 'm', ['a']], ACTOR_KINDS.call],
      [[1, 'm'], 'actor:unknown'],
    ];
    for (const [payload, kind] of malformed) {
      assert.equal(
        code(payload, kind),
        'FND_ERR_ACTOR_WIRE',
        JSON.stringify(payload, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)),
      );
    }
    assert.equal(code(['monitor', long(MAX_REF), 2]), 'accepted', 'MAX_REF itself is fine');
    assert.equal(code([long(MAX_ACTOR_NAME), 'm'], ACTOR_KINDS.send), 'accepted');
  });

  it('speaking for a pid of another node → FND_ERR_SIGNAL_FORGED', () => {
    for (const payload of [
      ['link', ['b', 1], 2],
      ['unlink', ['b', 1], 2],
      ['exit', ['b', 1], 2, 'kill', 0],
      ['exit', ['b', 1], 2, 'boom', 1],
      ['down', 'ref', ['b', 1], 'x'],
    ]) {
      assert.equal(code(payload), 'FND_ERR_SIGNAL_FORGED', String(payload));
    }
    assert.equal(code([1, 'm', ['b', 1]], ACTOR_KINDS.call), 'FND_ERR_SIGNAL_FORGED');
  });

  it('exit reasons are bounded and reduced to plain data', () => {
    assert.equal((reasonIn('r'.repeat(MAX_REASON * 3)) as string).length, MAX_REASON);
    assert.deepEqual(reasonIn({ message: 'm', code: 'C', name: 'TypeError', data: 2n, extra: 1 }), {
      message: 'm',
      code: 'C',
      name: 'TypeError',
    });
    assert.deepEqual(reasonIn({ message: 'm', code: 5, name: 'x'.repeat(1000) }), { message: 'm' });
    for (const v of [undefined, null, 42, 2n, [], ['m'], { message: 5 }, { toString: 'x' }]) {
      assert.equal(reasonIn(v), 'unknown');
    }
    const proto = reasonIn(JSON.parse('{"message":"m","__proto__":{"polluted":1}}')) as object;
    assert.equal(Object.getPrototypeOf(proto), Object.prototype);
    assert.equal((proto as { polluted?: unknown }).polluted, undefined);
  });
});

/** A system with remote links and monitors in place, and everything it sends recorded. */
function victim() {
  const clock = new ManualClock();
  const sent: unknown[][] = [];
  const router: RemoteRouter = {
    send: (node, kind, payload) => {
      sent.push([node, kind, payload]);
    },
    request: () => new Promise(() => {}),
  };
  const sys = new ActorSystem({ nodeName: 'me', clock, log, remote: router });
  const plain = sys.spawn(() => {}, { name: 'plain' });
  const trapping = sys.spawn(() => {}, { trapExits: true, name: 'trap' });
  sys.spawn(
    { init: () => new Promise(() => {}) },
    { trapExits: true, mailbox: { max: 3, overflow: 'reject' } },
  );
  // Another node ("good") links to and monitors our actors; ours monitor and link theirs.
  sys.handleRemote(ACTOR_KINDS.signal, encode.link(new Pid('good', 1), plain.id), 'good');
  sys.handleRemote(ACTOR_KINDS.signal, encode.monitor(monitorRef(), trapping.id), 'good');
  sys.link(trapping, new Pid('good', 2));
  sys.monitor(new Pid('good', 3), plain);
  sys.monitor(new Pid('good', 4), () => {});
  return { sys, sent, clock };
}

/** Everything an inbound message could change, as comparable data. */
function snapshot(sys: ActorSystem, sent: unknown[][]): unknown {
  const actors: unknown[] = [];
  for (let id = 1; id <= 3; id++) {
    const a = sys.actorById(id);
    actors.push(
      a && {
        alive: a.alive,
        depth: a.depth,
        links: [...(a.links?.keys() ?? [])].sort(),
        monitors: [...(a.monitors ?? [])].sort(),
        watching: [...(a.watching ?? [])].sort(),
      },
    );
  }
  return { size: sys.size, monitors: sys.monitorCount, actors, sent: sent.length };
}

const KINDS = [...Object.values(ACTOR_KINDS), 'actor:nope', ''];
const pidish = fc.oneof(
  fc.tuple(
    fc.constantFrom('evil', 'good', 'me', '', 'x'.repeat(300)),
    fc.oneof(fc.constantFrom(0, 1, 2, 3, -1, 1.5, 2 ** 53), anything),
  ),
  anything,
);
const field = fc.oneof(
  anything,
  fc.constantFrom(0, 1, 2, 3, 4, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 0, 1),
  fc.constantFrom('plain', 'trap', 'kill', 'normal', '', 'x'.repeat(MAX_REF + 1)),
  pidish,
);
/** Garbage shaped like actor messages, so it reaches past the first checks. */
const structured = fc.tuple(
  fc.constantFrom(...KINDS),
  fc.oneof(
    fc
      .tuple(
        fc.constantFrom('link', 'unlink', 'exit', 'monitor', 'demonitor', 'down', 'x'),
        fc.array(field, { maxLength: 6 }),
      )
      .map(([t, rest]) => [t, ...rest]),
    fc.array(field, { maxLength: 5 }),
    anything,
  ),
);

describe('a request context from a member', () => {
  it('is ignored by a system that does not propagate contexts: the message is still handled', async () => {
    const sys = new ActorSystem({ nodeName: 'me', clock: new ManualClock(), log });
    assert.equal(sys.propagation, undefined);
    const got: unknown[] = [];
    let seen!: () => void;
    const both = new Promise<void>((r) => {
      seen = r;
    });
    const a = sys.spawn((msg: unknown) => {
      got.push(msg);
      if (got.length === 2) seen();
    });
    const ctx = { tp: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` };
    sys.handleRemote(ACTOR_KINDS.send, encode.message(a.id, 'sent', ctx), 'good');
    const r = sys.handleRemoteRequest(
      ACTOR_KINDS.deliver,
      encode.message(a.id, 'delivered', ctx),
      'good',
    );
    await r;
    await both;
    assert.deepEqual(got, ['sent', 'delivered']);
  });
});

describe('fuzz: garbage from a member', () => {
  it('never makes the decoder throw', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...KINDS), anything),
        anything,
        fc.string(),
        (kind, payload, sender) => {
          const d = decodeActorMessage(kind, payload, sender);
          assert.equal(typeof d.ok, 'boolean');
        },
      ),
      { numRuns: RUNS * 2 },
    );
    fc.assert(
      fc.property(structured, ([kind, payload]) => {
        decodeActorMessage(kind, payload, 'evil');
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('never throws from handleRemote, only coded errors from handleRemoteRequest, and a refused message changes nothing', () => {
    const { sys, sent } = victim();
    let refused = 0;
    fc.assert(
      fc.property(
        fc.oneof(structured, fc.tuple(fc.constantFrom(...KINDS), anything)),
        fc.boolean(),
        ([kind, payload], asRequest) => {
          const before = snapshot(sys, sent);
          const verdict = decodeActorMessage(kind, payload, 'evil');
          if (asRequest) {
            try {
              const r = sys.handleRemoteRequest(kind, payload, 'evil');
              if (r instanceof Promise) r.catch(() => {});
            } catch (err) {
              assert.ok(isFoundationError(err), `uncoded throw: ${err}`);
            }
          } else sys.handleRemote(kind, payload, 'evil');
          if (!verdict.ok) {
            refused++;
            assert.deepEqual(snapshot(sys, sent), before, 'a refused message changed state');
          }
        },
      ),
      { numRuns: RUNS * 3 },
    );
    assert.ok(refused > RUNS, `most garbage is refused (${refused})`);
    // Positive control: the same harness does see a change when a valid signal arrives.
    const before = snapshot(sys, sent);
    sys.handleRemote(ACTOR_KINDS.signal, encode.link(new Pid('evil', 9), 1), 'evil');
    assert.notDeepEqual(snapshot(sys, sent), before);
  });
});

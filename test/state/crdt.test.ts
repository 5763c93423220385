// CRDT laws (fast-check) for every type of node.state: join is commutative, associative and
// idempotent on states reached by real histories, and replicas that receive the same deltas in any
// order, with duplicates, converge to the same state and value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type AnyState,
  CausalContext,
  type CrdtKind,
  cloneState,
  decode,
  empty,
  encode,
  type GCounter,
  gcounterInc,
  type InnerKind,
  type InnerState,
  join,
  type Lww,
  MAX_DOT,
  type OrMap,
  type OrSet,
  ormapRemove,
  ormapUpdate,
  orsetAdd,
  orsetRemove,
  type PNCounter,
  pncounterAdd,
  stateValue,
} from '../../src/state/crdt.js';
import { STATE_LIMITS } from '../../src/state/store.js';

type Kind =
  | 'gcounter'
  | 'pncounter'
  | 'orset'
  | 'lww'
  | 'ormap:pncounter'
  | 'ormap:orset'
  | 'ormap:lww';
const KINDS: Kind[] = [
  'gcounter',
  'pncounter',
  'orset',
  'lww',
  'ormap:pncounter',
  'ormap:orset',
  'ormap:lww',
];
const split = (k: Kind): [CrdtKind, InnerKind | undefined] =>
  k.startsWith('ormap:') ? ['ormap', k.slice(6) as InnerKind] : [k as CrdtKind, undefined];

/** One step of a history: replica `r` does op `op` with arguments, or joins replica `arg`'s state. */
type Step = [r: number, op: number, a: number, b: number];
const step = fc.tuple(fc.nat(2), fc.nat(3), fc.nat(4), fc.integer({ min: -3, max: 5 }));

const REPLICAS = ['r0~1', 'r1~1', 'r2~1'];

function innerDelta(
  kind: InnerKind,
  s: InnerState,
  r: string,
  op: number,
  a: number,
  b: number,
  t: number,
): InnerState {
  switch (kind) {
    case 'gcounter':
      return gcounterInc(s as GCounter, r, a + 1);
    case 'pncounter':
      return pncounterAdd(s as PNCounter, r, b === 0 ? 1 : b);
    case 'orset':
      return op % 2 === 0 ? orsetAdd(s as OrSet, r, `e${a}`) : orsetRemove(s as OrSet, `e${a}`);
    case 'lww':
      // Timestamps are arbitrary here (laws must hold for any), the value depends on them.
      return { v: `v${a}${b}`, ts: { wall: t % 7, counter: a }, r } satisfies Lww;
  }
}

/** Runs a history; returns every replica's state and every delta produced (in order). */
function run(k: Kind, steps: Step[]): { states: AnyState[]; deltas: AnyState[] } {
  const [kind, of] = split(k);
  const states = REPLICAS.map(() => empty(kind, of));
  const deltas: AnyState[] = [];
  steps.forEach(([ri, op, a, b], t) => {
    const r = REPLICAS[ri]!;
    const s = states[ri]!;
    if (op === 3) {
      // Gossip: replica ri learns replica a's state (creates causal histories, observed removes).
      join(kind, s, states[a % 3]!);
      return;
    }
    let d: AnyState;
    if (kind === 'ormap') {
      const m = s as OrMap;
      const key = `k${a % 3}`;
      d =
        op === 2
          ? ormapRemove(m, key)
          : ormapUpdate(
              m,
              r,
              key,
              innerDelta(of!, m.vals.get(key) ?? (empty(of!) as InnerState), r, op, a, b, t),
            );
    } else d = innerDelta(kind as InnerKind, s as InnerState, r, op, a, b, t);
    join(kind, s, d);
    deltas.push(cloneState(kind, d));
  });
  return { states, deltas };
}

const enc = (k: Kind, s: AnyState) => JSON.stringify(encode(split(k)[0], s));
const joined = (k: Kind, a: AnyState, b: AnyState) => {
  const c = cloneState(split(k)[0], a);
  join(split(k)[0], c, b);
  return c;
};

describe('CRDT laws', () => {
  for (const k of KINDS) {
    it(`${k}: join is commutative, associative and idempotent`, () => {
      fc.assert(
        fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
          const [a, b, c] = run(k, steps).states as [AnyState, AnyState, AnyState];
          assert.equal(enc(k, joined(k, a, b)), enc(k, joined(k, b, a)));
          assert.equal(
            enc(k, joined(k, joined(k, a, b), c)),
            enc(k, joined(k, a, joined(k, b, c))),
          );
          assert.equal(enc(k, joined(k, a, a)), enc(k, a));
          // Joining changes nothing when nothing is new (the `changed` flag drives notifications).
          assert.equal(join(split(k)[0], cloneState(split(k)[0], a), a), false);
        }),
        { numRuns: 150 },
      );
    });

    it(`${k}: replicas converge whatever the delivery order and duplicates`, () => {
      fc.assert(
        fc.property(
          fc.array(step, { maxLength: 40 }),
          fc.array(fc.nat(), { minLength: 2, maxLength: 2 }),
          fc.array(fc.nat(100), { maxLength: 10 }),
          (steps, seeds, dups) => {
            const [kind, of] = split(k);
            const { states, deltas } = run(k, steps);
            const orders = seeds.map((seed) => {
              const order = [...deltas.keys(), ...dups.filter((d) => d < deltas.length)];
              let x = seed + 1;
              for (let i = order.length - 1; i > 0; i--) {
                x = (x * 1103515245 + 12345) % 2 ** 31;
                const j = x % (i + 1);
                [order[i], order[j]] = [order[j]!, order[i]!];
              }
              return order;
            });
            const replicas = orders.map((order) => {
              const s = empty(kind, of);
              for (const i of order) join(kind, s, deltas[i]!);
              return s;
            });
            // Also: the union of the replicas' own states equals the deltas' join.
            const viaStates = empty(kind, of);
            for (const s of states) join(kind, viaStates, s);
            assert.equal(enc(k, replicas[0]!), enc(k, replicas[1]!));
            assert.equal(enc(k, replicas[0]!), enc(k, viaStates));
            assert.deepEqual(stateValue(kind, replicas[0]!), stateValue(kind, replicas[1]!));
            // The wire form decodes back to an equal state.
            const back = decode(kind, encode(kind, replicas[0]!), STATE_LIMITS, of);
            assert.ok(back.ok);
            assert.equal(enc(k, back.value), enc(k, replicas[0]!));
          },
        ),
        { numRuns: 150 },
      );
    });
  }

  it('OR-set: add wins over a concurrent remove; a remove of what was seen removes it', () => {
    const a = empty('orset') as OrSet;
    const b = empty('orset') as OrSet;
    join('orset', a, orsetAdd(a, 'a~1', 'x'));
    join('orset', b, a);
    const rm = orsetRemove(b, 'x');
    join('orset', b, rm);
    const add = orsetAdd(a, 'a~1', 'x'); // concurrent re-add on a
    join('orset', a, add);
    join('orset', a, rm);
    join('orset', b, add);
    assert.deepEqual(stateValue('orset', a), ['x']);
    assert.deepEqual(stateValue('orset', b), ['x']);
    join('orset', b, orsetRemove(b, 'x'));
    assert.deepEqual(stateValue('orset', b), []);
  });

  it('decoder refuses malformed and oversized states', () => {
    const lim = { ...STATE_LIMITS, maxUnitsPerObject: 10 };
    assert.equal(decode('gcounter', [['a', -1]], lim).ok, false);
    assert.equal(decode('gcounter', [['a', 2 ** 53]], lim).ok, false);
    assert.equal(
      decode(
        'gcounter',
        [
          ['a', 2 ** 52],
          ['b', 2 ** 52],
        ],
        lim,
      ).ok,
      false,
      'unsafe total',
    );
    assert.equal(
      decode(
        'gcounter',
        Array.from({ length: 11 }, (_, i) => [`r${i}`, 1]),
        lim,
      ).ok,
      false,
    );
    // A dot the state's own context has not seen would break the join: refused.
    assert.equal(decode('orset', [[['x', [['a', 2]]]], [[['a', 1]], []]], lim).ok, false);
    assert.equal(decode('lww', [() => 1, 1, 0, 'a'], lim).ok, false);
    assert.equal(decode('lww', ['x'.repeat(70_000), 1, 0, 'a'], STATE_LIMITS).ok, false);
    assert.equal(
      decode('ormap', ['orset', [[], [[], []]], []], lim, 'lww').ok,
      false,
      'wrong inner kind',
    );
    // Dots past MAX_DOT, in a version vector, a cloud or an element.
    assert.equal(decode('orset', [[], [[['a', MAX_DOT + 1]], []]], lim).ok, false);
    assert.equal(decode('orset', [[], [[], [['a', [MAX_DOT + 1]]]]], lim).ok, false);
    assert.equal(decode('orset', [[], [[['a', MAX_DOT]], []]], lim).ok, true);
    // Strings the wire would change (a lone surrogate), as an element, inside one or as a replica.
    assert.equal(decode('orset', [[['\ud800', [['a', 1]]]], [[['a', 1]], []]], lim).ok, false);
    assert.equal(decode('lww', [{ '\udc00': 1 }, 1, 0, 'a'], lim).ok, false);
    assert.equal(decode('gcounter', [['\ud800', 1]], lim).ok, false);
  });

  it('a replica out of dots refuses to add (FND_ERR_STATE_LIMIT) rather than reuse one', () => {
    const s = empty('orset') as OrSet;
    s.ctx.vv.set('a~1', MAX_DOT);
    assert.throws(() => orsetAdd(s, 'a~1', 'x'), { code: 'FND_ERR_STATE_LIMIT' });
  });

  it('an element is kept in canonical form: added with either key order, it encodes the same', () => {
    const a = empty('orset') as OrSet;
    const b = empty('orset') as OrSet;
    join('orset', a, orsetAdd(a, 'r~1', { x: 1, y: 2 }));
    join('orset', b, orsetAdd(b, 'r~1', { y: 2, x: 1 }));
    assert.equal(JSON.stringify(encode('orset', a)), JSON.stringify(encode('orset', b)));
    // Decoded from a peer in the other order: the same form again.
    const wire = [[[{ y: 2, x: 1 }, [['r~1', 1]]]], [[['r~1', 1]], []]];
    const d = decode('orset', wire, STATE_LIMITS);
    assert.ok(d.ok);
    assert.equal(JSON.stringify(encode('orset', d.value)), JSON.stringify(encode('orset', a)));
  });

  it('causal context: dots added out of order compact into the version vector', () => {
    const c = new CausalContext();
    for (let n = 1000; n >= 1; n--) c.add('r', n);
    assert.equal(c.vv.get('r'), 1000);
    assert.equal(c.cloud.size, 0);
    c.add('r', 1002);
    assert.deepEqual([...(c.cloud.get('r') ?? [])], [1002]);
    c.add('r', 1001);
    assert.equal(c.vv.get('r'), 1002);
    assert.equal(c.cloud.size, 0);
    // A version vector that rises past cloud dots (a join) drops them too.
    c.add('r', 1005);
    const other = new CausalContext();
    other.vv.set('r', 1006);
    c.join(other);
    assert.equal(c.vv.get('r'), 1006);
    assert.equal(c.cloud.size, 0);
  });
});

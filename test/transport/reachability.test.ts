// Reachability: a member that loses every connection is re-dialled at once and reported
// unreachable when the dial fails or the window passes; any connection back reports it reachable.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Reachability } from '../../src/transport/reachability.js';
import { ManualClock } from '../../src/util/clock.js';

function setup(windowMs = 200) {
  const clock = new ManualClock();
  const log: string[] = [];
  const r = new Reachability(clock, windowMs, {
    unreachable: (n, why) => log.push(`unreachable ${n}: ${why.split(':')[0]}`),
    reachable: (n) => log.push(`reachable ${n}`),
    redial: (n) => log.push(`redial ${n}`),
  });
  return { clock, log, r };
}

describe('Reachability', () => {
  it('the last connection closing re-dials at once; a failed dial makes the peer unreachable', () => {
    const { log, r } = setup();
    r.up('b');
    r.up('b');
    r.down('b', true);
    assert.deepEqual(log, [], 'one connection left: nothing to do');
    r.down('b', true);
    assert.deepEqual(log, ['redial b']);
    r.dialFailed('b', 'ECONNREFUSED');
    assert.deepEqual(log, [
      'redial b',
      'unreachable b: its connections closed and a re-dial failed',
    ]);
    assert.ok(r.isUnreachable('b'));
    r.up('b');
    assert.ok(!r.isUnreachable('b'));
    assert.equal(log.at(-1), 'reachable b');
  });

  it('no dial answer and no connection back within the window: unreachable when it passes', () => {
    const { clock, log, r } = setup(200);
    r.up('b');
    r.down('b', true);
    clock.tick(199);
    assert.ok(!r.isUnreachable('b'));
    clock.tick(1);
    assert.ok(r.isUnreachable('b'));
    assert.match(log.at(-1)!, /no connection to or from it for 200 ms/);
  });

  it('a connection back within the window cancels the check: no event at all', () => {
    const { clock, log, r } = setup(200);
    r.up('b');
    r.down('b', true);
    clock.tick(50);
    r.up('b');
    clock.tick(1000);
    r.dialFailed('b', 'late');
    assert.deepEqual(log, ['redial b']);
    assert.ok(!r.isUnreachable('b'));
  });

  it('connections closed on purpose (not watched), or a forgotten member, raise nothing', () => {
    const { clock, log, r } = setup(200);
    r.up('b');
    r.down('b', false);
    r.up('c');
    r.down('c', true);
    r.forget('c');
    clock.tick(1000);
    r.dialFailed('c', 'x');
    assert.deepEqual(log, ['redial c']);
    assert.ok(!r.isUnreachable('b') && !r.isUnreachable('c'));
  });
});

// Port bounds at every entry point: 1–65535 for addresses (0 only as "any free port" for the
// listen option). 65536 is the first value past the end; 99999 alone would not catch an
// off-by-one in a bound.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toOptions } from '../src/cli/start.js';
import { decodeMembership } from '../src/cluster/wire.js';
import { FoundationError } from '../src/errors.js';
import { resolveOptions } from '../src/options.js';
import { MSG } from '../src/transport/protocol.js';
import { parseAddress } from '../src/transport/types.js';

function rejectsPort(o: object): void {
  assert.throws(
    () => resolveOptions(o),
    (err: unknown) =>
      err instanceof FoundationError &&
      err.code === 'FND_ERR_INVALID_OPTION' &&
      /port/.test(err.message),
  );
}

describe('port bounds', () => {
  it('the port option accepts 0 and 65535 and refuses 65536 and -1', () => {
    assert.equal(resolveOptions({ port: 65535 }).port, 65535);
    assert.equal(resolveOptions({ port: 0 }).port, 0);
    rejectsPort({ port: 65536 });
    rejectsPort({ port: -1 });
  });

  it('the CLI --port 65536 is refused when the options are resolved', () => {
    rejectsPort(toOptions({ port: '65536' }, {}));
    assert.equal(resolveOptions(toOptions({ port: '65535' }, {})).port, 65535);
  });

  it('addresses (seeds, discovery records) accept 1–65535 only', () => {
    assert.deepEqual(parseAddress('h:65535'), { host: 'h', port: 65535 });
    assert.equal(parseAddress('h:65536'), undefined);
    assert.equal(parseAddress('h:0'), undefined);
    assert.equal(parseAddress('[::1]:65536'), undefined);
    assert.deepEqual(parseAddress('[::1]:1'), { host: '::1', port: 1 });
  });

  it('membership messages carrying port 65536 are refused whole; 65535 is accepted', () => {
    assert.equal(decodeMembership([MSG.ALIVE, 'a', 1, 'h', 65535]).ok, true);
    assert.equal(decodeMembership([MSG.ALIVE, 'a', 1, 'h', 65536]).ok, false);
    assert.equal(decodeMembership([MSG.SYNC, [['a', 1, 0, 'h', 65536]]]).ok, false);
    assert.equal(decodeMembership([MSG.SYNC, [['a', 1, 0, 'h', 65535]]]).ok, true);
  });
});

// Fail fast when a peer's process is gone: its kernel resets the sockets at once, so pending calls
// to it reject with FND_ERR_NODE_UNREACHABLE and `memberUnreachable` fires long before membership
// declares it down (with the `lan` preset, seconds later).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Foundation, type FoundationNode } from '../../src/index.js';
import { nullDiscovery, TEST_SECRET } from '../helpers/nodes.js';
import { NodeProc, until } from '../helpers/proc.js';

describe('a SIGKILLed peer is unreachable at once (real processes)', () => {
  let observer: FoundationNode | undefined;
  let victim: NodeProc | undefined;
  after(async () => {
    await victim?.kill('SIGKILL');
    await observer?.stop();
  });

  it('pending calls reject with FND_ERR_NODE_UNREACHABLE and memberUnreachable fires before memberDown', async () => {
    const cluster = `unreach-${process.pid}-${Date.now()}`;
    observer = await Foundation.start({
      name: 'observer',
      cluster,
      secret: TEST_SECRET,
      preset: 'lan',
      logLevel: 'silent',
      discovery: nullDiscovery(),
    });
    const events: string[] = [];
    observer.on('memberUnreachable', (m) => events.push(`unreachable:${m.name}`));
    observer.on('memberDown', (m) => events.push(`down:${m.name}`));
    victim = new NodeProc('victim', [
      '--cluster',
      cluster,
      '--secret',
      TEST_SECRET,
      '--preset',
      'lan',
      '--seeds',
      observer.address,
    ]);
    await victim.waitFor((e) => e.event === 'started', 20_000, 'victim start');
    await until(
      () => observer!.members().some((m) => m.name === 'victim' && m.status === 'alive'),
      20_000,
      'the victim to be a member',
    );
    const pending = observer.messenger.request('victim', 'hang', null, { timeout: 60_000 });
    const outcome = pending.then(
      () => 'resolved',
      (err: { code?: string }) => err.code,
    );
    await victim.kill('SIGKILL');
    assert.equal(await outcome, 'FND_ERR_NODE_UNREACHABLE');
    assert.deepEqual(events, ['unreachable:victim'], 'unreachable first; not yet declared down');
    assert.notEqual(observer.members().find((m) => m.name === 'victim')?.status, 'down');
    // New calls fail at once too, while membership still waits for its verdict.
    await assert.rejects(observer.messenger.request('victim', 'echo', 1, { timeout: 60_000 }), {
      code: 'FND_ERR_NODE_UNREACHABLE',
    });
    // Membership's verdict follows.
    await until(() => events.includes('down:victim'), 30_000, 'memberDown after the suspicion');
    assert.deepEqual(events, ['unreachable:victim', 'down:victim']);
  });
});

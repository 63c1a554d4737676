// Client→server events with acknowledgements, routed to the plugin that declares them
// (the test plugin notify_rooms.wasm answers `notes:count`).

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { assertStatus, createUser, postNote, useServer, waitForDisconnect } from './harness.mjs';

describe('socket events with acknowledgements', () => {
  const srv = useServer({ notifyRooms: true });
  let B;

  before(async () => {
    B = await createUser(srv.base, srv.admin.cookie);
    assertStatus(await postNote(srv.base, B.cookie, ['all']), 201, 'first note');
    assertStatus(await postNote(srv.base, B.cookie, ['all']), 201, 'second note');
  });

  srv.test('a declared event is answered by its plugin, with or without arguments', async () => {
    const socket = await srv.connect({ cookie: B.cookie });
    const withArgs = await socket.timeout(2000).emitWithAck('notes:count', { page: 1 }, 'second');
    assert.deepEqual(withArgs, { state: 'success', count: 2, args: 2 });
    const withoutArgs = await socket.timeout(2000).emitWithAck('notes:count');
    assert.deepEqual(withoutArgs, { state: 'success', count: 2, args: 0 });
  });

  srv.test('a refusal and an unknown event are error acks with a message', async () => {
    const socket = await srv.connect({ cookie: B.cookie });
    const refused = await socket.timeout(2000).emitWithAck('notes:count', { fail: true });
    assert.deepEqual(refused, { state: 'error', message: 'asked to fail' });
    const unknown = await socket.timeout(2000).emitWithAck('nobody:listens', {});
    assert.equal(unknown.state, 'error');
    assert.match(unknown.message, /unknown event/);
    assert.ok(socket.connected, 'the socket stays connected');
  });

  srv.test('client events are rate limited per socket', async () => {
    const socket = await srv.connect({ cookie: B.cookie });
    const acks = await Promise.all(
      Array.from({ length: 80 }, () => socket.timeout(5000).emitWithAck('notes:count', {})),
    );
    const limited = acks.filter((a) => a.state === 'error' && /too many events/.test(a.message));
    const answered = acks.filter((a) => a.state === 'success');
    assert.ok(answered.length >= 40, `the burst is served: ${answered.length}`);
    assert.ok(limited.length > 0, 'events past the burst are refused');
    assert.ok(socket.connected, 'the socket stays connected');
    const other = await srv.connect({ cookie: B.cookie });
    assert.equal((await other.timeout(2000).emitWithAck('notes:count', {})).state, 'success', 'per socket');
  });

  // Each WebSocket reads through a small buffer (1 KiB, the server's per-socket memory); a
  // message far larger than it, within the 64 KiB limit, still arrives whole.
  for (const transports of [['websocket'], ['polling']]) {
    srv.test(`${transports[0]}: a client message of 60 KiB is answered`, async () => {
      const socket = await srv.connect({ cookie: B.cookie, transports });
      const ack = await socket.timeout(5000).emitWithAck('notes:count', { blob: 'x'.repeat(60 * 1024) }, 2);
      assert.equal(ack.state, 'success', JSON.stringify(ack));
      assert.equal(ack.args, 2, 'both arguments arrived');
      assert.ok(socket.connected, 'the socket stays connected');
    });
  }

  srv.test('an oversized client message closes that socket only', async () => {
    const socket = await srv.connect({ cookie: B.cookie });
    const bystander = await srv.connect({ cookie: B.cookie });
    socket.emit('notes:count', { blob: 'x'.repeat(200 * 1024) });
    await waitForDisconnect(socket, 5_000, 'oversized');
    assert.equal((await bystander.timeout(2000).emitWithAck('notes:count', {})).state, 'success');
  });
});

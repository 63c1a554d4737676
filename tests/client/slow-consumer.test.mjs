// A client that stops reading cannot hold the server up or grow its memory without bound: its
// socket's buffer is bounded (1,024 packets), and once it is full the server disconnects that
// socket (docs/delivery.md), while the other sockets keep receiving everything in order.
//
// The slow client speaks Socket.IO over a raw WebSocket (the `ws` package) so that it can stop
// reading its TCP connection, which no socket.io-client option does.

import { describe } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { api, assertStatus, createUser, useServer } from './harness.mjs';

/** Enough 10 KB notifications to fill the socket's buffer and the kernel's buffers behind it. */
const NOTIFICATIONS = 3000;
const DESCRIPTION = 'x'.repeat(10_000);

/** A raw Socket.IO v5 connection to the default namespace, with the session cookie. */
function rawSocket(base, cookie) {
  const url = `${base.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
  const ws = new WebSocket(url, { headers: { cookie } });
  ws.names = [];
  let disconnected;
  ws.disconnected = new Promise((resolve) => (disconnected = resolve));
  const connected = new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('0')) ws.send('40'); // engine.io open → connect to the namespace
      else if (text.startsWith('40')) resolve(ws); // connected
      else if (text === '2') ws.send('3'); // ping → pong
      else if (text.startsWith('41')) disconnected(true); // the server ended the namespace socket
      else if (text.startsWith('42["NEW_RECORD"')) ws.names.push(JSON.parse(text.slice(2))[1].record.name);
    });
  });
  return connected;
}

describe('a slow consumer', () => {
  const srv = useServer();

  srv.test('is disconnected once its buffer is full; the other sockets get every notification', async () => {
    const reader = await createUser(srv.base, srv.admin.cookie);
    const stalled = await createUser(srv.base, srv.admin.cookie);
    const fast = await srv.connect({ cookie: reader.cookie });
    const slow = await rawSocket(srv.base, stalled.cookie);
    slow._socket.pause(); // stop reading: the server's writes back up

    const names = [];
    for (let i = 0; i < NOTIFICATIONS; i += 1) {
      const name = `Slow ${i}`;
      names.push(name);
      const res = await api(srv.base, 'POST', '/api/v1/departments', {
        cookie: srv.admin.cookie,
        body: { name, description: DESCRIPTION },
      });
      assertStatus(res, 201, `department ${i}`);
    }

    // The fast socket received every notification, in order.
    const deadline = Date.now() + 30_000;
    const received = () => fast.received.filter((e) => e.event === 'NEW_RECORD').map((e) => e.payload.record.name);
    while (received().length < NOTIFICATIONS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(received(), names);

    // The slow one was cut off: once it reads again, it gets what was queued before the cut and
    // then the disconnect packet (socket.io-client reports "io server disconnect"; the client
    // resumes by offset), never a later notification after a gap.
    slow._socket.resume();
    const cut = await Promise.race([slow.disconnected, new Promise((r) => setTimeout(r, 15_000, false))]);
    assert.ok(cut, `the server disconnected the slow socket (it received ${slow.names.length})`);
    assert.ok(slow.names.length < NOTIFICATIONS, `the slow socket received ${slow.names.length} of ${NOTIFICATIONS}`);
    assert.deepEqual(slow.names, names.slice(0, slow.names.length), 'what it received has no gap');
    assert.match(srv.server.output(), /does not keep up/);

    // The server still serves.
    assertStatus(await api(srv.base, 'GET', '/healthz'), 200, 'healthz');
  });
});

// Reconnect under churn: clients that keep disconnecting and resuming from their last offset
// while records change end up having seen every notification, exactly once, in order.

import assert from 'node:assert/strict';
import { api, assertStatus, createUser, prng, sleep, useServer, waitForEvent } from './harness.mjs';

const CLIENTS = 3;
const WRITE_MS = 4_000;

const srv = useServer();

srv.test(`${CLIENTS} churning clients see every notification exactly once, in order`, async () => {
  const created = [];
  let writing = true;
  const writer = (async () => {
    const end = Date.now() + WRITE_MS;
    for (let i = 0; Date.now() < end; i++) {
      const res = await api(srv.base, 'POST', '/api/v1/departments', {
        cookie: srv.admin.cookie,
        body: { name: `churn-${i}` },
      });
      assertStatus(res, 201);
      created.push(res.body);
      await sleep(10);
    }
    writing = false;
  })();

  const client = async (n) => {
    const random = prng(n + 1);
    const account = await createUser(srv.base, srv.admin.cookie);
    const seen = [];
    let offset = 0;
    let connections = 0;
    const session = async (stayMs) => {
      const socket = await srv.connect({ cookie: account.cookie, auth: { offset } });
      connections++;
      socket.on('NEW_RECORD', (p) => {
        seen.push(p);
        offset = p.offset;
      });
      // Anything that arrived between the handshake and the listener above.
      for (const e of socket.received) {
        if (e.event === 'NEW_RECORD' && e.payload.offset > offset) {
          seen.push(e.payload);
          offset = e.payload.offset;
        }
      }
      await waitForEvent(socket, 'RECOVERY', () => true, 5_000);
      await sleep(stayMs);
      socket.disconnect();
    };
    while (writing) await session(50 + random() * 300);
    await session(500); // a last resume after the writes ended
    return { seen, connections };
  };

  const results = await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
  await writer;
  assert.ok(created.length > 50, `records changed during the churn: ${created.length}`);
  for (const [n, { seen, connections }] of results.entries()) {
    assert.ok(connections > 5, `client ${n} reconnected repeatedly: ${connections}`);
    const offsets = seen.map((p) => p.offset);
    assert.deepEqual(offsets, [...new Set(offsets)].sort((a, b) => a - b), `client ${n}: once each, in order`);
    const fromChurn = seen.filter((p) => p.type === 'DEPARTMENT').map((p) => p.record);
    assert.deepEqual(fromChurn, created, `client ${n}: every record, as the HTTP bodies, in commit order`);
  }
});

// Around `connect`: a client may emit, and expects to be notified, as soon as it sees
// `connect` (that is what socket.io clients do), and a plugin's answer to an event is held
// to the same rules as any plugin output.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  DELIVERY_MS,
  api,
  assertStatus,
  connect,
  createUser,
  postNote,
  useServer,
} from './harness.mjs';

describe('around connect', () => {
  const srv = useServer({ notifyRooms: true });
  let B;

  before(async () => {
    B = await createUser(srv.base, srv.admin.cookie);
  });

  srv.test('every event emitted as soon as connect is seen gets its ack', async () => {
    // Many handshakes at once, each emitting the moment it sees `connect`.
    const acks = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const socket = await connect(srv.base, { cookie: B.cookie });
        const ack = await socket.timeout(5_000).emitWithAck('notes:count', {});
        socket.disconnect();
        return ack;
      }),
    );
    const missing = acks.filter((ack) => ack.state !== 'success');
    assert.deepEqual(missing, [], 'every event was answered');
  });

  srv.test('an event emitted before connect (buffered by the client) gets its ack', async () => {
    const sockets = Array.from({ length: 50 }, () =>
      io(srv.base, { transports: ['websocket'], extraHeaders: { Cookie: B.cookie }, forceNew: true, reconnection: false }),
    );
    try {
      // socket.io-client sends these the moment it sees `connect`.
      const acks = await Promise.all(sockets.map((s) => s.timeout(5_000).emitWithAck('notes:count', {})));
      assert.ok(acks.every((ack) => ack.state === 'success'), JSON.stringify(acks));
    } finally {
      for (const s of sockets) s.disconnect();
    }
  });

  srv.test('under a stream of writes, a socket gets everything committed after its connect and every ack', async () => {
    const writer = await createUser(srv.base, srv.admin.cookie);
    const sent = []; // [time the POST was sent, note id]
    let writing = true;
    const writers = Array.from({ length: 4 }, async () => {
      while (writing) {
        const at = Date.now();
        const res = await postNote(srv.base, writer.cookie, ['all']);
        assertStatus(res, 201, 'note');
        sent.push([at, res.body.id]);
      }
    });
    // Sockets connect in waves while the notes stream; each emits the moment it sees
    // `connect`, and remembers when that was.
    const sockets = [];
    const acks = [];
    for (let wave = 0; wave < 8; wave += 1) {
      const batch = await Promise.all(
        Array.from({ length: 15 }, () =>
          connect(srv.base, { cookie: B.cookie }).then((socket) => {
            socket.connectedAt = Date.now();
            acks.push(socket.timeout(5_000).emitWithAck('notes:count', {}));
            return socket;
          }),
        ),
      );
      sockets.push(...batch);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    writing = false;
    await Promise.all(writers);
    await new Promise((resolve) => setTimeout(resolve, DELIVERY_MS));

    const unanswered = (await Promise.all(acks)).filter((ack) => ack.state !== 'success');
    assert.deepEqual(unanswered, [], 'every event emitted at connect was answered');
    const missed = [];
    for (const socket of sockets) {
      const got = new Set(socket.received.filter((e) => e.event === 'NEW_RECORD').map((e) => e.payload.record.id));
      const owed = sent.filter(([at]) => at > socket.connectedAt).map(([, id]) => id);
      const lost = owed.filter((id) => !got.has(id));
      if (lost.length > 0) missed.push(`${socket.id}: ${lost.length} of ${owed.length}`);
      socket.disconnect();
    }
    assert.ok(sent.length > 50, `notes were written meanwhile: ${sent.length}`);
    assert.deepEqual(missed, [], 'sockets that missed notes committed after their connect');
  });

  srv.test('an oversized socket-event answer is a plugin fault, answered with an error ack', async () => {
    const faults = async () => {
      const res = await api(srv.base, 'GET', '/api/v1/admin/plugins', { cookie: srv.admin.cookie });
      assertStatus(res, 200, 'plugins');
      return res.body.find((p) => p.name === "notify-rooms").stats.faults;
    };
    const before = await faults();
    const socket = await connect(srv.base, { cookie: B.cookie });
    const ack = await socket.timeout(10_000).emitWithAck('notes:huge');
    assert.equal(ack.state, 'error');
    const [, errorId] = ack.message.match(/^the plugin failed \(errorId ([0-9a-f-]+)\)$/) ?? [];
    assert.ok(errorId, `the ack names the fault's errorId: ${ack.message}`);
    assert.equal(await faults(), before + 1, 'the fault was counted');
    const logs = `/api/v1/admin/plugins/notify-rooms/logs?errorId=${errorId}`;
    const reason = await api(srv.base, 'GET', logs, { cookie: srv.admin.cookie });
    assertStatus(reason, 200, 'the journal');
    assert.match(reason.body[0]?.message ?? '', /^invalid output: the reply has \d+ bytes/, 'the reason is in the journal');
    assert.equal((await socket.timeout(2_000).emitWithAck('notes:count', {})).state, 'success', 'serves on');
  });
});

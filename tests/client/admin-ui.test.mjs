// The `/admin` namespace, as the official Socket.IO Admin UI (socket.io-admin-ui 0.5) speaks
// it: ADMIN sessions only (cookie, the UI's username/password, or the session it was given),
// `config`, `all_sockets` and `server_stats`, the live socket and room feed, and the UI's
// emit / join / leave / disconnect commands. Also GET /api/v1/admin/sockets.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  api,
  assertStatus,
  connect,
  connectError,
  createUser,
  useServer,
  waitForDisconnect,
  waitForEvent,
} from './harness.mjs';

/** Waits for an `event` whose arguments satisfy `predicate`; resolves with the arguments. */
async function waitForArgs(socket, event, predicate, timeoutMs = 3_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = socket.received.find((e) => e.event === event && predicate(e.args));
    if (found) return found.args;
    if (Date.now() > deadline) {
      const seen = socket.received.filter((e) => e.event === event).map((e) => JSON.stringify(e.args).slice(0, 300));
      throw new assert.AssertionError({ message: `no ${event} matched within ${timeoutMs} ms; seen: ${seen.join('\n')}` });
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the Socket.IO Admin UI namespace', () => {
  const srv = useServer();
  let user;
  const adminNs = () => `${srv.base}/admin`;

  before(async () => {
    user = await createUser(srv.base, srv.admin.cookie);
  });

  srv.test('only ADMIN sessions connect', async () => {
    assert.equal((await connectError(adminNs(), {})).message, 'unauthorized', 'no credentials');
    assert.equal((await connectError(adminNs(), { cookie: user.cookie })).message, 'admins only', "a USER's cookie");
    const wrong = await connectError(adminNs(), { auth: { username: ADMIN_EMAIL, password: 'not the password' } });
    assert.equal(wrong.message, 'unauthorized', 'a wrong password');
    const asUser = await connectError(adminNs(), { auth: { username: user.email, password: user.password } });
    assert.equal(asUser.message, 'admins only', "a USER's password");
    // The USER's own namespace is unaffected.
    const own = await srv.connect({ cookie: user.cookie });
    assert.ok(own.connected);
  });

  srv.test('username and password as the UI sends them: session, config, all_sockets, server_stats', async () => {
    const listener = await srv.connect({ cookie: user.cookie });
    const admin = await connect(adminNs(), { auth: { username: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    const [sessionId] = await waitForArgs(admin, 'session', () => true);
    assert.match(sessionId, /^[0-9a-f]{64}$/, 'the session the UI keeps for reconnects');
    const [config] = await waitForArgs(admin, 'config', () => true);
    for (const feature of ['EMIT', 'JOIN', 'LEAVE', 'DISCONNECT', 'AGGREGATED_EVENTS', 'ALL_EVENTS']) {
      assert.ok(config.supportedFeatures.includes(feature), `feature ${feature}`);
    }
    const [all] = await waitForArgs(admin, 'all_sockets', () => true);
    const seen = all.find((s) => s.id === listener.id);
    assert.ok(seen, 'the USER socket is listed');
    assert.equal(seen.nsp, '/');
    assert.equal(seen.transport, 'websocket');
    assert.equal(seen.data.email, user.email);
    assert.ok(seen.rooms.includes('all') && seen.rooms.includes(`user:${user.user.id}`), `rooms ${seen.rooms}`);
    assert.equal(seen.handshake.headers.cookie, '(hidden)', 'credentials are not shown');
    assert.ok(all.some((s) => s.nsp === '/admin'), 'the admin socket itself is listed');

    const [stats] = await waitForArgs(admin, 'server_stats', () => true, 3_000);
    assert.equal(typeof stats.serverId, 'string');
    assert.equal(typeof stats.uptime, 'number');
    assert.ok(stats.clientsCount >= 2, `clientsCount ${stats.clientsCount}`);
    const main = stats.namespaces.find((n) => n.name === '/');
    assert.ok(main && main.socketsCount >= 1, JSON.stringify(stats.namespaces));
    assert.ok(Array.isArray(stats.aggregatedEvents));

    // The UI reconnects with the session it was given, without the password.
    const again = await connect(adminNs(), { auth: { sessionId } });
    await waitForArgs(again, 'config', () => true);
    assert.equal(again.received.some((e) => e.event === 'session'), false, 'no new session for a known one');
  });

  srv.test('the feed: connections, events, rooms and disconnections of the default namespace', async () => {
    const admin = await connect(adminNs(), { cookie: srv.admin.cookie });
    await waitForArgs(admin, 'config', () => true);

    const other = await createUser(srv.base, srv.admin.cookie);
    const socket = await srv.connect({ cookie: other.cookie });
    const [connected] = await waitForArgs(admin, 'socket_connected', ([s]) => s.id === socket.id);
    assert.equal(connected.data.userId, other.user.id);
    assert.ok(connected.rooms.includes(`user:${other.user.id}`));

    const ack = await socket.timeout(2000).emitWithAck('events:overlapping', 'no-such-event');
    assert.equal(ack.state, 'error');
    const [nsp, id, args] = await waitForArgs(admin, 'event_received', ([, id]) => id === socket.id);
    assert.equal(nsp, '/');
    assert.equal(id, socket.id);
    assert.deepEqual(args, ['events:overlapping', 'no-such-event']);

    const role = await api(srv.base, 'PUT', `/api/v1/users/${other.user.id}/set_role`, {
      cookie: srv.admin.cookie,
      body: { data: { role: 'ADMIN' } },
    });
    assertStatus(role, 200, 'set_role ADMIN');
    await waitForArgs(admin, 'room_joined', ([n, room, sid]) => n === '/' && room === 'admin' && sid === socket.id);

    const gone = socket.id;
    socket.disconnect();
    const [, , reason] = await waitForArgs(admin, 'socket_disconnected', ([, sid]) => sid === gone);
    assert.equal(reason, 'client namespace disconnect');
  });

  srv.test("the UI's commands: join, emit to a room, leave, disconnect", async () => {
    const admin = await connect(adminNs(), { cookie: srv.admin.cookie });
    await waitForArgs(admin, 'config', () => true);
    const target = await srv.connect({ cookie: user.cookie });
    const bystander = await srv.connect({ cookie: user.cookie });

    admin.emit('join', '/', 'visitors', target.id);
    await waitForArgs(admin, 'room_joined', ([, room, sid]) => room === 'visitors' && sid === target.id);
    admin.emit('emit', '/', 'visitors', 'hello', 1, 'two');
    const hello = await waitForEvent(target, 'hello', () => true, 2_000, 'hello to the room');
    assert.equal(hello, 1);
    assert.deepEqual(target.received.find((e) => e.event === 'hello').args, [1, 'two'], 'every argument');
    assert.equal(bystander.received.some((e) => e.event === 'hello'), false, 'not in the room, not sent');

    const listed = await api(srv.base, 'GET', '/api/v1/admin/sockets', { cookie: srv.admin.cookie });
    assertStatus(listed, 200, 'GET /api/v1/admin/sockets');
    const row = listed.body.find((s) => s.id === target.id);
    assert.ok(row && row.rooms.includes('visitors'), JSON.stringify(row));
    assert.equal(row.email, user.email);
    assert.equal(row.role, 'USER');
    assertStatus(await api(srv.base, 'GET', '/api/v1/admin/sockets', { cookie: user.cookie }), 403, 'sockets as a USER');
    assertStatus(await api(srv.base, 'GET', '/api/v1/admin/sockets'), 401, 'sockets without a session');

    admin.emit('leave', '/', 'visitors', target.id);
    await waitForArgs(admin, 'room_left', ([, room, sid]) => room === 'visitors' && sid === target.id);

    const disconnected = waitForDisconnect(target, 2_000, 'target');
    admin.emit('_disconnect', '/', false, target.id);
    await disconnected;
    assert.ok(bystander.connected, 'only the named socket is disconnected');
  });
});


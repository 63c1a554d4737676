// Logout tests: POST /api/v1/logout ends one session; its sockets are
// disconnected and its cookie no longer opens a socket, while the same user's
// other session keeps working. A cross-site logout is refused. A socket whose
// handshake completes as its session ends is disconnected too.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  DELIVERY_MS,
  connect,
  EVIL_ORIGIN,
  api,
  assertStatus,
  connectError,
  createUser,
  newSession,
  postDepartment,
  useServer,
  waitForDisconnect,
  waitForEvent,
  withRecordId,
} from './harness.mjs';

describe('logout', () => {
  const srv = useServer();
  let B1, B2;

  before(async () => {
    B1 = await createUser(srv.base, srv.admin.cookie);
    B2 = await newSession(srv.base, B1);
  });

  srv.test("logout disconnects the session's sockets and only those", async () => {
    const b1ws = await srv.connect({ cookie: B1.cookie, transports: ['websocket'] });
    const b1poll = await srv.connect({ cookie: B1.cookie, transports: ['polling'] });
    const b2 = await srv.connect({ cookie: B2.cookie });
    const a = await srv.connect({ cookie: srv.admin.cookie });

    const wsGone = waitForDisconnect(b1ws, 2_000, 'B1 websocket socket');
    const pollGone = waitForDisconnect(b1poll, 2_000, 'B1 polling socket');
    const res = await api(srv.base, 'POST', '/api/v1/logout', { cookie: B1.cookie });
    assertStatus(res, 204, 'POST /api/v1/logout');
    await Promise.all([wsGone, pollGone]);

    // The ended session is gone for HTTP and for new handshakes.
    assertStatus(await api(srv.base, 'GET', '/api/v1/user', { cookie: B1.cookie }), 401, 'GET /api/v1/user after logout');
    for (const transports of [['websocket'], ['polling']]) {
      const err = await connectError(srv.base, { cookie: B1.cookie, transports });
      assert.equal(err.message, 'unauthorized', `${transports[0]} handshake with the logged-out cookie`);
    }

    // The other session of the same user is untouched and still receives.
    assert.ok(b2.connected, "B's other session's socket is still connected");
    const me = await api(srv.base, 'GET', '/api/v1/user', { cookie: B2.cookie });
    assertStatus(me, 200, 'GET /api/v1/user with the other session');
    assert.equal(me.body.id, B1.user.id);

    const dept = await postDepartment(srv.base, srv.admin.cookie);
    assertStatus(dept, 201, 'department after the logout');
    await waitForEvent(b2, 'NEW_RECORD', withRecordId(dept.body.id), DELIVERY_MS, "B's other session");
    await waitForEvent(a, 'NEW_RECORD', withRecordId(dept.body.id), DELIVERY_MS, 'admin');
    assert.ok(b2.connected && a.connected);
  });

  srv.test('a socket that completes its handshake as its session ends is disconnected too', async () => {
    // A logout that lands just after a socket's `connect` but before the server has put the
    // socket in its session's room must still end it. Each round logs out the moment the
    // first of a session's sockets connects: every socket must then be refused or disconnected.
    for (let round = 1; round <= 20; round += 1) {
      const session = await newSession(srv.base, B1);
      const opening = Array.from({ length: 4 }, () => connect(srv.base, { cookie: session.cookie }));
      await Promise.race(opening);
      assertStatus(await api(srv.base, 'POST', '/api/v1/logout', { cookie: session.cookie }), 204, `round ${round}: logout`);
      await Promise.all(
        opening.map((opened, i) =>
          opened.then(
            (socket) => waitForDisconnect(socket, 2_000, `round ${round}: socket ${i}`),
            (err) => assert.equal(err.connectError?.message, 'unauthorized', `round ${round}: socket ${i}`),
          ),
        ),
      );
    }
  });

  srv.test('a logout with a foreign Origin is refused and the session survives', async () => {
    const session = await newSession(srv.base, B1);
    const socket = await srv.connect({ cookie: session.cookie });

    const res = await api(srv.base, 'POST', '/api/v1/logout', {
      cookie: session.cookie,
      headers: { origin: EVIL_ORIGIN },
    });
    assertStatus(res, 403, 'cross-site logout');

    assertStatus(await api(srv.base, 'GET', '/api/v1/user', { cookie: session.cookie }), 200, 'session still valid');
    const dept = await postDepartment(srv.base, srv.admin.cookie);
    assertStatus(dept, 201, 'department');
    await waitForEvent(socket, 'NEW_RECORD', withRecordId(dept.body.id), DELIVERY_MS, 'socket of the session');
    assert.ok(socket.connected, 'socket still connected');
  });
});

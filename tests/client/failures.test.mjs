// Failure tests: a request that fails (403 not allowed, 400 invalid body,
// 401 no session, 403 foreign Origin) changes nothing and emits nothing to
// any socket; the Origin rule admits no Origin and the server's own origin.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  DELIVERY_MS,
  EVIL_ORIGIN,
  QUIET_MS,
  api,
  assertStatus,
  createUser,
  notificationsSince,
  postDepartment,
  sleep,
  useServer,
  waitForEvent,
  withRecordId,
} from './harness.mjs';

describe('failed requests emit nothing', () => {
  const srv = useServer();
  let B;

  before(async () => {
    B = await createUser(srv.base, srv.admin.cookie);
  });

  /** Admin and user sockets on both transports, plus their event marks. */
  async function watchers() {
    const sockets = {
      adminWs: await srv.connect({ cookie: srv.admin.cookie, transports: ['websocket'] }),
      adminPoll: await srv.connect({ cookie: srv.admin.cookie, transports: ['polling'] }),
      userWs: await srv.connect({ cookie: B.cookie, transports: ['websocket'] }),
      userPoll: await srv.connect({ cookie: B.cookie, transports: ['polling'] }),
    };
    const marks = Object.fromEntries(Object.entries(sockets).map(([n, s]) => [n, s.received.length]));
    return { sockets, marks };
  }

  /**
   * Waits QUIET_MS, then has the admin create a department (a notification
   * every socket must get: proves they are live), and asserts that it is the
   * only notification each socket received since `marks`.
   */
  async function expectOnlySentinel({ sockets, marks }, what) {
    await sleep(QUIET_MS);
    for (const [name, socket] of Object.entries(sockets)) {
      assert.deepEqual(notificationsSince(socket, marks[name]), [], `${what}: ${name} received nothing`);
    }
    const sentinel = await postDepartment(srv.base, srv.admin.cookie);
    assertStatus(sentinel, 201, 'sentinel department');
    for (const [name, socket] of Object.entries(sockets)) {
      await waitForEvent(socket, 'NEW_RECORD', withRecordId(sentinel.body.id), DELIVERY_MS, `${name} (sentinel)`);
      const got = notificationsSince(socket, marks[name]);
      assert.equal(got.length, 1, `${what}: ${name} received only the sentinel: ${JSON.stringify(got)}`);
    }
  }

  /** The public department list has no department named `name`. */
  async function assertNoDepartmentNamed(name) {
    const list = await api(srv.base, 'GET', '/api/v1/departments');
    assertStatus(list, 200, 'GET /api/v1/departments');
    assert.ok(Array.isArray(list.body), `department list is an array: ${list.text.slice(0, 200)}`);
    assert.equal(list.body.filter((d) => d.name === name).length, 0, `no department "${name}" was stored`);
  }

  srv.test('a department POST by a non-admin answers 403 and emits nothing', async () => {
    const w = await watchers();
    const name = `Forbidden ${randomUUID()}`;
    const res = await postDepartment(srv.base, B.cookie, { name });
    assertStatus(res, 403, 'department POST by a USER');
    assert.equal(typeof res.body?.error, 'string', `error body: ${res.text}`);
    await assertNoDepartmentNamed(name);
    await expectOnlySentinel(w, 'non-admin POST');
  });

  srv.test('a department POST with an invalid body answers 400 and emits nothing', async () => {
    const w = await watchers();
    const invalid = [
      ['malformed JSON', '{"name": "Broken", "description": '],
      ['wrong field types', JSON.stringify({ name: 42, description: ['not', 'text'] })],
    ];
    for (const [what, raw] of invalid) {
      const res = await api(srv.base, 'POST', '/api/v1/departments', { cookie: srv.admin.cookie, raw });
      assertStatus(res, 400, `department POST with ${what}`);
      assert.equal(typeof res.body?.error, 'string', `${what}: error body: ${res.text}`);
    }
    await expectOnlySentinel(w, 'invalid body');
  });

  srv.test('a department POST without a session answers 401 and emits nothing', async () => {
    const w = await watchers();
    const name = `Anonymous ${randomUUID()}`;
    const res = await postDepartment(srv.base, undefined, { name });
    assertStatus(res, 401, 'department POST without a session');
    await assertNoDepartmentNamed(name);
    await expectOnlySentinel(w, 'no session');
  });
});

describe('Origin check on state-changing HTTP requests', () => {
  const srv = useServer();

  srv.test('a POST with a foreign Origin answers 403, stores nothing and emits nothing', async () => {
    const socket = await srv.connect({ cookie: srv.admin.cookie });
    const mark = socket.received.length;

    const name = `Cross-site ${randomUUID()}`;
    const res = await postDepartment(srv.base, srv.admin.cookie, { name, headers: { origin: EVIL_ORIGIN } });
    assertStatus(res, 403, `department POST with Origin ${EVIL_ORIGIN}`);

    // Creating a user cross-site is refused too, and the user does not exist.
    const email = `cross-site-${randomUUID().slice(0, 8)}@example.com`;
    const password = 'cross-site-password';
    const userRes = await api(srv.base, 'POST', '/api/v1/users', {
      cookie: srv.admin.cookie,
      headers: { origin: EVIL_ORIGIN },
      body: { email, password, role: 'USER', firstName: 'Cross', lastName: 'Site' },
    });
    assertStatus(userRes, 403, `user POST with Origin ${EVIL_ORIGIN}`);
    const attempt = await api(srv.base, 'POST', '/api/v1/auth/login', { body: { email, password } });
    assertStatus(attempt, 401, 'the cross-site user was not created');

    const list = await api(srv.base, 'GET', '/api/v1/departments');
    assertStatus(list, 200, 'GET /api/v1/departments');
    assert.equal(list.body.filter((d) => d.name === name).length, 0, 'no department was stored');

    await sleep(QUIET_MS);
    assert.deepEqual(notificationsSince(socket, mark), [], 'nothing was emitted');
    // The socket is live: an allowed request's notification arrives.
    const ok = await postDepartment(srv.base, srv.admin.cookie);
    assertStatus(ok, 201, 'department POST without Origin');
    await waitForEvent(socket, 'NEW_RECORD', withRecordId(ok.body.id), DELIVERY_MS, 'sentinel');
    assert.equal(notificationsSince(socket, mark).length, 1, 'only the allowed request emitted');
  });

  srv.test("a POST with the server's own Origin is allowed", async () => {
    const socket = await srv.connect({ cookie: srv.admin.cookie });
    const res = await postDepartment(srv.base, srv.admin.cookie, { headers: { origin: srv.origin } });
    assertStatus(res, 201, `department POST with Origin ${srv.origin}`);
    const payload = await waitForEvent(socket, 'NEW_RECORD', withRecordId(res.body.id), DELIVERY_MS);
    assert.deepEqual(payload.record, res.body);
  });

  srv.test('a GET with a foreign Origin is served (reads are not state-changing)', async () => {
    const res = await api(srv.base, 'GET', '/api/v1/user', {
      cookie: srv.admin.cookie,
      headers: { origin: EVIL_ORIGIN },
    });
    assertStatus(res, 200, `GET /api/v1/user with Origin ${EVIL_ORIGIN}`);
    assert.equal(res.body.id, srv.admin.user.id);
  });
});

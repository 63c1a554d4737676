// Delivery tests: a department created over HTTP reaches every signed-in
// socket as NEW_RECORD {type, record, offset} on both transports; offsets
// increase and are shared by all recipients; x-metadata-socketid excludes
// only the named socket.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  DELIVERY_MS,
  QUIET_MS,
  assertOffset,
  assertStatus,
  createUser,
  eventsOf,
  expectNoEvent,
  newSession,
  postDepartment,
  sleep,
  useServer,
  waitForEvent,
  withRecordId,
} from './harness.mjs';

describe('NEW_RECORD delivery', () => {
  const srv = useServer();
  /** A plain user, signed in separately from the admin. */
  let userB;

  before(async () => {
    userB = await createUser(srv.base, srv.admin.cookie);
  });

  for (const transports of [['websocket'], ['polling']]) {
    const t = transports[0];

    srv.test(`${t}: a department created over HTTP reaches the admin and another user`, async () => {
      const a = await srv.connect({ cookie: srv.admin.cookie, transports });
      const b = await srv.connect({ cookie: userB.cookie, transports });

      const res = await postDepartment(srv.base, srv.admin.cookie);
      assertStatus(res, 201, 'POST /api/v1/departments');
      for (const key of ['id', 'name', 'description', 'createdAt', 'updatedAt']) {
        assert.ok(key in res.body, `department has ${key}: ${res.text}`);
      }

      for (const [who, socket] of [['admin A', a], ['user B', b]]) {
        const payload = await waitForEvent(socket, 'NEW_RECORD', withRecordId(res.body.id), DELIVERY_MS, who);
        assert.equal(payload.type, 'DEPARTMENT', `${who}: type`);
        assert.deepEqual(payload.record, res.body, `${who}: record equals the HTTP response body`);
        assertOffset(payload.offset, `${who}: offset`);
      }

      // Exactly once per socket, even for the admin (in rooms all + admin).
      await sleep(QUIET_MS);
      assert.equal(eventsOf(a, 'NEW_RECORD', withRecordId(res.body.id)).length, 1, 'A got it once');
      assert.equal(eventsOf(b, 'NEW_RECORD', withRecordId(res.body.id)).length, 1, 'B got it once');
    });
  }

  srv.test('successive notifications have increasing offsets, the same for every recipient', async () => {
    // Mixed transports: the offset must not depend on how a socket is connected.
    const a = await srv.connect({ cookie: srv.admin.cookie, transports: ['websocket'] });
    const b = await srv.connect({ cookie: userB.cookie, transports: ['polling'] });
    const sockets = [a, b];

    const offsets = [];
    for (let i = 0; i < 2; i += 1) {
      const res = await postDepartment(srv.base, srv.admin.cookie);
      assertStatus(res, 201, `department ${i + 1}`);
      const seen = await Promise.all(
        sockets.map((s) => waitForEvent(s, 'NEW_RECORD', withRecordId(res.body.id), DELIVERY_MS)),
      );
      for (const p of seen) assertOffset(p.offset);
      assert.equal(seen[0].offset, seen[1].offset, `department ${i + 1}: A and B see the same offset`);
      offsets.push(seen[0].offset);
    }
    assert.ok(offsets[1] > offsets[0], `offsets increase: ${offsets[0]} then ${offsets[1]}`);
  });

  srv.test('x-metadata-socketid keeps the notification from that socket only', async () => {
    const a1 = await srv.connect({ cookie: srv.admin.cookie, transports: ['websocket'] });
    const a2 = await srv.connect({ cookie: srv.admin.cookie, transports: ['polling'] }); // same session
    const bSession2 = await newSession(srv.base, userB);
    const b = await srv.connect({ cookie: bSession2.cookie });

    const res = await postDepartment(srv.base, srv.admin.cookie, { headers: { 'x-metadata-socketid': a1.id } });
    assertStatus(res, 201, 'POST with x-metadata-socketid');
    const match = withRecordId(res.body.id);

    await waitForEvent(b, 'NEW_RECORD', match, DELIVERY_MS, 'user B');
    await waitForEvent(a2, 'NEW_RECORD', match, DELIVERY_MS, "A's other socket of the same session");
    await expectNoEvent(a1, 'NEW_RECORD', match, QUIET_MS, 'the requesting socket');

    // a1 is still live: the next notification (without the header) reaches it.
    const next = await postDepartment(srv.base, srv.admin.cookie);
    assertStatus(next, 201, 'second department');
    await waitForEvent(a1, 'NEW_RECORD', withRecordId(next.body.id), DELIVERY_MS, 'a1, next notification');
    assert.equal(eventsOf(a1, 'NEW_RECORD', match).length, 0, 'a1 never got the excluded notification');
  });
});

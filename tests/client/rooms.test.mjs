// Room tests with the test plugin notify_rooms.wasm (record type NOTE,
// collection notes): user, admin and session rooms reach exactly the right
// sockets, a socket in several targeted rooms gets a notification once, and
// x-metadata-socketid / toSelf decide whether the requesting socket gets it.

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
  postNote,
  sleep,
  useServer,
  waitForEvent,
  withRecordId,
} from './harness.mjs';

describe('rooms (notify_rooms test plugin)', () => {
  const srv = useServer({ notifyRooms: true });
  /** Sessions: A = bootstrap admin, A2 = another admin, B1/B2 = two sessions of user B, C = another user. */
  let A, A2, B1, B2, C;

  before(async () => {
    A = srv.admin;
    A2 = await createUser(srv.base, A.cookie, { role: 'ADMIN' });
    B1 = await createUser(srv.base, A.cookie);
    B2 = await newSession(srv.base, B1);
    C = await createUser(srv.base, A.cookie);
  });

  /** One socket per session plus a second (polling) socket in B1; all connected. */
  async function connectAll() {
    const s = {
      a: await srv.connect({ cookie: A.cookie }),
      a2: await srv.connect({ cookie: A2.cookie }),
      b1: await srv.connect({ cookie: B1.cookie }),
      b1x: await srv.connect({ cookie: B1.cookie, transports: ['polling'] }),
      b2: await srv.connect({ cookie: B2.cookie }),
      c: await srv.connect({ cookie: C.cookie }),
    };
    return s;
  }

  /** Posts a note and checks the HTTP answer. */
  async function note(session, targets, options = {}) {
    const res = await postNote(srv.base, session.cookie, targets, options);
    assertStatus(res, 201, `POST /api/v1/notes ${JSON.stringify(targets)}`);
    for (const key of ['id', 'targets', 'toSelf', 'createdAt', 'updatedAt']) {
      assert.ok(key in res.body, `note has ${key}: ${res.text}`);
    }
    assert.deepEqual(res.body.targets, targets);
    return res.body;
  }

  /** Waits until every socket in `sockets` got the note, checking the payload. */
  async function expectDelivered(sockets, record) {
    const payloads = await Promise.all(
      Object.entries(sockets).map(async ([name, socket]) => {
        const p = await waitForEvent(socket, 'NEW_RECORD', withRecordId(record.id), DELIVERY_MS, name);
        assert.equal(p.type, 'NOTE', `${name}: type`);
        assert.deepEqual(p.record, record, `${name}: record equals the HTTP response body`);
        assertOffset(p.offset, `${name}: offset`);
        return p;
      }),
    );
    const offsets = new Set(payloads.map((p) => p.offset));
    assert.equal(offsets.size, 1, `one offset for every recipient: ${[...offsets]}`);
  }

  /** Asserts (after QUIET_MS) that none of `sockets` got the note. */
  async function expectNotDelivered(sockets, record) {
    await Promise.all(
      Object.entries(sockets).map(([name, socket]) =>
        expectNoEvent(socket, 'NEW_RECORD', withRecordId(record.id), QUIET_MS, name),
      ),
    );
  }

  /**
   * A note to `all` proves every socket is still live; afterwards the earlier
   * note must still be absent from `absent`.
   */
  async function sentinel(all, absentRecord, absent = {}) {
    const s = await note(A, ['all']);
    await expectDelivered(all, s);
    if (!absentRecord) return;
    for (const [name, socket] of Object.entries(absent)) {
      assert.equal(eventsOf(socket, 'NEW_RECORD', withRecordId(absentRecord.id)).length, 0, `${name} never got it`);
    }
  }

  const pick = (s, ...names) => Object.fromEntries(names.map((n) => [n, s[n]]));

  srv.test('a note to user:<B> reaches both sessions of B and no one else', async () => {
    const s = await connectAll();
    const record = await note(A, [`user:${B1.user.id}`]);
    await expectDelivered(pick(s, 'b1', 'b1x', 'b2'), record);
    const absent = pick(s, 'a', 'a2', 'c');
    await expectNotDelivered(absent, record);
    await sentinel(s, record, absent);
  });

  srv.test('a note to admins reaches admin sockets only', async () => {
    const s = await connectAll();
    const record = await note(B1, ['admins']); // sent by a plain user
    await expectDelivered(pick(s, 'a', 'a2'), record);
    const absent = pick(s, 'b1', 'b1x', 'b2', 'c');
    await expectNotDelivered(absent, record);
    await sentinel(s, record, absent);
  });

  srv.test("a note to my-session reaches only the caller's session, not the same user's other session", async () => {
    const s = await connectAll();
    const record = await note(B1, ['my-session']);
    await expectDelivered(pick(s, 'b1', 'b1x'), record);
    const absent = pick(s, 'b2', 'a', 'a2', 'c');
    await expectNotDelivered(absent, record);
    await sentinel(s, record, absent);
  });

  srv.test('a socket in several targeted rooms receives the note exactly once', async () => {
    const s = await connectAll();

    const fromB = await note(B1, ['all', `user:${B1.user.id}`, 'my-session']);
    await expectDelivered(s, fromB);

    const fromA = await note(A, ['admins', 'all', `user:${A.user.id}`, 'my-session']);
    await expectDelivered(s, fromA);

    await sentinel(s);
    await sleep(QUIET_MS);
    for (const [name, socket] of Object.entries(s)) {
      assert.equal(eventsOf(socket, 'NEW_RECORD', withRecordId(fromB.id)).length, 1, `${name}: B's note once`);
      assert.equal(eventsOf(socket, 'NEW_RECORD', withRecordId(fromA.id)).length, 1, `${name}: A's note once`);
    }
  });

  srv.test('x-metadata-socketid keeps the note from that socket; toSelf delivers it anyway', async () => {
    const s = await connectAll();
    const aOther = await srv.connect({ cookie: A.cookie, transports: ['polling'] }); // A's session, 2nd socket

    const excluded = await note(A, ['all'], { socketId: s.a.id });
    await expectDelivered({ ...pick(s, 'a2', 'b1', 'b1x', 'b2', 'c'), aOther }, excluded);
    await expectNotDelivered(pick(s, 'a'), excluded);

    const toSelf = await note(A, ['all'], { socketId: s.a.id, toSelf: true });
    assert.equal(toSelf.toSelf, true, 'the note records toSelf');
    await expectDelivered({ ...s, aOther }, toSelf);

    // The excluded note never turned up later either.
    assert.equal(eventsOf(s.a, 'NEW_RECORD', withRecordId(excluded.id)).length, 0, 'a never got the excluded note');
  });

  srv.test('notes carry increasing offsets', async () => {
    const s = await connectAll();
    const first = await note(A, ['all']);
    const p1 = await waitForEvent(s.c, 'NEW_RECORD', withRecordId(first.id));
    const second = await note(B1, ['all']);
    const p2 = await waitForEvent(s.c, 'NEW_RECORD', withRecordId(second.id));
    assert.ok(p2.offset > p1.offset, `offsets increase: ${p1.offset} then ${p2.offset}`);
  });
});

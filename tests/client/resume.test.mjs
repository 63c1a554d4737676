// Resuming by offset: a client that reconnects with the last offset it saw (handshake
// `auth: {offset}`) gets what it missed, in order, then live delivery with no gap and no
// duplicate, and a RECOVERY event that says whether nothing was lost; replay only includes
// what the resuming session may see.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  DELIVERY_MS,
  api,
  assertStatus,
  createUser,
  eventsOf,
  newSession,
  postDepartment,
  postNote,
  sleep,
  useServer,
  waitForEvent,
  withRecordId,
} from './harness.mjs';

const offsetsOf = (socket) => eventsOf(socket, 'NEW_RECORD').map((e) => e.offset);

describe('resume by offset', () => {
  const srv = useServer({ notifyRooms: true });
  let B, B2, C;

  before(async () => {
    B = await createUser(srv.base, srv.admin.cookie);
    B2 = await newSession(srv.base, B);
    C = await createUser(srv.base, srv.admin.cookie);
  });

  srv.test('missed notifications are replayed in order, then live, each once', async () => {
    const first = await srv.connect({ cookie: B.cookie });
    const created = await postDepartment(srv.base, srv.admin.cookie, { name: `before-${Date.now()}` });
    assertStatus(created, 201);
    const seen = await waitForEvent(first, 'NEW_RECORD', withRecordId(created.body.id));
    first.disconnect();

    const missed = [];
    for (let i = 0; i < 5; i++) {
      const res = await postDepartment(srv.base, srv.admin.cookie, { name: `missed-${i}-${Date.now()}` });
      assertStatus(res, 201);
      missed.push(res.body);
    }
    const resumed = await srv.connect({ cookie: B.cookie, auth: { offset: seen.offset } });
    const recovery = await waitForEvent(resumed, 'RECOVERY');
    assert.equal(recovery.complete, true);
    const replayed = eventsOf(resumed, 'NEW_RECORD');
    assert.deepEqual(replayed.map((p) => p.record), missed, 'every missed record, in order, as the HTTP bodies');
    assert.equal(recovery.offset, replayed.at(-1).offset, 'RECOVERY names the last replayed offset');

    const live = await postDepartment(srv.base, srv.admin.cookie, { name: `live-${Date.now()}` });
    await waitForEvent(resumed, 'NEW_RECORD', withRecordId(live.body.id));
    await sleep(DELIVERY_MS / 2);
    const offsets = offsetsOf(resumed);
    assert.deepEqual(offsets, [...new Set(offsets)].sort((a, b) => a - b), 'strictly increasing, no duplicate');
    assert.equal(offsets.length, missed.length + 1, 'no gap and nothing extra');
  });

  srv.test('replay holds only what the resuming session may see', async () => {
    const probe = await srv.connect({ cookie: B.cookie });
    const mark = await postNote(srv.base, B.cookie, ['all']);
    const start = (await waitForEvent(probe, 'NEW_RECORD', withRecordId(mark.body.id))).offset;
    probe.disconnect();

    const toB2Session = await postNote(srv.base, B2.cookie, ['my-session']);
    const toC = await postNote(srv.base, C.cookie, [`user:${C.user.id}`]);
    const toAdmins = await postNote(srv.base, C.cookie, ['admins']);
    const toB = await postNote(srv.base, C.cookie, [`user:${B.user.id}`]);
    for (const res of [toB2Session, toC, toAdmins, toB]) assertStatus(res, 201);

    const resumed = await srv.connect({ cookie: B.cookie, auth: { offset: start } });
    const recovery = await waitForEvent(resumed, 'RECOVERY');
    assert.equal(recovery.complete, true);
    const ids = eventsOf(resumed, 'NEW_RECORD').map((p) => p.record.id);
    assert.deepEqual(ids, [toB.body.id], "only B's own note: not B2's session, C's or the admins'");

    const admin = await srv.connect({ cookie: srv.admin.cookie, auth: { offset: start } });
    await waitForEvent(admin, 'RECOVERY');
    const adminIds = eventsOf(admin, 'NEW_RECORD').map((p) => p.record.id);
    assert.deepEqual(adminIds, [toAdmins.body.id], 'the admin room is replayed to admins');
  });

  srv.test('a role change takes effect on open sockets and on replay', async () => {
    const D = await createUser(srv.base, srv.admin.cookie);
    const setRole = async (role) =>
      assertStatus(
        await api(srv.base, 'PUT', `/api/v1/users/${D.user.id}/set_role`, {
          cookie: srv.admin.cookie,
          body: { data: { role } },
        }),
        200,
        `set_role ${role}`,
      );
    const socket = await srv.connect({ cookie: D.cookie });
    await setRole('ADMIN');
    const changed = await waitForEvent(socket, 'CHANGED_RECORD', (p) => p.type === 'USER');
    assert.equal(changed.record.role, 'ADMIN', 'the user is told about the change');
    const asAdmin = await postNote(srv.base, B.cookie, ['admins']);
    await waitForEvent(socket, 'NEW_RECORD', withRecordId(asAdmin.body.id));

    await setRole('USER');
    await waitForEvent(socket, 'CHANGED_RECORD', (p) => p.type === 'USER' && p.record.role === 'USER');
    const afterDowngrade = await postNote(srv.base, B.cookie, ['admins']);
    const marker = await postNote(srv.base, B.cookie, [`user:${D.user.id}`]);
    await waitForEvent(socket, 'NEW_RECORD', withRecordId(marker.body.id));
    assert.equal(eventsOf(socket, 'NEW_RECORD', withRecordId(afterDowngrade.body.id)).length, 0, 'no admin note after the downgrade');

    // Replaying from before the promotion: the admin note is not replayed to a USER.
    const resumed = await srv.connect({ cookie: D.cookie, auth: { offset: changed.offset - 1 } });
    await waitForEvent(resumed, 'RECOVERY');
    const replayedIds = eventsOf(resumed, 'NEW_RECORD').map((p) => p.record.id);
    assert.deepEqual(replayedIds, [marker.body.id], 'only what D may see now');
  });

  srv.test('an offset the server never handed out is an incomplete recovery', async () => {
    const resumed = await srv.connect({ cookie: B.cookie, auth: { offset: 10_000_000 } });
    const recovery = await waitForEvent(resumed, 'RECOVERY');
    assert.equal(recovery.complete, false);
    assert.equal(eventsOf(resumed, 'NEW_RECORD').length, 0);
  });
});

// The EVENT plugin's client→server event `events:overlapping` over a real socket (it stands in
// for events-api's `affectedLessons`, which needs Untis data; docs/events-api.md): event id →
// the ids of the published events that overlap it in time and share a department or a class.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { api, assertStatus, createUser, useServer } from './harness.mjs';

const EVENTS = '/api/v1/events';

describe('events:overlapping', () => {
  const srv = useServer();
  let author;
  /** Published: same department and overlapping (hit), same department later (miss), another department (miss). */
  let hit, later, elsewhere;
  /** The author's draft that is asked about. */
  let draft;

  /** An event by `account` from `start` to `end` in `department`, published by the admin if asked. */
  async function event(account, department, start, end, { publish = false } = {}) {
    const created = await api(srv.base, 'POST', EVENTS, { cookie: account.cookie, body: { start, end } });
    assertStatus(created, 201, 'create an event');
    const id = created.body.id;
    const data = { data: { departmentIds: [department], description: `event ${start}` } };
    assertStatus(await api(srv.base, 'PUT', `${EVENTS}/${id}`, { cookie: account.cookie, body: data }), 200, 'edit');
    if (publish) {
      for (const state of ['REVIEW', 'PUBLISHED']) {
        const body = { data: { ids: [id], state } };
        assertStatus(await api(srv.base, 'POST', `${EVENTS}/change_state`, { cookie: srv.admin.cookie, body }), 201, state);
      }
    }
    return id;
  }

  before(async () => {
    author = await createUser(srv.base, srv.admin.cookie);
    const department = async (name) => {
      const res = await api(srv.base, 'POST', '/api/v1/departments', { cookie: srv.admin.cookie, body: { name } });
      assertStatus(res, 201, 'create a department');
      return res.body.id;
    };
    const [D, other] = [await department('Overlap D'), await department('Overlap E')];
    hit = await event(srv.admin, D, '2027-03-01T08:00:00.000Z', '2027-03-01T12:00:00.000Z', { publish: true });
    later = await event(srv.admin, D, '2027-03-01T13:00:00.000Z', '2027-03-01T14:00:00.000Z', { publish: true });
    elsewhere = await event(srv.admin, other, '2027-03-01T09:00:00.000Z', '2027-03-01T10:00:00.000Z', {
      publish: true,
    });
    draft = await event(author, D, '2027-03-01T11:00:00.000Z', '2027-03-01T12:30:00.000Z');
  });

  srv.test('answers the published events that overlap in time and share a department', async () => {
    const socket = await srv.connect({ cookie: author.cookie });
    const ack = await socket.timeout(2000).emitWithAck('events:overlapping', draft);
    assert.deepEqual(ack, { state: 'success', ids: [hit] });
    assert.ok(!ack.ids.includes(later) && !ack.ids.includes(elsewhere));
  });

  srv.test('an unknown event or missing argument is an error ack', async () => {
    const socket = await srv.connect({ cookie: author.cookie });
    assert.deepEqual(await socket.timeout(2000).emitWithAck('events:overlapping', 'no-such-event'), {
      state: 'error',
      message: 'Event not found',
    });
    const missing = await socket.timeout(2000).emitWithAck('events:overlapping');
    assert.equal(missing.state, 'error');
    assert.match(missing.message, /eventId/);
  });
});

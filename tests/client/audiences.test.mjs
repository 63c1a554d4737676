// Audiences of the bundled EVENT plugin, seen by real sockets: four users are connected at
// once (the author of some drafts, a member of the author's event group, an unrelated user
// and an admin) and each step checks that every socket receives exactly what events-api
// sends it (spec §3 "Notifications emitted by the controllers", §4, §6): the event names, the
// payloads `{type, record | id, offset}` with `record` as the HTTP API returns it, in order,
// and nothing else.
//
// How a step is checked: the step's requests are made (each carrying the caller's socket id in
// `x-metadata-socketid`, as events-app does, unless the step says otherwise), then the admin
// creates a department, a `NEW_RECORD` to `all`. Notifications reach every socket in offset
// order (docs/delivery.md), so once each socket has that marker, everything before it is what
// the step sent, and the marker is the only thing after it.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  DELIVERY_MS,
  api,
  assertOffset,
  assertStatus,
  createUser,
  postDepartment,
  useServer,
  waitForEvent,
  withRecordId,
} from './harness.mjs';

const EVENTS = '/api/v1/events';
/** Inside the registration period's event range below. */
const START = '2027-05-03T08:00:00.000Z';
const END = '2027-05-03T10:00:00.000Z';

/** What a socket should receive for one notification (the offset is checked separately). */
const changed = (record) => ({ event: 'CHANGED_RECORD', payload: { type: 'EVENT', record } });
const deleted = (id) => ({ event: 'DELETED_RECORD', payload: { type: 'EVENT', id } });

describe('EVENT notifications reach exactly their audience (events-api §3, §6)', () => {
  const srv = useServer();
  /** Accounts by role in the story: { user, cookie, ... }. */
  const who = {};
  /** The draft the steps follow (E1), one to delete (E2), one to publish (E3); all in the group. */
  let E1, E2, E3;

  before(async () => {
    who.admin = srv.admin;
    who.author = await createUser(srv.base, who.admin.cookie);
    who.member = await createUser(srv.base, who.admin.cookie);
    who.other = await createUser(srv.base, who.admin.cookie);
  });

  srv.test('drafts, deletion, review, publication with the version swap, refusal, soft deletion', async () => {
    // ---- Setup, before any socket is connected -----------------------------------------
    const dept = await api(srv.base, 'POST', '/api/v1/departments', {
      cookie: who.admin.cookie,
      body: { name: `Audiences ${Date.now()}`, description: 'the drafts are for it' },
    });
    assertStatus(dept, 201, 'create the department');
    const D = dept.body.id;
    // Users may submit a new event for review only while a registration period covering its
    // start and one of its departments is open (§6). `isOpen` keeps it open whatever the clock.
    const period = await api(srv.base, 'POST', '/api/v1/registration_periods', {
      cookie: who.admin.cookie,
      body: {
        name: 'SJ 2027',
        start: '2026-01-01T00:00:00.000Z',
        end: '2026-02-01T00:00:00.000Z',
        eventRangeStart: '2027-04-01T00:00:00.000Z',
        eventRangeEnd: '2027-07-31T00:00:00.000Z',
      },
    });
    assertStatus(period, 201, 'create the registration period');
    const opened = await api(srv.base, 'PUT', `/api/v1/registration_periods/${period.body.id}`, {
      cookie: who.admin.cookie,
      body: { data: { departmentIds: [D], isOpen: true } },
    });
    assertStatus(opened, 200, 'open the registration period for the department');

    const draft = async () => {
      const res = await api(srv.base, 'POST', EVENTS, { cookie: who.author.cookie, body: { start: START, end: END } });
      assertStatus(res, 201, 'the author creates a draft');
      return res.body.id;
    };
    [E1, E2, E3] = [await draft(), await draft(), await draft()];
    assertStatus(
      await api(srv.base, 'PUT', `${EVENTS}/${E3}`, { cookie: who.author.cookie, body: { data: { departmentIds: [D] } } }),
      200,
      'E3 gets the department',
    );
    const group = await api(srv.base, 'POST', '/api/v1/event_groups', {
      cookie: who.author.cookie,
      body: { name: 'Sporttag', description: 'shared drafts', event_ids: [E1, E2, E3] },
    });
    assertStatus(group, 201, 'the author creates the event group');
    const members = await api(srv.base, 'PUT', `/api/v1/event_groups/${group.body.id}`, {
      cookie: who.author.cookie,
      body: { data: { userIds: [who.author.user.id, who.member.user.id] } },
    });
    assertStatus(members, 200, 'the member joins the group');
    assert.deepEqual(members.body.eventIds, [E1, E2, E3].sort(), 'the group holds the three drafts');

    // ---- Sockets and the step machinery ------------------------------------------------
    const NAMES = ['author', 'member', 'other', 'admin'];
    const sockets = {};
    for (const name of NAMES) sockets[name] = await srv.connect({ cookie: who[name].cookie });
    /** Per socket: how many received entries earlier steps accounted for; the last offset. */
    const seen = Object.fromEntries(NAMES.map((n) => [n, 0]));
    const lastOffset = Object.fromEntries(NAMES.map((n) => [n, 0]));
    /** offset → the notification every recipient of it must have got. */
    const byOffset = new Map();

    /**
     * A request as `name`, carrying that user's socket id in x-metadata-socketid unless
     * `socketId: false`. Checks the status; returns the parsed body.
     */
    async function as(name, method, path, { body, status, socketId = true } = {}) {
      const headers = socketId ? { 'x-metadata-socketid': sockets[name].id } : {};
      const res = await api(srv.base, method, path, { cookie: who[name].cookie, body, headers });
      assertStatus(res, status, `${name}: ${method} ${path}`);
      return res.body;
    }
    /** An event as the admin reads it now (PUBLISHED, REVIEW or REFUSED ones). */
    const read = (id) => as('admin', 'GET', `${EVENTS}/${id}`, { status: 200, socketId: false });

    /**
     * Runs one step: `act` makes its requests and returns, per socket, the list of what that
     * socket must receive (`changed(record)` / `deleted(id)`), in order. Then compares.
     */
    async function step(label, act) {
      const expected = await act();
      assert.deepEqual(Object.keys(expected).sort(), [...NAMES].sort(), `${label}: the table names every socket`);

      const marker = await postDepartment(srv.base, who.admin.cookie, { name: `marker after ${label}` });
      assertStatus(marker, 201, `${label}: marker`);
      await Promise.all(
        NAMES.map((n) =>
          waitForEvent(sockets[n], 'NEW_RECORD', withRecordId(marker.body.id), DELIVERY_MS, `${label}: ${n}, marker`),
        ),
      );

      for (const name of NAMES) {
        const socket = sockets[name];
        // Everything since the previous step, whatever its event name.
        const got = socket.received.slice(seen[name]).map((e) => ({ event: e.event, payload: e.payload }));
        seen[name] = socket.received.length;
        const last = got.pop();
        assert.deepEqual(
          [last?.event, last?.payload?.record?.id],
          ['NEW_RECORD', marker.body.id],
          `${label}: ${name}: nothing arrives after the marker`,
        );
        for (const { payload } of [...got, last]) {
          assertOffset(payload?.offset, `${label}: ${name}: offset`);
          assert.ok(payload.offset > lastOffset[name], `${label}: ${name}: offsets increase`);
          lastOffset[name] = payload.offset;
        }
        for (const entry of got) {
          const key = JSON.stringify(entry);
          const before = byOffset.get(entry.payload.offset);
          if (before) assert.equal(key, before, `${label}: ${name}: same offset, same notification for everyone`);
          else byOffset.set(entry.payload.offset, key);
        }
        const withoutOffsets = got.map(({ event, payload: { offset: _offset, ...payload } }) => ({ event, payload }));
        assert.deepEqual(withoutOffsets, expected[name], `${label}: what ${name} received`);
      }
    }

    // ---- 1. Draft edits: CHANGED_RECORD to the caller and the members of the draft's groups
    //         (`events.update`), never to the admin or an unrelated user.
    await step('1a. the author edits the shared draft', async () => {
      const e1 = await as('author', 'PUT', `${EVENTS}/${E1}`, {
        body: { data: { description: 'Sporttag', departmentIds: [D] } },
        status: 200,
      });
      assert.equal(e1.state, 'DRAFT');
      return { author: [] /* its socket made the request */, member: [changed(e1)], other: [], admin: [] };
    });
    await step('1b. the group member edits the same draft', async () => {
      const e1 = await as('member', 'PUT', `${EVENTS}/${E1}`, { body: { data: { location: 'Turnhalle' } }, status: 200 });
      assert.equal(e1.authorId, who.author.user.id, 'still the author’s draft');
      return { author: [changed(e1)], member: [], other: [], admin: [] };
    });

    // ---- 2. A group member deletes the author's draft: DELETED_RECORD to the author, not to
    //         the caller (`events.destroyMany`). Sent without a socket id, so the member is
    //         left out because it is not in the audience, not because its socket is excluded.
    await step('2. the group member deletes a draft of the author', async () => {
      const ids = await as('member', 'DELETE', `${EVENTS}?ids[]=${E2}`, { status: 200, socketId: false });
      assert.deepEqual(ids, [E2]);
      return { author: [deleted(E2)], member: [], other: [], admin: [] };
    });

    // ---- 3. Review: one CHANGED_RECORD per record and room, to the author and to `admin`,
    //         toSelf, in the order of the ids (`events.setState`). The group member is not told.
    let e1Review;
    await step('3. the author submits two drafts for review in one request', async () => {
      const body = await as('author', 'POST', `${EVENTS}/change_state`, {
        body: { data: { ids: [E1, E3], state: 'REVIEW' } },
        status: 201,
      });
      const [e1, e3] = body;
      assert.deepEqual([e1.id, e1.state, e3.id, e3.state], [E1, 'REVIEW', E3, 'REVIEW']);
      e1Review = e1;
      return {
        author: [changed(e1), changed(e3)], // toSelf: the author's own socket too
        member: [],
        other: [],
        admin: [changed(e1), changed(e3)],
      };
    });

    // ---- 4. Publication and the version swap.
    let P; // the published event's id (E3), which keeps its id through the swap
    await step('4a. the admin publishes a new event: to all, toSelf', async () => {
      const [p] = await as('admin', 'POST', `${EVENTS}/change_state`, {
        body: { data: { ids: [E3], state: 'PUBLISHED' } },
        status: 201,
      });
      assert.deepEqual([p.id, p.state, p.parentId], [E3, 'PUBLISHED', null]);
      P = p.id;
      return { author: [changed(p)], member: [changed(p)], other: [changed(p)], admin: [changed(p)] };
    });
    // Editing a published event creates a DRAFT version by the caller. A version has no groups,
    // so it goes to the caller only (sent without a socket id to see it arrive), not to the
    // members of the published event's group.
    let V1, V2;
    await step('4b. the author edits the published event: a new DRAFT version', async () => {
      const v1 = await as('author', 'PUT', `${EVENTS}/${P}`, {
        body: { data: { description: 'Sporttag (verschoben)' } },
        status: 200,
        socketId: false,
      });
      assert.deepEqual([v1.state, v1.parentId, v1.authorId], ['DRAFT', P, who.author.user.id]);
      V1 = v1.id;
      return { author: [changed(v1)], member: [], other: [], admin: [] };
    });
    await step('4c. the unrelated user edits it too: a competing version', async () => {
      const v2 = await as('other', 'PUT', `${EVENTS}/${P}`, {
        body: { data: { location: 'Aula' } },
        status: 200,
        socketId: false,
      });
      assert.deepEqual([v2.state, v2.parentId, v2.authorId], ['DRAFT', P, who.other.user.id]);
      V2 = v2.id;
      return { author: [], member: [], other: [changed(v2)], admin: [] };
    });
    await step('4d. both versions are submitted for review by their authors', async () => {
      const [v1] = await as('author', 'POST', `${EVENTS}/change_state`, {
        body: { data: { ids: [V1], state: 'REVIEW' } },
        status: 201,
      });
      const [v2] = await as('other', 'POST', `${EVENTS}/change_state`, {
        body: { data: { ids: [V2], state: 'REVIEW' } },
        status: 201,
      });
      assert.deepEqual([v1.state, v1.parentId, v2.state, v2.parentId], ['REVIEW', P, 'REVIEW', P]);
      return { author: [changed(v1)], member: [], other: [changed(v2)], admin: [changed(v1), changed(v2)] };
    });
    await step('4e. the admin publishes the first version: the swap and its 4 notifications', async () => {
      const [published] = await as('admin', 'POST', `${EVENTS}/change_state`, {
        body: { data: { ids: [V1], state: 'PUBLISHED' } },
        status: 201,
      });
      // The published id keeps its id and gets the version's content; the version holds the
      // old content, as a PUBLISHED child; the competing review is refused.
      assert.deepEqual(
        [published.id, published.state, published.description, published.authorId],
        [P, 'PUBLISHED', 'Sporttag (verschoben)', who.author.user.id],
      );
      const previous = await read(V1);
      const refused = await read(V2);
      assert.deepEqual([previous.state, previous.parentId, previous.description], ['PUBLISHED', P, '']);
      assert.deepEqual([refused.state, refused.authorId], ['REFUSED', who.other.user.id]);
      assert.deepEqual(published.publishedVersionIds, [V1]);
      // In order: new published → all, old version → all, refused → its author, refused → admin.
      return {
        author: [changed(published), changed(previous)],
        member: [changed(published), changed(previous)],
        other: [changed(published), changed(previous), changed(refused)],
        admin: [changed(published), changed(previous), changed(refused)],
      };
    });

    // ---- 5. Refusal of a review: to the author and `admin`, toSelf.
    await step('5. the admin refuses the first draft', async () => {
      const [e1] = await as('admin', 'POST', `${EVENTS}/change_state`, {
        body: { data: { ids: [E1], state: 'REFUSED' } },
        status: 201,
      });
      assert.deepEqual([e1.id, e1.state], [E1, 'REFUSED']);
      assert.deepEqual({ ...e1, state: 'REVIEW', updatedAt: null }, { ...e1Review, updatedAt: null }, 'only the state');
      return { author: [changed(e1)], member: [], other: [], admin: [changed(e1)] };
    });

    // ---- 6. Soft deletion of a published event: CHANGED_RECORD with `deletedAt` to `all`
    //         (`events.destroy`), not toSelf: the socket that asked is left out. The group
    //         member may delete it: the swap kept the published id in the group.
    await step('6. the group member deletes the published event', async () => {
      await as('member', 'DELETE', `${EVENTS}/${P}`, { status: 204 });
      const gone = await read(P);
      assert.equal(gone.state, 'PUBLISHED');
      assert.ok(gone.deletedAt, 'deletedAt is set');
      return { author: [changed(gone)], member: [], other: [changed(gone)], admin: [changed(gone)] };
    });
  });
});

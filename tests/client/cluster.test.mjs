// Several `tidings serve --database-url postgres://…` on one database are one cluster (issue
// 14): three nodes started at the same moment on a fresh database all come up; a change
// committed through any node reaches sockets on every node once, in offset order, with the
// same offsets, and exclusion works across nodes; logout, role changes and plugin installs and
// rollbacks take effect on every node; a `kill -9` of a node loses no acknowledged write, and
// its clients resume on another node. A polling client pinned to one node (as sticky routing
// pins it) hears writes made through the others.
//
// Needs PostgreSQL: TIDINGS_TEST_POSTGRES_URL (scripts/test sets it). Each run creates a fresh
// database on that server and drops it at the end.

import { after, afterEach, before, describe } from 'node:test';
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  QUIET_MS,
  api,
  assertStatus,
  closeAllSockets,
  connect,
  createUser,
  eventsOf,
  expectNoEvent,
  login,
  postDepartment,
  sleep,
  startServer,
  installGuest,
  waitForDisconnect,
  waitForEvent,
} from './harness.mjs';

const POSTGRES_URL = process.env.TIDINGS_TEST_POSTGRES_URL;
const SKIP = POSTGRES_URL
  ? false
  : 'TIDINGS_TEST_POSTGRES_URL is unset: the cluster tests need a PostgreSQL server (scripts/test sets it)';
/** Control (logout, roles) must reach every node within this. */
const CONTROL_MS = Number(process.env.TIDINGS_TEST_CONTROL_MS) || 1_000;
/**
 * A plugin version must serve on every node within this: each node compiles it, which takes
 * a debug build of the server (what the tests run) a second or more on a busy machine.
 */
const PLUGIN_MS = Number(process.env.TIDINGS_TEST_PLUGIN_MS) || 3_000;

const psql = (url, sql) => promisify(execFile)('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql]);

/** A fresh database on the test server, with a bytewise collation (docs/operating.md). */
async function freshDatabase() {
  const name = `tidings_cluster_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  await psql(POSTGRES_URL, `CREATE DATABASE ${name} TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'`);
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString(), drop: () => psql(POSTGRES_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** Start `count` nodes on `url` at the same moment; stop them all if one fails. */
async function startNodes(url, count) {
  const started = await Promise.allSettled(
    Array.from({ length: count }, () => startServer({ env: { TIDINGS_DATABASE_URL: url } })),
  );
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.filter((s) => s.status === 'fulfilled').map((s) => s.value.stop()));
    throw failed.reason;
  }
  return started.map((s) => s.value);
}

/** Waits until GET /api/v1/swaps on `base` answers `generation`; returns how long that took. */
async function untilGeneration(base, generation, since, timeoutMs = PLUGIN_MS, label = base) {
  for (;;) {
    const res = await api(base, 'GET', '/api/v1/swaps');
    if (res.status === 200 && res.body.generation === generation) {
      const took = Date.now() - since;
      process.stderr.write(`# ${label}: generation ${generation} after ${took} ms\n`);
      return took;
    }
    if (Date.now() - since > timeoutMs) {
      assert.fail(`${label}: GET /api/v1/swaps answered ${res.status} ${res.text} after ${timeoutMs} ms, not generation ${generation}`);
    }
    await sleep(10);
  }
}

/** Waits until `socket` has received a NEW_RECORD for every id in `ids`. */
async function untilAll(socket, ids, timeoutMs, label) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = new Set(eventsOf(socket, 'NEW_RECORD').map((p) => p.record.id));
    const missing = ids.filter((id) => !seen.has(id));
    if (missing.length === 0) return;
    if (Date.now() > deadline) assert.fail(`${label}: ${missing.length} of ${ids.length} notifications missing after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** The offsets of the NEW_RECORDs a socket got for `ids`, in arrival order. */
function offsetsOf(socket, ids) {
  const wanted = new Set(ids);
  return eventsOf(socket, 'NEW_RECORD', (p) => wanted.has(p.record.id)).map((p) => p.offset);
}

function assertIncreasing(offsets, label) {
  for (let i = 1; i < offsets.length; i++) {
    assert.ok(offsets[i] > offsets[i - 1], `${label}: offsets in order, got ${offsets[i - 1]} then ${offsets[i]}`);
  }
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

describe('a cluster of three nodes on one PostgreSQL database', { skip: SKIP }, () => {
  let database;
  /** @type {import('./harness.mjs').Server[]} */
  let nodes = [];
  let A, B, C;
  let admin;
  const ctest = (name, fn) =>
    test(name, async (t) => {
      try {
        await fn(t);
      } catch (err) {
        for (const [i, node] of nodes.entries()) {
          process.stderr.write(`\n--- node ${'ABCD'[i]} (${node.base}) for failed test "${name}" ---\n${node.output()}\n`);
        }
        throw err;
      }
    });

  before(async () => {
    database = await freshDatabase();
    nodes = await startNodes(database.url, 3);
    [A, B, C] = nodes;
    admin = await login(A.base, ADMIN_EMAIL, ADMIN_PASSWORD);
  });

  afterEach(() => closeAllSockets());

  after(async () => {
    closeAllSockets();
    await Promise.all(nodes.map((node) => node.stop()));
    if (database) await database.drop();
  });

  ctest('nodes started at the same moment on an empty database all come up, and one creates the admin', async () => {
    const created = nodes.flatMap((node) => node.lines.filter((line) => line.includes('created the bootstrap admin')));
    assert.equal(created.length, 1, `exactly one node created the bootstrap admin: ${created.join(' | ')}`);
    // A session made on one node is valid on every node.
    for (const node of nodes) assertStatus(await api(node.base, 'GET', '/api/v1/user', { cookie: admin.cookie }), 200);
  });

  ctest('writes through every node reach sockets on every node once, in order, with the same offsets', async () => {
    const sockets = await Promise.all(nodes.map((node) => connect(node.base, { cookie: admin.cookie })));
    const created = [];
    const latencies = [];
    // One writer per node, at the same time: their commits interleave.
    await Promise.all(
      nodes.map(async (node, n) => {
        for (let i = 0; i < 15; i++) {
          const res = await postDepartment(node.base, admin.cookie);
          assertStatus(res, 201, `POST through node ${'ABC'[n]}`);
          created.push({ id: res.body.id, via: n, answered: Date.now() });
        }
      }),
    );
    const ids = created.map((c) => c.id);
    for (const [n, socket] of sockets.entries()) await untilAll(socket, ids, 2_000, `socket on node ${'ABC'[n]}`);
    await sleep(QUIET_MS);
    const offsets = sockets.map((socket) => offsetsOf(socket, ids));
    for (const [n, list] of offsets.entries()) {
      assert.equal(list.length, ids.length, `socket on node ${'ABC'[n]}: each notification once`);
      assertIncreasing(list, `socket on node ${'ABC'[n]}`);
      assert.deepEqual(list, offsets[0], `socket on node ${'ABC'[n]}: the same offsets, in the same order, as on A`);
    }
    // Latency on the nodes that did not take the write: the response's moment to the socket's.
    for (const c of created) {
      for (const [n, socket] of sockets.entries()) {
        if (n === c.via) continue;
        const got = socket.received.find((e) => e.event === 'NEW_RECORD' && e.payload.record.id === c.id);
        latencies.push(got.at - c.answered);
      }
    }
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    process.stderr.write(`# delivery to other nodes: p50 ${p50} ms, p99 ${p99} ms (${latencies.length} samples)\n`);
    // A poll of the log every 500 ms would give a median around 250 ms.
    assert.ok(p50 < 100, `delivery to other nodes is woken, not polled: p50 ${p50} ms`);
  });

  ctest('x-metadata-socketid excludes a socket on another node', async () => {
    const requester = await connect(C.base, { cookie: admin.cookie });
    const other = await connect(B.base, { cookie: admin.cookie });
    const res = await postDepartment(A.base, admin.cookie, { headers: { 'x-metadata-socketid': requester.id } });
    assertStatus(res, 201);
    await waitForEvent(other, 'NEW_RECORD', (p) => p.record.id === res.body.id);
    await expectNoEvent(requester, 'NEW_RECORD', (p) => p.record.id === res.body.id, QUIET_MS, 'the excluded socket on C');
    const next = await postDepartment(A.base, admin.cookie);
    await waitForEvent(requester, 'NEW_RECORD', (p) => p.record.id === next.body.id);
  });

  ctest('a polling client pinned to one node hears writes made through the others', async () => {
    const poller = await connect(B.base, { cookie: admin.cookie, transports: ['polling'] });
    const ids = [];
    for (const node of [A, C, A, C]) ids.push((await postDepartment(node.base, admin.cookie)).body.id);
    await untilAll(poller, ids, 2_000, 'polling socket on B');
    assertIncreasing(offsetsOf(poller, ids), 'polling socket on B');
  });

  ctest('logout through A disconnects the session\'s sockets on B and C within a second', async () => {
    const user = await createUser(A.base, admin.cookie);
    const bystander = await login(A.base, user.email, user.password);
    const onB = await connect(B.base, { cookie: user.cookie });
    const onC = await connect(C.base, { cookie: user.cookie });
    const other = await connect(C.base, { cookie: bystander.cookie });
    assertStatus(await api(A.base, 'POST', '/api/v1/logout', { cookie: user.cookie }), 204, 'logout through A');
    await waitForDisconnect(onB, CONTROL_MS, 'the session\'s socket on B');
    await waitForDisconnect(onC, CONTROL_MS, 'the session\'s socket on C');
    await sleep(QUIET_MS);
    assert.ok(other.connected, 'another session of the same user stays connected');
    assertStatus(await api(C.base, 'GET', '/api/v1/user', { cookie: user.cookie }), 401, 'the session ended on C too');
  });

  ctest('a plugin installed through A serves on B and C within seconds, announced once per node; rollback through C', async () => {
    const admins = await Promise.all(nodes.map((node) => connect(node.base, { cookie: admin.cookie })));
    const changes = (socket, change) => eventsOf(socket, 'PLUGIN_CHANGED', (p) => p.name === 'swap' && p.change === change);

    let since = Date.now();
    let res = await installGuest(A.base, admin.cookie, 'swap_one.wasm');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    for (const node of [B, C]) await untilGeneration(node.base, 1, since, PLUGIN_MS, `node ${node === B ? 'B' : 'C'} after the install through A`);

    since = Date.now();
    res = await installGuest(A.base, admin.cookie, 'swap_two.wasm');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    for (const node of [B, C]) await untilGeneration(node.base, 2, since);

    // C never installed anything itself, and still rolls back: to what A replaced.
    since = Date.now();
    res = await api(C.base, 'POST', '/api/v1/admin/plugins/swap/rollback', { cookie: admin.cookie, body: {} });
    assertStatus(res, 200, 'rollback through C');
    for (const node of [A, B, C]) await untilGeneration(node.base, 1, since);

    await sleep(QUIET_MS);
    for (const [n, socket] of admins.entries()) {
      const label = `admin socket on node ${'ABC'[n]}`;
      assert.equal(changes(socket, 'installed').length, 2, `${label}: each install announced once`);
      assert.equal(changes(socket, 'rolled-back').length, 1, `${label}: the rollback announced once`);
      assert.equal(changes(socket, 'rolled-back')[0].version, '1.0.0', label);
    }
    const listed = await api(B.base, 'GET', '/api/v1/admin/plugins', { cookie: admin.cookie });
    const swap = listed.body.find((p) => p.name === 'swap');
    assert.equal(swap.version, '1.0.0', 'B lists the version C rolled back to');
  });

  ctest('a role change through B moves the user\'s socket on C into and out of admin', async () => {
    const user = await createUser(A.base, admin.cookie);
    const onC = await connect(C.base, { cookie: user.cookie });
    const setRole = async (role) =>
      assertStatus(
        await api(B.base, 'PUT', `/api/v1/users/${user.user.id}/set_role`, { cookie: admin.cookie, body: { data: { role } } }),
        200,
        `set_role ${role} through B`,
      );
    // A plugin change is announced to the `admin` room only: it shows who is in it.
    const rollback = async () =>
      assertStatus(await api(A.base, 'POST', '/api/v1/admin/plugins/swap/rollback', { cookie: admin.cookie, body: {} }), 200);

    // C has read the user's session (the handshake): its requests follow the role at once too.
    const adminRouteOnC = () => api(C.base, 'GET', '/api/v1/admin/plugins', { cookie: user.cookie });
    assertStatus(await adminRouteOnC(), 403, 'an ADMIN route on C as a USER');

    await setRole('ADMIN');
    await waitForEvent(onC, 'CHANGED_RECORD', (p) => p.type === 'USER' && p.record.role === 'ADMIN');
    await sleep(100);
    assertStatus(await adminRouteOnC(), 200, 'an ADMIN route on C once promoted through B');
    await rollback();
    await waitForEvent(onC, 'PLUGIN_CHANGED', (p) => p.name === 'swap', CONTROL_MS, 'the promoted socket on C');

    await setRole('USER');
    await waitForEvent(onC, 'CHANGED_RECORD', (p) => p.type === 'USER' && p.record.role === 'USER');
    await sleep(100);
    assertStatus(await adminRouteOnC(), 403, 'an ADMIN route on C once demoted through B');
    const before = eventsOf(onC, 'PLUGIN_CHANGED').length;
    await rollback();
    await expectNoEvent(onC, 'PLUGIN_CHANGED', () => eventsOf(onC, 'PLUGIN_CHANGED').length > before, QUIET_MS);
    assert.equal(eventsOf(onC, 'PLUGIN_CHANGED').length, before, 'the demoted socket on C is out of admin');
  });

  ctest('the login throttle counts failures made through every node', async () => {
    const victim = await createUser(A.base, admin.cookie);
    const attempt = (node) =>
      api(node.base, 'POST', '/api/v1/auth/login', { body: { email: victim.email, password: 'a wrong guess' } });
    // Five free failures on one account from one address, spread over the three nodes …
    for (const node of [A, B, C, A, B]) assertStatus(await attempt(node), 401, `a wrong password through ${node.base}`);
    await sleep(200); // the other nodes hear of an answer within milliseconds
    // … and the sixth waits, on a node that saw one of them itself.
    const sixth = await attempt(C);
    assertStatus(sixth, 429, 'the sixth failure in a row, through C');
    assert.ok(Number(sixth.headers.get('retry-after')) >= 1, 'Retry-After');
  });

  ctest('kill -9 of a node while the others write: nothing acknowledged is lost, its client resumes elsewhere', async () => {
    // A fourth node joins the running cluster; it is the one that dies.
    const [D] = await startNodes(database.url, 1);
    nodes.push(D);
    const onD = await connect(D.base, { cookie: admin.cookie });
    const survivors = await Promise.all([A, B, C].map((node) => connect(node.base, { cookie: admin.cookie })));

    const acknowledged = [];
    let running = true;
    const writer = async (node) => {
      while (running) {
        try {
          const res = await postDepartment(node.base, admin.cookie);
          if (res.status === 201) acknowledged.push(res.body.id);
        } catch {
          if (node === D) return; // the dead node's writer stops
        }
      }
    };
    const acknowledgedAtLeast = async (count) => {
      const deadline = Date.now() + 10_000;
      while (acknowledged.length < count && Date.now() < deadline) await sleep(10);
    };
    const writers = [A, B, C, D].map(writer);
    await acknowledgedAtLeast(20);
    await D.kill();
    const atKill = acknowledged.length;
    await acknowledgedAtLeast(atKill + 20);
    running = false;
    await Promise.all(writers);
    assert.ok(acknowledged.length >= atKill + 20, `writes went on after the kill: ${acknowledged.length - atKill}`);

    // Every acknowledged write is stored, and notified once, in order, on every surviving socket.
    for (const [n, socket] of survivors.entries()) {
      const label = `surviving socket on node ${'ABC'[n]}`;
      await untilAll(socket, acknowledged, 3_000, label);
      const notified = eventsOf(socket, 'NEW_RECORD', (p) => p.type === 'DEPARTMENT');
      assert.equal(new Set(notified.map((p) => p.record.id)).size, notified.length, `${label}: each once`);
      assertIncreasing(notified.map((p) => p.offset), label);
    }
    const stored = await api(B.base, 'GET', '/api/v1/departments');
    const storedIds = new Set(stored.body.map((d) => d.id));
    assert.deepEqual(acknowledged.filter((id) => !storedIds.has(id)), [], 'every acknowledged write is stored');

    // The dead node's client resumes on B with the last offset it saw.
    const NOTIFICATIONS = ['NEW_RECORD', 'CHANGED_RECORD', 'DELETED_RECORD'];
    const seen = onD.received.filter((e) => NOTIFICATIONS.includes(e.event)).map((e) => e.payload.offset);
    const last = Math.max(...seen);
    const resumed = await connect(B.base, { cookie: admin.cookie, auth: { offset: last } });
    const recovery = await waitForEvent(resumed, 'RECOVERY', () => true, 3_000);
    assert.equal(recovery.complete, true);
    const upTo = resumed.received.findIndex((e) => e.event === 'RECOVERY');
    const replayed = resumed.received.slice(0, upTo).filter((e) => NOTIFICATIONS.includes(e.event)).map((e) => e.payload.offset);
    const missed = survivors[1].received
      .filter((e) => NOTIFICATIONS.includes(e.event) && e.payload.offset > last)
      .map((e) => e.payload.offset);
    assert.deepEqual(replayed, missed, 'exactly what it missed, in order, then RECOVERY');
    assert.ok(replayed.length > 0, 'it missed something to resume');
  });
});

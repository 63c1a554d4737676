// Operators swap plugins on a running server: 20+ swaps between two versions while clients
// keep writing and listening fail no request, drop no socket, and lose no notification;
// and the `tidings plugin` commands install, list and roll back.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  DELIVERY_MS,
  api,
  assertStatus,
  createUser,
  eventsOf,
  serverBinary,
  sleep,
  installGuest,
  testGuest,
  useServer,
} from './harness.mjs';

const SWAPS = 24;
const WORKERS = 4;

async function generation(base) {
  const res = await api(base, 'GET', '/api/v1/swaps');
  assertStatus(res, 200, 'GET /api/v1/swaps');
  return res.body.generation;
}

describe('hot swap', () => {
  const srv = useServer();
  let B;

  before(async () => {
    B = await createUser(srv.base, srv.admin.cookie);
    const first = await installGuest(srv.base, srv.admin.cookie, 'swap_one.wasm');
    assert.equal(first.status, 200, JSON.stringify(first.body));
  });

  srv.test(`${SWAPS} swaps under load fail no request and keep every socket`, async () => {
    const listener = await srv.connect({ cookie: B.cookie });
    const poller = await srv.connect({ cookie: B.cookie, transports: ['polling'] });
    const admin = await srv.connect({ cookie: srv.admin.cookie });

    const failures = [];
    const created = [];
    const generations = new Set();
    let running = true;
    const worker = async () => {
      while (running) {
        const post = await api(srv.base, 'POST', '/api/v1/swaps', { cookie: B.cookie, body: {} });
        if (post.status === 201) created.push(post.body);
        else failures.push(`POST ${post.status} ${post.text}`);
        const get = await api(srv.base, 'GET', '/api/v1/swaps');
        if (get.status === 200) generations.add(get.body.generation);
        else failures.push(`GET ${get.status} ${get.text}`);
      }
    };
    const workers = Array.from({ length: WORKERS }, worker);

    for (let i = 0; i < SWAPS; i++) {
      const file = i % 2 === 0 ? 'swap_two.wasm' : 'swap_one.wasm';
      const res = await installGuest(srv.base, srv.admin.cookie, file);
      assert.equal(res.status, 200, `swap ${i}: ${JSON.stringify(res.body)}`);
      await sleep(100);
    }
    running = false;
    await Promise.all(workers);

    assert.deepEqual(failures, [], 'no request failed during the swaps');
    assert.ok(created.length > SWAPS, `clients kept writing: ${created.length} records`);
    assert.deepEqual([...generations].sort(), [1, 2], 'both versions answered');
    assert.deepEqual(new Set(created.map((r) => r.generation)), new Set([1, 2]), 'both versions wrote');

    await sleep(DELIVERY_MS);
    for (const [name, socket] of [['websocket', listener], ['polling', poller]]) {
      assert.ok(socket.connected, `${name} socket still connected`);
      const received = eventsOf(socket, 'NEW_RECORD', (p) => p.type === 'SWAP');
      assert.equal(received.length, created.length, `${name}: one notification per created record`);
      const byId = new Map(received.map((p) => [p.record.id, p.record]));
      for (const record of created) assert.deepEqual(byId.get(record.id), record, `${name}: payload = HTTP body`);
    }
    const announced = eventsOf(admin, 'PLUGIN_CHANGED', (p) => p.name === 'swap');
    assert.ok(announced.length >= SWAPS, `each swap was announced to admins: ${announced.length}`);
    assert.equal(eventsOf(listener, 'PLUGIN_CHANGED').length, 0, 'users are not told about swaps');
  });

  srv.test('tidings plugin install, list and rollback', async () => {
    const run = promisify(execFile);
    const env = { ...process.env, TIDINGS_EMAIL: ADMIN_EMAIL, TIDINGS_PASSWORD: ADMIN_PASSWORD };
    const cli = (...args) => run(serverBinary(), ['plugin', '--server', srv.base, ...args], { env });

    await cli('install', testGuest('swap_one.wasm'));
    assert.equal(await generation(srv.base), 1);
    const installed = JSON.parse((await cli('install', testGuest('swap_two.wasm'))).stdout);
    assert.equal(installed.version, '2.0.0');
    assert.equal(await generation(srv.base), 2);

    const list = JSON.parse((await cli('list')).stdout);
    const swap = list.find((p) => p.name === 'swap');
    assert.equal(swap.previous.version, '1.0.0');

    await cli('rollback', 'swap');
    assert.equal(await generation(srv.base), 1);

    await assert.rejects(cli('install', testGuest('swap_retyped.wasm')), (err) => {
      assert.match(err.stderr, /RETYPED/);
      return true;
    });
    assert.equal(await generation(srv.base), 1, 'the refused install changed nothing');
  });
});

// Crash consistency: a server killed with SIGKILL at random moments during streams of
// concurrent writes (batched by group commit), 20 times with different seeds, loses no acknowledged write, keeps the notification
// log one to one with the writes, passes `tidings check`, and a client resuming from its last
// offset after each restart sees every notification exactly once, in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  api,
  closeAllSockets,
  connect,
  eventsOf,
  login,
  prng,
  serverBinary,
  sleep,
  startServer,
  waitForEvent,
} from './harness.mjs';

const RUNS = 20;
/** Writers at once: their requests share group-committed batches. */
const WRITERS = 8;

test(`${RUNS} SIGKILLs during writes lose nothing acknowledged and deliver everything once`, async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tidings-crash-'));
  const acknowledged = new Map(); // id → record
  const received = []; // every NEW_RECORD payload seen by the client, in arrival order
  let lastOffset = 0;
  try {
    for (let seed = 1; seed <= RUNS; seed++) {
      const random = prng(seed);
      const server = await startServer({ dataDir });
      const admin = await login(server.base, ADMIN_EMAIL, ADMIN_PASSWORD);
      const socket = await connect(server.base, { cookie: admin.cookie, auth: { offset: lastOffset } });
      await waitForEvent(socket, 'RECOVERY', () => true, 5_000).catch((err) => {
        err.message += `\nrun ${seed}, resuming after ${lastOffset}; server output:\n${server.output()}`;
        throw err;
      });
      socket.on('NEW_RECORD', (p) => {
        received.push(p);
        lastOffset = p.offset;
      });
      // Payloads that arrived before the listener above was attached (the replay).
      for (const p of eventsOf(socket, 'NEW_RECORD')) {
        if (p.offset > lastOffset) {
          received.push(p);
          lastOffset = p.offset;
        }
      }

      const killAt = Date.now() + 50 + random() * 400;
      // Concurrent writers, so that the kill falls while a batch of several is committing.
      const writer = async (w) => {
        for (let i = 0; Date.now() < killAt + 1_000; i++) {
          const res = await api(server.base, 'POST', '/api/v1/departments', {
            cookie: admin.cookie,
            body: { name: `run${seed}-${w}-${i}` },
          }).catch(() => undefined);
          if (!res) return; // the server died mid-request: not acknowledged
          assert.equal(res.status, 201, res.text);
          acknowledged.set(res.body.id, res.body);
        }
      };
      const writes = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
      await sleep(Math.max(0, killAt - Date.now()));
      await server.kill();
      await writes;
      closeAllSockets();
    }

    const server = await startServer({ dataDir });
    try {
      const admin = await login(server.base, ADMIN_EMAIL, ADMIN_PASSWORD);
      const socket = await connect(server.base, { cookie: admin.cookie, auth: { offset: lastOffset } });
      const recovery = await waitForEvent(socket, 'RECOVERY', () => true, 5_000);
      assert.equal(recovery.complete, true);
      received.push(...eventsOf(socket, 'NEW_RECORD'));

      const list = await api(server.base, 'GET', '/api/v1/departments');
      const stored = new Map(list.body.map((d) => [d.id, d]));
      for (const [id, record] of acknowledged) {
        assert.deepEqual(stored.get(id), record, `acknowledged write ${record.name} survived`);
      }
      const offsets = received.map((p) => p.offset);
      assert.deepEqual(offsets, [...new Set(offsets)].sort((a, b) => a - b), 'each notification once, in order');
      const notified = new Map(received.map((p) => [p.record.id, p.record]));
      assert.equal(notified.size, received.length, 'one notification per record');
      assert.deepEqual([...notified.keys()].sort(), [...stored.keys()].sort(), 'notifications match the writes one to one');
      for (const [id, record] of stored) assert.deepEqual(notified.get(id), record);
      assert.ok(acknowledged.size >= RUNS, `writes were acknowledged: ${acknowledged.size}`);
    } finally {
      closeAllSockets();
      await server.kill();
    }

    const { stdout } = await promisify(execFile)(serverBinary(), ['check', '--data-dir', dataDir], {
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TIDINGS_'))),
    });
    const check = JSON.parse(stdout);
    assert.equal(check.integrity, 'ok');
    assert.equal(check.offsetsGapless, true);
    assert.equal(check.offsetsConsistent, true);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

// The command line and retention: `tidings user add` creates a user the server then signs in,
// `tidings check` passes on a live data directory, and a resume from an offset older than the
// retention is told its recovery is incomplete.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  api,
  assertStatus,
  closeAllSockets,
  connect,
  eventsOf,
  login,
  serverBinary,
  startServer,
  waitForEvent,
} from './harness.mjs';

const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TIDINGS_')));

/** Runs `tidings <args>` with `input` on stdin; resolves with { code, stdout, stderr }. */
function run(args, input) {
  return new Promise((resolve) => {
    const child = spawn(serverBinary(), args, { env: cleanEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

test('tidings user add creates a user the server signs in', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tidings-cli-'));
  try {
    const added = await run(['user', 'add', 'Ada@Example.com', '--role', 'admin', '--data-dir', dataDir], 'ada password 1\n');
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /created ADMIN Ada@Example.com/);
    const short = await run(['user', 'add', 'bob@example.com', '--data-dir', dataDir], 'short\n');
    assert.notEqual(short.code, 0, 'a short password is refused');
    const taken = await run(['user', 'add', 'ada@example.com', '--data-dir', dataDir], 'another password\n');
    assert.notEqual(taken.code, 0, 'a taken e-mail is refused');

    const server = await startServer({ dataDir });
    try {
      const ada = await login(server.base, 'ada@example.com', 'ada password 1');
      assert.equal(ada.user.role, 'ADMIN');
      const bootstrap = await api(server.base, 'POST', '/api/v1/auth/login', {
        body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      });
      assert.equal(bootstrap.status, 401, 'no bootstrap admin once a user exists');
    } finally {
      await server.kill();
    }
    const { stdout } = await promisify(execFile)(serverBinary(), ['check', '--data-dir', dataDir], { env: cleanEnv() });
    assert.equal(JSON.parse(stdout).integrity, 'ok');
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a resume from before the retention is an incomplete recovery', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tidings-retention-'));
  const env = { TIDINGS_RETENTION_ENTRIES: '2' };
  try {
    let server = await startServer({ dataDir, env });
    const admin = await login(server.base, ADMIN_EMAIL, ADMIN_PASSWORD);
    const offsets = [];
    const socket = await connect(server.base, { cookie: admin.cookie });
    for (let i = 0; i < 5; i++) {
      const res = await api(server.base, 'POST', '/api/v1/departments', { cookie: admin.cookie, body: { name: `r${i}` } });
      assertStatus(res, 201);
      offsets.push((await waitForEvent(socket, 'NEW_RECORD', (p) => p.record.id === res.body.id)).offset);
    }
    closeAllSockets();
    await server.kill();
    server = await startServer({ dataDir, env }); // the log is pruned to 2 entries at start
    try {
      const again = await login(server.base, ADMIN_EMAIL, ADMIN_PASSWORD);
      const old = await connect(server.base, { cookie: again.cookie, auth: { offset: offsets[0] } });
      assert.equal((await waitForEvent(old, 'RECOVERY')).complete, false, 'entries after it were pruned');
      const recent = await connect(server.base, { cookie: again.cookie, auth: { offset: offsets[2] } });
      assert.equal((await waitForEvent(recent, 'RECOVERY')).complete, true);
      assert.deepEqual(eventsOf(recent, 'NEW_RECORD').map((p) => p.offset), offsets.slice(3));
    } finally {
      closeAllSockets();
      await server.kill();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

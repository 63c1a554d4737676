// Handshake tests: signing in over HTTP, and who may open a Socket.IO
// connection (session cookie required, Origin checked) on both transports.

import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  EVIL_ORIGIN,
  SESSION_COOKIE,
  api,
  assertStatus,
  connect,
  connectError,
  sessionCookieOf,
  useServer,
} from './harness.mjs';

const TRANSPORTS = [['websocket'], ['polling']];

describe('sign-in over HTTP', () => {
  const srv = useServer();

  srv.test('login answers 200 with the user and sets an HttpOnly, SameSite=Lax session cookie', async () => {
    const res = await api(srv.base, 'POST', '/api/v1/auth/login', {
      body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    assertStatus(res, 200, 'login');
    for (const key of ['id', 'email', 'firstName', 'lastName', 'role', 'createdAt', 'updatedAt']) {
      assert.ok(key in res.body, `user has ${key}: ${res.text}`);
    }
    assert.equal(res.body.email, ADMIN_EMAIL);
    assert.equal(res.body.role, 'ADMIN');
    assert.ok(!('password' in res.body) && !('passwordHash' in res.body), 'no password in the user');

    const header = res.headers.getSetCookie().find((h) => h.startsWith(`${SESSION_COOKIE}=`));
    assert.ok(header, `Set-Cookie ${SESSION_COOKIE}: ${res.headers.getSetCookie()}`);
    const attrs = header.split(';').map((a) => a.trim().toLowerCase());
    assert.ok(attrs.includes('httponly'), `HttpOnly in ${header}`);
    assert.ok(attrs.includes('samesite=lax'), `SameSite=Lax in ${header}`);
    assert.ok(attrs.includes('path=/'), `Path=/ in ${header}`);

    const me = await api(srv.base, 'GET', '/api/v1/user', { cookie: sessionCookieOf(res) });
    assertStatus(me, 200, 'GET /api/v1/user');
    assert.equal(me.body.id, res.body.id);
  });

  srv.test('a wrong password answers 401 with an error and sets no session', async () => {
    const res = await api(srv.base, 'POST', '/api/v1/auth/login', {
      body: { email: ADMIN_EMAIL, password: 'not-the-password' },
    });
    assertStatus(res, 401, 'login with a wrong password');
    assert.equal(typeof res.body?.error, 'string', `error message: ${res.text}`);
    assert.equal(sessionCookieOf(res), undefined, 'no session cookie');

    const me = await api(srv.base, 'GET', '/api/v1/user');
    assertStatus(me, 401, 'GET /api/v1/user without a cookie');
  });
});

describe('Socket.IO handshake', () => {
  const srv = useServer();

  for (const transports of TRANSPORTS) {
    const t = transports[0];

    srv.test(`${t}: a signed-in client connects`, async () => {
      const socket = await connect(srv.base, { cookie: srv.admin.cookie, transports });
      assert.ok(socket.connected);
      assert.equal(typeof socket.id, 'string');
      assert.equal(socket.io.engine.transport.name, t, 'the transport asked for');
    });

    srv.test(`${t}: without a cookie the handshake fails with "unauthorized"`, async () => {
      const err = await connectError(srv.base, { transports });
      assert.equal(err.message, 'unauthorized');
    });

    srv.test(`${t}: an invalid session cookie fails with "unauthorized"`, async () => {
      for (const cookie of [`${SESSION_COOKIE}=not-a-session`, `${SESSION_COOKIE}=${randomUUID()}`]) {
        const err = await connectError(srv.base, { cookie, transports });
        assert.equal(err.message, 'unauthorized', `cookie ${cookie}`);
      }
    });

    srv.test(`${t}: a foreign Origin is refused even with a valid cookie`, async () => {
      const err = await connectError(srv.base, { cookie: srv.admin.cookie, transports, origin: EVIL_ORIGIN });
      assert.ok(err instanceof Error, 'connect_error carries an Error');
    });

    srv.test(`${t}: the server's own origin is accepted`, async () => {
      const socket = await connect(srv.base, { cookie: srv.admin.cookie, transports, origin: srv.origin });
      assert.ok(socket.connected);
    });
  }
});

describe('Socket.IO handshake with TIDINGS_ALLOWED_ORIGINS', () => {
  const ALLOWED = 'http://allowed.example';
  const srv = useServer({ env: { TIDINGS_ALLOWED_ORIGINS: ALLOWED } });

  for (const transports of TRANSPORTS) {
    const t = transports[0];

    srv.test(`${t}: a listed origin is accepted`, async () => {
      const socket = await connect(srv.base, { cookie: srv.admin.cookie, transports, origin: ALLOWED });
      assert.ok(socket.connected);
    });

    srv.test(`${t}: the server's own origin is still accepted`, async () => {
      const socket = await connect(srv.base, { cookie: srv.admin.cookie, transports, origin: srv.origin });
      assert.ok(socket.connected);
    });

    srv.test(`${t}: an unlisted origin is refused`, async () => {
      await connectError(srv.base, { cookie: srv.admin.cookie, transports, origin: EVIL_ORIGIN });
    });

    srv.test(`${t}: a listed origin still needs a session ("unauthorized")`, async () => {
      const err = await connectError(srv.base, { transports, origin: ALLOWED });
      assert.equal(err.message, 'unauthorized');
    });
  }
});

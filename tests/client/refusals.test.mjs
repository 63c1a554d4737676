// A refusal reaches the client as its status and `{"error"}`, whatever the size of the body it
// refuses (within the body limit): a large upload answered before its body is read (a USER's
// or an anonymous plugin install, a foreign Origin, a malformed multipart form) must not
// surface in `fetch` as a network error (EPIPE, ECONNRESET, "other side closed"). The drain
// that ensures it is bounded: a body over the limit is answered 413 as soon as the limit is
// reached, and a request waiting for `100 Continue` is answered without being asked for it.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EVIL_ORIGIN, createUser, useServer } from './harness.mjs';

/** Within the plugin-install limit (32 MiB) and, here, the general body limit. */
const BODY_BYTES = 8 << 20;
const SEQUENTIAL = 20;
const CONCURRENT = 5;
/** The plugin-install limit (`MAX_COMPONENT_BYTES`). */
const INSTALL_LIMIT = 32 << 20;
/** "Promptly": well under the drain's time bound (10 s). */
const PROMPT_MS = 5_000;

/**
 * Sends `body` and resolves with `{ status, json }`, or with `{ failure }` when `fetch` rejects
 * (the connection was cut before the response was read).
 */
async function send(url, { method = 'PUT', headers = {}, body }) {
  try {
    const res = await fetch(url, { method, headers, body });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text };
  } catch (err) {
    const cause = err.cause ? ` (${err.cause.code ?? ''} ${err.cause.message ?? err.cause})` : '';
    return { failure: `${err.message}${cause}` };
  }
}

/**
 * Writes `head` (the request line and headers, CRLF-separated, without the blank line) and
 * `body` on a raw connection, sends nothing more, and resolves with the response status and
 * body once a whole response has arrived. Fails after `PROMPT_MS`.
 */
function rawExchange(base, head, body = Buffer.alloc(0)) {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no whole response within ${PROMPT_MS} ms; got: ${received.toString().slice(0, 200)}`));
    }, PROMPT_MS);
    const finish = (outcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      const text = received.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      if (status === 100) {
        finish({ status, text: '' });
        return;
      }
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
      if (received.length >= end + 4 + length) finish({ status, text: text.slice(end + 4, end + 4 + length) });
    });
    // The server may close after answering; the response is what counts.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`connection closed before a whole response; got: ${received.toString().slice(0, 200)}`));
    });
    socket.write(`${head}\r\nhost: ${hostname}:${port}\r\n\r\n`);
    socket.write(body);
  });
}

/** `SEQUENTIAL` attempts one after another, then `CONCURRENT` at once; every one must be answered. */
async function assertAlwaysAnswered(what, attempt, status) {
  const outcomes = [];
  for (let i = 0; i < SEQUENTIAL; i++) outcomes.push(await attempt());
  outcomes.push(...(await Promise.all(Array.from({ length: CONCURRENT }, attempt))));
  const wrong = outcomes
    .map((o, i) => ({ i, ...o }))
    .filter((o) => o.status !== status || typeof o.json?.error !== 'string');
  assert.deepEqual(
    wrong.map((o) => (o.failure ? `#${o.i}: ${o.failure}` : `#${o.i}: ${o.status} ${o.text}`)),
    [],
    `${what}: ${wrong.length} of ${outcomes.length} attempts were not answered ${status} with {"error"}`,
  );
}

describe('refusals of large bodies reach the client', () => {
  // The general limit raised to the upload size, so that records routes take such a body too.
  const srv = useServer({ env: { TIDINGS_MAX_BODY_BYTES: String(BODY_BYTES + (1 << 20)) } });
  let B;
  const component = Buffer.alloc(BODY_BYTES, 0x61);

  before(async () => {
    B = await createUser(srv.base, srv.admin.cookie);
  });

  const install = (headers) => () =>
    send(`${srv.base}/api/v1/admin/plugins/refused`, {
      headers: { 'content-type': 'application/wasm', ...headers },
      body: component,
    });

  srv.test('a USER installing a plugin gets 403', async () => {
    await assertAlwaysAnswered('USER install', install({ cookie: B.cookie }), 403);
  });

  srv.test('an install without a session gets 401', async () => {
    await assertAlwaysAnswered('anonymous install', install({}), 401);
  });

  srv.test('an install from a foreign Origin gets 403, even for the admin', async () => {
    await assertAlwaysAnswered('foreign-origin install', install({ cookie: srv.admin.cookie, origin: EVIL_ORIGIN }), 403);
  });

  srv.test('a multipart upload refused before its form is read gets its status', async () => {
    const upload = (headers) => () =>
      send(`${srv.base}/api/v1/events/import`, { method: 'POST', headers: { cookie: B.cookie, ...headers }, body: component });
    // No boundary: the form cannot be parsed at all.
    await assertAlwaysAnswered('multipart without boundary', upload({ 'content-type': 'multipart/form-data' }), 400);
    await assertAlwaysAnswered(
      'multipart from a foreign Origin',
      upload({ 'content-type': 'multipart/form-data; boundary=x', origin: EVIL_ORIGIN }),
      403,
    );
  });

  srv.test('a body over the limit is answered 413 when the limit is reached, not drained', async () => {
    // Declares twice the limit, sends one byte more than it, then waits.
    const res = await rawExchange(
      srv.base,
      `PUT /api/v1/admin/plugins/refused HTTP/1.1\r\ncookie: ${srv.admin.cookie}\r\n` +
        `content-type: application/wasm\r\ncontent-length: ${2 * INSTALL_LIMIT}`,
      Buffer.alloc(INSTALL_LIMIT + 1, 0x61),
    );
    assert.equal(res.status, 413, res.text);
    assert.equal(typeof JSON.parse(res.text).error, 'string', res.text);
  });

  srv.test('a refusal waiting for 100 Continue is answered without asking for the body', async () => {
    const res = await rawExchange(
      srv.base,
      `PUT /api/v1/admin/plugins/refused HTTP/1.1\r\nexpect: 100-continue\r\n` +
        `content-type: application/wasm\r\ncontent-length: ${BODY_BYTES}`,
    );
    assert.equal(res.status, 401, res.text);
    assert.equal(typeof JSON.parse(res.text).error, 'string', res.text);
  });
});

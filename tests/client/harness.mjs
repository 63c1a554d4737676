// Shared helpers for the Tidings real-client tests: start and stop a server,
// HTTP calls with fetch, users and sessions, Socket.IO connections that record
// every event they receive, and waits for (or for the absence of) events.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

// ---------------------------------------------------------------------------
// Constants

/** The repository root: two levels up from tests/client. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const ADMIN_EMAIL = 'admin@example.com';
export const ADMIN_PASSWORD = 'admin-password-for-client-tests';
export const SESSION_COOKIE = 'tidings_session';

/** How long to wait for a line `listening on http://...`. */
export const STARTUP_TIMEOUT_MS = 60_000;
/** A notification must reach a socket within this time after the HTTP response. */
export const DELIVERY_MS = Number(process.env.TIDINGS_TEST_DELIVERY_MS) || 1_000;
/** "Nothing arrived within this time" is how absence is asserted. */
export const QUIET_MS = Number(process.env.TIDINGS_TEST_QUIET_MS) || 300;
/** Socket.IO connect timeout. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** A foreign origin that no test server allows. */
export const EVIL_ORIGIN = 'http://evil.example';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A small deterministic PRNG (mulberry32), so a failing seed can be rerun. */
export function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}


const MAX_LOG_LINES = 5_000;
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;
const LISTENING = /listening on (http:\/\/\S+)/;

// ---------------------------------------------------------------------------
// Server process

/** The server binary: $TIDINGS_BIN, else <repo>/target/debug/tidings. */
export function serverBinary() {
  return process.env.TIDINGS_BIN || path.join(REPO_ROOT, 'target', 'debug', 'tidings');
}

/** Where the plugin tests build Rust templates: one target directory, so later builds compile only the project. */
export const TEMPLATE_TARGET = path.join(REPO_ROOT, 'target', 'plugin-template');

/**
 * Runs `tidings <args>` (a command, not the server) without the caller's `TIDINGS_*`
 * variables; resolves with { code, stdout, stderr, ms }.
 */
export function tidings(args, env = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TIDINGS_')));
    const child = spawn(serverBinary(), args, { env: { ...clean, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr, ms: Math.round(performance.now() - started) }));
  });
}

/**
 * Starts `tidings serve --listen 127.0.0.1:0 --data-dir <fresh temp dir>` and
 * waits until it logs `listening on http://ADDR` (stdout or stderr).
 *
 * @param {{ env?: Record<string,string>, pluginDir?: string }} [options]
 * @returns {Promise<Server>}
 */
export async function startServer({ env = {}, pluginDir, dataDir: reuseDataDir } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(
      `Tidings binary not found at ${bin}. Build it with \`cargo build\` in ${REPO_ROOT} ` +
        'or point TIDINGS_BIN at it.',
    );
  }
  const dataDir = reuseDataDir ?? (await mkdtemp(path.join(tmpdir(), 'tidings-client-data-')));

  // Inherit the environment minus any TIDINGS_* setting of the developer's
  // shell (e.g. a TIDINGS_DATABASE_URL), so every server starts the same way.
  const childEnv = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('TIDINGS_')),
  );
  Object.assign(childEnv, {
    TIDINGS_ADMIN_EMAIL: ADMIN_EMAIL,
    TIDINGS_ADMIN_PASSWORD: ADMIN_PASSWORD,
    RUST_LOG: 'info',
    NO_COLOR: '1',
    ...(pluginDir ? { TIDINGS_PLUGIN_DIR: pluginDir } : {}),
    ...env,
  });

  const args = ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir];
  const child = spawn(bin, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const server = new Server(child, dataDir, `${bin} ${args.join(' ')}`);
  try {
    server.base = await server.waitForListening(STARTUP_TIMEOUT_MS);
    server.origin = new URL(server.base).origin;
    await server.waitForHealth(STARTUP_TIMEOUT_MS);
  } catch (err) {
    await server.stop();
    err.message += `\n--- server output (${server.command}) ---\n${server.output()}\n--- end ---`;
    throw err;
  }
  return server;
}

export class Server {
  constructor(child, dataDir, command) {
    this.child = child;
    this.dataDir = dataDir;
    this.command = command;
    /** Base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
    this.base = undefined;
    /** The server's own origin (scheme://host:port). */
    this.origin = undefined;
    /** Extra temp dirs to remove on stop (e.g. a copied plugin dir). */
    this.cleanupDirs = [];
    this.lines = [];
    this.exit = null;
    this.spawnError = null;
    this.lineListeners = new Set();
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      child.once('error', (err) => {
        this.spawnError = err;
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    });
    this.#pipe(child.stdout, 'out');
    this.#pipe(child.stderr, 'err');
  }

  #pipe(stream, tag) {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        this.#line(tag, pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    stream.on('end', () => {
      if (pending) this.#line(tag, pending);
      pending = '';
    });
  }

  #line(tag, raw) {
    const line = raw.replace(ANSI, '').replace(/\r$/, '');
    this.lines.push(`[${tag}] ${line}`);
    if (this.lines.length > MAX_LOG_LINES) this.lines.splice(0, this.lines.length - MAX_LOG_LINES);
    for (const listener of this.lineListeners) listener(line);
  }

  /** Everything the server printed so far (last lines only). */
  output() {
    return this.lines.join('\n');
  }

  /** Resolves the base URL from the first `listening on http://...` line. */
  waitForListening(timeoutMs) {
    for (const entry of this.lines) {
      const m = LISTENING.exec(entry);
      if (m) return Promise.resolve(trimUrl(m[1]));
    }
    return new Promise((resolve, reject) => {
      const done = (fn, value) => {
        clearTimeout(timer);
        this.lineListeners.delete(onLine);
        fn(value);
      };
      const onLine = (line) => {
        const m = LISTENING.exec(line);
        if (m) done(resolve, trimUrl(m[1]));
      };
      const timer = setTimeout(
        () => done(reject, new Error(`server did not log "listening on http://..." within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.lineListeners.add(onLine);
      this.exited.then((exit) => {
        const why = exit.error ? `could not be started: ${exit.error.message}` : `exited early (${JSON.stringify(exit)})`;
        done(reject, new Error(`server ${why}`));
      });
    });
  }

  /**
   * Waits until GET /healthz answers 200 (the contract's "ready" signal). A
   * 404 means the route is not there at all; the tests then go on at once.
   */
  async waitForHealth(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (this.exit) throw new Error(`server exited (${JSON.stringify(this.exit)})`);
      // A cleared timer rather than AbortSignal.timeout(), which keeps the
      // process alive until it fires.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 5_000);
      try {
        const res = await fetch(`${this.base}/healthz`, { signal: abort.signal });
        await res.arrayBuffer();
        if (res.status === 200 || res.status === 404) return;
        last = `status ${res.status}`;
      } catch (err) {
        last = err.message;
      } finally {
        clearTimeout(timer);
      }
      await sleep(100);
    }
    throw new Error(`GET /healthz did not answer 200 within ${timeoutMs} ms (last: ${last})`);
  }

  /** Kill the process at once (SIGKILL), keeping its data directory. */
  async kill() {
    if (!this.exit) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  /** SIGTERM, SIGKILL after 5 s, then remove the temp dirs. */
  async stop() {
    if (!this.exit && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      let timer;
      const killed = await Promise.race([
        this.exited.then(() => true),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(false), 5_000);
        }),
      ]);
      clearTimeout(timer);
      if (!killed) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    for (const dir of [this.dataDir, ...this.cleanupDirs]) {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

function trimUrl(url) {
  return url.replace(/[)"',.;\]]+$/, '').replace(/\/+$/, '');
}

/**
 * The path of a test guest component, e.g. `swap_one.wasm`, from $TIDINGS_TEST_GUESTS_DIR
 * or <repo>/target/test-guests/wasm32-wasip2/release (built by `cargo test`).
 */
export function testGuest(file) {
  const sourceDir =
    process.env.TIDINGS_TEST_GUESTS_DIR ||
    path.join(REPO_ROOT, 'target', 'test-guests', 'wasm32-wasip2', 'release');
  const source = path.join(sourceDir, file);
  if (!existsSync(source)) {
    throw new Error(`test plugin not found at ${source}; build the test guests or set TIDINGS_TEST_GUESTS_DIR`);
  }
  return source;
}

/**
 * Installs the test guest `file` as plugin `name` over the admin API (ADMIN `cookie`);
 * resolves with { status, body }.
 */
export async function installGuest(base, cookie, file, name = 'swap') {
  const res = await fetch(`${base}/api/v1/admin/plugins/${name}`, {
    method: 'PUT',
    headers: { cookie, 'content-type': 'application/wasm' },
    body: await readFile(testGuest(file)),
  });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

/** A fresh temp dir holding only the test plugin `notify_rooms.wasm`. */
export async function notifyRoomsPluginDir() {
  const source = testGuest('notify_rooms.wasm');
  const dir = await mkdtemp(path.join(tmpdir(), 'tidings-client-plugins-'));
  await copyFile(source, path.join(dir, 'notify_rooms.wasm'));
  return dir;
}

// ---------------------------------------------------------------------------
// Per-file server fixture

/**
 * Registers before/after hooks in the current scope (file or describe block)
 * that start one server, sign the admin in and stop the server at the end.
 * Sockets opened with `ctx.connect` are closed after every test.
 *
 * @param {{ env?: Record<string,string>, notifyRooms?: boolean }} [options]
 *   notifyRooms: start with a plugin dir holding only the test plugin.
 */
export function useServer({ env = {}, notifyRooms = false } = {}) {
  const ctx = {
    /** @type {Server} */ server: undefined,
    /** Base URL. */ base: undefined,
    /** The server's own origin. */ origin: undefined,
    /** The bootstrap admin: { user, cookie, email, password }. */ admin: undefined,
    /** Connects a socket that is closed after the test. */
    connect: (options) => connect(ctx.base, options),
    /** Like node:test's `test`, but prints the server output when the test fails. */
    test: (name, options, fn) => {
      if (typeof options === 'function') [options, fn] = [{}, options];
      return test(name, options, async (t) => {
        try {
          await fn(t);
        } catch (err) {
          dumpServerOutput(ctx.server, name);
          throw err;
        }
      });
    },
  };

  before(async () => {
    let pluginDir;
    if (notifyRooms) pluginDir = await notifyRoomsPluginDir();
    try {
      ctx.server = await startServer({ env, pluginDir });
    } catch (err) {
      if (pluginDir) await rm(pluginDir, { recursive: true, force: true });
      throw err;
    }
    if (pluginDir) ctx.server.cleanupDirs.push(pluginDir);
    ctx.base = ctx.server.base;
    ctx.origin = ctx.server.origin;
    try {
      ctx.admin = await login(ctx.base, ADMIN_EMAIL, ADMIN_PASSWORD);
    } catch (err) {
      dumpServerOutput(ctx.server, 'admin login');
      throw err;
    }
  });

  afterEach(() => closeAllSockets());

  after(async () => {
    closeAllSockets();
    if (ctx.server) await ctx.server.stop();
  });

  return ctx;
}

function dumpServerOutput(server, name) {
  if (!server) return;
  process.stderr.write(
    `\n--- server output for failed test "${name}" (${server.command}) ---\n` +
      `${server.output()}\n--- end of server output ---\n`,
  );
}

// ---------------------------------------------------------------------------
// HTTP

/**
 * One HTTP request. `body` is sent as JSON; `raw` is sent verbatim with
 * content-type application/json. Returns { status, body, text, headers }.
 */
export async function api(base, method, urlPath, { cookie, body, raw, headers = {} } = {}) {
  const init = { method, headers: { accept: 'application/json', ...headers } };
  if (cookie) init.headers.cookie = cookie;
  if (body !== undefined || raw !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = raw !== undefined ? raw : JSON.stringify(body);
  }
  const res = await fetch(`${base}${urlPath}`, init);
  const text = await res.text();
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

/** Asserts a status, showing the body when it differs. */
export function assertStatus(res, status, what = 'request') {
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status} ${res.text}`);
}

/** `tidings_session=<token>` from a response's Set-Cookie headers, or undefined. */
export function sessionCookieOf(res) {
  for (const header of res.headers.getSetCookie()) {
    const pair = header.split(';', 1)[0].trim();
    if (pair.startsWith(`${SESSION_COOKIE}=`)) return pair;
  }
  return undefined;
}

/** Signs in; each call is a new session. Returns { user, cookie, email, password, setCookie }. */
export async function login(base, email, password) {
  const res = await api(base, 'POST', '/api/v1/auth/login', { body: { email, password } });
  assertStatus(res, 200, `login as ${email}`);
  const cookie = sessionCookieOf(res);
  assert.ok(cookie, `login as ${email} set no ${SESSION_COOKIE} cookie: ${res.headers.getSetCookie()}`);
  return { user: res.body, cookie, email, password, setCookie: res.headers.getSetCookie() };
}

let userCounter = 0;

/**
 * Creates a user with a unique e-mail (as the admin) and signs them in.
 * Returns { user, cookie, email, password }; `newSession(base, account)` signs
 * the same user in again.
 */
export async function createUser(base, adminCookie, { role = 'USER' } = {}) {
  userCounter += 1;
  const email = `client-test-${userCounter}-${randomUUID().slice(0, 8)}@example.com`;
  const password = `password-${randomUUID().slice(0, 8)}`;
  const res = await api(base, 'POST', '/api/v1/users', {
    cookie: adminCookie,
    body: { email, password, role, firstName: 'Test', lastName: `User ${userCounter}` },
  });
  assertStatus(res, 201, `create ${role} ${email}`);
  assert.equal(res.body.role, role);
  const account = await login(base, email, password);
  assert.equal(account.user.id, res.body.id, 'login returns the created user');
  return account;
}

/** Signs an existing account in again: a second, independent session. */
export function newSession(base, account) {
  return login(base, account.email, account.password);
}

/** Creates a department as `cookie` (bare record). Returns the response. */
export function postDepartment(base, cookie, { headers, name } = {}) {
  return api(base, 'POST', '/api/v1/departments', {
    cookie,
    headers,
    body: { name: name ?? `Dept ${randomUUID()}`, description: 'created by the client tests' },
  });
}

/**
 * Creates a note with the test plugin: one NEW_RECORD of type NOTE to the
 * union of `targets`. `socketId` sets x-metadata-socketid.
 */
export function postNote(base, cookie, targets, { toSelf, socketId } = {}) {
  const body = { targets };
  if (toSelf !== undefined) body.toSelf = toSelf;
  const headers = socketId ? { 'x-metadata-socketid': socketId } : {};
  return api(base, 'POST', '/api/v1/notes', { cookie, body, headers });
}

// ---------------------------------------------------------------------------
// Socket.IO

const openSockets = new Set();

/** Options for `io()`; a cookie and an Origin go into extraHeaders. */
function socketOptions({ cookie, transports = ['websocket'], origin, headers = {}, auth }) {
  const extraHeaders = { ...headers };
  if (cookie) extraHeaders.Cookie = cookie;
  if (origin) extraHeaders.Origin = origin;
  return {
    transports,
    extraHeaders,
    reconnection: false,
    forceNew: true,
    timeout: CONNECT_TIMEOUT_MS,
    ...(auth ? { auth } : {}),
  };
}

/** Creates a socket that records every event it receives (see `events`). */
function openSocket(base, options) {
  const socket = io(base, socketOptions(options));
  socket.received = [];
  socket.waiters = new Set();
  socket.transportsAsked = options.transports ?? ['websocket'];
  socket.disconnectReason = undefined;
  socket.on('disconnect', (reason) => {
    socket.disconnectReason = reason;
  });
  socket.onAny((event, ...args) => {
    const entry = { event, payload: args[0], args, at: Date.now() };
    socket.received.push(entry);
    for (const waiter of [...socket.waiters]) waiter(entry);
  });
  openSockets.add(socket);
  return socket;
}

/**
 * Connects and resolves with the connected socket; rejects with the
 * connect_error. `transports` defaults to ['websocket'].
 *
 * @param {string} base
 * @param {{ cookie?: string, transports?: string[], origin?: string, headers?: object }} options
 */
export function connect(base, options = {}) {
  const socket = openSocket(base, options);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.off('connect_error');
      resolve(socket);
    });
    socket.once('connect_error', (err) => {
      socket.disconnect();
      const wrapped = new Error(
        `socket did not connect (${socket.transportsAsked.join('+')}): connect_error "${err.message}"`,
      );
      wrapped.connectError = err;
      reject(wrapped);
    });
  });
}

/**
 * Expects the handshake to fail; resolves with the connect_error's Error.
 * Fails if the socket connects.
 */
export function connectError(base, options = {}) {
  const socket = openSocket(base, options);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.off('connect_error');
      const id = socket.id;
      socket.disconnect();
      reject(
        new assert.AssertionError({
          message: `handshake unexpectedly succeeded (${socket.transportsAsked.join('+')}, socket ${id})`,
        }),
      );
    });
    socket.once('connect_error', (err) => {
      socket.off('connect');
      socket.disconnect();
      resolve(err);
    });
  });
}

/** Closes every socket opened by `connect`/`connectError`. */
export function closeAllSockets() {
  for (const socket of openSockets) {
    try {
      socket.disconnect();
    } catch {
      // already gone
    }
  }
  openSockets.clear();
}

/** Matches a NEW_RECORD/CHANGED_RECORD payload by its record id. */
export const withRecordId = (id) => (payload) => payload?.record?.id === id;

/** The recorded events named `event` whose payload satisfies `predicate`. */
export function eventsOf(socket, event, predicate = () => true) {
  return socket.received.filter((e) => e.event === event && predicate(e.payload)).map((e) => e.payload);
}

/**
 * Resolves with the payload of the first `event` (already recorded or
 * arriving within `timeoutMs`) whose payload satisfies `predicate`.
 */
export function waitForEvent(socket, event, predicate = () => true, timeoutMs = DELIVERY_MS, label = '') {
  const seen = socket.received.find((e) => e.event === event && predicate(e.payload));
  if (seen) return Promise.resolve(seen.payload);
  return new Promise((resolve, reject) => {
    const waiter = (entry) => {
      if (entry.event === event && predicate(entry.payload)) {
        clearTimeout(timer);
        socket.waiters.delete(waiter);
        resolve(entry.payload);
      }
    };
    const timer = setTimeout(() => {
      socket.waiters.delete(waiter);
      const got = socket.received.map((e) => `${e.event} ${JSON.stringify(e.payload)}`);
      reject(
        new assert.AssertionError({
          message:
            `${label ? `${label}: ` : ''}no matching ${event} within ${timeoutMs} ms on socket ${socket.id} ` +
            `(connected: ${socket.connected}); it received:\n  ${got.join('\n  ') || '(nothing)'}`,
        }),
      );
    }, timeoutMs);
    socket.waiters.add(waiter);
  });
}

/**
 * Waits `ms` and asserts that no matching `event` was received (before or
 * during the wait). Call it only on a socket already shown to be live.
 */
export async function expectNoEvent(socket, event, predicate = () => true, ms = QUIET_MS, label = '') {
  await sleep(ms);
  const got = eventsOf(socket, event, predicate);
  assert.deepEqual(
    got,
    [],
    `${label ? `${label}: ` : ''}socket ${socket.id} received ${event} it should not have: ${JSON.stringify(got)}`,
  );
}

/** Resolves with the disconnect reason, or fails after `timeoutMs`. */
export function waitForDisconnect(socket, timeoutMs = 2_000, label = '') {
  if (socket.disconnectReason !== undefined) return Promise.resolve(socket.disconnectReason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new assert.AssertionError({
            message: `${label ? `${label}: ` : ''}socket ${socket.id} was not disconnected within ${timeoutMs} ms`,
          }),
        ),
      timeoutMs,
    );
    socket.once('disconnect', (reason) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

/** Asserts a notification offset: a positive safe integer. */
export function assertOffset(offset, what = 'offset') {
  assert.ok(
    Number.isSafeInteger(offset) && offset > 0,
    `${what} must be a positive integer, got ${JSON.stringify(offset)}`,
  );
}

/** The events a record change produces. */
export const NOTIFICATION_EVENTS = ['NEW_RECORD', 'CHANGED_RECORD', 'DELETED_RECORD'];

/** The record notifications a socket received after `mark` (= an earlier `socket.received.length`). */
export function notificationsSince(socket, mark = 0) {
  return socket.received
    .slice(mark)
    .filter((e) => NOTIFICATION_EVENTS.includes(e.event))
    .map((e) => ({ event: e.event, payload: e.payload }));
}

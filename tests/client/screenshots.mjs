// Screenshots of the web console for docs/console/ (not a test): starts a server, seeds a few
// records, opens each view in headless Chromium and saves a PNG of it.
//
//   cd tests/client && node screenshots.mjs
//
// TIDINGS_BIN and TIDINGS_CHROMIUM as for the tests.

import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  REPO_ROOT,
  api,
  assertStatus,
  login,
  sleep,
  startServer,
  testGuest,
} from './harness.mjs';

const OUT = path.join(REPO_ROOT, 'docs', 'console');
const CHROMIUM = process.env.TIDINGS_CHROMIUM || '/usr/bin/chromium';
const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };

const server = await startServer();
const { base } = server;
const sockets = [];
let browser;
try {
  await mkdir(OUT, { recursive: true });
  const admin = await login(base, ADMIN_EMAIL, ADMIN_PASSWORD);
  const post = async (urlPath, body, cookie = admin.cookie) => {
    const res = await api(base, 'POST', urlPath, { cookie, body });
    assertStatus(res, 201, `POST ${urlPath}`);
    return res.body;
  };

  const users = [];
  for (const [firstName, lastName] of [['Ada', 'Lovelace'], ['Grace', 'Hopper']]) {
    const email = `${firstName.toLowerCase()}@example.com`;
    await post('/api/v1/users', { email, password: 'password123', role: 'USER', firstName, lastName });
    users.push(await login(base, email, 'password123'));
  }
  for (const name of ['Gymnasium', 'Fachmittelschule']) {
    await post('/api/v1/departments', { name, description: `The ${name}` });
  }
  await post('/api/v1/semesters', { name: 'HS 2025', start: '2025-08-18T00:00:00.000Z', end: '2026-01-31T00:00:00.000Z' });

  // Two versions of the test plugin `swap`, so that the plugins view offers a rollback (the
  // test guests are built by `cargo test`; without them the view shows the bundled plugins only).
  try {
    for (const file of ['swap_one.wasm', 'swap_two.wasm']) {
      const res = await fetch(`${base}/api/v1/admin/plugins/swap`, {
        method: 'PUT',
        headers: { cookie: admin.cookie, 'content-type': 'application/wasm' },
        body: await readFile(testGuest(file)),
      });
      if (res.status !== 200) throw new Error(`install ${file}: ${res.status} ${await res.text()}`);
    }
  } catch (err) {
    console.warn(`no rollback in the plugins view: ${err.message}`);
  }

  // Other clients, so that the sockets view has more than the console in it.
  for (const account of [admin, ...users]) {
    const socket = io(base, { extraHeaders: { Cookie: account.cookie }, transports: ['websocket'], forceNew: true });
    sockets.push(socket);
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
  }

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  const newPage = async (viewport, cookie) => {
    const context = await browser.newContext({ viewport, reducedMotion: 'reduce', colorScheme: 'light' });
    if (cookie) {
      const [name, value] = cookie.split('=');
      await context.addCookies([{ name, value, url: base, httpOnly: true, sameSite: 'Lax' }]);
    }
    const page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    return page;
  };
  const shot = async (page, file, options = {}) => {
    await page.evaluate(() => document.activeElement?.blur());
    await page.screenshot({ path: path.join(OUT, file), ...options });
    console.log(`docs/console/${file}`);
  };

  // Sign-in.
  const signIn = await newPage(DESKTOP);
  await signIn.goto(`${base}/`);
  await signIn.getByLabel('Email').fill(ADMIN_EMAIL);
  await signIn.getByLabel('Password').fill('a password');
  await shot(signIn, 'sign-in.png');
  await signIn.context().close();

  // The admin's console, fed live while it is open.
  const page = await newPage(DESKTOP, admin.cookie);
  await page.goto(`${base}/#/departments`);
  await page.locator('#live[data-tone="ok"]').waitFor();
  await page.locator('.count', { hasText: /^\(\d+\)$/ }).waitFor();
  const music = await post('/api/v1/departments', { name: 'Musik', description: 'created while the console watched' });
  await post('/api/v1/departments', { name: 'Wirtschaftsmittelschule', description: 'WMS' });
  const changed = await api(base, 'PUT', `/api/v1/departments/${music.id}`, {
    cookie: admin.cookie,
    body: { data: { description: 'Music, changed while the console watched' } },
  });
  assertStatus(changed, 200, 'PUT a department');
  const temp = await post('/api/v1/departments', { name: 'Temporary', description: 'deleted again' });
  assertStatus(await api(base, 'DELETE', `/api/v1/departments/${temp.id}`, { cookie: admin.cookie }), 204, 'DELETE');
  await page.getByRole('row').filter({ hasText: 'Wirtschaftsmittelschule' }).waitFor();
  await sleep(300);
  await shot(page, 'collection.png');

  for (const [hash, file, ready] of [
    ['notifications', 'notifications.png', 'tbody tr'],
    ['plugins', 'plugins.png', 'tr[data-plugin]'],
    ['sockets', 'sockets.png', 'tr[data-socket]'],
    ['api', 'api.png', '.api-tag'],
  ]) {
    await page.getByRole('link', { name: hash === 'api' ? 'API' : hash[0].toUpperCase() + hash.slice(1) }).click();
    await page.locator(ready).first().waitFor();
    await sleep(200);
    await shot(page, file, { fullPage: hash === 'plugins' });
  }
  await page.context().close();

  // A phone.
  const phone = await newPage(PHONE, admin.cookie);
  await phone.goto(`${base}/#/departments`);
  await phone.locator('.count', { hasText: /^\(\d+\)$/ }).waitFor();
  await shot(phone, 'phone-collection.png');
  await phone.goto(`${base}/#/plugins`);
  await phone.locator('tr[data-plugin]').first().waitFor();
  await shot(phone, 'phone-plugins.png');
  await phone.context().close();

  // The first probe's 401 (not signed in yet) is Chromium's own line; anything else is not.
  const unexpected = errors.filter((e) => !/status of 401/.test(e));
  if (unexpected.length) throw new Error(`console errors: ${JSON.stringify(unexpected)}`);
} finally {
  for (const socket of sockets) socket.disconnect();
  await browser?.close();
  await server.stop();
}

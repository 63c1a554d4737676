// The web console at `/` in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core): sign-in through the form, a collection updated live without a reload, the
// notifications, plugins, sockets and API views, what a USER does not see, the server's own
// error messages, and, on every page, no console error and no request to another host.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  DELIVERY_MS,
  SESSION_COOKIE,
  api,
  assertStatus,
  createUser,
  login,
  postDepartment,
  testGuest,
  useServer,
  waitForEvent,
} from './harness.mjs';

const CHROMIUM = process.env.TIDINGS_CHROMIUM || '/usr/bin/chromium';
/** How long the page may take to show something (a live row is held to DELIVERY_MS + render). */
const UI_MS = 10_000;
const LIVE_MS = DELIVERY_MS + 2_000;

const ctx = useServer();
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
});

/**
 * A fresh browser context on the console at `hash`, signed in with `cookie` if given. Records
 * every console error, uncaught exception, request (and WebSocket) URL and HTTP error response.
 */
async function openConsole({ hash = '', cookie, viewport } = {}) {
  const context = await browser.newContext(viewport ? { viewport } : {});
  if (cookie) {
    const [name, value] = cookie.split('=');
    await context.addCookies([{ name, value, url: ctx.base, httpOnly: true, sameSite: 'Lax' }]);
  }
  const page = await context.newPage();
  page.setDefaultTimeout(UI_MS);
  const seen = { errors: [], urls: [], failures: [] };
  page.on('console', (message) => {
    if (message.type() === 'error') seen.errors.push(message.text());
  });
  page.on('pageerror', (err) => seen.errors.push(`uncaught: ${err.message}`));
  page.on('request', (request) => seen.urls.push(request.url()));
  page.on('websocket', (ws) => seen.urls.push(ws.url()));
  page.on('response', (response) => {
    if (response.status() >= 400) {
      const { pathname } = new URL(response.url());
      seen.failures.push(`${response.status()} ${response.request().method()} ${pathname}`);
    }
  });
  await page.goto(`${ctx.base}/${hash}`);
  return { context, page, seen };
}

/**
 * Runs `fn(page, seen, context)` on a fresh console (see `openConsole`) and closes it. On a
 * failure the message gets the page's address, console errors and HTTP errors, and a screenshot
 * is saved to the temp dir.
 */
async function withConsole(options, fn) {
  const { context, page, seen } = await openConsole(options);
  try {
    await fn(page, seen, context);
  } catch (err) {
    const shot = path.join(tmpdir(), `tidings-console-failure-${Date.now()}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    err.message +=
      `\n--- page ${page.url()} (screenshot ${shot})\nconsole errors: ${JSON.stringify(seen.errors)}` +
      `\nHTTP errors: ${JSON.stringify(seen.failures)}`;
    throw err;
  } finally {
    await context.close();
  }
}

/**
 * Asserts the page asked nothing of another host, answered exactly `expectedFailures` with an
 * HTTP error, and logged no console error besides Chromium's own "Failed to load resource" line
 * for each of those responses.
 */
function assertClean(seen, expectedFailures = []) {
  const host = new URL(ctx.base).host;
  const foreign = seen.urls.filter((url) => !/^(data|blob):/.test(url) && new URL(url).host !== host);
  assert.deepEqual(foreign, [], 'requests to another host');
  assert.ok(seen.urls.length > 0, 'the page made requests');
  assert.deepEqual(seen.failures, expectedFailures, 'HTTP error responses');
  const resource = /^Failed to load resource: the server responded with a status of (\d+)/;
  const logged = seen.errors.map((text) => resource.exec(text)?.[1]).filter(Boolean).sort();
  const expected = expectedFailures.map((failure) => failure.split(' ')[0]).sort();
  assert.deepEqual(logged, expected, `Chromium's lines for the HTTP errors: ${JSON.stringify(seen.errors)}`);
  assert.deepEqual(seen.errors.filter((text) => !resource.test(text)), [], 'console errors');
}

/** Installs a test guest as the plugin `swap` over HTTP: { status, body }. */
async function installOver(cookie, file) {
  const res = await fetch(`${ctx.base}/api/v1/admin/plugins/swap`, {
    method: 'PUT',
    headers: { cookie, 'content-type': 'application/wasm' },
    body: await readFile(testGuest(file)),
  });
  return { status: res.status, body: await res.json() };
}

async function signIn(page, email, password) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Waits until the console's socket is connected. */
const live = (page) => page.locator('#live[data-tone="ok"]').waitFor();

/**
 * The navigation's link texts, once it is built: it follows the OpenAPI document, which may
 * arrive after the socket has connected.
 */
async function navLinks(page) {
  const links = page.getByRole('navigation', { name: 'Views' }).getByRole('link');
  await links.first().waitFor();
  return links.allTextContents();
}

ctx.test('the admin signs in through the form and reaches every view from the navigation', async () => {
  await withConsole({}, async (page, seen) => {
    await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await live(page);
    const links = await navLinks(page);
    for (const name of ['departments', 'events', 'semesters', 'Notifications', 'API', 'Plugins', 'Sockets']) {
      assert.ok(links.includes(name), `a "${name}" link among ${JSON.stringify(links)}`);
    }
    // The first view opens, marked as the current page, and the hash names it.
    const current = page.locator('nav a[aria-current="page"]');
    assert.equal(await current.count(), 1);
    assert.equal(new URL(page.url()).hash, `#/${await current.textContent()}`);
    // Keyboard: focus a link, press Enter, and the view and its heading follow.
    await page.getByRole('link', { name: 'Notifications' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 2, name: 'Notifications' }).waitFor();
    assert.equal(new URL(page.url()).hash, '#/notifications');
    assert.equal(await page.getByRole('link', { name: 'Notifications' }).getAttribute('aria-current'), 'page');
    // A reload keeps the view and the session; signing out shows the form again.
    await page.reload();
    await page.getByRole('heading', { level: 2, name: 'Notifications' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Email').waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Views' }).isVisible(), false);
    assertClean(seen, ['401 GET /api/v1/user']);
  });
});

ctx.test('a department created and deleted over HTTP appears and disappears without a reload; the notifications show their offsets', async () => {
  const listener = await ctx.connect({ cookie: ctx.admin.cookie });
  await withConsole({ hash: '#/departments', cookie: ctx.admin.cookie }, async (page, seen) => {
    await page.getByRole('heading', { level: 2, name: /^departments/ }).waitFor();
    await live(page);
    await page.locator('.count', { hasText: /^\(\d+\)$/ }).waitFor(); // the list has loaded
    await page.evaluate(() => {
      window.notReloaded = true;
    });

    const name = `Console ${randomUUID().slice(0, 8)}`;
    const created = await postDepartment(ctx.base, ctx.admin.cookie, { name });
    assertStatus(created, 201, 'create a department');
    const id = created.body.id;
    const row = page.getByRole('row').filter({ hasText: id });
    await row.waitFor({ timeout: LIVE_MS });
    assert.match(await row.textContent(), new RegExp(name));

    const deleted = await api(ctx.base, 'DELETE', `/api/v1/departments/${id}`, { cookie: ctx.admin.cookie });
    assert.ok(deleted.status < 300, `delete: ${deleted.status} ${deleted.text}`);
    await row.waitFor({ state: 'detached', timeout: LIVE_MS });
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');

    // The same notifications, with the offsets another client received, in the stream.
    const added = await waitForEvent(listener, 'NEW_RECORD', (p) => p.record?.id === id);
    const removed = await waitForEvent(listener, 'DELETED_RECORD', (p) => p.id === id);
    await page.getByRole('link', { name: 'Notifications' }).click();
    for (const [event, offset] of [['NEW_RECORD', added.offset], ['DELETED_RECORD', removed.offset]]) {
      const entry = page.locator(`tr[data-offset="${offset}"]`);
      await entry.waitFor();
      const cells = await entry.getByRole('cell').allTextContents();
      assert.equal(cells[1], String(offset));
      assert.equal(cells[2], event);
      assert.equal(cells[3], 'DEPARTMENT');
      assert.equal(cells[4], id);
    }
    // Newest first.
    const offsets = (await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => Number(r.dataset.offset))))
      .filter(Boolean);
    assert.ok(offsets.indexOf(removed.offset) < offsets.indexOf(added.offset), `newest first: ${offsets}`);
    assertClean(seen);
  });
});

ctx.test('the plugins view shows each plugin with its version, sha256, limits and counters, and the server\'s refusal of a bad component', async () => {
  const plugins = await api(ctx.base, 'GET', '/api/v1/admin/plugins', { cookie: ctx.admin.cookie });
  assertStatus(plugins, 200, 'GET /api/v1/admin/plugins');
  const department = plugins.body.find((p) => p.name === 'department');
  assert.ok(department, 'the bundled department plugin is loaded');
  // What the server answers to a component that is not one.
  const bad = Buffer.from('not a wasm component');
  const refused = await fetch(`${ctx.base}/api/v1/admin/plugins/department`, {
    method: 'PUT',
    headers: { cookie: ctx.admin.cookie, 'content-type': 'application/wasm' },
    body: bad,
  });
  assert.equal(refused.status, 422);
  const refusal = (await refused.json()).error;

  await withConsole({ hash: '#/plugins', cookie: ctx.admin.cookie }, async (page, seen) => {
    const row = page.locator('tr[data-plugin="department"]');
    await row.waitFor();
    const text = await row.textContent();
    assert.match(text, /department/);
    assert.ok(text.includes(department.version), `version ${department.version} in ${text}`);
    assert.ok(text.includes(department.sha256.slice(0, 12)), `sha256 prefix in ${text}`);
    assert.equal(await row.locator(`code[title="${department.sha256}"]`).count(), 1, 'the full sha256 in a title');
    assert.ok(text.includes(`${department.limits.timeoutMs} ms`), `the timeout in ${text}`);
    assert.equal(await page.locator('tbody tr').count(), plugins.body.length, 'one row per plugin');

    await page.getByLabel('Component (.wasm)').setInputFiles({ name: 'bad.wasm', mimeType: 'application/wasm', buffer: bad });
    await page.getByLabel('Plugin name').fill('department');
    assert.equal(await page.getByLabel('Approve new grants').isChecked(), false);
    await page.getByRole('button', { name: 'Install' }).click();
    await page.locator('form.install [role="alert"]', { hasText: refusal }).waitFor();
    assert.equal(await page.locator('form.install [role="alert"]').textContent(), refusal);
    assertClean(seen, ['422 PUT /api/v1/admin/plugins/department']);
  });
});

ctx.test('an admin installs a plugin, is refused wider grants until they are approved, and rolls back, all from the plugins view', async () => {
  // What the server answers to the wider build without approval (a refusal changes nothing).
  await installOver(ctx.admin.cookie, 'swap_one.wasm');
  const widerRefused = await installOver(ctx.admin.cookie, 'swap_wider.wasm');
  assert.equal(widerRefused.status, 422);
  const refusal = widerRefused.body.error;
  assert.match(refusal, /grants/);

  await withConsole({ hash: '#/plugins', cookie: ctx.admin.cookie }, async (page, seen) => {
    const row = page.locator('tr[data-plugin="swap"]');
    const install = async (file, { approve = false } = {}) => {
      await page.getByLabel('Component (.wasm)').setInputFiles(testGuest(file));
      await page.getByLabel('Plugin name').fill('swap');
      await page.getByLabel('Approve new grants').setChecked(approve);
      await page.getByRole('button', { name: 'Install' }).click();
    };
    await row.waitFor();
    await install('swap_two.wasm');
    await page.getByRole('status').filter({ hasText: 'Installed swap 2.0.0' }).waitFor();
    await row.filter({ hasText: '2.0.0' }).waitFor();

    await install('swap_wider.wasm');
    await page.locator('form.install [role="alert"]', { hasText: refusal }).waitFor();
    assert.equal(await page.locator('form.install [role="alert"]').textContent(), refusal);
    assert.match(await row.textContent(), /2\.0\.0/, 'the refused build is not serving');

    await install('swap_wider.wasm', { approve: true });
    await page.getByRole('status').filter({ hasText: 'Installed swap 3.0.0' }).waitFor();
    await row.filter({ hasText: '3.0.0' }).waitFor();

    await page.getByRole('button', { name: 'Roll back swap to 2.0.0' }).click();
    await page.getByRole('status').filter({ hasText: 'swap is back at 2.0.0' }).waitFor();
    const plugins = await api(ctx.base, 'GET', '/api/v1/admin/plugins', { cookie: ctx.admin.cookie });
    assert.equal(plugins.body.find((p) => p.name === 'swap').version, '2.0.0');
    assert.match(await row.locator('td').nth(0).textContent(), /^2\.0\.0/);
    // The swap's routes reached the navigation without a reload (PLUGIN_CHANGED, then openapi.json).
    assert.ok((await navLinks(page)).includes('swaps'), 'a "swaps" link');
    assertClean(seen, ['422 PUT /api/v1/admin/plugins/swap']);
  });
});

ctx.test('the sockets view lists the console\'s own socket and rooms; the API view renders openapi.json', async () => {
  await withConsole({ hash: '#/sockets', cookie: ctx.admin.cookie }, async (page, seen) => {
    await live(page);
    const own = page.getByRole('row').filter({ hasText: 'this console' });
    await own.waitFor();
    const cells = await own.getByRole('cell').allTextContents();
    assert.equal(cells[1], ADMIN_EMAIL);
    assert.equal(cells[2], 'ADMIN');
    for (const room of ['all', 'admin', ctx.admin.user.id]) {
      assert.equal(await own.locator('code.room', { hasText: room }).count() >= 1, true, `room ${room} in ${cells[4]}`);
    }
    await page.getByRole('button', { name: 'Refresh' }).click();

    const doc = await api(ctx.base, 'GET', '/api/v1/openapi.json', { cookie: ctx.admin.cookie });
    assertStatus(doc, 200, 'GET /api/v1/openapi.json');
    await page.getByRole('link', { name: 'API' }).click();
    const section = page.getByRole('region', { name: 'departments operations' });
    await section.waitFor();
    const list = section
      .getByRole('row')
      .filter({ has: page.getByRole('cell', { name: '/api/v1/departments', exact: true }) })
      .filter({ has: page.getByRole('cell', { name: 'GET', exact: true }) });
    assert.equal(await list.count(), 1, 'GET /api/v1/departments');
    assert.match(await list.textContent(), /public/);
    const host = page.getByRole('region', { name: 'host operations' });
    assert.match(await host.textContent(), /\/api\/v1\/auth\/login/);
    assert.match(await host.textContent(), /admin/);
    assertClean(seen);
  });
});

ctx.test('a USER signs in and sees no Plugins or Sockets, and the console asks for no ADMIN data', async () => {
  const user = await createUser(ctx.base, ctx.admin.cookie);
  await withConsole({ hash: '#/plugins' }, async (page, seen) => {
    await signIn(page, user.email, user.password);
    await live(page);
    const links = await navLinks(page);
    assert.ok(links.includes('departments') && links.includes('Notifications') && links.includes('API'), JSON.stringify(links));
    assert.ok(!links.includes('Plugins') && !links.includes('Sockets'), `no ADMIN links: ${JSON.stringify(links)}`);
    await page.getByRole('heading', { level: 2, name: 'Not found' }).waitFor();
    await page.goto(`${ctx.base}/#/sockets`);
    await page.getByRole('heading', { level: 2, name: 'Not found' }).waitFor();
    // The API view shows what a USER may call, ADMIN routes marked as such.
    await page.getByRole('link', { name: 'API' }).click();
    await page.getByRole('region', { name: 'departments operations' }).waitFor();
    const admin = seen.urls.filter((url) => new URL(url).pathname.startsWith('/api/v1/admin'));
    assert.deepEqual(admin, [], 'no ADMIN route requested');
    assertClean(seen, ['401 GET /api/v1/user']);
  });
});

ctx.test('a session ended elsewhere brings back the sign-in form, with the server\'s message', async () => {
  const session = await login(ctx.base, ADMIN_EMAIL, ADMIN_PASSWORD);
  await withConsole({ hash: '#/notifications', cookie: session.cookie }, async (page, seen) => {
    await live(page);
    const out = await api(ctx.base, 'POST', '/api/v1/logout', { cookie: session.cookie });
    assertStatus(out, 204, 'logout over HTTP');
    // The server closes the session's sockets; the console asks, learns, and says so.
    await page.getByLabel('Email').waitFor({ timeout: LIVE_MS });
    const unauthorized = await api(ctx.base, 'GET', '/api/v1/user', { cookie: session.cookie });
    assert.equal(await page.locator('#sign-in [role="alert"]').textContent(), `Signed out: ${unauthorized.body.error}`);
    assert.equal(await page.getByRole('navigation', { name: 'Views' }).isVisible(), false);
    assertClean(seen, ['401 GET /api/v1/user']);
  });
});

ctx.test('a wrong password shows the server\'s message', async () => {
  const wrong = await api(ctx.base, 'POST', '/api/v1/auth/login', {
    body: { email: ADMIN_EMAIL, password: 'not the password' },
  });
  assertStatus(wrong, 401, 'a wrong password');
  await withConsole({}, async (page, seen, context) => {
    await signIn(page, ADMIN_EMAIL, 'not the password');
    const alert = page.locator('#sign-in [role="alert"]');
    await alert.filter({ hasText: wrong.body.error }).waitFor();
    assert.equal(await alert.textContent(), wrong.body.error);
    assert.equal(await page.getByRole('navigation', { name: 'Views' }).isVisible(), false);
    assert.equal(
      (await context.cookies()).some((c) => c.name === SESSION_COOKIE),
      false,
      'no session cookie',
    );
    assertClean(seen, ['401 GET /api/v1/user', '401 POST /api/v1/auth/login']);
  });
});

ctx.test('at phone width the page does not scroll sideways; wide tables scroll in their region', async () => {
  const phone = { hash: '#/plugins', cookie: ctx.admin.cookie, viewport: { width: 390, height: 844 } };
  await withConsole(phone, async (page, seen) => {
    await page.locator('tr[data-plugin="department"]').waitFor();
    const { page: pageWidth, viewport, region } = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
      region: document.querySelector('.scroll').scrollWidth > document.querySelector('.scroll').clientWidth,
    }));
    assert.ok(pageWidth <= viewport, `page ${pageWidth} px wide in a ${viewport} px viewport`);
    assert.ok(region, 'the plugins table scrolls inside its region');
    assert.equal(await page.getByRole('region', { name: 'Plugins' }).getAttribute('tabindex'), '0');
    assertClean(seen);
  });
});

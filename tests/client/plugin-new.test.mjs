// A plugin author's journey with the built binary: `tidings plugin new` writes a standalone
// project, `tidings plugin build` makes its component (the last line printed is its path),
// `tidings plugin check` passes it offline, `tidings plugin install` puts it on a running server,
// and the first record arrives live on the owner's and an admin's sockets, not on others'.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  DELIVERY_MS,
  api,
  assertStatus,
  createUser,
  expectNoEvent,
  TEMPLATE_TARGET,
  tidings,
  useServer,
  waitForEvent,
  withRecordId,
} from './harness.mjs';

describe('a new plugin, from `tidings plugin new` to its first live notification', () => {
  const srv = useServer();
  let work;
  let wasm;
  let buggyWasm;

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'tidings-plugin-new-'));
  });

  srv.test('new, build and check, offline', { timeout: 600_000 }, async () => {
    const dir = path.join(work, 'bookmark');
    const created = await tidings(['plugin', 'new', 'bookmark', '--dir', dir]);
    assert.equal(created.code, 0, created.stderr);
    const lib = await readFile(path.join(dir, 'src', 'lib.rs'), 'utf8');
    assert.match(lib, /Owned::new\("BOOKMARK", "bookmarks"\)/);
    assert.ok(lib.split('\n').length <= 30, `the template is ${lib.split('\n').length} lines`);
    assert.ok(existsSync(path.join(dir, 'sdk', 'wit', 'world.wit')), 'the interface ships with the project');

    const again = await tidings(['plugin', 'new', 'bookmark', '--dir', dir]);
    assert.notEqual(again.code, 0, 'a non-empty directory is refused');
    assert.match(again.stderr, /exists and is not empty/);
    const badName = await tidings(['plugin', 'new', 'Book Mark', '--dir', path.join(work, 'x')]);
    assert.notEqual(badName.code, 0);
    assert.match(badName.stderr, /lowercase letters, digits/);

    const built = await tidings(['plugin', 'build', dir], { CARGO_TARGET_DIR: TEMPLATE_TARGET });
    assert.equal(built.code, 0, built.stderr);
    wasm = built.stdout.trim().split('\n').at(-1);
    assert.ok(wasm.endsWith('bookmark.wasm') && existsSync(wasm), `last line ${wasm}`);

    const checked = await tidings(['plugin', 'check', wasm]);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, /^bookmark 0\.1\.0: BOOKMARK records at \/api\/v1\/bookmarks$/m);
    assert.match(checked.stdout, /DELETE \/api\/v1\/bookmarks\/:id +signed-in delete/);
    assert.match(checked.stdout, /^ok: /m);
  });

  srv.test('test: the fixtures pass as generated; a failing one says what differed and why', { timeout: 600_000 }, async () => {
    const dir = path.join(work, 'bookmark');
    const env = { CARGO_TARGET_DIR: TEMPLATE_TARGET };
    const passed = await tidings(['plugin', 'test', dir], env);
    assert.equal(passed.code, 0, passed.stdout + passed.stderr);
    assert.match(passed.stdout, /^ok   create\.json: a signed-in user creates a record/m);
    assert.match(passed.stdout, /^8 passed, 0 failed$/m);

    // A fixture that expects something else: exit 1, and the difference by its path.
    const wrong = {
      description: 'expects what the plugin does not do',
      request: { method: 'POST', path: '/', user: { id: 'alice' }, body: { title: 'First' } },
      status: 201,
      body: { title: 'Second' },
      notifications: [{ event: 'NEW_RECORD', to: ['all', 'admin'] }],
    };
    await writeFile(path.join(dir, 'tests', 'zz-wrong.json'), JSON.stringify(wrong));
    const failed = await tidings(['plugin', 'test', dir], env);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /^FAIL zz-wrong\.json: expects what the plugin does not do$/m);
    assert.match(failed.stdout, /^ +body\.title: expected "Second", got "First"$/m);
    assert.match(failed.stdout, /^ +notifications\[0\]\.to\[0\]: expected "all", got "user:alice"$/m);
    assert.match(failed.stdout, /^8 passed, 1 failed$/m);
    await rm(path.join(dir, 'tests', 'zz-wrong.json'));

    // A bug in the plugin: the fixture shows the host's answer and the plugin's own output.
    const lib = path.join(dir, 'src', 'lib.rs');
    const source = await readFile(lib, 'utf8');
    await writeFile(
      lib,
      source.replace(
        '|record| require_text(record, "title")',
        '|record| { if record.get("title").and_then(|t| t.as_str()) == Some("First") { panic!("no firsts here") } require_text(record, "title") }',
      ),
    );
    const buggy = await tidings(['plugin', 'test', dir], env);
    assert.equal(buggy.code, 1, buggy.stdout + buggy.stderr);
    assert.match(buggy.stdout, /^FAIL create\.json/m);
    assert.match(buggy.stdout, /^ +status: expected 201, got 502$/m);
    assert.match(buggy.stdout, /^ +plugin: output .*no firsts here/m);
    assert.match(buggy.stdout, /^ +plugin: fault \[errorId [0-9a-f-]+\] trap: /m);
    const built = await tidings(['plugin', 'build', dir], env);
    buggyWasm = path.join(work, 'bookmark-buggy.wasm');
    await copyFile(built.stdout.trim().split('\n').at(-1), buggyWasm);
    await writeFile(lib, source);
    const rebuilt = await tidings(['plugin', 'build', dir], env);
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
  });

  srv.test('install, then owner-scoped CRUD with live notifications', async () => {
    assert.ok(wasm, 'the build test ran first');
    const installed = await tidings(['plugin', 'install', wasm, '--server', srv.base], {
      TIDINGS_EMAIL: ADMIN_EMAIL,
      TIDINGS_PASSWORD: ADMIN_PASSWORD,
    });
    assert.equal(installed.code, 0, installed.stderr);
    assert.equal(JSON.parse(installed.stdout).collection, 'bookmarks');

    const ada = await createUser(srv.base, srv.admin.cookie);
    const bob = await createUser(srv.base, srv.admin.cookie);
    const adaSocket = await srv.connect({ cookie: ada.cookie });
    const bobSocket = await srv.connect({ cookie: bob.cookie });
    const adminSocket = await srv.connect({ cookie: srv.admin.cookie });

    const refused = await api(srv.base, 'POST', '/api/v1/bookmarks', { cookie: ada.cookie, body: { url: 'u' } });
    assertStatus(refused, 400, 'a bookmark without a title');
    assert.equal(refused.body.error, 'title is required: a non-empty text');

    const body = { title: 'Tidings', url: 'https://example.com', tags: ['rust'], ownerId: 'someone-else' };
    const made = await api(srv.base, 'POST', '/api/v1/bookmarks', { cookie: ada.cookie, body });
    assertStatus(made, 201, 'create');
    assert.equal(made.body.ownerId, ada.user.id, 'the owner is the caller, whatever the body says');
    assert.deepEqual(made.body.tags, ['rust'], 'other fields are kept as sent');
    const id = made.body.id;
    const live = await waitForEvent(adaSocket, 'NEW_RECORD', withRecordId(id), DELIVERY_MS, "the owner's socket");
    assert.equal(live.type, 'BOOKMARK');
    assert.deepEqual(live.record, made.body);
    await waitForEvent(adminSocket, 'NEW_RECORD', withRecordId(id), DELIVERY_MS, "an admin's socket");
    await expectNoEvent(bobSocket, 'NEW_RECORD', withRecordId(id), undefined, "another user's socket");

    assertStatus(await api(srv.base, 'GET', `/api/v1/bookmarks/${id}`, { cookie: bob.cookie }), 404, "another's GET");
    assertStatus(await api(srv.base, 'DELETE', `/api/v1/bookmarks/${id}`, { cookie: bob.cookie }), 404, "another's DELETE");
    const bobs = await api(srv.base, 'GET', '/api/v1/bookmarks', { cookie: bob.cookie });
    assert.deepEqual(bobs.body, [], "another user's list");
    const all = await api(srv.base, 'GET', '/api/v1/bookmarks', { cookie: srv.admin.cookie });
    assert.deepEqual(all.body.map((b) => b.id), [id], "an admin's list");

    const changed = await api(srv.base, 'PUT', `/api/v1/bookmarks/${id}`, {
      cookie: ada.cookie,
      body: { title: 'Tidings, renamed', url: null },
    });
    assertStatus(changed, 200, 'update');
    assert.equal(changed.body.title, 'Tidings, renamed');
    assert.equal('url' in changed.body, false, 'null removes a field');
    assert.deepEqual(changed.body.tags, ['rust'], 'fields the change does not name are kept');
    await waitForEvent(adaSocket, 'CHANGED_RECORD', withRecordId(id), DELIVERY_MS, 'changed, to the owner');

    assertStatus(await api(srv.base, 'DELETE', `/api/v1/bookmarks/${id}`, { cookie: ada.cookie }), 204, 'delete');
    await waitForEvent(adminSocket, 'DELETED_RECORD', (p) => p?.id === id, DELIVERY_MS, 'deleted, to the admins');
  });

  srv.test('logs: the reason behind an errorId, for the author', async () => {
    assert.ok(buggyWasm, 'the fixtures test built the buggy version');
    const admin = { TIDINGS_EMAIL: ADMIN_EMAIL, TIDINGS_PASSWORD: ADMIN_PASSWORD };
    const swapped = await tidings(['plugin', 'install', buggyWasm, '--server', srv.base], admin);
    assert.equal(swapped.code, 0, swapped.stderr);
    const ada = await createUser(srv.base, srv.admin.cookie);
    const failed = await api(srv.base, 'POST', '/api/v1/bookmarks', { cookie: ada.cookie, body: { title: 'First' } });
    assertStatus(failed, 502, 'the buggy version traps');
    assert.deepEqual(Object.keys(failed.body).sort(), ['error', 'errorId'], 'the client learns only the id');

    const one = await tidings(['plugin', 'logs', 'bookmark', '--error-id', failed.body.errorId, '--server', srv.base], admin);
    assert.equal(one.code, 0, one.stderr);
    const lines = one.stdout.trim().split('\n');
    assert.match(lines[0], new RegExp(`^\\S+Z fault +0\\.1\\.0 +\\[errorId ${failed.body.errorId}\\] trap: `));
    assert.ok(lines.slice(1).every((l) => l.startsWith('    ')), `one entry, its backtrace indented: ${one.stdout}`);
    const all = await tidings(['plugin', 'logs', 'bookmark', '--server', srv.base], admin);
    assert.match(all.stdout, /output +0\.1\.0 +.*no firsts here/, 'what the plugin printed (its panic message)');

    const asUser = await api(srv.base, 'GET', '/api/v1/admin/plugins/bookmark/logs', { cookie: ada.cookie });
    assertStatus(asUser, 403, "a user does not read a plugin's journal");
  });

  srv.test('cleanup', async () => {
    await rm(work, { recursive: true, force: true });
  });
});

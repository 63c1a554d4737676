// The same plugin in Rust, JavaScript and Python: for each language `tidings plugin new --lang`
// writes a standalone project, `tidings plugin build` installs the project's pinned toolchain
// (npm, a Python venv) and makes its component (the last line printed is its path), `tidings
// plugin test` passes the fixtures every template ships, `tidings plugin check` passes it
// offline, `tidings plugin install` puts it on a running server, and
// its first record arrives live on the owner's and an admin's sockets. Then one script of
// requests runs against each language's collection, and the JavaScript and Python answers and
// notifications must equal the Rust template's, field for field (ids, users and times aside).

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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

/** Rust builds share plugin-new.test.mjs's target directory, so one of the two compiles. */

/** The languages, each with its own plugin name so that all three serve side by side. */
const LANGUAGES = [
  { lang: 'rust', name: 'rs-bookmark', main: 'src/lib.rs', owned: /Owned::new\("RS_BOOKMARK", "rs-bookmarks"\)/ },
  { lang: 'js', name: 'js-bookmark', main: 'src/plugin.js', owned: /new Owned\("JS_BOOKMARK", "js-bookmarks"\)/ },
  { lang: 'python', name: 'py-bookmark', main: 'src/app.py', owned: /Owned\("PY_BOOKMARK", "py-bookmarks"\)/ },
];

/**
 * The answers and the owner's notifications as a client sees them, with what differs between
 * two runs (ids, users, times, offsets, the record type's prefix) replaced by names.
 */
function normalize(value, names) {
  if (Array.isArray(value)) return value.map((v) => normalize(v, names));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, k === 'offset' ? '<offset>' : normalize(v, names)]),
    );
  }
  if (typeof value === 'string') {
    if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(value)) return '<time>';
    let named = value.replace(/\b(RS|JS|PY)_BOOKMARK\b/g, 'BOOKMARK');
    for (const [id, name] of names) named = named.replaceAll(id, name);
    return named;
  }
  return value;
}

describe('the template in Rust, JavaScript and Python', () => {
  const srv = useServer();
  let work;
  const wasmOf = {};
  const transcripts = {};

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'tidings-plugin-languages-'));
  });

  for (const { lang, name, main, owned } of LANGUAGES) {
    srv.test(`${lang}: new, build (installing the toolchain), build again, test, check`, { timeout: 900_000 }, async () => {
      const dir = path.join(work, name);
      const created = await tidings(['plugin', 'new', name, '--lang', lang, '--dir', dir]);
      assert.equal(created.code, 0, created.stderr);
      const source = await readFile(path.join(dir, main), 'utf8');
      assert.match(source, owned);
      const lines = source.trimEnd().split('\n').length;
      assert.ok(lines <= 30, `the template's ${main} is ${lines} lines`);
      const wit = lang === 'rust' ? path.join(dir, 'sdk', 'wit') : path.join(dir, 'wit');
      assert.ok(existsSync(path.join(wit, 'world.wit')), 'the interface ships with the project');

      const env = lang === 'rust' ? { CARGO_TARGET_DIR: TEMPLATE_TARGET } : {};
      const first = await tidings(['plugin', 'build', dir], env);
      assert.equal(first.code, 0, first.stderr);
      const wasm = first.stdout.trim().split('\n').at(-1);
      assert.ok(wasm.endsWith(`${name.replace('-', lang === 'rust' ? '_' : '-')}.wasm`), `last line ${wasm}`);
      assert.ok(existsSync(wasm), `${wasm} exists`);
      if (lang !== 'rust') assert.match(first.stderr, /installing the (JavaScript|Python) toolchain/);
      const again = await tidings(['plugin', 'build', dir], env);
      assert.equal(again.code, 0, again.stderr);
      assert.doesNotMatch(again.stderr, /installing/, 'the toolchain is installed once');
      console.log(`# ${lang}: ${lines} lines of ${main}; first build ${first.ms} ms, again ${again.ms} ms`);

      // The fixtures every template ships pass in every language, on the real runtime.
      const tested = await tidings(['plugin', 'test', dir], env);
      assert.equal(tested.code, 0, tested.stdout + tested.stderr);
      assert.match(tested.stdout, /^8 passed, 0 failed$/m);

      const checked = await tidings(['plugin', 'check', wasm]);
      assert.equal(checked.code, 0, checked.stderr);
      const type = name.replace('-', '_').toUpperCase();
      assert.match(checked.stdout, new RegExp(`^${name} 0\\.1\\.0: ${type} records at /api/v1/${name}s$`, 'm'));
      assert.match(checked.stdout, new RegExp(`DELETE /api/v1/${name}s/:id +signed-in delete`));
      wasmOf[lang] = wasm;
    });

    srv.test(`${lang}: install, CRUD, live notifications to the owner and the admins`, { timeout: 120_000 }, async () => {
      assert.ok(wasmOf[lang], 'the build test ran first');
      const installed = await tidings(['plugin', 'install', wasmOf[lang], '--server', srv.base], {
        TIDINGS_EMAIL: ADMIN_EMAIL,
        TIDINGS_PASSWORD: ADMIN_PASSWORD,
      });
      assert.equal(installed.code, 0, installed.stderr);
      console.log(`# ${lang}: install (the server compiles it) ${installed.ms} ms`);
      const collection = `/api/v1/${name}s`;
      const ada = await createUser(srv.base, srv.admin.cookie);
      const bob = await createUser(srv.base, srv.admin.cookie);
      const adaSocket = await srv.connect({ cookie: ada.cookie });
      const bobSocket = await srv.connect({ cookie: bob.cookie });
      const adminSocket = await srv.connect({ cookie: srv.admin.cookie });
      const names = new Map([
        [ada.user.id, '<ada>'],
        [bob.user.id, '<bob>'],
        [srv.admin.user.id, '<admin>'],
      ]);
      const answers = [];
      const call = async (who, method, url, body) => {
        const cookie = { ada: ada.cookie, bob: bob.cookie, admin: srv.admin.cookie }[who];
        const res = await api(srv.base, method, url, { cookie, body });
        answers.push({ who, method, url: url.replace(collection, '<collection>'), status: res.status, body: res.body });
        return res;
      };

      assertStatus(await call('ada', 'POST', collection, { url: 'u' }), 400, 'no title');
      assertStatus(await call('ada', 'POST', collection, { title: '   ' }), 400, 'a blank title');
      assertStatus(await call('ada', 'POST', collection, [1, 2]), 400, 'not an object');
      const body = { title: 'Tidings', url: 'https://example.com', tags: ['rust'], n: 3, ownerId: 'someone-else', id: 'x' };
      const made = await call('ada', 'POST', collection, body);
      assertStatus(made, 201, 'create');
      assert.equal(made.body.ownerId, ada.user.id, 'the owner is the caller, whatever the body says');
      const id = made.body.id;
      // A UUID v7 in every language, as the Rust SDK makes: its time first, so ids sort as made.
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, `a UUID v7: ${id}`);
      const madeAt = parseInt(id.replaceAll('-', '').slice(0, 12), 16);
      assert.ok(Math.abs(madeAt - Date.now()) < 60_000, `the id's time is now: ${new Date(madeAt).toISOString()}`);
      names.set(id, '<id>');
      const live = await waitForEvent(adaSocket, 'NEW_RECORD', withRecordId(id), DELIVERY_MS, "the owner's socket");
      assert.deepEqual(live.record, made.body);
      await waitForEvent(adminSocket, 'NEW_RECORD', withRecordId(id), DELIVERY_MS, "an admin's socket");
      await expectNoEvent(bobSocket, 'NEW_RECORD', withRecordId(id), undefined, "another user's socket");

      assertStatus(await call('bob', 'GET', `${collection}/${id}`), 404, "another's GET");
      assertStatus(await call('bob', 'PUT', `${collection}/${id}`, { title: 'mine' }), 404, "another's PUT");
      assertStatus(await call('bob', 'DELETE', `${collection}/${id}`), 404, "another's DELETE");
      assert.deepEqual((await call('bob', 'GET', collection)).body, [], "another's list");
      assert.deepEqual((await call('ada', 'GET', collection)).body, [made.body], "the owner's list");
      await call('admin', 'GET', collection);
      assertStatus(await call('admin', 'GET', `${collection}/${id}`), 200, "an admin's GET");
      assertStatus(await call('ada', 'PUT', `${collection}/${id}`, { title: '' }), 400, 'an update without a title');
      const changed = await call('ada', 'PUT', `${collection}/${id}`, { title: 'Renamed', url: null, note: { a: [1] } });
      assertStatus(changed, 200, 'update');
      assert.equal('url' in changed.body, false, 'null removes a field');
      assert.deepEqual(changed.body.tags, ['rust'], 'fields the change does not name are kept');
      const changedLive = await waitForEvent(adaSocket, 'CHANGED_RECORD', withRecordId(id), DELIVERY_MS, 'changed');
      assertStatus(await call('admin', 'DELETE', `${collection}/${id}`), 204, "an admin's delete");
      const deletedLive = await waitForEvent(adaSocket, 'DELETED_RECORD', (p) => p?.id === id, DELIVERY_MS, 'deleted');
      assertStatus(await call('ada', 'GET', `${collection}/${id}`), 404, 'gone');

      transcripts[lang] = normalize({ answers, notifications: [live, changedLive, deletedLive] }, names);
    });
  }

  srv.test('JavaScript and Python answer and notify as Rust does, field for field', () => {
    assert.ok(transcripts.rust, 'the Rust run finished');
    for (const lang of ['js', 'python']) {
      assert.ok(transcripts[lang], `the ${lang} run finished`);
      assert.deepEqual(transcripts[lang], transcripts.rust, `${lang} against rust`);
    }
  });

  srv.test('cleanup', async () => {
    await rm(work, { recursive: true, force: true });
  });
});

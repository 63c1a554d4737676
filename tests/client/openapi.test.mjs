// GET /api/v1/openapi.json: an OpenAPI 3.1 document of the host's routes and every serving
// plugin's actions, valid by the OpenAPI schema (checked with @seriousme/openapi-schema-validator),
// for signed-in users, and current after every install and rollback.

import { before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { api, assertStatus, createUser, installGuest, useServer } from './harness.mjs';

async function documentOf(base, cookie) {
  const res = await api(base, 'GET', '/api/v1/openapi.json', { cookie });
  assertStatus(res, 200, 'GET /api/v1/openapi.json');
  return res.body;
}

/** Asserts the document is valid OpenAPI 3.1, naming every error. */
async function assertValid(doc, when) {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  assert.equal(validator.version, '3.1', `${when}: validated as OpenAPI ${validator.version}`);
  assert.ok(result.valid, `${when}: ${JSON.stringify(result.errors, null, 1)}`);
}

async function install(base, cookie, file) {
  const res = await installGuest(base, cookie, file);
  assert.equal(res.status, 200, `installing ${file}: ${JSON.stringify(res.body)}`);
}

const swapCollection = (doc) => doc['x-tidings-collections'].find((c) => c.plugin === 'swap');

describe('the OpenAPI document', () => {
  const srv = useServer();
  let user;

  before(async () => {
    user = await createUser(srv.base, srv.admin.cookie);
  });

  srv.test('is valid, for signed-in users only, and describes host and plugin routes', async () => {
    assertStatus(await api(srv.base, 'GET', '/api/v1/openapi.json'), 401, 'without a session');
    const doc = await documentOf(srv.base, user.cookie);
    await assertValid(doc, 'as served');
    assert.equal(doc.openapi, '3.1.0');

    // Host routes, with their access.
    const login = doc.paths['/api/v1/auth/login'].post;
    assert.equal(login['x-tidings-access'], 'public');
    assert.deepEqual(login.security, [], 'signing in needs no session');
    assert.equal(doc.paths['/api/v1/admin/plugins'].get['x-tidings-access'], 'admin');
    assert.ok(doc.components.securitySchemes.session, 'the session cookie scheme');

    // Every bundled plugin's collection, with path parameters written {id}.
    const collections = doc['x-tidings-collections'].map((c) => c.collection);
    for (const collection of ['events', 'departments', 'jobs', 'semesters']) {
      assert.ok(collections.includes(collection), `collection ${collection}`);
      assert.ok(doc.tags.some((t) => t.name === collection), `tag ${collection}`);
    }
    const list = doc.paths['/api/v1/departments'].get;
    assert.equal(list['x-tidings-access'], 'public');
    assert.deepEqual(list.tags, ['departments']);
    const one = doc.paths['/api/v1/events/{id}'];
    assert.ok(one.get && one.put && one.delete, Object.keys(one).join());
    assert.deepEqual(
      one.put.parameters.map((p) => [p.name, p.in, p.required]),
      [['id', 'path', true]],
    );
    assert.ok(one.put.requestBody, 'a PUT takes a JSON body');
    // POST /users is the host's, not the USER plugin's.
    assert.equal(doc.paths['/api/v1/users'].post.tags[0], 'host');
  });

  srv.test('follows installs, swaps and rollbacks', async () => {
    const before = await documentOf(srv.base, srv.admin.cookie);
    assert.equal(swapCollection(before), undefined, 'no swap plugin yet');
    assert.equal(before.paths['/api/v1/swaps'], undefined);

    await install(srv.base, srv.admin.cookie, 'swap_one.wasm');
    const first = await documentOf(srv.base, srv.admin.cookie);
    await assertValid(first, 'after an install');
    const installed = swapCollection(first);
    assert.ok(installed, 'the new plugin is described');
    assert.ok(first.paths[`/api/v1/${installed.collection}`], 'its collection path');

    await install(srv.base, srv.admin.cookie, 'swap_two.wasm');
    const second = await documentOf(srv.base, srv.admin.cookie);
    await assertValid(second, 'after a swap');
    assert.notEqual(swapCollection(second).version, installed.version, 'the new version is described');

    const back = await api(srv.base, 'POST', '/api/v1/admin/plugins/swap/rollback', { cookie: srv.admin.cookie });
    assertStatus(back, 200, 'rollback');
    const rolled = await documentOf(srv.base, srv.admin.cookie);
    await assertValid(rolled, 'after a rollback');
    assert.equal(swapCollection(rolled).version, installed.version, 'the previous version again');
  });
});

// The template in each language, measured (BENCHMARKS.md, "Plugins in Rust, JavaScript and
// Python"): lines of its main file, `.wasm` size, the first build (with the toolchain's
// install) and a second one, the install on a running server (its first compile), and the
// latency of `GET /:id` through that server, sequential requests after a warm-up.
//
//   cd tests/client && TIDINGS_BIN=…/tidings node bench-languages.mjs [rust js python] [REQUESTS]
//
// Not a test: it asserts only that each step succeeds.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ADMIN_EMAIL, ADMIN_PASSWORD, TEMPLATE_TARGET, api, login, startServer, tidings } from './harness.mjs';

const MAIN = { rust: 'src/lib.rs', js: 'src/plugin.js', python: 'src/app.py' };
const args = process.argv.slice(2);
const langs = args.filter((a) => a in MAIN);
const requests = Number(args.find((a) => /^\d+$/.test(a))) || 2000;

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

const work = await mkdtemp(path.join(tmpdir(), 'tidings-bench-languages-'));
const server = await startServer();
try {
  const admin = await login(server.base, ADMIN_EMAIL, ADMIN_PASSWORD);
  const rows = [];
  for (const lang of langs.length ? langs : Object.keys(MAIN)) {
    const name = `bench-${lang}`;
    const dir = path.join(work, name);
    const env = lang === 'rust' ? { CARGO_TARGET_DIR: TEMPLATE_TARGET } : {};
    assert.equal((await tidings(['plugin', 'new', name, '--lang', lang, '--dir', dir])).code, 0);
    const lines = (await readFile(path.join(dir, MAIN[lang]), 'utf8')).trimEnd().split('\n').length;
    const first = await tidings(['plugin', 'build', dir], env);
    assert.equal(first.code, 0, first.stderr);
    const again = await tidings(['plugin', 'build', dir], env);
    assert.equal(again.code, 0, again.stderr);
    const wasm = again.stdout.trim().split('\n').at(-1);
    const bytes = (await stat(wasm)).size;
    const install = await tidings(['plugin', 'install', wasm, '--server', server.base], {
      TIDINGS_EMAIL: ADMIN_EMAIL,
      TIDINGS_PASSWORD: ADMIN_PASSWORD,
    });
    assert.equal(install.code, 0, install.stderr);
    const made = await api(server.base, 'POST', `/api/v1/${name}s`, { cookie: admin.cookie, body: { title: 'bench' } });
    assert.equal(made.status, 201);
    const url = `/api/v1/${name}s/${made.body.id}`;
    for (let i = 0; i < 200; i++) assert.equal((await api(server.base, 'GET', url, { cookie: admin.cookie })).status, 200);
    const times = [];
    for (let i = 0; i < requests; i++) {
      const t = performance.now();
      const res = await api(server.base, 'GET', url, { cookie: admin.cookie });
      times.push(performance.now() - t);
      assert.equal(res.status, 200);
    }
    times.sort((a, b) => a - b);
    rows.push({
      lang,
      lines,
      wasmKiB: Math.round(bytes / 1024),
      firstBuildS: (first.ms / 1000).toFixed(1),
      againS: (again.ms / 1000).toFixed(1),
      installS: (install.ms / 1000).toFixed(2),
      getP50ms: quantile(times, 0.5).toFixed(2),
      getP99ms: quantile(times, 0.99).toFixed(2),
    });
  }
  console.table(rows);
} finally {
  await server.stop();
  await rm(work, { recursive: true, force: true });
}

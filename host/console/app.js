// The Tidings web console: sign in, then one view per collection (its records, updated live),
// the notification stream, the API (rendered from /api/v1/openapi.json) and, for ADMINs, the
// plugins and the connected sockets. Plain DOM, no framework and no build step; every value from
// the server is set as text (never as HTML). The page holds one Socket.IO connection, the same
// kind any client opens, and the views listen to it.

const API = '/api/v1';
/** The notification stream keeps this many entries. */
const NOTIFICATION_CAP = 500;
/** The sockets view refreshes this often while it is shown. */
const SOCKETS_REFRESH_MS = 3_000;
/** A handshake refused to a signed-in user is tried again after this long. */
const RETRY_MS = 5_000;
/** A collection view shows at most this many of the records its list answers. */
const MAX_ROWS = 2_000;
/** Record fields shown in the "Name" column, the first one a record has. */
const LABEL_FIELDS = ['name', 'title', 'email', 'description'];
/** Fields with a column of their own, left out of a record's "Fields" JSON. */
const OWN_COLUMNS = ['id', 'createdAt', 'updatedAt'];
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

const state = {
  /** The signed-in user, or null. */
  user: null,
  socket: null,
  /** The highest notification offset seen, sent as `auth.offset` on a reconnect. */
  lastOffset: undefined,
  /** /api/v1/openapi.json, or null with `openapiError` saying why. */
  openapi: null,
  openapiError: '',
  /** The collections this user may list: [{collection, recordType, plugin, version}]. */
  collections: [],
  /** Everything the socket received, newest first. */
  notifications: [],
  /** The open view: { name, onEvent?(event, payload, entry), close?() }. */
  view: null,
};

const $ = (id) => document.getElementById(id);
const isAdmin = () => state.user?.role === 'ADMIN';

// ---------------------------------------------------------------------------
// DOM and formatting helpers

/** h('td', { class: 'x', onclick: fn }, 'text', child, [more]) */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A table in a scrolling, keyboard-focusable region (wide tables scroll on a phone). */
function table(label, headers, tbody) {
  return h(
    'div',
    { class: 'scroll', role: 'region', 'aria-label': label, tabindex: 0 },
    h('table', {}, h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))), tbody),
  );
}

const pad = (n) => String(n).padStart(2, '0');

/** A <time> in local time, YYYY-MM-DD HH:MM:SS, the ISO value in its title. */
function time(value) {
  const date = value instanceof Date ? value : new Date(value);
  if (value === undefined || value === null || Number.isNaN(date.getTime())) return String(value ?? '');
  const text =
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return h('time', { datetime: date.toISOString(), title: date.toISOString() }, text);
}

/** p50 over p99, or one dash before the first call. */
function latency(l) {
  if (typeof l?.p50 !== 'number' && typeof l?.p99 !== 'number') return '–';
  return [micros(l.p50), h('br'), micros(l.p99)];
}

function micros(us) {
  if (typeof us !== 'number') return '–';
  return us >= 1000 ? `${(us / 1000).toFixed(us >= 10_000 ? 0 : 1)} ms` : `${us} µs`;
}

function bytes(n) {
  if (typeof n !== 'number') return '–';
  if (n >= 1 << 20) return `${+(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${+(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** JSON on one line, a space after each top-level comma and colon so that it wraps there. */
function compact(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return JSON.stringify(value) ?? '';
  return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(', ')}}`;
}

/** Compact JSON, cut at `max` characters (the whole of it, up to a limit, in the title). */
function json(value, max = 300) {
  const text = compact(value);
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return h('code', { class: 'json', title: text.length > max ? text.slice(0, 4000) : undefined }, shown);
}

/** A view's heading, focused when the user switches views. */
function heading(text, ...extra) {
  return h('h2', { id: 'view-title', tabindex: -1 }, text, ...extra);
}

/** A pair of regions for a view's messages: errors (alert) and progress (status). */
function messages() {
  const error = h('p', { class: 'error', role: 'alert' });
  const status = h('p', { class: 'status', role: 'status' });
  return {
    nodes: [error, status],
    error(message) {
      error.textContent = message;
    },
    status(message) {
      status.textContent = message;
      if (message) error.textContent = '';
    },
  };
}

// ---------------------------------------------------------------------------
// HTTP

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * One request to the API. Resolves with the parsed JSON (undefined when empty); rejects with an
 * ApiError carrying the server's own message (`{"error": "..."}`).
 */
async function api(method, path, { json: payload, body, headers = {} } = {}) {
  const init = { method, headers: { accept: 'application/json', ...headers }, credentials: 'same-origin' };
  if (payload !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(payload);
  } else if (body !== undefined) {
    init.body = body;
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (err) {
    throw new ApiError(0, `The server did not answer (${err.message}).`);
  }
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const message = typeof data?.error === 'string' ? data.error : `${res.status} ${res.statusText}`.trim();
    if (res.status === 401 && state.user && path !== '/auth/login') signedOut(`Signed out: ${message}`);
    throw new ApiError(res.status, message, res.headers.get('retry-after'));
  }
  return data;
}

// ---------------------------------------------------------------------------
// Session

async function boot() {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => {
    if (!state.user) return;
    route();
    $('view-title')?.focus();
  });
  try {
    await signedIn(await api('GET', '/user'));
  } catch (err) {
    showSignIn(err.status === 401 ? '' : err.message);
  }
}

function showSignIn(message = '') {
  $('loading').hidden = true;
  $('app').hidden = true;
  $('session').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message;
  $('email').focus();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector('button[type=submit]');
  $('sign-in-error').textContent = '';
  button.disabled = true;
  try {
    const user = await api('POST', '/auth/login', {
      json: { email: $('email').value.trim(), password: $('password').value },
    });
    form.reset();
    await signedIn(user);
    $('view-title')?.focus();
  } catch (err) {
    const wait = err.status === 429 && err.retryAfter ? ` (retry in ${err.retryAfter} s)` : '';
    $('sign-in-error').textContent = err.message + wait;
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  // Close the socket first: the server ends it at logout, which must not read as a lost session.
  const socket = state.socket;
  state.socket = null;
  socket?.disconnect();
  try {
    await api('POST', '/logout');
  } catch (err) {
    if (err.status !== 401) {
      setLive(`Sign-out failed: ${err.message}`, 'bad');
      state.socket = socket;
      socket?.connect();
      return;
    }
  }
  signedOut();
}

/** Forgets the session and shows the sign-in form (with `message`, if any). */
function signedOut(message = '') {
  closeView();
  state.socket?.disconnect();
  Object.assign(state, {
    user: null,
    socket: null,
    lastOffset: undefined,
    openapi: null,
    collections: [],
    notifications: [],
  });
  $('view').replaceChildren();
  $('nav').replaceChildren();
  showSignIn(message);
}

async function signedIn(user) {
  state.user = user;
  const name = [user.firstName, user.lastName].filter(Boolean).join(' ');
  $('who').textContent = `${name ? `${name} · ` : ''}${user.email} · ${user.role}`;
  $('loading').hidden = true;
  $('sign-in').hidden = true;
  $('session').hidden = false;
  connectSocket();
  await loadOpenApi();
  if (state.user !== user) return; // signed out meanwhile
  $('app').hidden = false;
  route();
}

/** Loads the OpenAPI document and, from it, the collections this user may list. */
async function loadOpenApi() {
  try {
    state.openapi = await api('GET', '/openapi.json');
    state.openapiError = '';
  } catch (err) {
    state.openapi = null;
    state.openapiError = err.message;
  }
  state.collections = listableCollections(state.openapi);
  buildNav();
}

// ---------------------------------------------------------------------------
// The socket

function connectSocket() {
  if (typeof window.io !== 'function') {
    setLive('No Socket.IO client', 'bad');
    return;
  }
  setLive('Connecting…', 'warn');
  // One connection for every view; on a reconnect it asks for what it missed.
  const socket = window.io({
    auth: (send) => send(state.lastOffset === undefined ? {} : { offset: state.lastOffset }),
  });
  state.socket = socket;
  socket.on('connect', () => {
    setLive('Live', 'ok');
    state.view?.onConnect?.();
  });
  socket.on('disconnect', (reason) => {
    if (socket !== state.socket) return;
    setLive('Disconnected', 'bad');
    // The server closed it (a logout elsewhere, a role change): see whether we are signed in.
    if (reason === 'io server disconnect') checkSession(socket);
  });
  socket.on('connect_error', (err) => {
    if (socket !== state.socket) return;
    if (err.message === 'unauthorized') checkSession(socket, 'unauthorized');
    else setLive('Reconnecting…', 'warn');
  });
  socket.onAny((event, payload) => received(event, payload));
}

async function checkSession(socket, reason) {
  try {
    const user = await api('GET', '/user');
    if (socket !== state.socket) return;
    if (user.role !== state.user?.role) {
      // The role changed: start again with the views this role has.
      socket.disconnect();
      closeView();
      await signedIn(user);
    } else if (reason === 'unauthorized') {
      // Signed in, yet the handshake was refused: try again in a while, not in a loop.
      setLive('Refused: unauthorized', 'bad');
      setTimeout(() => socket === state.socket && socket.connect(), RETRY_MS);
    } else {
      socket.connect();
    }
  } catch {
    // api() has signed the page out on a 401.
  }
}

function setLive(text, tone) {
  const live = $('live');
  live.textContent = text;
  live.dataset.tone = tone;
}

/** Every event the socket receives: into the stream, then to the open view. */
function received(event, payload) {
  const offset = Number.isSafeInteger(payload?.offset) ? payload.offset : undefined;
  if (offset !== undefined && !(offset <= state.lastOffset)) state.lastOffset = offset;
  const entry = {
    at: new Date(),
    event,
    offset,
    type: payload?.type ?? payload?.recordType,
    id: payload?.record?.id ?? payload?.id ?? payload?.name,
    payload,
  };
  state.notifications.unshift(entry);
  if (state.notifications.length > NOTIFICATION_CAP) state.notifications.length = NOTIFICATION_CAP;
  state.view?.onEvent?.(event, payload, entry);
  // A plugin was installed or rolled back: its routes (and collections) may have changed.
  if (event === 'PLUGIN_CHANGED') loadOpenApi().then(() => state.view?.onApiChanged?.());
}

// ---------------------------------------------------------------------------
// OpenAPI

/** The path prefix of an operation's server ('' or e.g. '/api/v1'). */
function serverPrefix(doc, item) {
  const url = (item?.servers ?? doc?.servers)?.[0]?.url ?? '';
  const path = /^[a-z]+:\/\//i.test(url) ? new URL(url).pathname : url;
  return path.replace(/\/+$/, '');
}

/** Every operation of the document: [{method, path, op}], `path` in full. */
function operations(doc) {
  const found = [];
  for (const [path, item] of Object.entries(doc?.paths ?? {})) {
    for (const method of HTTP_METHODS) {
      if (item?.[method]) found.push({ method, path: serverPrefix(doc, item) + path, op: item[method] });
    }
  }
  return found;
}

function mayCall(op) {
  return op['x-tidings-access'] !== 'admin' || isAdmin();
}

/** The collections with a `GET /api/v1/<collection>` this user may call, by name. */
function listableCollections(doc) {
  const ops = operations(doc);
  return (doc?.['x-tidings-collections'] ?? [])
    .filter((c) =>
      ops.some(
        ({ method, path, op }) =>
          method === 'get' && path.replace(/\/$/, '') === `${API}/${c.collection}` && mayCall(op),
      ),
    )
    .sort((a, b) => a.collection.localeCompare(b.collection));
}

// ---------------------------------------------------------------------------
// Navigation: #/<view>

function views() {
  return [
    ...state.collections.map((c) => ({ name: c.collection, label: c.collection, open: (main) => collectionView(main, c) })),
    { name: 'notifications', label: 'Notifications', tool: true, open: notificationsView },
    { name: 'api', label: 'API', tool: true, open: apiView },
    ...(isAdmin()
      ? [
          { name: 'plugins', label: 'Plugins', tool: true, open: pluginsView },
          { name: 'sockets', label: 'Sockets', tool: true, open: socketsView },
        ]
      : []),
  ];
}

function buildNav() {
  $('nav').replaceChildren(
    ...views().map((view) =>
      h('li', { class: view.tool ? 'tool' : undefined }, h('a', { href: `#/${encodeURIComponent(view.name)}`, 'data-view': view.name }, view.label)),
    ),
  );
  markNav(state.view?.name);
}

function markNav(name) {
  for (const link of $('nav').querySelectorAll('a')) {
    if (link.dataset.view === name) {
      link.setAttribute('aria-current', 'page');
      link.scrollIntoView({ block: 'nearest', inline: 'nearest' }); // the phone's scrolling bar
    } else {
      link.removeAttribute('aria-current');
    }
  }
}

function closeView() {
  state.view?.close?.();
  state.view = null;
}

function route() {
  const all = views();
  let name = location.hash.replace(/^#\/?/, '');
  try {
    name = decodeURIComponent(name);
  } catch {
    // not percent-encoded: taken as it is
  }
  if (!name) {
    name = all[0].name;
    history.replaceState(null, '', `#/${encodeURIComponent(name)}`);
  }
  closeView();
  const main = $('view');
  main.replaceChildren();
  const view = all.find((v) => v.name === name);
  if (!view) {
    main.append(heading('Not found'), h('p', {}, `There is no view “${name}” for you here. Pick one from the navigation.`));
    state.view = { name };
  } else {
    state.view = { name, ...(view.open(main) ?? {}) };
  }
  document.title = `${view?.label ?? 'Not found'} · Tidings console`;
  markNav(name);
}

// ---------------------------------------------------------------------------
// A collection's records, live

function labelOf(record) {
  const field = LABEL_FIELDS.find((f) => typeof record?.[f] === 'string');
  return field ? { field, value: record[field] } : { field: undefined, value: '' };
}

function recordRow(record) {
  const { field, value } = labelOf(record);
  const rest = Object.fromEntries(
    Object.entries(record).filter(([key]) => key !== field && !OWN_COLUMNS.includes(key)),
  );
  return h(
    'tr',
    { 'data-id': record.id },
    h('td', {}, h('code', { class: 'id' }, record.id)),
    h('td', {}, value),
    h('td', { class: 'nowrap' }, time(record.updatedAt)),
    h('td', { class: 'wide' }, json(rest)),
  );
}

function collectionView(main, c) {
  const msg = messages();
  const count = h('span', { class: 'count' });
  const tbody = h('tbody');
  const rows = new Map();
  let pending = []; // events that arrive before the list does
  main.append(
    heading(c.collection, ' ', count),
    h('p', { class: 'hint' }, `${c.recordType} records of the plugin ${c.plugin} ${c.version}, updated live.`),
    ...msg.nodes,
    table(`${c.collection} records`, ['Id', 'Name', 'Updated', 'Fields'], tbody),
  );
  const showCount = () => {
    count.textContent = `(${rows.size})`;
    msg.status(rows.size === 0 ? 'No records.' : '');
  };
  const put = (record, { flash = false, top = false } = {}) => {
    if (record?.id === undefined) return;
    const row = recordRow(record);
    if (flash) row.classList.add('flash');
    const old = rows.get(record.id);
    if (old) old.replaceWith(row);
    else if (top) tbody.prepend(row);
    else tbody.append(row);
    rows.set(record.id, row);
  };
  const apply = (event, payload) => {
    if (payload?.type !== c.recordType) return;
    if (event === 'NEW_RECORD') put(payload.record, { flash: true, top: true });
    else if (event === 'CHANGED_RECORD') put(payload.record, { flash: true, top: true });
    else if (event === 'DELETED_RECORD') {
      rows.get(payload.id)?.remove();
      rows.delete(payload.id);
    } else return;
    showCount();
  };
  msg.status('Loading…');
  let failed = false;
  api('GET', `/${c.collection}`)
    .then((records) => {
      if (!Array.isArray(records)) throw new Error('the answer is not a list');
      for (const record of records.slice(0, MAX_ROWS)) put(record);
      if (records.length > MAX_ROWS) {
        main.querySelector('.hint').append(` The list has ${records.length} records; the first ${MAX_ROWS} are shown.`);
      }
      for (const [event, payload] of pending) apply(event, payload);
      pending = null;
      showCount();
    })
    .catch((err) => {
      failed = true;
      pending = null;
      msg.status('');
      msg.error(`Could not load ${c.collection}: ${err.message}`);
    });
  return {
    onEvent(event, payload) {
      if (failed) return;
      if (pending) pending.push([event, payload]);
      else apply(event, payload);
    },
  };
}

// ---------------------------------------------------------------------------
// Notifications: every event the socket received

function notificationRow(entry) {
  return h(
    'tr',
    { 'data-offset': entry.offset },
    h('td', { class: 'nowrap' }, time(entry.at)),
    h('td', { class: 'num' }, entry.offset ?? ''),
    h('td', {}, entry.event),
    h('td', {}, entry.type ?? ''),
    h('td', {}, entry.id === undefined ? '' : h('code', { class: 'id' }, entry.id)),
    h('td', { class: 'wide' }, json(entry.payload, 160)),
  );
}

function notificationsView(main) {
  const tbody = h('tbody', {}, state.notifications.map(notificationRow));
  const msg = messages();
  const showEmpty = () => msg.status(tbody.rows.length === 0 ? 'Nothing received yet.' : '');
  main.append(
    heading('Notifications'),
    h(
      'p',
      { class: 'hint' },
      `Every event this console's socket has received since you signed in, newest first (the last ${NOTIFICATION_CAP}).`,
    ),
    h(
      'div',
      { class: 'actions' },
      h('button', {
        type: 'button',
        onclick: () => {
          state.notifications.length = 0;
          tbody.replaceChildren();
          showEmpty();
        },
      }, 'Clear'),
    ),
    ...msg.nodes,
    table('Notifications', ['Received', 'Offset', 'Event', 'Type', 'Id', 'Payload'], tbody),
  );
  showEmpty();
  return {
    onEvent(event, payload, entry) {
      tbody.prepend(notificationRow(entry));
      while (tbody.rows.length > NOTIFICATION_CAP) tbody.lastElementChild.remove();
      showEmpty();
    },
  };
}

// ---------------------------------------------------------------------------
// Plugins (ADMIN)

/** A plugin's limits on two short lines, spelled out in the title. */
function limitsCell(limits) {
  if (!limits) return '–';
  const coolDown = `${limits.coolDownMs / 1000} s`;
  return h(
    'span',
    {
      title:
        `A call may run ${limits.timeoutMs} ms, use ${bytes(limits.memoryBytes)} of memory and read ` +
        `${bytes(limits.readBytes)}; after ${limits.isolateAfter} faults the plugin is isolated for ${coolDown}.`,
    },
    `${limits.timeoutMs} ms · ${bytes(limits.memoryBytes)} · ${bytes(limits.readBytes)} read`,
    h('br'),
    `isolate after ${limits.isolateAfter} faults, ${coolDown}`,
  );
}

function pluginsView(main) {
  const msg = messages();
  const tbody = h('tbody');
  const installMsg = messages();

  const rollback = async (plugin, button) => {
    button.disabled = true;
    msg.status(`Rolling ${plugin.name} back…`);
    try {
      const now = await api('POST', `/admin/plugins/${encodeURIComponent(plugin.name)}/rollback`);
      msg.status(`${now.name} is back at ${now.version}.`);
      await load();
    } catch (err) {
      msg.error(err.message);
      msg.status('');
    } finally {
      button.disabled = false;
    }
  };

  const previousCell = (p) => {
    if (!p.previous) return h('span', { class: 'muted' }, 'none');
    const button = h(
      'button',
      {
        type: 'button',
        'aria-label': `Roll back ${p.name} to ${p.previous.version}`,
        title: `Back to ${p.previous.version} (sha256 ${p.previous.sha256})`,
        onclick: () => rollback(p, button),
      },
      'Roll back',
    );
    return [p.previous.version, h('br'), button];
  };

  const row = (p) => {
    const stats = p.stats ?? {};
    return h(
      'tr',
      { 'data-plugin': p.name },
      h('th', { scope: 'row' }, p.name, h('br'), h('small', { class: 'muted' }, `${p.collection} · ${p.recordType}`)),
      h('td', {}, p.version, h('br'), h('small', { class: 'muted nowrap' }, time(p.loadedAt))),
      h('td', {}, h('code', { title: p.sha256 }, `${String(p.sha256).slice(0, 12)}…`)),
      h('td', {}, h('span', { class: `state state-${p.state}` }, p.state)),
      h('td', { class: 'limits' }, limitsCell(p.limits)),
      h('td', { class: 'num' }, stats.calls ?? '–'),
      h('td', { class: 'num' }, stats.refusals ?? '–'),
      h('td', { class: 'num' }, stats.faults ?? '–'),
      h('td', { class: 'num' }, stats.timeouts ?? '–'),
      h('td', { class: 'num nowrap' }, latency(stats.latencyMicros)),
      h('td', { class: 'nowrap' }, previousCell(p)),
    );
  };

  let loading = null;
  const load = () =>
    (loading ??= api('GET', '/admin/plugins')
      .then((plugins) => {
        tbody.replaceChildren(...[...plugins].sort((a, b) => a.name.localeCompare(b.name)).map(row));
        if (!tbody.rows.length) msg.status('No plugins are loaded.');
      })
      .catch((err) => msg.error(err.message))
      .finally(() => {
        loading = null;
      }));

  const fileInput = h('input', { id: 'plugin-file', type: 'file', accept: '.wasm,application/wasm', required: true });
  const nameInput = h('input', { id: 'plugin-name', type: 'text', required: true, placeholder: 'department', autocomplete: 'off', spellcheck: 'false' });
  const approve = h('input', { id: 'approve-grants', type: 'checkbox' });
  fileInput.addEventListener('change', () => {
    // A guess at the plugin's name from the file's (plugin_event_group.wasm → event-group).
    const file = fileInput.files?.[0];
    if (file && !nameInput.value) {
      nameInput.value = file.name.replace(/\.wasm$/i, '').replace(/^plugin[-_]/, '').replaceAll('_', '-');
    }
  });
  const install = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const file = fileInput.files?.[0];
    const name = nameInput.value.trim();
    if (!file || !name) {
      installMsg.error(!file ? 'Choose a component (.wasm) to install.' : 'Name the plugin to install.');
      return;
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    installMsg.status(`Installing ${file.name} as ${name}…`);
    try {
      const query = approve.checked ? '?approveGrants=true' : '';
      const p = await api('PUT', `/admin/plugins/${encodeURIComponent(name)}${query}`, {
        body: file,
        headers: { 'content-type': 'application/wasm' },
      });
      installMsg.status(`Installed ${p.name} ${p.version} (sha256 ${String(p.sha256).slice(0, 12)}…).`);
      form.reset();
      await load();
    } catch (err) {
      installMsg.status('');
      installMsg.error(err.message);
    } finally {
      button.disabled = false;
    }
  };

  main.append(
    heading('Plugins'),
    h('p', { class: 'hint' }, 'The plugins serving now, with their limits and counters since they were loaded. The list refreshes on every swap.'),
    ...msg.nodes,
    table(
      'Plugins',
      ['Plugin', 'Version, loaded', 'sha256', 'State', 'Limits', 'Calls', 'Refusals', 'Faults', 'Timeouts', 'p50 / p99', 'Previous'],
      tbody,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'install-title' },
      h('h3', { id: 'install-title' }, 'Install a plugin'),
      h(
        'form',
        { class: 'install', onsubmit: install, novalidate: true },
        h('div', { class: 'field' }, h('label', { for: 'plugin-file' }, 'Component (.wasm)'), fileInput),
        h('div', { class: 'field' }, h('label', { for: 'plugin-name' }, 'Plugin name'), nameInput),
        h('div', { class: 'check' }, approve, h('label', { for: 'approve-grants' }, 'Approve new grants')),
        h('div', {}, h('button', { type: 'submit' }, 'Install')),
        ...installMsg.nodes,
      ),
    ),
  );
  load();
  return {
    onEvent(event) {
      if (event === 'PLUGIN_CHANGED') load();
    },
  };
}

// ---------------------------------------------------------------------------
// Sockets (ADMIN)

function socketsView(main) {
  const msg = messages();
  const tbody = h('tbody');
  const updated = h('span', { class: 'muted' });
  const load = async () => {
    try {
      const sockets = await api('GET', '/admin/sockets');
      tbody.replaceChildren(
        ...sockets.map((s) =>
          h(
            'tr',
            { 'data-socket': s.id },
            h('td', {}, h('code', {}, s.id), s.id === state.socket?.id ? h('small', { class: 'tag' }, 'this console') : ''),
            h('td', {}, s.email ?? s.userId ?? ''),
            h('td', {}, s.role ?? ''),
            h('td', {}, s.transport ?? ''),
            h('td', {}, (s.rooms ?? []).map((room) => h('code', { class: 'room' }, room))),
            h('td', {}, s.address ?? ''),
            h('td', { class: 'nowrap' }, time(s.connectedAt)),
          ),
        ),
      );
      msg.error('');
      updated.textContent = `${sockets.length} connected · updated `;
      updated.append(time(new Date()));
    } catch (err) {
      msg.error(err.message);
    }
  };
  main.append(
    heading('Sockets'),
    h(
      'p',
      { class: 'hint' },
      'The Socket.IO connections open now and the rooms they are in; refreshed every few seconds. ',
      'The official Socket.IO Admin UI is served at ',
      h('a', { href: '/admin-ui/' }, '/admin-ui/'),
      '.',
    ),
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: load }, 'Refresh'), updated),
    ...msg.nodes,
    table('Sockets', ['Socket', 'User', 'Role', 'Transport', 'Rooms', 'Address', 'Connected'], tbody),
  );
  load();
  const timer = setInterval(() => {
    if (!document.hidden) load();
  }, SOCKETS_REFRESH_MS);
  return { onConnect: load, close: () => clearInterval(timer) };
}

// ---------------------------------------------------------------------------
// API: the OpenAPI document, by tag

function apiView(main) {
  const body = h('div');
  const filter = h('input', { id: 'api-filter', type: 'search', autocomplete: 'off', placeholder: 'path, summary, access' });
  const render = () => {
    const doc = state.openapi;
    if (!doc) {
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not load the API description: ${state.openapiError}`));
      return;
    }
    const needle = filter.value.trim().toLowerCase();
    const byTag = new Map((doc.tags ?? []).map((t) => [t.name, []]));
    for (const entry of operations(doc)) {
      const text = `${entry.method} ${entry.path} ${entry.op.summary ?? ''} ${entry.op['x-tidings-access'] ?? ''} ${entry.op.tags ?? ''}`;
      if (needle && !text.toLowerCase().includes(needle)) continue;
      for (const tag of entry.op.tags?.length ? entry.op.tags : ['other']) {
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(entry);
      }
    }
    const descriptions = new Map((doc.tags ?? []).map((t) => [t.name, t.description]));
    const sections = [...byTag].filter(([, ops]) => ops.length).map(([tag, ops], i) =>
      h(
        'section',
        { class: 'api-tag', 'aria-labelledby': `tag-${i}` },
        h('h3', { id: `tag-${i}` }, tag),
        descriptions.get(tag) ? h('p', { class: 'hint' }, descriptions.get(tag)) : '',
        table(
          `${tag} operations`,
          ['Method', 'Path', 'Access', 'Summary'],
          h(
            'tbody',
            {},
            ops.map(({ method, path, op }) =>
              h(
                'tr',
                {},
                h('td', {}, h('span', { class: `method m-${method}` }, method.toUpperCase())),
                h('td', {}, h('code', {}, path)),
                h('td', {}, h('span', { class: `access a-${op['x-tidings-access'] ?? 'unknown'}` }, op['x-tidings-access'] ?? '–')),
                h('td', {}, op.summary ?? op.operationId ?? ''),
              ),
            ),
          ),
        ),
      ),
    );
    body.replaceChildren(
      h(
        'p',
        { class: 'hint' },
        `${doc.info?.title ?? 'API'} ${doc.info?.version ?? ''} · OpenAPI ${doc.openapi ?? '?'} · `,
        h('a', { href: `${API}/openapi.json` }, 'openapi.json'),
      ),
      ...(sections.length ? sections : [h('p', { class: 'status' }, 'No operation matches.')]),
    );
  };
  filter.addEventListener('input', render);
  main.append(
    heading('API'),
    h('div', { class: 'field inline' }, h('label', { for: 'api-filter' }, 'Filter'), filter),
    body,
  );
  render();
  return { onApiChanged: render };
}

boot();

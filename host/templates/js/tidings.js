// The Tidings plugin helpers for JavaScript, as `tidings plugin new` wrote them: the plugin
// interface (wit/) in plain objects, and `Owned`, an owner-scoped collection. It behaves as the
// Rust SDK's `Owned` does, answer for answer and notification for notification.
//
// A plugin's module exports `handler = plugin({ describe, handle })`; `handle` returns a
// `Response` or throws a `PluginError`, which is the client's 4xx answer. Anything else thrown
// is a bug: the call faults and the client gets 502 with an `errorId`.

import { get as storeGet, find as storeFind } from "tidings:plugin/store@0.3.0";
import { log as hostLog } from "tidings:plugin/log@0.3.0";
import { getRandomBytes } from "wasi:random/random@0.2.12";

/** A refusal: the client's answer, with nothing written. */
export class PluginError extends Error {
  constructor(tag, message) {
    super(message);
    this.tag = tag;
  }
  static invalidInput(message) { return new PluginError("invalid-input", message); } // 400
  static unauthorized(message) { return new PluginError("unauthorized", message); } // 401
  static forbidden(message) { return new PluginError("forbidden", message); } // 403
  static notFound(message) { return new PluginError("not-found", message); } // 404
  static conflict(message) { return new PluginError("conflict", message); } // 409
  static internal(message) { return new PluginError("internal", message); } // 502
}

/** The plugin's `handler` export from `describe()` and `handle(req)` (a `Request`). */
export function plugin({ describe, handle, onSocketEvent, runTask }) {
  const refusals = (f) => (arg) => {
    try {
      return f(arg);
    } catch (e) {
      if (e instanceof PluginError) throw { tag: e.tag, val: e.message };
      throw e;
    }
  };
  const none = () => { throw PluginError.notFound("not served by this plugin"); };
  return {
    describe,
    handle: refusals((req) => handle(new Request(req)).toWit()),
    onSocketEvent: refusals((req) => JSON.stringify(onSocketEvent ? onSocketEvent(req) : none())),
    runTask: refusals((req) => (runTask ? runTask(req) : none()).toWit()),
  };
}

/** Write a line to the host's log, tagged with this plugin's name. */
export function log(level, message) {
  hostLog(level, message);
}

/** One HTTP request, as the host routed it to the plugin. */
export class Request {
  constructor(wit) {
    this.wit = wit;
  }
  /** The name of the matched action, as declared in the descriptor. */
  get action() { return this.wit.action; }
  /** The signed-in user ({ id, role: "user" | "admin", sessionId }), or null. */
  get user() { return this.wit.actor.tag === "user" ? this.wit.actor.val : null; }
  /** The signed-in user, or 401. */
  requireUser() {
    const user = this.user;
    if (!user) throw PluginError.unauthorized("not signed in");
    return user;
  }
  get isAdmin() { return this.user?.role === "admin"; }
  /** A path parameter, e.g. `id` for `/:id`. */
  param(name) {
    const found = this.wit.params.find(([k]) => k === name);
    if (!found) throw PluginError.invalidInput(`missing path parameter ${name}`);
    return found[1];
  }
  /** The first query-string value named `name`, or null. */
  query(name) { return this.wit.query.find(([k]) => k === name)?.[1] ?? null; }
  /** The JSON body, parsed; 400 when it is missing or not JSON. */
  body() {
    if (this.wit.body == null) throw PluginError.invalidInput("a JSON body is required");
    try {
      return JSON.parse(this.wit.body);
    } catch (e) {
      throw PluginError.invalidInput(`invalid body: ${e.message}`);
    }
  }
  /** The host clock at the start of the request (ISO 8601, UTC): use it, never a clock of your own. */
  get now() { return this.wit.now; }
  /** Where the page to answer starts (null for the first page of a list). */
  get cursor() { return this.wit.cursor; }
}

/** A record: `data` holds the plugin's fields; the host owns id, version and the timestamps. */
export class Record {
  constructor(recordType, id, data, version, createdAt, updatedAt) {
    Object.assign(this, { recordType, id, data, version, createdAt, updatedAt });
  }
  /** A record that does not exist yet, stamped with the request's `now` as the host will. */
  static create(recordType, now, data) { return new Record(recordType, newId(now), data, 0, now, now); }
  static fromStored(s) {
    return new Record(s.recordType, s.id, JSON.parse(s.data), s.version, s.createdAt, s.updatedAt);
  }
  /** Mark it modified at `now`, as the host will stamp it on update. */
  touch(now) { this.updatedAt = now; }
  /** The record as the HTTP API returns it: `id`, the fields, `createdAt`, `updatedAt`. */
  toJSON() { return { id: this.id, ...this.data, createdAt: this.createdAt, updatedAt: this.updatedAt }; }
}

/**
 * A fresh record id: a UUID v7, as the Rust SDK's `new_id` makes: the time `now` (ISO 8601, the
 * request's `req.now`) in milliseconds first, the rest from the host's random source at call
 * time. Ids made one after another sort in that order, so the stores' indexes take new records
 * at their end rather than on a random page each.
 */
export function newId(now) {
  const b = getRandomBytes(16);
  let ms = Date.parse(now);
  if (!Number.isFinite(ms)) throw new TypeError(`newId needs the request's time, got ${now}`);
  for (let i = 5; i >= 0; i -= 1) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function storeCall(f) {
  try {
    return f();
  } catch (e) {
    // A refused read is a bug in the plugin, not the caller's fault.
    if (e && e.tag) throw PluginError.internal(`store ${e.tag.replace("-", " ")}: ${e.val}`);
    throw e;
  }
}

/** Read one record by id, or null. */
export function get(recordType, id) {
  const stored = storeCall(() => storeGet(recordType, id));
  return stored ? Record.fromStored(stored) : null;
}

/** A WIT `value` from a JSON scalar. */
function fieldValue(v) {
  if (v === null || v === undefined) return { tag: "null" };
  if (typeof v === "boolean") return { tag: "boolean", val: v };
  if (typeof v === "number") return Number.isInteger(v) ? { tag: "integer", val: v } : { tag: "float", val: v };
  if (Array.isArray(v)) return { tag: "texts", val: v };
  return { tag: "text", val: String(v) };
}

/** A query over one record type: `new Query("NOTE").eq("ownerId", id).orderBy("createdAt").fetch()`. */
export class Query {
  constructor(recordType) {
    this.wit = { recordType, conditions: [], orderBy: null, limit: null, after: null };
  }
  /** `field op value`, op one of eq, ne, lt, le, gt, ge, in, contains. */
  filter(field, op, value) {
    this.wit.conditions.push({ field, op, value: fieldValue(value) });
    return this;
  }
  eq(field, value) { return this.filter(field, "eq", value); }
  orderBy(field, descending = false) {
    this.wit.orderBy = { field, descending };
    return this;
  }
  limit(n) {
    this.wit.limit = n;
    return this;
  }
  fetch() { return storeCall(() => storeFind(this.wit)).map(Record.fromStored); }
  /**
   * The page that starts at `cursor` (null: the first): at most `size` records and about
   * PAGE_DATA_BYTES of data, in the query's order; `next` is where the next page starts.
   */
  page(cursor, size) {
    const field = this.wit.orderBy?.field;
    const wit = { ...this.wit, limit: size + 1 };
    if (cursor != null) {
      const [value, id] = JSON.parse(cursor);
      wit.after = { value: fieldValue(value), id };
    }
    const found = storeCall(() => storeFind(wit));
    const records = [];
    let bytes = 0;
    for (const s of found) {
      if (records.length === size || (records.length > 0 && bytes + s.data.length > PAGE_DATA_BYTES)) break;
      bytes += s.data.length;
      records.push(Record.fromStored(s));
    }
    const last = records.at(-1);
    const next = records.length < found.length ? JSON.stringify([orderValue(last, field), last.id]) : null;
    return { records, next };
  }
}

/** The most bytes of stored record data one page holds (the host caps a body at 4 MiB). */
export const PAGE_DATA_BYTES = 1 << 20;

function orderValue(record, field) {
  if (!field) return null;
  if (field === "id" || field === "createdAt" || field === "updatedAt") return record[field];
  return record.data[field] ?? null;
}

/** A notification: `NEW_RECORD`, `CHANGED_RECORD` or `DELETED_RECORD`, to `targets`. */
export class Notification {
  constructor(change, recordType, id, record) {
    this.wit = { change, recordType, id, record: record == null ? null : JSON.stringify(record), targets: [], toSelf: false };
  }
  static created(recordType, id, record) { return new Notification("created", recordType, id, record); }
  static changed(recordType, id, record) { return new Notification("changed", recordType, id, record); }
  static deleted(recordType, id) { return new Notification("deleted", recordType, id, null); }
  toUser(userId) { return this.#to({ tag: "user", val: userId }); }
  toAdmins() { return this.#to({ tag: "admins" }); }
  toAll() { return this.#to({ tag: "all" }); }
  #to(target) {
    this.wit.targets.push(target);
    return this;
  }
}

/** What a call answers: a 2xx status and body, plus what to write and whom to tell. */
export class Response {
  constructor(status, body) {
    this.wit = { status, body: body === undefined ? null : JSON.stringify(body), writes: [], notifications: [], tasks: [], next: null };
  }
  static ok(body) { return new Response(200, body); }
  static created(body) { return new Response(201, body); }
  static noContent() { return new Response(204); }
  /** Insert a new record; the request fails with 409 if its id exists. */
  insert(record) { return this.#upsert(record, null); }
  /** Update a record read earlier in this request; 409 if someone changed it since. */
  update(record) { return this.#upsert(record, record.version); }
  /** Delete a record read earlier in this request; 409 if someone changed it since. */
  delete(record) {
    this.wit.writes.push({ tag: "delete", val: { recordType: record.recordType, id: record.id, expectedVersion: record.version } });
    return this;
  }
  notify(notification) {
    this.wit.notifications.push(notification.wit);
    return this;
  }
  /** The body is one page of a list and the list goes on at `cursor` (GET actions only). */
  nextPage(cursor) {
    this.wit.next = cursor ?? null;
    return this;
  }
  toWit() { return this.wit; }
  #upsert(record, expectedVersion) {
    const val = { recordType: record.recordType, id: record.id, data: JSON.stringify(record.data), expectedVersion };
    this.wit.writes.push({ tag: "upsert", val });
    return this;
  }
}

/** A descriptor with no actions, no extra grants and no indexes; add them with its methods. */
export class Descriptor {
  constructor(name, recordType, collection, version) {
    Object.assign(this, { name, recordType, collection, version, actions: [], socketEvents: [], grants: { read: [], write: [] }, indexes: [] });
  }
  /** Serve `method path` (relative to the collection) as the action `name`; access is "public", "signed-in" or "admin". */
  action(name, method, path, access) {
    this.actions.push({ name, method: method.toLowerCase(), path, access });
    return this;
  }
  reads(recordType) {
    this.grants.read.push(recordType);
    return this;
  }
  writes(recordType) {
    this.grants.write.push(recordType);
    return this;
  }
  index(field) {
    this.indexes.push({ field, kind: "value", thenBy: [] });
    return this;
  }
}

/** The field naming a record's owner (a user id). */
export const OWNER_FIELD = "ownerId";
const PAGE_SIZE = 500;
/** Fields the plugin does not take from a client: the host owns four, the owner is the caller. */
const NOT_FROM_CLIENTS = ["id", "createdAt", "updatedAt", "version", OWNER_FIELD];

/**
 * A collection of records owned by their creators: its owner and the admins see, change and
 * delete a record (anyone else gets 404); every change is notified to the owner and the admins.
 */
export class Owned {
  constructor(recordType, collection) {
    this.recordType = recordType;
    this.collection = collection;
  }

  /** The five actions `handle` serves, for signed-in users. */
  describe(name, version) {
    return new Descriptor(name, this.recordType, this.collection, version)
      .action("create", "POST", "/", "signed-in")
      .action("list", "GET", "/", "signed-in")
      .action("find", "GET", "/:id", "signed-in")
      .action("update", "PUT", "/:id", "signed-in")
      .action("delete", "DELETE", "/:id", "signed-in")
      .index(OWNER_FIELD);
  }

  /** Serve the five actions; `check(fields)` is asked before a create or an update writes. */
  handle(req, check) {
    switch (req.action) {
      case "create": return this.create(req, check);
      case "list": return this.list(req);
      case "find": return Response.ok(this.find(req));
      case "update": return this.update(req, check);
      case "delete": return this.delete(req);
      default: throw PluginError.notFound(`no action ${req.action}`);
    }
  }

  create(req, check) {
    const owner = req.requireUser().id;
    const fields = clientFields(req.body());
    fields[OWNER_FIELD] = owner;
    check(fields);
    const record = Record.create(this.recordType, req.now, fields);
    return Response.created(record)
      .insert(record)
      .notify(this.#audience(Notification.created(this.recordType, record.id, record), record));
  }

  list(req) {
    const user = req.requireUser();
    let query = new Query(this.recordType);
    if (!req.isAdmin) query = query.eq(OWNER_FIELD, user.id);
    const page = query.orderBy("createdAt").page(req.cursor, PAGE_SIZE);
    return Response.ok(page.records).nextPage(page.next);
  }

  /** The record named by `:id` if the caller owns it or is an ADMIN; 404 otherwise. */
  find(req) {
    const user = req.requireUser();
    const id = req.param("id");
    const record = get(this.recordType, id);
    if (record && (req.isAdmin || record.data[OWNER_FIELD] === user.id)) return record;
    throw PluginError.notFound(`${this.recordType} ${id} not found`);
  }

  update(req, check) {
    const record = this.find(req);
    const changes = clientFields(req.body());
    patch(record.data, changes);
    check(record.data);
    record.touch(req.now);
    return Response.ok(record)
      .update(record)
      .notify(this.#audience(Notification.changed(this.recordType, record.id, record), record));
  }

  delete(req) {
    const record = this.find(req);
    return Response.noContent()
      .delete(record)
      .notify(this.#audience(Notification.deleted(this.recordType, record.id), record));
  }

  #audience(notification, record) {
    const owner = record.data[OWNER_FIELD];
    return typeof owner === "string" ? notification.toUser(owner).toAdmins() : notification.toAdmins();
  }
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A request body as record fields: a JSON object, without the fields a client may not set. */
function clientFields(body) {
  if (!isObject(body)) throw PluginError.invalidInput("the body must be a JSON object of the record's fields");
  for (const field of NOT_FROM_CLIENTS) delete body[field];
  return body;
}

/**
 * Apply `changes` to `fields` as a JSON merge patch at the top level: a field set to null is
 * removed, any other value replaces the field's, and fields the changes do not name are kept,
 * including those this version of the plugin does not know (so a rollback drops nothing).
 */
export function patch(fields, changes) {
  for (const [field, value] of Object.entries(changes)) {
    if (value === null) delete fields[field];
    else fields[field] = value;
  }
}

/** A check for `Owned.handle`: `field` must be a text with something besides spaces. */
export function requireText(fields, field) {
  const text = fields[field];
  if (typeof text !== "string" || text.trim() === "") throw PluginError.invalidInput(`${field} is required: a non-empty text`);
}

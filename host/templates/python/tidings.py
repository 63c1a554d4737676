"""The Tidings plugin helpers for Python, as `tidings plugin new` wrote them: the plugin
interface (wit/) in plain classes, and `Owned`, an owner-scoped collection. It behaves as the
Rust SDK's `Owned` does, answer for answer and notification for notification.

A plugin's module defines `class Handler(tidings.Plugin)` with `describe()` and
`handle(req)`; `handle` returns a `Response` or raises a `PluginError`, which is the client's
4xx answer. Anything else raised is a bug: the call faults and the client gets 502 with an
`errorId`.
"""

import json
import os
import uuid
from datetime import datetime, timedelta, timezone

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log as host_log
from wit_world.imports import store, types

Method = types.Method
Access = types.Access


class PluginError(Exception):
    """A refusal: the client's answer, with nothing written."""

    def __init__(self, variant, message):
        super().__init__(message)
        self.variant = variant

    @classmethod
    def invalid_input(cls, message):  # 400
        return cls(types.PluginError_InvalidInput, message)

    @classmethod
    def unauthorized(cls, message):  # 401
        return cls(types.PluginError_Unauthorized, message)

    @classmethod
    def forbidden(cls, message):  # 403
        return cls(types.PluginError_Forbidden, message)

    @classmethod
    def not_found(cls, message):  # 404
        return cls(types.PluginError_NotFound, message)

    @classmethod
    def conflict(cls, message):  # 409
        return cls(types.PluginError_Conflict, message)

    @classmethod
    def internal(cls, message):  # 502
        return cls(types.PluginError_Internal, message)


def _refusals(call):
    try:
        return call()
    except PluginError as e:
        raise Err(e.variant(str(e)))


class Plugin(exports.Handler):
    """Subclass it as `Handler` in app.py, with `describe()` returning a `Descriptor` and
    `handle(req)` taking a `Request` and returning a `Response` (or raising a `PluginError`)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        describe, handle = cls.describe, cls.handle
        cls.describe = lambda self: _wit(describe(self))
        cls.handle = lambda self, req: _refusals(lambda: handle(self, Request(req)).wit)

    def on_socket_event(self, req):
        raise Err(types.PluginError_NotFound("not served by this plugin"))

    def run_task(self, req):
        raise Err(types.PluginError_NotFound("not served by this plugin"))


def _wit(value):
    return value.wit if isinstance(value, Descriptor) else value


def log(level, message):
    """Write a line to the host's log ("trace", "debug", "info", "warn", "error")."""
    host_log.log(host_log.Level[level.upper()], message)


class Request:
    """One HTTP request, as the host routed it to the plugin."""

    def __init__(self, wit):
        self.wit = wit

    @property
    def action(self):
        return self.wit.action

    @property
    def user(self):
        """The signed-in user (`id`, `role`, `session_id`), or None."""
        actor = self.wit.actor
        return actor.value if isinstance(actor, types.Actor_User) else None

    def require_user(self):
        user = self.user
        if user is None:
            raise PluginError.unauthorized("not signed in")
        return user

    @property
    def is_admin(self):
        return self.user is not None and self.user.role == types.Role.ADMIN

    def param(self, name):
        for key, value in self.wit.params:
            if key == name:
                return value
        raise PluginError.invalid_input(f"missing path parameter {name}")

    def query(self, name):
        return next((v for k, v in self.wit.query if k == name), None)

    def body(self):
        """The JSON body, parsed; 400 when it is missing or not JSON."""
        if self.wit.body is None:
            raise PluginError.invalid_input("a JSON body is required")
        try:
            return json.loads(self.wit.body)
        except ValueError as e:
            raise PluginError.invalid_input(f"invalid body: {e}")

    @property
    def now(self):
        """The host clock at the start of the request (ISO 8601, UTC): use it, never a clock of your own."""
        return self.wit.now

    @property
    def cursor(self):
        return self.wit.cursor


def new_id(now):
    """A fresh record id: a UUID v7, as the Rust SDK's `new_id` makes: the time `now` (ISO 8601,
    the request's `req.now`) in milliseconds first, the rest at random, drawn from the host at
    call time. Ids made one after another sort in that order, so the stores' indexes take new
    records at their end rather than on a random page each."""
    made_at = datetime.fromisoformat(now.replace("Z", "+00:00"))
    ms = (made_at - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    b = bytearray(os.urandom(16))
    b[0:6] = ms.to_bytes(6, "big")
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


class Record:
    """A record: `data` holds the plugin's fields; the host owns id, version and the timestamps."""

    def __init__(self, record_type, id, data, version, created_at, updated_at):
        self.record_type, self.id, self.data = record_type, id, data
        self.version, self.created_at, self.updated_at = version, created_at, updated_at

    @classmethod
    def create(cls, record_type, now, data):
        """A record that does not exist yet, stamped with the request's `now` as the host will."""
        return cls(record_type, new_id(now), data, 0, now, now)

    @classmethod
    def from_stored(cls, s):
        return cls(s.record_type, s.id, json.loads(s.data), s.version, s.created_at, s.updated_at)

    def touch(self, now):
        self.updated_at = now

    def to_json(self):
        """The record as the HTTP API returns it: `id`, the fields, `createdAt`, `updatedAt`."""
        return {"id": self.id, **self.data, "createdAt": self.created_at, "updatedAt": self.updated_at}


def _store(call):
    try:
        return call()
    except Err as e:
        # A refused read is a bug in the plugin, not the caller's fault.
        raise PluginError.internal(f"store refused: {e.value}")


def get(record_type, id):
    """Read one record by id, or None."""
    stored = _store(lambda: store.get(record_type, id))
    return None if stored is None else Record.from_stored(stored)


def _value(v):
    if v is None:
        return types.Value_Null()
    if isinstance(v, bool):
        return types.Value_Boolean(v)
    if isinstance(v, int):
        return types.Value_Integer(v)
    if isinstance(v, float):
        return types.Value_Float(v)
    if isinstance(v, list):
        return types.Value_Texts(v)
    return types.Value_Text(str(v))


_COMPARISONS = {c.name.lower(): c for c in types.Comparison}

# The most bytes of stored record data one page holds (the host caps a body at 4 MiB).
PAGE_DATA_BYTES = 1 << 20


class Query:
    """A query over one record type: `Query("NOTE").eq("ownerId", id).order_by("createdAt").fetch()`."""

    def __init__(self, record_type):
        self.wit = types.Query(record_type, [], None, None, None)

    def filter(self, field, op, value):
        """`field op value`, op one of eq, ne, lt, le, gt, ge, in, contains."""
        self.wit.conditions.append(types.Condition(field, _COMPARISONS[op], _value(value)))
        return self

    def eq(self, field, value):
        return self.filter(field, "eq", value)

    def order_by(self, field, descending=False):
        self.wit.order_by = types.Order(field, descending)
        return self

    def limit(self, n):
        self.wit.limit = n
        return self

    def fetch(self):
        return [Record.from_stored(s) for s in _store(lambda: store.find(self.wit))]

    def page(self, cursor, size):
        """The page that starts at `cursor` (None: the first): at most `size` records and about
        PAGE_DATA_BYTES of data, in the query's order. Returns (records, next cursor or None)."""
        field = self.wit.order_by.field if self.wit.order_by else None
        after = None
        if cursor is not None:
            value, id = json.loads(cursor)
            after = types.Position(_value(value), id)
        query = types.Query(self.wit.record_type, self.wit.conditions, self.wit.order_by, size + 1, after)
        found = _store(lambda: store.find(query))
        records, size_bytes = [], 0
        for s in found:
            if len(records) == size or (records and size_bytes + len(s.data) > PAGE_DATA_BYTES):
                break
            size_bytes += len(s.data)
            records.append(Record.from_stored(s))
        next = None
        if len(records) < len(found):
            last = records[-1]
            next = json.dumps([_order_value(last, field), last.id])
        return records, next


def _order_value(record, field):
    if field is None:
        return None
    if field in ("id", "createdAt", "updatedAt"):
        return record.to_json()[field]
    return record.data.get(field)


def _json(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Notification:
    """`NEW_RECORD`, `CHANGED_RECORD` or `DELETED_RECORD`, to the rooms it is sent to."""

    def __init__(self, change, record_type, id, record):
        body = None if record is None else _json(record.to_json())
        self.wit = types.Notification(change, record_type, id, body, [], False)

    @classmethod
    def created(cls, record):
        return cls(types.Change.CREATED, record.record_type, record.id, record)

    @classmethod
    def changed(cls, record):
        return cls(types.Change.CHANGED, record.record_type, record.id, record)

    @classmethod
    def deleted(cls, record):
        return cls(types.Change.DELETED, record.record_type, record.id, None)

    def to_user(self, user_id):
        self.wit.targets.append(types.Target_User(user_id))
        return self

    def to_admins(self):
        self.wit.targets.append(types.Target_Admins())
        return self

    def to_all(self):
        self.wit.targets.append(types.Target_All())
        return self


class Response:
    """What a call answers: a 2xx status and body, plus what to write and whom to tell."""

    def __init__(self, status, body=None, has_body=True):
        text = _json(_plain(body)) if has_body else None
        self.wit = types.Response(status, text, [], [], [], None)

    @classmethod
    def ok(cls, body):
        return cls(200, body)

    @classmethod
    def created(cls, body):
        return cls(201, body)

    @classmethod
    def no_content(cls):
        return cls(204, has_body=False)

    def insert(self, record):
        """Insert a new record; the request fails with 409 if its id exists."""
        return self._upsert(record, None)

    def update(self, record):
        """Update a record read earlier in this request; 409 if someone changed it since."""
        return self._upsert(record, record.version)

    def delete(self, record):
        """Delete a record read earlier in this request; 409 if someone changed it since."""
        self.wit.writes.append(types.Write_Delete(types.Delete(record.record_type, record.id, record.version)))
        return self

    def notify(self, notification):
        self.wit.notifications.append(notification.wit)
        return self

    def next_page(self, cursor):
        """The body is one page of a list and the list goes on at `cursor` (GET actions only)."""
        self.wit.next = cursor
        return self

    def _upsert(self, record, expected_version):
        upsert = types.Upsert(record.record_type, record.id, _json(record.data), expected_version)
        self.wit.writes.append(types.Write_Upsert(upsert))
        return self


def _plain(body):
    if isinstance(body, Record):
        return body.to_json()
    if isinstance(body, list):
        return [_plain(b) for b in body]
    return body


class Descriptor:
    """A descriptor with no actions, no extra grants and no indexes; add them with its methods."""

    def __init__(self, name, record_type, collection, version):
        self.wit = types.Descriptor(name, record_type, collection, version, [], [], types.Grants([], []), [])

    def action(self, name, method, path, access):
        """Serve `method path` (relative to the collection) as the action `name`;
        `method` is "GET", "POST", …; `access` "public", "signed-in" or "admin"."""
        access = types.Access[access.upper().replace("-", "_")]
        self.wit.actions.append(types.Action(name, types.Method[method.upper()], path, access))
        return self

    def reads(self, record_type):
        self.wit.grants.read.append(record_type)
        return self

    def writes(self, record_type):
        self.wit.grants.write.append(record_type)
        return self

    def index(self, field):
        self.wit.indexes.append(types.Index(field, types.IndexKind.VALUE, []))
        return self


OWNER_FIELD = "ownerId"
_PAGE_SIZE = 500
# Fields the plugin does not take from a client: the host owns four, the owner is the caller.
_NOT_FROM_CLIENTS = ("id", "createdAt", "updatedAt", "version", OWNER_FIELD)


class Owned:
    """A collection of records owned by their creators: its owner and the admins see, change
    and delete a record (anyone else gets 404); every change is notified to the owner and the
    admins."""

    def __init__(self, record_type, collection):
        self.record_type = record_type
        self.collection = collection

    def describe(self, name, version):
        """The five actions `handle` serves, for signed-in users."""
        return (
            Descriptor(name, self.record_type, self.collection, version)
            .action("create", "POST", "/", "signed-in")
            .action("list", "GET", "/", "signed-in")
            .action("find", "GET", "/:id", "signed-in")
            .action("update", "PUT", "/:id", "signed-in")
            .action("delete", "DELETE", "/:id", "signed-in")
            .index(OWNER_FIELD)
        )

    def handle(self, req, check):
        """Serve the five actions; `check(fields)` is asked before a create or an update writes."""
        if req.action == "create":
            return self.create(req, check)
        if req.action == "list":
            return self.list(req)
        if req.action == "find":
            return Response.ok(self.find(req))
        if req.action == "update":
            return self.update(req, check)
        if req.action == "delete":
            return self.delete(req)
        raise PluginError.not_found(f"no action {req.action}")

    def create(self, req, check):
        owner = req.require_user().id
        fields = _client_fields(req.body())
        fields[OWNER_FIELD] = owner
        check(fields)
        record = Record.create(self.record_type, req.now, fields)
        return Response.created(record).insert(record).notify(self._audience(Notification.created(record), record))

    def list(self, req):
        user = req.require_user()
        query = Query(self.record_type)
        if not req.is_admin:
            query = query.eq(OWNER_FIELD, user.id)
        records, next = query.order_by("createdAt").page(req.cursor, _PAGE_SIZE)
        return Response.ok(records).next_page(next)

    def find(self, req):
        """The record named by `:id` if the caller owns it or is an ADMIN; 404 otherwise."""
        user = req.require_user()
        id = req.param("id")
        record = get(self.record_type, id)
        if record is not None and (req.is_admin or record.data.get(OWNER_FIELD) == user.id):
            return record
        raise PluginError.not_found(f"{self.record_type} {id} not found")

    def update(self, req, check):
        record = self.find(req)
        patch(record.data, _client_fields(req.body()))
        check(record.data)
        record.touch(req.now)
        return Response.ok(record).update(record).notify(self._audience(Notification.changed(record), record))

    def delete(self, req):
        record = self.find(req)
        return Response.no_content().delete(record).notify(self._audience(Notification.deleted(record), record))

    def _audience(self, notification, record):
        owner = record.data.get(OWNER_FIELD)
        if isinstance(owner, str):
            notification.to_user(owner)
        return notification.to_admins()


def _client_fields(body):
    """A request body as record fields: a JSON object, without the fields a client may not set."""
    if not isinstance(body, dict):
        raise PluginError.invalid_input("the body must be a JSON object of the record's fields")
    for field in _NOT_FROM_CLIENTS:
        body.pop(field, None)
    return body


def patch(fields, changes):
    """Apply `changes` to `fields` as a JSON merge patch at the top level: a field set to None
    is removed, any other value replaces the field's, and fields the changes do not name are
    kept, including those this version of the plugin does not know (so a rollback drops nothing)."""
    for field, value in changes.items():
        if value is None:
            fields.pop(field, None)
        else:
            fields[field] = value


def require_text(fields, field):
    """A check for `Owned.handle`: `field` must be a text with something besides spaces."""
    text = fields.get(field)
    if not isinstance(text, str) or not text.strip():
        raise PluginError.invalid_input(f"{field} is required: a non-empty text")

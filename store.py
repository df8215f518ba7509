"""scimlite's storage: the Peewee models for users, groups and their links.

One database per process, chosen by URL (`sqlite:///scim.db` by default); the
tables come from `schema.sql`, applied idempotently when the database opens.

Each resource is kept twice on purpose: the attributes that are searched or
constrained are columns with indexes (userName's lower-cased key is UNIQUE, so
the database, not a check-then-insert, decides a race), and the whole resource
is JSON text so anything an IdP sends round-trips. Membership lives only in the
`link` table; a user's `groups` and a group's `members` are read from it.

Knows nothing about HTTP: it raises its own small exceptions, which the server
turns into SCIM errors. Every write is one transaction.
"""

import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from peewee import (
    SQL, BooleanField, CharField, CompositeKey, DatabaseProxy, ForeignKeyField,
    IntegerField, IntegrityError, Model, OperationalError, SqliteDatabase,
    TextField, fn)

import scimfilter as F

SCHEMA_FILE = Path(__file__).with_name('schema.sql')
# Time-stamps are stored as fixed-width UTC text, so they sort as they compare.
TIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'
MAX_WRITE_ATTEMPTS = 10

database = DatabaseProxy()


# ---------------------------------------------------------------------------
# Errors the server maps to SCIM errors
# ---------------------------------------------------------------------------

class StoreError(Exception):
    """Base of what the store reports to its caller."""


class DatabaseURLError(StoreError):
    """The database URL is malformed or the database cannot be opened."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    """A uniqueness constraint refused the write."""


class UnknownMembers(StoreError):
    def __init__(self, ids):
        super().__init__(', '.join(sorted(ids)))
        self.ids = ids


class VersionMismatch(StoreError):
    """The caller's expected version (If-Match) is not the stored one."""


class UnsupportedFilter(StoreError):
    """The filter names an attribute or an operator this store cannot search."""


# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------

def open_database(url):
    """Open the database named by `url`, apply the schema, return it.

    Raises DatabaseURLError with a one-line reason."""
    parsed = urlparse(url)
    if parsed.scheme != 'sqlite':
        raise DatabaseURLError(
            f'unsupported database URL {url!r}: use sqlite:///path/to/file.db')
    path = url[len('sqlite:///'):] if url.startswith('sqlite:///') else ''
    if not path or path == ':memory:':
        raise DatabaseURLError(
            f'{url!r} names no database file: use sqlite:///scim.db '
            '(relative) or sqlite:////absolute/path/scim.db')
    db = SqliteDatabase(path, pragmas={
        'journal_mode': 'wal',      # readers never wait for the writer
        'synchronous': 'normal',    # WAL + NORMAL: a killed process loses nothing committed
        'foreign_keys': 1,
        'busy_timeout': 10000,
    })
    database.initialize(db)
    try:
        apply_schema()
    except OperationalError as error:
        db.close()
        raise DatabaseURLError(f'cannot open database {path!r}: {error}') from None
    return db


def apply_schema():
    """Run schema.sql; every statement is `IF NOT EXISTS`, so this is idempotent."""
    text = re.sub(r'--[^\n]*', '', SCHEMA_FILE.read_text(encoding='utf-8'))
    statements = [s.strip() for s in text.split(';') if s.strip()]
    with database.atomic():
        for statement in statements:
            database.execute_sql(statement)


def close_database():
    if not database.is_closed():
        database.close()


def now():
    return datetime.now(timezone.utc).strftime(TIME_FORMAT)


def normalise_time(text):
    """An RFC 3339 time in any offset -> the stored UTC text, or None if unparsable."""
    try:
        moment = datetime.fromisoformat(text.replace('Z', '+00:00').replace('z', '+00:00'))
    except (ValueError, AttributeError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def new_id():
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------
# Models (the DDL itself is schema.sql; a test checks the two agree)
# ---------------------------------------------------------------------------

class BaseModel(Model):
    class Meta:
        database = database


class User(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    user_name = TextField()
    user_name_key = TextField(unique=True)
    external_id = TextField(null=True, index=True)
    display_name = TextField(null=True)
    active = BooleanField(default=True)
    resource = TextField()
    version = IntegerField(default=1)
    created = TextField()
    last_modified = TextField()

    class Meta:
        table_name = 'users'
        indexes = ((('created', 'id'), False),)


class Group(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    display_name = TextField()
    display_name_key = TextField(index=True)
    external_id = TextField(null=True, index=True)
    resource = TextField()
    version = IntegerField(default=1)
    created = TextField()
    last_modified = TextField()

    class Meta:
        table_name = 'groups'
        indexes = ((('created', 'id'), False),)


class Link(BaseModel):
    group = ForeignKeyField(Group, column_name='group_id', on_delete='CASCADE')
    user = ForeignKeyField(User, column_name='user_id', on_delete='CASCADE', index=True)

    class Meta:
        table_name = 'link'
        primary_key = CompositeKey('group', 'user')


# ---------------------------------------------------------------------------
# Filters: the AST from scimfilter -> a Peewee expression with bound parameters
# ---------------------------------------------------------------------------

class _Column:
    """How one SCIM attribute is searched: the column, and its comparison rules."""

    def __init__(self, field, kind='string', case_exact=False, key_field=None):
        self.field = field
        self.kind = kind              # string | boolean | datetime
        self.case_exact = case_exact
        self.key_field = key_field    # a lower-cased copy with an index, if any

    def expression(self, op, value, attr_name):
        if op == 'pr':
            field = self.field
            return field.is_null(False) & (field != '') if self.kind == 'string' else field.is_null(False)
        if self.kind == 'boolean':
            if op not in ('eq', 'ne') or not isinstance(value, bool):
                raise UnsupportedFilter(f'{attr_name} is a boolean: only eq/ne true/false apply')
            return _compare(self.field, op, value)
        if not isinstance(value, str):
            raise UnsupportedFilter(f'{attr_name} is compared with a "string"')
        if self.kind == 'datetime':
            moment = normalise_time(value)
            if moment is None or op in ('co', 'sw', 'ew'):
                raise UnsupportedFilter(f'{attr_name} is a dateTime: compare it with eq/ne/gt/ge/lt/le and an RFC 3339 time')
            return _compare(self.field, op, moment)
        if self.case_exact:
            return _compare(self.field, op, value)
        field = self.key_field if self.key_field is not None else fn.LOWER(self.field)
        return _compare(field, op, value.lower())


def _compare(field, op, value):
    """One comparison that is never NULL, so `not (...)` means what it says."""
    present = field.is_null(False)
    if op == 'eq':
        return present & (field == value)
    if op == 'ne':
        return field.is_null() | (field != value)
    if op == 'gt':
        return present & (field > value)
    if op == 'ge':
        return present & (field >= value)
    if op == 'lt':
        return present & (field < value)
    if op == 'le':
        return present & (field <= value)
    # co / sw / ew on text: the caller lower-cased both sides where case does not matter;
    # REPLACE and SUBSTR are case-sensitive on SQLite and PostgreSQL alike.
    size = len(value)
    if op == 'co':
        return present & (fn.REPLACE(field, value, '') != field) if value else present
    if op == 'sw':
        return present & (fn.SUBSTR(field, 1, size) == value)
    if op == 'ew':
        return present & (fn.LENGTH(field) >= size) & (fn.SUBSTR(field, fn.LENGTH(field) - size + 1) == value)
    raise UnsupportedFilter(f'unknown operator {op}')


USER_COLUMNS = {
    'id': _Column(User.id, case_exact=True),
    'username': _Column(User.user_name, key_field=User.user_name_key),
    'externalid': _Column(User.external_id, case_exact=True),
    'displayname': _Column(User.display_name),
    'active': _Column(User.active, kind='boolean'),
    'meta.created': _Column(User.created, kind='datetime'),
    'meta.lastmodified': _Column(User.last_modified, kind='datetime'),
}
GROUP_COLUMNS = {
    'id': _Column(Group.id, case_exact=True),
    'displayname': _Column(Group.display_name, key_field=Group.display_name_key),
    'externalid': _Column(Group.external_id, case_exact=True),
    'meta.created': _Column(Group.created, kind='datetime'),
    'meta.lastmodified': _Column(Group.last_modified, kind='datetime'),
}
CORE_URNS = {
    'urn:ietf:params:scim:schemas:core:2.0:user',
    'urn:ietf:params:scim:schemas:core:2.0:group',
}


def _attr_key(path):
    if path.urn and path.urn.lower() not in CORE_URNS:
        raise UnsupportedFilter(f'filtering on {path} is not supported')
    return f'{path.attr}.{path.sub}'.lower() if path.sub else path.attr.lower()


def filter_expression(expr, columns, membership):
    """Translate a filter AST into a Peewee expression.

    `membership` is the (attribute name, link column, own id field) by which this
    resource type reaches the other side of `link`, e.g. ('members', Link.user, Group.id)."""
    if isinstance(expr, F.And):
        return (filter_expression(expr.left, columns, membership)
                & filter_expression(expr.right, columns, membership))
    if isinstance(expr, F.Or):
        return (filter_expression(expr.left, columns, membership)
                | filter_expression(expr.right, columns, membership))
    if isinstance(expr, F.Not):
        return ~filter_expression(expr.expr, columns, membership)
    if isinstance(expr, F.ValuePath):
        return _membership_value_path(expr, membership)
    key = _attr_key(expr.path)
    op = 'pr' if isinstance(expr, F.Present) else expr.op
    value = None if isinstance(expr, F.Present) else expr.value
    if key in (membership[0], membership[0] + '.value'):
        return _membership_exists(op, value, membership, key)
    if key not in columns:
        raise UnsupportedFilter(f'filtering on {expr.path} is not supported')
    return columns[key].expression(op, value, str(expr.path))


def _membership_exists(op, value, membership, key):
    """`members eq "<user id>"` on groups, `groups eq "<group id>"` on users."""
    name, other_side, own_id = membership
    own_side = Link.group if other_side is Link.user else Link.user
    links = Link.select(SQL('1')).where(own_side == own_id)
    if op == 'pr':
        return fn.EXISTS(links)
    if op not in ('eq', 'ne') or not isinstance(value, str):
        raise UnsupportedFilter(f'{key} is compared with eq or ne and an id')
    matched = fn.EXISTS(links.where(other_side == value))
    return matched if op == 'eq' else ~matched


def _membership_value_path(expr, membership):
    """`members[value eq "<id>"]` / `groups[value eq "<id>"]`: the same as `members eq`."""
    name = membership[0]
    if _attr_key(expr.path) != name:
        raise UnsupportedFilter(f'filtering on {expr.path}[...] is not supported')
    inner = expr.filter
    if isinstance(inner, (F.Compare, F.Present)) and _attr_key(inner.path) == 'value':
        return _membership_exists('pr' if isinstance(inner, F.Present) else inner.op,
                                  getattr(inner, 'value', None), membership, name)
    raise UnsupportedFilter(f'only {name}[value eq "..."] is supported')


USER_MEMBERSHIP = ('groups', Link.group, User.id)
GROUP_MEMBERSHIP = ('members', Link.user, Group.id)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def _record(row, links=()):
    """A stored row as the plain dict the server renders."""
    return {
        'id': row.id,
        'resource': json.loads(row.resource),
        'version': row.version,
        'created': row.created,
        'last_modified': row.last_modified,
        'links': list(links),
    }


def _groups_of(user_ids):
    """{user id: [(group id, displayName)]} in one query."""
    found = {user_id: [] for user_id in user_ids}
    if user_ids:
        query = (Link.select(Link.user, Group.id, Group.display_name)
                 .join(Group).where(Link.user.in_(user_ids))
                 .order_by(Group.display_name_key, Group.id).tuples())
        for user_id, group_id, display in query:
            found[user_id].append((group_id, display))
    return found


def _members_of(group_ids):
    """{group id: [(user id, userName)]} in one query."""
    found = {group_id: [] for group_id in group_ids}
    if group_ids:
        query = (Link.select(Link.group, User.id, User.user_name)
                 .join(User).where(Link.group.in_(group_ids))
                 .order_by(User.user_name_key).tuples())
        for group_id, user_id, user_name in query:
            found[group_id].append((user_id, user_name))
    return found


def get_user(user_id):
    row = User.get_or_none(User.id == user_id)
    if row is None:
        raise NotFound(user_id)
    return _record(row, _groups_of([row.id])[row.id])


def get_group(group_id, with_members=True):
    row = Group.get_or_none(Group.id == group_id)
    if row is None:
        raise NotFound(group_id)
    return _record(row, _members_of([row.id])[row.id] if with_members else ())


def _page(model, where, start_index, count):
    """(totalResults, the rows of one page) in a stable order."""
    query = model.select()
    if where is not None:
        query = query.where(where)
    total = query.count()
    if count == 0 or total < start_index:
        return total, []
    rows = list(query.order_by(model.created, model.id).offset(start_index - 1).limit(count))
    return total, rows


def list_users(filter_ast, start_index, count):
    where = filter_expression(filter_ast, USER_COLUMNS, USER_MEMBERSHIP) if filter_ast else None
    total, rows = _page(User, where, start_index, count)
    groups = _groups_of([row.id for row in rows])
    return total, [_record(row, groups[row.id]) for row in rows]


def list_groups(filter_ast, start_index, count, with_members=True):
    where = filter_expression(filter_ast, GROUP_COLUMNS, GROUP_MEMBERSHIP) if filter_ast else None
    total, rows = _page(Group, where, start_index, count)
    members = _members_of([row.id for row in rows]) if with_members else {}
    return total, [_record(row, members.get(row.id, ())) for row in rows]


# ---------------------------------------------------------------------------
# Writing users
# ---------------------------------------------------------------------------

def _user_columns(resource):
    user_name = resource['userName']
    return {
        'user_name': user_name,
        'user_name_key': user_name.lower(),
        'external_id': resource.get('externalId'),
        'display_name': resource.get('displayName'),
        'active': resource.get('active', True),
        'resource': json.dumps(resource, separators=(',', ':'), ensure_ascii=False),
    }


def create_user(resource):
    stamp = now()
    user_id = new_id()
    try:
        with database.atomic():
            User.insert(id=user_id, version=1, created=stamp, last_modified=stamp,
                        **_user_columns(resource)).execute()
    except IntegrityError:
        raise Conflict(f'userName {resource["userName"]!r} is already taken') from None
    return get_user(user_id)


def update_user(user_id, change, expected_version=None):
    """Apply `change(record) -> new resource` and store it, optimistically.

    If another writer stored a new version between our read and our write, read
    again and re-apply, so concurrent PATCHes never lose each other's changes."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        record = get_user(user_id)
        if expected_version is not None and record['version'] != expected_version:
            raise VersionMismatch(record['version'])
        resource = change(record)
        try:
            with database.atomic():
                updated = (User.update(version=User.version + 1, last_modified=now(),
                                       **_user_columns(resource))
                           .where((User.id == user_id) & (User.version == record['version']))
                           .execute())
        except IntegrityError:
            raise Conflict(f'userName {resource["userName"]!r} is already taken') from None
        if updated:
            return get_user(user_id)
    raise OperationalError('too many concurrent writers on one user')


def delete_user(user_id, expected_version=None):
    with database.atomic():
        _check_version(User, user_id, expected_version)
        if not User.delete().where(User.id == user_id).execute():
            raise NotFound(user_id)


def _check_version(model, resource_id, expected_version):
    if expected_version is None:
        return
    row = model.select(model.version).where(model.id == resource_id).first()
    if row is None:
        raise NotFound(resource_id)
    if row.version != expected_version:
        raise VersionMismatch(row.version)


# ---------------------------------------------------------------------------
# Writing groups and membership
# ---------------------------------------------------------------------------

def _group_columns(resource):
    display_name = resource['displayName']
    return {
        'display_name': display_name,
        'display_name_key': display_name.lower(),
        'external_id': resource.get('externalId'),
        'resource': json.dumps(resource, separators=(',', ':'), ensure_ascii=False),
    }


def _require_users(user_ids):
    """Raise UnknownMembers unless every id names a stored user (one query)."""
    wanted = set(user_ids)
    if not wanted:
        return
    found = {row[0] for row in User.select(User.id).where(User.id.in_(list(wanted))).tuples()}
    if wanted - found:
        raise UnknownMembers(wanted - found)


def _add_members(group_id, user_ids):
    _require_users(user_ids)
    rows = [{'group': group_id, 'user': user_id} for user_id in dict.fromkeys(user_ids)]
    if rows:
        Link.insert_many(rows).on_conflict_ignore().execute()


def _remove_members(group_id, user_ids=None):
    """Remove the named members, or all of them when `user_ids` is None."""
    query = Link.delete().where(Link.group == group_id)
    if user_ids is not None:
        if not user_ids:
            return
        query = query.where(Link.user.in_(list(user_ids)))
    query.execute()


def create_group(resource, member_ids=()):
    stamp = now()
    group_id = new_id()
    with database.atomic():
        Group.insert(id=group_id, version=1, created=stamp, last_modified=stamp,
                     **_group_columns(resource)).execute()
        _add_members(group_id, member_ids)
    return get_group(group_id)


def update_group(group_id, change, expected_version=None, with_members=True):
    """Apply `change(record) -> (new resource, membership operations)` in one transaction.

    Membership operations are ('add', ids), ('remove', ids), ('remove', None) for
    all, applied in order to the link rows only: a group's other members are
    neither read nor rewritten. The record passed to `change` has no members."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        record = get_group(group_id, with_members=False)
        if expected_version is not None and record['version'] != expected_version:
            raise VersionMismatch(record['version'])
        resource, operations = change(record)
        with database.atomic():
            updated = (Group.update(version=Group.version + 1, last_modified=now(),
                                    **_group_columns(resource))
                       .where((Group.id == group_id) & (Group.version == record['version']))
                       .execute())
            if not updated:
                continue
            for verb, user_ids in operations:
                if verb == 'add':
                    _add_members(group_id, user_ids)
                else:
                    _remove_members(group_id, user_ids)
        return get_group(group_id, with_members=with_members)
    raise OperationalError('too many concurrent writers on one group')


def delete_group(group_id, expected_version=None):
    with database.atomic():
        _check_version(Group, group_id, expected_version)
        if not Group.delete().where(Group.id == group_id).execute():
            raise NotFound(group_id)

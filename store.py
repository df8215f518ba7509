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
    IntegerField, IntegrityError, Model, NodeList, OperationalError, SqliteDatabase,
    TextField, fn)

import scimfilter as F

SCHEMA_FILE = Path(__file__).with_name('schema.sql')
# Time-stamps are stored as fixed-width UTC text, so they sort as they compare.
TIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'

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
    # SQLite's LOWER() folds ASCII only; SCIM's caseExact=false means every letter.
    db.register_function(_lower, 'scim_lower', 1, deterministic=True)
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


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def lower(expression):
    """Lower-case in SQL as Python's str.lower does (the keys are lower-cased in Python)."""
    return fn.scim_lower(expression)


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
    # No index of its own on group_id: the primary key (group_id, user_id) starts with it.
    group = ForeignKeyField(Group, column_name='group_id', on_delete='CASCADE', index=False)
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
        field = self.key_field if self.key_field is not None else lower(self.field)
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


def _attr_key(path):
    return f'{path.attr}.{path.sub}'.lower() if path.sub else path.attr.lower()


def _json_path(*keys):
    """A JSON path for SQLite's json functions; names come from the filter grammar,
    which allows no quotes in them, and the path is a bound parameter anyway."""
    return '$' + ''.join(f'."{key}"' for key in keys)


ITEM = SQL('scim_item.value')   # one element of a multi-valued attribute, inside EXISTS


class _FilterTranslator:
    """A filter AST -> one Peewee expression for one resource type.

    Attribute names arrive spelled as the schema spells them (the server does that),
    which is how the stored JSON spells them.

    Indexed columns where they exist; the resource JSON otherwise (strings there
    compare case-insensitively, as almost every SCIM attribute is caseExact=false);
    EXISTS over the JSON array for multi-valued attributes, and over `link` for
    membership."""

    def __init__(self, model, columns, membership, multi_valued):
        self.model = model
        self.columns = columns
        self.membership = membership      # (attribute, link column of the other side, own id)
        self.multi_valued = multi_valued  # names of multi-valued attributes, as the schema spells them

    def translate(self, expr):
        if isinstance(expr, F.And):
            return self.translate(expr.left) & self.translate(expr.right)
        if isinstance(expr, F.Or):
            return self.translate(expr.left) | self.translate(expr.right)
        if isinstance(expr, F.Not):
            return ~self.translate(expr.expr)
        if isinstance(expr, F.ValuePath):
            return self.value_path(expr)
        op, value = _op_and_value(expr)
        path = expr.path
        core = not path.urn
        key = _attr_key(path)
        if core and path.attr == self.membership[0]:
            return self.membership_exists(path.sub or 'value', op, value, str(path))
        if core and key in self.columns:
            return self.columns[key].expression(op, value, str(path))
        if core and path.attr == 'meta':
            raise UnsupportedFilter(f'{path} cannot be searched: only meta.created and meta.lastModified')
        if core and path.attr in self.multi_valued and op == 'pr' and not path.sub:
            return fn.COALESCE(fn.json_array_length(self.model.resource, _json_path(path.attr)), 0) > 0
        if core and path.attr in self.multi_valued:
            # `emails.value eq "x"` / `emails eq "x"`: some email's value is x.
            return self.any_item(path.attr, _json_compare(
                fn.json_extract(ITEM, _json_path(path.sub or 'value')), op, value))
        keys = ([] if core else [path.urn]) + [path.attr] + ([path.sub] if path.sub else [])
        return _json_compare(fn.json_extract(self.model.resource, _json_path(*keys)), op, value)

    def value_path(self, expr):
        path = expr.path
        if path.urn:
            raise UnsupportedFilter(f'{path} is not multi-valued: it takes no [filter]')
        if path.attr == self.membership[0]:
            inner = expr.filter
            if isinstance(inner, (F.Compare, F.Present)):
                return self.membership_exists(inner.path.attr, *_op_and_value(inner), f'{path}[...]')
            raise UnsupportedFilter(f'inside {self.membership[0]}[...] give one comparison')
        if path.attr not in self.multi_valued:
            raise UnsupportedFilter(f'{path} is not multi-valued: it takes no [filter]')
        return self.any_item(path.attr, self.item_filter(expr.filter))

    def item_filter(self, expr):
        """A filter inside `attr[...]`: its names are sub-attributes of one element."""
        if isinstance(expr, F.And):
            return self.item_filter(expr.left) & self.item_filter(expr.right)
        if isinstance(expr, F.Or):
            return self.item_filter(expr.left) | self.item_filter(expr.right)
        if isinstance(expr, F.Not):
            return ~self.item_filter(expr.expr)
        if isinstance(expr, F.ValuePath) or expr.path.urn or expr.path.sub:
            raise UnsupportedFilter('inside [...] name sub-attributes only, e.g. emails[type eq "work"]')
        op, value = _op_and_value(expr)
        return _json_compare(fn.json_extract(ITEM, _json_path(expr.path.attr)), op, value)

    def any_item(self, attr, condition):
        """EXISTS an element of the JSON array `attr` for which `condition` holds."""
        return NodeList((
            SQL('EXISTS (SELECT 1 FROM json_each('), self.model.resource, SQL(','),
            _json_path(attr), SQL(') AS scim_item WHERE'), condition, SQL(')')))

    def membership_exists(self, sub, op, value, name):
        """`members eq "<user id>"` / `members.display co "ann"` on groups, and
        `groups eq "<group id>"` / `groups.display eq "Sales"` on users, through `link`."""
        _, other_side, own_id = self.membership
        own_side = Link.group if other_side is Link.user else Link.user
        links = Link.select(SQL('1')).where(own_side == own_id)
        if op == 'pr' and sub in ('value', 'display'):
            return fn.EXISTS(links)
        if sub == 'value':
            if op not in ('eq', 'ne') or not isinstance(value, str):
                raise UnsupportedFilter(f'{name} is compared with eq or ne and an id')
            matched = fn.EXISTS(links.where(other_side == value))
            return matched if op == 'eq' else ~matched
        if sub != 'display':
            raise UnsupportedFilter(f'filtering on {name} is not supported')
        # display is the other side's name: a member's userName, a group's displayName.
        other = other_side.rel_model
        column = USER_COLUMNS['username'] if other is User else GROUP_COLUMNS['displayname']
        if op == 'ne':
            return ~fn.EXISTS(links.join(other).where(column.expression('eq', value, name)))
        return fn.EXISTS(links.join(other).where(column.expression(op, value, name)))


def _op_and_value(expr):
    if isinstance(expr, F.Present):
        return 'pr', None
    return expr.op, expr.value


def _json_compare(value_sql, op, value):
    """Compare a value read from JSON. Strings ignore case; booleans are 1/0 in SQLite."""
    if op == 'pr':
        return value_sql.is_null(False) & (value_sql.not_in(['', '[]', '{}']))
    if value is None:
        if op not in ('eq', 'ne'):
            raise UnsupportedFilter('null is compared with eq or ne only')
        return value_sql.is_null(op == 'eq')
    if isinstance(value, bool):
        if op not in ('eq', 'ne'):
            raise UnsupportedFilter('true/false are compared with eq or ne only')
        return _compare(value_sql, op, value)
    if isinstance(value, str):
        return _compare(lower(value_sql), op, value.lower())
    if op in ('co', 'sw', 'ew'):
        raise UnsupportedFilter(f'{op} compares strings, not numbers')
    return _compare(value_sql, op, value)


def filter_expression(expr, columns, membership, multi_valued=frozenset()):
    """Translate a filter AST into one Peewee expression with bound parameters."""
    return _FilterTranslator(membership[2].model, columns, membership, multi_valued).translate(expr)


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
    with database.atomic():   # one snapshot: totalResults agrees with the page
        total = query.count()
        if count == 0 or total < start_index:
            return total, []
        rows = list(query.order_by(model.created, model.id).offset(start_index - 1).limit(count))
    return total, rows


def list_users(filter_ast, start_index, count, multi_valued=frozenset()):
    where = filter_expression(filter_ast, USER_COLUMNS, USER_MEMBERSHIP, multi_valued) if filter_ast else None
    total, rows = _page(User, where, start_index, count)
    groups = _groups_of([row.id for row in rows])
    return total, [_record(row, groups[row.id]) for row in rows]


def list_groups(filter_ast, start_index, count, with_members=True, multi_valued=frozenset()):
    where = filter_expression(filter_ast, GROUP_COLUMNS, GROUP_MEMBERSHIP, multi_valued) if filter_ast else None
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


def writing():
    """A transaction that takes the write lock before its first read.

    SQLite then serialises read-modify-write cycles (a deferred transaction that
    reads first cannot upgrade once another writer has committed), so concurrent
    PATCHes neither lose each other's changes nor fail."""
    if isinstance(database.obj, SqliteDatabase):
        return database.atomic('IMMEDIATE')
    return database.atomic()


def _checked(record, expected_versions):
    """`expected_versions`: None (any), or the versions If-Match accepts."""
    if expected_versions is not None and record['version'] not in expected_versions:
        raise VersionMismatch(record['version'])


def update_user(user_id, change, expected_versions=None):
    """Store `change(record) -> new resource` in one transaction; unchanged is not a write."""
    with writing():
        record = get_user(user_id)
        _checked(record, expected_versions)
        resource = change(record)
        if resource == record['resource']:
            return record
        try:
            User.update(version=User.version + 1, last_modified=now(), **_user_columns(resource)) \
                .where(User.id == user_id).execute()
        except IntegrityError:
            raise Conflict(f'userName {resource["userName"]!r} is already taken') from None
        return get_user(user_id)


def _delete(model, resource_id, expected_versions):
    """One DELETE; only if it deleted nothing, find out why."""
    condition = model.id == resource_id
    if expected_versions is not None:
        condition &= model.version.in_(list(expected_versions))
    with database.atomic():
        if model.delete().where(condition).execute():
            return
    row = model.select(model.version).where(model.id == resource_id).first()
    if row is None:
        raise NotFound(resource_id)
    raise VersionMismatch(row.version)


def delete_user(user_id, expected_versions=None):
    _delete(User, user_id, expected_versions)


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


def update_group(group_id, change, expected_versions=None, with_members=True):
    """Store `change(record) -> (new resource, membership operations)` in one transaction.

    Membership operations are ('add', ids), ('remove', ids), ('remove', None) for
    all, applied in order to the link rows only: a group's other members are
    neither read nor rewritten. The record passed to `change` has no members."""
    with writing():
        record = get_group(group_id, with_members=False)
        _checked(record, expected_versions)
        resource, operations = change(record)
        if resource == record['resource'] and not operations:
            return get_group(group_id, with_members=with_members)
        Group.update(version=Group.version + 1, last_modified=now(), **_group_columns(resource)) \
            .where(Group.id == group_id).execute()
        for verb, user_ids in operations:
            if verb == 'add':
                _add_members(group_id, user_ids)
            else:
                _remove_members(group_id, user_ids)
        return get_group(group_id, with_members=with_members)


def delete_group(group_id, expected_versions=None):
    _delete(Group, group_id, expected_versions)

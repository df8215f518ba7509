"""scimlite's storage: the Peewee models for users, groups and their links.

One database per process, chosen by URL (`sqlite:///scim.db` by default); the
tables come from `schema.sql`, applied idempotently when the database opens.

Each resource is kept twice on purpose: the attributes that are searched or
constrained are columns with indexes (userName's lower-cased key is UNIQUE, and
so is a group's displayName's, so the database, not a check-then-insert, decides
a race), and the whole resource is JSON text so anything an IdP sends
round-trips. Membership lives only in the `link` table; a user's `groups` and a
group's `members` are read from it.

Knows nothing about HTTP: it raises its own small exceptions, which the server
turns into SCIM errors. Every write is one transaction.
"""

import bisect
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import operator
import os
import pkgutil
import re
import secrets
import sys
import threading
import time
import types
import uuid
import weakref
from pathlib import Path
from urllib.parse import urlparse

from peewee import (
    SQL, BooleanField, Case, Cast, CharField, CompositeKey, DatabaseProxy, FloatField, ForeignKeyField,
    JOIN, DatabaseError, Field, IntegerField, IntegrityError, InterfaceError, Model, NodeList, OperationalError,
    Select, SqliteDatabase, TextField, Value, fn)
import peewee
from playhouse.pool import PooledDatabase, PooledPostgresqlDatabase

import scimfilter as F
from scimschema import utc_time

# Time-stamps are stored as fixed-width UTC text, so they sort as they compare.
TIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'

database = DatabaseProxy()
log = logging.getLogger('scimlite')


# ---------------------------------------------------------------------------
# Errors the server maps to SCIM errors
# ---------------------------------------------------------------------------

class StoreError(Exception):
    """Base of what the store reports to its caller."""


class CannotOpen(StoreError):
    """The database cannot be used: a malformed URL, a driver or server missing, a
    file that cannot be opened, or a schema newer than this scimlite knows."""


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


class Busy(StoreError):
    """Other writers kept changing the resource between our read and our write."""


class UnsupportedFilter(StoreError):
    """The filter names an attribute or an operator this store cannot search."""


class NoTarget(StoreError):
    """A PATCH's filter matched nothing to replace."""


class TooLong(StoreError):
    """A value of an indexed column is longer than an index entry may be."""


class StorageFull(StoreError):
    """The disk (or the database server's) is full: nothing was written. Freeing
    space is enough; the server goes on without a restart."""


class StorageFailed(StoreError):
    """The storage refused: an I/O error, a read-only file or file system, or a
    database file deleted or replaced while open. Nothing was written."""


# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------

BUSY_TIMEOUT_MS = 10000   # how long start-up waits for another process opening the same SQLite file
# The seconds a request may wait, counted across the store's retries, for locks
# another process or session holds, before it gives up (Busy, or the database's own
# "locked" / lock_timeout error: a 503 with Retry-After). Our own writes take
# milliseconds; a lock held longer is someone else's long transaction.
LOCK_WAIT = 5.0
# PostgreSQL's statement_timeout, seconds: far above the slowest legitimate query
# (a value-path search through 100,000 users, README, Reliability), and a cap on
# any other wait a statement meets.
STATEMENT_TIMEOUT = 60.0


def open_database(url, lock_wait=LOCK_WAIT, statement_timeout=STATEMENT_TIMEOUT):
    """Open the database named by `url`, apply the schema, return it.

    `sqlite:///path/to/file.db` (a connection per thread), or
    `postgresql://user:password@host:port/dbname` (pooled connections).
    `lock_wait`: the seconds a request may wait, in all, for locks others hold (see
    serving()); `statement_timeout`: PostgreSQL's, seconds. Raises CannotOpen with
    a one-line reason."""
    global _lock_wait
    _lock_wait = lock_wait
    name = backend(url)
    if name == 'postgresql':
        db = _postgresql(url, lock_wait, statement_timeout)
        _start_watchdog()
    elif name == 'sqlite':
        db = _sqlite(url, lock_wait)
    else:
        raise CannotOpen(f'unsupported database URL {masked(url)!r}: use sqlite:///path/to/file.db '
                         'or postgresql://user@host:5432/dbname')
    database.initialize(db)
    PAGE_ANCHORS.clear()   # another database's: its `changes` may be the same
    try:
        _apply_schema_when_unlocked()
        _write_once()
    except CannotOpen:
        close_database()
        raise
    except DatabaseError as error:   # unreachable, refused, no right to create tables, read-only, ...
        close_database()
        reason = storage_fault(error) or first_line(error)
        raise CannotOpen(f'cannot open database {masked(url)}: {reason}') from None
    return db


def backend(url):
    """'sqlite' or 'postgresql', the database a URL names; None for any other scheme."""
    scheme = urlparse(url).scheme
    return 'postgresql' if scheme in ('postgresql', 'postgres') else 'sqlite' if scheme == 'sqlite' else None


def masked(url):
    """The URL without its password (in the authority or as ?password=), to print."""
    parsed = urlparse(url)
    if parsed.password is not None:
        url = url.replace(f':{parsed.password}@', ':***@', 1)
    return re.sub(r'([?&]password=)[^&]*', r'\1***', url, flags=re.IGNORECASE)


WINDOWS = os.name == 'nt'


def sqlite_path(url):
    """The file a `sqlite:///` URL names, as SQLite opens it ('' if none): after the
    third slash, `sqlite:///scim.db` is relative to the working folder,
    `sqlite:////var/lib/scimlite/scim.db` absolute, `sqlite:///C:/data/scim.db` on a
    Windows drive. On Windows the four-slash form, `sqlite:////C:/data/scim.db`, names
    the same drive, not a "/C:/data" that Windows cannot open."""
    path = url[len('sqlite:///'):] if url.startswith('sqlite:///') else ''
    if WINDOWS and re.match(r'/[A-Za-z]:[/\\]', path):
        path = path[1:]
    return path


# SQLite copies its WAL back into the file (a checkpoint, with an fsync of each) once
# the WAL holds this many pages, not SQLite's 1,000. At 100,000 users a write's pages
# are scattered: a checkpoint copies nearly every page it wrote, and on a disk its
# fsyncs hold up every request meanwhile. Four times fewer checkpoints copy a page
# written twice in between once, and fsync a quarter as often: in-process, a PUT that
# changes the title and the searched values cost 16 µs less of its 310 (README,
# Performance). 4,000 pages (16 MiB at SQLite's 4 KiB) still fit one block of the WAL's
# index (4,096 frames), so finding a page in the WAL costs a read what it did.
# What a power cut may lose is the WAL's unsynced writes (README, Durability): up to
# this many pages, a few thousand writes, where Linux itself writes them out within
# about 30 seconds.
WAL_CHECKPOINT_PAGES = 4000


def _sqlite(url, lock_wait):
    path = sqlite_path(url)
    if not path or path == ':memory:':
        raise CannotOpen(
            f'{url!r} names no database file: use sqlite:///scim.db '
            '(relative) or sqlite:////absolute/path/scim.db')
    # The busy timeout first, and in the connection itself: turning WAL on takes a
    # lock too, which another process starting at the same moment may hold.
    # One connection per thread: one thread serves (and a few more only while requests
    # wait for a lock, store.watch_long_waits), so one warm connection serves nearly all.
    db = WatchedSqliteDatabase(path, timeout=lock_wait, pragmas={
        'busy_timeout': round(lock_wait * 1000),   # each write sets what is left of its request's
        'journal_mode': 'wal',      # readers never wait for the writer
        'synchronous': 'normal',    # WAL + NORMAL: a killed process loses nothing committed
        'foreign_keys': 1,
        # 16 MiB of pages per connection, not SQLite's 2 MiB: at 100,000 users the
        # (created, id) index that paging walks and the index COUNT(*) scans take 11 MiB,
        # and reading them back a page at a time dominated a deep page (README,
        # Performance). Memory is taken only as pages are read; one thread serves SQLite.
        'cache_size': -16 * 1024,
        'wal_autocheckpoint': WAL_CHECKPOINT_PAGES,
    })
    # SQLite's LOWER() folds ASCII only; SCIM's caseExact=false means every letter.
    db.register_function(_lower, 'scim_lower', 1, deterministic=True)
    return db


FILE_CHECK_SECONDS = 0.1
# A thread added while writes wait or answers stream (LOCK_WAITERS, STREAM_THREADS)
# has a connection of its own, whose page cache would grow to the 16 MiB the serving
# threads have: 20 of them took the server from 45 to 234 MB while five clients
# filled groups at once. They keep 2 MiB: they serve while others wait, briefly.
ADDED_THREAD_CACHE_KIB = 2 * 1024
_serving_threads = None   # waitress's threads beyond this many are added ones (serve_threads)


def serve_threads(count):
    """waitress serves with `count` threads; those it adds beyond are temporary."""
    global _serving_threads
    _serving_threads = count


def _is_added_thread():
    name = threading.current_thread().name
    return (_serving_threads is not None and name.startswith('waitress-') and name[9:].isdigit()
            and int(name[9:]) >= _serving_threads)


class WatchedSqliteDatabase(SqliteDatabase):
    """A SQLite file that notices being deleted or replaced while it is open.

    A file deleted (or renamed over) under an open connection still takes every
    write, and nobody sees them again: the next start finds another file, or none.
    So the first connection notes which files the path and its -wal name (device
    and inode; the -wal once it exists), and a write first checks, two stat()
    calls, that they still name the same files, if FILE_CHECK_SECONDS have passed
    since the last check (at every write, they took 6 to 12 µs of a create's
    260). If they do not, the write is refused, and every later
    one until a restart: StorageFailed, a 503. Reads go on from the open file.
    The writes acknowledged in the 0.1 s after the file vanished are lost with
    the file, as are the ones acknowledged just before it did.

    SQLite deletes the -wal when the last connection to the file closes: that
    happens here only at start-up (a retry of the schema) and shutdown, so a
    close forgets the files, and the next connection notes them again."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.files = None   # [(path, (device, inode) or None)]
        self.vanished = None
        self.checked = 0.0   # time.monotonic() of the last check

    def _connect(self):
        connection = super()._connect()
        self._note_files()
        if _is_added_thread():
            connection.execute(f'PRAGMA cache_size = {-ADDED_THREAD_CACHE_KIB}')
        return connection

    def _note_files(self):
        if self.files is None:
            self.files = [(path, _file_identity(path)) for path in (self.database, self.database + '-wal')]

    def _close(self, conn):
        _busy_timeouts.pop(id(conn), None)
        self.files = None
        return super()._close(conn)

    def check_files(self):
        """Raise StorageFailed if the database file or its -wal is no longer the one
        opened, as found by the last check, made if FILE_CHECK_SECONDS have passed."""
        now = time.monotonic()
        if self.vanished is None and now - self.checked >= FILE_CHECK_SECONDS:
            self._note_files()   # if a close() forgot them
            known = True   # both files' identities: until then, every write looks
            for number, (path, identity) in enumerate(self.files):
                found = _file_identity(path)
                if identity is None:   # made since (a new file, or the -wal: by the first write since a close)
                    self.files[number] = (path, found)
                    known = known and found is not None
                elif found != identity:
                    self.vanished = (f'{path} was deleted or replaced while scimlite had it open: writes are '
                                     'refused until scimlite is restarted, so that none is lost')
                    log.error('THE DATABASE FILE %s', self.vanished)
            if known:
                self.checked = now
        if self.vanished is not None:
            raise StorageFailed(self.vanished)


def _file_identity(path):
    try:
        found = os.stat(path)
    except OSError:   # not there, or no longer reachable (its folder gone, or made a file)
        return None
    return found.st_dev, found.st_ino


def _postgresql(url, lock_wait, statement_timeout):
    try:
        from psycopg2.extensions import parse_dsn
        import psycopg2
    except ImportError:
        # Not pure Python, so scimlite.pyz cannot hold it: it comes from the Python that runs scimlite.
        raise CannotOpen('PostgreSQL needs the psycopg2 driver, which this Python does not have: '
                         f'{Path(sys.executable).name} -m pip install psycopg2-binary') from None
    try:
        params = parse_dsn(url)
    except psycopg2.Error:
        raise CannotOpen(f'malformed database URL {masked(url)!r}: '
                         'use postgresql://user:password@host:5432/dbname') from None
    name = params.pop('dbname', None)
    if not name:
        raise CannotOpen(f'{masked(url)!r} names no database: use postgresql://user@host:5432/dbname')
    params.setdefault('connect_timeout', '10')
    # Set as the connection starts, no round trip of their own: a row lock another
    # session holds, or a statement gone wrong, cannot hold a thread for ever.
    params['options'] = ' '.join(filter(None, (
        params.get('options'), f'-c lock_timeout={round(lock_wait * 1000)}',
        f'-c statement_timeout={round(statement_timeout * 1000)}')))
    # Each request takes a connection from the pool and gives it back when it ends
    # (release_connection); one that broke is not given out again. No cap of our
    # own: a thread holds one connection at a time, so the WSGI server's threads
    # are the cap, whichever server runs the app.
    return _PostgresqlPool(name, max_connections=None, stale_timeout=300, **params)


class _PostgresqlPool(PooledPostgresqlDatabase):
    """Peewee's pool, but a connection taken from it is judged by what the driver
    knows of it (closed, or its state lost), not by a `SELECT 1` sent each time:
    that round trip cost every request 130 µs, a quarter of a GET by id. A
    connection the database cut meanwhile fails the one request that takes it (a
    503 with Retry-After, which IdPs retry) and is not given out again."""

    def _is_closed(self, conn):
        return bool(conn.closed) or self._adapter.txn_status(conn) == self._adapter.txn_unknown


SCHEMA_VERSION = 13
# What each schema version changes in the one before it, run in order on a
# database an older scimlite created, before schema.sql adds what is missing.
# 1: users, groups and link, and no version table. 2: the version table.
# 3: request_log, the dashboard's exchanges, and scimlite_secret (new tables:
#    schema.sql makes them).
# 4: group names are unique, ignoring case: groups.display_name_unique, the key of
#    the name a group holds, under a UNIQUE index (schema.sql makes it, after this).
#    Of the groups an older scimlite let share a name, the oldest (by created, id)
#    holds it; the others keep it too, "grandfathered", with NULL here (NULLs never
#    collide), so nothing is lost or renamed and the index can be made at once.
# 5: users.active may be NULL: a user's `active` removed by a PATCH is unassigned
#    (RFC 7644 §3.5.2.2), answered as absent, not as true (_active_may_be_unassigned).
# 6: workshop seats: users, groups and request_log rows carry the seat whose data
#    they are (0, the server's own, for every row there was), and the unique and
#    paging indexes start with it (schema.sql makes the new ones, after this); the
#    seat and sample_data tables are new.
# 7: search and sort indexes: users' sort key columns, and the user_search side
#    table with its trigram index (SEARCH_SCHEMA), built from every user there is,
#    with its progress on the console (_build_search_index).
# 8: resource_count, each seat's users and groups counted by triggers; the new table
#    comes from schema.sql, its rows from _keep_counts, which makes the triggers.
# 9: on SQLite, users' new and changed values wait for the trigram index, which
#    takes a thousand at a time (UNINDEXED_AT_MOST, _trigram_writes_wait).
# 10: on SQLite, an indexed user's changed values stay in its row, the index's
#    stale ones listed apart, and the descending title index goes; a descending
#    sort's ties come newest first, and PostgreSQL's descending indexes are made
#    anew so (_changed_in_place).
# 11: the (id, seat) index on users goes (schema.sql says why).
# 12: users.search_row; on SQLite each user's user_search row is found by it, and
#    user_search loses its index of user_id (_search_rows_in_users).
# 13: users.search_display_name and search_emails; on SQLite the searched values
#    move there from user_search, which goes, and the trigram index is made anew
#    over users (_search_values_in_users).
MIGRATIONS = {
    2: [],
    3: [],
    4: [
        'ALTER TABLE "groups" ADD COLUMN display_name_unique TEXT',
        'UPDATE "groups" SET display_name_unique = display_name_key WHERE NOT EXISTS ('
        'SELECT 1 FROM "groups" AS older WHERE older.display_name_key = "groups".display_name_key '
        'AND (older.created < "groups".created OR (older.created = "groups".created AND older.id < "groups".id)))',
    ],
    5: [lambda: _active_may_be_unassigned()],
    6: [
        'ALTER TABLE users ADD COLUMN seat INTEGER NOT NULL DEFAULT 0',
        'ALTER TABLE "groups" ADD COLUMN seat INTEGER NOT NULL DEFAULT 0',
        lambda: _add_seat_column('request_log'),   # made by schema.sql after this, below version 3
        'DROP INDEX IF EXISTS users_user_name_key',
        'DROP INDEX IF EXISTS users_created_id',
        'DROP INDEX IF EXISTS groups_display_name_unique',
        'DROP INDEX IF EXISTS groups_created_id',
    ],
    7: [
        *(f'ALTER TABLE users ADD COLUMN {name} TEXT' for name in (
            'display_name_key', 'title_key', 'family_name_key', 'given_name_key', 'email_key')),
        'ALTER TABLE users ADD COLUMN sort_odd BOOLEAN NOT NULL DEFAULT FALSE',
        lambda: _build_search_index(),
    ],
    8: [],
    9: [lambda: _trigram_writes_wait()],
    10: [lambda: _changed_in_place()],
    11: ['DROP INDEX IF EXISTS users_id_seat'],
    12: [lambda: _search_rows_in_users()],
    13: [lambda: _search_values_in_users()],
}
# The NOT NULL in users.active's definition, however it is spelt: quoted or not, any
# type, before or after DEFAULT (a database browser rewrites the CREATE statement).
NOT_NULL_ACTIVE = re.compile(r'(?P<head>(?:^|[(,])\s*["`\[]?active["`\]]?\s[^,]*?)\s+NOT\s+NULL\b', re.IGNORECASE)


def _active_may_be_unassigned():
    """Drop users.active's NOT NULL. PostgreSQL alters the column. SQLite cannot, short
    of copying the table (and its foreign keys would cascade the copy's DROP into the
    link rows): its documented way to remove a NOT NULL constraint, which changes no
    stored row, is to edit the table's CREATE statement in sqlite_schema and bump
    schema_version, in this transaction (https://sqlite.org/lang_altertable.html,
    "Making Other Kinds Of Table Schema Changes")."""
    if not is_sqlite():
        database.execute_sql('ALTER TABLE users ALTER COLUMN active DROP NOT NULL')
        return
    if not _active_not_null():
        return
    sql = database.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'").fetchone()[0]
    relaxed = NOT_NULL_ACTIVE.sub(r'\g<head>', sql, count=1)
    if relaxed == sql:
        raise CannotOpen('cannot make users.active nullable (schema version 5): its definition in the users '
                         'table is not one scimlite can read; nothing was changed')
    version = database.execute_sql('PRAGMA schema_version').fetchone()[0]
    database.execute_sql('PRAGMA writable_schema = ON')
    try:
        database.execute_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'users'", (relaxed,))
        database.execute_sql(f'PRAGMA schema_version = {int(version) + 1}')
    finally:
        database.execute_sql('PRAGMA writable_schema = OFF')
    if _active_not_null():   # read back: the upgrade is stamped only if it took
        raise CannotOpen('cannot make users.active nullable (schema version 5); nothing was changed')


def _add_seat_column(table):
    if table in database.get_tables():
        database.execute_sql(f'ALTER TABLE {table} ADD COLUMN seat INTEGER NOT NULL DEFAULT 0')


def _active_not_null():
    # Whether SQLite's users.active is NOT NULL (PRAGMA table_info's notnull).
    return any(row[1].lower() == 'active' and row[3]
               for row in database.execute_sql('PRAGMA table_info(users)').fetchall())
SCHEMA_LOCK = 0x5c1a11e   # PostgreSQL advisory lock: one process upgrades at a time


def apply_schema():
    """Create the tables, or bring a database an older scimlite made up to date.

    Idempotent, and one process at a time (SQLite's write lock, a PostgreSQL
    advisory lock), so several servers may start at once on one database. Start-up
    waits as long as it takes for the process upgrading before it: not bound by
    the requests' LOCK_WAIT or PostgreSQL's statement_timeout."""
    with lock_deadline(BUSY_TIMEOUT_MS / 1000 if is_sqlite() else math.inf), writing():
        if not is_sqlite():
            database.execute_sql('SET LOCAL lock_timeout = 0')
            database.execute_sql('SET LOCAL statement_timeout = 0')
            database.execute_sql('SELECT pg_advisory_xact_lock(%s)', (SCHEMA_LOCK,))
        tables = set(database.get_tables())
        if 'scimlite_schema' in tables:   # which came with version 2
            found = database.execute_sql('SELECT MAX(version) FROM scimlite_schema').fetchone()[0] or 2
        else:
            found = 1 if 'users' in tables else SCHEMA_VERSION
        if found > SCHEMA_VERSION:
            raise CannotOpen(f'the database was made by a newer scimlite (schema version {found}, '
                             f'this one knows {SCHEMA_VERSION}): upgrade scimlite')
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                statement() if callable(statement) else database.execute_sql(statement)
        for statement in _schema_statements():
            database.execute_sql(statement)
        _make_search_schema()
        _keep_counts()
        if found < SCHEMA_VERSION or 'scimlite_schema' not in tables:
            database.execute_sql('DELETE FROM scimlite_schema')
            database.execute_sql(f'INSERT INTO scimlite_schema (version) VALUES ({database.param})',
                                 (SCHEMA_VERSION,))


# resource_count kept in the transaction of every insert and delete of a user or a
# group, whatever makes it (a request, a seat's reset, the sample data, a tool).
# Triggers, not code in each write: there is no write they can miss.
COUNT_TRIGGERS = {
    'sqlite': [f"""CREATE TRIGGER IF NOT EXISTS {table}_counted_{when} AFTER {when.upper()} ON "{table}"
        BEGIN {change} END""" for table in ('users', 'groups') for when, change in (
        ('insert', f"""INSERT INTO resource_count (seat, kind, total, changes) VALUES (NEW.seat, '{table}', 1, 1)
            ON CONFLICT (seat, kind) DO UPDATE SET total = total + 1, changes = changes + 1;"""),
        ('delete', f"""UPDATE resource_count SET total = total - 1, changes = changes + 1
            WHERE seat = OLD.seat AND kind = '{table}';"""))],
    # PostgreSQL: at commit (deferred), each time both of the seat's rows locked in
    # one order first. Two transactions that each add a user and a group (bulk
    # requests do) would otherwise each hold one row and wait for the other's; and
    # the rows are held only for the moment of the commit, not the whole transaction.
    'postgresql': ["""CREATE OR REPLACE FUNCTION scimlite_count() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            whose integer := CASE WHEN TG_OP = 'INSERT' THEN NEW.seat ELSE OLD.seat END;
        BEGIN
            PERFORM 1 FROM resource_count WHERE seat = whose ORDER BY kind FOR UPDATE;
            INSERT INTO resource_count (seat, kind, total, changes)
            VALUES (whose, TG_TABLE_NAME, CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END, 1)
            ON CONFLICT (seat, kind) DO UPDATE
            SET total = resource_count.total + EXCLUDED.total, changes = resource_count.changes + 1;
            RETURN NULL;
        END $$"""] + [f"""CREATE CONSTRAINT TRIGGER {table}_counted AFTER INSERT OR DELETE ON "{table}"
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION scimlite_count()"""
                   for table in ('users', 'groups')],
}
COUNT_TRIGGER_NAMES = {'sqlite': {'users_counted_insert', 'users_counted_delete', 'groups_counted_insert',
                                  'groups_counted_delete'},
                       'postgresql': {'users_counted', 'groups_counted'}}


def _keep_counts():
    """Make COUNT_TRIGGERS where any is missing (a new database, an upgrade from
    version 6), and count what is there now, in apply_schema's transaction: no
    write comes between the count and the triggers."""
    kind = 'sqlite' if is_sqlite() else 'postgresql'
    if is_sqlite():
        found = {row[0] for row in database.execute_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    else:
        found = {row[0] for row in database.execute_sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid IN ('users'::regclass, 'groups'::regclass)")}
    if COUNT_TRIGGER_NAMES[kind] <= found:
        return
    for name in COUNT_TRIGGER_NAMES[kind] & found:
        table = 'users' if name.startswith('users') else 'groups'
        database.execute_sql(f'DROP TRIGGER {name}' if is_sqlite() else f'DROP TRIGGER {name} ON "{table}"')
    for statement in COUNT_TRIGGERS[kind]:
        database.execute_sql(statement)
    database.execute_sql('DELETE FROM resource_count')
    for table in ('users', 'groups'):
        database.execute_sql(f"""INSERT INTO resource_count (seat, kind, total, changes)
            SELECT seat, '{table}', COUNT(*), 0 FROM "{table}" GROUP BY seat""")
    _count_rows_for_every_seat()


def _count_rows_for_every_seat():
    """Both count rows of seat 0 and of every seat, made where missing: the trigger
    locks a seat's existing rows in one order, and a row it had to make first would
    be locked out of that order."""
    database.execute_sql("""INSERT INTO resource_count (seat, kind, total, changes)
        SELECT seats.number, kinds.kind, 0, 0
        FROM (SELECT 0 AS number UNION SELECT number FROM seat) AS seats
        CROSS JOIN (SELECT 'groups' AS kind UNION SELECT 'users') AS kinds
        WHERE TRUE ON CONFLICT (seat, kind) DO NOTHING""")


# ---------------------------------------------------------------------------
# Search and sort indexes (schema version 7)
# ---------------------------------------------------------------------------
# `userName co "ann"` and its kin, on userName, displayName and emails' values, are
# narrowed by a trigram index to the few users that can match, and the exact test
# (_compare) runs on those only: the index never decides a match alone. It indexes
# each user's values lower-cased (the stored JSON stays as it is): on SQLite, with
# FTS5's trigram tokenizer (SQLite 3.34 or newer), columns of the user's own row
# (schema version 13: user_name_key, search_display_name, search_emails), which the
# FTS5 table follows (UNINDEXED_AT_MOST); on PostgreSQL, with pg_trgm, a side table,
# user_search (SEARCH_INSERT, SEARCH_UPDATE; ON DELETE CASCADE). Where neither
# index is there, the values are kept all the same and filters scan as before.
# Until version 13 SQLite had a side table too (SEARCH_TABLE_SQLITE): a create
# wrote two rows in a transaction, and a change of the searched values two rows,
# one on a page of its own; in the user's row a create is one INSERT and such a
# change one UPDATE, with no transaction around it (README, Performance).
#
# sortBy on the attributes IdPs and the dashboard sort by walks an index of its
# own per direction: users' sort key columns, whose indexes start with the seat and
# with the "IS NULL" term the nulls-last ORDER BY starts with (_page_of_keys).

TRIGRAM_EXTENSION = 'pg_trgm'   # PostgreSQL's (tests name one that is not there)
# The trigram index in use: 'fts5', 'pg_trgm', or None (filters scan); set at open.
_trigram_index = None

SEARCHED_COLUMNS = ('user_name', 'display_name', 'emails')


# The sort keys with an index of their own: title, which the dashboard and
# conformance tools sort by (userName's unique index serves it on SQLite). Each
# index costs every create and every change of its value (all six sort keys
# indexed both ways cost a create 165 µs, 2.6 times its CPU before); the other sort
# keys are sorted from their column, without reading the JSON. PostgreSQL has an
# index per direction; SQLite one, ascending, which a descending page walks
# backward (_descending_page): a second index was 1.2 of the 14.6 pages a create
# wrote to the WAL, and 2.4 of the 6 of a PUT that changes the title.
INDEXED_SORTS = ('title_key',)
BOTH_DIRECTIONS = (('', ''), ('_desc', ' DESC'))


def _sort_indexes(collate, names=INDEXED_SORTS, directions=BOTH_DIRECTIONS):
    # Each expression as sort_expression spells it: PostgreSQL matches an index's
    # expressions to the ORDER BY's as written, COLLATE and all. Descending, the ties
    # are too (_page_keys): the order is the ascending one reversed, but for the nulls.
    return [f'CREATE INDEX IF NOT EXISTS users_sort_{name}{suffix} ON users '
            f'(seat, (({name}{collate}) IS NULL), {name}{collate}{direction}, created{direction}, id{direction})'
            for name in names for suffix, direction in directions]


# FTS5 writes a segment of its own at each commit, however few its rows: indexing a
# new user at once cost 80 µs of a create's 230 (before the index), and a PUT that
# changes a user's emails twice that. So on SQLite a user's new values wait, the
# user numbered (users.search_row) past user_text_upto.upto, until UNINDEXED_AT_MOST
# users have been numbered since; the write that reaches that many indexes them all
# in a transaction of its own, at about 10 µs a user (_index_waiting). A search reads the index
# and the waiting rows, an instr() over at most that many short strings, so the next
# search finds every write: PostgreSQL's GIN indexes keep their pending list the
# same way (fastupdate). An indexed user whose values change keeps its number, its
# values changed in place, and the values the index holds for it go to user_text_stale (the first
# change's: they are what the index holds until the next batch); a search reads the
# changed rows as it reads the waiting ones, and the index's stale entry only adds
# a candidate the exact test refuses. The batch drops the stale entries and indexes
# those users' values; a change writes the stale list's page beside the row's, where
# moving the row to a new number wrote four. A deleted indexed user leaves the index
# at once (a trigger), with the values the index holds: its stale ones, if it has
# any, are the batch's to drop. Users are numbered past `upto` and every user, never
# below: a number a deleted user had is one the index may still take to be indexed.
# scimlite never renumbers a user.
UNINDEXED_AT_MOST = 1000
# Where the index stands: the highest number it holds, and the values it holds of
# the users changed since (as they were when it took them).
WAITING_TABLES = [
    'CREATE TABLE IF NOT EXISTS user_text_upto (upto INTEGER NOT NULL)',
    'CREATE TABLE IF NOT EXISTS user_text_stale (row INTEGER PRIMARY KEY, user_name TEXT NOT NULL, '
    'display_name TEXT, emails TEXT)',
]
# Versions 9 to 12's triggers and upto, on user_search: the upgrades to them make
# them, and version 13 replaces them (_search_values_in_users).
SEARCH_TRIGGERS_V12 = [
    *WAITING_TABLES,
    'CREATE TRIGGER IF NOT EXISTS user_search_removed AFTER DELETE ON user_search '
    'WHEN old.row <= (SELECT upto FROM user_text_upto) '
    'AND NOT EXISTS (SELECT 1 FROM user_text_stale WHERE row = old.row) BEGIN '
    "INSERT INTO user_text (user_text, rowid, user_name, display_name, emails) "
    "VALUES ('delete', old.row, old.user_name, old.display_name, old.emails); END",
    'CREATE TRIGGER IF NOT EXISTS user_search_changed AFTER UPDATE ON user_search '
    'WHEN old.row <= (SELECT upto FROM user_text_upto) BEGIN '
    'INSERT OR IGNORE INTO user_text_stale (row, user_name, display_name, emails) '
    'VALUES (old.row, old.user_name, old.display_name, old.emails); END',
]
INDEXED_UPTO_V12 = ['DELETE FROM user_text_upto',
                    'INSERT INTO user_text_upto (upto) SELECT ifnull(max(row), 0) FROM user_search']
# Version 13: the searched values are users' columns, and a user's number in the
# index is its search_row.
TEXT_COLUMNS = 'user_name_key, search_display_name, search_emails'   # user_text's, as users names them
NEXT_ROW = 'SELECT max(upto, ifnull((SELECT max(search_row) FROM users), 0)) + 1 FROM user_text_upto'
FOLLOWING_TRIGGERS = [
    *WAITING_TABLES,
    'CREATE TRIGGER IF NOT EXISTS users_search_removed AFTER DELETE ON users '
    'WHEN old.search_row <= (SELECT upto FROM user_text_upto) '
    'AND NOT EXISTS (SELECT 1 FROM user_text_stale WHERE row = old.search_row) BEGIN '
    f"INSERT INTO user_text (user_text, rowid, {TEXT_COLUMNS}) "
    "VALUES ('delete', old.search_row, old.user_name_key, old.search_display_name, old.search_emails); END",
    # Fired only where a write sets one of them: it sets them only where they change (_user_update).
    'CREATE TRIGGER IF NOT EXISTS users_search_changed AFTER UPDATE OF user_name_key, search_display_name, '
    'search_emails ON users WHEN old.search_row <= (SELECT upto FROM user_text_upto) BEGIN '
    'INSERT OR IGNORE INTO user_text_stale (row, user_name, display_name, emails) '
    'VALUES (old.search_row, old.user_name_key, old.search_display_name, old.search_emails); END',
]
INDEXED_UPTO = ['DELETE FROM user_text_upto',
                'INSERT INTO user_text_upto (upto) SELECT ifnull(max(search_row), 0) FROM users']


def _in_sqlite_schema(name):
    """Whether SQLite's schema holds a table, index, trigger or view of this name."""
    return database.execute_sql('SELECT 1 FROM sqlite_master WHERE name = ?', (name,)).fetchone() is not None


def _trigram_writes_wait():
    """Schema version 9: a database whose trigram index took each user's values as they
    were written (every row of user_search is in it) now lets them wait."""
    if not is_sqlite() or not _in_sqlite_schema('user_text'):
        return
    if _in_sqlite_schema('user_text_upto'):
        return   # they wait already (a version 9 database, its version stamped down by a test)
    for name in ('added', 'removed', 'changed'):   # version 8's
        database.execute_sql(f'DROP TRIGGER IF EXISTS user_search_{name}')
    for statement in SEARCH_TRIGGERS_V12 + INDEXED_UPTO_V12:
        database.execute_sql(statement)


def _changed_in_place():
    """Schema version 10: an indexed user's changed values stay in its row, and the
    values the index holds go to user_text_stale; version 9 moved the row to a new
    number (its stale entries, under numbers no row has, are dropped alike). And a
    descending sort's ties come newest first: SQLite's descending title index goes
    (the ascending one is walked backward), PostgreSQL's are made anew with their
    ties descending (_make_search_schema, after this)."""
    database.execute_sql('DROP INDEX IF EXISTS users_sort_title_key_desc')
    if not is_sqlite():
        database.execute_sql('DROP INDEX IF EXISTS users_sort_user_name_key_desc')
        return
    if not _in_sqlite_schema('user_text') or not _in_sqlite_schema('user_search'):
        return   # no trigram index, or version 13's (a database whose version a test stamped down)
    for name in ('moved', 'changed', 'removed'):   # version 9's
        database.execute_sql(f'DROP TRIGGER IF EXISTS user_search_{name}')
    for statement in SEARCH_TRIGGERS_V12:
        database.execute_sql(statement)


def _update_users_in_batches(update, done_text):
    """Run `update` (an UPDATE of users, without its WHERE) over every user, BUILD_BATCH
    at a time in id order, the progress on the console after each batch: `scimlite:
    upgrading: 10,000 of 1,000,000 users` and `done_text`. The number of users."""
    total = database.execute_sql('SELECT COUNT(*) FROM users').fetchone()[0]
    done, last = 0, ''
    while True:
        ids = database.execute_sql('SELECT id FROM users WHERE id > ? ORDER BY id LIMIT ?',
                                   (last, BUILD_BATCH)).fetchall()
        if not ids:
            return total
        database.execute_sql(f'{update} WHERE id > ? AND id <= ?', (last, ids[-1][0]))
        done, last = done + len(ids), ids[-1][0]
        print(f'scimlite: upgrading: {done:,} of {total:,} users{done_text}', file=sys.stderr, flush=True)


def _search_rows_in_users():
    """Schema version 12: users.search_row, and on SQLite each user's number in it, in
    batches with the progress on the console; then user_search made anew without its
    UNIQUE user_id (its rows and numbers as they were: the trigram index holds those)."""
    if 'search_row' not in {column.name for column in database.get_columns('users')}:
        database.execute_sql('ALTER TABLE users ADD COLUMN search_row INTEGER')
    if not is_sqlite() or 'user_search' not in database.get_tables():
        return
    made = database.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'user_search'").fetchone()[0]
    unique = 'UNIQUE' in made.upper()   # else made by version 7's build, after this version's SEARCH_SCHEMA
    if not unique:   # the UNIQUE constraint's own index finds each user's row; else one for now
        database.execute_sql('CREATE INDEX IF NOT EXISTS user_search_upgrading ON user_search (user_id)')
    _update_users_in_batches('UPDATE users SET search_row = (SELECT row FROM user_search '
                             'WHERE user_search.user_id = users.id)', ' numbered')
    if not unique:
        database.execute_sql('DROP INDEX user_search_upgrading')
        return
    database.execute_sql(SEARCH_TABLE_SQLITE.format(name='user_search_v12'))
    database.execute_sql('INSERT INTO user_search_v12 (row, user_id, user_name, display_name, emails) '
                         'SELECT row, user_id, user_name, display_name, emails FROM user_search')
    database.execute_sql('DROP TABLE user_search')   # and its triggers, made again here
    database.execute_sql('ALTER TABLE user_search_v12 RENAME TO user_search')
    if _in_sqlite_schema('user_text'):
        for statement in SEARCH_TRIGGERS_V12:
            database.execute_sql(statement)


def _search_values_in_users():
    """Schema version 13: users.search_display_name and search_emails, and on SQLite
    each user's values moved there from user_search, in batches with the progress
    on the console; user_search goes, and the trigram index is made anew over users
    (_make_search_schema, after the upgrades: its content table is named when it is made)."""
    global _building
    present = {column.name for column in database.get_columns('users')}
    for name in ('search_display_name', 'search_emails'):
        if name not in present:
            database.execute_sql(f'ALTER TABLE users ADD COLUMN {name} TEXT')
    if not is_sqlite() or 'user_search' not in database.get_tables():
        return
    started = time.monotonic()
    total = _update_users_in_batches(
        'UPDATE users SET (search_display_name, search_emails) = (SELECT display_name, emails FROM user_search '
        'WHERE user_search.row = users.search_row)', "' searched values moved")
    database.execute_sql('DROP TRIGGER IF EXISTS users_search_row_removed')
    for table in ('user_text', 'user_text_stale', 'user_text_upto', 'user_search'):   # and their triggers
        database.execute_sql(f'DROP TABLE IF EXISTS {table}')
    if total:   # _make_search_schema makes the trigram index anew, and says so
        _building = started


def _index_waiting():
    """Index every user who waits, and the changed ones' new values in place of their
    stale entries, in the caller's transaction."""
    database.execute_sql(f"INSERT INTO user_text (user_text, rowid, {TEXT_COLUMNS}) "
                         "SELECT 'delete', row, user_name, display_name, emails FROM user_text_stale")
    database.execute_sql(f'INSERT INTO user_text (rowid, {TEXT_COLUMNS}) SELECT search_row, {TEXT_COLUMNS} '
                         'FROM users WHERE search_row IN (SELECT row FROM user_text_stale)')
    database.execute_sql('DELETE FROM user_text_stale')
    upto = database.execute_sql('SELECT upto FROM user_text_upto').fetchone()[0]
    database.execute_sql(f'INSERT INTO user_text (rowid, {TEXT_COLUMNS}) SELECT search_row, {TEXT_COLUMNS} '
                         'FROM users WHERE search_row > ?', (upto,))
    newest = database.execute_sql('SELECT max(?, ifnull(max(search_row), 0)) FROM users', (upto,)).fetchone()[0]
    database.execute_sql('UPDATE user_text_upto SET upto = ?', (newest,))


# SQLite's FTS5 table takes its values from users (content='users'), by the number
# each user keeps, search_row, not its rowid: VACUUM may renumber the rowids of a
# table without an INTEGER PRIMARY KEY, and would scramble the index. The index of
# search_row finds the users the FTS5 table names. Versions 7 to 12 kept the values
# in a side table, numbered by its INTEGER PRIMARY KEY (SEARCH_TABLE_SQLITE; the
# upgrade to version 7 still makes it), each user's row found by users.search_row
# and removed with it by a trigger (SEARCH_ROW_REMOVED: the tests make version 12's
# tables with it); version 13 empties it into users (_search_values_in_users).
SEARCH_TABLE_SQLITE = ('CREATE TABLE IF NOT EXISTS {name} (row INTEGER PRIMARY KEY, user_id VARCHAR(64) NOT NULL, '
                       'user_name TEXT NOT NULL, display_name TEXT, emails TEXT)')
SEARCH_ROW_REMOVED = ('CREATE TRIGGER IF NOT EXISTS users_search_row_removed AFTER DELETE ON users '
                      'BEGIN DELETE FROM user_search WHERE row = old.search_row; END')
SEARCH_SCHEMA = {
    'sqlite': {
        'side': 'CREATE INDEX IF NOT EXISTS users_search_row ON users (search_row)',
        'sort': _sort_indexes('', directions=BOTH_DIRECTIONS[:1]),
        'trigram': [
            f"CREATE VIRTUAL TABLE user_text USING fts5({TEXT_COLUMNS}, content='users', "
            "content_rowid='search_row', tokenize='trigram', columnsize=0)",
            *FOLLOWING_TRIGGERS,
            "INSERT INTO user_text (user_text) VALUES ('rebuild')",   # from what users hold
            *INDEXED_UPTO,
        ],
    },
    'postgresql': {
        'side': 'CREATE TABLE IF NOT EXISTS user_search ('
                'user_id VARCHAR(64) NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE, '
                'user_name TEXT NOT NULL, display_name TEXT, emails TEXT)',
        # As in_code_point_order sorts: userName too, whose COLLATE hides from _page_of_keys
        # that its key is NOT NULL (SQLite sorts it by users_seat_user_name_key).
        'sort': _sort_indexes(' COLLATE "C"', INDEXED_SORTS + ('user_name_key',)),
        'trigram': [f'CREATE INDEX IF NOT EXISTS user_search_{name}_trigram ON user_search '
                    f'USING gin ({name} gin_trgm_ops)' for name in SEARCHED_COLUMNS],
    },
}


def _make_search_schema():
    """The side table, the sort indexes and, where the database can, the trigram index
    (at every start, as schema.sql: what exists is left as it is)."""
    global _trigram_index, _building
    schema = SEARCH_SCHEMA['sqlite' if is_sqlite() else 'postgresql']
    database.execute_sql(schema['side'])
    for number, statement in enumerate(schema['sort'], 1):
        _progress(f'sort index {number} of {len(schema["sort"])}')
        database.execute_sql(statement)
    _trigram_index = None
    _progress('trigram index')
    if _make_trigram_index(schema['trigram']):
        _trigram_index = 'fts5' if is_sqlite() else 'pg_trgm'
    _progress('done')
    _building = None
    if is_sqlite():
        _describe_users_indexes()


# SQLite's planner, with no statistics (nobody runs ANALYZE), takes `seat = ?` to
# match ten rows of any index that starts with the seat: it then walks the paging
# index, in (created, id) order, through all of a seat's million users for `userName
# co "ann"`, rather than take the trigram index's thirty candidates and sort them.
# So the users table's indexes are described to it as they are: the seat picks out
# (nearly) every row, a sort key many, the rest one. Rewritten at each start for the
# indexes there are then, marked as ours ("scimlite", a word SQLite skips); a real
# ANALYZE's figures (no mark) are left as they are.
PLANNER_ROWS = 1000000
SORT_KEY_ROWS = 100


def _describe_users_indexes():
    rows = database.execute_sql("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
    if rows.fetchone() is None:
        database.execute_sql('ANALYZE sqlite_schema')   # makes sqlite_stat1, empty
    if database.execute_sql("SELECT 1 FROM sqlite_stat1 WHERE tbl = 'users' AND stat NOT LIKE '% scimlite'"
                            ).fetchone():
        return
    described = []
    for name, partial in database.execute_sql(
            "SELECT name, sql LIKE '% WHERE %' FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'"):
        rows = PLANNER_ROWS if not partial else 1   # a partial index: users_seat_sort_odd's few
        estimates = [rows]
        for _, _, column, _, _, key in database.execute_sql(f'PRAGMA index_xinfo("{name}")').fetchall():
            if not key:
                continue
            if column not in ('seat', None):   # None: an expression, (key IS NULL)
                rows = min(rows, SORT_KEY_ROWS if column.endswith('_key') and column != 'user_name_key' else 1)
            estimates.append(rows)
        described.append(('users', name, ' '.join(map(str, estimates)) + ' scimlite'))
    current = database.execute_sql("SELECT tbl, idx, stat FROM sqlite_stat1 WHERE tbl = 'users' ORDER BY idx")
    if sorted(described) != [tuple(row) for row in current.fetchall()]:
        database.execute_sql("DELETE FROM sqlite_stat1 WHERE tbl = 'users'")
        database.cursor().executemany('INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)', described)
        database.execute_sql('ANALYZE sqlite_schema')   # this connection reads them now; the others as they open


def _make_trigram_index(statements):
    """Whether the trigram index is there, made now if it was not. SQLite without
    FTS5 or its trigram tokenizer, or PostgreSQL without pg_trgm (not installed, or
    no right to create it): False, and nothing changed."""
    if is_sqlite():
        if _in_sqlite_schema('user_text'):   # sqlite_master lists virtual tables too
            return True
        try:
            with savepoint():
                for statement in statements:
                    database.execute_sql(statement)
        except OperationalError as error:   # no such module: fts5, no such tokenizer: trigram
            log.warning('no trigram index for searches (%s): co/sw/ew filters scan', first_line(error))
            return False
        return True
    try:
        with savepoint():
            database.execute_sql(f'CREATE EXTENSION IF NOT EXISTS {TRIGRAM_EXTENSION}')
    except DatabaseError as error:
        if not database.execute_sql('SELECT 1 FROM pg_extension WHERE extname = %s', (TRIGRAM_EXTENSION,)).fetchone():
            log.warning('no trigram index for searches (%s: %s): co/sw/ew filters scan', TRIGRAM_EXTENSION,
                        first_line(error))
            return False
    for statement in statements:
        database.execute_sql(statement)
    return True


BUILD_BATCH = 10000
_building = None   # time.monotonic() when _build_search_index started, while it goes on


def _progress(step):
    if _building is not None:
        print(f'scimlite: building search index: {step} ({time.monotonic() - _building:.0f} s so far)',
              file=sys.stderr, flush=True)


def _build_search_index():
    """Schema version 7 on a database with users: their sort keys and search values,
    in batches, each batch's progress on the console; then the indexes, at once."""
    global _building
    database.execute_sql(SEARCH_TABLE_SQLITE.format(name='user_search') if is_sqlite() else
                         SEARCH_SCHEMA['postgresql']['side'])
    total = database.execute_sql('SELECT COUNT(*) FROM users').fetchone()[0]
    started, done, last = time.monotonic(), 0, ''
    while True:
        rows = database.execute_sql(
            f'SELECT id, user_name, display_name, resource FROM users WHERE id > {database.param} '
            f'ORDER BY id LIMIT {BUILD_BATCH}', (last,)).fetchall()
        if not rows:
            break
        sorts, searches = [], []
        for user_id, user_name, display_name, text in rows:
            resource = json.loads(text)
            sort = _sort_values(resource)
            sorts.append((*(sort[f'sort_{name}'] for name in SORT_VALUES), sort['sort_odd'], user_id))
            searches.append((user_id, user_name, display_name, _email_values(resource)))
        keys = ', '.join(f'{name}_key = {{lower}}({{p}})' for name in SORT_VALUES)
        _write_many(f'UPDATE users SET {keys}, sort_odd = {{p}} WHERE id = {{p}}', sorts)
        _write_many('INSERT INTO user_search (user_id, user_name, display_name, emails) '
                    'VALUES ({p}, {lower}({p}), {lower}({p}), {lower}({p}))', searches)
        done, last = done + len(rows), rows[-1][0]
        print(f'scimlite: building search index: {done:,} of {total:,} users', file=sys.stderr, flush=True)
    if total:   # _make_search_schema goes on with the indexes, and says so
        _building = started


def _write_many(sql, rows):
    sql = sql.format(p=database.param, lower='scim_lower' if is_sqlite() else 'lower')
    if is_sqlite():
        database.cursor().executemany(sql, rows)
    else:   # psycopg2's executemany is a round trip a row
        from psycopg2.extras import execute_batch
        execute_batch(database.cursor(), sql, rows, page_size=1000)


# What sortBy sorts by, from the resource: users.<name>_key, each a string or None.
SORT_VALUES = {'display_name': ('displayName',), 'title': ('title',), 'family_name': ('name', 'familyName'),
               'given_name': ('name', 'givenName'), 'email': None}
SORT_PATHS = tuple((f'sort_{name}', keys) for name, keys in SORT_VALUES.items())   # (_user_columns' name, keys)


def _sort_values(resource, lowered=False):
    """{sort_<name>: the string sortBy sorts by, or None, for each of SORT_VALUES;
    sort_odd: whether one of them is there but not a string, or longer than an index
    entry may be (PostgreSQL's B-tree refuses 2,704 bytes)}. `lowered`: lower-cased
    here, as SQLite's scim_lower would (it is str.lower); else the database lower-cases
    them as it writes them (_user_writes), as sort_expression's JSON path would."""
    values, odd = {}, False
    for column, keys in SORT_PATHS:
        if keys is None:
            found = _primary_email(resource.get('emails'))
        else:   # a path of keys, walked here rather than by a call a key: a write computes five
            found = resource.get(keys[0])
            for key in keys[1:]:
                found = found.get(key) if isinstance(found, dict) else None
        if found is not None:
            # At most 4 bytes a letter: most strings need no encoding to be measured.
            if isinstance(found, str) and (len(found) * 4 <= MAX_INDEXED_BYTES
                                           or len(found.encode('utf-8')) <= MAX_INDEXED_BYTES):
                if lowered:
                    found = found.lower()
            else:
                odd, found = True, None
        values[column] = found
    values['sort_odd'] = odd
    return values


_ODD = object()   # not a string, nor absent: a sort by it takes the JSON path


def _primary_email(emails):
    """The value of the first email whose primary is true, else of the first one, as
    sort_expression's JSON path picks it; _ODD where that path might differ."""
    if emails is None or emails == []:
        return None
    if not isinstance(emails, list):
        return _ODD
    chosen = None
    for item in emails:   # one pass: every write computes it
        if not isinstance(item, dict):
            return _ODD
        primary = item.get('primary', False)
        if primary is True:
            chosen = item if chosen is None else chosen
        elif primary is not False:
            return _ODD
    return (emails[0] if chosen is None else chosen).get('value')


def _email_values(resource):
    """Every string an emails filter could compare, one a line: each email's value, and
    every string anywhere in an emails that is not a list of objects."""
    emails = resource.get('emails')
    if emails is None:
        return None
    if isinstance(emails, list):
        found = [item.get('value') if isinstance(item, dict) else _strings(item) for item in emails]
        found = [value for part in found for value in (part if isinstance(part, list) else [part])]
    else:
        found = _strings(emails)
    return '\n'.join(value for value in found if isinstance(value, str)) or None


def _strings(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [text for item in value for text in _strings(item)] if isinstance(value, list) else []


def _write_once():
    """Write, changing nothing: a read-only file, file system or database (a full
    disk, too) is then a one-line error at start, not a failure at the first write.
    An up-to-date schema needs no write, and SQLite opens a read-only WAL file
    for reading without complaint."""
    with writing():
        database.execute_sql('UPDATE scimlite_schema SET version = version')


def _apply_schema_when_unlocked(seconds=None):
    """apply_schema, waiting out another process that is opening the same SQLite file:
    turning a rollback-journal file into WAL takes an exclusive lock, and SQLite can
    answer "database is locked" at once instead of calling its busy handler."""
    seconds = BUSY_TIMEOUT_MS / 1000 if seconds is None else seconds
    started = time.monotonic()
    told = False
    while True:
        try:
            return apply_schema()
        except OperationalError as error:
            if not is_sqlite() or 'locked' not in str(error):
                raise
            if time.monotonic() > started + seconds:
                # Building version 7's indexes takes minutes at a million users: another
                # process doing that is waited for (PostgreSQL's advisory lock waits anyway).
                if time.monotonic() > started + UPGRADE_WAIT or not _upgrade_in_progress():
                    raise
                if not told:
                    print('scimlite: waiting for another scimlite to finish upgrading the database',
                          file=sys.stderr, flush=True)
                    told = True
            database.close()   # the next try connects again, pragmas and all
            time.sleep(0.05)


UPGRADE_WAIT = 3600   # seconds start-up waits for another process upgrading the SQLite file


def _upgrade_in_progress():
    """Whether the file's schema is older than this scimlite's, read without the write
    lock (WAL): then the process holding that lock is presumably upgrading it."""
    try:
        found = database.execute_sql('SELECT MAX(version) FROM scimlite_schema').fetchone()[0]
    except DatabaseError:
        return False
    return found is not None and found < SCHEMA_VERSION


def _schema_statements():
    # Read through this module's loader: from the checkout, and from inside scimlite.pyz.
    text = re.sub(r'--[^\n]*', '', pkgutil.get_data(__name__, 'schema.sql').decode('utf-8'))
    return [statement.strip() for statement in text.split(';') if statement.strip()]


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def lower(expression):
    """Lower-case in SQL as Python's str.lower does (the keys are lower-cased in Python).
    PostgreSQL's lower() follows the database's LC_CTYPE: use a UTF-8 locale."""
    return fn.scim_lower(expression) if is_sqlite() else fn.lower(expression)


def is_sqlite():
    return isinstance(database.obj, SqliteDatabase)


# PostgreSQL's SQLSTATE classes that say "try again": the connection (08), the
# server shutting down (57P), a deadlock or serialization failure (40),
# insufficient resources such as too many connections (53), and our own bounds:
# lock_timeout (55P03, a lock another session holds) and statement_timeout (57014).
RETRYABLE_SQLSTATES = ('08', '57P', '40', '53', '55P03', '57014')


def is_unavailable(error):
    """Whether `error` says the database is busy or out of reach (worth trying again),
    rather than that a statement is wrong."""
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    if is_sqlite():
        return 'locked' in str(error) or 'busy' in str(error)
    code = getattr(getattr(error, 'orig', None), 'pgcode', None)
    return code is None or code.startswith(RETRYABLE_SQLSTATES)


def waited_too_long(error):
    """Whether `error` is a statement that waited too long for a lock (SQLite locked,
    PostgreSQL's lock_timeout or the watchdog's cancel) or found the database busy:
    one operation of a bulk request failing alone, not a fault of the storage."""
    return isinstance(error, OperationalError) and is_unavailable(error) and storage_fault(error) is None


# What a storage fault says, by the database's own codes: SQLite's primary result
# codes (the low byte of an extended one), PostgreSQL's SQLSTATEs. The text is
# the fallback, for a driver that gives no code.
SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN = 13, 10, 8, 14
STORAGE_FULL_SQLSTATES = ('53100',)            # disk_full ("could not extend file")
STORAGE_FAILED_SQLSTATES = ('25006', '58030')  # read_only_sql_transaction, io_error
STORAGE_FULL_TEXT = ('database or disk is full', 'could not extend file', 'no space left on device')
STORAGE_FAILED_TEXT = ('disk i/o error', 'readonly database', 'read-only transaction', 'read-only file system',
                       'unable to open database file')


def storage_fault(error):
    """StorageFull or StorageFailed, saying what happened, if `error` (or the error
    it was raised while handling) is the storage failing rather than a statement
    being wrong; else None.

    The first error of the chain counts: after SQLITE_FULL, SQLite has rolled back
    by itself, and the ROLLBACK that follows fails with "cannot rollback - no
    transaction is active", which would otherwise hide the cause."""
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    for error in reversed(chain):   # the first raised first
        if isinstance(error, (StorageFull, StorageFailed)):
            return error
        fault = _storage_fault_kind(error)
        if fault is not None:
            return fault(first_line(error))
    return None


def _storage_fault_kind(error):
    if not isinstance(error, DatabaseError):
        return None
    orig = getattr(error, 'orig', None)
    sqlite_code = getattr(orig, 'sqlite_errorcode', None)
    if sqlite_code is not None:
        primary = sqlite_code & 0xff
        return (StorageFull if primary == SQLITE_FULL
                else StorageFailed if primary in (SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN) else None)
    pgcode = getattr(orig, 'pgcode', None)
    if pgcode is not None:
        return (StorageFull if pgcode in STORAGE_FULL_SQLSTATES
                else StorageFailed if pgcode in STORAGE_FAILED_SQLSTATES else None)
    text = str(error).lower()
    if any(words in text for words in STORAGE_FULL_TEXT):
        return StorageFull
    if any(words in text for words in STORAGE_FAILED_TEXT):
        return StorageFailed
    return None


def first_line(error):
    """An error's message, its first line only (PostgreSQL adds DETAIL and HINT lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def health_problem():
    """Why the database does not answer now, in one line, or None if it does: for
    /healthz, which a load balancer may call every second, so one read of a one-row
    table and no write. On SQLite the file must also still be the one opened (a file
    deleted or replaced under the server takes no more writes: WatchedSqliteDatabase)."""
    for attempt in range(2):
        try:
            if is_sqlite():
                database.obj.check_files()
            database.execute_sql('SELECT version FROM scimlite_schema').fetchone()
        except (StoreError, DatabaseError, InterfaceError) as error:
            # A PostgreSQL connection the pool lent may have been cut since it was last
            # used (a restart): that says nothing of the database now. So once more, on
            # another connection (a broken one is not given back to the pool).
            if attempt or is_sqlite():
                return first_line(storage_fault(error) or error)
            with contextlib.suppress(DatabaseError, InterfaceError):
                database.obj.rollback()
            release_connection()
            continue
        return None


def close_database():
    if database.obj is None:
        return
    if not database.is_closed():
        database.close()
    if isinstance(database.obj, PooledDatabase):
        database.obj.close_all()


def release_connection():
    """At the end of a request: a PostgreSQL connection goes back to the pool (one
    that broke is replaced), for whichever thread serves next. SQLite keeps one
    connection per thread."""
    db = database.obj
    if isinstance(db, PooledDatabase) and not db.is_closed() and not db.in_transaction():
        db.close()


_second = (None, '')   # the last second formatted: strftime costs more than a write's SQL


def now(nanoseconds_since_epoch=None):
    """The time (now, or the one given as time.time_ns() gives it) as stored: UTC,
    fixed width, TIME_FORMAT (2026-11-28T12:00:00.123456Z)."""
    global _second
    moment = time.time_ns() if nanoseconds_since_epoch is None else nanoseconds_since_epoch
    seconds, nanoseconds = divmod(moment, 1_000_000_000)
    cached = _second   # one read: another thread may replace it
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds)))
    return f'{cached[1]}.{nanoseconds // 1000:06d}Z'


def normalise_time(text):
    """An RFC 3339 time in any offset -> the stored UTC text, or None if unparsable."""
    moment = utc_time(text)
    return moment.strftime(TIME_FORMAT) if moment else None


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
    user_name_key = TextField()
    external_id = TextField(null=True, index=True)
    display_name = TextField(null=True)
    active = BooleanField(null=True, default=True)   # None: unassigned
    resource = TextField()
    version = IntegerField(default=1)
    created = TextField()
    last_modified = TextField()
    seat = IntegerField(default=0)   # whose data: INSTRUCTOR's, or a workshop seat's
    # What sortBy sorts by (schema version 7; SORT_KEYS, _sort_values)
    display_name_key = TextField(null=True)
    title_key = TextField(null=True)
    family_name_key = TextField(null=True)
    given_name_key = TextField(null=True)
    email_key = TextField(null=True)
    sort_odd = BooleanField(default=False)
    search_row = IntegerField(null=True)   # SQLite: its number in the trigram index (schema version 12)
    search_display_name = TextField(null=True)   # SQLite: the searched values (schema version 13)
    search_emails = TextField(null=True)

    class Meta:
        table_name = 'users'
        indexes = ((('seat', 'user_name_key'), True), (('seat', 'created', 'id'), False))


class Group(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    display_name = TextField()
    display_name_key = TextField(index=True)
    # display_name_key, UNIQUE, for every group but those an older scimlite let share
    # a name and that still keep it: NULL there (MIGRATIONS 4, create_group).
    display_name_unique = TextField(null=True)
    external_id = TextField(null=True, index=True)
    resource = TextField()
    version = IntegerField(default=1)
    created = TextField()
    last_modified = TextField()
    seat = IntegerField(default=0)

    class Meta:
        table_name = 'groups'
        indexes = ((('seat', 'display_name_unique'), True), (('seat', 'created', 'id'), False))


class Link(BaseModel):
    # No index of its own on group_id: the primary key (group_id, user_id) starts with it.
    group = ForeignKeyField(Group, column_name='group_id', on_delete='CASCADE', index=False)
    user = ForeignKeyField(User, column_name='user_id', on_delete='CASCADE', index=True)

    class Meta:
        table_name = 'link'
        primary_key = CompositeKey('group', 'user')


class Secret(BaseModel):
    name = CharField(primary_key=True, max_length=64)
    value = TextField()

    class Meta:
        table_name = 'scimlite_secret'


class Exchange(BaseModel):
    """One SCIM request and its answer, as the dashboard shows it (already scrubbed)."""
    id = CharField(primary_key=True, max_length=64)
    received = TextField()
    method = TextField()
    path = TextField()
    status = IntegerField()
    duration_ms = FloatField()
    user_agent = TextField(null=True)
    request_headers = TextField()
    request_body = TextField()
    response_headers = TextField()
    response_body = TextField()
    seat = IntegerField(default=0)

    class Meta:
        table_name = 'request_log'
        indexes = ((('seat', 'id'), False),)


class Seat(BaseModel):
    """A workshop seat: its token picks its data (schema.sql says more)."""
    number = IntegerField(primary_key=True)
    token = TextField()
    token_digest = CharField(max_length=64, unique=True)
    label = TextField(null=True)
    created = TextField()
    first_request = TextField(null=True)
    connection_test = TextField(null=True)
    user_created = TextField(null=True)
    user_updated = TextField(null=True)
    group_pushed = TextField(null=True)
    member_added = TextField(null=True)
    user_deactivated = TextField(null=True)
    last_error_at = TextField(null=True)
    last_error_status = IntegerField(null=True)
    last_error_detail = TextField(null=True)

    class Meta:
        table_name = 'seat'


class ResourceCount(BaseModel):
    """How many users or groups a seat's data holds, kept by COUNT_TRIGGERS."""
    seat = IntegerField()
    kind = CharField(max_length=8)
    total = IntegerField()
    changes = IntegerField()

    class Meta:
        table_name = 'resource_count'
        primary_key = CompositeKey('seat', 'kind')


class SampleData(BaseModel):
    """That `--sample-users` filled a seat's data (or seat 0's) once, and with how many."""
    seat = IntegerField(primary_key=True)
    users = IntegerField()
    created = TextField()

    class Meta:
        table_name = 'sample_data'


# ---------------------------------------------------------------------------
# Filters: the AST from scimfilter -> a Peewee expression with bound parameters
# ---------------------------------------------------------------------------

class _Column:
    """How one SCIM attribute is searched: the column, and its comparison rules."""

    def __init__(self, field, value_type='string', case_exact=False, key_field=None):
        self.field = field
        self.value_type = value_type  # string | boolean | datetime
        self.case_exact = case_exact
        self.key_field = key_field    # a lower-cased copy with an index, if any

    def expression(self, op, value, attr_name):
        if op == 'pr':
            field = self.field
            return field.is_null(False) & (field != '') if self.value_type == 'string' else field.is_null(False)
        if self.value_type == 'boolean':
            if op not in ('eq', 'ne') or not isinstance(value, bool):
                raise UnsupportedFilter(f'{attr_name} is a boolean: only eq/ne true/false apply')
            return _compare(self.field, op, value)
        if not isinstance(value, str):
            raise UnsupportedFilter(f'{attr_name} is compared with a "string"')
        if self.value_type == 'datetime':
            moment = normalise_time(value)
            if moment is None or op in ('co', 'sw', 'ew'):
                raise UnsupportedFilter(f'{attr_name} is a dateTime: compare it with eq/ne/gt/ge/lt/le '
                                        'and an RFC 3339 time')
            return _compare(self.field, op, moment)
        if self.case_exact:
            return _compare_text(self.field, op, value)
        if self.key_field is not None:   # lower-cased by Python when written
            return _compare_text(self.key_field, op, value.lower())
        return _compare_text(lower(self.field), op, value, sql_lower=True)


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
    # co / sw / ew on text, case-sensitive: the caller lower-cased both sides where
    # case does not matter. No LIKE, whose % and _ a value could hold.
    if not is_sqlite():   # the value may be an expression (lower(...)): no length in Python
        if op == 'co':
            return present & (fn.strpos(field, value) > 0)
        if op == 'sw':
            return present & fn.starts_with(field, value)
        if op == 'ew':
            return present & (fn.right(field, fn.length(value)) == value)
    size = len(value) if op in ('co', 'sw', 'ew') else 0
    if op == 'co':
        return present & (fn.REPLACE(field, value, '') != field) if value else present
    if op == 'sw':
        return present & (fn.SUBSTR(field, 1, size) == value)
    if op == 'ew':
        return present & (fn.LENGTH(field) >= size) & (fn.SUBSTR(field, fn.LENGTH(field) - size + 1) == value)
    raise UnsupportedFilter(f'unknown operator {op}')


def _compare_text(field, op, text, sql_lower=False):
    """`field op "text"`. With `sql_lower`, the field is lower-cased in SQL and the
    text must be lower-cased by the same function: on SQLite that is Python's
    (scim_lower), on PostgreSQL its lower(), which differs from Python's for a few
    letters (İ, final σ). On PostgreSQL gt/ge/lt/le compare in code-point order
    (COLLATE "C"), as SQLite does, whatever the database's collation."""
    if is_sqlite():
        return _compare(field, op, text.lower() if sql_lower else text)
    value = fn.lower(text) if sql_lower else Value(text)
    if op in ('gt', 'ge', 'lt', 'le'):
        value = in_code_point_order(value)
    return _compare(field, op, value)


def in_code_point_order(expression):
    """Text compared and sorted by code point: SQLite's only order; on PostgreSQL,
    COLLATE "C" rather than the database's (perhaps a language's) collation."""
    return expression if is_sqlite() else NodeList((expression, SQL('COLLATE "C"')))


USER_COLUMNS = {
    'id': _Column(User.id, case_exact=True),
    'username': _Column(User.user_name, key_field=User.user_name_key),
    'externalid': _Column(User.external_id, case_exact=True),
    'displayname': _Column(User.display_name),
    'active': _Column(User.active, value_type='boolean'),
    'meta.created': _Column(User.created, value_type='datetime'),
    'meta.lastmodified': _Column(User.last_modified, value_type='datetime'),
}
GROUP_COLUMNS = {
    'id': _Column(Group.id, case_exact=True),
    'displayname': _Column(Group.display_name, key_field=Group.display_name_key),
    'externalid': _Column(Group.external_id, case_exact=True),
    'meta.created': _Column(Group.created, value_type='datetime'),
    'meta.lastmodified': _Column(Group.last_modified, value_type='datetime'),
}


def _attr_key(path):
    return f'{path.attr}.{path.sub}'.lower() if path.sub else path.attr.lower()


def _json_path(*keys):
    """A JSON path for SQLite's json functions; names come from the filter grammar,
    which allows no quotes in them, and the path is a bound parameter anyway."""
    return '$' + ''.join(f'."{key}"' for key in keys)


ITEM = SQL('scim_item.value')   # one element of a multi-valued attribute, inside EXISTS


class _Json:
    """What a filter may ask of a JSON value, on either database: each comparison is
    made only against values of the JSON type it names (a string with strings, a
    number with numbers, true/false with booleans). The dialects below say how."""

    def compare(self, document, keys, op, value):
        if op == 'pr':   # not missing, null, "", [] or {}
            return self.present(document, keys)
        if value is None:
            if op not in ('eq', 'ne'):
                raise UnsupportedFilter('null is compared with eq or ne only')
            missing = self.missing(document, keys)
            return missing if op == 'eq' else ~missing
        if isinstance(value, bool):
            if op not in ('eq', 'ne'):
                raise UnsupportedFilter('true/false are compared with eq or ne only')
            return _compare(self.boolean(document, keys), op, 'true' if value else 'false')
        if isinstance(value, str):
            return self.compare_string(document, keys, op, value)
        if op in ('co', 'sw', 'ew'):
            raise UnsupportedFilter(f'{op} compares strings, not numbers')
        return _compare(self.number(document, keys), op, value)


class _SqliteJson(_Json):
    """The resource's JSON in SQLite: json_type names a value's JSON type, json_extract
    gives it as an SQL value; json_each walks an array."""

    def document(self, column):
        return column

    @staticmethod
    def _type(document, keys):
        if document is ITEM and not keys:   # a simple value of an array: json_each says its type
            return SQL('scim_item.type')
        return fn.json_type(document, _json_path(*keys))

    def present(self, document, keys):
        """json_type is NULL for a missing key, and every test of NULL is NULL, which
        `not (...)` keeps NULL: the first term makes the whole false instead."""
        json_type, found = self._type(document, keys), self.text(document, keys)
        return json_type.is_null(False) & (
            (json_type.in_(['integer', 'real', 'true', 'false']))
            | ((json_type == 'text') & (found != ''))
            | ((json_type.in_(['array', 'object'])) & found.not_in(['[]', '{}'])))

    def missing(self, document, keys):
        json_type = self._type(document, keys)
        return json_type.is_null() | (json_type == 'null')

    def boolean(self, document, keys):
        return self._type(document, keys)   # 'true' or 'false' for a boolean

    def compare_string(self, document, keys, op, value):
        text = Case(None, [(self._type(document, keys) == 'text', self.text(document, keys))], None)
        return _compare(lower(text), op, value.lower())

    def number(self, document, keys):
        return Case(None, [(self._type(document, keys).in_(['integer', 'real']), self.text(document, keys))], None)

    def text(self, document, keys):
        if document is ITEM and not keys:   # json_each's value is the SQL value, not JSON text
            return ITEM
        return fn.json_extract(document, _json_path(*keys))

    def elements(self, document, keys):
        """The elements of the array at `keys`, as a table `scim_item` (value, key)."""
        return NodeList((SQL('json_each('), document, SQL(','), _json_path(*keys), SQL(') AS scim_item')))

    def has_elements(self, document, keys):
        return fn.COALESCE(fn.json_array_length(document, _json_path(*keys)), 0) > 0

    def is_primary(self, item):
        return NodeList((fn.json_extract(item, '$.primary'), SQL('IS 1')))

    def sort_key(self, document, keys):
        """SQLite orders numbers before text, numerically, by itself."""
        return lower(self.text(document, keys))


class _PostgresJson(_Json):
    """The resource's JSON in PostgreSQL: the stored text cast to jsonb, whose values
    keep their JSON types."""

    def document(self, column):
        return Cast(column, 'jsonb')

    @staticmethod
    def _at(document, keys):
        """The jsonb value at `keys`: the document itself for none (a simple value of an
        array), as jsonb_extract_path takes at least one key."""
        return fn.jsonb_extract_path(document, *keys) if keys else document

    def present(self, document, keys):
        found = self._at(document, keys)
        return found.is_null(False) & found.not_in(['null', '""', '[]', '{}'])

    def missing(self, document, keys):
        found = self._at(document, keys)
        return found.is_null() | (found == 'null')

    def boolean(self, document, keys):
        return self._at(document, keys)   # compared with the jsonb 'true' or 'false'

    def compare_string(self, document, keys, op, value):
        text = self._typed(self._at(document, keys), 'string', self.text(document, keys))
        return _compare_text(lower(text), op, value, sql_lower=True)

    def number(self, document, keys):
        return Cast(self._typed(self._at(document, keys), 'number', self.text(document, keys)), 'numeric')

    @staticmethod
    def _typed(found, json_type, expression):
        """`expression` where the JSON value is of `json_type`, NULL otherwise."""
        return Case(None, [(fn.jsonb_typeof(found) == json_type, expression)], None)

    def text(self, document, keys):
        if not keys:
            return NodeList((document, SQL("#>> '{}'")))
        return fn.jsonb_extract_path_text(document, *keys)

    def elements(self, document, keys):
        array = fn.jsonb_extract_path(document, *keys)
        return NodeList((fn.jsonb_array_elements(self._typed(array, 'array', array)),
                         SQL('WITH ORDINALITY AS scim_item (value, key)')))

    def has_elements(self, document, keys):
        array = fn.jsonb_extract_path(document, *keys)
        return fn.COALESCE(fn.jsonb_array_length(self._typed(array, 'array', array)), 0) > 0

    def is_primary(self, item):
        return NodeList((fn.jsonb_extract_path(item, 'primary'), SQL("= 'true'")))

    def sort_key(self, document, keys):
        """As SQLite orders json_extract's values: numbers (and true/false, which are
        1/0 there) before text, numbers numerically; one row value to sort by."""
        found = fn.jsonb_extract_path(document, *keys)
        json_type = fn.jsonb_typeof(found)
        text = self.text(document, keys)
        rank = Case(json_type, [('number', 1), ('boolean', 1), ('string', 2)], None)
        number = Case(json_type, [('number', Cast(text, 'numeric')),
                                  ('boolean', Case(text, [('true', 1)], 0))], None)
        return NodeList((SQL('ROW'), NodeList((rank, number, in_code_point_order(lower(
            Case(json_type, [('string', text)], None)))), glue=', ', parens=True)), glue='')


def _json():
    return _SQLITE_JSON if is_sqlite() else _POSTGRES_JSON


_SQLITE_JSON, _POSTGRES_JSON = _SqliteJson(), _PostgresJson()


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
        self.multi_valued = multi_valued  # {path, as the schema spells it: whether its values are complex}
        self.json = _json()
        self.document = self.json.document(model.resource)

    def translate(self, expr):
        if isinstance(expr, (F.And, F.Or, F.Not)):
            return _logical(expr, self.translate)
        if isinstance(expr, F.Constant):
            return SQL('1 = 1') if expr.matches else SQL('1 = 0')
        if isinstance(expr, F.ValuePath):
            return self.value_path(expr)
        op, value = _op_and_value(expr)
        path = expr.path
        core = not path.urn
        key = _attr_key(path)
        if core and path.attr == self.membership[0]:
            return self.membership_exists(path.sub or 'value', op, value, str(path))
        if core and key in self.columns:
            return self.narrowed(SEARCHED_ATTRIBUTES.get(key), op, value,
                                 self.columns[key].expression(op, value, str(path)))
        if core and path.attr == 'meta':
            raise UnsupportedFilter(f'{path} cannot be searched: only meta.resourceType, meta.created '
                                    'and meta.lastModified')
        attr_keys = _stored_keys(path)
        complex_values = self.multi_valued.get(_multi_valued_key(path))
        if complex_values is not None and op == 'pr' and not path.sub:
            return self.json.has_elements(self.document, attr_keys)
        if complex_values is not None:
            # `emails.value eq "x"` / `emails eq "x"`: some email's value is x;
            # `schemas eq "urn:..."`: some of its values (strings) is that URN.
            if path.sub and not complex_values:
                raise UnsupportedFilter(f'{path} has no sub-attributes: its values are simple')
            item_keys = [path.sub or 'value'] if complex_values else []
            return self.narrowed(SEARCHED_ATTRIBUTES.get(key) if not path.urn else None, op, value,
                                 self.any_item(attr_keys, self.json.compare(ITEM, item_keys, op, value)))
        keys = attr_keys + ([path.sub] if path.sub else [])
        return self.json.compare(self.document, keys, op, value)

    def value_path(self, expr):
        path = expr.path
        if not path.urn and path.attr == self.membership[0]:
            inner = expr.filter
            if isinstance(inner, (F.Compare, F.Present)):
                return self.membership_exists(inner.path.attr, *_op_and_value(inner), f'{path}[...]')
            raise UnsupportedFilter(f'inside {self.membership[0]}[...] give one comparison')
        if not self.multi_valued.get(_multi_valued_key(path)):
            raise UnsupportedFilter(f'{path} is not a multi-valued complex attribute: it takes no [filter]')
        matched = self.any_item(_stored_keys(path), self.item_filter(expr.filter))
        if path.urn or _attr_key(path) != 'emails':
            return matched
        value_test = _value_test(expr.filter)
        return self.narrowed('emails', *value_test, matched) if value_test else matched

    def item_filter(self, expr):
        """A filter inside `attr[...]`: its names are sub-attributes of one element."""
        if isinstance(expr, (F.And, F.Or, F.Not)):
            return _logical(expr, self.item_filter)
        if isinstance(expr, F.ValuePath) or expr.path.urn or expr.path.sub:
            raise UnsupportedFilter('inside [...] name sub-attributes only, e.g. emails[type eq "work"]')
        op, value = _op_and_value(expr)
        return self.json.compare(ITEM, [expr.path.attr], op, value)

    def narrowed(self, searched, op, value, matched):
        """`matched`, and, where the trigram index can find a superset of its users
        (a string of 3 characters or more that every match contains), within those:
        the index narrows, `matched` decides."""
        if (self.model is not User or searched is None or op not in ('eq', 'co', 'sw', 'ew')
                or _trigram_index is None or not isinstance(value, str)):
            return matched
        if _trigram_index == 'fts5':
            text = value.lower()
            if len(text) < 3 or '\x00' in text:
                return matched
            column = SEARCHED_IN_USERS[searched]
            query = _fts_query(column, text)
            if not _few_candidates(query):
                return matched
            # The users the index finds, and those whose values wait to be indexed
            # (new, or changed since) and may match.
            candidates = SQL('(SELECT id FROM users WHERE search_row IN '
                             '(SELECT rowid FROM user_text WHERE user_text MATCH ?) UNION ALL '
                             'SELECT id FROM users WHERE search_row > (SELECT upto FROM user_text_upto) '
                             f'AND instr({column}, ?) UNION ALL '
                             'SELECT id FROM users WHERE search_row IN (SELECT row FROM user_text_stale) '
                             f'AND instr({column}, ?))', [query, text, text])
        else:
            if len(value) < 3 or '\x00' in value:
                return matched
            pattern = '%' + re.sub(r'([\\%_])', r'\\\1', value) + '%'
            candidates = SQL(f'(SELECT user_id FROM user_search WHERE {searched} LIKE lower(%s))', [pattern])
        return matched & User.id.in_(candidates)

    def any_item(self, keys, condition):
        """EXISTS an element of the JSON array at `keys` for which `condition` holds."""
        return NodeList((SQL('EXISTS (SELECT 1 FROM'), self.json.elements(self.document, keys),
                         SQL('WHERE'), condition, SQL(')')))

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


def _fts_query(column, text):
    """An FTS5 query for the rows whose `column` contains `text`: pieces of it six
    characters long, each two into the next so every trigram is asked, all of them
    (FTS5 answers that far sooner than one long phrase, whose common trigrams, as in
    "example.com", it reads in full)."""
    pieces = (text[start:start + 6].replace('"', '""') for start in range(0, len(text) - 2, 4))
    return ' AND '.join(f'{column} : "{piece}"' for piece in pieces)


# Past this many candidates the scan is as quick: narrowing to most of a million users
# would look each one up (a second for `userName co "example.com"`, against 0.7 s).
MAX_CANDIDATES = 10000


def _few_candidates(query):
    found = database.execute_sql('SELECT COUNT(*) FROM (SELECT 1 FROM user_text WHERE user_text MATCH ? LIMIT ?)',
                                 (query, MAX_CANDIDATES + 1)).fetchone()[0]
    return found <= MAX_CANDIDATES


# Filters the trigram index narrows: {attribute key: user_search's column}.
SEARCHED_ATTRIBUTES = {'username': 'user_name', 'displayname': 'display_name', 'emails': 'emails',
                       'emails.value': 'emails'}
# On SQLite the searched values are users' columns (schema version 13): {user_search's: users'}.
SEARCHED_IN_USERS = dict(zip(SEARCHED_COLUMNS, TEXT_COLUMNS.split(', '), strict=True))


def _value_test(expr):
    """(op, value) of a `value op "text"` every element `expr` matches must pass (it is
    `expr`, or a term of its and), else None."""
    if isinstance(expr, F.And):
        return _value_test(expr.left) or _value_test(expr.right)
    if isinstance(expr, F.Compare) and not expr.path.urn and not expr.path.sub and expr.path.attr == 'value':
        return expr.op, expr.value
    return None


def _stored_keys(path):
    """Where the resource's JSON keeps the attribute `path` names (without its sub)."""
    return [path.urn, path.attr] if path.urn else [path.attr]


def _multi_valued_key(path):
    """`path`'s attribute as `multi_valued` names it: `emails`, `urn:...:name`."""
    return f'{path.urn}:{path.attr}' if path.urn else path.attr


def _logical(expr, translate):
    """and / or / not, with each operand translated by `translate`."""
    if isinstance(expr, F.Not):
        return ~translate(expr.expr)
    if isinstance(expr, F.And):
        return translate(expr.left) & translate(expr.right)
    return translate(expr.left) | translate(expr.right)


def _op_and_value(expr):
    if isinstance(expr, F.Present):
        return 'pr', None
    return expr.op, expr.value


def filter_expression(expr, columns, membership, multi_valued=None):
    """Translate a filter AST into one Peewee expression with bound parameters.
    `multi_valued`: {path: whether its values are complex} (ResourceType.multi_valued)."""
    return _FilterTranslator(membership[2].model, columns, membership, multi_valued or {}).translate(expr)


USER_MEMBERSHIP = ('groups', Link.group, User.id)
GROUP_MEMBERSHIP = ('members', Link.user, Group.id)


# ---------------------------------------------------------------------------
# Prepared statements: Peewee builds the SQL of a hot query once, not per request
# ---------------------------------------------------------------------------

class _SlotName:
    """The name of a placeholder, as it stands among a compiled query's parameters:
    an object no client value can be mistaken for."""

    def __init__(self, name):
        self.name = name


def slot(name):
    """A named placeholder in a Prepared query, filled in by each call."""
    return Value(_SlotName(name), converter=False)


class Prepared:
    """A Peewee query compiled to SQL once per database; each call only binds values.

    Peewee composes SQL text anew for every query, about 0.4 ms for a one-row
    select, some 25 times what SQLite takes to run it. The queries every request
    makes are written once as Peewee queries with `slot(name)` placeholders and
    run here with their values: still parameterised, still Peewee's dialect.
    A `slot('seat')` not given a value is this request's seat (current_seat())."""

    def __init__(self, build, server_side=False):
        self.build = build
        self.compiled_for = None
        self.sql = self.bindings = None
        # PostgreSQL: PREPAREd on each connection (_ServerSide); for key lookups only.
        self.server_side = _ServerSide() if server_side else None

    def execute(self, **values):
        sql, params = self.statement(**values)
        if self.server_side is not None and not is_sqlite():
            return self.server_side.execute(sql, params)
        return database.execute_sql(sql, params)

    def statement(self, **values):
        """(SQL, parameters) with these values."""
        if self.compiled_for is not database.obj:
            sql, params = self.build().sql()
            self.bindings = [(param.name, None) if isinstance(param, _SlotName) else (None, param)
                             for param in params]
            self.sql, self.compiled_for = sql, database.obj
        values.setdefault('seat', getattr(_this_thread, 'seat', INSTRUCTOR))
        return self.sql, [values[name] if name else constant for name, constant in self.bindings]

    def rows(self, **values):
        return self.execute(**values).fetchall()

    def changed(self, **values):
        """The number of rows an INSERT, UPDATE or DELETE touched."""
        return self.execute(**values).rowcount


# PostgreSQL plans every statement it is sent anew: GET /Users/{id}, one statement
# (the user joined to its links and groups), took 0.39 ms from psycopg2's call to
# its answer at 100,000 users, 0.17 ms prepared; planning is a third of what the
# PostgreSQL server spends on the request. So the key lookups every request makes
# are PREPAREd on each connection and EXECUTEd from then on. A prepared statement
# runs on a plan PostgreSQL makes once, after five runs, for any value ("generic"):
# one made while a table was small scans it whole, and goes on scanning it after it
# has grown, until the table is next ANALYZEd (measured: a GET whose plan was made
# with 5 link rows took 69 ms at 500,000). So a statement is PREPAREd anew on a
# connection PLAN_SECONDS after it was last prepared there: a plan is at most that old.
# Only key lookups are prepared (a user or group by id, a page by a unique value,
# and a member change's statements: the group locked, a link row removed or added,
# the group updated): an OFFSET page's or a member list's generic plan was slower
# than the plans made for each run (README, PostgreSQL). The query log shows the
# statement run, not the EXECUTE: it is what runs.
PLAN_SECONDS = 2.0
_statement_numbers = iter(range(1, 1 << 62))
_prepared_on = weakref.WeakKeyDictionary()   # psycopg2 connection -> {name: time.monotonic() when PREPAREd}
_prepared_on_lock = threading.Lock()


def _numbered_parameters(sql):
    """psycopg2's SQL (%s parameters, %% for a percent sign) as PREPARE takes it ($1,
    $2, ...; a percent sign as it is); None where it has another % form."""
    parts, number, at = [], 0, 0
    for match in re.finditer(r'%(.)', sql, re.DOTALL):
        parts.append(sql[at:match.start()])
        if match.group(1) == 's':
            number += 1
            parts.append(f'${number}')
        elif match.group(1) == '%':
            parts.append('%')
        else:
            return None
        at = match.end()
    return ''.join(parts) + sql[at:]


class _ServerSide:
    """A Prepared's PostgreSQL server-side statement, by connection (see PLAN_SECONDS).
    Its name is fixed when it is made: threads preparing it at once agree on it."""

    def __init__(self):
        self.name = f'scimlite_{next(_statement_numbers)}'
        self.refused = False

    def execute(self, sql, params):
        import psycopg2
        from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS
        if self.refused:
            return database.execute_sql(sql, params)
        connection = database.connection()
        with _prepared_on_lock:   # the mapping's; one thread uses a connection at a time
            prepared = _prepared_on.setdefault(connection, {})
        made = prepared.get(self.name)
        if made is None or time.monotonic() - made > PLAN_SECONDS:
            status = connection.info.transaction_status
            if status not in (TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS):
                return database.execute_sql(sql, params)   # a failed transaction: the plain run says so
            # In a transaction, in a savepoint: a refusal then leaves the transaction as it was.
            within = status == TRANSACTION_STATUS_INTRANS
            text = _numbered_parameters(sql)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(('SAVEPOINT scimlite_prepare; ' if within else '')
                                   + (f'DEALLOCATE {self.name}; ' if made is not None else '')
                                   + f'PREPARE {self.name} AS {text}'
                                   + ('; RELEASE SAVEPOINT scimlite_prepare' if within else ''))
            except psycopg2.Error as error:   # an operational error shows in the plain run next
                if within:
                    with peewee.__exception_wrapper__, connection.cursor() as cursor:
                        cursor.execute('ROLLBACK TO SAVEPOINT scimlite_prepare; RELEASE SAVEPOINT scimlite_prepare')
                log.info('PostgreSQL would not prepare a statement (%s): it runs unprepared', first_line(error))
                self.refused = isinstance(error, psycopg2.ProgrammingError) or text is None
                prepared.pop(self.name, None)
                return database.execute_sql(sql, params)
            prepared[self.name] = time.monotonic()
        peewee.logger.debug((sql, params))
        with peewee.__exception_wrapper__:
            cursor = database.cursor()
            cursor.execute(f'EXECUTE {self.name}' + (f'({", ".join(["%s"] * len(params))})' if params else ''),
                           params)
        return cursor


# ---------------------------------------------------------------------------
# Seats: whose data a request reads and writes
# ---------------------------------------------------------------------------
# Every user, group and exchange belongs to one seat's data: INSTRUCTOR's (the
# server's own tokens, all there is on a server without seats) or a workshop
# seat's. The request's seat is set once, by authentication (use_seat), and every
# query below reads and writes within it: a seat never sees another's rows.

INSTRUCTOR = 0


def current_seat():
    return getattr(_this_thread, 'seat', INSTRUCTOR)


def use_seat(number):
    """This request (this thread, until its serving() ends) reads and writes seat `number`'s data."""
    _this_thread.seat = number


@contextlib.contextmanager
def seat_data(number):
    """with seat_data(n): this thread works in seat n's data (outside a request: tools, tests)."""
    before = current_seat()
    _this_thread.seat = number
    try:
        yield
    finally:
        _this_thread.seat = before


def in_seat(model, where=None):
    """`where` (or nothing), within this request's seat, bound as a value: for a query run now."""
    mine = model.seat == current_seat()
    return mine if where is None else (where & mine)


def in_seat_slot(model, where=None):
    """As in_seat, for a Prepared query: the seat is its `seat` slot, bound by each call."""
    mine = model.seat == slot('seat')
    return mine if where is None else (where & mine)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def _record_columns(model):
    return (model.id, model.resource, model.version, model.created, model.last_modified)


class Record(dict):
    """A stored resource as the server renders it: id, json (the stored text),
    version, created, last_modified, links; `resource`, the parsed json, is
    parsed only when asked for (a list page is usually answered from the text)."""

    def __missing__(self, key):
        if key != 'resource':
            raise KeyError(key)
        self['resource'] = json.loads(self['json'])
        return self['resource']


def _record(row, links=()):
    """A stored row (id, resource, version, created, last_modified) as a Record; its
    links a list, or a group's MemberStream."""
    return Record(id=row[0], json=row[1], version=row[2], created=row[3], last_modified=row[4],
                  links=links if isinstance(links, MemberStream) else list(links))


GROUP_BY_ID = Prepared(lambda: Group.select(*_record_columns(Group)).where(
    (Group.id == slot('id')) & (Group.seat == slot('seat'))), server_side=True)
GROUP_LOCKED_BY_ID = Prepared(lambda: GROUP_BY_ID.build().for_update('FOR NO KEY UPDATE'), server_side=True)


_MEMBERS_BY_IN_SIZE = {}
# Member rows read into memory at once, all the groups of a page together; groups
# with more are answered in pieces as they are sent (MemberStream), so that memory
# does not grow with a group's size.
MEMBERS_AT_ONCE = 10_000
MEMBER_PIECE = 2_000   # member rows a streamed answer reads at a time


def _members_query(where):
    return (Link.select(Link.group, User.id, User.user_name).join(User).where(where)
            .order_by(in_code_point_order(User.user_name_key), User.id))


def _members_of(group_ids, at_most):
    """{group id: [(user id, userName)]} in one query; None if the groups have more
    than `at_most` members together.

    One prepared query per IN (...) size, rounded up to a power of two (the spare
    slots repeat the last id), so a few variants serve every page."""
    found = {group_id: [] for group_id in group_ids}
    if not group_ids:
        return found
    size = 1 << max(0, len(group_ids) - 1).bit_length()
    if size not in _MEMBERS_BY_IN_SIZE:
        slots = [slot(f'id{n}') for n in range(size)]
        _MEMBERS_BY_IN_SIZE[size] = (
            Prepared(lambda: _members_query(Link.group.in_(slots))),
            # How many link rows, up to `limit`: from the primary key alone, unsorted.
            Prepared(lambda: Select(columns=[fn.COUNT(SQL('*'))], from_list=[
                Link.select(SQL('1')).where(Link.group.in_(slots)).limit(slot('limit')).alias('linked')])
                .bind(database)))
    members, counted = _MEMBERS_BY_IN_SIZE[size]
    ids = {f'id{n}': v for n, v in enumerate(list(group_ids) + [group_ids[-1]] * (size - len(group_ids)))}
    if counted.rows(limit=at_most + 1, **ids)[0][0] > at_most:
        return None
    for group_id, user_id, user_name in members.rows(**ids):
        found[group_id].append((user_id, user_name))
    return found


def _members_or_streams(group_ids):
    """{group id: its members}: a list of (user id, userName), or where the groups
    have more than MEMBERS_AT_ONCE members together, a MemberStream each."""
    found = _members_of(group_ids, at_most=MEMBERS_AT_ONCE)
    return found if found is not None else {group_id: MemberStream(group_id) for group_id in group_ids}


GROUP_MEMBERS = Prepared(lambda: _members_query(Link.group == slot('id')).select(User.id, User.user_name))


# SQLite's sorter keeps as many bytes in memory as the connection's page cache may
# hold, then writes sorted runs to temporary files: with the serving threads' 16
# MiB, a streamed group of 100,000 members held its 10 MB of sort keys in memory,
# and listing five of them grew the server by 46 MB. The stream sorts with the
# added threads' 2 MiB, then the cache is set back (the pages it dropped were
# mostly the ones the sort had just read).
@contextlib.contextmanager
def _small_sorter():
    connection = database.connection()
    cache = connection.execute('PRAGMA cache_size').fetchone()[0]
    connection.execute(f'PRAGMA cache_size = {-ADDED_THREAD_CACHE_KIB}')
    try:
        yield
    finally:
        connection.execute(f'PRAGMA cache_size = {cache}')


class MemberStream:
    """A group's members, read as its answer is sent: iterating gives lists of at
    most MEMBER_PIECE (user id, userName), in the order _members_of gives, from one
    statement: one snapshot of them. SQLite steps its cursor a piece at a time;
    PostgreSQL, whose driver would fetch every row at once, FETCHes from a cursor
    DECLAREd in a transaction. Read within a serving() of its own: the request's
    ended when its handler returned."""

    def __init__(self, group_id):
        self.group_id = group_id

    def __iter__(self):
        if is_sqlite():
            with _small_sorter():
                cursor = GROUP_MEMBERS.execute(id=self.group_id)   # sorts them all, at the first step
            try:
                while rows := cursor.fetchmany(MEMBER_PIECE):
                    yield rows
            finally:
                cursor.close()
            return
        sql, params = GROUP_MEMBERS.statement(id=self.group_id)
        with database.atomic('REPEATABLE READ'):
            database.execute_sql(f'DECLARE scimlite_members NO SCROLL CURSOR FOR {sql}', params)
            while rows := database.execute_sql(f'FETCH {MEMBER_PIECE} FROM scimlite_members').fetchall():
                yield rows


# A user and its groups in one statement: every statement is a wait for the GIL.
def _user_with_groups(*columns):
    return (User.select(*_record_columns(User), Group.id, Group.display_name, *columns)
            .join(Link, JOIN.LEFT_OUTER, on=(Link.user == User.id))
            .join(Group, JOIN.LEFT_OUTER, on=(Group.id == Link.group))
            .where((User.id == slot('id')) & (User.seat == slot('seat')))
            .order_by(in_code_point_order(Group.display_name_key), Group.id))


USER_WITH_GROUPS = Prepared(lambda: _user_with_groups(), server_side=True)
# What a change compares its new values with (update_user): the columns it sets only
# where they change, as the row holds them: {_user_columns' name: users' column}.
# Read with the user, they spare a PUT parsing the stored JSON to compute them.
STORED_INDEXED = {'external_id': User.external_id, 'user_name_key': User.user_name_key,
                  **{f'sort_{name}': getattr(User, f'{name}_key') for name in SORT_VALUES},
                  'sort_odd': User.sort_odd, 'search_display_name': User.search_display_name,
                  'search_emails': User.search_emails}
USER_WITH_INDEXED = Prepared(lambda: _user_with_groups(*STORED_INDEXED.values()), server_side=True)


def get_user(user_id, indexed=False):
    """`indexed`: with the user's STORED_INDEXED values, as the Record's `indexed`."""
    if '\x00' in user_id:   # no id holds one, and PostgreSQL cannot be asked
        raise NotFound(user_id)
    rows = (USER_WITH_INDEXED if indexed else USER_WITH_GROUPS).rows(id=user_id)
    if not rows:
        raise NotFound(user_id)
    record = _record(rows[0], [(row[5], row[6]) for row in rows if row[5] is not None])
    if indexed:
        record['indexed'] = dict(zip(STORED_INDEXED, rows[0][7:], strict=True))
    return record


def get_group(group_id, with_members=True, locked=False):
    """`locked`: PostgreSQL, within a transaction: its row locked as an UPDATE would (update_group)."""
    if '\x00' in group_id:
        raise NotFound(group_id)
    rows = (GROUP_LOCKED_BY_ID if locked else GROUP_BY_ID).rows(id=group_id)
    if not rows:
        raise NotFound(group_id)
    return _record(rows[0], _members_or_streams([group_id])[group_id] if with_members else ())


class _PreparedPage:
    """A page of a whole collection, or of `column = value` (`userName eq "x"` and its
    kin, the lookup IdPs send before every create): prepared page and count queries."""

    cache = {}

    @classmethod
    def for_filter(cls, model, columns, expr, with_links=True):
        """(the prepared page, the value to bind) if the filter is one of those, else None."""
        if expr is None:
            return cls.of(model, None, with_links), None
        if not (isinstance(expr, F.Compare) and expr.op == 'eq' and isinstance(expr.value, str)
                and not expr.path.urn):
            return None
        column = columns.get(_attr_key(expr.path))
        if column is None or column.value_type != 'string' or not (column.case_exact or column.key_field):
            return None
        if column.case_exact:
            return cls.of(model, column.field, with_links), expr.value
        return cls.of(model, column.key_field, with_links), expr.value.lower()

    @classmethod
    def of(cls, model, field, with_links=True):
        key = (model, field.name if field else None, with_links)
        if key not in cls.cache:
            cls.cache[key] = cls(model, field, with_links)
        return cls.cache[key]

    def __init__(self, model, field, with_links):
        where = (field == slot('value')) if field is not None else None
        self.model, self.whole, self.with_links = model, field is None, with_links
        # Pages by a unique value are key lookups; a whole collection's walks by OFFSET.
        self.page = Prepared(lambda: _page_query(model, where, with_links=with_links), server_side=field is not None)
        self.count = Prepared(lambda: model.select(fn.COUNT(SQL('*'))).where(in_seat_slot(model, where)))
        if self.whole:
            self.after = Prepared(lambda: _page_after(model, with_links))
            at_or_after = (model.created >= slot('created')) & (
                (model.created > slot('created')) | (model.id >= slot('id')))
            self.from_row = Prepared(lambda: _page_query(model, at_or_after, with_links=with_links))

    def rows(self, value, limit, offset):
        return self.page.rows(value=value, limit=limit, offset=offset)

    def total(self, value):
        """How many match; within a snapshot()."""
        return self.count.rows(value=value)[0][0]

    def whole_page(self, start_index, count):
        """(totalResults, page rows, resource_count.changes) of the seat's whole
        collection; within a snapshot().

        Where this process has answered pages before, and no user (or group) has come
        or gone since, the page starts from the nearest row whose position it knows
        (PAGE_ANCHORS), where OFFSET walks past every row before it (100 ms at
        1,000,000 users). Okta's import asks for each page in turn: each starts after
        the row the page before ended with, an index lookup at any depth."""
        total, changes = count_of(self.model)
        if not count or total < start_index:
            return total, [], changes
        seat = current_seat()
        known = PAGE_ANCHORS.nearest(seat, self.model, changes, start_index)
        if known is not None and known[0] == start_index - 1:   # the page after one answered
            rows = self.after.rows(created=known[1][0], id=known[1][1], limit=count)
        # From a known row the walk checks the seat at each entry, which the server's
        # own data need not (WHOLE_PAGE): 3.4 times the cost an entry on SQLite.
        elif known is not None and (seat != INSTRUCTOR or start_index - known[0] <= (start_index - 1) // 4):
            rows = self.from_row.rows(created=known[1][0], id=known[1][1], limit=count,
                                      offset=start_index - known[0])
        elif seat == INSTRUCTOR:
            rows = WHOLE_PAGE[self.model, self.with_links].rows(limit=count, offset=start_index - 1)
        else:
            rows = self.page.rows(value=None, limit=count, offset=start_index - 1)
        return total, rows, changes


class _PageAnchors:
    """Where rows of whole collections stood in the paging order (created, id), as
    this process answered pages of them: for each (seat, model, resource_count.changes
    then), position (from 1) -> (created, id) of the row there, the first and the last
    of each page answered. A position is used only while `changes` is unchanged: only
    a create or a delete moves a row, and each adds one to `changes` in its own
    transaction, read with the page in one snapshot, so a position is never out of
    date, in this process or in another on the same database (which knows positions
    of its own, or none and walks by OFFSET). A page at startIndex S starts from the
    nearest known position at or before S and walks the (seat, created, id) index
    from there: after the pages near it have been answered once, a page at any depth
    walks less than a page. At most KEPT positions are kept, the collections whose
    pages were answered last; past that the oldest collections' go, then every other
    position of the newest (the rest still cover it)."""

    KEPT = 16384   # about 200 bytes each

    def __init__(self):
        self.known = {}   # (seat, model, changes) -> (sorted positions, {position: (created, id)})
        self.lock = threading.Lock()

    def clear(self):
        with self.lock:
            self.known.clear()

    def nearest(self, seat, model, changes, position):
        """(position, (created, id)) of the nearest known position at or before `position`, or None."""
        with self.lock:
            found = self.known.get((seat, model, changes))
            if found is None:
                return None
            positions, keys = found
            at = bisect.bisect_right(positions, position)
            return (positions[at - 1], keys[positions[at - 1]]) if at else None

    def note(self, seat, model, changes, rows):
        """`rows`: [(position, (created, id))] of the page just answered."""
        with self.lock:
            for stale in [key for key in self.known if key[:2] == (seat, model) and key[2] != changes]:
                del self.known[stale]   # a create or delete since: they tell nothing now
            positions, keys = self.known.pop((seat, model, changes), ([], {}))
            self.known[seat, model, changes] = positions, keys   # the newest, last
            for position, key in rows:
                if position not in keys:
                    bisect.insort(positions, position)
                keys[position] = key
            while sum(len(found[0]) for found in self.known.values()) > self.KEPT:
                if len(self.known) > 1:
                    del self.known[next(iter(self.known))]
                    continue
                if len(positions) < 2:
                    break
                del positions[1::2]
                keys = {position: keys[position] for position in positions}
                self.known[seat, model, changes] = positions, keys


PAGE_ANCHORS = _PageAnchors()
COUNT_OF = Prepared(lambda: ResourceCount.select(ResourceCount.total, ResourceCount.changes).where(
    (ResourceCount.seat == slot('seat')) & (ResourceCount.kind == slot('kind'))))


def count_of(model):
    """(users or groups in this request's seat, their inserts and deletes so far)."""
    rows = COUNT_OF.rows(kind=model._meta.table_name)
    return tuple(rows[0]) if rows else (0, 0)


def count_whole(model):
    """How many users or groups this request's seat holds (one row read, resource_count)."""
    return count_of(model)[0]


# The server's own data (seat 0) whole, paged by OFFSET without `seat = ?`: SQLite
# checks such a condition at every index entry an OFFSET passes (at 100,000 users
# 2.9 ms against 10 ms to skip to the last page). Seat 0 is the lowest seat, so its
# rows come first in the (seat, created, id) index: walked from the start, the
# first rows are seat 0's, in paging order, and the outer query drops any past
# their end.
def _whole_page_of_first_seat(model, with_links):
    keys = (model.select(model.id, model.created, model.seat).order_by(model.seat, model.created, model.id)
            .limit(slot('limit')).offset(slot('offset')).alias('page'))
    query = (model.select(*_record_columns(model)).join(keys, on=(model.id == keys.c.id))
             .where(keys.c.seat == INSTRUCTOR).order_by(keys.c.created, keys.c.id))
    return _with_groups(query) if model is User and with_links else query


WHOLE_PAGE = {(model, with_links): Prepared(lambda model=model, with_links=with_links: _whole_page_of_first_seat(
    model, with_links)) for model in (User, Group) for with_links in (True, False)}


def _page_after(model, with_links):
    """The `limit` rows after (created, id) in the paging order: a range of the
    (seat, created, id) index, whose rows are read where it points (in insertion
    order, near each other), not looked up again by id as an OFFSET page's are."""
    after = (model.created >= slot('created')) & ((model.created > slot('created')) | (model.id > slot('id')))
    page = (model.select(*_record_columns(model)).where(in_seat_slot(model, after))
            .order_by(model.created, model.id).limit(slot('limit')).alias('page'))
    query = Select(from_list=[page], columns=[page.c.id, page.c.resource, page.c.version, page.c.created,
                                              page.c.last_modified]).order_by(page.c.created, page.c.id)
    if model is User and with_links:
        query = (query.join(Link, JOIN.LEFT_OUTER, on=(Link.user == page.c.id))
                 .join(Group, JOIN.LEFT_OUTER, on=(Group.id == Link.group))
                 .select_extend(Group.id, Group.display_name)
                 .order_by_extend(in_code_point_order(Group.display_name_key), Group.id))
    return query.bind(database)


def _page_query(model, where, sort_key=None, descending=False, with_links=True, has_value=None):
    """A page's rows; a user's with its groups (`with_links`), a group's alone (its
    members are read apart: there may be 100,000)."""
    query = _page_of_keys(model, where, sort_key, descending, has_value)
    return _with_groups(query) if model is User and with_links else query


def _with_groups(query):
    """A page of users with their groups, in the same statement: a row per (user, group)."""
    return (query.select_extend(Group.id, Group.display_name).switch(User)
            .join(Link, JOIN.LEFT_OUTER, on=(Link.user == User.id))
            .join(Group, JOIN.LEFT_OUTER, on=(Group.id == Link.group))
            .order_by_extend(in_code_point_order(Group.display_name_key), Group.id))


def _page_keys(model, where, sort_key=None, descending=False, has_value=None):
    """The keys of a page's rows, in the stable order (created, id), or by `sort_key`
    first, nulls last: ascending, ties in the stable order; descending, the ascending
    order reversed but for the nulls, which stay last (ties newest first), so that an
    index walked backward needs no sort. Of the rows with a `sort_key` value only, or
    without one, if `has_value` is True or False (_descending_page).

    OFFSET walks the (created, id) index in a subquery, which reads no resource
    text; only the page's own rows are then read whole (README, Performance)."""
    columns = [model.id, model.created]
    order = [model.created, model.id]
    if sort_key is not None:
        # A NOT NULL column needs no nulls-last term, and can then walk its own index.
        nullable = not (isinstance(sort_key, Field) and not sort_key.null)
        columns += [sort_key.is_null().alias('sort_null'), sort_key.alias('sort_key')]
        if has_value is not None:   # which side of the nulls-last term, in the WHERE: SQLite's
            # planner then walks the index without sorting by that term
            where = _with_value(where, sort_key, has_value)
            nullable = False
        order = [sort_key.desc(), model.created.desc(), model.id.desc()] if descending else [sort_key, *order]
        order = ([sort_key.is_null()] if nullable else []) + order
    keys = model.select(*columns).where(in_seat_slot(model, where))
    return keys.order_by(*order).limit(slot('limit')).offset(slot('offset'))


def _page_of_keys(model, where, sort_key=None, descending=False, has_value=None):
    """The whole rows of the page _page_keys finds, in its order."""
    keys = _page_keys(model, where, sort_key, descending, has_value).alias('page')
    outer = [keys.c.created, keys.c.id]
    if sort_key is not None and descending:
        outer = [keys.c.sort_null, keys.c.sort_key.desc(), keys.c.created.desc(), keys.c.id.desc()]
    elif sort_key is not None:
        outer = [keys.c.sort_null, keys.c.sort_key] + outer
    return model.select(*_record_columns(model)).join(keys, on=(model.id == keys.c.id)).order_by(*outer)


def sort_expression(model, columns, multi_valued, path):
    """What `sortBy` sorts by: a column, a JSON value, or a multi-valued attribute's
    primary value (its first value when none is primary). Text sorts ignoring case,
    in code-point order; numbers before text, numerically."""
    key = _attr_key(path)
    if model is User and not path.urn and key in SORT_KEY_COLUMNS and not _odd_sort_values():
        return in_code_point_order(SORT_KEY_COLUMNS[key])
    if not path.urn and key in columns:
        column = columns[key]
        if column.value_type != 'string':
            return column.field
        if column.case_exact:
            return in_code_point_order(column.field)
        return in_code_point_order(column.key_field if column.key_field is not None else lower(column.field))
    json_ = _json()
    document = json_.document(model.resource)
    complex_values = multi_valued.get(_multi_valued_key(path))
    if complex_values is not None:   # simple values (schemas) have no primary: the first
        item_keys = [path.sub or 'value'] if complex_values else []
        primary = json_.is_primary(ITEM) if complex_values else SQL('FALSE')
        return in_code_point_order(lower(NodeList((
            SQL('(SELECT'), json_.text(ITEM, item_keys), SQL('FROM'),
            json_.elements(document, _stored_keys(path)), SQL('ORDER BY ('), primary,
            SQL(') IS NOT TRUE, scim_item.key LIMIT 1)')))))
    keys = ([path.urn] if path.urn else []) + [path.attr] + ([path.sub] if path.sub else [])
    return json_.sort_key(document, keys)


# sortBy attributes with a sort key column of their own (schema version 7): their
# indexes make the first page a walk of a hundred index entries.
SORT_KEY_COLUMNS = {'displayname': User.display_name_key, 'title': User.title_key,
                    'name.familyname': User.family_name_key, 'name.givenname': User.given_name_key,
                    'emails': User.email_key, 'emails.value': User.email_key}


def _odd_sort_values():
    """Whether this seat has a user with a sorted attribute that is not a string (a
    number, say): the key columns cannot order it as the JSON path does."""
    return User.select(SQL('1')).where(User.sort_odd & (User.seat == current_seat())).exists()


def snapshot():
    """A read transaction whose statements all see one snapshot: PostgreSQL's default,
    READ COMMITTED, takes one per statement."""
    return database.atomic() if is_sqlite() else database.atomic('REPEATABLE READ')


def _page(model, columns, membership, filter_ast, start_index, count, multi_valued, sort=None, with_links=True):
    """(totalResults, the rows of one page) in a stable order.

    Page and count come from one snapshot (one transaction), except where a first
    page is not full: it holds every match, so the lookup IdPs send before every
    create is a single statement."""
    prepared = _PreparedPage.for_filter(model, columns, filter_ast, with_links) if sort is None else None
    if prepared and start_index == 1 and count:
        page, value = prepared
        rows = _by_resource(page.rows(value, limit=count, offset=0))
        if len(rows) < count:
            return len(rows), rows
    if prepared and prepared[0].whole:
        page = prepared[0]
        with snapshot():
            total, rows, changes = page.whole_page(start_index, count)
        rows = _by_resource(rows)
        if rows:   # where its first and last rows stand
            PAGE_ANCHORS.note(current_seat(), model, changes, [
                (start_index, (rows[0][0][3], rows[0][0][0])),
                (start_index + len(rows) - 1, (rows[-1][0][3], rows[-1][0][0]))])
        return total, rows
    with snapshot():
        if prepared:
            page, value = prepared
            total = page.total(value)
            rows = page.rows(value, limit=count, offset=start_index - 1) if count and total else []
            return total, _by_resource(rows)
        where = filter_expression(filter_ast, columns, membership, multi_valued) if filter_ast else None
        # A sorted whole collection is counted as an unsorted one is (count_whole).
        total = (count_whole(model) if where is None
                 else model.select(fn.COUNT(SQL('*'))).where(in_seat(model, where)).scalar())
        rows = []
        if count and total >= start_index:
            sort_key = sort_expression(model, columns, multi_valued or {}, sort[0]) if sort else None
            descending = bool(sort and sort[1])
            if descending and _walked_backward(model, sort_key):
                rows = _descending_page(model, where, sort_key, with_links, count, start_index - 1)
            else:
                rows = Prepared(lambda: _page_query(model, where, sort_key, descending, with_links)).rows(
                    limit=count, offset=start_index - 1)
        return total, _by_resource(rows)


def _walked_backward(model, sort_key):
    """Whether a descending sort by `sort_key` walks its ascending index backward
    (SQLite keeps one per INDEXED_SORTS key)."""
    return is_sqlite() and model is User and isinstance(sort_key, Field) and sort_key.name in INDEXED_SORTS


def _with_value(where, sort_key, has):
    """`where` (or nothing), and `sort_key` has a value (or has none), spelt as the
    index's second column is, so the planner takes it as one of that column's values."""
    present = sort_key.is_null() == (0 if has else 1)
    return present if where is None else (where & present)


def _descending_page(model, where, sort_key, with_links, count, offset):
    """A page by `sort_key`, descending, nulls last (_page_keys), from its ascending
    index walked backward: the users with a value first, then those without. One
    ORDER BY cannot do both: walked backward, the index puts the users without a
    value first."""
    def part(has, limit, skip):
        return Prepared(lambda: _page_query(model, where, sort_key, True, with_links, has_value=has)).rows(
            limit=limit, offset=skip)

    rows = part(True, count, offset)
    found = len({row[0] for row in rows})
    if found == count:
        return rows
    if found:   # the page ends among them: the rest start at the first without a value
        skip = 0
    else:   # the page starts past them: how many there are
        valued = in_seat(model, _with_value(where, sort_key, True))
        skip = offset - model.select(fn.COUNT(SQL('*'))).where(valued).scalar()
    return rows + part(False, count - found, skip)


def _by_resource(rows):
    """Page rows -> [(record columns, [(linked id, display)])] in page order; a user
    page has one row per (user, group), a group page one row per group."""
    found = {}
    for row in rows:
        entry = found.get(row[0])
        if entry is None:
            entry = found[row[0]] = (row[:5], [])
        if len(row) > 5 and row[5] is not None:
            entry[1].append((row[5], row[6]))
    return list(found.values())


def list_users(filter_ast, start_index, count, multi_valued=None, sort=None, with_groups=True):
    """(totalResults, records of one page); `sort` is (AttrPath, descending) or None;
    without `with_groups`, no user's groups are read (their `links` are empty)."""
    total, rows = _page(User, USER_COLUMNS, USER_MEMBERSHIP, filter_ast, start_index, count, multi_valued, sort,
                        with_groups)
    return total, [_record(row, groups) for row, groups in rows]


def list_groups(filter_ast, start_index, count, with_members=True, multi_valued=None, sort=None):
    total, rows = _page(Group, GROUP_COLUMNS, GROUP_MEMBERSHIP, filter_ast, start_index, count, multi_valued, sort,
                        with_links=False)
    # Members stay a query of their own: a group may have 100,000 of them.
    members = _members_or_streams([row[0] for row, _ in rows]) if with_members else {}
    return total, [_record(row, members.get(row[0], ())) for row, _ in rows]


# ---------------------------------------------------------------------------
# Writing users
# ---------------------------------------------------------------------------

# PostgreSQL refuses a B-tree index entry over about 2,700 bytes: the indexed
# columns (userName, a group's displayName, externalId) are held below that on
# both databases, so both answer alike.
MAX_INDEXED_BYTES = 2048


def _indexed(name, value):
    if value is not None and len(value.encode('utf-8')) > MAX_INDEXED_BYTES:
        raise TooLong(f'{name} is longer than {MAX_INDEXED_BYTES} bytes of UTF-8, the most scimlite indexes')
    return value


def _user_columns(resource):
    user_name = resource['userName']
    return {
        'user_name': user_name,
        'user_name_key': _indexed('userName', user_name.lower()),
        'external_id': _indexed('externalId', resource.get('externalId')),
        'display_name': resource.get('displayName'),
        'active': resource.get('active'),   # None: unassigned
        'resource': json.dumps(resource, separators=(',', ':'), ensure_ascii=False),
        **_sort_values(resource, lowered=is_sqlite()),
        **_searched_values(resource),
    }


def _searched_values(resource):
    """{emails: the email values, one a line (_email_values)} and, as SQLite keeps
    them in the user's row for its trigram index, lower-cased as the search compares
    (scim_lower): search_display_name and search_emails."""
    emails = _email_values(resource)
    return {'emails': emails, 'search_display_name': _lower(resource.get('displayName')),
            'search_emails': _lower(emails)}


USER_WRITABLE = ('user_name', 'user_name_key', 'external_id', 'display_name', 'active', 'resource')
SEARCH_WRITABLE = ('search_display_name', 'search_emails')   # SQLite's (schema version 13)


SORT_KEY_NAMES = tuple(f'sort_{name}' for name in SORT_VALUES)   # _user_columns' names of the sort keys
SORT_WRITABLE = (*SORT_KEY_NAMES, 'sort_odd')


def _written():
    """The names (_user_columns' keys) of the columns a user's write sets."""
    return USER_WRITABLE + SORT_WRITABLE + (SEARCH_WRITABLE if is_sqlite() else ())


def _user_writes(names):
    """The columns a user's write sets, of `names` (_user_columns' keys): the sort
    keys lower-cased as sort_expression's JSON path lower-cases, on PostgreSQL by the
    database (its lower() may differ from Python's for a few letters); on SQLite
    _user_columns did it, as scim_lower would: five calls from SQLite into Python
    cost a create 13,600 instructions, 1.5% of it."""
    return {f'{name[5:]}_key' if name in SORT_KEY_NAMES else name:
            lower(slot(name)) if name in SORT_KEY_NAMES and not is_sqlite() else slot(name) for name in names}


def _user_insert(numbering=None):
    """The INSERT of a new user; on SQLite its search_row numbered by `numbering`, a
    SELECT of the number, in the INSERT itself (_insert_user)."""
    return User.insert(id=slot('id'), seat=slot('seat'), version=1, created=slot('stamp'),
                       last_modified=slot('stamp'), search_row=SQL(f'({numbering})') if numbering else None,
                       **_user_writes(_written()))


# On SQLite: numbered past every user and, with the trigram index, past what the
# index holds, to wait (UNINDEXED_AT_MOST); the number found by the INSERT itself.
NEXT_PLAIN_ROW = 'SELECT ifnull(max(search_row), 0) + 1 FROM users'
USER_INSERT = {numbering: Prepared(lambda numbering=numbering: _user_insert(numbering))
               for numbering in (None, NEXT_ROW, NEXT_PLAIN_ROW)}
_USER_UPDATES = {}
INDEXED_WRITABLE = SORT_WRITABLE + SEARCH_WRITABLE + ('external_id', 'user_name_key')


def _as_stored(columns):
    """The INDEXED_WRITABLE of _user_columns as the row holds them (STORED_INDEXED): on
    SQLite `columns` itself (_user_columns lower-cased the sort keys); on PostgreSQL
    with the sort keys lower-cased as its lower() does (it may differ for a few
    letters, and then a value is only set unchanged)."""
    if is_sqlite():
        return columns
    return {name: _lower(columns[name]) if name in SORT_KEY_NAMES else columns[name] for name in INDEXED_WRITABLE}


def _indexed_changes(before, after):
    """Whether each of INDEXED_WRITABLE differs from `before` to `after` (as stored): a
    tuple of bools, compared by map() without a Python call a column."""
    return tuple(map(operator.ne, map(before.__getitem__, INDEXED_WRITABLE), map(after.__getitem__, INDEXED_WRITABLE)))


SEARCHED_CHANGES = operator.itemgetter(*(INDEXED_WRITABLE.index(name) for name in SEARCHED_IN_USERS.values()))


def _user_update(changes):
    """The UPDATE of a user's row whose INDEXED_WRITABLE change as `changes` says
    (_indexed_changes): optimistic, it lands only on the version that was read. It
    sets the indexed columns only where they change: SQLite rewrites an index entry
    of every column SET, changed or not, a page written at commit each, and a change
    of the searched values is what lists the old ones as stale (users_search_changed)."""
    key = (changes, is_sqlite())
    if key not in _USER_UPDATES:
        changed = {name for name, change in zip(INDEXED_WRITABLE, changes, strict=True) if change}
        names = tuple(name for name in _written() if name not in INDEXED_WRITABLE or name in changed)
        _USER_UPDATES[key] = Prepared(lambda: User.update(
            version=User.version + 1, last_modified=slot('stamp'),
            **_user_writes(names)).where((User.id == slot('id')) & (User.version == slot('version'))))
    return _USER_UPDATES[key]


class UserSearch(BaseModel):
    """A user's searched values, lower-cased, for the trigram index (SEARCH_SCHEMA
    makes the table; on SQLite it has a `row` too, the FTS5 table's rowid)."""
    user_id = CharField(primary_key=True, max_length=64)
    user_name = TextField()
    display_name = TextField(null=True)
    emails = TextField(null=True)   # one a line (_email_values)

    class Meta:
        table_name = 'user_search'


# PostgreSQL's side table (SQLite keeps the values in users, schema version 13).
SEARCH_INSERT = Prepared(lambda: UserSearch.insert(
    user_id=slot('id'), **{name: lower(slot(name)) for name in SEARCHED_COLUMNS}))
SEARCH_UPDATE = Prepared(lambda: UserSearch.update(
    **{name: lower(slot(name)) for name in SEARCHED_COLUMNS}).where(UserSearch.user_id == slot('id')))
# How long SQLite's two wait lists are: the users numbered past what the index holds
# (gaps of deleted ones counted), and the stale entries.
WAIT_COUNTS = {'waiting': 'SELECT ifnull((SELECT max(search_row) FROM users), 0) - upto FROM user_text_upto',
               'stale': 'SELECT COUNT(*) FROM user_text_stale'}
WAIT_COUNT_EVERY = 16   # counts of a wait list in UNINDEXED_AT_MOST writes onto it (_index_now_and_then)
_uncounted = dict.fromkeys(WAIT_COUNTS, 0)   # this process's writes onto each since it last counted it


def _index_now_and_then(wait_list):
    """After a write onto one of SQLite's wait lists (WAIT_COUNTS): at one in
    UNINDEXED_AT_MOST // WAIT_COUNT_EVERY (62) of this process's writes onto it,
    count it, and when it holds UNINDEXED_AT_MOST, index the waiting users and the
    stale ones, in a transaction of its own. Counting at every write cost a change
    4.7 µs, 1.2% of a PUT's CPU, and reading a create's number back (RETURNING)
    21,800 instructions, 2.4% of it. So a list may overrun by 61 a process before
    a write indexes it; a search reads at most that many more rows."""
    _uncounted[wait_list] += 1
    if _uncounted[wait_list] < max(1, UNINDEXED_AT_MOST // WAIT_COUNT_EVERY):
        return
    _uncounted[wait_list] = 0
    if database.execute_sql(WAIT_COUNTS[wait_list]).fetchone()[0] >= UNINDEXED_AT_MOST:
        with transaction():
            _index_waiting()


def _insert_user(user_id, stamp, columns):
    """A new user's row, and its searched values: on PostgreSQL beside it, in the
    caller's write transaction; on SQLite in it, one statement, which numbers it
    (the write lock is taken before the number is read): it waits for the trigram
    index (_index_now_and_then)."""
    if not is_sqlite():
        USER_INSERT[None].execute(id=user_id, stamp=stamp, **columns)
        SEARCH_INSERT.execute(id=user_id, **columns)
        return
    if _trigram_index != 'fts5':
        USER_INSERT[NEXT_PLAIN_ROW].execute(id=user_id, stamp=stamp, **columns)
        return
    USER_INSERT[NEXT_ROW].execute(id=user_id, stamp=stamp, **columns)
    _index_now_and_then('waiting')


def _update_searched(user_id, columns):
    """After a user's row changed its searched values (_user_columns): PostgreSQL's
    side table changed too, in the caller's transaction. On SQLite the row holds
    them, and its old values wait on the stale list (_index_now_and_then)."""
    if not is_sqlite():
        SEARCH_UPDATE.execute(id=user_id, **columns)
        return
    if _trigram_index == 'fts5':
        _index_now_and_then('stale')


def _searched_changed(resource, columns):
    """Whether `columns` (_user_columns) change the searched values `resource` had."""
    return (resource.get('userName'), resource.get('displayName'), _email_values(resource)) != (
        columns['user_name'], columns['display_name'], columns['emails'])
MAX_WRITE_ATTEMPTS = 20

_writer = threading.RLock()   # a retry holds it while its UPDATE takes it again
_lock_wait = LOCK_WAIT   # open_database sets it
_this_thread = threading.local()   # .deadline, .seat, and .writing: whether it holds the writer turn


class _Serving:
    """A request's time with the database: the deadline by which it stops waiting
    for locks others hold, LOCK_WAIT (the `lock_wait` setting) from now, however
    many waits and retries it makes, and its connection released at the end; its
    seat the server's own until authentication says otherwise (use_seat). A
    class, not a generator: it wraps every request."""

    def __enter__(self):
        self.before = getattr(_this_thread, 'deadline', None), current_seat()
        _this_thread.deadline = time.monotonic() + _lock_wait
        _this_thread.seat = INSTRUCTOR

    def __exit__(self, *exc):
        _this_thread.deadline, _this_thread.seat = self.before
        release_connection()


def serving():
    """with serving(): a request's time with the database (see _Serving)."""
    return _Serving()


@contextlib.contextmanager
def lock_deadline(seconds):
    """This thread stops waiting for locks others hold `seconds` from now."""
    before = getattr(_this_thread, 'deadline', None)
    _this_thread.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _this_thread.deadline = before


@contextlib.contextmanager
def operation_deadline():
    """One operation of a bulk request waits for locks others hold as long as its own
    request would: LOCK_WAIT from now (and, on PostgreSQL, the watchdog's deadline for
    the write it is part of)."""
    with lock_deadline(_lock_wait):
        entry = _writes.get(threading.get_ident())
        if entry is not None:
            entry[0], entry[2] = _this_thread.deadline, False
        yield


def _seconds_left():
    """What this thread's request may still wait for a lock; outside a request (the
    exchange log's writer), a whole LOCK_WAIT each time."""
    deadline = getattr(_this_thread, 'deadline', None)
    return _lock_wait if deadline is None else deadline - time.monotonic()


# Threads whose write is in progress, and since when (_WriterTurn, _PostgresqlWrite):
# one in progress longer than LONG_WAIT is probably waiting for a lock, and the server
# then runs more threads, so that other requests are served meanwhile (watch_long_waits).
_waiting_since = {}
LONG_WAIT = 0.05   # seconds: a write still going after this is probably waiting for a lock


def watch_long_waits(threads_for):
    """Call `threads_for(n)` whenever the number n of writes in progress for longer
    than LONG_WAIT changes: the server then runs more threads, so that reads go on
    while writes wait for another process's lock, and only then.

    One thread serves SQLite fastest (README, Performance): a standing second
    thread costs every request its hand-overs, about half the throughput of a GET.
    A watchdog thread looks every LONG_WAIT; a write that waits for nothing is done
    long before."""
    def watch():
        known = 0
        while True:
            time.sleep(LONG_WAIT)
            now = time.monotonic()
            waiting = sum(1 for since in list(_waiting_since.values()) if now - since > LONG_WAIT)
            if waiting != known:
                known = waiting
                threads_for(waiting)
    threading.Thread(target=watch, name='scimlite-lock-waits', daemon=True).start()


class _WriterTurn:
    """This process's turn to write (a context manager), waited for no longer than
    the request's deadline: Busy after it.

    SQLite has one writer. Threads of this process queue here, on a Python lock,
    rather than in SQLite's busy handler, which sleeps and retries: 8 waitress
    threads then spent more time asleep than writing. Other processes' writers are
    waited for in busy_timeout, set to what is left of the deadline. Noted in
    _waiting_since meanwhile. A class, not a generator: it wraps every write.

    A thread that holds the turn already (a retry, a bulk request's operations, all
    in one transaction) takes it again at once, whatever its deadline: it waits for
    nobody."""

    def __enter__(self):
        self.nested = getattr(_this_thread, 'writing', False)
        if self.nested:
            return
        database.obj.check_files()
        self.ident = ident = threading.get_ident()
        _waiting_since[ident] = time.monotonic()
        try:
            if not _writer.acquire(False) and not _writer.acquire(timeout=max(0, _seconds_left())):
                raise Busy('another writer holds the database; try again')
            try:
                left = _seconds_left()
                if left <= 0:
                    raise Busy('another writer holds the database; try again')
                _busy_timeout(left)
            except BaseException:
                _writer.release()
                raise
        except BaseException:
            _waiting_since.pop(ident, None)
            raise
        _this_thread.writing = True

    def __exit__(self, *exc):
        if self.nested:
            return
        _this_thread.writing = False
        _writer.release()
        _waiting_since.pop(self.ident, None)


# PostgreSQL's writes in progress: thread -> [deadline, connection, cancelled]. Its
# lock_timeout bounds each lock one statement queues for, not a request's waits in
# all: a write queued behind another for one locked row queues twice (the row's
# tuple lock, then the holder's transaction), and a longer queue longer. A watchdog
# (_watch_deadlines) cancels the statement of a write still waiting for a lock when
# its request's deadline has passed.
_writes = {}
_writes_lock = threading.Lock()   # a cancel is sent only to a write still in progress
DEADLINE_TICK = 0.1   # seconds between the watchdog's looks: what a write may overrun its deadline by
_watchdog = []   # the watchdog's thread, once started


class _PostgresqlWrite:
    """A PostgreSQL write (a context manager) whose waits for locks end at its
    request's deadline, however many statements wait: past it, the watchdog cancels
    the one waiting, and the write fails as Busy. Nested writes share the outermost's."""

    def __enter__(self):
        ident = threading.get_ident()
        self.entry = None
        if ident not in _writes:
            started = _waiting_since[ident] = time.monotonic()
            self.entry = _writes[ident] = [started + _seconds_left(), database.connection(), False]

    def __exit__(self, kind, error, traceback):
        if self.entry is None:
            return
        ident = threading.get_ident()
        with _writes_lock:
            del _writes[ident]
        _waiting_since.pop(ident, None)
        if self.entry[2] and isinstance(error, OperationalError):
            raise Busy('waited lock_wait for a lock another session holds; try again') from None


def _watch_deadlines():
    """Every DEADLINE_TICK: cancel the statement of each PostgreSQL write past its
    deadline that is waiting for a lock (pg_stat_activity, asked on a connection of
    the watchdog's own, only when a write is late). A write that is late while it
    works, not waiting, is left to finish: the bound is on waiting for others."""
    asker = None
    while True:
        time.sleep(DEADLINE_TICK)
        now = time.monotonic()
        late = [(ident, entry) for ident, entry in list(_writes.items()) if entry[0] <= now and not entry[2]]
        if not late:
            continue
        try:
            asker = asker if asker is not None and not asker.closed else _asking_connection()
            for ident, entry in late:
                if _waits_for_lock(asker, entry[1]):
                    with _writes_lock:
                        if _writes.get(ident) is entry:
                            entry[2] = True
                            entry[1].cancel()
        except Exception as error:   # the database out of reach: the writes' own errors say so
            log.debug('the lock watchdog could not look: %s', first_line(error))
            if asker is not None:
                asker.close()
            asker = None


def _asking_connection():
    import psycopg2
    connection = psycopg2.connect(dbname=database.obj.database, **database.obj.connect_params)
    connection.autocommit = True
    return connection


def _waits_for_lock(asker, connection):
    with asker.cursor() as cursor:
        cursor.execute('SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s',
                       (connection.get_backend_pid(),))
        row = cursor.fetchone()
    return row is not None and row[0] == 'Lock'


def _start_watchdog():
    if not _watchdog:
        _watchdog.append(threading.Thread(target=_watch_deadlines, name='scimlite-deadlines', daemon=True))
        _watchdog[0].start()


def writer_turn():
    """This process's turn to write (see _WriterTurn); PostgreSQL takes writers
    concurrently: no turn to wait for, and its waits for rows end at the request's
    deadline (_PostgresqlWrite)."""
    return _WriterTurn() if is_sqlite() else _PostgresqlWrite()


BUSY_TIMEOUT_SLACK_MS = 50
# id(connection) -> the busy_timeout set on it, in ms, for the connections set to
# less than lock_wait (until they close or are set back): the others have the
# lock_wait they were opened with.
_busy_timeouts = {}


def _busy_timeout(seconds):
    """Give this thread's connection a busy_timeout of about `seconds` (within
    BUSY_TIMEOUT_SLACK_MS): a PRAGMA only when it is off by more, as it is only when
    this request or the connection's last one has waited. A PRAGMA on every write
    cost a tenth of the creates per second. A write with all of lock_wait left, when
    no connection has less, does nothing at all: nearly every write."""
    milliseconds = max(1, round(seconds * 1000))
    full = round(_lock_wait * 1000)
    if not _busy_timeouts and milliseconds > full - BUSY_TIMEOUT_SLACK_MS:
        return
    connection = database.connection()
    if abs(_busy_timeouts.get(id(connection), full) - milliseconds) > BUSY_TIMEOUT_SLACK_MS:
        connection.execute(f'PRAGMA busy_timeout = {milliseconds}')
        if milliseconds < full - BUSY_TIMEOUT_SLACK_MS:
            _busy_timeouts[id(connection)] = milliseconds
        else:
            _busy_timeouts.pop(id(connection), None)


class _SqliteTransaction:
    """A transaction on this thread's SQLite connection (a context manager): BEGIN
    (IMMEDIATE: the write lock at once) and COMMIT, or ROLLBACK when it raises. It
    stands on Peewee's stack of transactions, so an atomic() within it is a
    savepoint; within another transaction it is a savepoint itself. Peewee's own
    transaction() did the same in 12 µs more of Python a write, 4% of a create's
    CPU (README, Performance). Its errors are Peewee's, as every statement's are."""

    def __init__(self, immediate=True):
        self.begin = 'BEGIN IMMEDIATE' if immediate else 'BEGIN'

    def __enter__(self):
        db = database.obj
        if db.transaction_depth():
            self.savepoint = db.atomic()
            return self.savepoint.__enter__()
        self.savepoint = None
        self.connection = db.connection()
        with peewee.__exception_wrapper__:
            self.connection.execute(self.begin)
        db.push_transaction(self)
        return self

    def __exit__(self, kind, error, traceback):
        if self.savepoint is not None:
            return self.savepoint.__exit__(kind, error, traceback)
        database.obj.pop_transaction()
        with peewee.__exception_wrapper__:
            if kind is not None:
                if self.connection.in_transaction:   # SQLite ends some on its own error
                    self.connection.execute('ROLLBACK')
                return
            try:
                self.connection.execute('COMMIT')
            except BaseException:
                if self.connection.in_transaction:
                    self.connection.execute('ROLLBACK')
                raise


class _Writing:
    """writing()'s context manager: a class, not a generator, as it wraps every write."""

    def __enter__(self):
        self.turn = writer_turn()
        self.turn.__enter__()
        try:
            self.transaction = _SqliteTransaction() if is_sqlite() else database.atomic()
            self.transaction.__enter__()
        except BaseException:
            self.turn.__exit__(*sys.exc_info())
            raise

    def __exit__(self, kind, error, traceback):
        try:
            return self.transaction.__exit__(kind, error, traceback)
        finally:
            self.turn.__exit__(kind, error, traceback)


def writing():
    """A write transaction of several statements, in this process's writer turn.

    On SQLite BEGIN IMMEDIATE takes the database's write lock at once: a deferred
    transaction that has read cannot upgrade after another process committed."""
    return _Writing()


def transaction():
    """A transaction (or, within one, a savepoint) of the statements in it; on SQLite
    deferred: the first write takes the lock (_SqliteTransaction)."""
    return _SqliteTransaction(immediate=False) if is_sqlite() else database.atomic()


def savepoint():
    """Within writing(): writes undone alone if they raise (a SAVEPOINT), the
    transaction around them going on; the writes of a bulk request's operations."""
    return database.atomic()


@contextlib.contextmanager
def _retry_turn(model, resource_id):
    """The turn of a write that lost an optimistic race: with it, it cannot lose again.
    SQLite: this process's writer turn, held from the read to the write (other
    processes wait in SQLite's own lock). PostgreSQL: the row locked (FOR NO KEY
    UPDATE, what an UPDATE of it takes) in one transaction, so retries take turns,
    each waiting only for what is left of the request's deadline."""
    if is_sqlite():
        with writer_turn():
            yield
    else:
        with writer_turn(), database.atomic():
            left = _seconds_left()
            if left <= 0:
                raise Busy(f'{resource_id} is being changed by other writers; try again')
            database.execute_sql(f'SET LOCAL lock_timeout = {max(1, round(left * 1000))}')
            list(model.select(model.id).where(model.id == resource_id).for_update('FOR NO KEY UPDATE').tuples())
            # Back to lock_wait: the transaction may go on (a bulk request's next operations).
            database.execute_sql(f'SET LOCAL lock_timeout = {round(_lock_wait * 1000)}')
            yield


def _checked(record, expected_versions):
    """`expected_versions`: None (any), or the versions If-Match accepts."""
    if expected_versions is not None and record['version'] not in expected_versions:
        raise VersionMismatch(record['version'])


def _unique_violation(error):
    """Whether an IntegrityError is a UNIQUE index refusing a duplicate (SQLite's text,
    PostgreSQL's SQLSTATE 23505), not some other constraint."""
    code = getattr(getattr(error, 'orig', None), 'pgcode', None)
    return code == '23505' if code else 'UNIQUE' in str(error).upper()


def create_user(resource):
    """One INSERT; the UNIQUE index on the userName key refuses a duplicate, even in a race."""
    stamp = now()
    user_id = new_id()
    columns = _user_columns(resource)
    try:   # on SQLite one statement, on PostgreSQL two
        with writer_turn(), contextlib.nullcontext() if is_sqlite() else transaction():
            _insert_user(user_id, stamp, columns)
    except IntegrityError as error:
        if not _unique_violation(error):
            raise
        raise Conflict(f'userName {resource["userName"]!r} is already taken') from None
    return Record(id=user_id, resource=resource, json=columns['resource'], version=1, created=stamp,
                  last_modified=stamp, links=[])


def update_user(user_id, change, expected_versions=None):
    """Store `change(record) -> new resource`; an unchanged resource is not written.

    Read, change, then UPDATE ... WHERE version = the version read: if another
    writer got there first, nothing is written and the change is applied again
    to what it stored. Never a lost update, never a mix. The first attempt waits
    for the writer's turn only for its UPDATE; a retry takes _retry_turn, which
    holds it from the read to the write."""
    for attempt in range(MAX_WRITE_ATTEMPTS):
        with _retry_turn(User, user_id) if attempt else contextlib.nullcontext():
            record = get_user(user_id, indexed=True)
            before = record.pop('indexed')
            _checked(record, expected_versions)
            resource = change(record)
            columns = _user_columns(resource)
            if columns['resource'] == record['json']:   # compare text, not dicts: 1 == True in Python
                return record
            stamp = now()
            changes = _indexed_changes(before, _as_stored(columns))
            # SQLite compares the searched values the row holds; PostgreSQL's are in user_search.
            searched = (any(SEARCHED_CHANGES(changes)) if is_sqlite()
                        else _searched_changed(record['resource'], columns))
            try:   # one UPDATE where the searched values stay, as a PATCH of `active` does
                with writer_turn(), transaction() if searched and not is_sqlite() else contextlib.nullcontext():
                    written = _user_update(changes).changed(id=user_id, version=record['version'], stamp=stamp,
                                                            **columns)
                    if written and searched:
                        _update_searched(user_id, columns)
            except IntegrityError as error:
                if not _unique_violation(error):
                    raise
                raise Conflict(f'userName {resource["userName"]!r} is already taken') from None
        if written:
            return Record(record, resource=resource, json=columns['resource'],
                          version=record['version'] + 1, last_modified=stamp)
    raise Busy(f'{user_id} is being changed by other writers; try again')


DELETE_BY_ID = {model: Prepared(lambda model=model: model.delete().where(
    (model.id == slot('id')) & (model.seat == slot('seat')))) for model in (User, Group)}


def _delete(model, resource_id, expected_versions):
    """One DELETE; only if it deleted nothing, find out why."""
    if '\x00' in resource_id:
        raise NotFound(resource_id)
    with writer_turn():
        if expected_versions is None:
            deleted = DELETE_BY_ID[model].changed(id=resource_id)
        else:
            deleted = model.delete().where(in_seat(model, (model.id == resource_id)
                                                   & model.version.in_(list(expected_versions)))).execute()
    if deleted:
        return
    row = model.select(model.version).where(in_seat(model, model.id == resource_id)).first()
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
        'display_name_key': _indexed('displayName', display_name.lower()),
        'external_id': _indexed('externalId', resource.get('externalId')),
        'resource': json.dumps(resource, separators=(',', ':'), ensure_ascii=False),
    }


GROUP_WRITABLE = ('display_name', 'display_name_key', 'external_id', 'resource')
# A group holds its name's key in display_name_unique, whose UNIQUE index refuses a
# second group of that name, even when two writes race. A grandfathered group (NULL
# there: it shared its name before names were unique, MIGRATIONS 4) stays NULL while
# it keeps its name, in any case; renamed, it holds the new name like any other.
# (Every SET expression reads the row as it was before the UPDATE.)
GROUP_INSERT = Prepared(lambda: Group.insert(
    id=slot('id'), seat=slot('seat'), version=1, created=slot('stamp'), last_modified=slot('stamp'),
    display_name_unique=slot('display_name_key'), **{name: slot(name) for name in GROUP_WRITABLE}))
GROUP_UPDATE = Prepared(lambda: Group.update(
    version=Group.version + 1, last_modified=slot('stamp'),
    display_name_unique=Case(None, [(Group.display_name_unique.is_null()
                                     & (Group.display_name_key == slot('display_name_key')), None)],
                             slot('display_name_key')),
    **{name: slot(name) for name in GROUP_WRITABLE}).where((Group.id == slot('id'))
                                                           & (Group.version == slot('version'))),
    server_side=True)
# The index cannot see a grandfathered group's name (NULL never collides): a group
# taking a name one still holds is refused by looking. Grandfathered groups only
# ever go (renamed or deleted), never come, so finding none settles it, race or not.
GRANDFATHERED_HOLDER = Prepared(lambda: Group.select(Group.id).where(
    (Group.display_name_key == slot('key')) & Group.display_name_unique.is_null()
    & (Group.seat == slot('seat'))).limit(1))
LINK_REMOVE_ALL = Prepared(lambda: Link.delete().where(Link.group == slot('group')))


# Member changes are set operations: however many users a PUT or PATCH names, their
# ids are ONE bound parameter, a JSON array, which the database unpacks into a
# table (SQLite's json_each, PostgreSQL's json_array_elements_text), and each step
# below is one statement. One statement per member cost a round trip each: 2 s
# for a PUT of 10,000 members on PostgreSQL.

def _listed(*columns):
    """SELECT `columns`, then each id of slot `ids` (a JSON array of strings) as `listed.value`."""
    if is_sqlite():
        table = NodeList((SQL('json_each('), slot('ids'), SQL(') AS listed')), glue='')
    else:
        table = NodeList((SQL('json_array_elements_text(CAST('), slot('ids'), SQL(' AS json)) AS listed (value)')),
                         glue='')
    return Select(from_list=[table], columns=[*columns, SQL('listed.value')])


def _as_ids(user_ids):
    """The ids as the `ids` slot of _listed() takes them: one JSON array, its letters
    sent as text, as every other value is (PostgreSQL turns \\u escapes back into
    letters only as far as the database's encoding allows)."""
    return json.dumps(list(user_ids), ensure_ascii=False)


# The listed ids that name no user of this seat (a user of another seat is as unknown).
UNKNOWN_USERS = Prepared(lambda: _listed().where(~fn.EXISTS(User.select(SQL('1')).where(
    (User.id == SQL('listed.value')) & (User.seat == slot('seat'))))).bind(database))
# Already members stay (a duplicate in the list too): the rows counted are the new ones.
LINKS_ADD = Prepared(lambda: Link.insert_from(_listed(slot('group')), fields=[Link.group, Link.user])
                     .on_conflict_ignore().returning())
LINKS_REMOVE = Prepared(lambda: Link.delete().where((Link.group == slot('group')) & Link.user.in_(_listed())))
LINKS_REMOVE_UNLISTED = Prepared(lambda: Link.delete().where(
    (Link.group == slot('group')) & Link.user.not_in(_listed())))


# One member added or removed, as Okta's PATCHes do, one operation a member: a
# one-row statement each, not a JSON array of one unpacked into a table (a PATCH
# removing one member and adding another, on PostgreSQL at 100,000 users: 938 requests
# a second against 665). The add inserts only a user of this seat; when it
# inserts nothing, USER_IN_SEAT tells "already a member" from "no such user".
LINK_ADD_ONE = Prepared(lambda: Link.insert_from(
    User.select(slot('group'), User.id).where((User.id == slot('user')) & (User.seat == slot('seat'))),
    fields=[Link.group, Link.user]).on_conflict_ignore().returning(), server_side=True)
LINK_REMOVE_ONE = Prepared(lambda: Link.delete().where((Link.group == slot('group')) & (Link.user == slot('user'))),
                           server_side=True)
USER_IN_SEAT = Prepared(lambda: User.select(SQL('1')).where((User.id == slot('user')) & (User.seat == slot('seat'))))


def _require_users(user_ids):
    """Raise UnknownMembers, naming them, unless every id names a user of this seat."""
    if user_ids:
        unknown = {row[0] for row in UNKNOWN_USERS.rows(ids=_as_ids(user_ids))}
        if unknown:
            raise UnknownMembers(unknown)


# PostgreSQL: the check and the insert in one statement, one round trip (200 µs of a
# member PATCH there): the users it names not of this seat, and the link rows it
# added, none if it names any such user.
LINKS_ADD_KNOWN = '''WITH listed AS (SELECT value FROM json_array_elements_text(CAST(%s AS json)) AS listed (value)),
    unknown AS (SELECT listed.value FROM listed WHERE NOT EXISTS (
        SELECT 1 FROM users WHERE users.id = listed.value AND users.seat = %s)),
    added AS (INSERT INTO link (group_id, user_id) SELECT %s, listed.value FROM listed
        WHERE NOT EXISTS (SELECT 1 FROM unknown) ON CONFLICT DO NOTHING RETURNING 1)
    SELECT (SELECT COUNT(*) FROM added), (SELECT json_agg(value) FROM unknown)'''


def _add_members(group_id, user_ids):
    """Link rows for these users (already members are left as they are); how many were
    added. UnknownMembers, adding none, unless every id names a user of this seat."""
    if not user_ids:
        return 0
    if len(user_ids) == 1:
        added = LINK_ADD_ONE.changed(group=group_id, user=user_ids[0])
        if not added and not USER_IN_SEAT.rows(user=user_ids[0]):
            raise UnknownMembers({user_ids[0]})
        return added
    if is_sqlite():
        _require_users(user_ids)
        return LINKS_ADD.changed(group=group_id, ids=_as_ids(user_ids))
    added, unknown = database.execute_sql(LINKS_ADD_KNOWN, (_as_ids(user_ids), current_seat(), group_id)).fetchone()
    if unknown:
        raise UnknownMembers(set(unknown))
    return added


def _remove_members(group_id, user_ids=None):
    """Remove the named members, or all of them when `user_ids` is None; how many were removed."""
    if user_ids is None:
        return LINK_REMOVE_ALL.changed(group=group_id)
    if not user_ids:
        return 0
    if len(user_ids) == 1:
        return LINK_REMOVE_ONE.changed(group=group_id, user=user_ids[0])
    return LINKS_REMOVE.changed(group=group_id, ids=_as_ids(user_ids))


def _members_where(group_id, user_filter):
    """This group's link rows whose user matches `user_filter` (a filter on users)."""
    users = User.select(User.id).where(in_seat(User, filter_expression(user_filter, USER_COLUMNS, USER_MEMBERSHIP)))
    return (Link.group == group_id) & Link.user.in_(users)


# What a write does to a group's members: the PATCH and PUT code builds these,
# update_group applies them in order to the link rows only.

class MemberChange:
    """A change to a group's members. `added`: the users it may link, looked up
    again if the database's foreign key refuses one (a user deleted meanwhile)."""
    added = ()


class _Linking(MemberChange):
    """A change that links the users named in its `user_ids`."""

    @property
    def added(self):
        return self.user_ids


@dataclasses.dataclass(frozen=True)
class AddMembers(_Linking):
    """These users become members (those already members stay as they are)."""
    user_ids: tuple


@dataclasses.dataclass(frozen=True)
class RemoveMembers(MemberChange):
    """These users stop being members; `user_ids=None` removes every member."""
    user_ids: tuple | None = None


@dataclasses.dataclass(frozen=True)
class RemoveMembersWhere(MemberChange):
    """The members that match a filter on users (`userName co "ann"`) stop being members."""
    user_filter: object


@dataclasses.dataclass(frozen=True)
class ReplaceMembersWhere(_Linking):
    """The members that match `user_filter` are replaced by `user_ids`; NoTarget if none matches."""
    user_filter: object
    user_ids: tuple


@dataclasses.dataclass(frozen=True)
class SetMembers(_Linking):
    """The members become exactly these users (a PUT, or a replace of members)."""
    user_ids: tuple


MEMBER_CHANGES = types.SimpleNamespace(**{change.__name__: change for change in (
    AddMembers, RemoveMembers, RemoveMembersWhere, ReplaceMembersWhere, SetMembers)})


def _coalesced(changes):
    """The changes, each run of AddMembers, or of RemoveMembers of listed users, as one:
    Okta removes members one operation each (`members[value eq "<id>"]`), and a PATCH
    of 1,000 of them is then one DELETE, not 1,000. The same as applying them in
    turn: adding A then B adds both, removing A then B removes both."""
    runs = []   # [(AddMembers or RemoveMembers, [user ids]), or (None, a change as it is)]
    for change in changes:
        kind = type(change) if type(change) in (AddMembers, RemoveMembers) and change.user_ids is not None else None
        if kind is not None and runs and runs[-1][0] is kind:
            runs[-1][1].extend(change.user_ids)
        else:
            runs.append((kind, list(change.user_ids) if kind else change))
    return [kind(tuple(item)) if kind else item for kind, item in runs]


def _change_members(group_id, change):
    """One member change on the link rows: (link rows removed, link rows added)."""
    if isinstance(change, AddMembers):
        return 0, _add_members(group_id, change.user_ids)
    if isinstance(change, RemoveMembers):
        return _remove_members(group_id, change.user_ids), 0
    if isinstance(change, SetMembers):   # only the difference is written
        return _set_members(group_id, change.user_ids)
    if isinstance(change, RemoveMembersWhere):
        return Link.delete().where(_members_where(group_id, change.user_filter)).execute(), 0
    if isinstance(change, ReplaceMembersWhere):
        removed = Link.delete().where(_members_where(group_id, change.user_filter)).execute()
        if not removed:
            get_group(group_id, with_members=False)   # gone meanwhile: 404, not noTarget
            raise NoTarget('no member matches the filter')
        return removed, _add_members(group_id, change.user_ids)
    raise TypeError(f'not a member change: {change!r}')


def _set_members(group_id, user_ids):
    """Make the members exactly `user_ids` (a PUT, or replace of members): the link
    rows of users no longer named go, those of users newly named come, and the
    others stay untouched, all without reading the members; (removed, added)."""
    if not user_ids:
        return LINK_REMOVE_ALL.changed(group=group_id), 0
    ids = _as_ids(user_ids)
    if is_sqlite():
        _require_users(user_ids)   # before any write
        return LINKS_REMOVE_UNLISTED.changed(group=group_id, ids=ids), LINKS_ADD.changed(group=group_id, ids=ids)
    # PostgreSQL's check comes with the insert: an unknown id then undoes the removal too.
    return LINKS_REMOVE_UNLISTED.changed(group=group_id, ids=ids), _add_members(group_id, user_ids)


class _Lost(Exception):
    """Another writer changed the group since we read it: undo ours, and try again."""


def _members_deleted_meanwhile(group_id, changes):
    """After an IntegrityError adding link rows: the group, or a user, deleted between
    our read and our insert (PostgreSQL checks the foreign key at the insert;
    SQLite's single writer cannot interleave) is not found, as if it had never existed."""
    get_group(group_id, with_members=False)
    _require_users([user_id for change in changes for user_id in change.added])


def _name_taken(resource):
    return Conflict(f'displayName {resource["displayName"]!r} is already taken by another group')


def _take_name(resource, columns):
    """Refuse the name if a grandfathered group holds it (the index refuses the rest)."""
    if GRANDFATHERED_HOLDER.rows(key=columns['display_name_key']):
        raise _name_taken(resource)


def _write_group_row(statement, resource, values):
    """GROUP_INSERT or GROUP_UPDATE with `values`: how many rows it wrote. The UNIQUE
    index on the name's key, the only constraint these statements can break, is a Conflict."""
    try:
        return statement.changed(**values)
    except IntegrityError:
        raise _name_taken(resource) from None


def create_group(resource, member_ids=()):
    """One INSERT and the link rows; a name another group holds, in any case, is a Conflict."""
    stamp = now()
    group_id = new_id()
    columns = _group_columns(resource)
    try:
        with writing():
            _take_name(resource, columns)
            _write_group_row(GROUP_INSERT, resource, dict(columns, id=group_id, stamp=stamp))
            _add_members(group_id, member_ids)
    except IntegrityError:
        _members_deleted_meanwhile(group_id, [AddMembers(tuple(member_ids))])
        raise
    return get_group(group_id)


def update_group(group_id, change, expected_versions=None, with_members=True):
    """Store `change(record) -> (new resource, member changes)` in one transaction.

    Member changes (AddMembers, RemoveMembers, RemoveMembersWhere,
    ReplaceMembersWhere, SetMembers) are applied in order to the link rows only:
    a group's other members are neither read nor rewritten. The record passed
    to `change` has no members.
    A change that changes nothing (adding a member twice, removing one already
    gone, as IdPs retry) writes nothing: the version stays (RFC 7644 §3.5.2.1).
    A rename to a name another group holds, in any case, is a Conflict; keeping
    the name (a case change too) never is.

    PostgreSQL reads the group under its row lock (FOR NO KEY UPDATE, what an
    UPDATE of it takes) in the write's transaction: writers of one group take
    turns, and the lock comes before any link row's (a link row's foreign key takes
    a share lock on the group row), so they do not deadlock. One round trip less
    than reading, then locking and checking the version: each is 200 µs of a member
    PATCH's 2.4 ms there. SQLite, whose single writer makes the lock pointless, is
    optimistic, as update_user: the group row is written only on the version read."""
    if not is_sqlite():
        planned = None
        try:
            with writing():
                record = get_group(group_id, with_members=False, locked=True)
                _checked(record, expected_versions)
                planned = _planned_group_change(record, change)
                done = planned and _write_group_change(group_id, record, *planned)
        except IntegrityError:   # after the rollback: PostgreSQL's aborted transaction reads nothing
            _members_deleted_meanwhile(group_id, planned[2] if planned else ())
            raise
        return _group_written(group_id, record, done, with_members)
    for attempt in range(MAX_WRITE_ATTEMPTS):
        with _retry_turn(Group, group_id) if attempt else contextlib.nullcontext():
            record = get_group(group_id, with_members=False)
            _checked(record, expected_versions)
            planned = _planned_group_change(record, change)
            try:
                with writing() if planned else contextlib.nullcontext():
                    done = planned and _write_group_change(group_id, record, *planned)
            except IntegrityError:
                _members_deleted_meanwhile(group_id, planned[2])
                raise
            except _Lost:
                continue
        return _group_written(group_id, record, done, with_members)
    raise Busy(f'{group_id} is being changed by other writers; try again')


def _planned_group_change(record, change):
    """`change` applied to `record`: None if it changes nothing, else (resource, its
    columns, the member changes, the name's key the group held)."""
    resource, changes = change(record)
    changes = _coalesced(changes)
    columns = _group_columns(resource)
    if columns['resource'] == record['json'] and not changes:   # text: 1 == True in Python
        return None
    return resource, columns, changes, record['resource']['displayName'].lower()


def _write_group_change(group_id, record, resource, columns, changes, held_key):
    """Within writing(): a planned change written; (resource, its JSON text, link rows
    added, whether the row was written, the stamp). _Lost if the row is no longer
    the version read; an IntegrityError if a user or the group went meanwhile (the
    caller finds which, after the rollback: _members_deleted_meanwhile)."""
    if columns['display_name_key'] != held_key:
        _take_name(resource, columns)
    counts = [_change_members(group_id, member_change) for member_change in changes]
    added = sum(linked for _, linked in counts)
    written = bool(added or any(removed for removed, _ in counts) or columns['resource'] != record['json'])
    stamp = now()
    if written and not _write_group_row(GROUP_UPDATE, resource, dict(
            columns, id=group_id, version=record['version'], stamp=stamp)):
        raise _Lost()
    return resource, columns['resource'], added, written, stamp


def _group_written(group_id, record, done, with_members):
    """update_group's answer, after the transaction: the group as it is now, its
    members read after the write, or (`with_members` false) as this write made it."""
    if done is None:
        return get_group(group_id, with_members=with_members)
    resource, text, added, written, stamp = done
    # `members_added`: link rows this write made (the board's "member added").
    if with_members:
        return Record(get_group(group_id), members_added=added)
    # The version this write made (a 204's ETag), not whatever a later writer made.
    return Record(record, resource=resource, json=text, links=[], members_added=added,
                  version=record['version'] + written, last_modified=stamp if written else record['last_modified'])


def delete_group(group_id, expected_versions=None):
    _delete(Group, group_id, expected_versions)


# ---------------------------------------------------------------------------
# The request log and the dashboard's views
# ---------------------------------------------------------------------------

def secret(name):
    """The database's random key called `name`, made by the first process to ask."""
    with writing():
        Secret.insert(name=name, value=secrets.token_hex(32)).on_conflict_ignore().execute()
        return Secret.get_by_id(name).value


EXCHANGE_SUMMARY = (Exchange.id, Exchange.received, Exchange.method, Exchange.path, Exchange.status,
                    Exchange.duration_ms, Exchange.user_agent)


EXCHANGE_INSERT = Prepared(lambda: Exchange.insert(
    {field: slot(field.name) for field in Exchange._meta.sorted_fields}).on_conflict_ignore())
EXCHANGE_TRIM = Prepared(lambda: Exchange.delete().where(
    (Exchange.seat == slot('seat')) & (Exchange.id < Exchange.select(Exchange.id).where(
        Exchange.seat == slot('seat')).order_by(Exchange.id.desc()).limit(1).offset(slot('keep')))))


def add_exchanges(exchanges, keep):
    """Store `exchanges` (dicts of Exchange's fields, `seat` among them) in one
    transaction, then keep only the newest `keep` of each seat's (of every
    process's): one short write a batch, however busy the server (SQLite has one
    writer; readers never wait for it). A busy seat never pushes out another's."""
    with writing():
        for exchange in exchanges:
            EXCHANGE_INSERT.execute(**exchange)
        for seat in {exchange['seat'] for exchange in exchanges}:
            EXCHANGE_TRIM.execute(keep=keep - 1, seat=seat)


def recent_exchanges(limit):
    """This seat's newest exchanges, newest first, without their headers and bodies."""
    return list(Exchange.select(*EXCHANGE_SUMMARY).where(in_seat(Exchange))
                .order_by(Exchange.id.desc()).limit(limit).dicts())


def get_exchange(exchange_id):
    found = Exchange.select().where(in_seat(Exchange, Exchange.id == exchange_id)).dicts().first()
    if found is None:
        raise NotFound(exchange_id)
    return found


def recent_users(limit):
    """(how many users there are, the newest `limit` (a few hundred: one IN list) as Records
    with `group_names`, their groups' displayNames, and no links)."""
    with snapshot():   # the count and the rows agree
        total = count_whole(User)
        rows = list(User.select(*_record_columns(User)).where(in_seat(User))
                    .order_by(User.created.desc(), User.id.desc()).limit(limit).tuples())
        groups = {row[0]: [] for row in rows}
        for user_id, group_name in (Link.select(Link.user, Group.display_name).join(Group)
                                    .where(Link.user.in_(list(groups)))
                                    .order_by(in_code_point_order(Group.display_name_key)).tuples()):
            groups[user_id].append(group_name)
    return total, [Record(_record(row), group_names=groups[row[0]]) for row in rows]


def recent_groups(limit):
    """(how many groups there are, the newest `limit` as Records with
    `member_count`, and no links)."""
    members = Link.select(fn.COUNT(SQL('*'))).where(Link.group == Group.id)
    with snapshot():
        total = count_whole(Group)
        rows = list(Group.select(*_record_columns(Group), members.alias('members')).where(in_seat(Group))
                    .order_by(Group.created.desc(), Group.id.desc()).limit(limit).tuples())
    return total, [Record(_record(row[:5]), member_count=row[5]) for row in rows]


# ---------------------------------------------------------------------------
# Workshop seats
# ---------------------------------------------------------------------------

# What a seat's IdP has done, in the order a workshop gets there: the seat row's
# columns of the same names, each the time it first happened (dashboard.py says
# which requests count).
MILESTONES = ('first_request', 'connection_test', 'user_created', 'user_updated', 'group_pushed',
              'member_added', 'user_deactivated')
SEAT_TOKEN_BYTES = 24   # 192 random bits, 32 characters: safe to expose through ngrok


def token_digest(token):
    """The hex SHA-256 of a token's bytes: how a request's token finds its seat."""
    return hashlib.sha256(token).hexdigest()


def ensure_seats(count):
    """Make seats 1 to `count` where they are missing, each with a new random token;
    never remove one. Two processes starting at once agree: one transaction at a
    time makes them (the primary key keeps the first's)."""
    with writing():
        have = {row[0] for row in Seat.select(Seat.number).tuples()}
        stamp = now()
        for number in range(1, count + 1):
            if number not in have:
                token = secrets.token_urlsafe(SEAT_TOKEN_BYTES)
                Seat.insert(number=number, token=token, token_digest=token_digest(token.encode('utf-8')),
                            created=stamp).on_conflict_ignore().execute()
        _count_rows_for_every_seat()


def seat_digests():
    """{token digest: seat number} of every seat."""
    return dict(Seat.select(Seat.token_digest, Seat.number).tuples())


def seats():
    """Every seat, by number, as dicts of the seat row's columns (tokens included:
    for the instructor's eyes only)."""
    return list(Seat.select().order_by(Seat.number).dicts())


def seat_row(number):
    """Seat `number`'s row as a dict of its columns, or None."""
    return Seat.select().where(Seat.number == number).dicts().first()


def seat_count():
    return Seat.select().count()


def set_label(number, label):
    """Name seat `number` (the attendee's name); NotFound if there is no such seat."""
    with writing():
        if not Seat.update(label=label or None).where(Seat.number == number).execute():
            raise NotFound(f'seat {number}')


def note_progress(progress):
    """Store what seats' IdPs did: {seat: (milestones {name: time}, last error
    (time, status, detail) or None)}, in one transaction. A milestone keeps the
    time it was first reached, whichever process saw it first."""
    with writing():
        for number, (milestones, error) in progress.items():
            changes = {getattr(Seat, name): fn.COALESCE(getattr(Seat, name), stamp)
                       for name, stamp in milestones.items() if name in MILESTONES}
            if error is not None:
                changes.update({Seat.last_error_at: error[0], Seat.last_error_status: error[1],
                                Seat.last_error_detail: error[2]})
            if changes:
                Seat.update(changes).where(Seat.number == number).execute()


def reset_seat(number):
    """Empty seat `number`: its users, groups, memberships, exchanges, milestones,
    last error and sample data go; its token and label stay."""
    with writing():
        if not Seat.select().where(Seat.number == number).exists():
            raise NotFound(f'seat {number}')
        for model in (Group, User, Exchange):   # the link rows go with their groups
            model.delete().where(model.seat == number).execute()
        SampleData.delete().where(SampleData.seat == number).execute()
        Seat.update({getattr(Seat, name): None for name in MILESTONES + (
            'last_error_at', 'last_error_status', 'last_error_detail')}).where(Seat.number == number).execute()


def fill_sample_data(number, users, groups):
    """Fill seat `number`'s data (0: the server's own) once with sample `users` (user
    resources) and `groups` ((group resource, indexes of its members in `users`)).
    A userName or group name already taken there is left to its holder. Whether it
    filled it now (False: it was filled before)."""
    with seat_data(number), lock_deadline(BUSY_TIMEOUT_MS / 1000 if is_sqlite() else math.inf), writing():
        if not is_sqlite():   # a process filling it first may take longer than lock_wait
            database.execute_sql('SET LOCAL lock_timeout = 0')
            database.execute_sql('SET LOCAL statement_timeout = 0')
        # The mark first: a second process starting at once waits for it (PostgreSQL's
        # primary key; SQLite's write lock), then finds it and fills nothing.
        mark = SampleData.insert(seat=number, users=len(users), created=now()).on_conflict_ignore()
        if not database.execute_sql(*mark.sql()).rowcount:
            return False
        ids = []   # each sample user's id; None where its userName was taken
        for resource in users:
            if _user_name_taken(resource['userName']):
                ids.append(None)
                continue
            ids.append(new_id())
            _insert_user(ids[-1], now(), _user_columns(resource))
        for resource, member_indexes in groups:
            columns = _group_columns(resource)
            if Group.select().where(in_seat(Group, Group.display_name_key == columns['display_name_key'])).exists():
                continue
            group_id = new_id()
            GROUP_INSERT.execute(id=group_id, stamp=now(), **columns)
            LINKS_ADD.execute(group=group_id, ids=_as_ids(ids[index] for index in member_indexes
                                                          if ids[index] is not None))
        return True


def _user_name_taken(user_name):
    return User.select().where(in_seat(User, User.user_name_key == user_name.lower())).exists()

"""scimlite: a SCIM 2.0 provisioning server you start with one command.

    pip install -r requirements.txt
    python scim_server.py [--config PATH] [--host HOST] [--port PORT] [--database URL] [--token TOKEN] [--quiet]
                          [--seats N] [--sample-users N] [--seat-cards]

Point Okta or Microsoft Entra ID at http://127.0.0.1:5000/scim/v2 (usually through
ngrok) and users and groups arrive in a SQLite file, scim.db.

What it supports: /Users and /Groups with POST, GET (by id, and lists with
the whole filter language, sortBy, startIndex, count, attributes and
excludedAttributes), POST .search, PUT, PATCH (RFC 7644 §3.5.2, with Okta's
and Entra's dialects), DELETE; POST /Bulk (RFC 7644 §3.7: those operations,
bulkId references in any order, failOnErrors); the discovery endpoints /ServiceProviderConfig,
/ResourceTypes and /Schemas; ETags with If-Match / If-None-Match; the token
as `Bearer <token>`, and in every other form Okta or Entra can be made to send
(bare, `Bearer Bearer`, HTTP Basic's password), those flagged. At / a
dashboard, behind a login with the token, shows the users, the groups and the
recent SCIM exchanges, scrubbed of tokens and passwords; the console prints one
line per SCIM request. GET /healthz, without a token, says whether the database
answers (200 or 503), for a load balancer. For a workshop, `--seats N` gives each
attendee a token of their own that picks a data set of their own (users,
groups, exchanges), and the instructor a board of everyone's progress and the
seat cards to hand out.

What it deliberately does not: password changes, nested groups (members are
users), /Me, and authenticating end users: the password an IdP
sends is accepted and dropped, never stored, never returned.

Needs: Python 3.10+, bottle, peewee, waitress (see requirements.txt); or, as
scimlite.pyz (tools/build_pyz.py), which holds them, Python alone. `app` is a WSGI
application for other servers (`waitress-serve scim_server:app`); `main()` is
the command line.

This file is the HTTP app: settings, the wire format, the SCIM routes (one
handler per verb, generic over users and groups) and `main()`. The protocol
lives beside it: scimschema.py (schemas, validation), scimpatch.py (PATCH and
the IdP dialects), scimfilter.py (the filter grammar); the database in
store.py; the console, the exchange recorder and the page at / in dashboard.py.
"""

import argparse
import base64
import codecs
import configparser
import contextlib
import copy
import dataclasses
import errno
import functools
import hmac
import json
import logging
import math
import os
import pkgutil
import re
import select
import signal
import socket
import sys
import threading
import time
import zipimport
from pathlib import Path
from urllib.parse import unquote

import bottle
from bottle import request, response

import dashboard
import sampledata
import scimfilter as F
import scimpatch
import store
from scimschema import (
    LIST_SCHEMA, RESOURCE_TYPE_SCHEMA, SCHEMA_SCHEMA, SPC_SCHEMA, USER_SCHEMA, GROUP_SCHEMA, Catalog,
    DeclarationError, ScimError, clean_resource, comparable, error_document, find_key, load_extensions,
    member_ids, sub_attributes)

log = logging.getLogger('scimlite')

# ===========================================================================
# Settings
# ===========================================================================

# Run from the zip application (tools/build_pyz.py makes scimlite.pyz) there is no
# folder beside the code to keep settings in: config.ini is kept in the working
# folder, with scim.db, and written there on first start (config_file_written_once).
FROM_ZIP = isinstance(__loader__, zipimport.zipimporter)
CONFIG_FILE = Path('config.ini') if FROM_ZIP else Path(__file__).with_name('config.ini')
DEMO_TOKEN = '123456789'
# While serving, let a thread that waited on a socket or on SQLite get the GIL back
# within 20 µs, not CPython's default 5 ms: each request waits a dozen times, and
# at 5 ms a turn several waitress threads spent most of their time queueing for
# the GIL (README, Performance).
SWITCH_INTERVAL = 20e-6

DEFAULTS = {
    'host': '127.0.0.1',
    'port': 5000,
    'database': 'sqlite:///scim.db',
    'token': '',
    'base_url': '',
    'base_path': '/scim/v2',
    'default_page_size': 100,
    'max_page_size': 1000,
    'max_body_bytes': 1024 * 1024,
    'bulk_max_operations': 1000,
    'bulk_max_payload_bytes': 1024 * 1024,
    'threads': '',   # empty: DEFAULT_THREADS for the database
    'connection_limit': '',   # empty: DEFAULT_CONNECTION_LIMIT for this system
    'channel_timeout': 30,
    'extensions': '',
    'quiet': False,
    'record_exchanges': True,
    'exchanges_kept': 500,
    'lock_wait': store.LOCK_WAIT,
    'statement_timeout': store.STATEMENT_TIMEOUT,
    'seats': 0,          # workshop seats to have (README, Workshops); more are added, none removed
    'sample_users': 0,   # sample users to fill each data set with, once
}
INTEGER_SETTINGS = ('port', 'default_page_size', 'max_page_size', 'max_body_bytes', 'threads', 'exchanges_kept',
                    'connection_limit', 'channel_timeout', 'bulk_max_operations', 'bulk_max_payload_bytes',
                    'seats', 'sample_users')
MAX_SEATS = 500
MAX_SAMPLE_USERS = 100_000
# Requests served at once when `threads` is not set, by database. SQLite: one. Python
# runs one thread at a time and SQLite writes one at a time, so a second thread mostly
# adds the handing over of the interpreter lock (README, Performance). PostgreSQL:
# four, so that requests overlap their round trips to the database server.
DEFAULT_THREADS = {'sqlite': 1, 'postgresql': 4}
# Connections held open at once, idle and half-sent ones included: enough that a few
# hundred held open by a script leave room for the IdP (README, Reliability). Past the
# limit waitress stops accepting, and every client waits. By how waitress waits on its
# sockets: poll() (POSIX) has no ceiling but the open-file limit, raised at start;
# select(), where there is no poll() (Windows), Python builds for 512 sockets at most.
POLL = hasattr(select, 'poll')
DEFAULT_CONNECTION_LIMIT = {'poll': 2000, 'select': 400}
SELECT_CONNECTION_LIMIT = 500
# Threads added beyond `threads` while any request waits for a lock another process
# or session holds (store.watch_long_waits): reads go on while up to this many writes
# wait (on SQLite they give their turn away meanwhile). Waits end at `lock_wait`
# seconds: a 503. Added only then: on SQLite each thread costs every request.
LOCK_WAITERS = 16
# Threads added beyond those while answers are streamed, one per answer: a group of
# 100,000 members takes seconds to send, longer to a slow client (sent_in_pieces).
STREAM_THREADS = 4
SECONDS_SETTINGS = ('lock_wait', 'statement_timeout')   # seconds, fractions allowed
BOOLEAN_SETTINGS = ('quiet', 'record_exchanges')
BOOLEANS = {'on': True, 'true': True, 'yes': True, '1': True, 'off': False, 'false': False, 'no': False, '0': False}
ENVIRONMENT = {
    'SCIM_HOST': 'host',
    'SCIM_PORT': 'port',
    'SCIM_DATABASE_URL': 'database',
    'SCIM_TOKEN': 'token',
    'SCIM_BASE_URL': 'base_url',
    'SCIM_EXTENSIONS': 'extensions',
    'SCIM_SEATS': 'seats',
    'SCIM_SAMPLE_USERS': 'sample_users',
}


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line for a human."""


class Settings(dict):
    """Settings checked and given their types (what normalise_settings returns):
    DEFAULTS' keys, plus `tokens` (a tuple) and `extension_schemas` (declared
    in the `extensions` file, read once). `seat_cards`: the command line asked for
    the seat cards (CSV), not for a server."""
    seat_cards = False


def read_config_file(path):
    """The [scimlite] section of an ini file as a dict (empty if the file is absent)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(config_text(Path(path).read_bytes(), path), source=str(path))
    except FileNotFoundError:
        return {}
    except (OSError, configparser.Error) as error:
        raise SettingsError(f'cannot read {path}: {one_line(error)}') from None
    return dict(parser['scimlite']) if parser.has_section('scimlite') else {}


# What Windows editors save: Notepad UTF-8 (with or without a byte-order mark) or
# UTF-16 with one ("UTF-16 LE"/"BE"); PowerShell 5.1's `>` and Out-File UTF-16 LE with one.
BYTE_ORDER_MARKS = ((codecs.BOM_UTF8, 'utf-8-sig'), (codecs.BOM_UTF16_LE, 'utf-16'), (codecs.BOM_UTF16_BE, 'utf-16'))


def config_text(data, path):
    """The text of a config file's bytes: UTF-8, or UTF-8 or UTF-16 after a byte-order
    mark. Anything else (Notepad's "ANSI", PowerShell 5.1's Set-Content, UTF-16 without
    a mark) is a SettingsError that says to save it as UTF-8."""
    encoding = next((name for mark, name in BYTE_ORDER_MARKS if data.startswith(mark)), 'utf-8')
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        where = f'byte {error.object[error.start]:#04x} at offset {error.start} is not {error.encoding.upper()}'
    else:
        if '\0' not in text:
            return text
        where = 'it holds NUL characters (UTF-16 without a byte-order mark?)'
    raise SettingsError(f'cannot read {path}: {where}; save it as UTF-8 '
                        '(in Notepad: File > Save as, Encoding: UTF-8)')


def one_line(error):
    """An exception's message on one line (configparser's span several)."""
    return ' '.join(str(error).split())


def load_settings(argv=None, environ=None):
    """Settings from flags > environment > config.ini > DEFAULTS."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog='scimlite.pyz' if FROM_ZIP else 'scim_server.py',
                                     description='scimlite: a SCIM 2.0 server.')
    parser.add_argument('--config', help='ini file (default: config.ini beside scim_server.py; '
                                         'for scimlite.pyz, in the working folder)')
    parser.add_argument('--host', help='address to listen on (default 127.0.0.1)')
    parser.add_argument('--port', help='port to listen on (default 5000)')
    parser.add_argument('--database', help='sqlite:///scim.db (default) or a PostgreSQL URL')
    parser.add_argument('--token', action='append', help='bearer token; repeat it to accept several')
    parser.add_argument('--quiet', action='store_true', default=None,
                        help='print no line per SCIM request (the dashboard still records them)')
    parser.add_argument('--seats', help='workshop seats: one token and one data set per attendee (README, Workshops)')
    parser.add_argument('--sample-users', help='fill each data set once with this many sample users, for an import')
    parser.add_argument('--seat-cards', action='store_true',
                        help='print the seats as CSV (seat,base_url,token) and exit, without serving')
    args = parser.parse_args(argv)
    seat_cards = args.seat_cards
    del args.seat_cards

    config_path = args.config or environ.get('SCIM_CONFIG')
    if config_path and not Path(config_path).is_file():
        raise SettingsError(f'config file not found: {config_path}')
    if not config_path and FROM_ZIP:
        config_file_written_once()
    from_file = read_config_file(config_path or CONFIG_FILE)
    from_environment = {key: environ[name] for name, key in ENVIRONMENT.items() if environ.get(name)}
    from_flags = {key: value for key, value in vars(args).items()
                  if value is not None and key != 'config'}
    if 'token' in from_flags:
        from_flags['token'] = ','.join(from_flags['token'])
    settings = normalise_settings({**from_file, **from_environment, **from_flags})
    settings.seat_cards = seat_cards
    return settings


def config_file_written_once():
    """scimlite.pyz's config.ini: if the working folder has none, the commented one
    shipped inside is written there, so that an attendee has every setting to read
    and edit where scim.db is (and gets the demo token the handouts use)."""
    try:
        with open(CONFIG_FILE, 'xb') as file:
            file.write(pkgutil.get_data(__name__, 'config.ini'))
    except FileExistsError:
        return
    except OSError as error:
        raise SettingsError(f'cannot write {CONFIG_FILE.resolve()}: {error.strerror}; '
                            'start scimlite.pyz from a folder you can write to') from None
    log.info('wrote %s: every setting, with a comment', CONFIG_FILE.resolve())


def normalise_settings(overrides):
    """Settings: DEFAULTS updated with `overrides`, each value checked and given its type."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise SettingsError(f'unknown setting(s): {", ".join(sorted(unknown))}')
    settings = Settings(DEFAULTS, **overrides)
    fill_in_defaults(settings)
    for key in INTEGER_SETTINGS:
        try:
            settings[key] = int(settings[key])
        except (TypeError, ValueError):
            raise SettingsError(f'{key} must be a whole number, not {settings[key]!r}') from None
    for key in BOOLEAN_SETTINGS:
        value = settings[key]
        settings[key] = value if isinstance(value, bool) else BOOLEANS.get(str(value).strip().lower())
        if settings[key] is None:
            raise SettingsError(f'{key} must be on or off, not {value!r}')
    for key in SECONDS_SETTINGS:
        settings[key] = seconds_setting(key, settings[key])
    check_ranges(settings)
    settings['tokens'] = tuple(token for token in (t.strip() for t in str(settings['token']).split(',')) if token)
    if not settings['tokens']:
        raise SettingsError('no token is set: give --token, SCIM_TOKEN or token= in config.ini')
    # '/scim/v2' (the default), or '' for the root: routes and URLs append '/Users' to it.
    settings['base_path'] = '/' + settings['base_path'].strip('/') if settings['base_path'].strip('/') else ''
    # base_url may be the bare public address (https://abcd.ngrok-free.app) or the API's.
    base = settings['base_url'].rstrip('/')
    if base and not base.endswith(settings['base_path']):
        base += settings['base_path']
    settings['base_url'] = base
    try:
        settings['extension_schemas'] = load_extensions(settings['extensions']) if settings['extensions'] else ()
    except DeclarationError as error:
        raise SettingsError(str(error)) from None
    return settings


def check_ranges(settings):
    """A SettingsError for a number setting out of its range."""
    for key in ('threads', 'connection_limit', 'channel_timeout', 'bulk_max_operations', 'bulk_max_payload_bytes'):
        if settings[key] < 1:
            raise SettingsError(f'{key} must be at least 1, not {settings[key]}')
    if not POLL and settings['connection_limit'] > SELECT_CONNECTION_LIMIT:
        raise SettingsError(f'connection_limit must be at most {SELECT_CONNECTION_LIMIT} here (Windows), where '
                            f'select() handles 512 sockets, not {settings["connection_limit"]}')
    for key, most in (('seats', MAX_SEATS), ('sample_users', MAX_SAMPLE_USERS)):
        if not 0 <= settings[key] <= most:
            raise SettingsError(f'{key} must be from 0 to {most}, not {settings[key]}')
    if settings['exchanges_kept'] < 1:
        raise SettingsError('exchanges_kept must be at least 1 (record_exchanges = off records none)')
    if not 0 <= settings['port'] < 65536:
        raise SettingsError(f'port must be from 0 (any free port) to 65535, not {settings["port"]}')


def fill_in_defaults(settings):
    """Settings left empty whose default depends on the database or on the system."""
    if not str(settings['threads']).strip():
        settings['threads'] = DEFAULT_THREADS['sqlite' if store.backend(str(settings['database'])) == 'sqlite'
                                              else 'postgresql']
    if not str(settings['connection_limit']).strip():
        settings['connection_limit'] = DEFAULT_CONNECTION_LIMIT['poll' if POLL else 'select']


def seconds_setting(key, value):
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f'{key} must be a number of seconds, not {value!r}') from None
    if not 0 < seconds < 86400:
        raise SettingsError(f'{key} must be more than 0 seconds and less than a day, not {value}')
    return seconds


# ===========================================================================
# Errors: one type (scimschema.ScimError), rendered in one place (ScimApp.default_error_handler)
# ===========================================================================

class ScimHTTPError(bottle.HTTPError):
    """A ScimError on its way out through Bottle (see scim_errors_answered)."""

    def __init__(self, error):
        super().__init__(error.status, error.detail)
        self.scim_error = error
        for name, value in error.headers.items():
            self.set_header(name, value)


# Bottle's own errors (no route, wrong method, an exception in a route) as SCIM text.
BOTTLE_ERROR_DETAILS = {
    404: 'No such endpoint.',
    405: 'Method not allowed on this endpoint.',
    500: 'Internal server error; the details are in the server log.',
}


# ===========================================================================
# Wire format: reading JSON whatever the Content-Type, writing application/scim+json
# ===========================================================================

SCIM_MEDIA_TYPE = 'application/scim+json; charset=utf-8'


def read_json(limit=None, too_large=None):
    """The request body as a JSON object, or a SCIM 4xx.

    Bottle's `request.json` ignores application/scim+json, so the body is read
    here, whatever the Content-Type, up to `limit` bytes (the configured
    max_body_bytes unless given); a larger body is a 413 with the `too_large`
    detail, if given."""
    limit = request.app.settings['max_body_bytes'] if limit is None else limit
    too_large = too_large or f'The body is larger than {limit} bytes.'
    if request.content_length > limit:
        raise ScimError(413, None, too_large)
    body = request.environ['wsgi.input'].read(request.content_length if request.content_length >= 0 else limit + 1)
    if len(body) > limit:
        raise ScimError(413, None, too_large)
    try:
        document = json.loads(body.decode('utf-8'), parse_constant=_refuse_constant, parse_float=_finite_float)
        # "\ud800" is valid JSON but no text: it could be neither stored nor answered.
        # Strict UTF-8 holds no surrogates, so only a \u escape can make one.
        if b'\\u' in body:
            json.dumps(document, ensure_ascii=False, allow_nan=False).encode('utf-8')
    except UnicodeError:
        raise ScimError(400, 'invalidSyntax', 'The body is not UTF-8 text.') from None
    except (ValueError, RecursionError) as error:
        raise ScimError(400, 'invalidSyntax', f'The body is not valid JSON: {error}') from None
    if not isinstance(document, dict):
        raise ScimError(400, 'invalidSyntax', 'The body must be a JSON object.')
    if body.count(b'{') + body.count(b'[') > MAX_JSON_DEPTH and json_depth(document) > MAX_JSON_DEPTH:
        raise ScimError(400, 'invalidSyntax', f'The body nests deeper than {MAX_JSON_DEPTH} levels.')
    try:
        where = nul_in(document) if b'\\u0000' in body else None
    except RecursionError:
        raise ScimError(400, 'invalidSyntax', 'The body is nested too deeply.') from None
    if where is not None:   # no text can hold one (PostgreSQL's cannot)
        raise ScimError(400, 'invalidValue', f'{where} holds a NUL character (\\u0000).')
    return document


MAX_JSON_DEPTH = 32   # SCIM needs 4 (an extension's complex multi-valued attribute); this is plenty


def json_depth(document):
    """How deeply objects and lists nest in `document` (walked without recursion)."""
    deepest, pending = 0, [(document, 1)]
    while pending:   # only objects and lists are queued: a bulk request holds thousands of values
        value, depth = pending.pop()
        deepest = max(deepest, depth)
        for item in value.values() if isinstance(value, dict) else value:
            if isinstance(item, (dict, list)):
                pending.append((item, depth + 1))
    return deepest


def nul_in(value, where=''):
    """The path of the first string (or key) in `value` holding a NUL character, or None."""
    if isinstance(value, str):
        return where if '\x00' in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f'[{i}]', item) for i, item in enumerate(value))
    else:
        return None
    for key, item in items:
        if '\x00' in key:
            return f'A key in {where}' if where else 'A key'
        found = nul_in(item, f'{where}.{key}' if where and not key.startswith('[') else f'{where}{key}')
        if found is not None:
            return found
    return None


def _refuse_constant(name):
    raise ValueError(f'{name} is not a JSON number')


def _finite_float(text):
    """1e999 is valid JSON, but Python reads it as infinity, which JSON cannot answer."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f'{text} is too large a number')
    return value


def scim_reply(document, status=200, location=None, version=None):
    """Write a SCIM response: the media type, and Location and ETag where given.

    `document` is a dict, JSON text already encoded (see render), or Pieces of it:
    those are sent as they are made (sent_in_pieces)."""
    response.status = status
    response.content_type = SCIM_MEDIA_TYPE
    if location:
        response.set_header('Location', location)
    if version is not None:
        response.set_header('ETag', etag(version))
    if isinstance(document, Pieces):
        return sent_in_pieces(document, f'{request.method} {request.path}')
    return (document if isinstance(document, str) else encode(document)).encode('utf-8')


SENT_AT_ONCE = 64 * 1024   # bytes of a streamed answer handed to the server at a time


class AnswerCutShort(Exception):
    """A streamed answer failed after its status line went out: the connection is
    closed before the answer's end (a chunked answer without its last chunk), which
    every HTTP client reports as an incomplete answer."""


def sent_in_pieces(pieces, what):
    """The bytes of a streamed answer, in chunks of about SENT_AT_ONCE.

    The first piece needs no database and goes while the request is being served
    (Bottle takes it before it answers); the rest are made as the server sends
    them, after the request's serving() has ended: in one of their own, with a
    thread added to the server's meanwhile (STREAMS), so that a large answer, or a
    client reading it slowly, does not hold up the requests behind it."""
    pieces = iter(pieces)
    data = next(pieces).encode('utf-8')
    yield data
    sent, chunk = len(data), []
    try:
        with store.serving(), STREAMS.one():
            size = 0
            for piece in pieces:
                chunk.append(piece)
                size += len(piece)
                if size >= SENT_AT_ONCE:
                    data = ''.join(chunk).encode('utf-8')
                    chunk, size = [], 0
                    sent += len(data)
                    yield data
            data = ''.join(chunk).encode('utf-8')
    except Exception as error:
        fault = store.storage_fault(error) or store.first_line(error)
        log.warning('%s: answer cut short after %d bytes: %s', what, sent, fault)
        raise AnswerCutShort(fault) from None
    yield data


class Streams:
    """waitress's thread count follows what is going on: `threads`, LOCK_WAITERS
    more while any write waits for a lock (store.watch_long_waits), and one more per
    answer being streamed, STREAM_THREADS at most. Without a server (tests, the
    zip's checks), only counted."""

    def __init__(self):
        self.lock = threading.Lock()
        self.streaming = 0
        self.waiting = False
        self.dispatcher = self.base = None

    def serve_with(self, dispatcher, base):
        self.dispatcher, self.base = dispatcher, base

    def waits(self, waiting):
        self.waiting = waiting
        self.adjust()

    @contextlib.contextmanager
    def one(self):
        with self.lock:
            self.streaming += 1
        self.adjust()
        try:
            yield
        finally:
            with self.lock:
                self.streaming -= 1
                last = not self.streaming
            self.adjust()
            if last:
                release_freed_memory()

    def adjust(self):
        if self.dispatcher is not None:
            with self.lock:
                self.dispatcher.set_thread_count(self.base + (LOCK_WAITERS if self.waiting else 0)
                                                 + min(self.streaming, STREAM_THREADS))


STREAMS = Streams()


def etag(version):
    return f'W/"{version}"'


def if_match():
    """If-Match as the set of stored versions it accepts (see accepted_versions)."""
    return accepted_versions(request.environ.get('HTTP_IF_MATCH'))   # raw: Bottle's get_header fails on non-UTF-8


def accepted_versions(header):
    """An If-Match header (or a bulk operation's `version`) as the set of stored
    versions it accepts: None when absent or `*`.

    Tags that name no version of ours (`"abc"`) match nothing, so a set of only
    such tags ends in 412."""
    if not header or header.strip() == '*':
        return None
    versions = set()
    for tag in header.split(','):
        text = tag.strip()
        text = (text[2:] if text.startswith('W/') else text).strip('"')
        if text.isascii() and text.isdigit() and len(text) <= 18:   # a version we could have written
            versions.add(int(text))
    return frozenset(versions)


def not_modified(version):
    """True if If-None-Match names `version` (a GET then answers 304)."""
    header = request.environ.get('HTTP_IF_NONE_MATCH')
    if not header:
        return False
    tags = {tag.strip() for tag in header.split(',')}
    return '*' in tags or etag(version) in tags or f'"{version}"' in tags


def base_url():
    """The public address of the SCIM API: `base_url` if set, else from the request
    (honouring X-Forwarded-Proto and -Host, as ngrok sends them)."""
    settings = request.app.settings
    if settings['base_url']:
        return settings['base_url']
    environ = request.environ
    if 'scimlite.base_url' not in environ:   # once per request: every $ref and location uses it
        scheme = environ.get('HTTP_X_FORWARDED_PROTO') or environ.get('wsgi.url_scheme', 'http')
        host = environ.get('HTTP_X_FORWARDED_HOST') or environ.get('HTTP_HOST') or \
            f'{environ.get("SERVER_NAME", "127.0.0.1")}:{environ.get("SERVER_PORT", "80")}'
        prefix = environ.get('SCRIPT_NAME', '').rstrip('/')
        environ['scimlite.base_url'] = f'{scheme}://{host}{prefix}{settings["base_path"]}'
    return environ['scimlite.base_url']


# ===========================================================================
# Resources: a stored record -> the JSON we answer; lists and projections
# ===========================================================================

def render(record, kind, projection=None):
    """A stored record -> the SCIM resource we answer with: JSON text, or with a
    projection a document to project and encode; a group whose members are a
    store.MemberStream: a Pieces of its text.

    Without a projection the stored JSON text is spliced into the answer as it
    is: a page of 100 users is not parsed and encoded again (it holds no id,
    meta or membership, which are added here)."""
    base = base_url()
    # membership comes from the link rows (an empty list when there is none)
    membership = kind.membership
    name, value_type, other = membership.attribute, membership.value_type, f'{base}{membership.other_endpoint}/'
    links = record['links']
    streamed = isinstance(links, store.MemberStream)
    members = [] if streamed else member_items(links, value_type, other)
    location = f'{base}{kind.endpoint}/{record["id"]}'
    if projection is None or projection.drops_only(name):
        # created and lastModified are our own fixed-width UTC stamps: nothing to escape.
        listed = '' if projection else f'"{name}":{MEMBERS_HERE if streamed else encode(members) if members else "[]"},'
        text = (f'{record["json"][:-1]},"id":{quote(record["id"])},{listed}'
                f'"meta":{{"resourceType":"{kind.name}","created":"{record["created"]}",'
                f'"lastModified":"{record["last_modified"]}","location":{quote(location)},'
                f'"version":{quote(etag(record["version"]))}}}}}')
        return Pieces.of_members(text, links, value_type, other, None) if streamed else text
    document = {'id': record['id'], **record['resource'], name: members, 'meta': {
        'resourceType': kind.name, 'created': record['created'], 'lastModified': record['last_modified'],
        'location': location, 'version': etag(record['version'])}}
    if not streamed:
        return projection.apply(document)
    # Which of a member's keys the projection keeps: those of a member it is shown.
    document[name] = [{'value': '', 'display': '', 'type': '', '$ref': ''}]
    projected = projection.apply(document)
    if name not in projected:
        return projected
    keys = tuple(projected[name][0]) if projected[name] else ()
    projected[name] = MEMBERS_MARK
    return Pieces.of_members(encode(projected), links, value_type, other, keys)


def member_items(links, value_type, other):
    """Membership as answered: (other id, its display) -> value, display, type, $ref."""
    return [{'value': other_id, 'display': display, 'type': value_type, '$ref': other + other_id}
            for other_id, display in links]


# Where a streamed group's members go in its text: a string no resource holds (a
# value with a NUL is refused), encoded as JSON (MEMBERS_HERE).
MEMBERS_MARK = '\x00members\x00'


class Pieces:
    """An answer's JSON text in pieces (str), for an answer too large to hold at
    once: the first needs no database, the others are read as they are sent."""

    def __init__(self, pieces):
        self.pieces = pieces

    def __iter__(self):
        return iter(self.pieces)

    @classmethod
    def of_members(cls, text, stream, value_type, other, keys):
        """`text` with its members (MEMBERS_HERE) read from `stream`, a piece at a
        time; each member with only `keys` where not None."""
        head, tail = text.split(MEMBERS_HERE, 1)

        def pieces():
            yield head + '['
            comma = ''
            for rows in stream:
                members = member_items(rows, value_type, other)
                if keys is not None:
                    members = [{key: member[key] for key in keys} for member in members]
                yield comma + encode(members)[1:-1]
                comma = ','
            yield ']' + tail
        return cls(pieces())


quote = json.JSONEncoder(ensure_ascii=False).encode   # one JSON string


def encode(document):
    return json.dumps(document, ensure_ascii=False, separators=(',', ':'), allow_nan=False)


MEMBERS_HERE = encode(MEMBERS_MARK)


# ---------------------------------------------------------------------------
# Query parameters: paging and attribute projection
# ---------------------------------------------------------------------------

def query_parameters():
    """The query string as {name: still-quoted value}, read once per request; a
    repeated name keeps its last value, as Bottle's request.query does."""
    environ = request.environ
    found = environ.get('scimlite.query')
    if found is None:
        found = environ['scimlite.query'] = {}
        for pair in environ.get('QUERY_STRING', '').split('&'):
            if pair:
                name, _, value = pair.partition('=')
                found[unquote(name.replace('+', ' '), 'latin-1')] = value
    return found


def query_parameter(name):
    """A query parameter as text, percent-decoded as UTF-8 (what browsers and IdPs
    send; Bottle would decode latin-1), or a 400."""
    value = query_parameters().get(name)
    if value is None:
        return None
    try:
        return unquote(value.replace('+', ' '), 'utf-8', 'strict')
    except UnicodeError:
        raise ScimError(400, 'invalidValue', f'{name} is not UTF-8.') from None


SEARCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest'
MAX_INDEX = 2 ** 62   # startIndex and count are held below what a database's OFFSET takes


class UnknownSortAttribute(ScimError):
    """sortBy names an attribute this resource type does not have."""


class ListRequest:
    """What a list asks for (RFC 7644 §3.4.2): filter, sortBy/sortOrder, startIndex,
    count, attributes/excludedAttributes. From the query string of a GET, or from
    the SearchRequest body of a POST .search (§3.4.3): the same rules for both."""

    def __init__(self, kind, parameters, settings, across_types=False):
        self.kind = kind
        self.parameters = parameters
        # At the server root, the UnknownAttributes of the filter's attributes `kind` lacks.
        self.lacking = [] if across_types else None
        self.start_index = max(1, self.integer('startIndex', 1))
        count = self.integer('count', settings['default_page_size'])
        self.count = min(max(0, count), settings['max_page_size'])
        self.filter = self.parse_filter()
        self.sort = self.parse_sort() if 'sortBy' in parameters or 'sortOrder' in parameters else None
        self.projection = (self.parse_projection() if 'attributes' in parameters or 'excludedAttributes' in parameters
                           else None)

    NAMES = ('filter', 'startIndex', 'count', 'sortBy', 'sortOrder', 'attributes', 'excludedAttributes')

    @classmethod
    def from_query(cls, kind):
        return cls(kind, cls.query(), request.app.settings)

    @classmethod
    def query(cls):
        """The list parameters of the query string."""
        query = query_parameters()
        return {name: query_parameter(name) for name in cls.NAMES if name in query} if query else {}

    @classmethod
    def from_body(cls, kind, body):
        return cls(kind, search_body(body), request.app.settings)

    def text(self, name):
        value = self.parameters.get(name)
        if value is not None and not isinstance(value, str):
            raise ScimError(400, 'invalidValue', f'{name} must be a string.')
        return value.strip() if value else None

    def integer(self, name, default):
        value = self.parameters.get(name)
        if value is None or value == '':
            return default
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip('+-').isascii():
            with contextlib.suppress(ValueError):
                number = int(value)
        if number is None:
            raise ScimError(400, 'invalidValue', f'{name} must be an integer, not {value!r}.')
        return max(-MAX_INDEX, min(number, MAX_INDEX))   # past that, as good as infinite

    def comma_list(self, name):
        """attributes / excludedAttributes as one comma-separated text: given so in a
        query, as a list of names in a body."""
        value = self.parameters.get(name)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return ','.join(value)
        return self.text(name)

    def parse_filter(self):
        text = self.text('filter')
        if not text:
            return None
        try:
            expr = F.parse_filter(text)
        except F.FilterSyntaxError as error:
            raise ScimError(400, 'invalidFilter', f'Bad filter: {error}.') from None
        return canonical_filter(expr, self.kind, lacking=self.lacking)

    def parse_sort(self):
        """(AttrPath in schema spelling, descending) or None."""
        order = (self.text('sortOrder') or 'ascending').lower()
        if order not in ('ascending', 'descending'):
            raise ScimError(400, 'invalidValue', 'sortOrder must be ascending or descending.')
        text = self.text('sortBy')
        if not text:
            return None
        try:
            path = F.parse_path(text)
        except F.FilterSyntaxError as error:
            raise ScimError(400, 'invalidValue', f'Bad sortBy {text!r}: {error}.') from None
        if path.filter is not None:
            raise ScimError(400, 'invalidValue', 'sortBy names one attribute, without a filter.')
        try:
            path, definition = canonical_attr_path(path.path, self.kind)
        except ScimError:
            raise UnknownSortAttribute(400, 'invalidValue', f'sortBy: unknown attribute {text!r}.') from None
        single_complex = definition and definition['type'] == 'complex' and not definition['multiValued']
        if path.attr == self.kind.membership.attribute or (single_complex and not path.sub):
            raise ScimError(400, 'invalidValue', f'sortBy {text!r} has no single value to sort by.')
        return path, order == 'descending'

    def parse_projection(self):
        return projection_of(self.kind, self.comma_list('attributes'), self.comma_list('excludedAttributes'))


def search_body(body):
    """A SearchRequest body (RFC 7644 §3.4.3), once its schemas say it is one."""
    schemas = body.get('schemas')
    if not isinstance(schemas, list) or SEARCH_SCHEMA not in schemas:
        raise ScimError(400, 'invalidSyntax', f'schemas must be ["{SEARCH_SCHEMA}"].')
    return body


def projection_of(kind, wanted, unwanted):
    if wanted and unwanted:
        raise ScimError(400, 'invalidValue', 'Give attributes or excludedAttributes, not both.')
    if not (wanted or unwanted):
        return None
    return Projection(kind, wanted or unwanted, include=bool(wanted))


class UnknownAttribute(ScimError):
    """A filter names an attribute the resource type does not have (`path`, as written)."""

    def __init__(self, path, detail):
        super().__init__(400, 'invalidFilter', detail)
        self.path = str(path).lower()


def canonical_filter(expr, kind, within=None, lacking=None):
    """The filter with every attribute spelled as its schema spells it (SCIM names are
    case-insensitive, the stored JSON is not), and a boolean's "true"/"false" strings
    as booleans (Entra's `roles[primary eq "True"]`); an unknown core attribute is a 400.
    `within` is the multi-valued attribute whose sub-attributes a [filter] names.

    `meta.resourceType` is the same for every resource of `kind`: its terms become
    constants. With a list `lacking` (a query at the server root, across types), a
    term naming an attribute `kind` lacks is answered as for an absent value, and
    the UnknownAttribute is appended to `lacking` instead of raised."""
    if isinstance(expr, (F.And, F.Or)):
        return type(expr)(canonical_filter(expr.left, kind, within, lacking),
                          canonical_filter(expr.right, kind, within, lacking))
    if isinstance(expr, F.Not):
        return F.Not(canonical_filter(expr.expr, kind, within, lacking))
    if within is None:
        try:
            path, definition = canonical_attr_path(expr.path, kind)
        except UnknownAttribute as error:
            if lacking is None:
                raise
            lacking.append(error)
            return F.Constant(absent_matches(expr))
    if isinstance(expr, F.ValuePath):
        return F.ValuePath(path, canonical_filter(expr.filter, kind, definition))
    if within is not None:
        path = canonical_sub_path(expr.path, within)
        leaf = sub_attributes(within)[path.attr.lower()]
    else:
        leaf = sub_attributes(definition)[path.sub.lower()] if definition and path.sub else definition
    if isinstance(expr, F.Present):
        return F.Constant(True) if path == RESOURCE_TYPE else F.Present(path)
    if path == RESOURCE_TYPE:
        return F.Constant(resource_type_matches(kind, expr.op, expr.value))
    return F.Compare(path, expr.op, comparable(leaf, expr.value))


RESOURCE_TYPE = F.AttrPath('meta', 'resourceType')


def absent_matches(term):
    """Whether a comparison, `pr` or value path matches a resource without the attribute
    it names: RFC 7644 §3.4.2.2, "pr: If the attribute has a non-empty value ...
    there is a match", and eq wants "identical" values; so only `ne` a value, and
    `eq null`, match it."""
    if not isinstance(term, F.Compare):
        return False
    return term.value is not None if term.op == 'ne' else term.op == 'eq' and term.value is None


STRING_OPERATORS = {
    'eq': str.__eq__, 'ne': str.__ne__, 'co': str.__contains__, 'sw': str.startswith, 'ew': str.endswith,
    'gt': str.__gt__, 'ge': str.__ge__, 'lt': str.__lt__, 'le': str.__le__,
}


def resource_type_matches(kind, op, value):
    """`meta.resourceType op value` for every resource of `kind`, ignoring case, as the
    store compares a caseExact=false string."""
    if not isinstance(value, str):
        raise ScimError(400, 'invalidFilter', 'meta.resourceType is compared with a "string".')
    return STRING_OPERATORS[op](kind.name.lower(), value.lower())


def canonical_attr_path(path, kind):
    """(AttrPath in schema spelling, the attribute's definition or None); an attribute
    `kind` does not have is an UnknownAttribute."""
    urn = kind.known_urn(path.urn) if path.urn else None
    if path.urn and urn is None:
        if path.urn.lower() in (USER_SCHEMA.lower(), GROUP_SCHEMA.lower()):
            raise UnknownAttribute(path, f'{path} belongs to another resource type.')
        return path, None    # an extension we do not know (Okta custom attributes): as sent
    definitions = kind.definition(urn) if urn and urn != kind.schema else kind.searchable
    definition = definitions.get(path.attr.lower())
    if definition is None:
        raise UnknownAttribute(path, f'Unknown attribute {path} in the filter.')
    sub = None
    if path.sub:
        sub = canonical_sub_path(F.AttrPath(path.sub), definition).attr
    canonical_urn = urn if urn and urn != kind.schema else None
    return F.AttrPath(definition['name'], sub, canonical_urn), definition


def canonical_sub_path(path, parent):
    subs = sub_attributes(parent)
    if path.urn or path.sub or path.attr.lower() not in subs:
        raise ScimError(400, 'invalidFilter', f'{parent["name"]} has no sub-attribute {path}.')
    return F.AttrPath(subs[path.attr.lower()]['name'])


ALWAYS_RETURNED = ('id', 'schemas', 'meta')


class Projection:
    """`attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5): what a response carries.

    Names match ignoring case; `name.sub` reaches into a complex or a multi-valued
    attribute; an extension URN names the whole extension and `urn:...:attr[.sub]`
    one of its attributes. `id`, `schemas` and `meta` always stay."""

    def __init__(self, kind, text, include):
        self.include = include
        self.paths = [self.parse(name.strip(), kind) for name in text.split(',') if name.strip()]

    @staticmethod
    def parse(name, kind):
        """-> (extension URN or None, attribute or None for the whole extension, sub or None)."""
        whole = kind.known_urn(name)
        if whole and whole != kind.schema:
            return whole, None, None
        try:
            path = F.parse_path(name)
        except F.FilterSyntaxError as error:
            raise ScimError(400, 'invalidValue', f'Bad attribute name {name!r}: {error}.') from None
        if path.filter is not None:
            raise ScimError(400, 'invalidValue', f'{name!r}: attribute names take no filter here.')
        urn = path.path.urn
        if urn and kind.known_urn(urn) == kind.schema:
            urn = None
        return urn, path.path.attr, path.path.sub

    def wants(self, attribute):
        """Whether a core attribute (e.g. members) appears at all: if not, it need not be read."""
        named = [sub for urn, attr, sub in self.paths if urn is None and attr and attr.lower() == attribute]
        return bool(named) if self.include else None not in named

    def drops_only(self, attribute):
        """Whether it only leaves out a core attribute (`excludedAttributes=groups`): then
        the stored text is spliced without it (render), not parsed and encoded again."""
        return not self.include and all(urn is None and attr and attr.lower() == attribute and sub is None
                                        for urn, attr, sub in self.paths)

    def apply(self, document):
        if self.include:
            kept = {key: value for key, value in document.items() if key in ALWAYS_RETURNED}
            for urn, attr, sub in self.paths:
                _copy_attribute(document, kept, urn, attr, sub)
            return kept
        kept = copy.deepcopy(document)
        for urn, attr, sub in self.paths:
            _drop_attribute(kept, urn, attr, sub)
        return kept


def _copy_attribute(source, target, urn, attr, sub):
    if urn is not None:
        key = find_key(source, urn)
        if key is None:
            return
        if attr is None:
            target[key] = source[key]
            return
        source, target = source[key], target.setdefault(key, {})
    key = find_key(source, attr)
    if key is None:
        return
    value = source[key]
    if sub is None:
        target[key] = value
    elif isinstance(value, dict):
        target.setdefault(key, {}).update((k, v) for k, v in value.items() if k.lower() == sub.lower())
    elif isinstance(value, list):
        picked = target.setdefault(key, [{} for _ in value])
        for item, chosen in zip(value, picked, strict=False):
            if isinstance(item, dict):
                chosen.update((k, v) for k, v in item.items() if k.lower() == sub.lower())


def _drop_attribute(document, urn, attr, sub):
    container = document
    if urn is not None:
        key = find_key(document, urn)
        if key is None:
            return
        if attr is None:
            del document[key]
            return
        container = document[key]
    key = find_key(container, attr)
    if key is None or (urn is None and key in ALWAYS_RETURNED):
        return
    if sub is None:
        del container[key]
        return
    for item in container[key] if isinstance(container[key], list) else [container[key]]:
        if isinstance(item, dict):
            item.pop(find_key(item, sub) or sub, None)


def projection_from_query(kind):
    """attributes / excludedAttributes of a request on one resource (or None)."""
    if not request.environ.get('QUERY_STRING'):
        return None
    return projection_of(kind, query_parameter('attributes'), query_parameter('excludedAttributes'))


def list_response(records, total, start_index, kind, projection):
    """A ListResponse of stored records as JSON text."""
    return list_document([render(record, kind, projection) for record in records], total, start_index)


def list_document(resources, total, start_index):
    """A ListResponse as JSON text, of rendered resources (spliced text or documents,
    see render); Pieces if any of them is."""
    head = (f'{{"schemas":["{LIST_SCHEMA}"],"totalResults":{int(total)},"startIndex":{int(start_index)},'
            f'"itemsPerPage":{len(resources)},"Resources":[')
    if any(isinstance(item, Pieces) for item in resources):
        return Pieces(_listed_in_pieces(head, resources))
    return head + ','.join(item if isinstance(item, str) else encode(item) for item in resources) + ']}'


def _listed_in_pieces(head, resources):
    yield head
    for number, item in enumerate(resources):
        comma = ',' if number else ''
        if isinstance(item, Pieces):
            yield comma
            yield from item
        else:
            yield comma + (item if isinstance(item, str) else encode(item))
    yield ']}'


# ===========================================================================
# Routes: discovery
# ===========================================================================

def discovery_meta(resource_type, path):
    return {'resourceType': resource_type, 'location': f'{base_url()}{path}'}


# What authenticate() takes (RFC 7643 §5), the standard form first.
AUTHENTICATION_SCHEMES = [
    {'type': 'oauthbearertoken', 'name': 'OAuth Bearer Token',
     'description': 'Authorization: Bearer <token>, with a token set by --token, SCIM_TOKEN or token in '
                    'config.ini (no OAuth server: the token is configured, not issued). Also taken, and '
                    'flagged on the console and the dashboard: the token alone, and "Bearer Bearer <token>".',
     'specUri': 'https://www.rfc-editor.org/info/rfc6750', 'primary': True},
    {'type': 'httpbasic', 'name': 'HTTP Basic',
     'description': 'Authorization: Basic, with any user name and a token as the password (for Okta\'s '
                    '"SCIM 2.0 Test App (Basic Auth)"); flagged on the console and the dashboard.',
     'specUri': 'https://www.rfc-editor.org/info/rfc7617', 'primary': False},
]


def service_provider_config():
    """GET /ServiceProviderConfig: what this server supports, honestly."""
    settings = request.app.settings
    return scim_reply({
        'schemas': [SPC_SCHEMA],
        'patch': {'supported': True},
        'bulk': {'supported': True, 'maxOperations': settings['bulk_max_operations'],
                 'maxPayloadSize': settings['bulk_max_payload_bytes']},
        'filter': {'supported': True, 'maxResults': settings['max_page_size']},
        'changePassword': {'supported': False},
        'sort': {'supported': True},
        'etag': {'supported': True},
        'authenticationSchemes': AUTHENTICATION_SCHEMES,
        'meta': discovery_meta('ServiceProviderConfig', '/ServiceProviderConfig'),
    })


def resource_type_document(kind):
    return {
        'schemas': [RESOURCE_TYPE_SCHEMA],
        'id': kind.name,
        'name': kind.name,
        'endpoint': kind.endpoint,
        'description': f'{kind.name}s',
        'schema': kind.schema,
        'schemaExtensions': [{'schema': urn, 'required': False} for urn in kind.extensions],
        'meta': discovery_meta('ResourceType', f'/ResourceTypes/{kind.name}'),
    }


def schema_document(urn):
    name, description, attributes = request.app.catalog.schemas[urn]
    return {
        'schemas': [SCHEMA_SCHEMA],
        'id': urn,
        'name': name,
        'description': description,
        'attributes': attributes,
        'meta': discovery_meta('Schema', f'/Schemas/{urn}'),
    }


def discovery_list(documents):
    return {'schemas': [LIST_SCHEMA], 'totalResults': len(documents), 'startIndex': 1,
            'itemsPerPage': len(documents), 'Resources': documents}


def resource_types():
    """GET /ResourceTypes."""
    return scim_reply(discovery_list([resource_type_document(kind) for kind in request.app.catalog.resource_types]))


def resource_type(name):
    """GET /ResourceTypes/{name}."""
    kind = request.app.catalog.resource_type(name)
    if kind is None:
        raise ScimError(404, None, f'No resource type {name!r}.')
    return scim_reply(resource_type_document(kind))


def schemas():
    """GET /Schemas."""
    return scim_reply(discovery_list([schema_document(urn) for urn in request.app.catalog.schemas]))


def schema(urn):
    """GET /Schemas/{urn}."""
    known = request.app.catalog.schema_urn(urn)
    if known is None:
        raise ScimError(404, None, f'No schema {urn!r}.')
    return scim_reply(schema_document(known))


# ===========================================================================
# Routes: users and groups, one handler per verb
# ===========================================================================
#
# Each handler takes the resource type (scimschema.ResourceType: what the
# protocol says of it) and its Storage (what the store does with it).

@dataclasses.dataclass(frozen=True)
class Storage:
    """A resource type's store functions, with one signature for users and groups."""
    get: object      # (id, with_members) -> record
    list: object     # (filter, start_index, count, with_members, multi_valued, sort) -> (total, records)
    create: object   # (resource, member ids) -> record
    update: object   # (id, change, expected versions, with_members) -> record, where
    #                  change(record) -> (new resource, store member changes)
    delete: object   # (id, expected versions)
    # The workshop board's milestones (store.MILESTONES) a write reaches: a create's,
    # and an update's, (stored record, new resource, the record written) -> names.
    created_milestone: str
    update_milestones: object
    connection_checked: bool = False   # a GET of the list may be an IdP's connection check


def user_update_milestones(stored, resource, record):
    # `stored` is a Record: its resource is parsed only if asked for, here only
    # when the new one is inactive. A write that changed nothing made no version.
    if record['version'] == stored['version']:
        return ()
    if resource.get('active') is False and stored['resource'].get('active') is not False:
        return ('user_updated', 'user_deactivated')
    return ('user_updated',)


def group_update_milestones(stored, resource, record):
    # The link rows written, not the members named: a PUT naming the members a group
    # already has (the sample data's, an IdP re-sending it) adds none.
    return ('member_added',) if record.get('members_added') else ()


STORAGE = {
    # A user's membership is read-only (groups): no member ids, no member changes.
    'User': Storage(
        get=lambda user_id, with_members: store.get_user(user_id),
        list=lambda where, start, count, with_members, multi_valued, sort: store.list_users(
            where, start, count, multi_valued, sort, with_members),
        create=lambda resource, member_ids: store.create_user(resource),
        update=lambda user_id, change, expected, with_members: store.update_user(
            user_id, lambda current: change(current)[0], expected),
        delete=store.delete_user,
        created_milestone='user_created', update_milestones=user_update_milestones, connection_checked=True),
    'Group': Storage(get=store.get_group, list=store.list_groups, create=store.create_group,
                     update=store.update_group, delete=store.delete_group,
                     created_milestone='group_pushed', update_milestones=group_update_milestones),
}

STORAGE_RETRY_AFTER = '30'   # seconds, after a full disk or a storage failure
# The store's exceptions as SCIM errors:
# (exception, status, scimType, detail with {} for its text, headers).
STORE_ERROR_ANSWERS = (
    (store.NotFound, 404, None, 'Resource {} not found.', {}),
    (store.Conflict, 409, 'uniqueness', '{}.', {}),
    (store.VersionMismatch, 412, None, 'The resource has changed: its version does not match If-Match.', {}),
    (store.UnknownMembers, 400, 'invalidValue', 'No user with id {}: members must be existing users.', {}),
    (store.UnsupportedFilter, 400, 'invalidFilter', '{}.', {}),
    (store.TooLong, 400, 'invalidValue', '{}.', {}),
    (store.NoTarget, 400, 'noTarget', '{}.', {}),
    (store.Busy, 503, None, '{}.', {'Retry_After': '1'}),   # the IdP tries again
    # Storage faults wait for a person (free space, fix the disk): the IdP tries later.
    (store.StorageFull, 507, None, 'The database is out of disk space; nothing was written. '
                                   'Try again once space is freed.', {'Retry_After': STORAGE_RETRY_AFTER}),
    (store.StorageFailed, 503, None, 'The database cannot be written to; nothing was written. '
                                     'Try again later.', {'Retry_After': STORAGE_RETRY_AFTER}),
)


class ScimErrorsFromStore:
    """`with scim_errors_from_store:` around store calls: the store's own exceptions
    become SCIM errors, here and nowhere else."""

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if error_type is None or not issubclass(error_type, store.StoreError):
            return False
        if issubclass(error_type, (store.StorageFull, store.StorageFailed)):
            return False   # answered, and logged, by scim_errors_answered
        answer = store_error_answer(error)
        if answer is None:
            return False
        raise answer from None


def store_error_answer(error):
    """The ScimError STORE_ERROR_ANSWERS gives a StoreError, or None."""
    for exception, status, scim_type, detail, headers in STORE_ERROR_ANSWERS:
        if isinstance(error, exception):
            return ScimError(status, scim_type, detail.format(error), **headers)
    return None


scim_errors_from_store = ScimErrorsFromStore()


def reply_resource(record, kind, status=200, projection=None):
    location = f'{base_url()}{kind.endpoint}/{record["id"]}'
    return scim_reply(render(record, kind, projection), status, location, record['version'])


def choose_patch_answer(projection, default):
    """Whether a PATCH answers 200 with the resource or 204 without (RFC 7644 §3.5.2
    allows either), saying so in Preference-Applied when asked. `attributes` or
    `excludedAttributes` ask for the body (the RFC then requires 200), as does
    `Prefer: return=representation`; `Prefer: return=minimal` (RFC 7240) asks
    for none; otherwise `default`."""
    if projection is not None:
        return True
    found = PREFER_RETURN.search(request.environ.get('HTTP_PREFER', ''))
    if found:
        choice = found.group(1).lower()
        response.set_header('Preference-Applied', f'return={choice}')
        return choice == 'representation'
    return default


PREFER_RETURN = re.compile(r'(?:^|[,;])\s*return\s*=\s*"?(minimal|representation)"?\s*(?=$|[,;])', re.IGNORECASE)


def reply_no_content(record):
    """204, with the new version's ETag: the IdP has what it sent."""
    response.status = 204
    response.set_header('ETag', etag(record['version']))
    return b''


def reply_read(record, kind, projection):
    if not_modified(record['version']):
        response.status = 304
        response.set_header('ETag', etag(record['version']))
        return b''
    return reply_resource(record, kind, projection=projection)


def members_wanted(projection, kind):
    """Whether the answer shows membership (if not, no link row need be read)."""
    return projection is None or projection.wants(kind.membership.attribute)


def body_members(body, kind):
    """The member ids a POST or PUT body gives, or None where membership is read-only."""
    if not kind.membership.writable:
        return None
    name = kind.membership.attribute
    return tuple(member_ids(body.get(find_key(body, name) or name)))


def list_records(kind, storage, asked, start_index, count):
    """(totalResults, the records of the page from `start_index`, at most `count`)."""
    with scim_errors_from_store:
        return storage.list(asked.filter, start_index, count, members_wanted(asked.projection, kind),
                            kind.multi_valued, asked.sort)


def list_total(kind, storage, asked):
    with scim_errors_from_store:
        return storage.list(asked.filter, 1, 0, False, kind.multi_valued, None)[0]


def reply_list(kind, storage, asked):
    """The ListResponse of one resource type's page that `asked` describes."""
    total, records = list_records(kind, storage, asked, asked.start_index, asked.count)
    return scim_reply(list_response(records, total, asked.start_index, kind, asked.projection))


def resources_list(kind, storage):
    """GET /Users, /Groups: a ListResponse of the resources that match `filter`;
    `excludedAttributes=members` reads no link rows."""
    asked = ListRequest.from_query(kind)
    answer = reply_list(kind, storage, asked)
    if storage.connection_checked and is_connection_test(asked):
        reached('connection_test')
    return answer


# Entra's Test Connection looks a random GUID up (tests/idp/entra-test-connection.json).
GUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', re.IGNORECASE)


def is_connection_test(asked):
    """Whether a GET /Users is what an IdP's connection check sends. Okta's "Test API
    Credentials" (and its SCIM test suites' first read): the first page of one or two
    users, `startIndex=1&count=2`, no filter. Entra's "Test Connection": a user
    that cannot exist, `filter=userName eq "<random GUID>"` (or externalId)."""
    if asked.filter is None:
        return asked.start_index == 1 and 1 <= asked.count <= 2
    expr = asked.filter
    return (isinstance(expr, F.Compare) and expr.op == 'eq' and not expr.path.sub
            and expr.path.attr.lower() in ('username', 'externalid')
            and isinstance(expr.value, str) and GUID.fullmatch(expr.value) is not None)


def resources_search(kind, storage):
    """POST /Users/.search, /Groups/.search: the same, asked in a SearchRequest body (RFC 7644 §3.4.3)."""
    return reply_list(kind, storage, ListRequest.from_body(kind, read_json()))


# What each verb does, the same for a single request and for an operation of a bulk
# request: parse the body, call the store, turn its errors into SCIM errors. The
# routes add only what the HTTP request says (query, headers) and the reply.

def create_resource(kind, storage, body):
    """POST's work: the stored record (a group with its members)."""
    resource = clean_resource(body, kind)
    members = body_members(body, kind)
    with scim_errors_from_store:
        record = storage.create(resource, members or ())
    reached(storage.created_milestone)
    if members:
        reached('member_added')
    return record


def replace_resource(kind, storage, resource_id, body, expected, with_members):
    """PUT's work: a full replace, a group's whole member list too; read-only
    attributes in the body are ignored. `expected`: the versions If-Match accepts."""
    resource = clean_resource(body, kind)
    members = body_members(body, kind)
    changes = [] if members is None else [store.SetMembers(members)]
    change = Watched(storage, lambda _: (resource, changes))
    with scim_errors_from_store:
        record = storage.update(resource_id, change, expected, with_members)
    change.report(record)
    return record


def patch_resource(kind, storage, resource_id, body, expected, with_members):
    """PATCH's work, the IdP dialects normalised first: member changes touch only the
    link rows involved."""
    operations = scimpatch.read_patch_operations(body, kind, resource_id)

    change = Watched(storage, lambda current: scimpatch.patched_resource(kind, current, operations,
                                                                          store.MEMBER_CHANGES))
    with scim_errors_from_store:
        record = storage.update(resource_id, change, expected, with_members)
    change.report(record)
    return record


class Watched:
    """A store update's `change` function, watched for the workshop board: after the
    write, `report(record)` notes the milestones it reached (a user updated,
    deactivated; a member added). The last call is the one stored: an optimistic
    retry calls it again."""

    def __init__(self, storage, change):
        self.storage, self.change, self.seen = storage, change, None

    def __call__(self, current):
        changed = self.change(current)
        if store.current_seat() != store.INSTRUCTOR:   # the server's own data reaches none
            self.seen = (current, changed[0])
        return changed

    def report(self, record):
        if self.seen is not None:
            for milestone in self.storage.update_milestones(*self.seen, record):
                reached(milestone)


def reached(milestone):
    """Note, for the board, that this request's seat has reached `milestone`
    (store.MILESTONES); the dashboard's recorder stores it. Not for the server's own data."""
    if store.current_seat() != store.INSTRUCTOR:
        request.environ.setdefault(dashboard.MILESTONES_REACHED, set()).add(milestone)


def delete_resource(kind, storage, resource_id, expected):
    """DELETE's work."""
    with scim_errors_from_store:
        storage.delete(resource_id, expected)


def resource_create(kind, storage):
    """POST /Users, /Groups (a group with its members)."""
    projection = projection_from_query(kind)
    record = create_resource(kind, storage, read_json())
    return reply_resource(record, kind, 201, projection)


def resource_get(kind, storage, resource_id):
    """GET /Users/{id}, /Groups/{id}."""
    projection = projection_from_query(kind)
    with scim_errors_from_store:
        record = storage.get(resource_id, members_wanted(projection, kind))
    return reply_read(record, kind, projection)


def resource_replace(kind, storage, resource_id):
    """PUT /Users/{id}, /Groups/{id}."""
    projection = projection_from_query(kind)
    record = replace_resource(kind, storage, resource_id, read_json(), if_match(), members_wanted(projection, kind))
    return reply_resource(record, kind, projection=projection)


def resource_patch(kind, storage, resource_id):
    """PATCH /Users/{id}, /Groups/{id}: 200 with the resource or 204 (choose_patch_answer)."""
    projection = projection_from_query(kind)
    body = read_json()
    with_body = choose_patch_answer(projection, kind.patch_body_by_default)
    record = patch_resource(kind, storage, resource_id, body, if_match(),
                            with_body and members_wanted(projection, kind))
    if not with_body:
        return reply_no_content(record)
    return reply_resource(record, kind, projection=projection)


def resource_delete(kind, storage, resource_id):
    """DELETE /Users/{id}, /Groups/{id}."""
    delete_resource(kind, storage, resource_id, if_match())
    response.status = 204
    return b''


def root_search():
    """POST /.search: users, then groups, as one list (RFC 7644 §3.4.3)."""
    return reply_root_list(search_requests(search_body(read_json())))


def root_list():
    """GET at the base path with list parameters: the same as POST /.search (RFC 7644
    §3.4.2.1: "a query against a server root indicates that all resources within the
    server SHALL be included, subject to filtering")."""
    return reply_root_list(search_requests(ListRequest.query()))


def reply_root_list(asked):
    """The ListResponse of a query at the server root: users, then groups, as one list.

    The filter applies to each type; on a type that lacks an attribute the filter
    names, that attribute is absent (canonical_filter). sortBy sorts within each
    type (users still come first); a type that lacks the attribute keeps its
    stable order."""
    first = next(iter(asked.values()))
    start_index, count = first.start_index, first.count
    totals = {kind: list_total(kind, STORAGE[kind.name], each) for kind, each in asked.items()}
    resources, skipped = [], 0
    for kind, each in asked.items():
        # this type's part of the page: rows start_index..start_index+count-1 of the concatenation
        wanted = count - len(resources)
        if wanted > 0 and start_index - skipped <= totals[kind]:
            records = list_records(kind, STORAGE[kind.name], each, max(1, start_index - skipped), wanted)[1]
            resources.extend(render(record, kind, each.projection) for record in records)
        skipped += totals[kind]
    return scim_reply(list_document(resources, sum(totals.values()), start_index))


def search_requests(parameters):
    """{resource type: its ListRequest} of a query at the server root. A filter naming
    an attribute no type has is refused, as is a sortBy no type has; a type that
    lacks the sortBy attribute is listed unsorted."""
    asked, unsortable = {}, []
    for kind in request.app.catalog.resource_types:
        asked[kind], sort_error = search_request(kind, parameters)
        if sort_error is not None:
            unsortable.append(sort_error)
    lacked_by_all = set.intersection(*({error.path for error in each.lacking} for each in asked.values()))
    if lacked_by_all:
        raise next(error for error in next(iter(asked.values())).lacking if error.path in lacked_by_all)
    if len(unsortable) == len(asked):
        raise unsortable[0]
    return asked


def search_request(kind, parameters):
    """(ListRequest, None), or (the request unsorted, UnknownSortAttribute) when this
    type lacks the sortBy attribute."""
    settings = request.app.settings
    try:
        return ListRequest(kind, parameters, settings, across_types=True), None
    except UnknownSortAttribute as error:
        unsorted = {name: value for name, value in parameters.items() if name != 'sortBy'}
        return ListRequest(kind, unsorted, settings, across_types=True), error


def me_not_implemented():
    """/Me (RFC 7644 §3.11) is the resource of the subject the token names; scimlite's
    tokens name no user. The RFC's answer for a server without it: 501, not a 404."""
    raise ScimError(501, None, '/Me is not implemented: a scimlite token names no user. '
                    'Use /Users/{id}.')


# ===========================================================================
# Routes: bulk (RFC 7644 §3.7)
# ===========================================================================
#
# Each operation goes through the same create/replace/patch/delete_resource as its
# single request, and is as atomic as that request: one that fails leaves nothing
# half-written and undoes no other (the RFC's "disregard partial failures"). The
# operations are written in one transaction, each in a savepoint of its own: a
# commit a request, not one an operation, more than doubled the users a bulk
# request creates per second on SQLite (README, Bulk). Only a fault of the database
# itself (a full disk, a lost connection) fails the request as a whole, and then
# none of it is written.

BULK_REQUEST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest'
BULK_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse'
BULK_ID_PREFIX = 'bulkId:'
BULK_METHODS = ('POST', 'PUT', 'PATCH', 'DELETE')
# How long a bulk request holds the writer's turn (on SQLite, the database's one write
# lock) before it commits what it has written and lets other writes in.
BULK_SLICE_SECONDS = 0.1


@dataclasses.dataclass
class BulkOperation:
    """One operation of a BulkRequest, as read. `problem` is the ScimError that fails
    it before it runs (a bad method, path or data); `resource_id` may still be a
    `bulkId:` reference, and `references` are the bulkIds its data names."""
    method: str
    bulk_id: str | None
    version: str | None
    kind: object = None
    resource_id: str | None = None
    data: object = None
    references: frozenset = frozenset()
    problem: ScimError | None = None

    def echo(self):
        """What the response repeats of the request: method, and bulkId if given."""
        return {'method': self.method, **({'bulkId': self.bulk_id} if self.bulk_id is not None else {})}


def bulk_limits_detail(settings):
    """The limits a 413 states, in the form RFC 7644 §3.7.4's example gives them."""
    return (f'{{"maxOperations":{settings["bulk_max_operations"]},'
            f'"maxPayloadSize":{settings["bulk_max_payload_bytes"]}}}')


def read_bulk_request(settings):
    """(the operations, failOnErrors or None) of the BulkRequest body, or a 4xx for
    the whole request: too large (413), not JSON, not a BulkRequest, Operations not
    a list of objects, a bulkId given to two POSTs."""
    limits = bulk_limits_detail(settings)
    body = read_json(settings['bulk_max_payload_bytes'],
                     f'The bulk request is larger than maxPayloadSize ({settings["bulk_max_payload_bytes"]} bytes). '
                     f'Limits: {limits}')
    schemas = body.get('schemas')
    if not isinstance(schemas, list) or BULK_REQUEST_SCHEMA not in schemas:
        raise ScimError(400, 'invalidSyntax', f'schemas must be ["{BULK_REQUEST_SCHEMA}"].')
    operations = body.get(find_key(body, 'Operations') or 'Operations')
    if not isinstance(operations, list) or not all(isinstance(operation, dict) for operation in operations):
        raise ScimError(400, 'invalidSyntax', 'Operations must be a list of objects.')
    if len(operations) > settings['bulk_max_operations']:
        raise ScimError(413, None, f'The bulk request has {len(operations)} operations, more than maxOperations '
                                   f'({settings["bulk_max_operations"]}). Limits: {limits}')
    fail_on_errors = body.get(find_key(body, 'failOnErrors') or 'failOnErrors')
    if fail_on_errors is not None and (not isinstance(fail_on_errors, int) or isinstance(fail_on_errors, bool)
                                       or fail_on_errors < 1):
        raise ScimError(400, 'invalidValue', 'failOnErrors must be a whole number of at least 1.')
    parsed = [read_bulk_operation(operation) for operation in operations]
    defined = [operation.bulk_id for operation in parsed if operation.method == 'POST' and operation.bulk_id]
    twice = sorted({bulk_id for bulk_id in defined if defined.count(bulk_id) > 1})
    if twice:
        raise ScimError(400, 'invalidValue', f'bulkId {twice[0]!r} is given to more than one POST.')
    return parsed, fail_on_errors


def read_bulk_operation(operation):
    """A BulkOperation; what is wrong with it fails it alone (its `problem`)."""
    def field(name):
        return operation.get(find_key(operation, name) or name)
    method, bulk_id, version = field('method'), field('bulkId'), field('version')
    read = BulkOperation(method.upper() if isinstance(method, str) else method,
                         bulk_id if isinstance(bulk_id, str) else None, version if isinstance(version, str) else None)
    try:
        read.kind, read.resource_id, read.data, read.references = bulk_target(read, field('path'), field('data'),
                                                                              bulk_id, version)
    except ScimError as error:
        read.problem = error
    return read


def bulk_target(read, path, data, bulk_id, version):
    """(resource type, id or None, data, bulkIds the data refers to) of an operation."""
    if read.method not in BULK_METHODS:
        raise ScimError(400, 'invalidSyntax', f'method must be one of {", ".join(BULK_METHODS)}, not {read.method!r}.')
    if bulk_id is not None and (not isinstance(bulk_id, str) or not bulk_id):
        raise ScimError(400, 'invalidValue', 'bulkId must be a non-empty string.')
    if version is not None and not isinstance(version, str):
        raise ScimError(400, 'invalidValue', 'version must be a string (an ETag, e.g. W/"3").')
    if read.method == 'POST' and bulk_id is None:
        raise ScimError(400, 'invalidValue', 'bulkId is required for a POST (RFC 7644 §3.7).')
    endpoint, _, resource_id = (path.strip('/').partition('/') if isinstance(path, str) else ('', '', ''))
    kind = request.app.catalog.resource_type(endpoint[:-1]) if endpoint in ('Users', 'Groups') else None
    if kind is None or '/' in resource_id or bool(resource_id) == (read.method == 'POST'):
        where = 'a resource type endpoint (/Users, /Groups)' if read.method == 'POST' else \
            'a resource (/Users/{id}, /Groups/{id})'
        raise ScimError(400, 'invalidPath', f'path must name {where} for {read.method}, not {path!r}.')
    if read.method != 'DELETE' and not isinstance(data, dict):
        raise ScimError(400, 'invalidSyntax', f'data must be an object for {read.method}.')
    references = frozenset(referenced_bulk_ids(data)) if read.method != 'DELETE' else frozenset()
    return kind, unquote(resource_id) or None, data, references


def referenced_bulk_ids(data):
    """The bulkIds `"value": "bulkId:..."` strings name anywhere in `data` (members,
    a PATCH's member values, an enterprise manager): the ids they stand for. Walked
    without recursion, only objects and lists queued: every POST of a bulk request
    is looked through."""
    found, pending = [], [data]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(item for item in value if isinstance(item, (dict, list)))
            continue
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                pending.append(item)
            elif isinstance(item, str) and item.startswith(BULK_ID_PREFIX) and key.lower() == 'value':
                found.append(item[len(BULK_ID_PREFIX):])
    return found


def with_bulk_ids_resolved(value, created):
    """`value` with each `"value": "bulkId:..."` replaced by the id it stands for."""
    if isinstance(value, dict):
        return {key: (created[item[len(BULK_ID_PREFIX):]][1]
                      if key.lower() == 'value' and isinstance(item, str) and item.startswith(BULK_ID_PREFIX)
                      else with_bulk_ids_resolved(item, created)) for key, item in value.items()}
    if isinstance(value, list):
        return [with_bulk_ids_resolved(item, created) for item in value]
    return value


class BulkRun:
    """The operations of one BulkRequest, run so that a POST runs before the operations
    that refer to its bulkId, whatever their order (RFC 7644 §3.7.2), and otherwise in
    the order sent; stopped after failOnErrors errors (§3.7.3)."""

    def __init__(self, operations, fail_on_errors):
        self.operations = operations
        self.fail_on_errors = fail_on_errors
        self.definers = {operation.bulk_id: operation for operation in operations
                         if operation.method == 'POST' and operation.bulk_id and operation.problem is None}
        self.position = {operation.bulk_id: index for index, operation in enumerate(operations)
                         if operation.bulk_id in self.definers and self.definers[operation.bulk_id] is operation}
        self.created = {}   # bulkId -> (resource type, id) of a POST that succeeded
        self.results = {}   # id(operation) -> its entry in the response, in the order run
        self.running = set()
        self.errors = 0
        self.faulted = None   # the operation a fault of the database itself stopped

    def run(self, lock_wait):
        """The response's entries. The operations are written in slices of at most
        BULK_SLICE_SECONDS, each one transaction in the writer's turn (a savepoint an
        operation), so that other requests' writes wait no longer than a slice and
        one operation, however long the request. A fault of the database itself (a
        full disk, a lost connection) undoes its slice: those operations answer it,
        and the rest are not run."""
        remaining = iter(self.operations)
        while True:
            in_slice = []
            try:
                with store.lock_deadline(lock_wait), store.writing():
                    started = time.monotonic()
                    for operation in remaining:
                        before = len(self.results)
                        self.run_once(operation)
                        in_slice += list(self.results)[before:]
                        if self.stopped():
                            return list(self.results.values())
                        if time.monotonic() - started > BULK_SLICE_SECONDS:
                            break
                    else:
                        return list(self.results.values())
            except Exception as error:
                answer = database_fault_answer(error)
                if answer is None:
                    raise
                for key in in_slice:
                    self.results[key] = self.failed(self.results[key], answer)
                if self.faulted is not None:
                    self.results[id(self.faulted)] = self.failed(
                        dict(self.faulted.echo(), location=self.location(self.faulted)), answer)
                return list(self.results.values())

    @staticmethod
    def failed(entry, error):
        """`entry` of an operation that failed with `error` (a ScimError)."""
        kept = {key: entry[key] for key in ('method', 'bulkId', 'location') if key in entry}
        if kept['method'] == 'POST':
            kept.pop('location', None)   # RFC 7644 §3.7: no location for a failed POST
        return dict(kept, status=str(error.status), response=error.document())

    def stopped(self):
        return self.fail_on_errors is not None and self.errors >= self.fail_on_errors

    def run_once(self, first):
        """Run `first` after the POSTs it refers to, and theirs before them (walked
        without recursion: a chain of managers may be as long as the request). A
        reference back to an operation still waiting is circular: it stays unresolved."""
        if id(first) in self.results:
            return
        self.running.add(id(first))
        waiting = [(first, self.definers_first(first))]
        while waiting:
            operation, bulk_ids = waiting[-1]
            definer = next((self.definers[bulk_id] for bulk_id in bulk_ids
                            if id(self.definers[bulk_id]) not in self.running
                            and id(self.definers[bulk_id]) not in self.results), None)
            if definer is not None:
                self.running.add(id(definer))
                waiting.append((definer, self.definers_first(definer)))
                continue
            waiting.pop()
            self.running.discard(id(operation))
            if self.stopped():
                return
            self.results[id(operation)] = self.outcome(operation)

    def definers_first(self, operation):
        """The bulkIds `operation` refers to, those of this request's POSTs in the
        order sent: in its path, and in its data those of users (any other is
        refused, and need not wait)."""
        references = {bulk_id for bulk_id in operation.references
                      if bulk_id in self.definers and self.definers[bulk_id].kind.name == 'User'}
        path_reference = operation.resource_id or ''
        if path_reference.startswith(BULK_ID_PREFIX):
            references.add(path_reference[len(BULK_ID_PREFIX):])
        return iter(sorted(references & self.position.keys(), key=self.position.get))

    def outcome(self, operation):
        """The operation's entry in the BulkResponse: its status as text, and where it
        failed the SCIM Error document as `response`."""
        entry = operation.echo()
        try:
            with store.operation_deadline(), store.savepoint():
                status, location, version = self.execute(operation)
        except ScimError as error:
            self.errors += 1
            return self.failed(dict(entry, location=self.location(operation)), error)
        except Exception as error:   # a lock another session held too long: this operation's alone
            answer = database_fault_answer(error) if store.waited_too_long(error) else None
            if answer is None:
                self.faulted = operation   # the slice's fault (run): it answers it too
                raise
            self.errors += 1
            return self.failed(dict(entry, location=self.location(operation)), answer)
        entry.update(location=location, status=str(status))
        if version is not None:
            entry['version'] = etag(version)
        return entry

    def location(self, operation):
        """Where the operation's resource is (RFC 7644 §3.7: REQUIRED but for a failed
        POST), its path's bulkId resolved where it can be; None for a POST."""
        if operation.method == 'POST' or operation.kind is None or operation.resource_id is None:
            return None
        resource_id = operation.resource_id
        if resource_id.startswith(BULK_ID_PREFIX):
            resource_id = self.created.get(resource_id[len(BULK_ID_PREFIX):], (None, resource_id))[1]
        return f'{base_url()}{operation.kind.endpoint}/{resource_id}'

    def execute(self, operation):
        """(status, location, version or None) of the operation, run alone."""
        if operation.problem is not None:
            raise operation.problem
        kind, storage = operation.kind, STORAGE[operation.kind.name]
        resource_id = self.resolve_path(operation)
        data = self.resolve_data(operation)
        expected = accepted_versions(operation.version)
        if operation.method == 'POST':
            record = create_resource(kind, storage, data)
            self.created[operation.bulk_id] = (kind, record['id'])
            return 201, f'{base_url()}{kind.endpoint}/{record["id"]}', record['version']
        location = f'{base_url()}{kind.endpoint}/{resource_id}'
        if operation.method == 'DELETE':
            delete_resource(kind, storage, resource_id, expected)
            return 204, location, None
        verb = replace_resource if operation.method == 'PUT' else patch_resource
        record = verb(kind, storage, resource_id, data, expected, False)
        return 200, location, record['version']

    def created_by(self, bulk_id):
        """(resource type, id) of the resource `bulkId:<bulk_id>` stands for, or a 409."""
        if bulk_id in self.created:
            return self.created[bulk_id]
        if bulk_id not in self.definers:
            raise ScimError(409, None, f'bulkId:{bulk_id} names no POST of this bulk request.')
        if id(self.definers[bulk_id]) in self.results:
            raise ScimError(409, None, f'bulkId:{bulk_id} cannot be resolved: its POST failed.')
        raise ScimError(409, None, f'bulkId:{bulk_id} cannot be resolved: its POST refers back to this operation.')

    def resolve_path(self, operation):
        """The id of the resource the path names, `bulkId:` resolved."""
        resource_id = operation.resource_id
        if resource_id is None or not resource_id.startswith(BULK_ID_PREFIX):
            return resource_id
        kind, created_id = self.created_by(resource_id[len(BULK_ID_PREFIX):])
        if kind is not operation.kind:
            raise ScimError(400, 'invalidValue', f'{resource_id} names a {kind.name}, not a resource of '
                                                 f'{operation.kind.endpoint}.')
        return created_id

    def resolve_data(self, operation):
        """The data with its `bulkId:` values resolved: each must name a user (members
        are users; so is a manager)."""
        for bulk_id in sorted(operation.references):
            definer = self.definers.get(bulk_id)
            if definer is not None and definer.kind.name != 'User':
                raise ScimError(400, 'invalidValue', f'bulkId:{bulk_id} names a {definer.kind.name}: '
                                                     'members are users.')
            self.created_by(bulk_id)
        return with_bulk_ids_resolved(operation.data, self.created) if operation.references else operation.data


def bulk():
    """POST /Bulk: the operations of a BulkRequest, each answered in the BulkResponse."""
    settings = request.app.settings
    operations, fail_on_errors = read_bulk_request(settings)
    results = BulkRun(operations, fail_on_errors).run(settings['lock_wait'])
    return scim_reply({'schemas': [BULK_RESPONSE_SCHEMA], 'Operations': results})


# (method, path, handler, resource type or None): the SCIM API, relative to base_path.
SCIM_ROUTES = (
    ('GET', '/ServiceProviderConfig', service_provider_config, None),
    ('GET', '/ResourceTypes', resource_types, None),
    ('GET', '/ResourceTypes/<name>', resource_type, None),
    ('GET', '/Schemas', schemas, None),
    ('GET', '/Schemas/<urn>', schema, None),
    ('GET', '/Users', resources_list, 'User'),
    ('POST', '/Users', resource_create, 'User'),
    ('POST', '/Users/.search', resources_search, 'User'),
    ('GET', '/Users/<resource_id>', resource_get, 'User'),
    ('PUT', '/Users/<resource_id>', resource_replace, 'User'),
    ('PATCH', '/Users/<resource_id>', resource_patch, 'User'),
    ('DELETE', '/Users/<resource_id>', resource_delete, 'User'),
    ('GET', '/Groups', resources_list, 'Group'),
    ('POST', '/Groups', resource_create, 'Group'),
    ('POST', '/Groups/.search', resources_search, 'Group'),
    ('POST', '/.search', root_search, None),
    ('GET', '', root_list, None),   # the base path itself (a trailing slash is dropped)
    ('GET', '/Groups/<resource_id>', resource_get, 'Group'),
    ('PUT', '/Groups/<resource_id>', resource_replace, 'Group'),
    ('PATCH', '/Groups/<resource_id>', resource_patch, 'Group'),
    ('DELETE', '/Groups/<resource_id>', resource_delete, 'Group'),
    *((method, '/Me', me_not_implemented, None) for method in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
    ('POST', '/Bulk', bulk, None),
)


# ===========================================================================
# Health: GET /healthz, for a load balancer or a process manager
# ===========================================================================

HEALTH_PATH = '/healthz'


class HealthLog:
    """What /healthz found last, so that its cause is logged once when the answer
    changes, not at every poll of a load balancer."""

    def __init__(self):
        self.problem = None   # the database answered

    def note(self, problem):
        if problem == self.problem:
            return
        if problem:
            log.warning('%s: the database does not answer: %s', HEALTH_PATH, problem)
        else:
            log.info('%s: the database answers again', HEALTH_PATH)
        self.problem = problem


def healthz():
    """200 {"status": "ok"} if the database answers, else 503 {"status": "unavailable"}.
    No token: it tells nothing else (the cause goes to the log, not to whoever asks).
    Neither printed nor recorded (ScimApp.is_scim): a load balancer asks every second."""
    problem = store.health_problem()
    request.app.health_log.note(problem)
    response.status = 503 if problem else 200
    response.content_type = 'application/json'
    response.set_header('Cache-Control', 'no-store')
    return json.dumps({'status': 'unavailable' if problem else 'ok'})


# ===========================================================================
# The application
# ===========================================================================

# ---------------------------------------------------------------------------
# Authentication: the Authorization header, read once into its form and secret
# ---------------------------------------------------------------------------
#
# Every way an admin can make Okta or Entra send the token is taken, because each
# still proves that the client holds it (README, Authorization):
#   bearer         Bearer <token>          the standard (any case; spaces or tabs between)
#   bare           <token>                 Okta's "SCIM 2.0 Test App (Header Auth)" sends its
#                                          API Token field as typed, and many type the token alone
#   bearer-bearer  Bearer Bearer <token>   "Bearer" typed into a field that adds it (an Okta
#                                          app of your own in HTTP Header mode, Entra)
#   basic          Basic base64(any user name:<token>)   Okta's "SCIM 2.0 Test App (Basic Auth)"
# Every form but the first is flagged on the console line and in the dashboard's
# exchange (dashboard.AUTHORIZATION_NOTE). Anything else is a 401 whose detail says
# what arrived, by its shape, and where the token goes; it never repeats what arrived.

ACCEPTED_FORMS = ('bearer', 'bare', 'bearer-bearer', 'basic')
AUTH_SPACE = re.compile(r'[ \t]+')
QUOTES = '"\'`\u201c\u201d\u2018\u2019'   # straight, and the curly ones a word processor or a chat makes
# Other clients' schemes, by the name a 401 gives them (it never repeats the text that came).
OTHER_SCHEMES = {name.lower(): name for name in (
    'SSWS', 'Token', 'Digest', 'Negotiate', 'NTLM', 'OAuth', 'DPoP', 'ApiKey', 'Api-Key', 'Key', 'JWT',
    'Hawk', 'HOBA', 'Mutual', 'SCRAM-SHA-256', 'VAPID')}
CHALLENGE = 'Bearer realm="scimlite", Basic realm="scimlite", charset="UTF-8"'

WHERE_THE_TOKEN_GOES = (
    'Where the token goes: in Okta\'s "SCIM 2.0 Test App (Header Auth)", API Token: Bearer <token>. '
    'In an Okta app of your own (Authentication Mode: HTTP Header), Authorization: the token alone '
    '(Okta adds "Bearer "). In Okta\'s "SCIM 2.0 Test App (Basic Auth)": any Username, Password: the token. '
    'In Entra, Secret Token: the token alone (Entra adds "Bearer ").')
CHECK_THE_TOKEN = ('Use a token this server was started with (--token, SCIM_TOKEN or token in config.ini; '
                   'the start-up banner shows it, masked). ')

# Why a request is refused: (what arrived, by its shape; how to fix it).
AUTHORIZATION_PROBLEMS = {
    'missing': ('no Authorization header', 'Send Authorization: Bearer <token>. '),
    'empty': ('an empty Authorization header', 'Send Authorization: Bearer <token>. '),
    'bearer-empty': ('"Bearer" with no token after it', 'Put the token after "Bearer ". '),
    'bearer': ("a Bearer token that matches none of this server's tokens", CHECK_THE_TOKEN),
    'bearer-bearer': ('"Bearer" twice, then a token that matches none of this server\'s tokens',
                      'The field adds "Bearer " itself: type the token alone. ' + CHECK_THE_TOKEN),
    'bare': ('a bare token (no "Bearer " before it) that matches none of this server\'s tokens', CHECK_THE_TOKEN),
    'several-words': ('several words that start with no scheme this server takes (Bearer, Basic) '
                      'and are not one of its tokens', 'Send Bearer <token>. '),
    'bearer-glued': ('"Bearer" and the token without a plain space between them',
                     'Type Bearer, a space, then the token. '),
    'bearer-colon': ('"Bearer:" with a colon', 'Type Bearer, a space, then the token, with no colon. '),
    'header-name': ('the header\'s name inside its value ("Authorization: ...")',
                    'The field takes the value only, e.g. Bearer <token>. '),
    'quoted': ('a token in quotation marks', 'The quotes are sent as part of the token: type it without them. '),
    'placeholder': ('a token in angle brackets', '<token> stands for the token: type the token itself, without < >. '),
    'other-scheme': ('the {scheme} scheme, which this server does not take',
                     'It takes Bearer <token>, or HTTP Basic with the token as the password. '),
    'basic': ('Basic credentials whose password is not a token',
              'Any user name will do; the password must be one of this server\'s tokens. '),
    'basic-token-as-user': ('Basic credentials with the token as the user name',
                            'Put the token in Password; any Username will do. '),
    'basic-malformed': ('Basic credentials that are not base64 of "user name:password"',
                        'Let Okta\'s "SCIM 2.0 Test App (Basic Auth)" encode them: any Username, '
                        'the token as Password. '),
}
DEMO_TOKEN_REFUSED = ('the demo token, sent from another machine',
                      'It is accepted only from this machine (ngrok connects from it): '
                      'set your own token (--token or SCIM_TOKEN) to serve other hosts.')

# A form other than Bearer <token>, taken: which form came, and what to type instead.
FLAGGED_FORMS = {
    'bare': ('the token bare, without "Bearer ". In Okta\'s "SCIM 2.0 Test App (Header Auth)", '
             'type Bearer <token> in API Token (it is sent as typed)'),
    'bearer-bearer': ('"Bearer Bearer <token>": "Bearer" typed into a field that adds it. Type the token alone '
                      'in Okta\'s Authorization field (HTTP Header mode) or in Entra\'s Secret Token'),
    'basic': ('HTTP Basic, the token as password (the user name is not read). Bearer is the usual form: '
              'Okta\'s "SCIM 2.0 Test App (Header Auth)" with API Token Bearer <token>'),
}


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What an Authorization header presents. `form` is one of ACCEPTED_FORMS when
    `secret` may be a token, else the AUTHORIZATION_PROBLEMS key of what is wrong."""
    form: str
    secret: bytes = b''   # the header's bytes (WSGI gives them as latin-1): a UTF-8 token matches
    user: bytes = b''     # Basic's user name: read only to tell that the token went there


def first_word(text):
    """(the first word of `text`, the rest after the spaces or tabs that follow it)."""
    first, *rest = AUTH_SPACE.split(text, maxsplit=1)
    return first, rest[0] if rest else ''


def read_authorization(header):
    """The Credentials of an Authorization header's value (None: no header at all)."""
    if header is None:
        return Credentials('missing')
    token = header[7:]
    if (header[:7] == 'Bearer ' and token and ' ' not in token and '\t' not in token   # nearly every request
            and token.lower() != 'bearer'):
        return Credentials('bearer', token.encode('latin-1', 'replace'))
    header = header.strip(' \t')
    if not header:
        return Credentials('empty')
    scheme, rest = first_word(header)
    if scheme.lower() == 'bearer':
        return read_bearer(rest)
    if scheme.lower() == 'basic':
        return read_basic(rest)
    return Credentials('bare', header.encode('latin-1', 'replace'))


def read_bearer(credentials):
    """What follows "Bearer ": the token, or "Bearer " again and then the token."""
    again, token = first_word(credentials)
    form, secret = ('bearer-bearer', token) if again.lower() == 'bearer' else ('bearer', credentials)
    return Credentials(form, secret.encode('latin-1', 'replace')) if secret else Credentials('bearer-empty')


def read_basic(credentials):
    """What follows "Basic ": base64 of user name:password (RFC 7617), the password the token."""
    try:
        decoded = base64.b64decode(credentials, validate=True)
    except ValueError:   # binascii.Error is one; so is text that is not ASCII
        return Credentials('basic-malformed')
    user, colon, password = decoded.partition(b':')
    return Credentials('basic', password, user) if colon else Credentials('basic-malformed')


def refusal(credentials):
    """(the AUTHORIZATION_PROBLEMS key, a scheme's name for 'other-scheme') of credentials
    that present no token: by their shape alone, but for a token typed as Basic's user name."""
    form = credentials.form
    if form not in ACCEPTED_FORMS:
        return form, ''
    if form == 'basic':
        return ('basic-token-as-user' if token_seat_of(credentials.user) is not None else 'basic'), ''
    text = credentials.secret.decode('utf-8', 'replace')
    if len(text) > 1 and text[0] in QUOTES and text[-1] in QUOTES:
        return 'quoted', ''
    if text.startswith('<') and text.endswith('>'):
        return 'placeholder', ''
    if form != 'bare':
        return form, ''
    word, rest = first_word(text.lower())
    if word.startswith('authorization:'):
        return 'header-name', ''
    if word.startswith('bearer'):
        return ('bearer-colon' if word.startswith('bearer:') else 'bearer-glued'), ''
    if word in OTHER_SCHEMES:
        return 'other-scheme', OTHER_SCHEMES[word]
    return ('several-words' if rest else 'bare'), ''


def authenticate():
    """Let the request in if its Authorization header presents one of the server's
    tokens, or a workshop seat's, in an accepted form (noting any form but Bearer for
    the console and the dashboard), and work in the data of the seat it picks; else
    a 401 that says what was wrong and how to fix it."""
    credentials = read_authorization(request.environ.get('HTTP_AUTHORIZATION'))
    seat = token_seat_of(credentials.secret) if credentials.form in ACCEPTED_FORMS else None
    if seat is None:
        problem, scheme = refusal(credentials)
        attribute_refusal(credentials, problem)
        what, fix = AUTHORIZATION_PROBLEMS[problem]
        refuse(what.format(scheme=scheme), fix + WHERE_THE_TOKEN_GOES)
    if seat == store.INSTRUCTOR and not demo_token_allowed(credentials.secret):
        refuse(*DEMO_TOKEN_REFUSED)
    if credentials.form in FLAGGED_FORMS:
        request.environ[dashboard.AUTHORIZATION_NOTE] = f'accepted, flagged: {FLAGGED_FORMS[credentials.form]}'
    if seat != store.INSTRUCTOR:
        store.use_seat(seat)
        request.environ[dashboard.SEAT] = seat
        reached('first_request')


def attribute_refusal(credentials, problem):
    """A refused request whose header still holds a seat's token, misplaced (Basic's
    user name) or wrapped (in quotes, in < >), is that seat's: its 401 shows as the
    seat's last error on the board, and in the seat's exchanges, where the attendee
    who made the mistake looks. It reads and writes nothing of the seat's data."""
    if problem == 'basic-token-as-user':
        inside = credentials.user
    elif problem in ('quoted', 'placeholder'):
        inside = credentials.secret.decode('utf-8', 'replace')[1:-1].encode('utf-8')
    else:
        return
    seat = token_seat_of(inside)
    if seat not in (None, store.INSTRUCTOR):
        request.environ[dashboard.SEAT] = seat


def refuse(what, fix):
    """Answer 401: `what` arrived (noted for the console and the dashboard too), `fix` it."""
    request.environ[dashboard.AUTHORIZATION_NOTE] = f'refused: {what}'
    raise ScimError(401, None, f'{what[0].upper()}{what[1:]}. {fix}', WWW_Authenticate=CHALLENGE)


def token_matches(presented):
    """Whether the bytes `presented` are one of the server's tokens. Every token is
    compared, in constant time, so timing tells nothing."""
    matched = False
    for token in request.app.settings['tokens']:
        matched |= hmac.compare_digest(presented, token.encode('utf-8'))  # a UTF-8 token matches its bytes
    return matched


def token_seat_of(presented):
    """The seat whose data the token `presented` (bytes) opens: store.INSTRUCTOR for
    one of the server's own tokens, a seat's number for a seat's, None for any other."""
    if token_matches(presented):
        return store.INSTRUCTOR
    return request.app.seats.seat_of(presented)


class SeatTokens:
    """Which seat each seat token opens, as {SHA-256 digest: seat}: a token finds its
    seat by its digest, so the time a lookup takes tells nothing of the token. Read
    from the database at start, and again, at most once every RELOAD_SECONDS, when a
    token opens nothing (a seat another process made since)."""

    RELOAD_SECONDS = 1.0

    def __init__(self):
        self.by_digest = store.seat_digests()
        self.read_at = time.monotonic()
        self.lock = threading.Lock()

    def seat_of(self, presented):
        digest = store.token_digest(presented)
        seat = self.by_digest.get(digest)
        if seat is None and time.monotonic() - self.read_at > self.RELOAD_SECONDS:
            with self.lock:
                if time.monotonic() - self.read_at > self.RELOAD_SECONDS:
                    self.by_digest, self.read_at = store.seat_digests(), time.monotonic()
            seat = self.by_digest.get(digest)
        return seat


def demo_token_allowed(presented):
    """The demo token is printed in every copy of the Okta tutorial: it only opens the
    door to this machine (ngrok connects from here), whatever server runs the app."""
    return (not hmac.compare_digest(presented, DEMO_TOKEN.encode())
            or dashboard.is_loopback(request.environ.get('REMOTE_ADDR', '')))


def token_accepted(presented):
    """The seat whose dashboard the token `presented` (bytes) logs in to: as
    token_seat_of, and the demo token only from this machine."""
    seat = token_seat_of(presented)
    return None if seat == store.INSTRUCTOR and not demo_token_allowed(presented) else seat


def scim_endpoint(handler, *bound):
    """A SCIM route: the token first; `bound` (a resource type and its Storage) come
    before the URL's arguments."""
    def endpoint(**url_arguments):
        authenticate()
        return handler(*bound, **url_arguments)
    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def scim_errors_answered(callback):
    """A Bottle plugin on every route: a ScimError raised anywhere in it (a SCIM
    route, the dashboard, a route added later) is answered as one, not as a 500;
    so is a storage fault (a full disk, an I/O error, a read-only or vanished
    database file), with one log line, not a traceback."""
    def route(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except ScimError as error:
            raise ScimHTTPError(error) from None
        except Exception as error:
            answer = database_fault_answer(error)
            if answer is None:
                raise
        raise ScimHTTPError(answer) from None
    return route


def database_fault_answer(error):
    """The SCIM error for an exception that says the database, not the request, is
    at fault, logged in one line with its first cause; None for any other exception.

    A full disk: 507. An I/O error, a read-only or vanished database file: 503. SQLite
    locked past busy_timeout by another process, PostgreSQL gone or restarting: 503;
    nothing was written, and the IdP will try again."""
    fault = store.storage_fault(error)
    if fault is not None:
        answer = store_error_answer(fault)
        cause = 'disk full' if isinstance(fault, store.StorageFull) else 'storage failed'
    elif store.is_unavailable(error):
        answer = ScimError(503, None, 'The database is busy or out of reach: try again shortly.', Retry_After='1')
        fault, cause = store.first_line(error), 'database unavailable'
    else:
        return None
    log.warning('%s %s answered %d: %s: %s', request.method, request.path, answer.status, cause, fault)
    return answer


class ScimApp(bottle.Bottle):
    """The Bottle app, with every error rendered as a SCIM Error. Its SCIM requests
    pass through the dashboard's Recorder (a WSGI middleware) on their way in."""

    def __init__(self, settings):
        super().__init__()
        self.config['json.enable'] = False   # every route writes its own SCIM JSON
        self.settings = settings
        self.catalog = Catalog(settings['extension_schemas'])
        self.install(scim_errors_answered)
        self.scim_prefix = settings['base_path'].rstrip('/') + '/'
        self.recorder = dashboard.Recorder(self.serve, settings, self.is_scim)
        self.health_log = HealthLog()

    def is_scim(self, path):
        """A path of the SCIM API (what the console prints and the dashboard records)."""
        return ((path + '/').startswith(self.scim_prefix)
                and not (path in ('/', HEALTH_PATH) or path.startswith('/dashboard/')))

    def default_error_handler(self, error):
        if isinstance(error, ScimHTTPError):
            document = error.scim_error.document()
        else:
            if error.status_code >= 500:
                log.error('error in %s %s: %s', request.method, request.path,
                          error.traceback or error.exception)
            detail = BOTTLE_ERROR_DETAILS.get(error.status_code, error.body or error.status_line)
            document = error_document(error.status_code, None, detail)
        response.content_type = SCIM_MEDIA_TYPE
        return json.dumps(document).encode('utf-8')

    def __call__(self, environ, start_response):
        # `/scim/v2/Users/` is `/scim/v2/Users`: some clients add the slash.
        path = environ.get('PATH_INFO', '')
        if len(path) > 1 and path.endswith('/'):
            environ['PATH_INFO'] = path.rstrip('/') or '/'
        return self.recorder(environ, start_response)

    def serve(self, environ, start_response):
        """Bottle's answer, within the request's deadline for locks, its connection
        released after it (store.serving)."""
        with store.serving():
            return super().__call__(environ, start_response)

    def close(self, finish=False):
        """Stop recording and printing, and close the database. With `finish`, what
        is queued is written and printed first."""
        self.recorder.close(finish)
        store.close_database()


def make_app(overrides=None):
    """Build the WSGI app from settings (DEFAULTS updated by `overrides`, or Settings
    as load_settings made them), and open its database.

    One app per process: the store's database handle and statement caches belong
    to the process, so making an app closes the one made before it (its recorder
    and its database). Tests make theirs through one fixture (tests/conftest.py)."""
    global current_app
    settings = overrides if isinstance(overrides, Settings) else normalise_settings(dict(overrides or {}))
    if current_app is not None:
        current_app.close()
    app = current_app = ScimApp(settings)
    store.open_database(settings['database'], lock_wait=settings['lock_wait'],
                        statement_timeout=settings['statement_timeout'])
    app.seats = open_seats(settings)
    fill_with_samples(app, settings['sample_users'])
    for method, path, handler, type_name in SCIM_ROUTES:
        bound = (app.catalog.resource_type(type_name), STORAGE[type_name]) if type_name else ()
        app.route(settings['base_path'] + path or '/', method, scim_endpoint(handler, *bound))
    dashboard.install(app, settings, accept_token=token_accepted, scim_url=base_url)
    app.route(HEALTH_PATH, 'GET', healthz)
    if not settings['base_path']:
        # the dashboard's page: the last GET / installed (the SCIM one came first)
        page = next(route.callback for route in reversed(app.routes) if route.rule == '/' and route.method == 'GET')
        app.route('/', 'GET', root_query_or_dashboard(scim_endpoint(root_list), page))
    return app


def open_seats(settings):
    """The seats' tokens, after making the seats `settings` asks for. Seats refuse the
    demo token: the server's token opens every seat's card, and behind ngrok every
    visitor comes from this machine, where the demo token is let in."""
    if settings['seats'] and DEMO_TOKEN in settings['tokens']:
        raise SettingsError(f'refusing to make seats with the demo token {DEMO_TOKEN}: it would open every '
                            'seat card; set your own with --token or SCIM_TOKEN')
    if settings['seats']:
        store.ensure_seats(settings['seats'])
    seats = SeatTokens()
    if seats.by_digest and DEMO_TOKEN in settings['tokens']:
        raise SettingsError(f'this database has workshop seats: refusing the demo token {DEMO_TOKEN}, which '
                            'would open every seat card; set your own with --token or SCIM_TOKEN')
    return seats


def fill_with_samples(app, count):
    """`--sample-users N`: each data set (the server's own, and every seat's) not filled
    before gets N sample users and a few groups (sampledata.py), stored as a POST stores them."""
    if not count:
        return
    kinds = {name: app.catalog.resource_type(name) for name in ('User', 'Group')}
    users = [clean_resource(user, kinds['User']) for user in sampledata.sample_users(count)]
    groups = [(clean_resource(group, kinds['Group']), members) for group, members in sampledata.sample_groups(count)]
    filled = [seat for seat in (store.INSTRUCTOR, *sorted(app.seats.by_digest.values()))
              if store.fill_sample_data(seat, users, groups)]
    if filled:
        log.info('filled %d data set(s) with %d sample users and %d groups', len(filled), count, len(groups))


def local_base_url(settings):
    """The SCIM base URL for the seat cards outside a request (`--seat-cards`):
    `base_url`, else this server's own address."""
    host = settings['host']
    shown_host = '127.0.0.1' if host in ('0.0.0.0', '::') else f'[{host}]' if ':' in host else host
    return settings['base_url'] or f'http://{shown_host}:{settings["port"]}{settings["base_path"]}'


def root_query_or_dashboard(scim_root, dashboard_page):
    """GET / where base_path is the server root, and the dashboard's page and the SCIM
    root query share the address: a request that asks for SCIM, with a list parameter
    (`?filter=...`) or `Accept: application/scim+json`, gets the SCIM answer (and
    needs the token); a browser's plain GET / gets the dashboard."""
    def root():
        asks_for_scim = (any(name in query_parameters() for name in ListRequest.NAMES)
                         or 'application/scim+json' in request.environ.get('HTTP_ACCEPT', '').lower())
        return scim_root() if asks_for_scim else dashboard_page()
    root.__doc__ = root_query_or_dashboard.__doc__
    return root


current_app = None


class LazyApp:
    """`scim_server:app` for WSGI servers: built on its first request, from the
    environment and config.ini, so that importing this module opens nothing."""

    def __init__(self):
        self._app = None
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    settings = load_settings([])
                    if DEMO_TOKEN in settings['tokens']:
                        log.warning('scimlite is using the demo token %s: set SCIM_TOKEN', DEMO_TOKEN)
                    self._app = make_app(settings)
                    sys.setswitchinterval(SWITCH_INTERVAL)
        return self._app(environ, start_response)


app = LazyApp()


# ===========================================================================
# main(): the command line
# ===========================================================================

def die(message):
    print(f'scimlite: {message}', file=sys.stderr)
    raise SystemExit(2)


def mask(token):
    """The token as the banner shows it: the demo token whole (it is public), a short
    one not at all, any other by its first and last two characters."""
    if token == DEMO_TOKEN:
        return token
    if len(token) <= 6:
        return '*' * 8
    return f'{token[:2]}{"*" * max(4, len(token) - 4)}{token[-2:]}'


def banner(settings, port):
    host = settings['host']
    shown_host = f'[{host}]' if ':' in host else host
    if host in ('0.0.0.0', '::'):
        shown_host = '127.0.0.1'
    local = f'http://{shown_host}:{port}'
    scim_url = settings['base_url'] or f'{local}{settings["base_path"]}'
    lines = [
        'scimlite is running.',
        f'  SCIM base URL:   {scim_url}',
        f'  Authorization:   Bearer {mask(settings["tokens"][0])}',
        f'  Dashboard:       {local}/',
        f'  Public address:  ngrok http {port}   (then use https://<ngrok address>{settings["base_path"]})',
        f'  Database:        {store.masked(settings["database"])}',
    ]
    if DEMO_TOKEN in settings['tokens']:
        lines += ['',
                  f'  WARNING: the demo token {DEMO_TOKEN} is in use. Anyone who knows the Okta',
                  '  tutorial knows it. Fine for a demo on this machine; set your own with',
                  '  --token or SCIM_TOKEN before you expose this server for longer.']
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# Listening, and stopping cleanly
# ---------------------------------------------------------------------------

WINDOWS = sys.platform == 'win32'
# How long the requests in flight get to finish, and their answers to go out, once
# the server is asked to stop. A second Ctrl+C stops waiting.
SHUTDOWN_SECONDS = 10
STOP_SIGNALS = ('SIGINT', 'SIGTERM', 'SIGBREAK')   # Ctrl+C; `kill`, systemd, docker stop; Ctrl+Break on Windows


def listening_options():
    """The (level, option, value) a listening socket gets before it binds, so that a
    second server on the same port is refused on every OS. On Windows SO_REUSEADDR
    would let a second process bind the port too (waitress sets it): the socket is
    made exclusive instead. Elsewhere SO_REUSEADDR, as waitress sets it, lets a
    restart bind at once past the last connections' TIME_WAIT, and the OS still
    refuses a second listener."""
    if WINDOWS:
        return [(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)]
    return [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]


def listening_sockets(host, port):
    """Sockets bound to each address `host` names (`localhost` may be two), as waitress
    would bind them but with listening_options(), for waitress's `sockets`. Raises
    OSError if one cannot be bound."""
    sockets, seen = [], set()
    try:
        for family, kind, protocol, _, address in socket.getaddrinfo(
                host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE):
            if family not in (socket.AF_INET, socket.AF_INET6) or address[:2] in seen:
                continue
            seen.add(address[:2])
            listener = socket.socket(family, kind, protocol)
            sockets.append(listener)
            for option in listening_options():
                listener.setsockopt(*option)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
    except OSError:
        for listener in sockets:
            listener.close()
        raise
    return sockets


WSAEACCES = 10013


# glibc gives each thread that allocates a heap ("arena") of its own, up to eight a
# core, and keeps what each frees for that thread: SQLite's page caches, a streamed
# group's rows and waitress's buffers are spread over as many heaps as threads ever
# ran. Two heaps: at 100,000 users, listing five groups of 100,000 members peaked
# at 127 MB, not 146, and the whole benchmark run at 143, not 182 (bench/run.py,
# big_groups). MALLOC_ARENA_MAX in the environment wins. Elsewhere (Windows, macOS,
# musl) nothing is done.
MALLOC_ARENAS = 2
M_ARENA_MAX = -8   # glibc's malloc.h


@functools.cache
def _glibc():
    """The C library, where it is glibc (Linux); else None. Looked for once, when first asked."""
    if not sys.platform.startswith('linux'):
        return None
    import ctypes
    import platform
    if platform.libc_ver()[0] != 'glibc':
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def cap_malloc_arenas(environ=os.environ):
    """Have glibc's malloc keep MALLOC_ARENAS heaps; True if it was told to. Before
    any thread is started: a heap, once made, stays."""
    libc = None if 'MALLOC_ARENA_MAX' in environ else _glibc()
    try:
        return libc is not None and libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS) == 1
    except AttributeError:
        return False


# What a streamed answer's pieces took, malloc keeps once they are freed: glibc
# hands a heap's free pages back to the system only at its top, and a megabyte
# piece freed in the middle stays in the process's RSS. So when the last answer
# being streamed ends, the free pages go back (glibc's malloc_trim: a few ms, after
# the answer's last byte, not for a request waiting). Elsewhere nothing is done.
def release_freed_memory():
    """Give the pages malloc holds free back to the system, where malloc is glibc's."""
    libc = _glibc()
    try:
        if libc is not None:
            libc.malloc_trim(0)
    except AttributeError:
        pass


def port_taken(error):
    """A bind refused because the port is held: EADDRINUSE, or on Windows WSAEACCES,
    what a port held exclusively by another program (or reserved by Windows) gives."""
    return error.errno == errno.EADDRINUSE or getattr(error, 'winerror', None) == WSAEACCES


def serve_until_stopped(socket_map):
    """Run waitress's loop over `socket_map` until Ctrl+C, Ctrl+Break or SIGTERM, then
    stop cleanly: stop accepting, let the requests in flight finish and their answers
    go out (for SHUTDOWN_SECONDS at most, or until a second signal), then close the
    connections and waitress's threads. Returns how many requests were still being
    served, and are left to die with the process.

    waitress's own run() catches KeyboardInterrupt and returns at once, abandoning
    the answers in flight: hence this loop, the one waitress runs, with a way out."""
    from waitress import trigger, wasyncore
    from waitress.server import BaseWSGIServer
    signals = []
    triggers = [item for item in socket_map.values() if isinstance(item, trigger.trigger)]

    def stop(number, frame):
        signals.append(number)
        for each in triggers:   # wakes the loop now, not at its next timeout
            each.pull_trigger()
    previous = {name: signal.signal(getattr(signal, name), stop) for name in STOP_SIGNALS if hasattr(signal, name)}
    try:
        servers = [item for item in socket_map.values() if isinstance(item, BaseWSGIServer)]
        adjustments = servers[0].adj
        poll = wasyncore.poll2 if adjustments.asyncore_use_poll and POLL else wasyncore.poll
        while not signals:
            poll(adjustments.asyncore_loop_timeout, socket_map)
        deadline = time.monotonic() + SHUTDOWN_SECONDS

        def patience():
            return max(0.0, deadline - time.monotonic()) if len(signals) == 1 else 0.0
        # Stop accepting. Not server.close(): that also closes the trigger, which wakes
        # the loop when an answer is ready to go out.
        for server in servers:
            wasyncore.dispatcher.close(server)
        while patience() and finish_answers(socket_map):
            poll(min(adjustments.asyncore_loop_timeout, patience()), socket_map)
        dispatcher = servers[0].task_dispatcher
        dispatcher.shutdown(timeout=max(0.1, patience()))
        wasyncore.close_all(socket_map)
        return len(dispatcher.threads)
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def finish_answers(socket_map):
    """Have the loop close each connection that has no request being served and no
    answer left to send (idle, or still sending its request); True while any is open."""
    from waitress.channel import HTTPChannel
    open_connections = [item for item in socket_map.values() if isinstance(item, HTTPChannel)]
    for connection in open_connections:
        if not connection.requests and not connection.total_outbufs_len:
            connection.will_close = True
    return bool(open_connections)


# ---------------------------------------------------------------------------
# waitress's limits, chosen rather than left at its defaults (README, Reliability)
# ---------------------------------------------------------------------------

# waitress refuses a body this much past max_body_bytes (or bulk_max_payload_bytes,
# the larger) before reading it; up to there it reads the body, and the app answers
# its own SCIM 413, which an IdP shows.
BODY_HEADROOM = 64 * 1024
# All of a request's headers: a SCIM request needs a few hundred bytes (a long
# filter in the query a few KiB); waitress's default, 256 KiB, held by each of a
# thousand half-sent requests, would be 256 MB.
MAX_HEADER_BYTES = 64 * 1024
# Open files a connection may hold: its socket, and the temporary files waitress
# spools a large request body and a large response to.
FILES_PER_CONNECTION = 3
# Open files besides the connections': the database, the listening socket, waitress's
# wake-up pipe, the log, PostgreSQL's connections.
OTHER_FILES = 100


def waitress_options(settings):
    """The options `waitress.server.create_server` is given for these settings; raises
    the open-file limit the connection limit needs (and lowers that limit, with a
    warning, to what the system allows)."""
    return {
        'threads': settings['threads'],
        'connection_limit': connections_that_fit(settings['connection_limit']),
        'asyncore_use_poll': POLL,   # select() stops at 1024 sockets on POSIX
        'channel_timeout': settings['channel_timeout'],
        # How often idle connections are looked for: an idle one closes within
        # channel_timeout + this.
        'cleanup_interval': min(5, settings['channel_timeout']),
        'max_request_body_size': max(settings['max_body_bytes'], settings['bulk_max_payload_bytes']) + BODY_HEADROOM,
        'max_request_header_size': MAX_HEADER_BYTES,
        'ident': 'scimlite',
    }


def connections_that_fit(connection_limit):
    """`connection_limit`, after raising this process's open-file soft limit toward
    what it needs (as far as the hard limit); lower if the system allows fewer files."""
    try:
        import resource
    except ImportError:   # Windows: no such limit, and select() bounds connection_limit
        return connection_limit
    wanted = connection_limit * FILES_PER_CONNECTION + OTHER_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):   # macOS refuses past kern.maxfilesperproc
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return connection_limit
    fits = max(1, (soft - OTHER_FILES) // FILES_PER_CONNECTION)
    log.warning('the open-file limit (%d) leaves room for %d connections, not connection_limit = %d: '
                'serving %d (raise the limit with ulimit -n %d)', soft, fits, connection_limit, fits, wanted)
    return fits


def threads_while_waiting(settings, dispatcher):
    """waitress runs `threads`, and LOCK_WAITERS more while any request waits for a
    lock, so that reads go on. All at once: added one per waiting write, the writes
    queued behind the first took a thread each a watchdog's tick after another.
    And one more per answer being streamed (Streams)."""
    STREAMS.serve_with(dispatcher, settings['threads'])
    store.serve_threads(settings['threads'])
    store.watch_long_waits(STREAMS.waits)


def print_seat_cards(settings):
    """`--seat-cards`: the seats (made first if `seats` asks for more) as CSV on
    standard output, from the same settings and database; no server starts."""
    try:
        store.open_database(settings['database'], lock_wait=settings['lock_wait'],
                            statement_timeout=settings['statement_timeout'])
        try:
            open_seats(settings)
            sys.stdout.write(dashboard.seat_cards_csv(local_base_url(settings)))
        finally:
            store.close_database()
    except (store.CannotOpen, SettingsError) as error:
        die(str(error))


def main(argv=None):
    cap_malloc_arenas()
    import waitress.server

    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    # "Task queue depth is 1" on every burst says only that all threads are busy.
    logging.getLogger('waitress.queue').setLevel(logging.ERROR)
    # An answer cut short has its one line (sent_in_pieces), not waitress's traceback too.
    logging.getLogger('waitress').addFilter(
        lambda record: not (record.exc_info and record.exc_info[0] is AnswerCutShort))
    try:
        settings = load_settings(argv)
    except SettingsError as error:
        die(str(error))
    if settings.seat_cards:
        print_seat_cards(settings)
        return
    if DEMO_TOKEN in settings['tokens'] and not dashboard.is_loopback(settings['host']):
        die(f'refusing to listen on {settings["host"]} with the demo token {DEMO_TOKEN}: '
            'set your own with --token or SCIM_TOKEN')
    try:
        application = make_app(settings)
    except (store.CannotOpen, SettingsError) as error:
        die(str(error))
    sys.setswitchinterval(SWITCH_INTERVAL)
    socket_map = {}
    try:
        server = waitress.server.create_server(
            application, map=socket_map, sockets=listening_sockets(settings['host'], settings['port']),
            **waitress_options(settings))
    except OSError as error:
        die(f'cannot listen on {settings["host"]}:{settings["port"]}: {error.strerror or error}'
            + (' (is another server running? try --port 5001)' if port_taken(error) else ''))
    threads_while_waiting(settings, server.task_dispatcher)
    port = server.effective_port if hasattr(server, 'effective_port') else settings['port']
    print(banner(settings, port), flush=True)
    still_serving = 0
    try:
        still_serving = serve_until_stopped(socket_map)
        if still_serving:
            log.warning('stopped waiting for %d request(s) still being served', still_serving)
        application.recorder.close(finish=True)   # the exchanges recorded last are written
        print('scimlite stopped.')
    finally:
        if not still_serving:   # closing a connection a request still uses would wait for that request
            application.close()


if __name__ == '__main__':
    main()

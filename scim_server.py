"""scimlite: a SCIM 2.0 provisioning server you start with one command.

    pip install -r requirements.txt
    python scim_server.py [--config PATH] [--host HOST] [--port PORT] [--database URL] [--token TOKEN] [--quiet]

Point Okta or Microsoft Entra ID at http://127.0.0.1:5000/scim/v2 (usually through
ngrok) and users and groups arrive in a SQLite file, scim.db.

What it supports: /Users and /Groups with POST, GET (by id, and lists with
the whole filter language, sortBy, startIndex, count, attributes and
excludedAttributes), POST .search, PUT, PATCH (RFC 7644 §3.5.2, with Okta's
and Entra's dialects), DELETE; the discovery endpoints /ServiceProviderConfig,
/ResourceTypes and /Schemas; ETags with If-Match / If-None-Match. At / a
dashboard, behind a login with the token, shows the users, the groups and the
recent SCIM exchanges, scrubbed of tokens and passwords; the console prints one
line per SCIM request.

What it deliberately does not: bulk operations, password changes, nested
groups (members are users), and authenticating end users: the password an IdP
sends is accepted and dropped, never stored, never returned.

Needs: bottle, peewee, waitress (see requirements.txt). `app` is a WSGI
application for other servers (`waitress-serve scim_server:app`); `main()` is
the command line.
"""

import argparse
import configparser
import copy
import collections
import dataclasses
import hashlib
import hmac
import ipaddress
import itertools
import json
import logging
import math
import os
import re
import secrets
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import bottle
from bottle import request, response

import scimfilter as F
import store

log = logging.getLogger('scimlite')

# ===========================================================================
# Settings
# ===========================================================================

CONFIG_FILE = Path(__file__).with_name('config.ini')
DEMO_TOKEN = '123456789'
# While serving, let a thread that waited on a socket or on SQLite get the GIL back
# within 20 µs, not CPython's default 5 ms: each request waits a dozen times, and
# at 5 ms a turn 8 waitress threads spent most of their time queueing for the GIL
# (measured here: GET by id 315 -> 1,320 requests/s; see README, Performance). With
# one thread, SQLite's default, the worker and waitress's loop still hand it over, and
# 20 µs, 1 ms and 5 ms measured alike.
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
    'threads': '',   # empty: DEFAULT_THREADS for the database
    'extensions': '',
    'quiet': False,
    'record_exchanges': True,
    'exchanges_kept': 500,
}
INTEGER_SETTINGS = ('port', 'default_page_size', 'max_page_size', 'max_body_bytes', 'threads', 'exchanges_kept')
# Requests served at once when `threads` is not set, by database. SQLite: one. Python
# runs one thread at a time and SQLite writes one at a time, so a second thread mostly
# adds the handing over of the interpreter lock: one thread served 30-60% more requests
# per second than eight, and more than two, three or four (README, Performance).
# PostgreSQL: four, so that requests overlap their round trips to the database server.
DEFAULT_THREADS = {'sqlite': 1, 'postgresql': 4}
BOOLEAN_SETTINGS = ('quiet', 'record_exchanges')
BOOLEANS = {'on': True, 'true': True, 'yes': True, '1': True, 'off': False, 'false': False, 'no': False, '0': False}
ENVIRONMENT = {
    'SCIM_HOST': 'host',
    'SCIM_PORT': 'port',
    'SCIM_DATABASE_URL': 'database',
    'SCIM_TOKEN': 'token',
    'SCIM_BASE_URL': 'base_url',
    'SCIM_EXTENSIONS': 'extensions',
}


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line for a human."""


def read_config_file(path):
    """The [scimlite] section of an ini file as a dict (empty if the file is absent)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding='utf-8') as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return {}
    except (OSError, configparser.Error) as error:
        raise SettingsError(f'cannot read {path}: {error}') from None
    return dict(parser['scimlite']) if parser.has_section('scimlite') else {}


def load_settings(argv=None, environ=None):
    """Settings from flags > environment > config.ini > DEFAULTS."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog='scim_server.py', description='scimlite: a SCIM 2.0 server.')
    parser.add_argument('--config', help='ini file (default: config.ini beside this script)')
    parser.add_argument('--host', help='address to listen on (default 127.0.0.1)')
    parser.add_argument('--port', help='port to listen on (default 5000)')
    parser.add_argument('--database', help='sqlite:///scim.db (default) or a PostgreSQL URL')
    parser.add_argument('--token', action='append', help='bearer token; repeat it to accept several')
    parser.add_argument('--quiet', action='store_true', default=None,
                        help='print no line per SCIM request (the dashboard still records them)')
    args = parser.parse_args(argv)

    config_path = args.config or environ.get('SCIM_CONFIG')
    if config_path and not Path(config_path).is_file():
        raise SettingsError(f'config file not found: {config_path}')
    from_file = read_config_file(config_path or CONFIG_FILE)
    from_environment = {key: environ[name] for name, key in ENVIRONMENT.items() if environ.get(name)}
    from_flags = {key: value for key, value in vars(args).items()
                  if value is not None and key != 'config'}
    if 'token' in from_flags:
        from_flags['token'] = ','.join(from_flags['token'])
    return normalise_settings({**from_file, **from_environment, **from_flags})


def normalise_settings(overrides):
    """DEFAULTS updated with `overrides`, each value checked and given its type."""
    unknown = set(overrides) - set(DEFAULTS) - {'tokens', 'extension_schemas'}   # the last two: already read
    if unknown:
        raise SettingsError(f'unknown setting(s): {", ".join(sorted(unknown))}')
    settings = {**DEFAULTS, **overrides}
    if not str(settings['threads']).strip():
        settings['threads'] = DEFAULT_THREADS['sqlite' if store.backend(str(settings['database'])) == 'sqlite'
                                              else 'postgresql']
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
    if settings['threads'] < 1:
        raise SettingsError(f'threads must be at least 1, not {settings["threads"]}')
    if settings['exchanges_kept'] < 1:
        raise SettingsError('exchanges_kept must be at least 1 (record_exchanges = off records none)')
    if not 0 <= settings['port'] < 65536:
        raise SettingsError(f'port must be from 0 (any free port) to 65535, not {settings["port"]}')
    tokens = settings.get('tokens') or [t.strip() for t in str(settings['token']).split(',')]
    settings['tokens'] = tuple(token for token in tokens if token)
    if not settings['tokens']:
        raise SettingsError('no token is set: give --token, SCIM_TOKEN or token= in config.ini')
    # '/scim/v2' (the default), or '' for the root: routes and URLs append '/Users' to it.
    settings['base_path'] = '/' + settings['base_path'].strip('/') if settings['base_path'].strip('/') else ''
    # base_url may be the bare public address (https://abcd.ngrok-free.app) or the API's.
    base = settings['base_url'].rstrip('/')
    if base and not base.endswith(settings['base_path']):
        base += settings['base_path']
    settings['base_url'] = base
    if 'extension_schemas' not in settings:
        settings['extension_schemas'] = load_extensions(settings['extensions']) if settings['extensions'] else ()
    return settings


def is_loopback(host):
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ===========================================================================
# Errors: one type, rendered in one place (ScimApp.default_error_handler)
# ===========================================================================

ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error'


class ScimError(bottle.HTTPError):
    """Raise from anywhere; the app renders it as a SCIM Error (RFC 7644 §3.12)."""

    def __init__(self, status, scim_type=None, detail=None, **headers):
        super().__init__(status, detail)
        self.scim_type = scim_type
        self.detail = detail
        for name, value in headers.items():
            self.set_header(name.replace('_', '-'), value)


def error_document(status, scim_type, detail):
    document = {'schemas': [ERROR_SCHEMA], 'status': str(status)}
    if scim_type:
        document['scimType'] = scim_type
    if detail:
        document['detail'] = detail
    return document


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


def read_json():
    """The request body as a JSON object, or a SCIM 4xx.

    Bottle's `request.json` ignores application/scim+json, so the body is read
    here, whatever the Content-Type, up to the configured size."""
    limit = request.app.settings['max_body_bytes']
    if request.content_length > limit:
        raise ScimError(413, None, f'The body is larger than {limit} bytes.')
    body = request.environ['wsgi.input'].read(request.content_length if request.content_length >= 0 else limit + 1)
    request.environ['scimlite.body'] = body   # for the dashboard's exchange log
    if len(body) > limit:
        raise ScimError(413, None, f'The body is larger than {limit} bytes.')
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
    while pending:
        value, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
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

    `document` is a dict, or JSON text already encoded (see render)."""
    response.status = status
    response.content_type = SCIM_MEDIA_TYPE
    if location:
        response.set_header('Location', location)
    if version is not None:
        response.set_header('ETag', etag(version))
    return (document if isinstance(document, str) else encode(document)).encode('utf-8')


def etag(version):
    return f'W/"{version}"'


def if_match():
    """If-Match as the set of stored versions it accepts: None when absent or `*`.

    Tags that name no version of ours (`"abc"`) match nothing, so a set of only
    such tags ends in 412."""
    header = request.environ.get('HTTP_IF_MATCH')   # raw: Bottle's get_header fails on non-UTF-8
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
# Schemas (RFC 7643 §4 and §8.7): what the discovery endpoints say and what
# validation enforces, from one definition
# ===========================================================================

USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User'
GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group'
ENTERPRISE_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
LIST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse'
PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp'
SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema'
RESOURCE_TYPE_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType'
SPC_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'
# Entra adds this to every group it creates; it describes nothing we must enforce.
ENTRA_GROUP_SCHEMA = 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group'


class Definition(dict):
    """An attribute definition, as /Schemas shows it (RFC 7643 §7). `subs` indexes
    its sub-attributes by lower-case name (SCIM names are case-insensitive), once;
    `as_is` is the Python type of a value that needs no checking beyond its type
    (str for single-valued text, bool for a boolean), or None."""
    __slots__ = ('subs', 'as_is')


def sub_attributes(definition):
    """{lower-case name: definition} of a complex attribute's sub-attributes."""
    return definition.subs if isinstance(definition, Definition) else {}


def attribute(name, type_='string', description='', *, multi=False, required=False,
              case_exact=False, mutability='readWrite', returned='default',
              uniqueness='none', sub=None, canonical=None, references=None):
    definition = Definition({
        'name': name, 'type': type_, 'multiValued': multi, 'description': description,
        'required': required, 'caseExact': case_exact, 'mutability': mutability,
        'returned': returned, 'uniqueness': uniqueness,
    })
    definition.subs = {s['name'].lower(): s for s in sub or ()}
    definition.as_is = None if multi else {'string': str, 'reference': str, 'binary': str, 'boolean': bool,
                                           'integer': int}.get(type_)
    if sub:
        definition['subAttributes'] = sub
    if canonical:
        definition['canonicalValues'] = list(canonical)
    if references:
        definition['referenceTypes'] = list(references)
    return definition


def multi_valued(name, description, types, value_type='string', references=None):
    """The usual shape of a multi-valued attribute: value, display, type, primary."""
    return attribute(name, 'complex', description, multi=True, sub=[
        attribute('value', value_type, f'The {name[:-1]} itself.', references=references),
        attribute('display', description='A human-readable name.'),
        attribute('type', description='A label for its function.', canonical=types),
        attribute('primary', 'boolean', 'The preferred value; at most one is true.'),
    ])


USER_ATTRIBUTES = [
    attribute('userName', description='Unique identifier for the user, used to sign in.',
              required=True, uniqueness='server'),
    attribute('name', 'complex', "The components of the user's name.", sub=[
        attribute(sub_name, description=text) for sub_name, text in (
            ('formatted', 'The full name for display.'), ('familyName', 'The family name.'),
            ('givenName', 'The given name.'), ('middleName', 'The middle name(s).'),
            ('honorificPrefix', 'Honorific prefix, e.g. Ms.'),
            ('honorificSuffix', 'Honorific suffix, e.g. III.'))]),
    attribute('displayName', description='The name to display.'),
    attribute('nickName', description='The casual name.'),
    attribute('profileUrl', 'reference', 'A URL of the online profile.', references=['external']),
    attribute('title', description="The user's title, e.g. Vice President."),
    attribute('userType', description='The relationship to the organisation, e.g. Employee.'),
    attribute('preferredLanguage', description='Preferred language, e.g. en-US.'),
    attribute('locale', description='Default location for localisation, e.g. en-US.'),
    attribute('timezone', description='Time zone in IANA form, e.g. America/Los_Angeles.'),
    attribute('active', 'boolean', 'Whether the user may sign in; false is a soft delete.'),
    attribute('password', description='Accepted and dropped: never stored, never returned.',
              mutability='writeOnly', returned='never'),
    multi_valued('emails', 'Email addresses.', ('work', 'home', 'other')),
    multi_valued('phoneNumbers', 'Phone numbers.', ('work', 'home', 'mobile', 'fax', 'pager', 'other')),
    multi_valued('ims', 'Instant messaging addresses.',
                 ('aim', 'gtalk', 'icq', 'xmpp', 'msn', 'skype', 'qq', 'yahoo')),
    multi_valued('photos', 'URLs of photos.', ('photo', 'thumbnail'), 'reference', ['external']),
    attribute('addresses', 'complex', 'Physical mailing addresses.', multi=True, sub=[
        attribute('formatted', description='The full address for display.'),
        attribute('streetAddress', description='Street, house number, P.O. box.'),
        attribute('locality', description='City or locality.'),
        attribute('region', description='State or region.'),
        attribute('postalCode', description='Zip or postal code.'),
        attribute('country', description='Country, ISO 3166-1 alpha-2.'),
        attribute('type', description='A label for its function.', canonical=('work', 'home', 'other')),
        attribute('primary', 'boolean', 'The preferred address.'),
    ]),
    attribute('groups', 'complex', 'The groups the user belongs to, from group membership.',
              multi=True, mutability='readOnly', sub=[
                  attribute('value', description='The id of the group.', mutability='readOnly'),
                  attribute('$ref', 'reference', 'The URI of the group.', mutability='readOnly',
                            references=['Group']),
                  attribute('display', description="The group's displayName.", mutability='readOnly'),
                  attribute('type', description='direct (nested groups are not supported).',
                            mutability='readOnly', canonical=('direct',)),
              ]),
    multi_valued('entitlements', 'Entitlements.', ()),
    multi_valued('roles', 'Roles.', ()),
    multi_valued('x509Certificates', 'DER certificates, base64.', (), 'binary'),
]

ENTERPRISE_ATTRIBUTES = [
    attribute('employeeNumber', description='Identifier assigned by the organisation.'),
    attribute('costCenter', description='Name of a cost center.'),
    attribute('organization', description='Name of an organisation.'),
    attribute('division', description='Name of a division.'),
    attribute('department', description='Name of a department.'),
    attribute('manager', 'complex', "The user's manager.", sub=[
        attribute('value', description="The id of the manager's User."),
        attribute('$ref', 'reference', "The URI of the manager's User.", references=['User']),
        attribute('displayName', description="The manager's displayName.", mutability='readOnly'),
    ]),
]

GROUP_ATTRIBUTES = [
    attribute('displayName', description='A human-readable name for the group.', required=True),
    attribute('members', 'complex', 'The users in the group.', multi=True, sub=[
        attribute('value', description='The id of the member User.', mutability='immutable'),
        attribute('$ref', 'reference', 'The URI of the member.', mutability='immutable',
                  references=['User']),
        attribute('display', description="The member's userName.", mutability='readOnly'),
        attribute('type', description='User (nested groups are not supported).',
                  mutability='immutable', canonical=('User',)),
    ]),
]

BUILT_IN_SCHEMAS = {
    USER_SCHEMA: ('User', 'User Account', USER_ATTRIBUTES),
    GROUP_SCHEMA: ('Group', 'Group', GROUP_ATTRIBUTES),
    ENTERPRISE_SCHEMA: ('EnterpriseUser', 'Enterprise User', ENTERPRISE_ATTRIBUTES),
}
SCHEMAS = dict(BUILT_IN_SCHEMAS)   # and the extensions config.ini declares (configure_extensions)


# Attributes of every resource (RFC 7643 §3.1), in no schema document.
COMMON_ATTRIBUTES = {
    'id': attribute('id', case_exact=True, mutability='readOnly', returned='always'),
    'externalid': attribute('externalId', case_exact=True),
    'meta': attribute('meta', 'complex', mutability='readOnly', sub=[
        attribute(name, type_, mutability='readOnly') for name, type_ in (
            ('resourceType', 'string'), ('created', 'dateTime'), ('lastModified', 'dateTime'),
            ('location', 'reference'), ('version', 'string'))]),
}


READ_ONLY_COMMON = ('id', 'meta')   # attributes every resource has, set by the server


class ResourceType:
    """What differs between Users and Groups: schemas, endpoint, store functions."""

    def __init__(self, name, endpoint, schema, extensions, attributes, membership, required):
        self.name = name
        self.endpoint = endpoint
        self.schema = schema
        self.built_in_extensions = extensions
        self.attributes = {a['name'].lower(): a for a in attributes}
        self.writable = {**self.attributes, 'externalid': COMMON_ATTRIBUTES['externalid']}
        self.searchable = {**COMMON_ATTRIBUTES, **self.attributes}
        self.membership = membership          # 'groups' on users (read-only), 'members' on groups
        self.required = required
        self.multi_valued = frozenset(a['name'] for a in attributes
                                      if a['multiValued'] and a['name'] != membership)
        # Keys of a body that are never stored as sent (see clean_resource).
        self.not_stored = frozenset(('schemas', 'password', membership, *READ_ONLY_COMMON))
        self.set_extensions(extensions)

    def set_extensions(self, extensions):
        """The extension schemas this type takes (their URNs, described in SCHEMAS)."""
        self.extensions = tuple(extensions)
        self.extension_attributes = {urn.lower(): {a['name'].lower(): a for a in SCHEMAS[urn][2]}
                                     for urn in self.extensions}
        self.urns = {urn.lower(): urn for urn in (self.schema, *self.extensions)}

    def definition(self, urn):
        """The attribute map of the core schema (with externalId) or of a known extension;
        None for an extension we do not know."""
        if urn is None or urn.lower() == self.schema.lower():
            return self.writable
        return self.extension_attributes.get(urn.lower())

    def known_urn(self, urn):
        return self.urns.get(urn.lower())


USERS = ResourceType('User', '/Users', USER_SCHEMA, (ENTERPRISE_SCHEMA,), USER_ATTRIBUTES,
                     'groups', 'userName')
GROUPS = ResourceType('Group', '/Groups', GROUP_SCHEMA, (), GROUP_ATTRIBUTES, 'members', 'displayName')


# ---------------------------------------------------------------------------
# Extension schemas declared in config.ini (`extensions = okta-custom.json`)
# ---------------------------------------------------------------------------
#
# The file holds schema documents as RFC 7643 §7 writes them (what /Schemas
# answers: a list, one document, or a ListResponse of them), each with a
# "resourceType" of "User" (the default) or "Group". /Schemas and
# /ResourceTypes then describe them, and their values are type-checked. An
# extension that is not declared is still stored and returned as sent.

ATTRIBUTE_TYPES = ('string', 'boolean', 'decimal', 'integer', 'dateTime', 'reference', 'binary', 'complex')
CHARACTERISTICS = {
    'mutability': ('readOnly', 'readWrite', 'immutable', 'writeOnly'),
    'returned': ('always', 'never', 'default', 'request'),
    'uniqueness': ('none', 'server', 'global'),
}


def load_extensions(path):
    """The extension schemas in the file at `path`: ((resource type, urn, name,
    description, [Definition]), ...), or SettingsError with one line."""
    try:
        document = json.loads(Path(path).read_text(encoding='utf-8'))
    except (OSError, UnicodeError, ValueError) as error:
        raise SettingsError(f'cannot read the extensions file {path}: {error}') from None
    if isinstance(document, dict):
        document = document.get('Resources', [document])
    if not isinstance(document, list):
        raise SettingsError(f'{path}: expected schema documents (RFC 7643 §7)')
    found, seen = [], {urn.lower() for urn in BUILT_IN_SCHEMAS}
    for schema in document:
        urn = schema.get('id') if isinstance(schema, dict) else None
        if not isinstance(urn, str) or not urn.lower().startswith('urn:') or urn.lower() in seen:
            raise SettingsError(f'{path}: each schema needs an "id" that is a new URN, not {urn!r}')
        seen.add(urn.lower())
        resource_type = schema.get('resourceType', 'User')
        if resource_type not in ('User', 'Group'):
            raise SettingsError(f'{path}: {urn}: resourceType must be User or Group, not {resource_type!r}')
        attributes = schema.get('attributes')
        if not isinstance(attributes, list):
            raise SettingsError(f'{path}: {urn}: "attributes" must be a list')
        definitions = [declared_attribute(item, f'{path}: {urn}') for item in attributes]
        found.append((resource_type, urn, str(schema.get('name') or urn.rsplit(':', 1)[-1]),
                      str(schema.get('description', '')), definitions))
    return tuple(found)


def declared_attribute(item, where):
    """One attribute of a declared schema as a Definition (sub-attributes too)."""
    name = item.get('name') if isinstance(item, dict) else None
    if not isinstance(name, str) or not re.fullmatch(r'[A-Za-z$][\w$-]*', name):
        raise SettingsError(f'{where}: an attribute needs a "name" (letters, digits, _, $ or -), not {name!r}')
    type_ = item.get('type', 'string')
    if type_ not in ATTRIBUTE_TYPES:
        raise SettingsError(f'{where}.{name}: type must be one of {", ".join(ATTRIBUTE_TYPES)}, not {type_!r}')
    options = {}
    for key, allowed in CHARACTERISTICS.items():
        value = item.get(key, allowed[2] if key == 'returned' else allowed[0] if key == 'uniqueness' else 'readWrite')
        if value not in allowed:
            raise SettingsError(f'{where}.{name}: {key} must be one of {", ".join(allowed)}, not {value!r}')
        options[key] = value
    flags = {key: item.get(key, False) for key in ('multiValued', 'required', 'caseExact')}
    if not all(isinstance(flag, bool) for flag in flags.values()):
        raise SettingsError(f'{where}.{name}: multiValued, required and caseExact are true or false')
    sub = [declared_attribute(part, f'{where}.{name}') for part in item.get('subAttributes') or ()]
    if (type_ == 'complex') != bool(sub):
        raise SettingsError(f'{where}.{name}: a complex attribute, and only one, has subAttributes')
    canonical = item.get('canonicalValues')
    return attribute(name, type_, str(item.get('description', '')), multi=flags['multiValued'],
                     required=flags['required'], case_exact=flags['caseExact'], sub=sub or None,
                     canonical=canonical if isinstance(canonical, list) else None, **options)


def configure_extensions(declared):
    """Make the declared schemas (load_extensions) known, and only them: one
    app per process, so this is process-wide."""
    SCHEMAS.clear()
    SCHEMAS.update(BUILT_IN_SCHEMAS)
    for _, urn, name, description, definitions in declared:
        SCHEMAS[urn] = (name, description, definitions)
    for kind in (USERS, GROUPS):
        kind.set_extensions((*kind.built_in_extensions,
                             *(urn for resource_type, urn, *_ in declared if resource_type == kind.name)))


# ===========================================================================
# Resources: a request body -> the stored resource -> the JSON we answer
# ===========================================================================



def find_key(mapping, name):
    """The key of `mapping` equal to `name` ignoring case (SCIM names are case-insensitive)."""
    if name in mapping:
        return name
    lowered = name.lower()
    return next((key for key in mapping if key.lower() == lowered), None)


def check_value(definition, value, where, one=False):
    """Type-check one value against its attribute definition; returns it canonicalised.
    `one`: a single value of a multi-valued attribute.

    Nulls inside complex values are dropped ("null means not set")."""
    if definition['multiValued'] and not one:
        if not isinstance(value, list):
            raise ScimError(400, 'invalidValue', f'{where} must be a list.')
        return [check_value(definition, item, f'{where}[{i}]', one=True)
                for i, item in enumerate(value) if item is not None]
    kind = definition['type']
    if kind == 'complex':
        if not isinstance(value, dict):
            raise ScimError(400, 'invalidValue', f'{where} must be an object.')
        subs = sub_attributes(definition)
        checked = {}
        for key, item in value.items():
            sub = subs.get(key.lower())
            if item is None:
                continue
            if sub is None:
                checked[key] = item
            elif type(item) is sub.as_is:   # most values: nothing more to check
                checked[sub['name']] = item
            else:
                checked[sub['name']] = check_value(sub, item, f'{where}.{sub["name"]}')
        return checked
    if kind == 'boolean':
        if not isinstance(value, bool):
            raise ScimError(400, 'invalidValue', f'{where} must be true or false.')
        return value
    if kind in ('integer', 'decimal'):
        if isinstance(value, bool) or not isinstance(value, int if kind == 'integer' else (int, float)):
            raise ScimError(400, 'invalidValue', f'{where} must be {"an integer" if kind == "integer" else "a number"}.')
        return value
    if not isinstance(value, str):
        raise ScimError(400, 'invalidValue', f'{where} must be a string.')
    if kind == 'dateTime' and store.normalise_time(value) is None:
        raise ScimError(400, 'invalidValue', f'{where} must be an RFC 3339 date and time.')
    return value


def check_schemas(body, kind):
    """`schemas` must be a list of URI strings that includes the resource's core schema."""
    schemas = body.get('schemas')
    if not isinstance(schemas, list) or not all(isinstance(s, str) and s for s in schemas):
        raise ScimError(400, 'invalidSyntax', f'schemas must be a list of schema URIs, including {kind.schema}.')
    known = [kind.known_urn(s) or s for s in schemas]
    if kind.schema not in known:
        raise ScimError(400, 'invalidSyntax', f'schemas must include {kind.schema}.')
    return list(dict.fromkeys(known))


def clean_resource(body, kind):
    """A request body -> the resource we store, or a 400.

    Read-only attributes (`id`, `meta`, a user's `groups`) are ignored, as Okta
    sends back what it read; `password` is dropped; nulls mean "not set"; known
    attributes are type-checked and take their schema's spelling; anything else
    an IdP sends (its own extensions) is kept as sent. `members` of a group are
    not part of the stored resource: they live in link rows."""
    schemas = check_schemas(body, kind)
    resource = {'schemas': schemas}
    core = kind.definition(None)
    not_stored = kind.not_stored
    for key, value in body.items():
        lowered = key.lower()
        if value is None or lowered in not_stored:
            continue
        urn = kind.known_urn(key) if lowered.startswith('urn:') else None
        if urn and urn != kind.schema:
            resource[urn] = check_extension(kind, urn, value)
            continue
        definition = core.get(lowered)
        if definition is None:
            resource[key] = value
        elif type(value) is definition.as_is and definition['mutability'] != 'readOnly':
            resource[definition['name']] = value
        elif definition['mutability'] != 'readOnly':
            resource[definition['name']] = check_value(definition, value, definition['name'])
            check_single_primary(definition, resource[definition['name']])
    required = resource.get(kind.required)
    if not isinstance(required, str) or not required.strip():
        raise ScimError(400, 'invalidValue', f'{kind.required} is required and must be a non-empty string.')
    if kind is USERS:
        resource.setdefault('active', True)   # unassigned is active: the answer says what filters see
    return resource


def check_extension(kind, urn, value):
    if not isinstance(value, dict):
        raise ScimError(400, 'invalidValue', f'{urn} must be an object.')
    definitions = kind.definition(urn)
    checked = {}
    for name, item in value.items():
        definition = definitions.get(name.lower())
        if item is None or (definition and definition['mutability'] == 'readOnly'):
            continue
        if definition:
            checked[definition['name']] = check_value(definition, item, f'{urn}:{definition["name"]}')
        else:
            checked[name] = item
    return checked


def check_single_primary(definition, values):
    """RFC 7643 §2.4: "primary" is true for one value at most."""
    if definition['multiValued'] and sum(1 for v in values if isinstance(v, dict) and v.get('primary') is True) > 1:
        raise ScimError(400, 'invalidValue', f'{definition["name"]}: at most one value may be primary.')


def member_ids(value, where='members'):
    """A `members` value ([{"value": "<user id>"}, ...]) -> the ids, or a 400."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(
            isinstance(item, dict) and isinstance(item.get('value'), str) for item in value):
        raise ScimError(400, 'invalidValue', f'{where} must be a list of {{"value": "<user id>"}}.')
    return [item['value'] for item in value]


def render(record, kind, projection=None):
    """A stored record -> the SCIM resource we answer with: JSON text, or with a
    projection a document to project and encode.

    Without a projection the stored JSON text is spliced into the answer as it
    is: a page of 100 users is not parsed and encoded again (it holds no id,
    meta or membership, which are added here)."""
    base = base_url()
    if kind is USERS:   # membership comes from the link rows (an empty list when there is none)
        name, members = 'groups', [{'value': group_id, 'display': display, 'type': 'direct',
                                    '$ref': f'{base}/Groups/{group_id}'} for group_id, display in record['links']]
    else:
        name, members = 'members', [{'value': user_id, 'display': user_name, 'type': 'User',
                                     '$ref': f'{base}/Users/{user_id}'} for user_id, user_name in record['links']]
    location = f'{base}{kind.endpoint}/{record["id"]}'
    if projection is None:
        # created and lastModified are our own fixed-width UTC stamps: nothing to escape.
        return (f'{record["json"][:-1]},"id":{quote(record["id"])},"{name}":{encode(members) if members else "[]"},'
                f'"meta":{{"resourceType":"{kind.name}","created":"{record["created"]}",'
                f'"lastModified":"{record["last_modified"]}","location":{quote(location)},'
                f'"version":{quote(etag(record["version"]))}}}}}')
    document = {'id': record['id'], **record['resource'], name: members, 'meta': {
        'resourceType': kind.name, 'created': record['created'], 'lastModified': record['last_modified'],
        'location': location, 'version': etag(record['version'])}}
    return projection.apply(document)


quote = json.JSONEncoder(ensure_ascii=False).encode   # one JSON string


def encode(document):
    return json.dumps(document, ensure_ascii=False, separators=(',', ':'), allow_nan=False)


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

    def __init__(self, kind, parameters, settings):
        self.kind = kind
        self.parameters = parameters
        self.start_index = max(1, self.integer('startIndex', 1))
        count = self.integer('count', settings['default_page_size'])
        self.count = min(max(0, count), settings['max_page_size'])
        self.filter = self.parse_filter()
        self.sort = self.parse_sort() if 'sortBy' in parameters or 'sortOrder' in parameters else None
        self.projection = (self.parse_projection() if 'attributes' in parameters or 'excludedAttributes' in parameters
                           else None)

    @classmethod
    def from_query(cls, kind):
        names = ('filter', 'startIndex', 'count', 'sortBy', 'sortOrder', 'attributes', 'excludedAttributes')
        query = query_parameters()
        parameters = {name: query_parameter(name) for name in names if name in query} if query else {}
        return cls(kind, parameters, request.app.settings)

    @classmethod
    def from_body(cls, kind, body):
        schemas = body.get('schemas')
        if not isinstance(schemas, list) or SEARCH_SCHEMA not in schemas:
            raise ScimError(400, 'invalidSyntax', f'schemas must be ["{SEARCH_SCHEMA}"].')
        return cls(kind, body, request.app.settings)

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
            try:
                number = int(value)
            except ValueError:
                pass
        if number is None:
            raise ScimError(400, 'invalidValue', f'{name} must be an integer, not {value!r}.')
        return max(-MAX_INDEX, min(number, MAX_INDEX))   # past that, as good as infinite

    def names(self, name):
        """attributes / excludedAttributes: a comma list in a query, a list in a body."""
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
        return canonical_filter(expr, self.kind)

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
        if path.attr == self.kind.membership or (definition and definition['type'] == 'complex' and not path.sub
                                                 and not definition['multiValued']):
            raise ScimError(400, 'invalidValue', f'sortBy {text!r} has no single value to sort by.')
        return path, order == 'descending'

    def parse_projection(self):
        return projection_of(self.kind, self.names('attributes'), self.names('excludedAttributes'))


def projection_of(kind, wanted, unwanted):
    if wanted and unwanted:
        raise ScimError(400, 'invalidValue', 'Give attributes or excludedAttributes, not both.')
    if not (wanted or unwanted):
        return None
    return Projection(kind, wanted or unwanted, include=bool(wanted))


def canonical_filter(expr, kind, within=None):
    """The filter with every attribute spelled as its schema spells it (SCIM names are
    case-insensitive, the stored JSON is not); an unknown core attribute is a 400.
    `within` is the multi-valued attribute whose sub-attributes a [filter] names."""
    if isinstance(expr, (F.And, F.Or)):
        return type(expr)(canonical_filter(expr.left, kind, within), canonical_filter(expr.right, kind, within))
    if isinstance(expr, F.Not):
        return F.Not(canonical_filter(expr.expr, kind, within))
    if isinstance(expr, F.ValuePath):
        path, definition = canonical_attr_path(expr.path, kind)
        return F.ValuePath(path, canonical_filter(expr.filter, kind, definition))
    if within is not None:
        path = canonical_sub_path(expr.path, within)
    else:
        path = canonical_attr_path(expr.path, kind)[0]
    return F.Present(path) if isinstance(expr, F.Present) else F.Compare(path, expr.op, expr.value)


def canonical_attr_path(path, kind):
    """(AttrPath in schema spelling, the attribute's definition or None)."""
    urn = kind.known_urn(path.urn) if path.urn else None
    if path.urn and urn is None:
        if path.urn.lower() in (USER_SCHEMA.lower(), GROUP_SCHEMA.lower()):
            raise ScimError(400, 'invalidFilter', f'{path} belongs to another resource type.')
        return path, None    # an extension we do not know (Okta custom attributes): as sent
    definitions = kind.definition(urn) if urn and urn != kind.schema else kind.searchable
    definition = definitions.get(path.attr.lower())
    if definition is None:
        raise ScimError(400, 'invalidFilter', f'Unknown attribute {path} in the filter.')
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
        for item, chosen in zip(value, picked):
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


def members_wanted(projection):
    return projection is None or projection.wants('members')


def list_response(records, total, start_index, kind, projection):
    """A ListResponse as JSON text (its resources may be spliced text, see render)."""
    resources = [render(record, kind, projection) for record in records]
    items = ','.join(item if isinstance(item, str) else encode(item) for item in resources)
    return (f'{{"schemas":["{LIST_SCHEMA}"],"totalResults":{int(total)},"startIndex":{int(start_index)},'
            f'"itemsPerPage":{len(resources)},"Resources":[{items}]}}')


# ===========================================================================
# PATCH (RFC 7644 §3.5.2), after the IdP dialects are normalised away
# ===========================================================================
#
# Each dialect function takes the list of operations (dicts) and returns it
# fixed; they run in order before the generic logic, which then only sees the RFC.

def lowercase_op_names(operations, kind, resource_id):
    """Entra (without aadOptscim062020) capitalises ops: `{"op": "Replace", ...}`."""
    return [dict(operation, op=operation['op'].lower()) if isinstance(operation.get('op'), str)
            else operation for operation in operations]


def expand_dotted_keys(operations, kind, resource_id):
    """Entra puts sub-attribute paths in a path-less value:
    `{"op": "Replace", "value": {"name.givenName": "Ann", "active": "False"}}`."""
    fixed = []
    for operation in operations:
        value = operation.get('value')
        if operation.get('path') is None and isinstance(value, dict) and any('.' in k for k in value):
            plain = {k: v for k, v in value.items() if '.' not in k or k.lower().startswith('urn:')}
            if plain:
                fixed.append(dict(operation, value=plain))
            fixed.extend(dict(operation, path=k, value=v)
                         for k, v in value.items() if '.' in k and not k.lower().startswith('urn:'))
        else:
            fixed.append(operation)
    return fixed


def booleans_from_strings(operations, kind, resource_id):
    """Entra sends booleans as strings: `{"op": "Replace", "path": "active", "value": "False"}`."""
    def fix(value):
        if isinstance(value, str) and value.lower() in ('true', 'false'):
            return value.lower() == 'true'
        return value

    fixed = []
    for operation in operations:
        path, value = operation.get('path'), operation.get('value')
        if isinstance(path, str) and path.lower() == 'active':
            operation = dict(operation, value=fix(value))
        elif path is None and isinstance(value, dict) and find_key(value, 'active'):
            key = find_key(value, 'active')
            operation = dict(operation, value=dict(value, **{key: fix(value[key])}))
        fixed.append(operation)
    return fixed


def drop_own_id_from_value(operations, kind, resource_id):
    """Okta renames a group with its own id in the value:
    `{"op": "replace", "value": {"id": "<group id>", "displayName": "New name"}}`."""
    fixed = []
    for operation in operations:
        value = operation.get('value')
        key = find_key(value, 'id') if operation.get('path') is None and isinstance(value, dict) else None
        if key and value[key] == resource_id:
            operation = dict(operation, value={k: v for k, v in value.items() if k != key})
        fixed.append(operation)
    return fixed


def manager_from_bare_id(operations, kind, resource_id):
    """Entra sets the manager to a bare id:
    `{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "value": "<manager id>"}`; the schema says manager is {"value": "<id>"}."""
    fixed = []
    for operation in operations:
        path = operation.get('path')
        if (isinstance(path, str) and path.lower() == f'{ENTERPRISE_SCHEMA}:manager'.lower()
                and isinstance(operation.get('value'), str)):
            operation = dict(operation, value={'value': operation['value']})
        fixed.append(operation)
    return fixed


IDP_DIALECTS = (lowercase_op_names, expand_dotted_keys, booleans_from_strings,
                drop_own_id_from_value, manager_from_bare_id)


def read_patch_operations(body, kind, resource_id):
    schemas = body.get('schemas')
    if not isinstance(schemas, list) or PATCH_SCHEMA not in schemas:
        raise ScimError(400, 'invalidSyntax', f'schemas must be ["{PATCH_SCHEMA}"].')
    operations = body.get('Operations', body.get('operations'))
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, 'invalidSyntax', 'Operations must be a non-empty list.')
    if not all(isinstance(operation, dict) for operation in operations):
        raise ScimError(400, 'invalidSyntax', 'Each operation must be an object.')
    for dialect in IDP_DIALECTS:
        operations = dialect(operations, kind, resource_id)
    for operation in operations:
        if operation.get('op') not in ('add', 'remove', 'replace'):
            raise ScimError(400, 'invalidSyntax', f'op must be add, remove or replace, not {operation.get("op")!r}.')
        if operation.get('path') is not None and not isinstance(operation['path'], str):
            raise ScimError(400, 'invalidPath', 'path must be a string.')
    return operations


def parse_patch_path(text, kind, schemas=()):
    """A PATCH path -> (extension URN or None for the core schema, PatchPath).

    The PatchPath is None when the path is a whole extension. An extension we do
    not know (Okta's custom attributes) is schemaless: kept as sent; `schemas` are
    the resource's, so a custom extension it already has is recognised whole."""
    whole = kind.known_urn(text) or next((urn for urn in schemas if urn.lower() == text.lower()), None)
    if whole and whole != kind.schema:
        return whole, None
    try:
        path = F.parse_path(text)
    except F.FilterSyntaxError as error:
        raise ScimError(400, 'invalidPath', f'Bad path {text!r}: {error}.') from None
    urn = path.path.urn
    if urn is None:
        return None, path
    known = kind.known_urn(urn)
    if known == kind.schema:   # urn:...:core:2.0:User:userName is userName
        return None, dataclasses.replace(path, path=dataclasses.replace(path.path, urn=None))
    if known is None and urn.lower() in (USER_SCHEMA.lower(), GROUP_SCHEMA.lower()):
        raise ScimError(400, 'invalidPath', f'{text!r} names an attribute of another resource type.')
    return known or urn, path


class Patcher:
    """Applies RFC 7644 §3.5.2 operations to one resource dict.

    Member changes of a group are not applied to the dict: they are collected as
    link-row operations for the store, in order."""

    def __init__(self, kind, resource, resource_id):
        self.kind = kind
        self.resource = copy.deepcopy(resource)
        self.resource_id = resource_id
        self.member_operations = []

    def apply(self, operation):
        op, value = operation['op'], operation.get('value')
        if operation.get('path') is None:
            if op == 'remove':
                raise ScimError(400, 'noTarget', 'remove needs a path.')
            if not isinstance(value, dict):
                raise ScimError(400, 'invalidValue', f'{op} without a path needs an object value.')
            for key, item in value.items():
                if key.lower() != 'schemas':
                    self.apply_path(op, key, item)
            return
        if op == 'add' and value is None:
            parse_patch_path(operation['path'], self.kind, self.resource['schemas'])   # a bad path first
            raise ScimError(400, 'invalidValue', 'add needs a value (RFC 7644 §3.5.2.1).')
        self.apply_path(op, operation['path'], value)

    def apply_path(self, op, text, value):
        if isinstance(text, str) and text.strip().lower() == 'schemas':
            raise ScimError(400, 'invalidPath', 'schemas follows the attributes: patch those.')
        urn, path = parse_patch_path(text, self.kind, self.resource['schemas'])
        if path is not None:
            return self.apply_to(op, urn, path, value)
        # The whole extension, e.g. path "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        if op == 'remove':
            self.resource.pop(urn, None)
            return
        if not isinstance(value, dict):
            raise ScimError(400, 'invalidValue', f'{urn} needs an object value.')
        for name, item in value.items():
            self.apply_to(op, urn, F.PatchPath(F.AttrPath(name)), item)

    # -- one operation on one attribute --------------------------------------

    def apply_to(self, op, urn, path, value):
        attribute_name = path.path.attr
        definitions = self.kind.definition(urn)
        definition = definitions.get(attribute_name.lower()) if definitions is not None else None
        name = definition['name'] if definition else attribute_name
        if urn is None and name.lower() in READ_ONLY_COMMON:
            raise ScimError(400, 'mutability', f'{name} is read-only.')
        if name.lower() == self.kind.membership and urn is None:
            if self.kind is USERS:
                raise ScimError(400, 'mutability', 'groups is read-only: change membership on the group.')
            return self.patch_members(op, path, value)
        if definition and definition['mutability'] == 'readOnly':
            raise ScimError(400, 'mutability', f'{name} is read-only.')
        if name.lower() == 'password':
            return   # accepted and dropped, as on create
        container = self.container(urn, create=op != 'remove' and value is not None)
        if container is None:   # nothing there to remove or unset
            return
        key = find_key(container, name) or name
        sub = path.path.sub or path.sub
        if path.filter is not None:
            return self.patch_filtered(op, container, key, definition, path.filter, sub, value)
        if sub:
            return self.patch_sub_attribute(op, container, key, definition, sub, value)
        if op == 'remove':
            container.pop(key, None)
            if value is not None and definition and definition['multiValued']:
                raise ScimError(400, 'invalidValue', f'remove of {name} takes a filter, not a value.')
            return
        if value is None:
            container.pop(key, None)
            return
        unset = []
        if definition:
            if definition['multiValued'] and isinstance(value, dict):
                value = [value]   # one value given for a multi-valued attribute
            if definition['type'] == 'complex' and not definition['multiValued'] and isinstance(value, dict):
                unset = [sub for sub, item in value.items() if item is None]   # RFC 7643 §2.5: null unsets
            value = check_value(definition, value, name)
        changed = value
        if definition and definition['multiValued'] and op == 'add':
            # An added value that is already there is not added twice; its primary still counts.
            items, changed = list(container.get(key) or []), []
            for item in value:
                index = next((i for i, old in enumerate(items) if same_value(item, old)), None)
                if index is None:
                    items.append(item)
                    changed.append(item)
                elif isinstance(item, dict) and item.get('primary') is True:
                    items[index] = dict(items[index], primary=True)
                    changed.append(items[index])
            container[key] = items
        elif definition and definition['type'] == 'complex' and isinstance(container.get(key), dict):
            merged = {**container[key], **value}   # RFC: unspecified sub-attributes stay
            for sub in unset:
                merged.pop(find_key(merged, sub) or sub, None)
            container[key] = merged
        else:
            container[key] = value
        if definition and definition['multiValued']:
            self.single_primary(container[key], changed)

    def container(self, urn, create):
        if urn is None:
            return self.resource
        key = find_key(self.resource, urn)
        if key is None:
            if not create:
                return None
            key = urn
            self.resource[key] = {}
            if not any(known.lower() == urn.lower() for known in self.resource['schemas']):
                self.resource['schemas'].append(urn)
        if not isinstance(self.resource[key], dict):
            raise ScimError(400, 'invalidPath', f'{key} is not an extension object.')
        return self.resource[key]

    def patch_sub_attribute(self, op, container, key, definition, sub, value):
        subs = sub_attributes(definition)
        if definition and definition['type'] != 'complex':
            raise ScimError(400, 'invalidPath', f'{key} has no sub-attributes.')
        if definition and definition['multiValued']:
            raise ScimError(400, 'invalidPath', f'{key}.{sub} needs a filter: {key}[type eq "..."].{sub}.')
        sub_definition = subs.get(sub.lower())
        if sub_definition and sub_definition['mutability'] == 'readOnly':
            raise ScimError(400, 'mutability', f'{key}.{sub} is read-only.')
        target = container.get(key)
        if op == 'remove' or value is None:
            if isinstance(target, dict):
                target.pop(find_key(target, sub) or sub, None)
            return
        if target is not None and not isinstance(target, dict):
            raise ScimError(400, 'invalidPath', f'{key} has no sub-attributes.')
        target = container.setdefault(key, {})
        sub_name = sub_definition['name'] if sub_definition else sub
        if sub_definition:
            value = check_value(sub_definition, value, f'{key}.{sub_name}')
        target[find_key(target, sub_name) or sub_name] = value

    def patch_filtered(self, op, container, key, definition, value_filter, sub, value):
        if definition is not None and not definition['multiValued']:
            raise ScimError(400, 'invalidPath', f'{key} is not multi-valued: it takes no filter.')
        items = list(container.get(key) or [])
        if not all(isinstance(item, dict) for item in items) or not isinstance(container.get(key, []), list):
            raise ScimError(400, 'invalidPath', f'{key} is not a list of complex values: it takes no filter.')
        matches = [i for i, item in enumerate(items) if matches_filter(value_filter, item)]
        sub_definitions = sub_attributes(definition)
        if not matches:
            created = equality_item(value_filter) if op == 'add' and sub else None
            if created is None:
                raise ScimError(400, 'noTarget', f'No value of {key} matches the filter.')
            items.append(created)
            matches = [len(items) - 1]
        if op == 'remove':
            if sub:
                for i in matches:
                    items[i] = {k: v for k, v in items[i].items() if k.lower() != sub.lower()}
            else:
                items = [item for i, item in enumerate(items) if i not in matches]
            changed = []
        elif sub:
            sub_definition = sub_definitions.get(sub.lower())
            if sub_definition and sub_definition['mutability'] == 'readOnly':
                raise ScimError(400, 'mutability', f'{key}.{sub} is read-only.')
            sub_name = sub_definition['name'] if sub_definition else sub
            if sub_definition:
                value = check_value(sub_definition, value, f'{key}.{sub_name}')
            for i in matches:
                items[i] = dict(items[i])
                items[i][find_key(items[i], sub_name) or sub_name] = value
            changed = [items[i] for i in matches]
        else:
            if definition:
                value = check_value(definition, value, key, one=True)
            if not isinstance(value, dict):
                raise ScimError(400, 'invalidValue', f'{key}[...] takes an object value.')
            for i in matches:
                items[i] = value if op == 'replace' else {**items[i], **value}
            changed = [items[i] for i in matches]
        if items:
            container[key] = items
            self.single_primary(items, changed)
        else:
            container.pop(key, None)

    @staticmethod
    def single_primary(items, changed):
        """Setting primary on one value clears it on the others (RFC 7643 §2.4)."""
        newly_primary = [item for item in changed if isinstance(item, dict) and item.get('primary') is True]
        if len(newly_primary) > 1:
            raise ScimError(400, 'invalidValue', 'At most one value may be primary (RFC 7643 §2.4).')
        if newly_primary:
            keep = newly_primary[-1]
            for index, item in enumerate(items):
                if isinstance(item, dict) and item is not keep and item.get('primary') is True:
                    items[index] = dict(item, primary=False)

    # -- group membership: link rows, never the whole member list -------------

    def patch_members(self, op, path, value):
        if path.sub or path.path.sub:
            raise ScimError(400, 'mutability', "A member's value, display and type cannot be changed: "
                            'remove the member and add another.')
        if path.filter is not None:
            if op == 'add':
                raise ScimError(400, 'invalidPath', 'add takes no members filter: add members by value.')
            ids = member_filter_ids(path.filter)
            if op == 'remove' and ids is not None:   # Okta's remove: those link rows, whether there or not
                self.member_operations.append(('remove', ids))
            elif op == 'remove':
                self.member_operations.append(('remove where', member_user_filter(path.filter)))
            elif value is None:
                raise ScimError(400, 'invalidValue', 'replace of members[...] needs the members to put instead.')
            else:   # replace the members the filter matches (400 noTarget if none) with the value's
                self.member_operations.append(('replace where', member_user_filter(path.filter), member_ids(value)))
        elif op == 'add':
            self.member_operations.append(('add', member_ids(value)))
        elif op == 'replace':
            self.member_operations.append(('set', member_ids(value)))
        elif value is not None:   # Entra: {"op":"Remove","path":"members","value":[{"value":"<id>"}]}
            self.member_operations.append(('remove', member_ids(value)))
        else:
            self.member_operations.append(('remove', None))


def same_value(new, old):
    """Whether an added value is already there: the same value and type, ignoring case."""
    if isinstance(new, dict) and isinstance(old, dict) and 'value' in new:
        def identity(item):
            return tuple(str(item.get(k, '')).lower() for k in ('value', 'type'))
        return identity(new) == identity(old)
    return new == old


def member_filter_ids(value_filter):
    """`members[value eq "a" or value eq "b"]` -> ['a', 'b']; any other filter -> None."""
    if isinstance(value_filter, F.Or):
        left, right = member_filter_ids(value_filter.left), member_filter_ids(value_filter.right)
        return None if left is None or right is None else left + right
    if (isinstance(value_filter, F.Compare) and value_filter.op == 'eq'
            and value_filter.path.attr.lower() == 'value' and not value_filter.path.sub
            and not value_filter.path.urn and isinstance(value_filter.value, str)):
        return [value_filter.value]
    return None


MEMBER_ATTRIBUTES = {'value': 'id', 'display': 'userName'}   # a member's, as the user's


def member_user_filter(value_filter):
    """A filter on members (`display co "ann"`) as one on the users they are (`userName co "ann"`)."""
    if isinstance(value_filter, (F.And, F.Or)):
        return type(value_filter)(member_user_filter(value_filter.left), member_user_filter(value_filter.right))
    if isinstance(value_filter, F.Not):
        return F.Not(member_user_filter(value_filter.expr))
    path = value_filter.path if isinstance(value_filter, (F.Compare, F.Present)) else None
    name = MEMBER_ATTRIBUTES.get(path.attr.lower()) if path and not path.sub and not path.urn else None
    if name is None:
        raise ScimError(400, 'invalidFilter', 'A members filter names value or display.')
    if isinstance(value_filter, F.Present):
        return F.Present(F.AttrPath(name))
    return F.Compare(F.AttrPath(name), value_filter.op, value_filter.value)


def matches_filter(expr, item):
    """Evaluate a value filter against one value of a multi-valued attribute.

    Strings compare case-insensitively, as the sub-attributes of emails, phone
    numbers and the like are caseExact=false."""
    if isinstance(expr, F.And):
        return matches_filter(expr.left, item) and matches_filter(expr.right, item)
    if isinstance(expr, F.Or):
        return matches_filter(expr.left, item) or matches_filter(expr.right, item)
    if isinstance(expr, F.Not):
        return not matches_filter(expr.expr, item)
    if isinstance(expr, F.ValuePath):
        raise ScimError(400, 'invalidFilter', 'Value filters cannot be nested.')
    key = find_key(item, expr.path.attr)
    actual = item.get(key) if key else None
    if isinstance(expr, F.Present):
        return actual not in (None, '', [], {})
    expected = expr.value
    if isinstance(actual, str) and isinstance(expected, str):
        actual, expected = actual.lower(), expected.lower()
    if expr.op == 'eq':
        return actual == expected
    if expr.op == 'ne':
        return actual != expected
    if actual is None or type(actual) is not type(expected):
        return False
    if expr.op == 'co':
        return isinstance(actual, str) and expected in actual
    if expr.op == 'sw':
        return isinstance(actual, str) and actual.startswith(expected)
    if expr.op == 'ew':
        return isinstance(actual, str) and actual.endswith(expected)
    return {'gt': actual > expected, 'ge': actual >= expected,
            'lt': actual < expected, 'le': actual <= expected}[expr.op]


def equality_item(value_filter):
    """`type eq "work"` (possibly and-ed) -> {"type": "work"}: what Entra's add with
    `emails[type eq "work"].value` creates when there is no work email yet."""
    if isinstance(value_filter, F.And):
        left, right = equality_item(value_filter.left), equality_item(value_filter.right)
        return {**left, **right} if left is not None and right is not None else None
    if isinstance(value_filter, F.Compare) and value_filter.op == 'eq' and not value_filter.path.sub:
        return {value_filter.path.attr: value_filter.value}
    return None


def patched_resource(kind, record, operations):
    """Apply the operations to a stored record: (new resource, member operations)."""
    patcher = Patcher(kind, record['resource'], record['id'])
    for operation in operations:
        patcher.apply(operation)
    if patcher.resource.get(kind.required) is None:
        raise ScimError(400, 'mutability', f'{kind.required} is required: it can be replaced, not removed.')
    # Re-validate the whole result as if it had been sent in full.
    return clean_resource(patcher.resource, kind), patcher.member_operations


# ===========================================================================
# Routes: discovery
# ===========================================================================

def discovery_meta(resource_type, path):
    return {'resourceType': resource_type, 'location': f'{base_url()}{path}'}


def service_provider_config():
    """GET /ServiceProviderConfig: what this server supports, honestly."""
    settings = request.app.settings
    return scim_reply({
        'schemas': [SPC_SCHEMA],
        'patch': {'supported': True},
        'bulk': {'supported': False, 'maxOperations': 0, 'maxPayloadSize': 0},
        'filter': {'supported': True, 'maxResults': settings['max_page_size']},
        'changePassword': {'supported': False},
        'sort': {'supported': True},
        'etag': {'supported': True},
        'authenticationSchemes': [{
            'type': 'oauthbearertoken',
            'name': 'Bearer token',
            'description': 'Authorization: Bearer <token>, the token set in config.ini, SCIM_TOKEN or --token.',
            'primary': True,
        }],
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
    name, description, attributes = SCHEMAS[urn]
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
    return scim_reply(discovery_list([resource_type_document(kind) for kind in (USERS, GROUPS)]))


def resource_type(name):
    """GET /ResourceTypes/{name}."""
    kind = {'user': USERS, 'group': GROUPS}.get(name.lower())
    if kind is None:
        raise ScimError(404, None, f'No resource type {name!r}.')
    return scim_reply(resource_type_document(kind))


def schemas():
    """GET /Schemas."""
    return scim_reply(discovery_list([schema_document(urn) for urn in SCHEMAS]))


def schema(urn):
    """GET /Schemas/{urn}."""
    known = next((u for u in SCHEMAS if u.lower() == urn.lower()), None)
    if known is None:
        raise ScimError(404, None, f'No schema {urn!r}.')
    return scim_reply(schema_document(known))


# ===========================================================================
# Routes: users and groups
# ===========================================================================
#
# The store's exceptions become SCIM errors here, in one place.

def store_errors(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except store.NotFound as error:
        raise ScimError(404, None, f'Resource {error} not found.') from None
    except store.Conflict as error:
        raise ScimError(409, 'uniqueness', f'{error}.') from None
    except store.VersionMismatch:
        raise ScimError(412, None, 'The resource has changed: its version does not match If-Match.') from None
    except store.UnknownMembers as error:
        raise ScimError(400, 'invalidValue', f'No user with id {error}: members must be existing users.') from None
    except store.UnsupportedFilter as error:
        raise ScimError(400, 'invalidFilter', f'{error}.') from None
    except store.TooLong as error:
        raise ScimError(400, 'invalidValue', f'{error}.') from None
    except store.NoTarget as error:
        raise ScimError(400, 'noTarget', f'{error}.') from None
    except store.Busy as error:
        raise ScimError(503, None, f'{error}.', Retry_After='1') from None


def reply_resource(record, kind, status=200, projection=None):
    location = f'{base_url()}{kind.endpoint}/{record["id"]}'
    return scim_reply(render(record, kind, projection), status, location, record['version'])


def patch_answers_with_body(projection, default):
    """Whether a PATCH answers 200 with the resource or 204 without (RFC 7644 §3.5.2
    allows either). `attributes` or `excludedAttributes` ask for the body (the RFC
    then requires 200), as does `Prefer: return=representation`; `Prefer:
    return=minimal` (RFC 7240) asks for none; otherwise `default`."""
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


def list_resources(kind, asked):
    """A ListResponse for one resource type."""
    if kind is USERS:
        total, records = store_errors(store.list_users, asked.filter, asked.start_index, asked.count,
                                      USERS.multi_valued, asked.sort)
    else:
        total, records = store_errors(store.list_groups, asked.filter, asked.start_index, asked.count,
                                      members_wanted(asked.projection), GROUPS.multi_valued, asked.sort)
    return list_response(records, total, asked.start_index, kind, asked.projection)


def users_list():
    """GET /Users: a ListResponse of the users that match `filter`."""
    return scim_reply(list_resources(USERS, ListRequest.from_query(USERS)))


def users_search():
    """POST /Users/.search: the same, asked in a SearchRequest body (RFC 7644 §3.4.3)."""
    return scim_reply(list_resources(USERS, ListRequest.from_body(USERS, read_json())))


def users_create():
    """POST /Users."""
    projection = projection_from_query(USERS)
    resource = clean_resource(read_json(), USERS)
    return reply_resource(store_errors(store.create_user, resource), USERS, 201, projection)


def user_get(user_id):
    """GET /Users/{id}."""
    projection = projection_from_query(USERS)
    return reply_read(store_errors(store.get_user, user_id), USERS, projection)


def user_replace(user_id):
    """PUT /Users/{id}: a full replace; read-only attributes in the body are ignored."""
    projection = projection_from_query(USERS)
    resource = clean_resource(read_json(), USERS)
    record = store_errors(store.update_user, user_id, lambda _: resource, if_match())
    return reply_resource(record, USERS, projection=projection)


def user_patch(user_id):
    """PATCH /Users/{id}."""
    projection = projection_from_query(USERS)
    operations = read_patch_operations(read_json(), USERS, user_id)
    record = store_errors(store.update_user, user_id,
                          lambda current: patched_resource(USERS, current, operations)[0],
                          if_match())
    if not patch_answers_with_body(projection, default=True):
        return reply_no_content(record)
    return reply_resource(record, USERS, projection=projection)


def user_delete(user_id):
    """DELETE /Users/{id}."""
    store_errors(store.delete_user, user_id, if_match())
    response.status = 204
    return b''


def groups_list():
    """GET /Groups: a ListResponse; `excludedAttributes=members` reads no link rows."""
    return scim_reply(list_resources(GROUPS, ListRequest.from_query(GROUPS)))


def groups_search():
    """POST /Groups/.search."""
    return scim_reply(list_resources(GROUPS, ListRequest.from_body(GROUPS, read_json())))


def root_search():
    """POST /.search: users, then groups, as one list.

    The filter applies to each type; a type that lacks an attribute the filter
    names has no matches (the filter is refused only if every type lacks it).
    sortBy sorts within each type (users still come first); a type that lacks
    the attribute keeps its stable order."""
    body = read_json()
    asked, refused, unsortable = {}, None, []
    for kind in (USERS, GROUPS):
        try:
            try:
                asked[kind] = ListRequest.from_body(kind, body)
            except UnknownSortAttribute as error:
                # sorted as if the attribute were unset: that type in its stable order
                asked[kind] = ListRequest.from_body(kind, {k: v for k, v in body.items() if k != 'sortBy'})
                unsortable.append(error)
        except ScimError as error:
            if error.scim_type != 'invalidFilter':
                raise
            refused = error
    if not asked:
        raise refused
    if len(unsortable) == 2:
        raise unsortable[0]
    first = next(iter(asked.values()))
    start_index, count = first.start_index, first.count
    totals = {kind: list_total(kind, each) for kind, each in asked.items()}
    records, skipped = [], 0
    for kind, each in asked.items():
        # this type's part of the page: rows start_index..start_index+count-1 of the concatenation
        own_start = max(1, start_index - skipped)
        wanted = count - len(records)
        if wanted > 0 and start_index - skipped <= totals[kind]:
            each.start_index, each.count = own_start, wanted
            page = json.loads(list_resources(kind, each))['Resources']
            records.extend(page)
        skipped += totals[kind]
    head = {'schemas': [LIST_SCHEMA], 'totalResults': sum(totals.values()), 'startIndex': start_index,
            'itemsPerPage': len(records), 'Resources': records}
    return scim_reply(head)


def list_total(kind, asked):
    lister = store.list_users if kind is USERS else store.list_groups
    return store_errors(lister, asked.filter, 1, 0, multi_valued=kind.multi_valued)[0]


def groups_create():
    """POST /Groups."""
    projection = projection_from_query(GROUPS)
    body = read_json()
    resource = clean_resource(body, GROUPS)
    members = member_ids(body.get(find_key(body, 'members') or 'members'))
    return reply_resource(store_errors(store.create_group, resource, members), GROUPS, 201, projection)


def group_get(group_id):
    """GET /Groups/{id}."""
    projection = projection_from_query(GROUPS)
    record = store_errors(store.get_group, group_id, members_wanted(projection))
    return reply_read(record, GROUPS, projection)


def group_replace(group_id):
    """PUT /Groups/{id}: replaces the attributes and the whole member list."""
    projection = projection_from_query(GROUPS)
    body = read_json()
    resource = clean_resource(body, GROUPS)
    members = member_ids(body.get(find_key(body, 'members') or 'members'))
    operations = [('set', members)]
    record = store_errors(store.update_group, group_id, lambda _: (resource, operations), if_match(),
                          members_wanted(projection))
    return reply_resource(record, GROUPS, projection=projection)


def group_patch(group_id):
    """PATCH /Groups/{id}: member changes touch only the link rows involved.

    It answers 204 unless asked for the group (see patch_answers_with_body): Okta
    and Entra need no body, and a group of 100,000 members would be read and sent
    whole for every member added."""
    projection = projection_from_query(GROUPS)
    operations = read_patch_operations(read_json(), GROUPS, group_id)
    with_body = patch_answers_with_body(projection, default=False)
    record = store_errors(store.update_group, group_id,
                          lambda current: patched_resource(GROUPS, current, operations),
                          if_match(), with_body and members_wanted(projection))
    if not with_body:
        return reply_no_content(record)
    return reply_resource(record, GROUPS, projection=projection)


def group_delete(group_id):
    """DELETE /Groups/{id}."""
    store_errors(store.delete_group, group_id, if_match())
    response.status = 204
    return b''


SCIM_ROUTES = (
    ('GET', '/ServiceProviderConfig', service_provider_config),
    ('GET', '/ResourceTypes', resource_types),
    ('GET', '/ResourceTypes/<name>', resource_type),
    ('GET', '/Schemas', schemas),
    ('GET', '/Schemas/<urn>', schema),
    ('GET', '/Users', users_list),
    ('POST', '/Users', users_create),
    ('POST', '/Users/.search', users_search),
    ('GET', '/Users/<user_id>', user_get),
    ('PUT', '/Users/<user_id>', user_replace),
    ('PATCH', '/Users/<user_id>', user_patch),
    ('DELETE', '/Users/<user_id>', user_delete),
    ('GET', '/Groups', groups_list),
    ('POST', '/Groups', groups_create),
    ('POST', '/Groups/.search', groups_search),
    ('POST', '/.search', root_search),
    ('GET', '/Groups/<group_id>', group_get),
    ('PUT', '/Groups/<group_id>', group_replace),
    ('PATCH', '/Groups/<group_id>', group_patch),
    ('DELETE', '/Groups/<group_id>', group_delete),
)


# ===========================================================================
# The console line and the exchange log: what the IdP sent, as it happened
# ===========================================================================
#
# Each SCIM request is printed as one line and queued for the dashboard by
# ScimApp.__call__. A request pays for two appends to queues in memory: a thread
# of its own prints the lines (a terminal that blocks, or Ctrl-S, holds only
# that thread), and another scrubs the queued exchanges and writes them in a
# batch every half second, so recording never holds a request, and readers
# never wait behind it. Under a flood (a benchmark, a full import) a batch
# keeps only the newest BATCH_MAX: nobody reads a thousand exchanges a second,
# and writing them all cost the writes that matter a quarter of their speed
# (measured with bench/run.py).

MAX_LOGGED_BODY = 16 * 1024   # bytes of each body kept for the dashboard (a page of 25 users)
BATCH_MAX = 50                # exchanges written each half second, at most: the newest
SCRUBBED = '[scrubbed]'
CREDENTIAL_HEADERS = ('HTTP_AUTHORIZATION', 'HTTP_PROXY_AUTHORIZATION', 'HTTP_COOKIE', 'HTTP_X_API_KEY')
AUTHORIZATION_SCHEMES = {'bearer': 'Bearer', 'basic': 'Basic', 'ssws': 'SSWS', 'token': 'Token',
                         'digest': 'Digest', 'negotiate': 'Negotiate'}


def request_path(path, query, tokens):
    """The path (WSGI's PATH_INFO) and query string as the client sent them, decoded
    for people, without the server's tokens."""
    if query:
        path += '?' + unquote(query.replace('+', ' '), encoding='latin-1')
    return without_tokens(path.encode('latin-1', 'replace').decode('utf-8', 'replace'), tokens)


def without_tokens(text, tokens):
    for token in tokens:
        text = text.replace(token, SCRUBBED)
    return text.replace('\x00', '\ufffd')   # no PostgreSQL text holds a NUL


class Periodic:
    """A daemon thread, started on first use, that calls `work()` every `interval`
    seconds until `stop()`."""

    interval = 1.0
    thread_name = 'scimlite-periodic'

    def __init__(self):
        self.stopping = threading.Event()
        self.starting = threading.Lock()
        self.thread = None

    def start(self):
        with self.starting:
            if self.thread is None and not self.stopping.is_set():
                self.thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self.thread.start()

    def _run(self):
        while not self.stopping.wait(self.interval):
            self.work()

    def work(self):
        raise NotImplementedError

    def stop(self, timeout=10):
        self.stopping.set()
        with self.starting:
            thread = self.thread
        if thread is not None:
            thread.join(timeout)


class ConsoleLines(Periodic):
    """One line per SCIM request on the console (time, method, path, status, ms),
    printed by a thread of its own a tenth of a second after the request at most.

    In a flood (more than FLOOD_LINES in a tenth of a second: a benchmark, not an
    IdP) the older requests of that tenth are counted in one line by status, and
    only the newest are printed whole: nobody reads faster, and formatting every
    line cost the server 8% of its requests a second. If the console falls
    behind, the oldest lines waiting are dropped."""

    interval = 0.1
    thread_name = 'scimlite-console'
    FLOOD_LINES = 50

    def __init__(self, stream, tokens):
        super().__init__()
        self.stream, self.tokens = stream, tokens
        self.waiting = collections.deque(maxlen=10_000)
        self.clock = (None, '')   # the last second, formatted: strftime costs half a line

    def add(self, environ, received_ns, status, seconds):
        """Queue the request's line (on its thread: the rest is this thread's work)."""
        self.waiting.append((received_ns, environ.get('REQUEST_METHOD', ''), environ.get('PATH_INFO', ''),
                             environ.get('QUERY_STRING', ''), status, seconds))
        if self.thread is None:
            self.start()

    def print_waiting(self):
        waiting = []
        while self.waiting:
            waiting.append(self.waiting.popleft())
        if not waiting:
            return
        lines = []
        if len(waiting) > self.FLOOD_LINES:
            counted, waiting = waiting[:-self.FLOOD_LINES // 5], waiting[-self.FLOOD_LINES // 5:]
            statuses = collections.Counter(queued[4][:3] for queued in counted)
            lines.append(f'{self.time_of(counted[-1][0])}  … {len(counted)} more requests, not shown one by one: '
                         + ', '.join(f'{status} ×{count}' for status, count in sorted(statuses.items())) + '\n')
        lines += [self.line(*queued) for queued in waiting]
        try:   # a Windows console, or PYTHONIOENCODING=ascii, may not have every character
            encoding = getattr(self.stream, 'encoding', None) or 'utf-8'
            text = ''.join(lines).encode(encoding, 'backslashreplace').decode(encoding)
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, LookupError):   # a closed console: nothing more to print
            self.stopping.set()

    def line(self, received_ns, method, path_info, query, status, seconds):
        path = request_path(path_info, query, self.tokens)
        if not path.isprintable():   # a client's path must not drive the terminal
            path = path.encode('unicode_escape').decode('ascii')
        return f'{self.time_of(received_ns)}  {method[:10]:<6} {path[:200]}  {status[:3]}  {seconds * 1000:.1f} ms\n'

    def time_of(self, nanoseconds):
        second = nanoseconds // 1_000_000_000
        if self.clock[0] != second:
            self.clock = (second, time.strftime('%H:%M:%S', time.localtime(second)))
        return self.clock[1]

    work = print_waiting

    def stop(self):
        super().stop(timeout=1)   # a console that blocks keeps its thread; it is a daemon


def scrub_passwords(document):
    """`document` with every password's value replaced: `"password"` (or its URN,
    `…:User:password`) as a key at any depth, and the value of a PATCH operation
    whose path names the password."""
    if isinstance(document, list):
        return [scrub_passwords(item) for item in document]
    if not isinstance(document, dict):
        return document
    scrubbed = {key: SCRUBBED if names_password(key) else scrub_passwords(value)
                for key, value in document.items()}
    path = document.get('path')
    if isinstance(path, str) and 'value' in document and names_password(path):
        scrubbed['value'] = SCRUBBED
    return scrubbed


def names_password(name):
    return re.split(r'[:.]', name)[-1].strip().lower() == 'password'


# A body is parsed and scrubbed when it mentions a password, or might in a \u escape.
MIGHT_HOLD_PASSWORD = re.compile(r'password|\\u', re.IGNORECASE).search


def scrubbed_body(body, length, tokens):
    """A request or response body (its first MAX_LOGGED_BODY bytes of `length`) as
    text for the dashboard, with passwords and tokens replaced."""
    if not body:
        return ''
    text = body.decode('utf-8', 'replace')
    if MIGHT_HOLD_PASSWORD(text):
        try:   # ASCII out: a "\ud800" the client sent stays an escape, which any database stores
            text = json.dumps(scrub_passwords(json.loads(text)))
        except (ValueError, RecursionError):   # cut short or not JSON: no telling where a value ends
            if 'password' in text.lower() or '\\u' in text:
                return f'[not shown: {length} bytes that may hold a password but are not whole JSON]'
    if length > MAX_LOGGED_BODY:
        text += f'\n[… {length - MAX_LOGGED_BODY} more bytes not kept]'
    return without_tokens(text, tokens)


def request_headers(environ, tokens):
    """{name: value} of the request's headers in a WSGI environ, credentials scrubbed
    (an Authorization header keeps a known scheme: "Bearer" or "Basic" tells why a 401)."""
    shown = {}
    for key, value in environ.items():
        if not key.startswith('HTTP_') and key not in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            continue
        name = (key[5:] if key.startswith('HTTP_') else key).replace('_', '-').title()
        if key == 'HTTP_AUTHORIZATION':
            scheme = AUTHORIZATION_SCHEMES.get(value.strip().partition(' ')[0].lower())
            value = f'{scheme} {SCRUBBED}' if scheme else SCRUBBED
        elif key in CREDENTIAL_HEADERS:
            value = SCRUBBED
        name, value = (without_tokens(text.encode('latin-1', 'replace').decode('utf-8', 'replace'), tokens)
                       for text in (name, value))
        shown[name] = value
    return shown


class ExchangeLog(Periodic):
    """The recent SCIM exchanges, queued by request threads, written by one thread.

    The queue keeps the newest BATCH_MAX (or `keep`, if fewer): under a flood the
    log is a sample. `flush()` writes what is queued now (the writer thread calls
    it, and tests do, to see an exchange at once)."""

    interval = 0.5
    thread_name = 'scimlite-exchanges'

    def __init__(self, keep, tokens):
        super().__init__()
        self.keep, self.tokens = keep, tokens
        self.queue = collections.deque(maxlen=min(keep, BATCH_MAX))
        self.tag = secrets.token_hex(4)   # this process, in the ids that order exchanges
        self.sequence = itertools.count()
        self.flushing = threading.Lock()
        self.failed = False

    def add(self, environ, received_ns, seconds, status, headers, body):
        """Queue the exchange (on the request's thread: cheap)."""
        # A copy of the environ costs less than picking the headers out of it: that,
        # like all the rest, is the writer thread's work, for the few it keeps.
        copied = environ.copy()
        del copied['wsgi.input']
        copied.pop('bottle.request', None)
        request_body = copied.pop('scimlite.body', b'')
        self.queue.append((received_ns, next(self.sequence), seconds, copied, request_body[:MAX_LOGGED_BODY],
                           len(request_body), status, headers, body[:MAX_LOGGED_BODY], len(body)))
        if self.thread is None:
            self.start()

    def flush(self):
        with self.flushing:
            batch = []
            while self.queue:
                batch.append(self.queue.popleft())
            if not batch:
                return
            try:
                store.add_exchanges([self._row(*queued) for queued in batch], self.keep)
                self.failed = False
            except Exception as error:   # the dashboard loses a batch; SCIM goes on
                if not self.failed:
                    log.warning('could not record %d exchange(s) for the dashboard: %s', len(batch),
                                str(error).strip().split('\n')[0])
                self.failed = True
            finally:
                store.release_connection()

    def _row(self, received_ns, sequence, seconds, environ, request_body, request_length, status, headers,
             response_body, response_length):
        shown_request = request_headers(environ, self.tokens)
        shown_response = {without_tokens(name, self.tokens): without_tokens(value, self.tokens)
                          for name, value in headers}
        return {
            'id': f'{received_ns:020d}{self.tag}{sequence % 10**8:08d}', 'received': store.now(received_ns),
            'method': environ.get('REQUEST_METHOD', '')[:16],
            'path': request_path(environ.get('PATH_INFO', ''), environ.get('QUERY_STRING', ''), self.tokens)[:4096],
            'status': int(status[:3]) if status[:3].isdigit() else 0,
            'duration_ms': round(seconds * 1000, 3),
            'user_agent': shown_request.get('User-Agent', '')[:500] or None,
            'request_headers': json.dumps(shown_request),
            'request_body': scrubbed_body(request_body, request_length, self.tokens),
            'response_headers': json.dumps(shown_response),
            'response_body': scrubbed_body(response_body, response_length, self.tokens),
        }

    work = flush


# ===========================================================================
# Dashboard: GET / (a login form, then users, groups and the recent exchanges)
# ===========================================================================
#
# The page is views/dashboard.tpl; views/dashboard.js fills it from
# /dashboard/data every two seconds. Everything but the login form and its
# stylesheet needs a session: a signed, expiring cookie, HttpOnly and
# SameSite=Strict, given for the server's token. The token itself never
# reaches the page.

VIEWS = Path(__file__).with_name('views')
SESSION_COOKIE = 'scimlite_session'
SESSION_SECONDS = 12 * 3600   # a workshop day
SHOWN = 100   # users, groups and exchanges on the page: the newest
LOGIN_FAILURES_ALLOWED = 5    # wrong tokens from one address ...
LOGIN_FAILURE_WINDOW = 60     # ... within this many seconds; then 429 until the first is that old
SECURITY_HEADERS = {
    # No inline script or style: the page loads its own two files and nothing else.
    'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'same-origin',
    'Cache-Control': 'no-store',
}


def session_key(secret, tokens):
    """The key that signs session cookies: the database's random secret (every process
    on the database has it; nobody can derive it from a token) and the tokens, so
    that a change of token ends every session."""
    return hmac.new(secret.encode(), '\n'.join(sorted(tokens)).encode('utf-8'), hashlib.sha256).digest()


def new_session(key):
    expires = int(time.time()) + SESSION_SECONDS
    claim = f'{expires}.{secrets.token_urlsafe(16)}'
    return f'{claim}.{hmac.new(key, claim.encode(), hashlib.sha256).hexdigest()}'


def has_session():
    value = request.get_cookie(SESSION_COOKIE) or ''
    claim, _, signature = value.rpartition('.')
    expires = claim.partition('.')[0]
    expected = hmac.new(request.app.session_key, claim.encode('utf-8', 'replace'), hashlib.sha256).hexdigest()
    return (hmac.compare_digest(signature.encode('utf-8', 'replace'), expected.encode())
            and expires.isdigit() and int(expires) > time.time())


class LoginThrottle:
    """At most LOGIN_FAILURES_ALLOWED wrong tokens a minute from one address; while
    throttled, the token is not even looked at. (Behind ngrok every visitor comes
    from 127.0.0.1: then the limit is for everyone, which a guesser cannot use.)"""

    def __init__(self):
        self.failures = {}
        self.lock = threading.Lock()

    def attempt(self, address):
        """Count an attempt from `address` (forgotten if it succeeds): the seconds until
        it may try again, or 0 if it may try now. One step under the lock, so a burst
        of guesses at once gets no more tries than one after another."""
        with self.lock:
            now = time.monotonic()
            recent = [moment for moment in self.failures.get(address, ()) if moment > now - LOGIN_FAILURE_WINDOW]
            if len(recent) >= LOGIN_FAILURES_ALLOWED:
                self.failures[address] = recent
                return math.ceil(recent[0] + LOGIN_FAILURE_WINDOW - now)
            if address not in self.failures and len(self.failures) >= 10_000:   # forget who stopped trying
                self.failures = {key: times for key, times in self.failures.items() if times[-1] > now - LOGIN_FAILURE_WINDOW}
                if len(self.failures) >= 10_000:
                    self.failures.clear()
            self.failures[address] = recent + [now]
            return 0

    def succeeded(self, address):
        with self.lock:
            self.failures.pop(address, None)


def dashboard_route(callback, public=False):
    """A dashboard route: security headers always; a session unless `public`."""
    def route(*args, **kwargs):
        for name, value in SECURITY_HEADERS.items():
            response.set_header(name, value)
        if not public and not has_session():
            response.status = 401
            response.content_type = 'application/json'
            return json.dumps({'detail': 'Log in at / first.'})
        return callback(*args, **kwargs)
    route.__name__ = callback.__name__
    route.__doc__ = callback.__doc__
    return route


def page(name, **values):
    response.content_type = 'text/html; charset=utf-8'
    return bottle.template(name, template_lookup=[str(VIEWS)], **values)


def same_origin():
    """A form post from this server's own page. A browser says so in Sec-Fetch-Site;
    one too old for that sends Origin with a POST. A client that sends neither is
    no browser, and has no session to abuse."""
    site = request.environ.get('HTTP_SEC_FETCH_SITE')
    if site is not None:
        return site == 'same-origin'
    origin = request.environ.get('HTTP_ORIGIN')
    if origin is None:
        return True
    hosts = {request.environ.get('HTTP_HOST'), request.environ.get('HTTP_X_FORWARDED_HOST')}
    return origin.partition('://')[2] in hosts - {None}


def dashboard_home():
    """The dashboard, or the login form without a session."""
    if not has_session():
        return page('login', error=None)
    settings = request.app.settings
    return page('dashboard', scim_url=base_url(), recording=settings['record_exchanges'],
                kept=settings['exchanges_kept'])


def dashboard_login():
    """The login form's post: the server's token for a session cookie."""
    address = request.environ.get('REMOTE_ADDR', '')
    throttle = request.app.login_throttle
    if request.content_length > 4096 or not same_origin():
        response.status = 400
        return page('login', error='That was not a login from this page.')
    wait = throttle.attempt(address)
    if wait:
        response.status = 429
        response.set_header('Retry-After', str(wait))
        return page('login', error=f'Too many wrong tokens: try again in {wait} seconds.')
    presented = (request.forms.getunicode('token') or '').strip()
    if not presented or not token_accepted(presented.encode('utf-8')):
        response.status = 401
        return page('login', error='That is not the server’s token.')
    throttle.succeeded(address)
    response.set_cookie(SESSION_COOKIE, new_session(request.app.session_key), path='/',
                        max_age=SESSION_SECONDS, httponly=True, samesite='Strict',
                        secure=request.urlparts.scheme == 'https')
    bottle.redirect('/', 303)


def dashboard_logout():
    """Forget the session cookie."""
    if same_origin():
        response.delete_cookie(SESSION_COOKIE, path='/', httponly=True, samesite='Strict')
    bottle.redirect('/', 303)


def dashboard_data():
    """Users, groups and exchanges, newest first, as the page shows them."""
    user_total, users = store.recent_users(SHOWN)
    group_total, groups = store.recent_groups(SHOWN)
    settings = request.app.settings
    response.content_type = 'application/json'
    return json.dumps({
        'users': {'total': user_total, 'shown': [user_summary(user) for user in users]},
        'groups': {'total': group_total, 'shown': [
            {'id': group['id'], 'displayName': group['resource'].get('displayName'),
             'members': group['member_count']} for group in groups]},
        'exchanges': {'recording': settings['record_exchanges'], 'kept': settings['exchanges_kept'],
                      'shown': store.recent_exchanges(SHOWN) if settings['record_exchanges'] else []},
    })


def user_summary(record):
    resource = record['resource']
    name = resource.get('name') if isinstance(resource.get('name'), dict) else {}
    full_name = name.get('formatted') or ' '.join(
        str(name[part]) for part in ('givenName', 'familyName') if name.get(part))
    return {'id': record['id'], 'userName': resource.get('userName'), 'name': full_name or None,
            'active': resource.get('active', True), 'groups': list(record['links'])}


def dashboard_exchange(exchange_id):
    """One exchange whole: the request's and the response's headers and bodies."""
    try:
        exchange = store.get_exchange(exchange_id)
    except store.NotFound:
        response.status = 404
        exchange = {'detail': 'That exchange is no longer kept.'}
    response.content_type = 'application/json'
    for key in ('request_headers', 'response_headers'):
        if key in exchange:
            exchange[key] = json.loads(exchange[key])
    return json.dumps(exchange)


def dashboard_script():
    """The page's script: it fills the page from /dashboard/data."""
    response.content_type = 'text/javascript; charset=utf-8'
    return (VIEWS / 'dashboard.js').read_bytes()


def dashboard_stylesheet():
    """The stylesheet of the page and of the login form."""
    response.content_type = 'text/css; charset=utf-8'
    return (VIEWS / 'dashboard.css').read_bytes()

# (method, path, callback, public): only the login form and its stylesheet are public.
DASHBOARD_ROUTES = (
    ('GET', '/', dashboard_home, True),
    ('POST', '/dashboard/login', dashboard_login, True),
    ('POST', '/dashboard/logout', dashboard_logout, True),
    ('GET', '/dashboard/data', dashboard_data, False),
    ('GET', '/dashboard/exchanges/<exchange_id>', dashboard_exchange, False),
    ('GET', '/dashboard/dashboard.js', dashboard_script, False),
    ('GET', '/dashboard/dashboard.css', dashboard_stylesheet, True),
)


# ===========================================================================
# The application
# ===========================================================================

def authenticate():
    """`Authorization: Bearer <token>`, or Okta's header mode sending the bare token."""
    header = request.environ.get('HTTP_AUTHORIZATION', '')   # as WSGI gives it: bytes as latin-1
    scheme, _, credentials = header.partition(' ')
    presented = (credentials if scheme.lower() == 'bearer' else header).encode('latin-1', 'replace')
    if not header or not token_matches(presented):
        raise ScimError(401, None, 'A valid token is required: Authorization: Bearer <token>.',
                        WWW_Authenticate='Bearer realm="scimlite"')
    if not demo_token_allowed(presented):
        raise ScimError(401, None, f'The demo token {DEMO_TOKEN} is accepted only from this machine: '
                        'set your own token (SCIM_TOKEN) to serve other hosts.',
                        WWW_Authenticate='Bearer realm="scimlite"')


def token_matches(presented):
    """Whether the bytes `presented` are one of the server's tokens. Every token is
    compared, in constant time, so timing tells nothing."""
    matched = False
    for token in request.app.settings['tokens']:
        matched |= hmac.compare_digest(presented, token.encode('utf-8'))  # a UTF-8 token matches its bytes
    return matched


def demo_token_allowed(presented):
    """The demo token is printed in every copy of the Okta tutorial: it only opens the
    door to this machine (ngrok connects from here), whatever server runs the app."""
    return not hmac.compare_digest(presented, DEMO_TOKEN.encode()) or is_loopback(request.environ.get('REMOTE_ADDR', ''))


def token_accepted(presented):
    return token_matches(presented) and demo_token_allowed(presented)


def with_token(callback):
    def authenticated(*args, **kwargs):
        authenticate()
        return callback(*args, **kwargs)
    authenticated.__name__ = callback.__name__
    authenticated.__doc__ = callback.__doc__
    return authenticated


class ScimApp(bottle.Bottle):
    """The Bottle app, with every error rendered as a SCIM Error."""

    def __init__(self, settings):
        super().__init__()
        self.config['json.enable'] = False   # every route writes its own SCIM JSON
        self.settings = settings
        self.scim_prefix = settings['base_path'].rstrip('/') + '/'
        self.login_throttle = LoginThrottle()
        stdout = None if settings['quiet'] else sys.stdout   # None under pythonw
        self.console = ConsoleLines(stdout, settings['tokens']) if stdout else None
        self.exchanges = ExchangeLog(settings['exchanges_kept'], settings['tokens']) if settings['record_exchanges'] else None

    def is_scim(self, path):
        """A path of the SCIM API (what the console prints and the dashboard records)."""
        return ((path + '/').startswith(self.scim_prefix)
                and not (path == '/' or path.startswith('/dashboard/')))

    def default_error_handler(self, error):
        if isinstance(error, ScimError):
            document = error_document(error.status_code, error.scim_type, error.detail)
        elif store.is_unavailable(error.exception):
            # SQLite locked past busy_timeout by another process, PostgreSQL gone or
            # restarting: nothing was written, and the IdP will try again.
            log.warning('database unavailable in %s %s: %s', request.method, request.path,
                        str(error.exception).strip().split('\n')[0])
            response.status = 503
            response.set_header('Retry-After', '1')
            document = error_document(503, None, 'The database is busy or out of reach: try again shortly.')
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
        if not (self.console or self.exchanges) or not self.is_scim(environ['PATH_INFO']):
            try:
                return super().__call__(environ, start_response)
            finally:
                store.release_connection()
        received_ns, started = time.time_ns(), time.perf_counter()
        answer = []

        def remember(status, headers, exc_info=None):
            answer[:] = status, headers
            return start_response(status, headers, exc_info)
        try:
            body = super().__call__(environ, remember)
        finally:
            store.release_connection()
        status, headers = answer or ('500', [])
        seconds = time.perf_counter() - started
        if self.console:
            self.console.add(environ, received_ns, status, seconds)
        if self.exchanges:
            self.exchanges.add(environ, received_ns, seconds, status, headers,
                               b''.join(body) if isinstance(body, list) else b'')
        return body

    def close(self, finish=False):
        """Stop recording and printing, and close the database (tests make one app after
        another). With `finish`, what is queued is written and printed first."""
        if finish and self.exchanges is not None:
            self.exchanges.flush()
        if finish and self.console is not None:
            self.console.print_waiting()
        for worker in (self.exchanges, self.console):
            if worker is not None:
                worker.stop()
        store.close_database()


def make_app(overrides=None):
    """Build the WSGI app from settings (DEFAULTS updated by `overrides`); opens the database."""
    global current_app
    settings = normalise_settings(dict(overrides or {}))
    if current_app is not None:   # one database per process: the last app's recorder stops
        current_app.close()
    app = current_app = ScimApp(settings)
    configure_extensions(settings['extension_schemas'])
    store.open_database(settings['database'])
    app.session_key = session_key(store.secret('dashboard session'), settings['tokens'])
    for method, path, callback in SCIM_ROUTES:
        app.route(settings['base_path'] + path, method, with_token(callback))
    for method, path, callback, public in DASHBOARD_ROUTES:
        app.route(path, method, dashboard_route(callback, public))
    return app


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
    return token if token == DEMO_TOKEN else f'{token[:2]}{"*" * max(4, len(token) - 4)}{token[-2:]}' if len(token) > 6 else '*' * 8


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


def main(argv=None):
    import waitress.server

    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    # "Task queue depth is 1" on every burst says only that all threads are busy.
    logging.getLogger('waitress.queue').setLevel(logging.ERROR)
    try:
        settings = load_settings(argv)
    except SettingsError as error:
        die(str(error))
    if DEMO_TOKEN in settings['tokens'] and not is_loopback(settings['host']):
        die(f'refusing to listen on {settings["host"]} with the demo token {DEMO_TOKEN}: '
            'set your own with --token or SCIM_TOKEN')
    try:
        application = make_app(settings)
    except store.DatabaseURLError as error:
        die(str(error))
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        server = waitress.server.create_server(
            application, host=settings['host'], port=settings['port'], threads=settings['threads'],
            ident='scimlite')
    except OSError as error:
        die(f'cannot listen on {settings["host"]}:{settings["port"]}: {error.strerror or error}'
            + (' (is another server running? try --port 5001)' if 'in use' in str(error) else ''))
    port = server.effective_port if hasattr(server, 'effective_port') else settings['port']
    print(banner(settings, port), flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        application.close(finish=True)
        print('scimlite stopped.')
    finally:
        application.close()


if __name__ == '__main__':
    main()

"""RFC 7644 §3.5.2 PATCH as a table: operation x path form x attribute kind.

Each row of the tables below is one PATCH request (one or more operations) sent to
one resource of a small, fixed world (see `World`):

- `jane`: a user with every attribute kind set: `userName` (required, unique),
  `title` and `displayName` (single-valued strings), `active` (boolean), `name`
  (complex), `emails` and `phoneNumbers` (multi-valued complex, one work email
  primary), the enterprise extension (`employeeNumber`, `department` and the
  complex `manager`), and `groups` (read-only, from her membership of `team`);
- `bare`: a user with nothing but `userName`, to see attributes come into being;
- `team`: a group of `jane` and `boss`.

Operations and expectations may name `{jane}`, `{bare}`, `{boss}`, `{other}` and
`{team}`; they stand for the ids of those resources.

A row either succeeds or is refused:

- `ok(...)` gives the attributes the PATCH changes, as a GET returns them
  afterwards (`ABSENT`: unassigned). The whole resource read after the PATCH
  must equal the one read before with exactly those changes; a 200 answer must
  carry that resource. A PATCH that changes nothing must keep `meta.version` and
  `meta.lastModified` (RFC 7644 §3.5.2.1: such an add "SHALL NOT change the
  modify timestamp"; RFC 7643 §3.1: lastModified is when the details of the
  resource last changed); one that changes something must give a new version.
- `refused(...)` gives the HTTP status and `scimType` of the SCIM error, and the
  resource read after the PATCH must be identical, `meta` and all, to the one
  read before (RFC 7644 §3.5.2: "If a single operation encounters an error
  condition, the original SCIM resource MUST be restored").

Comparing, unassigned, null and an empty list are the same state (RFC 7643
§2.5), and `members` / `groups` are compared as sorted ids. `version=UNCHECKED`
leaves `meta.version` out of a row when another row asserts it on its own.

The oracle is the RFC text, not the server. Where scimlite departs from it by
design, the row says so in a comment and in its name. Two rows take the
IdPs' side where the RFC is silent or literal-minded, and say so in their names:
an `add` through a value filter that matches nothing creates the value (Entra
sends `phoneNumbers[type eq "mobile"].value`; §3.5.2.1 has no filter case), and
removing a group member who is already gone succeeds (IdPs retry removals; §3.12
would call a filter that matches nothing noTarget).

Row names read `op/path form/what is checked`.

Covered elsewhere and not repeated here: the malformed request bodies, the custom
(Okta) extensions, case-insensitive duplicate emails and `remove` by
`emails[value eq ...]` (tests/test_patch.py); the IdP dialects such as Entra's
"False" strings, capitalised ops and dotted keys (tests/test_idp_replay.py).
"""

import copy
from dataclasses import dataclass

import pytest

import scimpatch
import scimschema
import store
from conftest import USER_SCHEMA, assert_scim_error

ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'


class _Absent:
    def __repr__(self):
        return 'ABSENT'


ABSENT = _Absent()        # in an expectation: the attribute is unassigned after the PATCH
NOT_GIVEN = object()      # an operation without a "value" member
AUTO, UNCHECKED = 'auto', 'unchecked'


# ---------------------------------------------------------------------------
# The world every row starts from
# ---------------------------------------------------------------------------

WORK = {'value': 'jane@work.example', 'type': 'work', 'primary': True}
HOME = {'value': 'jane@home.example', 'type': 'home'}
NEW = {'value': 'jd@new.example', 'type': 'other'}
PHONE = {'value': '+1 555 0100', 'type': 'work'}
MANAGER = {'value': '{boss}', '$ref': '../Users/{boss}'}
EXTENSION = {'employeeNumber': '701', 'department': 'R&D', 'manager': MANAGER}
NAME = {'givenName': 'Jane', 'familyName': 'Doe'}


def fill(data, ids):
    """`data` with every `{name}` of `ids` in its strings replaced by that id."""
    if isinstance(data, str):
        for name, resource_id in ids.items():
            data = data.replace('{' + name + '}', resource_id)
        return data
    if isinstance(data, list):
        return [fill(item, ids) for item in data]
    if isinstance(data, dict):
        return {fill(key, ids): fill(value, ids) for key, value in data.items()}
    return data


# name: (userName, the other attributes it is created with), in the order of creation
USERS = {
    'boss': ('boss@example.com', {}),
    'other': ('other@example.com', {}),
    'jane': ('jane@example.com', {
        'schemas': [USER_SCHEMA, ENT], 'title': 'Engineer', 'displayName': 'Jane Doe', 'name': NAME,
        'active': True, 'emails': [WORK, HOME], 'phoneNumbers': [PHONE], ENT: EXTENSION}),
    'bare': ('bare@example.com', {}),
}
TEAM = ('Team', ('jane', 'boss'))   # the group: displayName, members


class World:
    """Four users and a group, created afresh for each row."""

    def __init__(self, client):
        self.ids = {}
        for name, (user_name, attributes) in USERS.items():
            self.ids[name] = client.create_user(user_name, **self.fill(attributes))['id']
        self.ids['team'] = client.create_group(TEAM[0], [self.ids[member] for member in TEAM[1]])['id']

    def fill(self, data):
        return fill(data, self.ids)

    def url(self, target):
        return f'/{"Groups" if target == "team" else "Users"}/{self.ids[target]}'


@pytest.fixture
def world(client):
    return World(client)


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    name: str
    target: str                   # 'jane', 'bare' or 'team'
    operations: list
    expect: dict = None           # success: attribute -> value after the PATCH (ABSENT: unassigned)
    error: tuple = None           # refusal: (HTTP status, scimType)
    version: str = AUTO           # AUTO: kept if nothing changed, new otherwise; UNCHECKED: not looked at

    def param(self):
        return pytest.param(self, id=self.name)


def ok(name, target, operations, expect, **options):
    return Row(name, target, operations, expect=expect, **options)


def refused(name, target, operations, status, scim_type, **options):
    return Row(name, target, operations, error=(status, scim_type), **options)


def operation(op, path, value):
    body = {'op': op}
    if path is not None:
        body['path'] = path
    if value is not NOT_GIVEN:
        body['value'] = value
    return body


def add(path, value):
    return operation('add', path, value)


def replace(path, value):
    return operation('replace', path, value)


def remove(path, value=NOT_GIVEN):
    return operation('remove', path, value)


def without(item, key):
    return {k: v for k, v in item.items() if k != key}


# -- users ------------------------------------------------------------------

USER_ROWS = [
    # No path: the value is a set of attributes of the resource itself (§3.5.2.1, §3.5.2.3).
    ok('add/no-path/single-valued-existing-is-replaced', 'jane', [add(None, {'title': 'Lead'})],
       {'title': 'Lead'}),
    ok('add/no-path/new-attributes-are-added', 'bare', [add(None, {'title': 'Lead', 'nickName': 'B'})],
       {'title': 'Lead', 'nickName': 'B'}),
    ok('replace/no-path/string-and-boolean', 'jane', [replace(None, {'title': 'Lead', 'active': False})],
       {'title': 'Lead', 'active': False}),
    ok('add/no-path/complex-sets-the-given-sub-attributes', 'jane', [add(None, {'name': {'givenName': 'Janet'}})],
       {'name': {'givenName': 'Janet', 'familyName': 'Doe'}}),
    ok('replace/no-path/complex-keeps-unspecified-sub-attributes', 'jane',
       [replace(None, {'name': {'givenName': 'Janet'}})],
       {'name': {'givenName': 'Janet', 'familyName': 'Doe'}}),
    ok('add/no-path/multi-valued-appends', 'jane', [add(None, {'emails': [NEW]})],
       {'emails': [WORK, HOME, NEW]}),
    ok('replace/no-path/multi-valued-replaces-all-values', 'jane', [replace(None, {'emails': [NEW]})],
       {'emails': [NEW]}),
    ok('replace/no-path/extension-keeps-unspecified-attributes', 'jane',
       [replace(None, {ENT: {'employeeNumber': '702'}})],
       {ENT: dict(EXTENSION, employeeNumber='702')}),
    ok('add/no-path/extension-is-added-with-its-schema', 'bare', [add(None, {ENT: {'employeeNumber': '9'}})],
       {ENT: {'employeeNumber': '9'}, 'schemas': [USER_SCHEMA, ENT]}),
    refused('remove/no-path/is-noTarget-even-with-a-value', 'jane', [remove(None, {'title': 'Engineer'})],
            400, 'noTarget'),
    refused('replace/no-path/read-only-id', 'jane', [replace(None, {'id': 'someone-else'})], 400, 'mutability'),
    refused('replace/no-path/read-only-meta', 'jane', [replace(None, {'meta': {'created': '2000-01-01T00:00:00Z'}})],
            400, 'mutability'),
    refused('add/no-path/read-only-groups', 'jane', [add(None, {'groups': [{'value': '{team}'}]})],
            400, 'mutability'),
    refused('replace/no-path/boolean-given-a-string', 'jane', [replace(None, {'active': 'yes'})],
            400, 'invalidValue'),

    # A simple attribute: title (single-valued string).
    ok('add/title/unassigned-is-added', 'bare', [add('title', 'Lead')], {'title': 'Lead'}),
    ok('add/title/existing-is-replaced', 'jane', [add('title', 'Lead')], {'title': 'Lead'}),
    ok('add/title/same-value-changes-nothing', 'jane', [add('title', 'Engineer')], {}),
    ok('replace/title', 'jane', [replace('title', 'Lead')], {'title': 'Lead'}),
    ok('replace/title/unassigned-is-an-add', 'bare', [replace('title', 'Lead')], {'title': 'Lead'}),
    ok('replace/title/attribute-names-are-case-insensitive', 'jane', [replace('TITLE', 'Lead')], {'title': 'Lead'}),
    ok('remove/title', 'jane', [remove('title')], {'title': ABSENT}),
    ok('replace/title/null-unassigns', 'jane', [replace('title', None)], {'title': ABSENT}),
    refused('add/title/number', 'jane', [add('title', 42)], 400, 'invalidValue'),
    refused('replace/title/list', 'jane', [replace('title', ['Lead'])], 400, 'invalidValue'),
    refused('replace/title/object', 'jane', [replace('title', {'value': 'Lead'})], 400, 'invalidValue'),
    refused('add/title/without-a-value', 'jane', [add('title', NOT_GIVEN)], 400, 'invalidValue'),
    refused('replace/title/value-filter-on-a-single-valued-attribute', 'jane',
            [replace('title[value eq "Engineer"]', 'Lead')], 400, 'invalidPath'),
    refused('add/title.sub/sub-attribute-of-a-string', 'jane', [add('title.value', 'Lead')], 400, 'invalidPath'),
    refused('add/title.sub/sub-attribute-of-an-unassigned-string', 'bare', [add('title.value', 'Lead')],
            400, 'invalidPath'),
    refused('remove/title.sub/sub-attribute-of-a-string', 'jane', [remove('title.value')], 400, 'invalidPath'),

    # The required, unique userName.
    ok('replace/userName', 'jane', [replace('userName', 'jane.doe@example.com')],
       {'userName': 'jane.doe@example.com'}),
    ok('add/userName/existing-is-replaced', 'jane', [add('userName', 'jane.doe@example.com')],
       {'userName': 'jane.doe@example.com'}),
    refused('remove/userName/required', 'jane', [remove('userName')], 400, 'mutability'),
    refused('replace/userName/taken-by-another-user', 'jane', [replace('userName', 'OTHER@example.com')],
            409, 'uniqueness'),
    refused('replace/userName/number', 'jane', [replace('userName', 7)], 400, 'invalidValue'),
    refused('replace/userName/null-unassigns-a-required-attribute', 'jane', [replace('userName', None)],
            400, 'mutability'),
    refused('replace/userName.sub/sub-attribute-of-a-string', 'jane', [replace('userName.first', 'x')],
            400, 'invalidPath'),

    # The boolean active.
    ok('replace/active', 'jane', [replace('active', False)], {'active': False}),
    ok('add/active', 'jane', [add('active', False)], {'active': False}),
    # RFC 7644 §3.5.2.2: "If the target location is a single-value attribute, the attribute and its
    # associated value is removed, and the attribute SHALL be considered unassigned." RFC 7643 gives
    # active no default, so an unassigned active is answered as absent (a create or a PUT without it
    # still makes the user active: RFC 7644 §3.5.1 lets a PUT "assign default values").
    ok('remove/active/is-unassigned', 'jane', [remove('active')], {'active': ABSENT}),
    ok('remove/active/unassigned-after-false', 'jane', [replace('active', False), remove('active')],
       {'active': ABSENT}, version=UNCHECKED),
    ok('replace/active/null-is-unassigned', 'jane', [replace('active', None)], {'active': ABSENT}),
    ok('add/active/after-remove', 'jane', [remove('active'), add('active', False)], {'active': False}),
    refused('replace/active/string', 'jane', [replace('active', 'yes')], 400, 'invalidValue'),
    refused('add/active/number', 'jane', [add('active', 0)], 400, 'invalidValue'),
    refused('replace/active/object', 'jane', [replace('active', {'value': False})], 400, 'invalidValue'),
    refused('replace/active.sub/sub-attribute-of-a-boolean', 'jane', [replace('active.value', False)],
            400, 'invalidPath'),

    # The writeOnly password: accepted, never stored nor returned.
    ok('replace/password/write-only-is-not-returned', 'jane', [replace('password', 'S3cret!')], {}),

    # The complex name and its sub-attribute name.givenName.
    ok('add/name.givenName', 'jane', [add('name.givenName', 'Janet')],
       {'name': {'givenName': 'Janet', 'familyName': 'Doe'}}),
    ok('add/name.givenName/unassigned-complex-is-created', 'bare', [add('name.givenName', 'Bea')],
       {'name': {'givenName': 'Bea'}}),
    ok('replace/name.givenName', 'jane', [replace('name.givenName', 'Janet')],
       {'name': {'givenName': 'Janet', 'familyName': 'Doe'}}),
    ok('replace/name.givenName/unassigned-is-an-add', 'bare', [replace('name.givenName', 'Bea')],
       {'name': {'givenName': 'Bea'}}),
    ok('replace/name.givenName/names-are-case-insensitive', 'jane', [replace('NAME.GIVENNAME', 'Janet')],
       {'name': {'givenName': 'Janet', 'familyName': 'Doe'}}),
    ok('remove/name.givenName', 'jane', [remove('name.givenName')], {'name': {'familyName': 'Doe'}}),
    ok('add/name/sets-the-given-sub-attributes', 'jane', [add('name', {'givenName': 'Janet'})],
       {'name': {'givenName': 'Janet', 'familyName': 'Doe'}}),
    ok('replace/name/keeps-unspecified-sub-attributes', 'jane', [replace('name', {'middleName': 'Q'})],
       {'name': dict(NAME, middleName='Q')}),
    ok('remove/name', 'jane', [remove('name')], {'name': ABSENT}),
    ok('replace/name/null-sub-attribute-unassigns-it', 'jane', [replace('name', {'givenName': None})],
       {'name': {'familyName': 'Doe'}}),
    refused('replace/name/string', 'jane', [replace('name', 'Jane Doe')], 400, 'invalidValue'),
    refused('replace/name.givenName/number', 'jane', [replace('name.givenName', 5)], 400, 'invalidValue'),
    refused('remove/name/value-filter-on-a-single-valued-complex', 'jane', [remove('name[givenName eq "Jane"]')],
            400, 'invalidPath'),

    # The fully qualified core URN path is the plain attribute.
    ok('add/core-urn:title', 'jane', [add(f'{USER_SCHEMA}:title', 'Lead')], {'title': 'Lead'}),
    ok('replace/core-urn:title', 'jane', [replace(f'{USER_SCHEMA}:title', 'Lead')], {'title': 'Lead'}),
    ok('replace/core-urn:title/urn-is-case-insensitive', 'jane', [replace(f'{USER_SCHEMA.upper()}:title', 'Lead')],
       {'title': 'Lead'}),
    ok('remove/core-urn:title', 'jane', [remove(f'{USER_SCHEMA}:title')], {'title': ABSENT}),
    ok('replace/core-urn:emails[filter].value', 'jane',
       [replace(f'{USER_SCHEMA}:emails[type eq "work"].value', 'jd@new.example')],
       {'emails': [dict(WORK, value='jd@new.example'), HOME]}),
    refused('remove/core-urn:id/read-only', 'jane', [remove(f'{USER_SCHEMA}:id')], 400, 'mutability'),

    # The enterprise extension: employeeNumber (string) and manager (complex).
    ok('add/ext:employeeNumber', 'jane', [add(f'{ENT}:employeeNumber', '702')],
       {ENT: dict(EXTENSION, employeeNumber='702')}),
    ok('add/ext:employeeNumber/extension-is-added-with-its-schema', 'bare', [add(f'{ENT}:employeeNumber', '9')],
       {ENT: {'employeeNumber': '9'}, 'schemas': [USER_SCHEMA, ENT]}),
    ok('replace/ext:employeeNumber', 'jane', [replace(f'{ENT}:employeeNumber', '702')],
       {ENT: dict(EXTENSION, employeeNumber='702')}),
    ok('replace/ext:employeeNumber/unassigned-is-an-add', 'bare', [replace(f'{ENT}:employeeNumber', '9')],
       {ENT: {'employeeNumber': '9'}, 'schemas': [USER_SCHEMA, ENT]}),
    ok('remove/ext:employeeNumber', 'jane', [remove(f'{ENT}:employeeNumber')],
       {ENT: without(EXTENSION, 'employeeNumber')}),
    ok('remove/ext:employeeNumber/unassigned-changes-nothing', 'bare', [remove(f'{ENT}:employeeNumber')], {}),
    ok('replace/ext:employeeNumber/null-on-unassigned-changes-nothing', 'bare',
       [replace(f'{ENT}:employeeNumber', None)], {}),
    refused('replace/ext:employeeNumber/number', 'jane', [replace(f'{ENT}:employeeNumber', 702)],
            400, 'invalidValue'),
    refused('replace/ext:employeeNumber.sub/sub-attribute-of-a-string', 'jane',
            [replace(f'{ENT}:employeeNumber.value', '702')], 400, 'invalidPath'),
    ok('add/ext:manager.value/unassigned-complex-is-created', 'bare', [add(f'{ENT}:manager.value', '{boss}')],
       {ENT: {'manager': {'value': '{boss}'}}, 'schemas': [USER_SCHEMA, ENT]}),
    ok('replace/ext:manager.value', 'jane', [replace(f'{ENT}:manager.value', '{other}')],
       {ENT: dict(EXTENSION, manager=dict(MANAGER, value='{other}'))}),
    ok('remove/ext:manager.value', 'jane', [remove(f'{ENT}:manager.value')],
       {ENT: dict(EXTENSION, manager={'$ref': '../Users/{boss}'})}),
    ok('replace/ext:manager/keeps-unspecified-sub-attributes', 'jane',
       [replace(f'{ENT}:manager', {'value': '{other}'})],
       {ENT: dict(EXTENSION, manager=dict(MANAGER, value='{other}'))}),
    ok('remove/ext:manager', 'jane', [remove(f'{ENT}:manager')], {ENT: without(EXTENSION, 'manager')}),
    # RFC 7643 §2.5: "Unassigned attributes, the null value, or empty array (in the case of a
    # multi-valued attribute) SHALL be considered to be equivalent in 'state'." An extension
    # with nothing left in it is unassigned: it goes, and its URN leaves schemas with it.
    ok('remove/ext:every-attribute/the-empty-extension-goes-with-its-urn', 'jane',
       [remove(f'{ENT}:{name}') for name in EXTENSION], {ENT: ABSENT, 'schemas': [USER_SCHEMA]}),
    ok('remove/ext:manager/the-last-attribute-empties-the-extension', 'bare',
       [add(f'{ENT}:manager', {'value': '{boss}'}), remove(f'{ENT}:manager')],
       {ENT: ABSENT, 'schemas': [USER_SCHEMA]}),
    ok('remove/ext-urn/whole-extension-goes-with-its-urn', 'jane', [remove(ENT)],
       {ENT: ABSENT, 'schemas': [USER_SCHEMA]}),
    ok('add/ext-urn/whole-extension-sets-the-given-attributes', 'jane', [add(ENT, {'employeeNumber': '702'})],
       {ENT: dict(EXTENSION, employeeNumber='702')}),
    ok('replace/ext-urn/whole-extension-keeps-unspecified-attributes', 'jane',
       [replace(ENT, {'employeeNumber': '702'})], {ENT: dict(EXTENSION, employeeNumber='702')}),
    refused('remove/ext:manager.displayName/read-only', 'jane', [remove(f'{ENT}:manager.displayName')],
            400, 'mutability'),
    refused('replace/ext:manager.value/number', 'jane', [replace(f'{ENT}:manager.value', 5)], 400, 'invalidValue'),
    refused('replace/ext:manager.displayName/read-only', 'jane', [replace(f'{ENT}:manager.displayName', 'Boss')],
            400, 'mutability'),

    # The multi-valued complex emails / phoneNumbers, without a filter.
    ok('add/emails/appends', 'jane', [add('emails', [NEW])], {'emails': [WORK, HOME, NEW]}),
    ok('add/emails/an-equal-value-is-not-duplicated', 'jane', [add('emails', [dict(HOME)])], {}),
    ok('add/emails/only-the-new-values-are-appended', 'jane', [add('emails', [dict(HOME), NEW])],
       {'emails': [WORK, HOME, NEW]}),
    ok('add/emails/a-new-primary-clears-the-old-one', 'jane', [add('emails', [dict(NEW, primary=True)])],
       {'emails': [dict(WORK, primary=False), HOME, dict(NEW, primary=True)]}),
    ok('add/emails/an-existing-value-made-primary', 'jane', [add('emails', [dict(HOME, primary=True)])],
       {'emails': [dict(WORK, primary=False), dict(HOME, primary=True)]}),
    ok('add/phoneNumbers/unassigned-is-added', 'bare', [add('phoneNumbers', [PHONE])], {'phoneNumbers': [PHONE]}),
    ok('replace/emails/replaces-all-values', 'jane', [replace('emails', [NEW])], {'emails': [NEW]}),
    ok('replace/emails/same-values-change-nothing', 'jane', [replace('emails', [WORK, HOME])], {}),
    ok('replace/emails/empty-list-unassigns', 'jane', [replace('emails', [])], {'emails': ABSENT}),
    refused('replace/emails/two-primary-values', 'jane',
            [replace('emails', [dict(WORK), dict(HOME, primary=True)])], 400, 'invalidValue'),
    ok('replace/phoneNumbers/unassigned-is-an-add', 'bare', [replace('phoneNumbers', [PHONE])],
       {'phoneNumbers': [PHONE]}),
    ok('remove/emails/all-values', 'jane', [remove('emails')], {'emails': ABSENT}),
    ok('remove/phoneNumbers/all-values', 'jane', [remove('phoneNumbers')], {'phoneNumbers': ABSENT}),
    refused('add/emails/number', 'jane', [add('emails', 5)], 400, 'invalidValue'),
    refused('replace/emails/string', 'jane', [replace('emails', 'jd@new.example')], 400, 'invalidValue'),
    refused('add/emails/a-string-value-in-the-list', 'jane', [add('emails', ['jd@new.example'])],
            400, 'invalidValue'),
    refused('replace/phoneNumbers/value-not-a-string', 'jane', [replace('phoneNumbers', [{'value': 5551234}])],
            400, 'invalidValue'),

    # A value filter: emails[type eq "work"].
    ok('replace/emails[filter]/replaces-only-the-matching-value', 'jane',
       [replace('emails[type eq "work"]', {'value': 'jd@new.example', 'type': 'work'})],
       {'emails': [{'value': 'jd@new.example', 'type': 'work'}, HOME]}),
    ok('replace/emails[filter]/primary-moves-to-the-replaced-value', 'jane',
       [replace('emails[type eq "home"]', dict(HOME, primary=True))],
       {'emails': [dict(WORK, primary=False), dict(HOME, primary=True)]}),
    ok('replace/emails[filter]/filter-names-are-case-insensitive', 'jane',
       [replace('EMAILS[TYPE eq "work"].VALUE', 'jd@new.example')],
       {'emails': [dict(WORK, value='jd@new.example'), HOME]}),
    ok('replace/emails[and-filter].sub', 'jane',
       [replace('emails[type eq "work" and primary eq true].display', 'Work')],
       {'emails': [dict(WORK, display='Work'), HOME]}),
    ok('remove/emails[filter]/removes-only-the-matching-value', 'jane', [remove('emails[type eq "home"]')],
       {'emails': [WORK]}),
    ok('remove/emails[not-filter]/removes-only-the-matching-value', 'jane',
       [remove('emails[not (type eq "work")]')], {'emails': [WORK]}),
    ok('replace/emails[filter].sub/every-matching-value-changes', 'jane',
       [replace('emails[value co "jane"].type', 'other')],
       {'emails': [dict(WORK, type='other'), dict(HOME, type='other')]}),
    refused('replace/emails[filter].primary/true-on-two-matching-values', 'jane',
            [replace('emails[value co "jane"].primary', True)], 400, 'invalidValue'),
    ok('replace/emails[filter].value/same-value-changes-nothing', 'jane',
       [replace('emails[type eq "work"].value', 'jane@work.example')], {}),
    refused('replace/emails[filter]/no-match-is-noTarget', 'jane',
            [replace('emails[type eq "other"]', {'value': 'jd@new.example', 'type': 'other'})], 400, 'noTarget'),
    refused('replace/emails[filter]/unassigned-attribute-is-noTarget', 'bare',
            [replace('emails[type eq "work"]', {'value': 'jd@new.example', 'type': 'work'})], 400, 'noTarget'),
    refused('remove/emails[filter]/no-match-is-noTarget', 'jane', [remove('emails[type eq "other"]')],
            400, 'noTarget'),
    refused('remove/phoneNumbers[filter]/unassigned-attribute-is-noTarget', 'bare',
            [remove('phoneNumbers[type eq "fax"]')], 400, 'noTarget'),
    refused('replace/emails[filter]/string-for-a-complex-value', 'jane',
            [replace('emails[type eq "work"]', 'jd@new.example')], 400, 'invalidValue'),

    # A value filter and a sub-attribute: emails[type eq "work"].value.
    ok('replace/emails[filter].value/only-the-matching-value-changes', 'jane',
       [replace('emails[type eq "work"].value', 'jd@new.example')],
       {'emails': [dict(WORK, value='jd@new.example'), HOME]}),
    ok('add/emails[filter].value/existing-sub-attribute-is-replaced', 'jane',
       [add('emails[type eq "work"].value', 'jd@new.example')],
       {'emails': [dict(WORK, value='jd@new.example'), HOME]}),
    ok('add/emails[filter].primary/clears-it-on-the-others', 'jane', [add('emails[type eq "home"].primary', True)],
       {'emails': [dict(WORK, primary=False), dict(HOME, primary=True)]}),
    ok('add/phoneNumbers[filter].value/rfc-silent-entra-creates-the-value', 'jane',
       [add('phoneNumbers[type eq "mobile"].value', '+1 555 0199')],
       {'phoneNumbers': [PHONE, {'type': 'mobile', 'value': '+1 555 0199'}]}),
    ok('remove/phoneNumbers[filter].type', 'jane', [remove('phoneNumbers[type eq "work"].type')],
       {'phoneNumbers': [without(PHONE, 'type')]}),
    # Entra replaces values that are not there yet: the filter's eq's describe the value to make.
    ok('replace/phoneNumbers[filter].value/no-match-makes-the-value-the-filter-describes', 'jane',
       [replace('phoneNumbers[type eq "fax"].value', '+1 555 0199')],
       {'phoneNumbers': [PHONE, {'type': 'fax', 'value': '+1 555 0199'}]}),
    ok('replace/emails[filter].value/unassigned-attribute-makes-the-value', 'bare',
       [replace('emails[type eq "work"].value', 'bare@work.example')],
       {'emails': [{'type': 'work', 'value': 'bare@work.example'}]}),
    ok('replace/addresses[and-of-eqs].sub/makes-the-value-with-both', 'bare',
       [replace('addresses[type eq "work" and country eq "NZ"].streetAddress', '1 Queen St')],
       {'addresses': [{'type': 'work', 'country': 'NZ', 'streetAddress': '1 Queen St'}]}),
    ok('replace/roles[primary eq "True"].display/makes-a-primary-role', 'bare',
       [replace('roles[primary eq "True"].display', 'Admin')], {'roles': [{'primary': True, 'display': 'Admin'}]}),
    ok('replace/emails[TYPE eq "home"].value/sub-attribute-takes-the-schema-spelling', 'jane',
       [replace('emails[TYPE eq "other"].value', 'o@x.example')],
       {'emails': [WORK, HOME, {'type': 'other', 'value': 'o@x.example'}]}),
    *[refused(f'replace/emails[{kind}].value/no-match-cannot-describe-a-value-is-noTarget', 'jane',
              [replace(f'emails[{text}].value', 'x@x.example')], 400, 'noTarget')
      for kind, text in (('co', 'type co "fax"'), ('or', 'type eq "fax" or type eq "pager"'),
                         ('not', 'not (type eq "work" or type eq "home")'), ('pr', 'display pr'),
                         ('ne', 'type ne "work" and type ne "home"'), ('gt', 'type gt "zz"'))],
    refused('replace/emails[filter].value/a-filter-value-of-the-wrong-type-makes-no-value', 'jane',
            [replace('emails[primary eq "yes"].value', 'x@x.example')], 400, 'noTarget'),
    refused('replace/emails[two-types].value/contradictory-eqs-describe-no-value', 'bare',
            [replace('emails[type eq "work" and type eq "home"].value', 'x@x.example')], 400, 'noTarget'),
    refused('replace/emails[eq-null].value/null-describes-no-value', 'bare',
            [replace('emails[type eq null].value', 'x@x.example')], 400, 'noTarget'),
    refused('replace/roles[primary].primary/a-write-the-filter-would-not-match', 'bare',
            [replace('roles[primary eq "True"].primary', False)], 400, 'noTarget'),
    refused('replace/undeclared[filter].value/replace-makes-no-undeclared-value', 'bare',
            [replace('things[type eq "a"].value', 'v')], 400, 'noTarget'),
    ok('add/undeclared[filter].value/add-makes-one-as-it-always-has', 'bare',
       [add('things[type eq "a"].value', 'v')], {'things': [{'type': 'a', 'value': 'v'}]}),
    ok('replace/phoneNumbers[filter].value/empty-string-for-a-missing-value-changes-nothing', 'jane',
       [replace('phoneNumbers[type eq "mobile"].value', '')], {}),
    ok('replace/phoneNumbers[filter].value/null-for-a-missing-value-changes-nothing', 'jane',
       [replace('phoneNumbers[type eq "mobile"].value', None)], {}),
    refused('replace/emails[filter]/no-sub-attribute-no-match-is-noTarget', 'jane',
            [replace('emails[type eq "fax"]', {'value': 'x@x.example'})], 400, 'noTarget'),
    refused('remove/emails[filter].value/no-match-is-noTarget', 'jane', [remove('emails[type eq "other"].value')],
            400, 'noTarget'),
    refused('replace/emails[filter].value/number', 'jane', [replace('emails[type eq "work"].value', 7)],
            400, 'invalidValue'),
    refused('replace/emails[filter].primary/string', 'jane', [replace('emails[type eq "work"].primary', 'yes')],
            400, 'invalidValue'),

    # Malformed paths.
    *[refused(f'{op.__name__}/malformed-path/{path}', 'jane',
              [op(path) if op is remove else op(path, 'x')], 400, 'invalidPath')
      for op, path in [
          (replace, ''), (replace, 'emails[type eq "work"'), (remove, 'emails[type "work"]'),
          (replace, 'emails[type eq "work"].'), (add, 'name..givenName'), (replace, 'emails]'),
          (remove, 'emails[type eq "work"]value'), (replace, 'name.givenName.x'),
          (add, 'emails[type eqq "work"].value')]],

    # Read-only attributes: id, meta, groups.
    refused('add/id/read-only', 'jane', [add('id', 'someone-else')], 400, 'mutability'),
    refused('remove/id/read-only', 'jane', [remove('id')], 400, 'mutability'),
    refused('add/meta.created/read-only', 'jane', [add('meta.created', '2000-01-01T00:00:00Z')], 400, 'mutability'),
    refused('replace/meta.lastModified/read-only', 'jane', [replace('meta.lastModified', '2000-01-01T00:00:00Z')],
            400, 'mutability'),
    refused('remove/meta/read-only', 'jane', [remove('meta')], 400, 'mutability'),
    refused('add/groups/read-only', 'jane', [add('groups', [{'value': '{team}'}])], 400, 'mutability'),
    refused('remove/groups/read-only', 'jane', [remove('groups')], 400, 'mutability'),
    refused('remove/groups[filter]/read-only', 'jane', [remove('groups[value eq "{team}"]')], 400, 'mutability'),
    refused('replace/groups[filter].display/read-only', 'jane', [replace('groups[value eq "{team}"].display', 'X')],
            400, 'mutability'),
]


# -- groups -----------------------------------------------------------------

GROUP_ROWS = [
    ok('add/members/appends', 'team', [add('members', [{'value': '{other}'}])],
       {'members': ['{jane}', '{boss}', '{other}']}),
    ok('add/members/an-existing-member-is-not-duplicated', 'team', [add('members', [{'value': '{jane}'}])],
       {}, version=UNCHECKED),
    # RFC 7644 §3.5.2.1: an add of a value already there "SHALL NOT change the modify timestamp".
    ok('add/members/an-existing-member-changes-nothing', 'team', [add('members', [{'value': '{jane}'}])], {}),
    ok('add/members/to-an-empty-group', 'team', [remove('members'), add('members', [{'value': '{other}'}])],
       {'members': ['{other}']}),
    ok('replace/members/replaces-the-whole-list', 'team',
       [replace('members', [{'value': '{other}'}, {'value': '{boss}'}])], {'members': ['{boss}', '{other}']}),
    ok('replace/members/the-same-list-changes-nothing', 'team',
       [replace('members', [{'value': '{boss}'}, {'value': '{jane}'}])], {}),
    ok('remove/members/all', 'team', [remove('members')], {'members': []}),
    ok('remove/members[filter]/removes-only-that-member', 'team', [remove('members[value eq "{jane}"]')],
       {'members': ['{boss}']}),
    ok('remove/members[or-filter]/removes-both', 'team',
       [remove('members[value eq "{jane}" or value eq "{boss}"]')], {'members': []}),
    ok('remove/members[filter]/idp-retry-a-member-already-gone-succeeds', 'team',
       [remove('members[value eq "{other}"]')],
       {}, version=UNCHECKED),
    ok('remove/members[filter]/a-member-already-gone-changes-nothing', 'team',
       [remove('members[value eq "{other}"]')], {}),   # RFC 7643 §3.1: lastModified is the last change
    ok('remove/members[filter-on-display]/removes-the-matching-member', 'team',
       [remove('members[display eq "jane@example.com"]')], {'members': ['{boss}']}),
    ok('remove/members[filter-on-display-co]/removes-every-match', 'team',
       [remove('members[display co "@EXAMPLE.COM" and not (value eq "{boss}")]')], {'members': ['{boss}']}),
    ok('replace/members[filter]/replaces-the-matching-member', 'team',
       [replace('members[value eq "{jane}"]', [{'value': '{other}'}])], {'members': ['{boss}', '{other}']}),
    refused('remove/members[nested-filter]/invalidFilter', 'team', [remove('members[value[x eq "1"]]')],
            400, 'invalidFilter'),
    refused('remove/members[urn:x:value]/invalidFilter', 'team', [remove('members[urn:x:value eq "{jane}"]')],
            400, 'invalidFilter'),
    refused('replace/members[filter]/without-a-value', 'team', [replace('members[value eq "{jane}"]', None)],
            400, 'invalidValue'),
    refused('replace/schemas/invalidPath', 'team', [replace('schemas', ['x'])], 400, 'invalidPath'),
    refused('remove/members[filter-on-type]/unsupported', 'team', [remove('members[type eq "User"]')],
            400, 'invalidFilter'),
    # Not members: a filtered write never makes a member (sub-attributes of members are immutable).
    refused('add/members[filter].display/no-match-makes-no-member', 'team',
            [add('members[value eq "{other}"].display', 'Other')], 400, 'mutability'),
    refused('replace/members[filter].display/no-match-makes-no-member', 'team',
            [replace('members[value eq "{other}"].display', 'Other')], 400, 'mutability'),
    refused('replace/members[filter]/no-match-is-noTarget', 'team',
            [replace('members[value eq "{other}"]', {'value': '{other}'})], 400, 'noTarget'),
    refused('replace/members[filter].value/immutable', 'team',
            [replace('members[value eq "{jane}"].value', '{other}')], 400, 'mutability'),
    refused('add/members/number', 'team', [add('members', 5)], 400, 'invalidValue'),
    refused('add/members/unknown-user', 'team', [add('members', [{'value': 'no-such-user'}])], 400, 'invalidValue'),
    ok('replace/displayName', 'team', [replace('displayName', 'Dream Team')], {'displayName': 'Dream Team'}),
    ok('replace/no-path/displayName', 'team', [replace(None, {'displayName': 'Dream Team'})],
       {'displayName': 'Dream Team'}),
    ok('add/no-path/members-appends', 'team', [add(None, {'members': [{'value': '{other}'}]})],
       {'members': ['{jane}', '{boss}', '{other}']}),
    ok('replace/no-path/members-replaces-the-whole-list', 'team', [replace(None, {'members': [{'value': '{other}'}]})],
       {'members': ['{other}']}),
    refused('remove/displayName/required', 'team', [remove('displayName')], 400, 'mutability'),
    refused('replace/displayName/number', 'team', [replace('displayName', 5)], 400, 'invalidValue'),
    refused('remove/id/read-only', 'team', [remove('id')], 400, 'mutability'),
]


# -- several operations in one request: in order, all or nothing --------------

ATOMIC_ROWS = [
    ok('in-order/remove-then-add', 'jane', [remove('emails'), add('emails', [NEW])], {'emails': [NEW]}),
    ok('in-order/the-last-replace-wins', 'jane', [replace('title', 'A'), replace('title', 'B')], {'title': 'B'}),
    ok('in-order/a-filter-sees-the-earlier-add', 'jane',
       [add('emails', [NEW]), replace('emails[value eq "jd@new.example"].type', 'home')],
       {'emails': [WORK, HOME, dict(NEW, type='home')]}),
    ok('in-order/changed-and-changed-back-changes-nothing', 'jane',
       [add('title', 'Lead'), replace('title', 'Engineer')], {}),
    refused('all-or-nothing/then-read-only', 'jane', [replace('title', 'Lead'), remove('id')], 400, 'mutability'),
    refused('all-or-nothing/then-wrong-type', 'jane', [add('emails', [NEW]), replace('active', 'yes')],
            400, 'invalidValue'),
    refused('all-or-nothing/then-invalid-path', 'jane',
            [replace('name.givenName', 'Janet'), replace('title[value eq "x"]', 'y')], 400, 'invalidPath'),
    refused('all-or-nothing/then-noTarget', 'jane',
            [remove('emails[type eq "home"]'), remove('phoneNumbers[type eq "fax"]')], 400, 'noTarget'),
    refused('all-or-nothing/then-taken-userName', 'jane',
            [replace('title', 'Lead'), replace('userName', 'other@example.com')], 409, 'uniqueness'),
    refused('all-or-nothing/then-an-extension-error', 'jane',
            [replace(f'{ENT}:employeeNumber', '702'), replace(f'{ENT}:manager.displayName', 'Boss')],
            400, 'mutability'),
    refused('all-or-nothing/group/member-added-then-wrong-type', 'team',
            [add('members', [{'value': '{other}'}]), replace('displayName', 5)], 400, 'invalidValue'),
    refused('all-or-nothing/group/member-removed-then-unknown-member', 'team',
            [remove('members[value eq "{jane}"]'), add('members', [{'value': 'no-such-user'}])],
            400, 'invalidValue'),
    refused('all-or-nothing/group/members-replaced-then-read-only', 'team',
            [replace('members', [{'value': '{other}'}]), replace('id', 'x')], 400, 'mutability'),
]


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------

def unassigned(value):
    """RFC 7643 §2.5: unassigned, null and an empty list are the same state."""
    return value is None or value == []


def comparable(resource):
    """A resource as read, with membership as sorted ids (their order is not the
    point here), without unassigned attributes and without the meta fields a
    change moves."""
    document = {key: value for key, value in resource.items() if key != 'meta' and not unassigned(value)}
    document['meta'] = {k: v for k, v in resource['meta'].items() if k not in ('version', 'lastModified')}
    for membership in ('members', 'groups'):
        if membership in document:
            document[membership] = sorted(item['value'] for item in document[membership])
    return document


def expected_resource(before, expect):
    document = comparable(before)
    for key, value in expect.items():
        if value is ABSENT or unassigned(value):
            document.pop(key, None)
        else:
            document[key] = sorted(value) if key in ('members', 'groups') else value
    return document


def check_row(client, world, row):
    url = world.url(row.target)
    before = client.get(url, status=200).json
    response = client.patch(url, world.fill(row.operations))
    after = client.get(url, status=200).json

    if row.error:
        assert_scim_error(response, *row.error)
        assert after == before, 'a refused PATCH changed the resource'
        return

    assert response.status_int in (200, 204), (response.status, response.body[:500])
    if response.status_int == 200:
        assert response.json == after, 'the 200 answer is not the resource as read afterwards'
        assert response.headers['ETag'] == after['meta']['version']
    assert comparable(after) == expected_resource(before, world.fill(row.expect))
    changed = comparable(after) != comparable(before)
    if row.version == AUTO and changed:
        assert after['meta']['version'] != before['meta']['version'], 'changed, but meta.version is the same'
    elif row.version == AUTO:
        assert (after['meta']['version'], after['meta']['lastModified']) == (
            before['meta']['version'], before['meta']['lastModified']), 'nothing changed, but meta moved'


@pytest.mark.parametrize('row', [row.param() for row in USER_ROWS])
def test_user_patch(client, world, row):
    check_row(client, world, row)


@pytest.mark.parametrize('row', [row.param() for row in GROUP_ROWS])
def test_group_patch(client, world, row):
    check_row(client, world, row)


@pytest.mark.parametrize('row', [row.param() for row in ATOMIC_ROWS])
def test_several_operations_apply_in_order_and_all_or_nothing(client, world, row):
    check_row(client, world, row)


# ---------------------------------------------------------------------------
# The same rows without HTTP or a database: scimpatch on the stored resources
# ---------------------------------------------------------------------------
#
# The world is the resources as the store keeps them (clean_resource of the same
# bodies) and the group's members as a set of ids. The member changes PATCH makes
# are applied to that set by the store's rules as its member-change types state
# them (unknown users are refused, a replace through a filter that matches no
# member is noTarget), as is the rule that userName is unique. What only the
# store decides (meta.version, lastModified) is checked over HTTP above.

class DirectWorld:
    def __init__(self):
        catalog = scimschema.Catalog()
        self.ids = {name: f'id-{name}' for name in (*USERS, 'team')}
        self.kinds = {name: catalog.users for name in USERS}
        self.kinds['team'] = catalog.groups
        self.resources = {name: scimschema.clean_resource(
            self.fill({'schemas': [USER_SCHEMA], 'userName': user_name, **attributes}), catalog.users)
            for name, (user_name, attributes) in USERS.items()}
        self.resources['team'] = scimschema.clean_resource(
            {'schemas': [scimschema.GROUP_SCHEMA], 'displayName': TEAM[0]}, catalog.groups)
        self.members = {self.ids[member] for member in TEAM[1]}

    def fill(self, data):
        return fill(data, self.ids)

    def read(self, target, resource, members):
        """The resource as a GET would show it, less what the store adds (meta's dates and version)."""
        kind = self.kinds[target]
        if kind.membership.writable:
            membership = sorted(members)
        else:
            membership = [self.ids['team']] if self.ids[target] in self.members else []
        return {'id': self.ids[target], **resource, kind.membership.attribute: [{'value': v} for v in membership],
                'meta': {'resourceType': kind.name}}

    def store_members(self, changes):
        """The group's members after the store applies `changes`, by its documented rules."""
        users = {self.ids[name]: self.resources[name]['userName'] for name in USERS}
        members = set(self.members)

        def matching(user_filter):
            return {user_id for user_id in members
                    if scimpatch.matches_filter(user_filter, {'id': user_id, 'userName': users[user_id]})}
        for change in changes:
            if set(change.added) - set(users):
                raise scimschema.ScimError(400, 'invalidValue', 'unknown members')
            if isinstance(change, store.AddMembers):
                members |= set(change.user_ids)
            elif isinstance(change, store.RemoveMembers):
                members -= set(members if change.user_ids is None else change.user_ids)
            elif isinstance(change, store.SetMembers):
                members = set(change.user_ids)
            elif isinstance(change, store.RemoveMembersWhere):
                members -= matching(change.user_filter)
            elif isinstance(change, store.ReplaceMembersWhere):
                gone = matching(change.user_filter)
                if not gone:
                    raise scimschema.ScimError(400, 'noTarget', 'no member matches')
                members = (members - gone) | set(change.user_ids)
            else:
                raise AssertionError(f'not a member change: {change!r}')
        return members

    def check_unique(self, target, resource):
        taken = {self.resources[name]['userName'].lower() for name in USERS if name != target}
        if resource.get('userName', '').lower() in taken:
            raise scimschema.ScimError(409, 'uniqueness', 'userName is taken')


def check_row_directly(row):
    world = DirectWorld()
    kind, stored = world.kinds[row.target], world.resources[row.target]
    record = {'id': world.ids[row.target], 'resource': stored}
    unchanged = copy.deepcopy(stored)
    before = world.read(row.target, stored, world.members)
    try:
        resource, changes = scimpatch.patched_resource(kind, record, world.fill(row.operations), store.MEMBER_CHANGES)
        members = world.store_members(changes)
        if kind is not world.kinds['team']:
            world.check_unique(row.target, resource)
    except scimschema.ScimError as error:
        assert row.error == (error.status, error.scim_type), (error.status, error.scim_type, error.detail)
        assert stored == unchanged, 'a refused PATCH changed the stored resource'
        return
    assert row.error is None, f'accepted, but the RFC refuses it with {row.error}'
    assert stored == unchanged, 'PATCH changed the stored resource in place'
    after = world.read(row.target, resource, members)
    assert comparable(after) == expected_resource(before, world.fill(row.expect))


@pytest.mark.parametrize('row', [row.param() for row in USER_ROWS + GROUP_ROWS + ATOMIC_ROWS])
def test_scimpatch_alone_gives_the_same_answers(row):
    check_row_directly(row)


def test_row_names_are_unique():
    names = [(table, row.name) for table, rows in (('user', USER_ROWS), ('group', GROUP_ROWS),
                                                   ('atomic', ATOMIC_ROWS)) for row in rows]
    assert len(names) == len(set(names))

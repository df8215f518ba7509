"""scimlite's SCIM schemas: what the resources are, and what a valid one holds.

The attribute definitions of RFC 7643 (User, Group, the enterprise extension)
and the extensions an app's settings declare, as /Schemas shows them and as
validation enforces them, from one table; the resource types (what differs
between users and groups); the value checks that turn a request body into the
resource we store; and the one error type every SCIM failure is raised as.

Pure: no HTTP, no SQL. What a resource type's store functions are is the app's
business (scim_server.py). Each app has its own Catalog, so the extensions one
app declares are never seen by another.
"""

import dataclasses
import json
import re
from datetime import datetime, timezone
from pathlib import Path


class DeclarationError(ValueError):
    """An extensions file (load_extensions) is unreadable or malformed: one line for a human."""


# ===========================================================================
# The error type: raised anywhere, rendered by the app in one place
# ===========================================================================

ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error'


class ScimError(Exception):
    """A SCIM Error (RFC 7644 §3.12): its status, scimType and detail, and any
    headers to answer with (`Retry_After='1'` is Retry-After: 1)."""

    def __init__(self, status, scim_type=None, detail=None, **headers):
        super().__init__(status, scim_type, detail)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail
        self.headers = {name.replace('_', '-'): value for name, value in headers.items()}

    def document(self):
        return error_document(self.status, self.scim_type, self.detail)


def error_document(status, scim_type, detail):
    document = {'schemas': [ERROR_SCHEMA], 'status': str(status)}
    if scim_type:
        document['scimType'] = scim_type
    if detail:
        document['detail'] = detail
    return document


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
    attribute('displayName', description='A human-readable name for the group.', required=True,
              uniqueness='server'),
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
# RFC 7643 §3: every resource lists its schema URNs; a filter may ask which
# (RFC 7644 §3.4.2.2: `filter=schemas eq "urn:...:enterprise:2.0:User"`).
SCHEMAS = attribute('schemas', 'reference', 'The URNs of the schemas the resource holds.', multi=True,
                    mutability='readOnly', returned='always')


@dataclasses.dataclass(frozen=True)
class Membership:
    """How a resource type shows membership (kept in link rows, never in its JSON):
    the attribute (`groups` on a user, `members` on a group), whether a request
    may change it there, and what each of its values says of the other side."""
    attribute: str
    writable: bool
    other_endpoint: str   # where a value's $ref points
    value_type: str       # a value's "type"


class ResourceType:
    """What differs between Users and Groups: name, endpoint, schemas and their
    attributes, the attribute a resource cannot be without, membership, the values
    a resource has when not sent, and whether a PATCH answers with the resource
    when the client does not say (`patch_body_by_default`). The store functions
    are the app's."""

    def __init__(self, name, endpoint, schema, attributes, extensions, membership, required, defaults=None,
                 patch_body_by_default=True):
        self.name = name
        self.endpoint = endpoint
        self.schema = schema
        self.attributes = {a['name'].lower(): a for a in attributes}
        self.writable = {**self.attributes, 'externalid': COMMON_ATTRIBUTES['externalid']}
        self.searchable = {**COMMON_ATTRIBUTES, 'schemas': SCHEMAS, **self.attributes}
        self.membership = membership
        self.required = required
        self.defaults = dict(defaults or {})
        self.patch_body_by_default = patch_body_by_default
        self.multi_valued = multi_valued_paths(attributes, extensions, membership.attribute)
        # Keys of a body that are never stored as sent (see clean_resource).
        self.not_stored = frozenset(('schemas', 'password', membership.attribute, *READ_ONLY_COMMON))
        # `extensions`: {urn: [Definition]} of the extension schemas this type takes
        self.extensions = tuple(extensions)
        self.extension_attributes = {urn.lower(): {a['name'].lower(): a for a in definitions}
                                     for urn, definitions in extensions.items()}
        self.urns = {urn.lower(): urn for urn in (self.schema, *self.extensions)}

    def definition(self, urn):
        """The attribute map of the core schema (with externalId) or of a known extension;
        None for an extension we do not know."""
        if urn is None or urn.lower() == self.schema.lower():
            return self.writable
        return self.extension_attributes.get(urn.lower())

    def known_urn(self, urn):
        return self.urns.get(urn.lower())


def multi_valued_paths(attributes, extensions, membership):
    """{path as a filter names it: whether its values are complex} of the multi-valued
    attributes the store keeps in a resource's JSON: `emails`, `schemas`, and an
    extension's as `urn:...:name`. Membership lives in link rows, not here."""
    paths = {a['name']: a['type'] == 'complex' for a in attributes
             if a['multiValued'] and a['name'] != membership}
    paths['schemas'] = False
    for urn, definitions in extensions.items():
        paths.update({f'{urn}:{a["name"]}': a['type'] == 'complex' for a in definitions if a['multiValued']})
    return paths


class Catalog:
    """The schemas and resource types one app serves: the built-in ones and the
    extension schemas its settings declare (load_extensions). Each app makes its
    own, so what one app declares is never seen by another."""

    def __init__(self, declared=()):
        self.schemas = dict(BUILT_IN_SCHEMAS)
        for _, urn, name, description, definitions in declared:
            self.schemas[urn] = (name, description, definitions)

        def extensions(type_name, *built_in):
            urns = (*built_in, *(urn for resource_type, urn, *_ in declared if resource_type == type_name))
            return {urn: self.schemas[urn][2] for urn in urns}

        self.users = ResourceType(
            'User', '/Users', USER_SCHEMA, USER_ATTRIBUTES, extensions('User', ENTERPRISE_SCHEMA),
            Membership('groups', writable=False, other_endpoint='/Groups', value_type='direct'),
            # A user created or replaced without `active` is active; removed by a PATCH, unassigned.
            required='userName', defaults={'active': True})
        self.groups = ResourceType(
            'Group', '/Groups', GROUP_SCHEMA, GROUP_ATTRIBUTES, extensions('Group'),
            Membership('members', writable=True, other_endpoint='/Users', value_type='User'),
            # Okta and Entra need no body, and a group of 100,000 members would be read
            # and sent whole for every member added.
            required='displayName', patch_body_by_default=False)
        self.resource_types = (self.users, self.groups)

    def resource_type(self, name):
        """The resource type called `name` (ignoring case), or None."""
        return next((kind for kind in self.resource_types if kind.name.lower() == name.lower()), None)

    def schema_urn(self, urn):
        """The URN of a schema this catalog has, as it spells it (`urn` ignoring case), or None."""
        return find_key(self.schemas, urn)


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
# name: (its default, the values it may take)
CHARACTERISTICS = {
    'mutability': ('readWrite', ('readOnly', 'readWrite', 'immutable', 'writeOnly')),
    'returned': ('default', ('always', 'never', 'default', 'request')),
    'uniqueness': ('none', ('none', 'server', 'global')),
}


def load_extensions(path):
    """The extension schemas in the file at `path`: ((resource type, urn, name,
    description, [Definition]), ...), or DeclarationError with one line."""
    try:
        document = json.loads(Path(path).read_text(encoding='utf-8'))
    except (OSError, UnicodeError, ValueError) as error:
        raise DeclarationError(f'cannot read the extensions file {path}: {error}') from None
    if isinstance(document, dict):
        document = document.get('Resources', [document])
    if not isinstance(document, list):
        raise DeclarationError(f'{path}: expected schema documents (RFC 7643 §7)')
    found, seen = [], {urn.lower() for urn in BUILT_IN_SCHEMAS}
    for schema in document:
        urn = schema.get('id') if isinstance(schema, dict) else None
        if not isinstance(urn, str) or not urn.lower().startswith('urn:') or urn.lower() in seen:
            raise DeclarationError(f'{path}: each schema needs an "id" that is a new URN, not {urn!r}')
        seen.add(urn.lower())
        resource_type = schema.get('resourceType', 'User')
        if resource_type not in ('User', 'Group'):
            raise DeclarationError(f'{path}: {urn}: resourceType must be User or Group, not {resource_type!r}')
        attributes = schema.get('attributes')
        if not isinstance(attributes, list):
            raise DeclarationError(f'{path}: {urn}: "attributes" must be a list')
        definitions = [declared_attribute(item, f'{path}: {urn}') for item in attributes]
        found.append((resource_type, urn, str(schema.get('name') or urn.rsplit(':', 1)[-1]),
                      str(schema.get('description', '')), definitions))
    return tuple(found)


def declared_attribute(item, where):
    """One attribute of a declared schema as a Definition (sub-attributes too)."""
    name = item.get('name') if isinstance(item, dict) else None
    if not isinstance(name, str) or not re.fullmatch(r'[A-Za-z$][\w$-]*', name):
        raise DeclarationError(f'{where}: an attribute needs a "name" (letters, digits, _, $ or -), not {name!r}')
    type_ = item.get('type', 'string')
    if type_ not in ATTRIBUTE_TYPES:
        raise DeclarationError(f'{where}.{name}: type must be one of {", ".join(ATTRIBUTE_TYPES)}, not {type_!r}')
    options = {}
    for key, (default, allowed) in CHARACTERISTICS.items():
        value = item.get(key, default)
        if value not in allowed:
            raise DeclarationError(f'{where}.{name}: {key} must be one of {", ".join(allowed)}, not {value!r}')
        options[key] = value
    flags = {key: item.get(key, False) for key in ('multiValued', 'required', 'caseExact')}
    if not all(isinstance(flag, bool) for flag in flags.values()):
        raise DeclarationError(f'{where}.{name}: multiValued, required and caseExact are true or false')
    sub = [declared_attribute(part, f'{where}.{name}') for part in item.get('subAttributes') or ()]
    if (type_ == 'complex') != bool(sub):
        raise DeclarationError(f'{where}.{name}: a complex attribute, and only one, has subAttributes')
    canonical = item.get('canonicalValues')
    return attribute(name, type_, str(item.get('description', '')), multi=flags['multiValued'],
                     required=flags['required'], case_exact=flags['caseExact'], sub=sub or None,
                     canonical=canonical if isinstance(canonical, list) else None, **options)


# ===========================================================================
# Resources: a request body -> the resource we store
# ===========================================================================

def find_key(mapping, name):
    """The key of `mapping` equal to `name` ignoring case (SCIM names are case-insensitive)."""
    if name in mapping:
        return name
    lowered = name.lower()
    return next((key for key in mapping if key.lower() == lowered), None)


# Entra sends declared booleans as strings, in any case: `"active": "False"`,
# `"roles": [{"primary": "True", ...}]`. Only where the schema says boolean.
BOOLEAN_STRINGS = {'true': True, 'false': False}


def comparable(definition, value):
    """A filter's value compared with the attribute `definition` (None if undeclared):
    Entra's "True"/"False" compare with a boolean as booleans; anything else as given."""
    if definition is not None and definition['type'] == 'boolean' and isinstance(value, str):
        return BOOLEAN_STRINGS.get(value.lower(), value)
    return value


def check_value(definition, value, where, one=False):
    """Type-check one value against its attribute definition; returns it canonicalised.
    `one`: a single value of a multi-valued attribute.

    Nulls inside complex values are dropped ("null means not set")."""
    if definition['multiValued'] and not one:
        if not isinstance(value, list):
            raise ScimError(400, 'invalidValue', f'{where} must be a list.')
        return [check_value(definition, item, f'{where}[{i}]', one=True)
                for i, item in enumerate(value) if item is not None]
    type_ = definition['type']
    if type_ == 'complex':
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
    if type_ == 'boolean':
        value = comparable(definition, value)   # Entra's "True"/"False"
        if not isinstance(value, bool):
            raise ScimError(400, 'invalidValue', f'{where} must be true or false.')
        return value
    if type_ in ('integer', 'decimal'):
        if isinstance(value, bool) or not isinstance(value, int if type_ == 'integer' else (int, float)):
            needed = 'an integer' if type_ == 'integer' else 'a number'
            raise ScimError(400, 'invalidValue', f'{where} must be {needed}.')
        return value
    if not isinstance(value, str):
        raise ScimError(400, 'invalidValue', f'{where} must be a string.')
    if type_ == 'dateTime' and utc_time(value) is None:
        raise ScimError(400, 'invalidValue', f'{where} must be an RFC 3339 date and time.')
    return value


def utc_time(text):
    """An RFC 3339 date and time, in any offset, as an aware UTC datetime; None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.replace('Z', '+00:00').replace('z', '+00:00'))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except (ValueError, AttributeError, OverflowError):   # 0001-01-01T00:00+14:00 is before year 1
        return None


def check_schemas(body, kind):
    """`schemas` must be a list of URI strings that includes the resource's core schema."""
    schemas = body.get('schemas')
    if not isinstance(schemas, list) or not all(isinstance(s, str) and s for s in schemas):
        raise ScimError(400, 'invalidSyntax', f'schemas must be a list of schema URIs, including {kind.schema}.')
    known = [kind.known_urn(s) or s for s in schemas]
    if kind.schema not in known:
        raise ScimError(400, 'invalidSyntax', f'schemas must include {kind.schema}.')
    return list(dict.fromkeys(known))


def clean_resource(body, kind, defaults=True):
    """A request body -> the resource we store, or a 400.

    Read-only attributes (`id`, `meta`, a user's `groups`) are ignored, as Okta
    sends back what it read; `password` is dropped; nulls mean "not set"; known
    attributes are type-checked and take their schema's spelling; anything else
    an IdP sends (its own extensions) is kept as sent. An extension with nothing
    in it (`{}`, or emptied by a PATCH) is unassigned: dropped, and its URN with
    it from `schemas`; one that holds something has its URN there. `members` of
    a group are not part of the stored resource: they live in link rows. With
    `defaults` (POST and PUT, a whole resource; not a PATCH's result), what the
    resource type gives an attribute left out."""
    schemas = check_schemas(body, kind)
    resource = {'schemas': schemas}
    core = kind.definition(None)
    not_stored = kind.not_stored
    for key, value in body.items():
        lowered = key.lower()
        if value is None or lowered in not_stored:
            continue
        if lowered.startswith('urn:'):
            urn = kind.known_urn(key)
            if urn != kind.schema:
                value = check_extension(kind, urn, value) if urn else value
                if value == {}:
                    drop_schema(resource, urn or key)
                    continue
                if urn:
                    resource[urn] = value
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
    for urn in kind.extensions:   # RFC 7643 §3: schemas names the extensions the resource holds
        if urn in resource and urn not in resource['schemas']:
            resource['schemas'].append(urn)
    if defaults:
        for name, value in kind.defaults.items():
            resource.setdefault(name, value)
    return resource


def drop_schema(resource, urn):
    """An extension left out: its URN leaves `schemas` too."""
    resource['schemas'] = [schema for schema in resource['schemas'] if schema.lower() != urn.lower()]


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


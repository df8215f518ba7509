"""scimlite's PATCH: RFC 7644 §3.5.2 applied to a resource, after the IdPs' dialects.

A PATCH request's operations are read and normalised first: each quirk of Okta
or Entra is one small function below, quoting the payload it fixes, and they
run before the generic code, which then only sees the RFC. Then each operation
is applied to a copy of the stored resource by its path's shape (a whole
attribute, `attr.sub`, `attr[filter]`, `attr[filter].sub`, a whole extension),
and the result is validated as if it had been sent in full. A group's member
changes are not applied to the resource: they become the store's member-change
values (AddMembers, RemoveMembers, ...), handed in by the caller, so that a
group of 100,000 members is never read to add one.

Pure: no HTTP, no SQL; testable on dicts (tests/test_patch_table.py does).
Not supported: nested groups (members are users), password changes (a password
is accepted and dropped).
"""

import copy
import dataclasses

import scimfilter as F
from scimschema import (
    ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_SCHEMA, READ_ONLY_COMMON, USER_SCHEMA, ScimError, check_value,
    clean_resource, comparable, drop_schema, find_key, member_ids, sub_attributes)

# ===========================================================================
# The IdP dialects
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


MANAGER_PATH = f'{ENTERPRISE_SCHEMA}:manager'


def manager_from_pathless_value(operations, kind, resource_id):
    """The validator gives the manager in a path-less value, under its full path:
    `{"op": "replace", "value": {"urn:...:enterprise:2.0:User:manager": ""}}`. It
    becomes an operation of its own, which the next dialect reads."""
    fixed = []
    for operation in operations:
        value = operation.get('value')
        key = find_key(value, MANAGER_PATH) if operation.get('path') is None and isinstance(value, dict) else None
        if key is None or operation.get('op') not in ('add', 'replace'):
            fixed.append(operation)
            continue
        rest = {k: v for k, v in value.items() if k != key}
        fixed.extend([dict(operation, value=rest)] if rest else [])
        fixed.append(dict(operation, path=MANAGER_PATH, value=value[key]))
    return fixed


def manager_from_bare_id(operations, kind, resource_id):
    """Entra sets the manager to a bare id:
    `{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "value": "<manager id>"}`; the schema says manager is {"value": "<id>"}. An empty
    id, bare or not, removes the manager: `"value": ""`, `"value": {"value": ""}`
    (Microsoft's SCIM Validator, "Patch User - Remove Manager")."""
    fixed = []
    for operation in operations:
        path, value = operation.get('path'), operation.get('value')
        if isinstance(path, str) and path.lower() == MANAGER_PATH.lower() and operation.get('op') != 'remove':
            manager_id = value.get('value', value) if isinstance(value, dict) and len(value) == 1 else value
            if manager_id == '':
                operation = {'op': 'remove', 'path': path}
            elif isinstance(value, str):
                operation = dict(operation, value={'value': value})
        fixed.append(operation)
    return fixed


# Entra's "True"/"False" for booleans (`{"op": "Replace", "path": "active", "value": "False"}`) need
# no dialect: check_value takes them wherever the schema says boolean, in PATCH as in POST and PUT.
IDP_DIALECTS = (lowercase_op_names, expand_dotted_keys, drop_own_id_from_value, manager_from_pathless_value,
                manager_from_bare_id)


# ===========================================================================
# Operations and paths
# ===========================================================================

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


# ===========================================================================
# Applying them
# ===========================================================================

class Patcher:
    """Applies RFC 7644 §3.5.2 operations to one resource dict.

    Member changes of a group are not applied to the dict: they are collected,
    in order, as the store's member-change values, made from `change_types`
    (store.MEMBER_CHANGES: AddMembers, RemoveMembers, RemoveMembersWhere,
    ReplaceMembersWhere and SetMembers, passed in: this module does not import
    the store)."""

    def __init__(self, kind, resource, resource_id, change_types):
        self.kind = kind
        self.resource = copy.deepcopy(resource)
        self.resource_id = resource_id
        self.change_types = change_types
        self.member_changes = []

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

    # -- one operation on one attribute, by the shape of its path ------------

    def apply_to(self, op, urn, path, value):
        attribute_name = path.path.attr
        definitions = self.kind.definition(urn)
        definition = definitions.get(attribute_name.lower()) if definitions is not None else None
        name = definition['name'] if definition else attribute_name
        if urn is None and name.lower() in READ_ONLY_COMMON:
            raise ScimError(400, 'mutability', f'{name} is read-only.')
        if urn is None and name.lower() == self.kind.membership.attribute:
            if not self.kind.membership.writable:
                raise ScimError(400, 'mutability', f'{name} is read-only: change membership on the group.')
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
        return self.patch_attribute(op, container, key, definition, value)

    def container(self, urn, create):
        """The core resource, or the extension object `urn` (made when `create`), or None."""
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

    def patch_attribute(self, op, container, key, definition, value):
        """`path: "title"`, `"emails"`, `"name"`: the whole attribute."""
        multi_valued = bool(definition and definition['multiValued'])
        if op == 'remove':
            container.pop(key, None)
            if value is not None and multi_valued:
                raise ScimError(400, 'invalidValue', f'remove of {definition["name"]} takes a filter, not a value.')
            return
        if value is None:
            container.pop(key, None)
            return
        unset = []
        if definition:
            if multi_valued and isinstance(value, dict):
                value = [value]   # one value given for a multi-valued attribute
            if definition['type'] == 'complex' and not multi_valued and isinstance(value, dict):
                unset = [sub for sub, item in value.items() if item is None]   # RFC 7643 §2.5: null unsets
            value = check_value(definition, value, definition['name'])
        changed = value
        if multi_valued and op == 'add':
            changed = _add_to_multi_valued(container, key, value)
        elif definition and definition['type'] == 'complex' and isinstance(container.get(key), dict):
            container[key] = _merge_complex(container[key], value, unset)
        else:
            container[key] = value
        if multi_valued:
            single_primary(container[key], changed)

    def patch_sub_attribute(self, op, container, key, definition, sub, value):
        """`path: "name.givenName"`: one sub-attribute of a single complex attribute."""
        if definition and definition['type'] != 'complex':
            raise ScimError(400, 'invalidPath', f'{key} has no sub-attributes.')
        if definition and definition['multiValued']:
            raise ScimError(400, 'invalidPath', f'{key}.{sub} needs a filter: {key}[type eq "..."].{sub}.')
        sub_definition = writable_sub(key, definition, sub)
        target = container.get(key)
        if op == 'remove' or value is None:
            if isinstance(target, dict):
                target.pop(find_key(target, sub) or sub, None)
            return
        if target is not None and not isinstance(target, dict):
            raise ScimError(400, 'invalidPath', f'{key} has no sub-attributes.')
        set_key(container.setdefault(key, {}), *sub_value(key, sub, sub_definition, value))

    def patch_filtered(self, op, container, key, definition, value_filter, sub, value):
        """`path: 'emails[type eq "work"]'`, with or without `.value` after it: the
        values of a multi-valued attribute that match the filter."""
        if definition is not None and not definition['multiValued']:
            raise ScimError(400, 'invalidPath', f'{key} is not multi-valued: it takes no filter.')
        items = list(container.get(key) or [])
        if not all(isinstance(item, dict) for item in items) or not isinstance(container.get(key, []), list):
            raise ScimError(400, 'invalidPath', f'{key} is not a list of complex values: it takes no filter.')
        if definition is not None:
            value_filter = typed_value_filter(value_filter, definition)
        matches = [i for i, item in enumerate(items) if matches_filter(value_filter, item)]
        if not matches:
            # Entra's `replace`/`add` of `emails[type eq "work"].value` on a user with
            # no work email: the value the filter describes is made, then written.
            created = self.described_value(op, key, definition, value_filter, sub, value)
            if created is None:   # "" or null for a value that is not there: already so
                return
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
            sub_name, value = sub_value(key, sub, writable_sub(key, definition, sub), value)
            for i in matches:
                items[i] = dict(items[i])
                set_key(items[i], sub_name, value)
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
            single_primary(items, changed)
        else:
            container.pop(key, None)

    # -- group membership: link rows, never the whole member list -------------

    def described_value(self, op, key, definition, value_filter, sub, value):
        """The value of `key` that `value_filter` describes, for a write to its `sub`
        when no value matches: None if there is nothing to write (`""` or null), a 400
        noTarget if the filter describes no value, or one the write would not match."""
        made = equality_item(value_filter) if sub and op in ('add', 'replace') else None
        if made is not None and op == 'replace' and definition is None:
            made = None   # replace makes values of a declared attribute only, as add always has
        if made is None:
            raise ScimError(400, 'noTarget', f'No value of {key} matches the filter.')
        if value in (None, ''):
            return None
        if definition is not None:
            try:
                made = check_value(definition, made, key, one=True)
            except ScimError as error:
                raise ScimError(400, 'noTarget', f'No value of {key} matches the filter, and its values '
                                f'cannot make one: {error.detail}') from None
        written = dict(made)
        set_key(written, *sub_value(key, sub, sub_attributes(definition).get(sub.lower()), value))
        if not matches_filter(value_filter, written):
            raise ScimError(400, 'noTarget', f'No value of {key} matches the filter, and writing {sub} to the '
                            'value it describes would make one it does not match.')
        return made

    def patch_members(self, op, path, value):
        if path.sub or path.path.sub:
            raise ScimError(400, 'mutability', "A member's value, display and type cannot be changed: "
                            'remove the member and add another.')
        changes = self.change_types
        if path.filter is not None:
            if op == 'add':
                raise ScimError(400, 'invalidPath', 'add takes no members filter: add members by value.')
            ids = member_filter_ids(path.filter)
            if op == 'remove' and ids is not None:   # Okta's remove: those link rows, whether there or not
                change = changes.RemoveMembers(tuple(ids))
            elif op == 'remove':
                change = changes.RemoveMembersWhere(member_user_filter(path.filter))
            elif value is None:
                raise ScimError(400, 'invalidValue', 'replace of members[...] needs the members to put instead.')
            else:   # replace the members the filter matches (400 noTarget if none) with the value's
                change = changes.ReplaceMembersWhere(member_user_filter(path.filter), tuple(member_ids(value)))
        elif op == 'add':
            change = changes.AddMembers(tuple(member_ids(value)))
        elif op == 'replace':
            change = changes.SetMembers(tuple(member_ids(value)))
        elif value is not None:   # Entra: {"op":"Remove","path":"members","value":[{"value":"<id>"}]}
            change = changes.RemoveMembers(tuple(member_ids(value)))
        else:
            change = changes.RemoveMembers(None)
        self.member_changes.append(change)


# ---------------------------------------------------------------------------
# The pieces the patcher is made of
# ---------------------------------------------------------------------------

def _add_to_multi_valued(container, key, values):
    """Add `values` to the list at `key`: one already there is not added twice, but
    its primary still counts. Returns the values added or made primary."""
    items, changed = list(container.get(key) or []), []
    for item in values:
        index = next((i for i, old in enumerate(items) if same_value(item, old)), None)
        if index is None:
            items.append(item)
            changed.append(item)
        elif isinstance(item, dict) and item.get('primary') is True:
            items[index] = dict(items[index], primary=True)
            changed.append(items[index])
    container[key] = items
    return changed


def _merge_complex(old, new, unset):
    """A complex value patched with `new`: sub-attributes it does not name stay
    (RFC 7644 §3.5.2.3), those it sets to null (`unset`) go."""
    merged = {**old, **new}
    for sub in unset:
        merged.pop(find_key(merged, sub) or sub, None)
    return merged


def writable_sub(key, definition, sub):
    """The definition of `key.sub` (None where undeclared); a 400 if it is read-only."""
    sub_definition = sub_attributes(definition).get(sub.lower())
    if sub_definition and sub_definition['mutability'] == 'readOnly':
        raise ScimError(400, 'mutability', f'{key}.{sub} is read-only.')
    return sub_definition


def sub_value(key, sub, sub_definition, value):
    """(the sub-attribute's name as its schema spells it, `value` checked against it)."""
    if sub_definition is None:
        return sub, value
    sub_name = sub_definition['name']
    return sub_name, check_value(sub_definition, value, f'{key}.{sub_name}')


def set_key(mapping, name, value):
    """Set `name` in `mapping`, under the key it already has there ignoring case."""
    mapping[find_key(mapping, name) or name] = value


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


# ---------------------------------------------------------------------------
# Value filters: `emails[type eq "work"]`, `members[value eq "<id>"]`
# ---------------------------------------------------------------------------

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


def typed_value_filter(expr, definition):
    """A value filter on the multi-valued attribute `definition`, its sub-attributes
    spelled as the schema spells them and a boolean's "True"/"False" as a boolean
    (Entra's `roles[primary eq "True"]`). Undeclared sub-attributes stay as sent."""
    if isinstance(expr, (F.And, F.Or)):
        return type(expr)(typed_value_filter(expr.left, definition), typed_value_filter(expr.right, definition))
    if isinstance(expr, F.Not):
        return F.Not(typed_value_filter(expr.expr, definition))
    sub = sub_attributes(definition).get(expr.path.attr.lower()) if isinstance(expr, F.Compare) else None
    if sub is None or expr.path.sub or expr.path.urn:
        return expr
    return F.Compare(F.AttrPath(sub['name']), expr.op, comparable(sub, expr.value))


def equality_item(value_filter):
    """`type eq "work"` (possibly and-ed) -> {"type": "work"}: the value Entra's
    `emails[type eq "work"].value` writes to when there is no work email yet. None
    for a filter that does not describe one value (co, or, not, pr, ...)."""
    if isinstance(value_filter, F.And):
        left, right = equality_item(value_filter.left), equality_item(value_filter.right)
        if left is None or right is None or any(left[k] != right[k] for k in left.keys() & right.keys()):
            return None   # `type eq "work" and type eq "home"` describes no value
        return {**left, **right}
    if (isinstance(value_filter, F.Compare) and value_filter.op == 'eq' and not value_filter.path.sub
            and not value_filter.path.urn and value_filter.value is not None):
        return {value_filter.path.attr: value_filter.value}
    return None


def patched_resource(kind, record, operations, change_types):
    """Apply the operations to a stored record: (new resource, member changes).
    `change_types` are the store's member-change types (see Patcher)."""
    patcher = Patcher(kind, record['resource'], record['id'], change_types)
    for operation in operations:
        patcher.apply(operation)
    if patcher.resource.get(kind.required) is None:
        raise ScimError(400, 'mutability', f'{kind.required} is required: it can be replaced, not removed.')
    for urn in kind.extensions:   # an extension removed whole takes its URN with it (emptied: clean_resource)
        if urn in record['resource'] and urn not in patcher.resource:
            drop_schema(patcher.resource, urn)
    # Re-validate the whole result as if it had been sent in full.
    return clean_resource(patcher.resource, kind, defaults=False), patcher.member_changes

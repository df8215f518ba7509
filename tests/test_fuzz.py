"""Property tests (Hypothesis): whatever a client sends as a filter, a PATCH document or
a resource body, the answer is never a 5xx; every error is a SCIM Error whose `status`
matches the HTTP status; and a refused request leaves the store exactly as it was.

The budget here is fixed for CI (HYPOTHESIS_PROFILE=ci, the default); for a deeper run:

    HYPOTHESIS_PROFILE=deep python -m pytest tests/test_fuzz.py
"""

import json
import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ERROR_SCHEMA, GROUP_SCHEMA, ON_POSTGRESQL, PATCH_SCHEMA, USER_SCHEMA, ScimClient, store_rows

pytestmark = pytest.mark.skipif(
    ON_POSTGRESQL, reason='fuzzed on SQLite; the same code paths run on PostgreSQL in the rest of the suite')

# The one function-scoped fixture these tests take, `fuzzed`, is a factory: each
# example calls it for an app of its own, so sharing it between examples is right.
settings.register_profile('ci', max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile('deep', max_examples=int(os.environ.get('HYPOTHESIS_EXAMPLES', 5000)), deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))

# The pieces SCIM requests are made of, and noise between them.
NAMES = st.sampled_from(['userName', 'USERNAME', 'name.givenName', 'emails', 'emails.value', 'emails.type',
                         'active', 'title', 'displayName', 'members', 'members.value', 'members.display',
                         'groups', 'id', 'externalId', 'meta.created', 'meta.lastModified', 'meta.version',
                         f'{USER_SCHEMA}:userName', 'urn:x:y:1.0:User:z', 'primary', 'value', 'type', 'x', '$ref'])
OPERATORS = st.sampled_from(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'pr', 'EQ', 'like', 'and', 'or'])
LITERALS = st.one_of(st.text(max_size=12).map(json.dumps), st.integers(-2**70, 2**70).map(str),
                     st.sampled_from(['true', 'false', 'null', '1e999', '-0', '"\\ud800"', '"\\u0000"', "'x'",
                                      '"2026-01-01T00:00:00Z"', '"%"', '"_"', '1=1', '--']))
PUNCTUATION = st.sampled_from(['(', ')', '[', ']', ' ', '.', ' and ', ' or ', 'not ', '"', '\\', ';'])
FILTERS = st.lists(st.one_of(NAMES, OPERATORS, LITERALS, PUNCTUATION, st.text(max_size=4)), max_size=14).map(
    lambda parts: ' '.join(parts))
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**65, 2**65), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.one_of(NAMES, st.text(max_size=6)),
                                                                                  children, max_size=4)),
    max_leaves=12)
PATHS = st.one_of(NAMES, FILTERS.map(lambda text: f'emails[{text}]'), FILTERS.map(lambda text: f'members[{text}]'),
                  st.text(max_size=12), st.none(), st.integers())
OPERATIONS = st.fixed_dictionaries(
    {'op': st.sampled_from(['add', 'remove', 'replace', 'Add', 'Replace', 'Remove', 'move', 5, None])},
    optional={'path': PATHS, 'value': JSON_VALUES})
PATCHES = st.one_of(
    st.fixed_dictionaries({'schemas': st.just([PATCH_SCHEMA]), 'Operations': st.lists(OPERATIONS, max_size=4)}),
    JSON_VALUES)
BODIES = st.one_of(
    st.fixed_dictionaries({'schemas': st.sampled_from([[USER_SCHEMA], [GROUP_SCHEMA], [USER_SCHEMA, 'urn:x:y'], [],
                                                       'x', [5]])},
                          optional={'userName': JSON_VALUES, 'displayName': JSON_VALUES, 'emails': JSON_VALUES,
                                    'name': JSON_VALUES, 'active': JSON_VALUES, 'members': JSON_VALUES,
                                    'urn:x:y': JSON_VALUES, 'id': JSON_VALUES, 'meta': JSON_VALUES}),
    JSON_VALUES)


@pytest.fixture(scope='module')
def fuzz_database(tmp_path_factory):
    """One database for every example of the module (a fresh one each would be too slow):
    its URL, and the ids of the user and the group to aim at, once made. Each example
    restores what it changed."""
    path = tmp_path_factory.mktemp('fuzz') / 'scim.db'
    return {'url': f'sqlite:///{path.as_posix()}', 'targets': None}


@pytest.fixture
def fuzzed(make_app, fuzz_database):
    """`fuzzed()` in an example: (a client on an app of the example's own, on the module's
    database; the user's id; the group's id). The apps are made by the make_app factory,
    which closes every one of them at the test's teardown."""
    def example():
        client = ScimClient(make_app(database=fuzz_database['url']))
        if fuzz_database['targets'] is None:
            user = client.create_user('fuzz@example.com', emails=[{'value': 'fuzz@example.com', 'type': 'work'}])
            group = client.create_group('Fuzzers', [user['id']])
            fuzz_database['targets'] = (user['id'], group['id'])
        return (client, *fuzz_database['targets'])
    return example


def answered(response):
    """The checks every answer passes: no 5xx, and an error is a SCIM Error with its status."""
    assert response.status_int < 500, (response.status, response.body[:300])
    if response.status_int >= 400:
        body = json.loads(response.body)
        assert body['schemas'] == [ERROR_SCHEMA] and body['status'] == str(response.status_int), body
    return response


def refused_or_restore(client, response, before, restore):
    if response.status_int >= 400:
        assert store_rows() == before, 'a refused request changed the store'
    else:
        restore()


@given(text=FILTERS)
def test_any_filter_is_answered_never_with_a_5xx(fuzzed, text):
    client, _, _ = fuzzed()
    for resource in ('Users', 'Groups'):
        answered(client.get(f'/{resource}?filter={quote(text)}'))
    answered(client.post('/.search', {'schemas': ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
                                      'filter': text}))


@given(document=PATCHES)
def test_any_patch_is_answered_and_a_refused_one_changes_nothing(fuzzed, document):
    client, user_id, group_id = fuzzed()
    for resource, resource_id in (('Users', user_id), ('Groups', group_id)):
        original = client.get(f'/{resource}/{resource_id}').json
        before = store_rows()
        response = answered(client.request('PATCH', f'/{resource}/{resource_id}', raw=json.dumps(document).encode()))

        def restore(resource=resource, resource_id=resource_id, original=original):
            body = {key: value for key, value in original.items() if key != 'meta'}
            client.put(f'/{resource}/{resource_id}', body, status=200)
        refused_or_restore(client, response, before, restore)


@given(body=BODIES)
def test_any_resource_body_is_answered_and_a_refused_one_stores_nothing(fuzzed, body):
    client, user_id, _ = fuzzed()
    for method, path in (('POST', '/Users'), ('POST', '/Groups'), ('PUT', f'/Users/{user_id}')):
        original = client.get(f'/Users/{user_id}').json
        before = store_rows()
        response = answered(client.request(method, path, raw=json.dumps(body).encode()))

        def restore(method=method, path=path, response=response, original=original):
            if method == 'POST':
                client.request('DELETE', response.headers['Location'].split('/scim/v2', 1)[1], status=204)
            else:
                client.put(path, {key: value for key, value in original.items() if key != 'meta'}, status=200)
        refused_or_restore(client, response, before, restore)

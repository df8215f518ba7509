"""RFC 7644 §3.4.2.2 filters as a table: each row is a filter and the exact set of
resources of a small fixed world (see `world`) it must match, on /Users, on the
server root (`POST /.search` and `GET /`), or refused.

The oracle is the RFC text, quoted above each table, not the server:

- "pr: If the attribute has a non-empty value, or if it contains a non-empty node
  for complex attributes, there is a match." A missing attribute, "" and null
  have no value: no match.
- "eq: The attribute and operator values must be identical for a match." A
  missing attribute is identical to no value given: no match (and so
  "ne: The attribute and operator values are not identical" matches it).
- "not: The filter is a match if the expression evaluates to false." A filter
  is true or false for each resource, never unknown: `not (X)` matches exactly
  the resources `X` does not.
- §3.4.2.1: "A query against a server root indicates that all resources within
  the server SHALL be included, subject to filtering." An attribute a resource
  type lacks is absent on its resources, as a missing value is on one resource.

Every row is asked on both databases (SCIMLITE_TEST_DATABASE_URL).
"""

import json
from urllib.parse import quote

import pytest

from conftest import BASE, USER_SCHEMA, ScimClient, assert_scim_error

ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
OKTA = 'urn:okta:scimlite:1.0:user:custom'
SEARCH = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest'
DECLARED = [{'id': OKTA, 'name': 'OktaCustom', 'attributes': [
    {'name': 'costCenter', 'type': 'string'},
    {'name': 'tags', 'type': 'string', 'multiValued': True},
    {'name': 'badges', 'type': 'complex', 'multiValued': True, 'subAttributes': [
        {'name': 'kind', 'type': 'string'}, {'name': 'value', 'type': 'string'}]},
]}]


@pytest.fixture
def world(tmp_path, make_app):
    """Three users and one group; every attribute d1 lacks, d2 holds empty or
    null where it can, and d3 holds.

    - d1: nothing but userName (active, as every user is by default);
    - d2: title "", nickName "Dee", name.givenName "Dee", locale "en-GB";
    - d3: title "Boss", active false, the enterprise extension (manager m1) and
      the declared Okta extension (costCenter, tags red and blue, a door badge);
    - the group d2-group, with d2 as its member."""
    path = tmp_path / 'extensions.json'
    path.write_text(json.dumps(DECLARED), encoding='utf-8')
    client = ScimClient(make_app(extensions=str(path)))
    ids = {'d1': client.create_user('d1')['id'],
           'd2': client.create_user('d2', title='', nickName='Dee', name={'givenName': 'Dee'},
                                    locale='en-GB')['id'],
           'd3': client.create_user('d3', schemas=[USER_SCHEMA, ENTERPRISE, OKTA], title='Boss', active=False,
                                    **{ENTERPRISE: {'manager': {'value': 'm1'}, 'employeeNumber': '7'},
                                       OKTA: {'costCenter': 'CC-1', 'tags': ['red', 'blue'],
                                              'badges': [{'kind': 'door', 'value': 'B1'}]}})['id']}
    ids['d2-group'] = client.create_group('d2-group', [ids['d2']])['id']
    client.names = {resource_id: name for name, resource_id in ids.items()}
    client.ids = ids
    return client


def users_matching(client, text):
    listing = client.get('/Users?count=100&filter=' + quote(text), status=200).json
    assert listing['totalResults'] == len(listing['Resources'])
    return sorted(client.names[user['id']] for user in listing['Resources'])


# ---------------------------------------------------------------------------
# pr, and not (pr), on every kind of attribute kept in the resource's JSON
# ---------------------------------------------------------------------------

# "pr: If the attribute has a non-empty value, or if it contains a non-empty node
# for complex attributes, there is a match." / "not: The filter is a match if the
# expression evaluates to false."
PRESENT = [
    ('title', ['d3']),                                 # d2's title is ""
    ('nickName', ['d2']),
    ('name', ['d2']),
    ('name.givenName', ['d2']),
    ('locale', ['d2']),
    (f'{ENTERPRISE}:manager', ['d3']),
    (f'{ENTERPRISE}:manager.value', ['d3']),
    (f'{OKTA}:costCenter', ['d3']),
    (f'{OKTA}:tags', ['d3']),
    ('emails', []),
    ('displayName', []),                               # a column, not JSON
    ('active', ['d1', 'd2', 'd3']),                    # every user has a value, true or false
]


@pytest.mark.parametrize('attribute, holders', PRESENT, ids=[row[0] for row in PRESENT])
def test_pr_matches_the_holders_and_not_pr_every_other_user(world, attribute, holders):
    assert users_matching(world, f'{attribute} pr') == holders
    assert users_matching(world, f'not ({attribute} pr)') == sorted({'d1', 'd2', 'd3'} - set(holders))


# "and: The filter is only a match if both expressions evaluate to true."
@pytest.mark.parametrize('text, expected', [
    ('userName eq "d1" and not (nickName pr)', ['d1']),
    ('(active eq true) and not (title pr)', ['d1', 'd2']),   # d1 has no title, d2's is ""
    ('not (title pr) and title eq ""', ['d2']),
])
def test_not_pr_under_and(world, text, expected):
    assert users_matching(world, text) == expected


# ---------------------------------------------------------------------------
# Comparisons and their negations: a missing value never matches eq, co, sw,
# ew, gt, ge, lt or le, so `not (...)` of each matches it, and `ne` matches it.
# ---------------------------------------------------------------------------

# (filter, the users it matches); each is asked as written and under `not (...)`,
# which must match exactly the other users.
COMPARISONS = [
    ('title eq "Boss"', ['d3']),
    ('title ne "Boss"', ['d1', 'd2']),
    ('title co "os"', ['d3']),
    ('title sw "B"', ['d3']),
    ('title ew "s"', ['d3']),
    ('title gt "A"', ['d3']),
    ('title ge ""', ['d2', 'd3']),
    ('title lt "Z"', ['d2', 'd3']),
    ('title le "Boss"', ['d2', 'd3']),
    ('title eq null', ['d1']),                         # null: no value (d2's "" is a value)
    ('nickName eq "dee"', ['d2']),                     # caseExact false
    ('name.givenName sw "D"', ['d2']),
    ('locale ne "en-GB"', ['d1', 'd3']),
    (f'{ENTERPRISE}:manager.value eq "m1"', ['d3']),
    (f'{ENTERPRISE}:employeeNumber gt "6"', ['d3']),
    (f'{OKTA}:costCenter co "CC"', ['d3']),
    ('active eq true', ['d1', 'd2']),
    ('active ne true', ['d3']),
    ('active eq false', ['d3']),
    ('displayName eq "x"', []),
    ('displayName ne "x"', ['d1', 'd2', 'd3']),
    ('emails.value co "@"', []),
    ('emails[type eq "work"]', []),
]


@pytest.mark.parametrize('text, expected', COMPARISONS, ids=[row[0] for row in COMPARISONS])
def test_a_comparison_and_its_negation_split_the_users(world, text, expected):
    assert users_matching(world, text) == expected
    assert users_matching(world, f'not ({text})') == sorted({'d1', 'd2', 'd3'} - set(expected))


# ---------------------------------------------------------------------------
# An unassigned active: removed by a PATCH
# ---------------------------------------------------------------------------

# RFC 7644 §3.5.2.2: "If the target location is a single-value attribute, the attribute
# and its associated value is removed, and the attribute SHALL be considered
# unassigned." Unassigned, active has no value: it is not `eq true` nor `eq false`,
# not present, and every `not` of those matches it.
UNASSIGNED_ACTIVE = [
    ('active eq true', ['d1']),
    ('active eq false', ['d3']),
    ('active ne true', ['d2', 'd3']),
    ('not (active eq true)', ['d2', 'd3']),
    ('not (active eq false)', ['d1', 'd2']),
    ('active pr', ['d1', 'd3']),
    ('not (active pr)', ['d2']),
    ('active eq true or not (active pr)', ['d1', 'd2']),
]


@pytest.mark.parametrize('text, expected', UNASSIGNED_ACTIVE, ids=[row[0] for row in UNASSIGNED_ACTIVE])
def test_an_unassigned_active_has_no_value(world, text, expected):
    world.patch(f'/Users/{world.ids["d2"]}', [{'op': 'remove', 'path': 'active'}], status=200)
    assert 'active' not in world.get(f'/Users/{world.ids["d2"]}', status=200).json
    assert users_matching(world, text) == expected


# ---------------------------------------------------------------------------
# schemas and meta (RFC 7643 §3.1), and extension attributes that are multi-valued
# ---------------------------------------------------------------------------

# RFC 7644 §3.4.2.2 gives `filter=schemas eq "urn:ietf:params:scim:schemas:extension:
# enterprise:2.0:User"` as an example; "If the specified attribute in a filter
# expression is a multi-valued attribute, the filter matches if any of the values
# of the specified attribute match the specified criterion".
SCHEMAS_AND_META = [
    (f'schemas eq "{ENTERPRISE}"', ['d3']),
    (f'schemas eq "{ENTERPRISE.upper()}"', ['d3']),
    (f'schemas eq "{USER_SCHEMA}"', ['d1', 'd2', 'd3']),
    (f'schemas ne "{ENTERPRISE}"', ['d1', 'd2', 'd3']),   # every user has a value that is not it
    ('schemas co "okta"', ['d3']),
    ('schemas sw "urn:ietf:params:scim:schemas:extension"', ['d3']),
    ('schemas ew ":core:2.0:User"', ['d1', 'd2', 'd3']),
    ('schemas pr', ['d1', 'd2', 'd3']),
    ('meta.resourceType eq "User"', ['d1', 'd2', 'd3']),
    ('meta.resourceType eq "user"', ['d1', 'd2', 'd3']),   # caseExact false
    ('meta.resourceType eq "Group"', []),
    ('meta.resourceType ne "Group"', ['d1', 'd2', 'd3']),
    ('meta.resourceType sw "Us"', ['d1', 'd2', 'd3']),
    ('meta.resourceType pr', ['d1', 'd2', 'd3']),
    ('meta.created gt "2000-01-01T00:00:00Z"', ['d1', 'd2', 'd3']),
    ('meta.created lt "2000-01-01T00:00:00Z"', []),
    ('meta.lastModified ge "2000-01-01T00:00:00Z"', ['d1', 'd2', 'd3']),
    ('meta.lastModified le "2000-01-01T00:00:00Z"', []),
    # a declared extension's multi-valued attributes: simple (tags) and complex (badges)
    (f'{OKTA}:tags eq "red"', ['d3']),
    (f'{OKTA}:tags eq "RED"', ['d3']),
    (f'{OKTA}:tags eq "green"', []),
    (f'{OKTA}:tags sw "bl"', ['d3']),
    (f'{OKTA}:badges pr', ['d3']),
    (f'{OKTA}:badges eq "B1"', ['d3']),                  # a complex value compares by its value
    (f'{OKTA}:badges.kind eq "door"', ['d3']),
    (f'{OKTA}:badges[kind eq "door" and value eq "B1"]', ['d3']),
    (f'{OKTA}:badges[kind eq "door" and value eq "B2"]', []),
    (f'{OKTA}:badges[not (kind pr)]', []),
]


@pytest.mark.parametrize('text, expected', SCHEMAS_AND_META, ids=[row[0] for row in SCHEMAS_AND_META])
def test_schemas_meta_and_extension_lists_are_searchable(world, text, expected):
    assert users_matching(world, text) == expected
    assert users_matching(world, f'not ({text})') == sorted({'d1', 'd2', 'd3'} - set(expected))


@pytest.mark.parametrize('text', [
    'schemas.value eq "x"',                      # simple values have no sub-attributes
    f'schemas[value eq "{USER_SCHEMA}"]',
    f'{OKTA}:tags[value eq "red"]',
    'meta.resourceType eq 1',
    'meta.location pr',
])
def test_what_cannot_be_asked_of_schemas_and_meta_is_400(world, text):
    assert_scim_error(world.get('/Users?filter=' + quote(text)), 400, 'invalidFilter')


def test_sort_by_schemas_sorts_by_the_first(world):
    listing = world.get('/Users?sortBy=schemas&sortOrder=descending', status=200).json
    assert len(listing['Resources']) == 3


# ---------------------------------------------------------------------------
# The server root: POST /.search and GET / (RFC 7644 §3.4.2.1, §3.4.3)
# ---------------------------------------------------------------------------

# §3.4.2.1: "A query against a server root indicates that all resources within the
# server SHALL be included, subject to filtering." An attribute a type lacks is
# absent on its resources, so `or`, `not`, `ne` and `pr` treat it as a missing value;
# an attribute no type has is an error, "invalidFilter: The specified filter syntax
# was invalid ... or the specified attribute and filter comparison combination is
# not supported" (§3.12).
ALL = ['d1', 'd2', 'd2-group', 'd3']
ROOT = [
    ('displayName eq "d2-group" or userName eq "nobody"', ['d2-group']),
    ('displayName sw "d2" and not (userName pr)', ['d2-group']),
    ('userName eq "d1" or members pr', ['d1', 'd2-group']),
    ('not (userName pr)', ['d2-group']),
    ('userName pr', ['d1', 'd2', 'd3']),
    ('userName ne "d1"', ['d2', 'd2-group', 'd3']),
    ('userName eq "d1"', ['d1']),
    ('not (members pr)', ['d1', 'd2', 'd3']),
    ('title eq "Boss" or displayName eq "d2-group"', ['d2-group', 'd3']),
    ('emails[type eq "work"] or members pr', ['d2-group']),
    ('not (emails[type eq "work"])', ALL),
    (f'{USER_SCHEMA}:userName eq "d2"', ['d2']),
    (f'{OKTA}:tags eq "red" or displayName pr', ['d2-group', 'd3']),
    ('meta.resourceType eq "Group"', ['d2-group']),
    ('meta.resourceType eq "User"', ['d1', 'd2', 'd3']),
    ('meta.resourceType ne "User" or userName eq "d1"', ['d1', 'd2-group']),
    (f'schemas eq "{ENTERPRISE}"', ['d3']),
    ('schemas ew ":Group"', ['d2-group']),
    ('id pr', ALL),
]


def root_matches(client, text, method):
    if method == 'POST':
        listing = client.post('/.search', {'schemas': [SEARCH], 'filter': text, 'count': 100}, status=200).json
    else:
        listing = client.get('/?count=100&filter=' + quote(text), status=200).json
    assert listing['totalResults'] == len(listing['Resources'])
    return sorted(client.names[resource['id']] for resource in listing['Resources'])


@pytest.mark.parametrize('method', ['POST', 'GET'])
@pytest.mark.parametrize('text, expected', ROOT, ids=[row[0] for row in ROOT])
def test_root_query_treats_a_lacked_attribute_as_absent(world, method, text, expected):
    assert root_matches(world, text, method) == expected
    assert root_matches(world, f'not ({text})', method) == sorted(set(ALL) - set(expected))


@pytest.mark.parametrize('method', ['POST', 'GET'])
@pytest.mark.parametrize('text', ['nosuch eq "x"', 'userName eq "d1" or nosuch pr', 'not (nosuch pr)',
                                  'name.nosuch eq "x"', 'emails[nosuch eq "x"]'])
def test_root_query_on_an_attribute_no_type_has_is_400(world, method, text):
    if method == 'POST':
        response = world.post('/.search', {'schemas': [SEARCH], 'filter': text})
    else:
        response = world.get('/?filter=' + quote(text))
    assert_scim_error(response, 400, 'invalidFilter')


def test_get_at_the_base_path_takes_the_list_parameters(world):
    listing = world.get('/?filter=' + quote('userName pr') + '&sortBy=userName&sortOrder=descending'
                        '&startIndex=2&count=1&attributes=userName', status=200).json
    assert listing['totalResults'] == 3 and listing['startIndex'] == 2
    [found] = listing['Resources']
    assert set(found) == {'schemas', 'id', 'meta', 'userName'} and found['userName'] == 'd2'
    assert world.get('/', status=200).json['totalResults'] == 4   # no filter: everything
    assert world.test_app.get(BASE + '/', status=401).content_type == 'application/scim+json'


@pytest.fixture
def at_root(make_app):
    """The SCIM API at the server root (base_path "/"), where the dashboard has GET / too."""
    client = ScimClient(make_app(base_path='/'))
    client.test_app.post('/Users', json.dumps({'schemas': [USER_SCHEMA], 'userName': 'd1'}),
                         headers={**client.headers, 'Content-Type': 'application/scim+json'}, status=201)
    return client


def test_at_the_root_a_scim_get_is_the_root_query_and_a_browser_gets_the_dashboard(at_root):
    app = at_root.test_app
    headers = at_root.headers
    assert app.get('/?filter=' + quote('userName eq "d1"'), headers=headers).json['totalResults'] == 1
    assert app.get('/', headers=headers).json['totalResults'] == 1            # Accept: application/scim+json
    assert app.get('/?count=5', headers={'Authorization': headers['Authorization']}).json['totalResults'] == 1
    assert app.get('/?count=5', status=401).content_type == 'application/scim+json'
    browser = app.get('/', headers={'Accept': 'text/html,application/xhtml+xml,*/*;q=0.8'}, status=200)
    assert browser.content_type == 'text/html' and 'name="token"' in browser.text

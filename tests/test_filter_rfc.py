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

from conftest import USER_SCHEMA, ScimClient

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

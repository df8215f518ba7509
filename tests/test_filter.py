"""Filters: the grammar in scimfilter (pure parser tests), then /Users and /Groups
filters over HTTP, each checked against the exact set of resources it must match."""

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

import scimfilter as F
from conftest import assert_scim_error

CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User'
ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'


def attr(name, sub=None, urn=None):
    return F.AttrPath(name, sub, urn)


def eq(name, value):
    return F.Compare(attr(name), 'eq', value)


# ===========================================================================
# The parser
# ===========================================================================

@pytest.mark.parametrize('op', F.COMPARISON_OPERATORS)
def test_every_comparison_operator_parses(op):
    assert F.parse_filter(f'userName {op} "x"') == F.Compare(attr('userName'), op, 'x')


@pytest.mark.parametrize('text', ['userName EQ "x"', 'userName Eq "x"', 'userName eQ "x"'])
def test_operators_are_case_insensitive(text):
    assert F.parse_filter(text) == eq('userName', 'x')


def test_present_parses():
    assert F.parse_filter('title pr') == F.Present(attr('title'))


@pytest.mark.parametrize('text, expected', [
    ('a eq 1 or b eq 2 and c eq 3', F.Or(eq('a', 1), F.And(eq('b', 2), eq('c', 3)))),
    ('a eq 1 and b eq 2 or c eq 3', F.Or(F.And(eq('a', 1), eq('b', 2)), eq('c', 3))),
    ('(a eq 1 or b eq 2) and c eq 3', F.And(F.Or(eq('a', 1), eq('b', 2)), eq('c', 3))),
    ('not (a eq 1) and b eq 2', F.And(F.Not(eq('a', 1)), eq('b', 2))),
    ('not (a eq 1) or b eq 2', F.Or(F.Not(eq('a', 1)), eq('b', 2))),
    ('not (a eq 1 or b eq 2)', F.Not(F.Or(eq('a', 1), eq('b', 2)))),
    ('a eq 1 or b eq 2 or c eq 3', F.Or(F.Or(eq('a', 1), eq('b', 2)), eq('c', 3))),
    ('a eq 1 and b eq 2 and c eq 3', F.And(F.And(eq('a', 1), eq('b', 2)), eq('c', 3))),
    ('((a eq 1))', eq('a', 1)),
    ('a eq 1 AND b eq 2 OR c eq 3', F.Or(F.And(eq('a', 1), eq('b', 2)), eq('c', 3))),
    ('NOT (a pr)', F.Not(F.Present(attr('a')))),
    ('  a   eq   1  ', eq('a', 1)),
])
def test_precedence_is_not_then_and_then_or(text, expected):
    assert F.parse_filter(text) == expected


@pytest.mark.parametrize('literal, value', [
    ('"plain"', 'plain'),
    ('""', ''),
    (r'"say \"hi\""', 'say "hi"'),
    (r'"back\\slash"', 'back\\slash'),
    (r'"a\/b"', 'a/b'),
    (r'"tab\there"', 'tab\there'),
    (r'"line\nbreak"', 'line\nbreak'),
    (r'"caf\u00e9"', 'café'),
    ('"café ünïcode"', 'café ünïcode'),
    ('"and or not ) ( ] ["', 'and or not ) ( ] ['),
    ('0', 0),
    ('42', 42),
    ('-7', -7),
    ('3.25', 3.25),
    ('1e3', 1000.0),
    ('-2.5E-1', -0.25),
    ('true', True),
    ('false', False),
    ('null', None),
    ('True', True),
    ('FALSE', False),
])
def test_literals_parse_to_their_values(literal, value):
    parsed = F.parse_filter(f'x eq {literal}')
    assert parsed.value == value
    assert type(parsed.value) is type(value)


@pytest.mark.parametrize('text, path', [
    ('userName eq "x"', attr('userName')),
    ('name.givenName eq "x"', attr('name', 'givenName')),
    ('meta.lastModified eq "x"', attr('meta', 'lastModified')),
    (f'{CORE_USER}:userName eq "x"', attr('userName', urn=CORE_USER)),
    (f'{CORE_USER}:name.familyName eq "x"', attr('name', 'familyName', CORE_USER)),
    (f'{ENTERPRISE}:department eq "x"', attr('department', urn=ENTERPRISE)),
    (f'{ENTERPRISE}:manager.value eq "x"', attr('manager', 'value', ENTERPRISE)),
    ('$ref eq "x"', attr('$ref')),
])
def test_attribute_paths_with_sub_attributes_and_urns(text, path):
    assert F.parse_filter(text).path == path


@pytest.mark.parametrize('text, expected', [
    ('emails[type eq "work"]', F.ValuePath(attr('emails'), eq('type', 'work'))),
    ('emails[type eq "work" and value co "@example.com"]',
     F.ValuePath(attr('emails'), F.And(eq('type', 'work'), F.Compare(attr('value'), 'co', '@example.com')))),
    ('emails[not (type eq "work")]', F.ValuePath(attr('emails'), F.Not(eq('type', 'work')))),
    ('emails[type eq "work"].value eq "x"',
     F.ValuePath(attr('emails'), F.And(eq('type', 'work'), eq('value', 'x')))),
    ('emails[type eq "work"] or userName eq "x"',
     F.Or(F.ValuePath(attr('emails'), eq('type', 'work')), eq('userName', 'x'))),
    ('members[value eq "abc"]', F.ValuePath(attr('members'), eq('value', 'abc'))),
    (f'{CORE_USER}:emails[value pr]', F.ValuePath(attr('emails', urn=CORE_USER), F.Present(attr('value')))),
])
def test_value_paths(text, expected):
    assert F.parse_filter(text) == expected


@pytest.mark.parametrize('text, expected', [
    ('displayName', F.PatchPath(attr('displayName'))),
    ('name.givenName', F.PatchPath(attr('name', 'givenName'))),
    ('members', F.PatchPath(attr('members'))),
    ('members[value eq "abc"]', F.PatchPath(attr('members'), eq('value', 'abc'))),
    ('members[value eq "a" or value eq "b"]', F.PatchPath(attr('members'), F.Or(eq('value', 'a'), eq('value', 'b')))),
    ('emails[type eq "work"].value', F.PatchPath(attr('emails'), eq('type', 'work'), 'value')),
    (f'{ENTERPRISE}:department', F.PatchPath(attr('department', urn=ENTERPRISE))),
    (f'{ENTERPRISE}:manager.value', F.PatchPath(attr('manager', 'value', ENTERPRISE))),
])
def test_patch_paths(text, expected):
    assert F.parse_path(text) == expected


@pytest.mark.parametrize('text, position', [
    ('userName eq', 11),
    ('userName xx "a"', 9),
    ('userName eq "a" and', 19),
    ('(userName eq "a"', 16),
    ('userName eq "a")', 15),
    ("userName eq 'a'", 12),
    ('userName eq "unterminated', 12),
    ('not userName eq "a"', 4),
    ('emails[type eq "work"', 21),
    ('name.givenName[type eq "x"]', 14),
    ('userName eq "a" userName eq "b"', 16),
    ('userName pr "x"', 12),
    ('and eq "a"', 0),
    ('userName eq bob', 12),
    (r'userName eq "bad \x escape"', 12),
    ('userName eq 01', 12),
    ('userName eq "a" or ()', 20),
    ('[type eq "x"]', 0),
    ('a.b.c eq "x"', 0),
    ('x:y eq "a"', 0),
    ('userName = "a"', 9),
    ('userName eq "x" or 1=1 --', 20),
])
def test_bad_syntax_raises_with_the_position(text, position):
    with pytest.raises(F.FilterSyntaxError) as raised:
        F.parse_filter(text)
    assert f'position {position}' in str(raised.value)


@pytest.mark.parametrize('text', ['', '   ', None, 42])
def test_empty_or_non_text_filter_raises(text):
    with pytest.raises(F.FilterSyntaxError):
        F.parse_filter(text)


@pytest.mark.parametrize('text', [
    '', 'members[', 'members[value eq "a"] x', 'emails[type eq "work"]value', 'name.givenName.x',
    'members[value eq "a"].', 'displayName eq "x"', '"quoted"',
])
def test_bad_patch_path_raises(text):
    with pytest.raises(F.FilterSyntaxError):
        F.parse_path(text)


def test_filter_at_the_length_limit_parses():
    text = 'userName eq "' + 'x' * (F.MAX_FILTER_LENGTH - len('userName eq ""')) + '"'
    assert len(text) == F.MAX_FILTER_LENGTH
    assert F.parse_filter(text).op == 'eq'


@pytest.mark.parametrize('parse', [F.parse_filter, F.parse_path])
def test_filter_over_the_length_limit_raises(parse):
    text = 'userName eq "' + 'x' * F.MAX_FILTER_LENGTH + '"'
    with pytest.raises(F.FilterSyntaxError):
        parse(text)


def nested(depth, kind):
    if kind == 'parens':
        return '(' * depth + 'a pr' + ')' * depth
    if kind == 'not':
        return 'not (' * depth + 'a pr' + ')' * depth
    return 'a[' * depth + 'b pr' + ']' * depth


@pytest.mark.parametrize('kind', ['parens', 'not', 'brackets'])
def test_nesting_up_to_the_depth_limit_parses(kind):
    assert F.parse_filter(nested(F.MAX_DEPTH, kind))


@pytest.mark.parametrize('depth', [F.MAX_DEPTH + 1, 200, 1000, 2000])
@pytest.mark.parametrize('kind', ['parens', 'not', 'brackets'])
def test_nesting_beyond_the_depth_limit_raises_syntax_error_not_recursion_error(kind, depth):
    text = nested(depth, kind)
    with pytest.raises(F.FilterSyntaxError):
        F.parse_filter(text)
    if kind == 'brackets':
        with pytest.raises(F.FilterSyntaxError):
            F.parse_path(text)


@pytest.mark.parametrize('joiner', [' or ', ' and '])
def test_long_flat_chains_parse_without_recursion(joiner):
    text = joiner.join(['a pr'] * (F.MAX_FILTER_LENGTH // (len(joiner) + 4)))
    assert len(text) <= F.MAX_FILTER_LENGTH
    assert F.parse_filter(text)


# ===========================================================================
# Over HTTP: a small directory, and the exact set each filter must match
# ===========================================================================

QUOTE_USER = 'e"q\\uote@example.com'   # a double quote and a backslash
OKTA = 'urn:okta:custom:1.0:User'
USERS = {
    'A': dict(userName='Alice@Example.com', externalId='ExtA', displayName='Alice Liddell',
              name={'givenName': 'Alice', 'familyName': 'Liddell'},
              emails=[{'value': 'alice@work.example', 'type': 'work', 'primary': True},
                      {'value': 'alice@home.example', 'type': 'home'}],
              schemas=[CORE_USER, ENTERPRISE], **{ENTERPRISE: {'department': 'Wonderland'}}),
    'B': dict(userName='bob@example.com', externalId='extB', displayName='Bob Builder', active=False,
              name={'givenName': 'Bob'}, emails=[{'value': 'bob@work.example', 'type': 'work'}],
              schemas=[CORE_USER, ENTERPRISE], **{ENTERPRISE: {'department': 'Construction'}}),
    'C': dict(userName='carol@other.org', schemas=[CORE_USER, OKTA], **{OKTA: {'costCode': 'X1'}}),
    'D': dict(userName='dan_1%@example.com', displayName='Dan'),
    'E': dict(userName=QUOTE_USER),
}


@pytest.fixture
def directory(client):
    """Users A-E, groups G1 = {A, B}, G2 = {B}, G3 = {}; A is modified last.

    Returns names -> ids, plus '<name>.created' / '<name>.lastModified' times."""
    found = {}
    for name, attributes in USERS.items():
        user = client.create_user(attributes['userName'],
                                  **{k: v for k, v in attributes.items() if k != 'userName'})
        found[name] = user['id']
        found[f'{name}.created'] = user['meta']['created']
    for name, members in (('G1', 'AB'), ('G2', 'B'), ('G3', '')):
        found[name] = client.create_group(f'Group {name}', [found[m] for m in members])['id']
    client.patch(f'/Users/{found["A"]}', [{'op': 'replace', 'path': 'title', 'value': 'Boss'}], status=200)
    for name in USERS:
        found[f'{name}.lastModified'] = client.get(f'/Users/{found[name]}').json['meta']['lastModified']
    return found


def search(client, directory, text, resource='Users'):
    """The names of the resources `text` matches (after filling {A}, {G1}... from `directory`)."""
    text = text.format(**{key.replace('.', '_'): value for key, value in directory.items()})
    response = client.get(f'/{resource}?filter={quote(text)}&count=1000')
    assert response.status_int == 200, (text, response.body)
    listing = response.json
    names = {key for key, value in directory.items() if '.' not in key}
    by_id = {directory[name]: name for name in names}
    matched = {by_id[resource['id']] for resource in listing.get('Resources', [])}
    assert listing['totalResults'] == len(matched)
    return matched


def names(letters):
    return set(letters.split()) if ' ' in letters else set(letters)


@pytest.mark.parametrize('text, expected', [
    ('userName eq "alice@example.com"', 'A'),
    ('userName eq "ALICE@EXAMPLE.COM"', 'A'),
    ('userName eq "Alice@Example.com"', 'A'),
    ('userName eq "alice"', ''),
    ('userName ne "BOB@example.com"', 'ACDE'),
    ('userName co "example"', 'ABDE'),
    ('userName co "EXAMPLE.COM"', 'ABDE'),
    ('userName co "other"', 'C'),
    ('userName co ""', 'ABCDE'),
    ('userName sw "b"', 'B'),
    ('userName sw "AL"', 'A'),
    ('userName sw "example"', ''),
    ('userName ew ".org"', 'C'),
    ('userName ew "@EXAMPLE.com"', 'ABDE'),
    ('userName ew "alice@example.com"', 'A'),
    ('userName gt "carol@other.org"', 'DE'),
    ('userName gt "CAROL@OTHER.ORG"', 'DE'),
    ('userName ge "carol@other.org"', 'CDE'),
    ('userName lt "bob@example.com"', 'A'),
    ('userName le "BOB@example.com"', 'AB'),
    ('userName pr', 'ABCDE'),
    ('USERNAME eq "bob@example.com"', 'B'),
    ('username EQ "bob@example.com"', 'B'),
    (f'{CORE_USER}:userName eq "bob@example.com"', 'B'),
])
def test_user_name_operators(client, directory, text, expected):
    assert search(client, directory, text) == names(expected)


@pytest.mark.parametrize('text, expected', [
    ('externalId eq "ExtA"', 'A'),
    ('externalId eq "exta"', ''),
    ('externalId eq "EXTB"', ''),
    ('externalId eq "extB"', 'B'),
    ('externalId sw "Ext"', 'A'),
    ('externalId co "xt"', 'AB'),
    ('externalId ne "ExtA"', 'BCDE'),
    ('externalId pr', 'AB'),
    ('not (externalId pr)', 'CDE'),
    ('not (externalId eq "ExtA")', 'BCDE'),
])
def test_external_id_is_case_exact(client, directory, text, expected):
    assert search(client, directory, text) == names(expected)


@pytest.mark.parametrize('text, expected', [
    ('id eq "{A}"', 'A'),
    ('id ne "{A}"', 'BCDE'),
    ('id eq "{A}" or id eq "{C}"', 'AC'),
    ('id eq "no-such-id"', ''),
    ('displayName eq "bob builder"', 'B'),
    ('displayName co "LI"', 'A'),
    ('displayName sw "d"', 'D'),
    ('displayName pr', 'ABD'),
    ('active eq true', 'ACDE'),
    ('active eq false', 'B'),
    ('active ne true', 'B'),
    ('active eq True', 'ACDE'),
    ('active pr', 'ABCDE'),
    ('meta.created gt "{C_created}"', 'DE'),
    ('meta.created ge "{C_created}"', 'CDE'),
    ('meta.created lt "{C_created}"', 'AB'),
    ('meta.created le "{C_created}"', 'ABC'),
    ('meta.created eq "{C_created}"', 'C'),
    ('meta.lastModified gt "{E_lastModified}"', 'A'),
    ('meta.lastModified le "{E_lastModified}"', 'BCDE'),
    ('meta.created pr', 'ABCDE'),
])
def test_other_searchable_user_attributes(client, directory, text, expected):
    assert search(client, directory, text) == names(expected)


def in_other_offset(stamp):
    moment = datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone(timedelta(hours=2))).isoformat()


def test_datetime_filter_understands_any_utc_offset(client, directory):
    shifted = in_other_offset(directory['C.created'])
    assert '+02:00' in shifted
    assert search(client, directory, f'meta.created gt "{shifted}"') == names('DE')
    assert search(client, directory, f'meta.created eq "{shifted}"') == names('C')


@pytest.mark.parametrize('text, expected', [
    ('groups eq "{G1}"', 'AB'),
    ('groups eq "{G2}"', 'B'),
    ('groups eq "{G3}"', ''),
    ('groups.value eq "{G2}"', 'B'),
    ('groups[value eq "{G1}"]', 'AB'),
    ('groups ne "{G2}"', 'ACDE'),
    ('groups pr', 'AB'),
    ('not (groups pr)', 'CDE'),
    ('groups eq "{G1}" and active eq true', 'A'),
    ('groups eq "{G2}" or userName sw "c"', 'BC'),
])
def test_users_by_group_membership(client, directory, text, expected):
    assert search(client, directory, text) == names(expected)


@pytest.mark.parametrize('text, expected', [
    ('members eq "{A}"', 'G1'),
    ('members eq "{B}"', 'G1 G2'),
    ('members eq "{C}"', ''),
    ('members.value eq "{B}"', 'G1 G2'),
    ('members[value eq "{B}"]', 'G1 G2'),
    ('members pr', 'G1 G2'),
    ('not (members pr)', 'G3'),
    ('id eq "{G1}" and members eq "{A}"', 'G1'),
    ('id eq "{G2}" and members eq "{A}"', ''),
    ('id eq "{G2}" and members eq "{B}"', 'G2'),
    ('displayName eq "group g2"', 'G2'),
    ('displayName sw "GROUP"', 'G1 G2 G3'),
])
def test_groups_by_member_and_entra_membership_check(client, directory, text, expected):
    assert search(client, directory, text, 'Groups') == (set(expected.split()) if expected else set())


@pytest.mark.parametrize('text, expected', [
    ('userName sw "a" or userName sw "b"', 'AB'),
    ('active eq true and userName ew ".com"', 'ADE'),
    ('not (active eq true)', 'B'),
    ('not (userName co "example")', 'C'),
    ('userName sw "a" or userName sw "b" and active eq false', 'AB'),
    ('(userName sw "a" or userName sw "b") and active eq false', 'B'),
    ('userName sw "b" and active eq false or userName sw "c"', 'BC'),
    ('not (userName sw "a" or userName sw "b")', 'CDE'),
    ('not (not (active eq false))', 'B'),
    ('userName eq "x" OR userName eq "bob@example.com"', 'B'),
    ('active eq false AND userName pr', 'B'),
    ('not (displayName pr) and not (externalId pr)', 'CE'),
    ('displayName pr or externalId pr', 'ABD'),
])
def test_logical_combinations(client, directory, text, expected):
    assert search(client, directory, text) == names(expected)


@pytest.mark.parametrize('text, expected', [
    ('userName co "%"', 'D'),
    ('userName co "_"', 'D'),
    ('userName co "n_1%"', 'D'),
    ('userName co "%@"', 'D'),
    ('userName co "n%1"', ''),
    ('userName co "a_i"', ''),
    ('userName sw "%"', ''),
    ('userName sw "_"', ''),
    ('userName ew "%"', ''),
    ('userName eq "%"', ''),
    ('userName eq "_ob@example.com"', ''),
    ('userName sw "%@example.com"', ''),
    (r'userName co "\""', 'E'),
    (r'userName co "\\"', 'E'),
    (f'userName eq {json.dumps(QUOTE_USER)}', 'E'),
    (r'userName eq "x\" or \"1\"=\"1"', ''),
    (r'userName eq "bob@example.com\" or userName pr or \""', ''),
    ('userName eq "x\' OR \'1\'=\'1"', ''),
    ('userName eq "x\' OR 1=1 --"', ''),
    ('userName eq "a\'; DROP TABLE users; --"', ''),
    ('userName co "\')) OR ((\'1\'=\'1"', ''),
])
def test_injection_and_wildcards_never_match_other_rows(client, directory, text, expected):
    assert search(client, directory, text) == names(expected)
    assert client.get('/Users').json['totalResults'] == len(USERS)


@pytest.mark.parametrize('text', [
    'userName eq "x" or 1=1 --',
    'userName eq "x") or (1 eq 1',
    'userName eq "x" or "1"="1"',
    "userName eq 'x' or '1'='1'",
    'userName eq "x"; DROP TABLE users',
    'userName like "%"',
])
def test_injection_that_is_not_a_filter_is_400_invalid_filter(client, directory, text):
    assert_scim_error(client.get(f'/Users?filter={quote(text)}'), 400, 'invalidFilter')
    assert client.get('/Users').json['totalResults'] == len(USERS)


@pytest.mark.parametrize('text', [
    'nosuch pr',
    'nosuch eq "x"',
    'emails.nosuch eq "x"',
    'emails[nosuch eq "x"]',
    'name.nosuch eq "x"',
    'title.sub eq "x"',
    'meta.nosuch eq "x"',
    f'{ENTERPRISE}:nosuch eq "x"',
    'members eq "x"',
    'groups co "x"',
    'meta.created co "2020"',
    'meta.created gt "yesterday"',
    'active gt true',
    'active eq "yes"',   # "true" and "false" compare as booleans (Entra); other strings do not
    'userName eq 5',
    'userName eq true',
    'userName gt null',
    'userName eq "a" or nosuch eq "b"',
    'not (nosuch pr)',
])
def test_unsupported_user_filter_is_400_invalid_filter(client, directory, text):
    assert_scim_error(client.get(f'/Users?filter={quote(text)}'), 400, 'invalidFilter')


@pytest.mark.parametrize('text', [
    'userName eq "x"',
    'members co "x"',
    'groups eq "x"',
    'active eq true',
    'members.nosuch eq "x"',
])
def test_unsupported_group_filter_is_400_invalid_filter(client, directory, text):
    assert_scim_error(client.get(f'/Groups?filter={quote(text)}'), 400, 'invalidFilter')


@pytest.mark.parametrize('text, expected', [
    ('title eq "boss"', 'A'),
    ('title pr', 'A'),
    ('name.givenName eq "alice"', 'A'),
    ('name.givenName sw "B"', 'B'),
    ('name.familyName pr', 'A'),
    ('NAME.GIVENNAME eq "Bob"', 'B'),
    ('emails eq "bob@work.example"', 'B'),
    ('emails.value co "WORK.example"', 'AB'),
    ('emails pr', 'AB'),
    ('not (emails pr)', 'CDE'),
    ('emails[type eq "work"]', 'AB'),
    ('emails[type eq "home"]', 'A'),
    ('EMAILS[TYPE eq "home"]', 'A'),
    ('emails[type eq "work" and value sw "alice"]', 'A'),
    ('emails[type eq "home" and value sw "bob"]', ''),
    ('emails[type eq "home"].value eq "alice@work.example"', ''),
    ('emails[type eq "work"].value eq "bob@work.example"', 'B'),
    ('emails[primary eq true]', 'A'),
    (f'{ENTERPRISE}:department eq "wonderland"', 'A'),
    (f'{ENTERPRISE}:department pr', 'AB'),
    (f'{OKTA}:costCode eq "X1"', 'C'),
])
def test_attributes_kept_in_the_resource_json(client, directory, text, expected):
    assert search(client, directory, text) == names(expected)


@pytest.mark.parametrize('text, expected', [
    ('members.display eq "bob@example.com"', 'G1 G2'),
    ('members.display eq "BOB@EXAMPLE.COM"', 'G1 G2'),
    ('members[display sw "alice"]', {'G1'}),
    ('members.display ne "bob@example.com"', {'G3'}),
    ('members.display pr', 'G1 G2'),
    ('not (members pr)', {'G3'}),
])
def test_member_display_is_the_members_user_name(client, directory, text, expected):
    """`members.display` is the member's userName, read through the link rows."""
    expected = expected if isinstance(expected, set) else names(expected)
    assert search(client, directory, text, 'Groups') == expected


@pytest.mark.parametrize('text, expected', [
    ('groups.display eq "group g2"', 'B'),
    ('groups[display co "G"]', 'AB'),
    ('groups.display ne "Group G1"', 'CDE'),
])
def test_group_display_is_the_groups_display_name(client, directory, text, expected):
    assert search(client, directory, text) == names(expected)


def test_attribute_of_another_resource_schema_is_not_searched(client, directory):
    """`urn:...:core:2.0:Group:displayName` names a Group attribute: on /Users it must
    not quietly mean the user's displayName."""
    text = 'urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Bob Builder"'
    response = client.get(f'/Users?filter={quote(text)}')
    if response.status_int == 400:
        assert_scim_error(response, 400, 'invalidFilter')
    else:
        assert response.status_int == 200
        assert response.json['totalResults'] == 0


@pytest.mark.parametrize('text', [
    'userName eq',
    'userName xx "a"',
    'userName eq "a" and',
    '(userName eq "a"',
    'userName eq "a")',
    'not userName eq "a"',
    'emails[type eq "work"',
    'userName = "a"',
    'userName eq "unterminated',
    '(' * 1000 + 'userName pr' + ')' * 1000,
    'not (' * 40 + 'userName pr' + ')' * 40,
    'userName eq "' + 'x' * 5000 + '"',
])
def test_syntax_error_is_400_invalid_filter(client, directory, text):
    error = assert_scim_error(client.get(f'/Users?filter={quote(text)}'), 400, 'invalidFilter')
    assert 'Traceback' not in error['detail']


@pytest.mark.parametrize('joiner, term', [(' or ', 'userName eq "nobody"'), (' and ', 'userName pr')])
def test_long_filter_within_the_length_limit_is_answered_not_500(client, directory, joiner, term):
    """A flat chain of or/and as long as the length limit allows: answered, or refused
    as a bad filter, but never an internal error."""
    text = joiner.join([term] * ((F.MAX_FILTER_LENGTH + len(joiner)) // (len(term) + len(joiner))))
    assert len(text) <= F.MAX_FILTER_LENGTH
    response = client.get(f'/Users?filter={quote(text)}')
    if response.status_int == 400:
        assert_scim_error(response, 400, 'invalidFilter')
    else:
        assert response.status_int == 200, response.body
        assert response.json['totalResults'] == (0 if joiner == ' or ' else len(USERS))


def test_deep_nesting_within_the_depth_limit_is_answered(client, directory):
    text = 'not (' * F.MAX_DEPTH + 'userName eq "bob@example.com"' + ')' * F.MAX_DEPTH
    expected = 'B' if F.MAX_DEPTH % 2 == 0 else 'ACDE'
    assert search(client, directory, text) == names(expected)


# ---------------------------------------------------------------------------
# Text beyond ASCII, numbers beyond the database, attributes not stored
# ---------------------------------------------------------------------------

def test_non_ascii_filter_values_match(client):
    """Okta's lookup before create must find josé, or the create that follows is a 409."""
    user = client.create_user('josé@exämple.com', displayName='ÉCOLE Ærø')
    for text in ('userName eq "josé@exämple.com"', 'userName eq "JOSÉ@EXÄMPLE.COM"',
                 'displayName eq "école ærø"', 'displayName eq "ÉCOLE ÆRØ"', 'displayName co "cole æ"'):
        listing = client.get(f'/Users?filter={quote(text)}', status=200).json
        assert [found['id'] for found in listing['Resources']] == [user['id']], text


@pytest.mark.parametrize('text', [
    'title gt 99999999999999999999', 'title lt -99999999999999999999', 'title eq 1e999', 'title eq -1e999',
])
def test_numbers_beyond_the_database_are_400_invalid_filter(client, text):
    assert_scim_error(client.get(f'/Users?filter={quote(text)}'), 400, 'invalidFilter')


def test_presence_of_a_multi_valued_attribute_without_a_value_sub_attribute(client):
    """addresses have no `value`: `addresses pr` asks whether there is any address."""
    with_address = client.create_user('home@example.com', addresses=[{'locality': 'Lyon', 'type': 'home'}])
    client.create_user('nowhere@example.com')
    listing = client.get(f'/Users?filter={quote("addresses pr")}', status=200).json
    assert [found['id'] for found in listing['Resources']] == [with_address['id']]
    text = 'addresses.locality eq "lyon"'
    listing = client.get(f'/Users?filter={quote(text)}', status=200).json
    assert [found['id'] for found in listing['Resources']] == [with_address['id']]


@pytest.mark.parametrize('text', ['meta.location pr', 'meta.version eq "W/\\"1\\""'])
def test_meta_attributes_that_are_not_stored_are_400_invalid_filter(client, text):
    assert_scim_error(client.get(f'/Users?filter={quote(text)}'), 400, 'invalidFilter')


def test_invalid_utf8_in_a_query_parameter_is_400(client):
    response = client.test_app.get('/scim/v2/Users?filter=userName%20eq%20%22%FF%22',
                                   headers=client.headers, expect_errors=True)
    assert_scim_error(response, 400, 'invalidValue')


# ---------------------------------------------------------------------------
# Every operator and combinator on groups too
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('displayName eq "group g1"', 'G1'),
    ('displayName ne "Group G1"', 'G2 G3'),
    ('displayName co "OUP G"', 'G1 G2 G3'),
    ('displayName sw "group g"', 'G1 G2 G3'),
    ('displayName ew "g2"', 'G2'),
    ('displayName gt "Group G1"', 'G2 G3'),
    ('displayName ge "Group G2"', 'G2 G3'),
    ('displayName lt "Group G2"', 'G1'),
    ('displayName le "Group G2"', 'G1 G2'),
    ('displayName pr', 'G1 G2 G3'),
    ('id eq "{G2}"', 'G2'),
    ('members eq "{B}"', 'G1 G2'),
    ('members.value eq "{A}"', 'G1'),
    ('members[value eq "{A}"]', 'G1'),
    ('members pr', 'G1 G2'),
    ('displayName ew "1" or displayName ew "3"', 'G1 G3'),
    ('members eq "{B}" and not (displayName ew "2")', 'G1'),
    ('(displayName ew "1" or displayName ew "2") and members eq "{A}"', 'G1'),
    ('meta.created ge "{G1_created}"', 'G1 G2 G3'),
    ('meta.lastModified lt "2000-01-01T00:00:00Z"', ''),
    ('externalId pr', ''),
])
def test_group_filters(client, directory, text, expected):
    for name in ('G1',):
        directory.setdefault(f'{name}.created', client.get(f'/Groups/{directory[name]}').json['meta']['created'])
    assert search(client, directory, text, 'Groups') == (set(expected.split()) if expected else set())


@pytest.mark.parametrize('text', ['displayName eq "slot:nope" or userName pr',
                                  'displayName eq "slot:offset"', 'displayName eq "offset"'])
def test_filter_values_that_look_like_internal_placeholders_are_only_values(client, text):
    user = client.create_user('slot@example.com', displayName='slot:offset' if 'slot' in text else 'offset')
    for query in (f'filter={quote(text)}', f'filter={quote(text)}&sortBy=userName'):
        listing = client.get(f'/Users?{query}', status=200).json
        assert [found['id'] for found in listing['Resources']] == [user['id']]
        assert listing['totalResults'] == 1


def parsed_by_the_full_parser(text):
    try:
        return F._Parser(text).parse_filter()
    except F.FilterSyntaxError as error:
        return type(error)


@pytest.mark.parametrize('text', [
    'userName eq "ann@example.com"', '  USERNAME EQ "a\\u00e9"  ', 'name.givenName sw "x"',
    'externalId eq ""', 'userName eq "a\\"b\\\\c"', 'emails.value co "@x"', '$ref eq "x"',
    'not eq "x"', 'and eq "x"', 'OR eq "x"', 'not.x eq "x"', 'userName eq"x"', 'userName\teq\t"x"',
    'ſerName eq "x"', 'userName ſw "x"', 'userNamé eq "x"', 'a-b eq "x"', '_a eq "x"',
    'userName eq "a"b"', 'userName eq "\x01"', 'userName eq "\\x"', 'userName eq "\\ud800"',
    'a.b.c eq "x"', 'urn:x:y:a eq "x"', 'userName pr', 'userName eq 1', 'userName eq true',
    'userName eq "x" and a pr', 'emails[type eq "w"]', 'userName xx "x"',
])
def test_the_fast_path_for_one_string_comparison_parses_as_the_full_parser_does(text):
    """parse_filter reads `attr op "value"` without the tokenizer: the same AST or the same refusal."""
    expected = parsed_by_the_full_parser(text)
    if isinstance(expected, type):
        with pytest.raises(expected):
            F.parse_filter(text)
    else:
        assert F.parse_filter(text) == expected


def test_the_fast_path_is_taken_for_the_lookup_idps_send():
    assert F._SIMPLE_COMPARISON.fullmatch('userName eq "ann@example.com"')
    assert F._SIMPLE_COMPARISON.fullmatch('externalId eq "00u1"')


def test_query_parameters_are_form_decoded_as_utf8(client):
    """`+` is a space, %C3%A9 is é, and a repeated parameter keeps its last value (as Bottle's)."""
    zoe = client.create_user('zoé@example.com')
    client.create_user('ann@example.com')
    listing = client.get('/Users?filter=userName+eq+%22ZO%C3%89@example.com%22', status=200).json
    assert [found['id'] for found in listing['Resources']] == [zoe['id']]
    listing = client.get('/Users?count=0&count=1&filter=userName+pr', status=200).json
    assert (listing['totalResults'], listing['itemsPerPage']) == (2, 1)


@pytest.mark.parametrize('text', [r'userName eq "bob@example.com\u0000"', r'userName co "\u0000"',
                                  r'emails[value eq "\u0000"]', 'userName eq "a\x00"'])
def test_a_nul_character_in_a_filter_is_400_invalid_filter(client, text):
    """Nothing stored can hold a NUL (PostgreSQL's text cannot): a filter naming one is refused."""
    client.create_user('bob@example.com')
    assert_scim_error(client.get(f'/Users?filter={quote(text)}'), 400, 'invalidFilter')

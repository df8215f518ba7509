"""Workshop seats over SCIM: each seat's token opens its own data, and nothing else.

A room of three seats and the instructor (seat 0, the server's own token), each
holding the same users and groups (the same userName, the same group names), made
in turns so that their times interleave. Every route, every filter form, sorting,
paging, .search at every level, Bulk, member references and ETags are asked from
each seat: each answer holds that seat's resources only, and a request naming
another seat's resource finds nothing and changes nothing. Then the milestones:
recorded Okta and Entra flows (tests/idp) replayed into several seats at once, each
seat's progress as its flow reaches it. The CLI, restarts and concurrent creates
against real server processes are in tests/test_seat_processes.py.
"""

import base64
import json
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
import webtest

import store
from conftest import (BASE, GROUP_SCHEMA, PATCH_SCHEMA, TOKEN, USER_SCHEMA, ScimClient, assert_scim_error,
                      store_rows)
from test_idp_replay import WsgiTransport, basic, replay

SEATS = 3            # seats 1 and 2 hold data; seat 3 sends nothing
FILLED = (0, 1, 2)   # the instructor's data set and two seats'


# ---------------------------------------------------------------------------
# The room: the same resources in seats 0, 1 and 2
# ---------------------------------------------------------------------------

def seat_tokens():
    """{seat number: token} of every seat, as the instructor's cards show them."""
    return {seat['number']: seat['token'] for seat in store.seats()}


def seat_client(app, token):
    client = ScimClient(app)
    client.headers['Authorization'] = f'Bearer {token}'
    return client


class Room:
    """An app with seats: `clients[n]` speaks with seat n's token (0: the server's
    own), `made[n][name]` is what seat n's POST of resource `name` answered."""

    def __init__(self, app):
        self.app = app
        self.tokens = seat_tokens()
        self.clients = {0: ScimClient(app), **{n: seat_client(app, token) for n, token in self.tokens.items()}}
        self.made = {n: {} for n in FILLED}
        # In turns (ann in every seat, then bob in every seat, ...): a time comparison
        # that leaked across seats would match another seat's resources.
        for name, make in (('ann', self.ann), ('bob', self.bob), ('team', self.team), ('others', self.others)):
            for n in FILLED:
                self.made[n][name] = make(self.clients[n], n)

    @staticmethod
    def ann(client, seat):
        return client.create_user('ann@example.com', name={'givenName': 'Ann', 'familyName': 'Ng'},
                                  displayName='Ann Ng', title='Engineer', externalId='ext-ann',
                                  emails=[{'value': 'ann@example.com', 'type': 'work', 'primary': True},
                                          {'value': 'ann@home.example', 'type': 'home'}])

    @staticmethod
    def bob(client, seat):
        return client.create_user('bob@example.com', name={'givenName': 'Bob', 'familyName': 'Berg'},
                                  externalId='ext-bob', emails=[{'value': 'bob@example.com', 'type': 'home'}])

    def team(self, client, seat):
        return client.create_group('Team', members=[self.made[seat]['ann']['id']], externalId='ext-team')

    @staticmethod
    def others(client, seat):
        return client.create_group('Others', externalId='ext-others')

    def ids(self, seat, names):
        return {self.made[seat][name]['id'] for name in names.split()}

    def read_back(self, seat):
        """Everything seat `seat` holds, as its own client reads it."""
        return {name: self.clients[seat].get(f'/{"Users" if name in ("ann", "bob") else "Groups"}/{made["id"]}',
                                             status=200).json
                for name, made in self.made[seat].items()}


@pytest.fixture
def room(make_app):
    return Room(make_app(seats=SEATS))


def other_seat(seat):
    return FILLED[(FILLED.index(seat) + 1) % len(FILLED)]


def fill_in(template, room, seat):
    """A filter template with {own.ann}, {other.team}, {own.ann.created} ... filled in for `seat`."""
    def value(owner, name, field=None):
        made = room.made[seat if owner == 'own' else other_seat(seat)][name]
        return made['meta'][field] if field else made['id']
    out = template
    for owner in ('own', 'other'):
        for name in ('ann', 'bob', 'team', 'others'):
            for field in ('created', 'lastModified'):
                out = out.replace(f'{{{owner}.{name}.{field}}}', value(owner, name, field))
            out = out.replace(f'{{{owner}.{name}}}', value(owner, name))
    assert '{' not in out, out
    return out


def test_the_room_holds_the_same_names_in_three_data_sets(room):
    """The setup the isolation tests stand on: four resources in each of seats 0, 1, 2,
    all ids different, and seat 3 empty."""
    ids = [made['id'] for seat in FILLED for made in room.made[seat].values()]
    assert len(set(ids)) == len(ids) == 12
    assert sorted(room.tokens) == [1, 2, 3]
    for seat in FILLED:
        assert room.clients[seat].get('/Users', status=200).json['totalResults'] == 2
        assert room.clients[seat].get('/Groups', status=200).json['totalResults'] == 2
    assert room.clients[3].get('/Users', status=200).json['totalResults'] == 0
    assert room.clients[3].get('/Groups', status=200).json['totalResults'] == 0


# ---------------------------------------------------------------------------
# Another seat's id: 404, and nothing changed
# ---------------------------------------------------------------------------

USER_PUT = {'schemas': [USER_SCHEMA], 'userName': 'ann@example.com', 'title': 'Taken over'}
GROUP_PUT = {'schemas': [GROUP_SCHEMA], 'displayName': 'Team', 'members': []}
ID_ROUTES = [
    ('GET', 'ann', None),
    ('PUT', 'ann', USER_PUT),
    ('PATCH', 'ann', {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'replace', 'value': {'active': False, 'title': 'Taken over'}}]}),
    ('DELETE', 'ann', None),
    ('GET', 'team', None),
    ('PUT', 'team', GROUP_PUT),
    ('PATCH', 'team', {'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'remove', 'path': 'members'}]}),
    ('PATCH', 'team', {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'replace', 'value': {'id': '{victim}', 'displayName': 'Renamed'}}]}),
    ('DELETE', 'team', None),
]
# (asking seat, the seat whose id it names): seat to seat, and both ways with the instructor's.
PAIRS = [(1, 2), (2, 1), (1, 0), (0, 1), (3, 1)]


@pytest.mark.parametrize('asking, owner', PAIRS, ids=[f'seat{a}-asks-seat{o}' for a, o in PAIRS])
@pytest.mark.parametrize('method, name, body', ID_ROUTES,
                         ids=[f'{method}-{name}-{n}' for n, (method, name, _) in enumerate(ID_ROUTES)])
def test_another_seats_id_is_not_found_and_left_as_it_was(room, asking, owner, method, name, body):
    victim = room.made[owner][name]
    endpoint = 'Users' if name == 'ann' else 'Groups'
    before, rows = room.read_back(owner), store_rows()
    payload = json.loads(json.dumps(body).replace('{victim}', victim['id'])) if body else None
    for if_match in (None, victim['meta']['version']):   # the owner's own ETag opens nothing either
        headers = {'If-Match': if_match} if if_match else {}
        response = room.clients[asking].request(method, f'/{endpoint}/{victim["id"]}', payload, headers=headers)
        assert_scim_error(response, 404)
    assert store_rows() == rows
    assert room.read_back(owner) == before


def test_a_seat_reaches_its_own_ids_on_every_route(room):
    """The converse of the 404s above: the same routes, on the seat's own ids, work."""
    client, mine = room.clients[2], room.made[2]
    assert client.get(f'/Users/{mine["ann"]["id"]}', status=200).json['userName'] == 'ann@example.com'
    client.put(f'/Users/{mine["bob"]["id"]}', {'schemas': [USER_SCHEMA], 'userName': 'bob@example.com',
                                               'title': 'Mine'}, status=200)
    client.patch(f'/Groups/{mine["team"]["id"]}', [{'op': 'remove', 'path': 'members'}], status=204)
    client.delete(f'/Groups/{mine["others"]["id"]}', status=204)
    assert client.get('/Groups', status=200).json['totalResults'] == 1
    assert room.clients[1].get('/Groups', status=200).json['totalResults'] == 2
    assert room.clients[1].get(f'/Users/{room.made[1]["bob"]["id"]}', status=200).json.get('title') is None
    assert len(room.clients[1].get(f'/Groups/{room.made[1]["team"]["id"]}', status=200).json['members']) == 1


# ---------------------------------------------------------------------------
# Lists, filters, sorting, paging, .search at every level
# ---------------------------------------------------------------------------

# (filter, the names it matches within one seat): every seat holds the same names,
# so a seat's answer is its own resources of these names, and no other seat's.
USER_FILTERS = [
    (None, 'ann bob'),
    ('userName eq "ann@example.com"', 'ann'),
    ('userName eq "ANN@Example.COM"', 'ann'),
    ('userName ne "ann@example.com"', 'bob'),
    ('userName co "nn@"', 'ann'),
    ('userName sw "bo"', 'bob'),
    ('userName ew "@example.com"', 'ann bob'),
    ('userName gt "ann@example.com"', 'bob'),
    ('userName ge "ann@example.com"', 'ann bob'),
    ('userName lt "bob@example.com"', 'ann'),
    ('userName le "bob@example.com"', 'ann bob'),
    ('title pr', 'ann'),
    ('title pr and userName sw "a"', 'ann'),
    ('userName eq "ann@example.com" or externalId eq "ext-bob"', 'ann bob'),
    ('not (title pr)', 'bob'),
    ('emails[type eq "work"]', 'ann'),
    ('emails[type eq "home" and value co "bob"]', 'bob'),
    ('emails.value eq "ann@home.example"', 'ann'),
    ('emails.type eq "home"', 'ann bob'),
    ('name.familyName eq "Ng"', 'ann'),
    ('externalId eq "ext-ann"', 'ann'),
    ('id eq "{own.ann}"', 'ann'),
    ('id eq "{other.ann}"', ''),
    ('id eq "{other.ann}" or id eq "{own.bob}"', 'bob'),
    ('groups.value eq "{own.team}"', 'ann'),
    ('groups.value eq "{other.team}"', ''),
    ('groups[value eq "{own.team}"]', 'ann'),
    ('groups.display eq "Team"', 'ann'),
    ('groups pr', 'ann'),
    ('meta.created gt "{own.ann.created}"', 'bob'),
    ('meta.created le "{own.ann.created}"', 'ann'),
    ('meta.created ge "{other.ann.created}" and meta.created le "{other.bob.created}"', '*'),
    ('meta.lastModified ge "{own.ann.lastModified}"', 'ann bob'),
    ('meta.resourceType eq "User"', 'ann bob'),
]
GROUP_FILTERS = [
    (None, 'team others'),
    ('displayName eq "Team"', 'team'),
    ('displayName eq "TEAM"', 'team'),
    ('displayName ne "Team"', 'others'),
    ('displayName co "ea"', 'team'),
    ('displayName sw "Oth"', 'others'),
    ('displayName ew "s"', 'others'),
    ('displayName gt "Q"', 'team'),
    ('displayName ge "Others"', 'team others'),
    ('displayName lt "Team"', 'others'),
    ('displayName le "Team"', 'team others'),
    ('members pr', 'team'),
    ('not (members pr)', 'others'),
    ('members.value eq "{own.ann}"', 'team'),
    ('members.value eq "{other.ann}"', ''),
    ('members[value eq "{own.ann}"]', 'team'),
    ('members.value eq "{other.ann}" or members.value eq "{own.ann}"', 'team'),
    ('externalId eq "ext-team"', 'team'),
    ('id eq "{other.team}"', ''),
    ('id eq "{own.others}"', 'others'),
    ('displayName eq "Team" and members pr', 'team'),
    ('displayName eq "Team" or displayName eq "Others"', 'team others'),
    ('meta.created gt "{own.team.created}"', 'others'),
    ('meta.resourceType eq "Group"', 'team others'),
]
ROOT_FILTERS = [
    (None, 'ann bob team others'),
    ('meta.created pr', 'ann bob team others'),
    ('externalId sw "ext-"', 'ann bob team others'),
    ('externalId eq "ext-team" or userName eq "bob@example.com"', 'bob team'),
    ('id eq "{own.team}" or id eq "{own.ann}"', 'ann team'),
    ('id eq "{other.ann}" or id eq "{other.team}"', ''),
    ('meta.created gt "{own.bob.created}"', 'team others'),
    ('displayName eq "Team"', 'team'),
]


def list_routes(endpoint):
    """(how to ask, a function (client, filter) -> the ListResponse): GET and POST .search."""
    def get(client, text, **params):
        query = '&'.join(f'{key}={quote(str(value))}' for key, value in
                         ({'filter': text} if text else {}).items() | params.items())
        return client.get(f'{endpoint}?{query}' if query else endpoint, status=200).json

    def search(client, text, **params):
        return client.post(f'{endpoint.rstrip("/")}/.search', {
            'schemas': ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
            **({'filter': text} if text else {}), **params}, status=200).json
    return [pytest.param(get, id='GET'), pytest.param(search, id='search')]


def expected_names(names, room, seat):
    """'*' (the other seat's times: whatever of this seat's falls between them)
    stands for any subset; otherwise the ids of these names in `seat`."""
    return None if names == '*' else room.ids(seat, names) if names else set()


def assert_each_seat_sees_its_own(room, ask, template, names):
    for seat in (*FILLED, 3):
        text = fill_in(template, room, seat if seat != 3 else 1) if template else None
        answer = ask(room.clients[seat], text)
        found = {resource['id'] for resource in answer['Resources']}
        own = {made['id'] for made in room.made.get(seat, {}).values()}
        assert found <= own, (seat, text, answer)
        assert answer['totalResults'] == len(found), (seat, text, answer)
        expected = expected_names(names, room, seat) if seat != 3 else set()
        if expected is not None:
            assert found == expected, (seat, text, answer)


@pytest.mark.parametrize('ask', list_routes('/Users'))
@pytest.mark.parametrize('template, names', USER_FILTERS, ids=[str(f) for f, _ in USER_FILTERS])
def test_a_user_filter_sees_only_the_seats_own_users(room, ask, template, names):
    assert_each_seat_sees_its_own(room, ask, template, names)


@pytest.mark.parametrize('ask', list_routes('/Groups'))
@pytest.mark.parametrize('template, names', GROUP_FILTERS, ids=[str(f) for f, _ in GROUP_FILTERS])
def test_a_group_filter_sees_only_the_seats_own_groups(room, ask, template, names):
    assert_each_seat_sees_its_own(room, ask, template, names)


@pytest.mark.parametrize('ask', list_routes(''))
@pytest.mark.parametrize('template, names', ROOT_FILTERS, ids=[str(f) for f, _ in ROOT_FILTERS])
def test_a_query_at_the_root_sees_only_the_seats_own_resources(room, ask, template, names):
    assert_each_seat_sees_its_own(room, ask, template, names)


SORTS = [
    ('/Users', {'sortBy': 'userName', 'sortOrder': 'descending'}, 'bob ann'),
    ('/Users', {'sortBy': 'userName'}, 'ann bob'),
    ('/Users', {'sortBy': 'meta.created', 'sortOrder': 'descending'}, 'bob ann'),
    ('/Users', {'sortBy': 'emails.value'}, 'ann bob'),
    ('/Users', {'startIndex': 2, 'count': 1}, 'bob'),
    ('/Users', {'startIndex': 1, 'count': 1, 'sortBy': 'userName', 'sortOrder': 'descending'}, 'bob'),
    ('/Groups', {'sortBy': 'displayName'}, 'others team'),
    ('/Groups', {'sortBy': 'displayName', 'sortOrder': 'descending', 'excludedAttributes': 'members'},
     'team others'),
    ('/Groups', {'startIndex': 2, 'count': 5}, 'others'),
    ('', {'sortBy': 'meta.created', 'sortOrder': 'descending'}, 'bob ann others team'),
    ('', {'startIndex': 2, 'count': 2}, 'bob team'),
]


@pytest.mark.parametrize('endpoint, params, names', SORTS, ids=[f'{e or "root"}-{p}' for e, p, _ in SORTS])
def test_sorting_and_paging_order_and_count_only_the_seats_own(room, endpoint, params, names):
    for ask in (route.values[0] for route in list_routes(endpoint)):
        for seat in FILLED:
            answer = ask(room.clients[seat], None, **params)
            assert [resource['id'] for resource in answer['Resources']] == [
                room.made[seat][name]['id'] for name in names.split()], (seat, params, answer)
            assert answer['totalResults'] == (4 if not endpoint else 2), (seat, answer)


# ---------------------------------------------------------------------------
# Writes that name another seat's users
# ---------------------------------------------------------------------------

MEMBER_WRITES = [
    ('POST', '/Groups', lambda stranger, mine: {
        'schemas': [GROUP_SCHEMA], 'displayName': 'Stolen', 'members': [{'value': stranger}]}),
    ('PUT', '/Groups/{team}', lambda stranger, mine: {
        'schemas': [GROUP_SCHEMA], 'displayName': 'Team', 'members': [{'value': mine}, {'value': stranger}]}),
    ('PATCH', '/Groups/{team}', lambda stranger, mine: {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'add', 'path': 'members', 'value': [{'value': stranger}]}]}),
    ('PATCH', '/Groups/{team}', lambda stranger, mine: {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'replace', 'path': 'members', 'value': [{'value': stranger}]}]}),
    ('PATCH', '/Groups/{team}', lambda stranger, mine: {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'replace', 'value': {'members': [{'value': stranger}]}}]}),
    ('PATCH', '/Groups/{team}', lambda stranger, mine: {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'replace', 'path': f'members[value eq "{mine}"]', 'value': [{'value': stranger}]}]}),
]


@pytest.mark.parametrize('asking, owner', [(1, 2), (0, 1), (1, 0)], ids=['seat1-seat2', 'seat0-seat1', 'seat1-seat0'])
@pytest.mark.parametrize('method, path, body', MEMBER_WRITES,
                         ids=[f'{m}-{n}' for n, (m, _, _) in enumerate(MEMBER_WRITES)])
def test_a_member_from_another_seat_is_an_unknown_user(room, asking, owner, method, path, body):
    stranger = room.made[owner]['bob']['id']   # bob: a member of no group, in any seat
    rows = store_rows()
    response = room.clients[asking].request(method, path.format(team=room.made[asking]['team']['id']),
                                            body(stranger, room.made[asking]['ann']['id']))
    assert_scim_error(response, 400, 'invalidValue')
    assert store_rows() == rows
    assert room.clients[owner].get(f'/Users/{stranger}', status=200).json.get('groups', []) == []


# ---------------------------------------------------------------------------
# Bulk
# ---------------------------------------------------------------------------

def bulk_request(*operations):
    return {'schemas': ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'], 'Operations': list(operations)}


def adding_member(value):
    return {'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'members', 'value': [{'value': value}]}]}


def test_bulk_reaches_only_the_seats_own_resources_and_its_own_bulk_ids(room):
    theirs, mine = room.made[2], room.made[1]
    before, others = room.read_back(2), {n: room.read_back(n) for n in (0, 2)}
    answer = room.clients[1].post('/Bulk', bulk_request(
        {'method': 'PUT', 'path': f'/Users/{theirs["ann"]["id"]}', 'data': USER_PUT},
        {'method': 'PATCH', 'path': f'/Users/{theirs["bob"]["id"]}',
         'data': {'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'active', 'value': False}]}},
        {'method': 'DELETE', 'path': f'/Groups/{theirs["team"]["id"]}'},
        {'method': 'DELETE', 'path': f'/Users/{theirs["bob"]["id"]}', 'version': theirs['bob']['meta']['version']},
        {'method': 'POST', 'path': '/Groups', 'bulkId': 'stolen',
         'data': {'schemas': [GROUP_SCHEMA], 'displayName': 'Stolen', 'members': [{'value': theirs['ann']['id']}]}},
        {'method': 'PATCH', 'path': f'/Groups/{mine["others"]["id"]}', 'data': adding_member(theirs['bob']['id'])},
        {'method': 'POST', 'path': '/Users', 'bulkId': 'dup', 'data': {'schemas': [USER_SCHEMA],
                                                                       'userName': 'ANN@example.com'}},
        {'method': 'POST', 'path': '/Users', 'bulkId': 'carol', 'data': {'schemas': [USER_SCHEMA],
                                                                         'userName': 'carol@example.com'}},
        {'method': 'POST', 'path': '/Groups', 'bulkId': 'crew', 'data': {
            'schemas': [GROUP_SCHEMA], 'displayName': 'Crew', 'members': [{'value': 'bulkId:carol'}]}},
        {'method': 'PATCH', 'path': f'/Groups/{mine["others"]["id"]}', 'data': adding_member('bulkId:carol')},
    ), status=200).json
    statuses = [(operation['method'], operation['status']) for operation in answer['Operations']]
    assert statuses == [('PUT', '404'), ('PATCH', '404'), ('DELETE', '404'), ('DELETE', '404'), ('POST', '400'),
                        ('PATCH', '400'), ('POST', '409'), ('POST', '201'), ('POST', '201'), ('PATCH', '200')], answer
    assert room.read_back(2) == before
    assert {n: room.read_back(n) for n in (0, 2)} == others
    carol = room.clients[1].get('/Users?filter=' + quote('userName eq "carol@example.com"')).json['Resources'][0]
    assert sorted(group['display'] for group in carol['groups']) == ['Crew', 'Others']
    for seat in (0, 2):
        assert room.clients[seat].get('/Users?filter=' + quote('userName eq "carol@example.com"'),
                                      status=200).json['totalResults'] == 0
        assert room.clients[seat].get('/Groups', status=200).json['totalResults'] == 2


# ---------------------------------------------------------------------------
# ETags, uniqueness, the exchange log
# ---------------------------------------------------------------------------

def test_if_match_compares_with_the_seats_own_resource_only(room):
    """Seat 2's ann moves to version 2; seat 1's ann stays at 1: seat 1's If-Match
    answers for its own version, whatever another seat's holds."""
    theirs, mine = room.made[2]['ann'], room.made[1]['ann']
    change = [{'op': 'replace', 'path': 'title', 'value': 'Lead'}]
    assert room.clients[2].patch(f'/Users/{theirs["id"]}', change, status=200).json['meta']['version'] == 'W/"2"'
    assert_scim_error(room.clients[1].patch(f'/Users/{mine["id"]}', change, headers={'If-Match': 'W/"2"'}), 412)
    assert room.clients[1].get(f'/Users/{mine["id"]}').json['title'] == 'Engineer'
    answer = room.clients[1].patch(f'/Users/{mine["id"]}', change, headers={'If-Match': 'W/"1"'}, status=200)
    assert answer.headers['ETag'] == 'W/"2"'
    got = room.clients[1].get(f'/Users/{mine["id"]}', headers={'If-None-Match': 'W/"2"'})
    assert got.status_int == 304
    assert_scim_error(room.clients[1].get(f'/Users/{theirs["id"]}', headers={'If-None-Match': 'W/"2"'}), 404)


UNIQUE_NAMES = [
    ('/Users', {'schemas': [USER_SCHEMA], 'userName': 'ANN@example.com'}),
    ('/Users', {'schemas': [USER_SCHEMA], 'userName': 'bob@EXAMPLE.com'}),
    ('/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'TEAM'}),
    ('/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'others'}),
]


@pytest.mark.parametrize('endpoint, body', UNIQUE_NAMES, ids=[str(b)[-22:] for _, b in UNIQUE_NAMES])
def test_names_are_unique_within_a_seat_and_free_in_another(room, endpoint, body):
    """Taken in seats 0-2 (409, whatever the case), free in seat 3 (201), once."""
    for seat in FILLED:
        assert_scim_error(room.clients[seat].post(endpoint, body), 409, 'uniqueness')
    room.clients[3].post(endpoint, body, status=201)
    assert_scim_error(room.clients[3].post(endpoint, body), 409, 'uniqueness')
    for seat in FILLED:
        assert room.clients[seat].get(endpoint, status=200).json['totalResults'] == 2


def test_a_rename_collides_only_with_names_in_its_own_seat(room):
    """Seat 3 makes carol and dan; only seat 3's names stop a rename in seat 3."""
    carol = room.clients[3].create_user('carol@example.com')
    room.clients[3].create_user('dan@example.com')
    crew = room.clients[3].create_group('Crew')
    rename = {'schemas': [USER_SCHEMA], 'userName': 'Ann@Example.com'}
    room.clients[3].put(f'/Users/{carol["id"]}', rename, status=200)
    assert_scim_error(room.clients[3].put(f'/Users/{carol["id"]}', {**rename, 'userName': 'DAN@example.com'}),
                      409, 'uniqueness')
    room.clients[3].patch(f'/Groups/{crew["id"]}', [{'op': 'replace', 'path': 'displayName', 'value': 'team'}],
                          status=204)
    room.clients[3].create_group('Others')
    assert_scim_error(room.clients[3].patch(f'/Groups/{crew["id"]}', [
        {'op': 'replace', 'path': 'displayName', 'value': 'OTHERS'}]), 409, 'uniqueness')


def test_each_exchange_is_logged_in_the_seat_that_sent_it(room):
    for seat in FILLED:
        room.clients[seat].get(f'/Users/{room.made[seat]["ann"]["id"]}', status=200)
        room.clients[seat].get(f'/Users/{room.made[other_seat(seat)]["ann"]["id"]}', status=404)
    room.app.recorder.exchanges.flush()
    for seat in FILLED:
        with store.seat_data(seat):
            logged = store.recent_exchanges(100)
        # its four POSTs at setup, and the two GETs above
        assert [row['method'] for row in logged] == ['GET', 'GET', 'POST', 'POST', 'POST', 'POST'], logged
        assert logged[1]['path'].endswith(room.made[seat]['ann']['id']) and logged[1]['status'] == 200
        assert logged[0]['path'].endswith(room.made[other_seat(seat)]['ann']['id']) and logged[0]['status'] == 404
        with store.seat_data(seat):
            assert store.get_exchange(logged[0]['id'])['seat'] == seat
        with store.seat_data(other_seat(seat)), pytest.raises(store.NotFound):
            store.get_exchange(logged[0]['id'])
    with store.seat_data(3):
        assert store.recent_exchanges(100) == []


# ---------------------------------------------------------------------------
# Every Authorization form picks the seat
# ---------------------------------------------------------------------------

AUTH_FORMS = [
    ('Bearer', lambda token: {'Authorization': f'Bearer {token}'}),
    ('lower-case bearer', lambda token: {'Authorization': f'bearer {token}'}),
    ('bare', lambda token: {'Authorization': token}),
    ('Bearer Bearer', lambda token: {'Authorization': f'Bearer Bearer {token}'}),
    ('Basic, the token as password', lambda token: basic('okta-scim', token)),
    ('Basic, no user name', lambda token: basic('', token)),
]


@pytest.mark.parametrize('form', [make for _, make in AUTH_FORMS], ids=[name for name, _ in AUTH_FORMS])
def test_every_accepted_authorization_form_picks_the_tokens_seat(room, form):
    test_app = webtest.TestApp(room.app)
    for seat, token in ((0, TOKEN), *((n, room.tokens[n]) for n in (1, 2))):
        headers = {**form(token), 'Accept': 'application/scim+json'}
        own = room.made[seat]['ann']['id']
        assert test_app.get(f'{BASE}/Users/{own}', headers=headers).status_int == 200
        listed = test_app.get(f'{BASE}/Users', headers=headers).json
        assert {user['id'] for user in listed['Resources']} == room.ids(seat, 'ann bob')
        stranger = room.made[other_seat(seat)]['ann']['id']
        assert test_app.get(f'{BASE}/Users/{stranger}', headers=headers, expect_errors=True).status_int == 404


def test_a_seat_token_as_basic_user_name_or_misspelt_opens_nothing(room):
    test_app = webtest.TestApp(room.app)
    token = room.tokens[1]
    for headers in (basic(token, 'whatever'), {'Authorization': f'Bearer {token[:-1]}'},
                    {'Authorization': f'Bearer {token}x'}, {'Authorization': f'Bearer {token.upper()}'}):
        response = test_app.get(f'{BASE}/Users', headers=headers, expect_errors=True)
        assert_scim_error(response, 401)


# ---------------------------------------------------------------------------
# Milestones, from recorded Okta and Entra flows replayed into seats at once
# ---------------------------------------------------------------------------

IDP = Path(__file__).with_name('idp')
# What each flow reaches, read from its requests (store.MILESTONES; scim_server's
# is_connection_test says what a connection check is).
FLOW_MILESTONES = {
    # Wrong and missing tokens open no seat; its one good request is a lookup.
    'okta-auth': {'first_request'},
    # Test API Credentials (startIndex=1&count=2), a create, a PUT, PATCH active=false.
    'okta-crud-test': {'first_request', 'connection_test', 'user_created', 'user_updated', 'user_deactivated'},
    # Users created, a group pushed with no members, then members added by PATCH.
    'okta-group-push': {'first_request', 'user_created', 'group_pushed', 'member_added'},
    # userName eq "<GUID>": Entra's Test Connection.
    'entra-test-connection': {'first_request', 'connection_test'},
    'entra-user-lifecycle': {'first_request', 'user_created'},
    'entra-group-lifecycle': {'first_request', 'group_pushed'},
    # A PUT with active=false deactivates.
    'okta-aiw-deactivate-put': {'first_request', 'user_created', 'user_updated', 'user_deactivated'},
    # HTTP Basic, the bare token, "Bearer Bearer": each picks the seat like Bearer.
    'okta-basic-auth': {'first_request', 'connection_test', 'user_created', 'user_updated', 'user_deactivated'},
    'okta-header-auth-bare': {'first_request', 'connection_test', 'user_created'},
    'okta-entra-bearer-bearer': {'first_request', 'connection_test', 'user_created'},
}


class Watching:
    """A transport that remembers the last 4xx or 5xx its seat's token was answered
    (a refused token's answer belongs to no seat)."""

    def __init__(self, transport, token):
        self.transport, self.token, self.last_error = transport, token, None

    def send(self, method, path, headers, body):
        status, response_headers, raw = self.transport.send(method, path, headers, body)
        if status >= 400 and status != 401:
            self.last_error = (status, json.loads(raw)['detail'])
        return status, response_headers, raw


def replay_into_seats(app, flows, tokens):
    """Replay each flow into its own seat, all at once (threads released together);
    the replays' own assertions are re-raised here. The Watching transports, by flow."""
    watching = {name: Watching(WsgiTransport(app), tokens[seat]) for seat, name in enumerate(flows, 1)}
    failures = {}
    barrier = threading.Barrier(len(flows))

    def run(name):
        flow = json.loads((IDP / f'{name}.json').read_text(encoding='utf-8'))
        barrier.wait()
        try:
            replay(flow, watching[name], watching[name].token)
        except BaseException as error:   # noqa: BLE001 - reported below, with its flow
            failures[name] = error
    threads = [threading.Thread(target=run, args=(name,)) for name in flows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    return watching


def test_milestones_of_okta_and_entra_flows_replayed_into_seats_at_once(make_app):
    flows = list(FLOW_MILESTONES)
    app = make_app(seats=len(flows) + 1)   # the last seat sends nothing
    tokens = seat_tokens()
    watching = replay_into_seats(app, flows, tokens)
    app.recorder.progress.flush()
    by_seat = {seat['number']: seat for seat in store.seats()}
    for seat, name in enumerate(flows, 1):
        row = by_seat[seat]
        assert {milestone for milestone in store.MILESTONES if row[milestone]} == FLOW_MILESTONES[name], name
        assert all(row['first_request'] <= row[milestone] for milestone in FLOW_MILESTONES[name]), row
        expected_error = watching[name].last_error
        assert (row['last_error_status'], row['last_error_detail']) == (expected_error or (None, None)), name
        assert (row['last_error_at'] is None) == (expected_error is None), row
    idle = by_seat[len(flows) + 1]
    assert not any(idle[name] for name in (*store.MILESTONES, 'last_error_at', 'last_error_status')), idle
    instructor = ScimClient(app)
    assert instructor.get('/Users', status=200).json['totalResults'] == 0
    assert instructor.get('/Groups', status=200).json['totalResults'] == 0


def test_a_milestone_keeps_the_time_it_was_first_reached(make_app):
    app = make_app(seats=1)
    client = seat_client(app, seat_tokens()[1])
    client.create_user('first@example.com')
    app.recorder.progress.flush()
    [first] = store.seats()
    client.create_user('second@example.com')
    assert_scim_error(client.get('/Users/nobody'), 404)
    app.recorder.progress.flush()
    [later] = store.seats()
    assert later['user_created'] == first['user_created'] and later['first_request'] == first['first_request']
    assert later['last_error_status'] == 404 and 'nobody' in later['last_error_detail']


def test_the_instructors_requests_reach_no_seats_milestones(make_app):
    app = make_app(seats=2)
    instructor = ScimClient(app)
    user = instructor.create_user('ann@example.com')
    instructor.create_group('Team', members=[user['id']])
    instructor.patch(f'/Users/{user["id"]}', [{'op': 'replace', 'path': 'active', 'value': False}], status=200)
    instructor.get('/Users?startIndex=1&count=2', status=200)
    assert_scim_error(instructor.get('/Users/nobody'), 404)
    app.recorder.progress.flush()
    for seat in store.seats():
        assert not any(seat[name] for name in (*store.MILESTONES, 'last_error_at')), seat


@pytest.mark.parametrize('authorization', [
    lambda token: 'Basic ' + base64.b64encode(f'{token}:okta'.encode()).decode(),   # the token as user name
    lambda token: f'Bearer "{token}"',
    # Typographic quotes, as a word processor types them; WSGI gives a header's bytes as latin-1.
    lambda token: f'Bearer \u201c{token}\u201d'.encode('utf-8').decode('latin-1'),
    lambda token: f'Bearer <{token}>',
], ids=['basic-token-as-user', 'quoted', 'typographic-quotes', 'placeholder'])
def test_a_seat_token_in_a_refused_form_is_that_seats_last_error_and_exchange(make_app, authorization):
    """The attendee who typed the token in the wrong place sees the 401 on the board's
    row and in the seat's own exchanges; the seat's data stays out of reach."""
    app = make_app(seats=2)
    tokens = seat_tokens()
    client = ScimClient(app)
    client.headers['Authorization'] = authorization(tokens[2])
    refused = assert_scim_error(client.get('/Users'), 401)
    wrong = ScimClient(app)
    wrong.headers['Authorization'] = authorization('not-a-seat-token')
    assert_scim_error(wrong.get('/Users'), 401)
    app.recorder.progress.flush()
    app.recorder.exchanges.flush()
    first, second = store.seats()
    assert (second['last_error_status'], second['last_error_detail']) == (401, refused['detail'])
    assert not any(second[name] for name in store.MILESTONES), second
    assert first['last_error_status'] is None
    with store.seat_data(2):
        assert [(exchange['status'], exchange['path']) for exchange in store.recent_exchanges(10)] == [
            (401, '/scim/v2/Users')]
    with store.seat_data(store.INSTRUCTOR):   # the wrong token's
        assert [exchange['status'] for exchange in store.recent_exchanges(10)] == [401]


def test_a_put_that_changes_nothing_is_no_user_updated(make_app):
    """Okta re-sends a user whole when nothing changed: the board waits for a real change."""
    app = make_app(seats=1)
    client = seat_client(app, seat_tokens()[1])
    user = client.create_user('ann@example.com')
    client.put(f'/Users/{user["id"]}', {'schemas': [USER_SCHEMA], 'userName': 'ann@example.com', 'active': True},
               status=200)
    app.recorder.progress.flush()
    assert store.seats()[0]['user_updated'] is None
    client.put(f'/Users/{user["id"]}', {'schemas': [USER_SCHEMA], 'userName': 'ann@example.com', 'title': 'CTO'},
               status=200)
    app.recorder.progress.flush()
    assert store.seats()[0]['user_updated'] is not None


def test_milestones_and_errors_are_kept_with_nothing_printed_or_recorded(make_app):
    """quiet = on and record_exchanges = off print and record no exchange; the board
    still learns what each seat's IdP did."""
    app = make_app(seats=1, quiet=True, record_exchanges=False)
    client = seat_client(app, seat_tokens()[1])
    client.get('/Users?startIndex=1&count=2', status=200)
    client.create_user('ann@example.com')
    assert_scim_error(client.get('/Users/nobody'), 404)
    app.recorder.progress.flush()
    [seat] = store.seats()
    assert {name for name in store.MILESTONES if seat[name]} == {'first_request', 'connection_test', 'user_created'}
    assert seat['last_error_status'] == 404 and 'nobody' in seat['last_error_detail']
    with store.seat_data(1):
        assert store.recent_exchanges(10) == []


# ---------------------------------------------------------------------------
# Without seats: the server of before
# ---------------------------------------------------------------------------

def test_without_seats_a_wrong_token_is_the_same_401_and_no_seat_shows(make_app):
    """A database that never had seats, and one that has them: a wrong token is
    refused alike, and no answer of either names a seat."""
    refusals, seen = [], []
    for seats in (0, 2):
        app = make_app(seats=seats)
        client = ScimClient(app)
        wrong = client.get('/Users', headers={'Authorization': 'Bearer not-a-token-of-this-server'})
        assert_scim_error(wrong, 401)
        refusals.append((wrong.status, wrong.headers.get('WWW-Authenticate'), wrong.json))
        user = client.create_user(f'ann{seats}@example.com')
        group = client.create_group(f'Team {seats}', members=[user['id']])
        seen += [json.dumps(response.json) for response in (
            client.get(f'/Users/{user["id"]}'), client.get(f'/Groups/{group["id"]}'), client.get('/Users'),
            client.get('/Groups'), client.get(''), client.get('/ServiceProviderConfig'),
            client.get('/Schemas'), client.get('/ResourceTypes'))]
        assert len(store.seats()) == seats
    assert refusals[0] == refusals[1]
    assert not any('seat' in text.lower() for text in seen), [text for text in seen if 'seat' in text.lower()]


def test_bulk_operations_reach_the_same_milestones_as_single_requests(make_app):
    app = make_app(seats=2)
    client = seat_client(app, seat_tokens()[1])
    answer = client.post('/Bulk', bulk_request(
        {'method': 'POST', 'path': '/Users', 'bulkId': 'ann', 'data': {'schemas': [USER_SCHEMA],
                                                                       'userName': 'ann@example.com'}},
        {'method': 'POST', 'path': '/Groups', 'bulkId': 'team', 'data': {'schemas': [GROUP_SCHEMA],
                                                                         'displayName': 'Team'}},
        {'method': 'PATCH', 'path': '/Groups/bulkId:team', 'data': adding_member('bulkId:ann')},
        {'method': 'PATCH', 'path': '/Users/bulkId:ann', 'data': {'schemas': [PATCH_SCHEMA], 'Operations': [
            {'op': 'replace', 'path': 'active', 'value': False}]}},
    ), status=200).json
    assert [operation['status'] for operation in answer['Operations']] == ['201', '201', '200', '200'], answer
    app.recorder.progress.flush()
    first, second = store.seats()
    assert {name for name in store.MILESTONES if first[name]} == set(store.MILESTONES) - {'connection_test'}
    assert not any(second[name] for name in store.MILESTONES)


def test_one_seats_busy_exchange_log_pushes_out_none_of_anothers(make_app):
    app = make_app(seats=2, exchanges_kept=5)
    tokens = seat_tokens()
    quiet, busy = seat_client(app, tokens[1]), seat_client(app, tokens[2])
    quiet.get('/Users', status=200)
    quiet.get('/Groups', status=200)
    for number in range(12):
        busy.get(f'/Users?startIndex={number + 1}', status=200)
        app.recorder.exchanges.flush()
    for seat, expected in ((1, ['/scim/v2/Groups', '/scim/v2/Users']),
                           (2, [f'/scim/v2/Users?startIndex={n}' for n in (12, 11, 10, 9, 8)])):
        with store.seat_data(seat):
            assert [row['path'] for row in store.recent_exchanges(100)] == expected


def test_resetting_a_seat_empties_it_alone_and_keeps_its_token_and_label(make_app):
    app = make_app(seats=2)
    tokens = seat_tokens()
    clients = {n: seat_client(app, token) for n, token in tokens.items()}
    for client in clients.values():
        ann = client.create_user('ann@example.com')
        client.create_group('Team', members=[ann['id']])
        assert_scim_error(client.get('/Users/nobody'), 404)
    app.recorder.progress.flush()
    app.recorder.exchanges.flush()
    store.set_label(1, 'Ada')
    kept = {n: dict(row) for n, row in enumerate(store.seats(), 1)}
    store.reset_seat(1)
    app.recorder.progress.forget(1)
    first, second = store.seats()
    assert (first['token'], first['label']) == (tokens[1], 'Ada')
    assert not any(first[name] for name in (*store.MILESTONES, 'last_error_at', 'last_error_status'))
    assert second == kept[2]
    assert clients[1].get('/Users', status=200).json['totalResults'] == 0
    assert clients[1].get('/Groups', status=200).json['totalResults'] == 0
    app.recorder.exchanges.flush()
    with store.seat_data(1):
        assert [row['method'] for row in store.recent_exchanges(100)] == ['GET', 'GET']   # since the reset
    assert clients[2].get('/Users', status=200).json['totalResults'] == 1
    assert len(clients[2].get('/Groups', status=200).json['Resources'][0]['members']) == 1
    clients[1].create_user('ann@example.com')   # the name is free again, and the milestone comes back
    app.recorder.progress.flush()
    assert store.seats()[0]['user_created'] is not None


MEMBERS_KEPT = [
    ('PUT, the same members', lambda group: ('PUT', {'schemas': [GROUP_SCHEMA], 'displayName': 'Everyone',
                                                      'members': group['members']})),
    ('PATCH add, already members', lambda group: ('PATCH', {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'add', 'path': 'members', 'value': group['members'][:2]}]})),
    ('PATCH replace members, the same', lambda group: ('PATCH', {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'replace', 'path': 'members', 'value': group['members']}]})),
]


@pytest.mark.parametrize('write', [make for _, make in MEMBERS_KEPT], ids=[name for name, _ in MEMBERS_KEPT])
def test_a_group_write_that_adds_no_member_is_no_member_added(make_app, write):
    """The sample data's groups have members the seat's IdP never added: a write that
    names only those (Okta re-sending a group) adds none, and the board says so."""
    app = make_app(seats=1, sample_users=3)
    client = seat_client(app, seat_tokens()[1])
    [group] = client.get('/Groups?filter=' + quote('displayName eq "All staff"'), status=200).json['Resources']
    method, body = write(group)
    assert client.request(method, f'/Groups/{group["id"]}', body).status_int in (200, 204)
    app.recorder.progress.flush()
    assert store.seats()[0]['member_added'] is None
    newcomer = client.create_user('newcomer@example.com')
    client.patch(f'/Groups/{group["id"]}', [{'op': 'add', 'path': 'members', 'value': [
        *group['members'][:1], {'value': newcomer['id']}]}], status=204)
    app.recorder.progress.flush()
    assert store.seats()[0]['member_added'] is not None

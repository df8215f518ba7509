"""Replay what Okta and Entra send (tests/idp/*.json) and check every answer.

Each flow runs on a fresh database twice: through webtest against the WSGI app,
and over a real socket against `python scim_server.py` started as a subprocess,
the way a user starts it. The file format is described in tests/idp/README.md.
"""

import base64
import http.client
import json
import re
import uuid
from pathlib import Path

import pytest

from conftest import BASE, TOKEN
from serverprocess import ServerProcess

FLOWS = sorted(Path(__file__).with_name('idp').glob('*.json'))


# ---------------------------------------------------------------------------
# Two ways to send a request: (method, path, headers, body) -> (status, headers, body)
# ---------------------------------------------------------------------------

class WsgiTransport:
    def __init__(self, app):
        import webtest
        self.app = webtest.TestApp(app)

    def send(self, method, path, headers, body):
        response = self.app.request(path, method=method, headers=headers, body=body or b'',
                                    expect_errors=True)
        return response.status_int, {k.lower(): v for k, v in response.headerlist}, response.body

    def close(self):
        pass   # the app is the make_app fixture's: closed at teardown


class HttpTransport:
    def __init__(self, database_url):
        self.server = ServerProcess(database=database_url, token=TOKEN)

    def send(self, method, path, headers, body):
        connection = http.client.HTTPConnection('127.0.0.1', self.server.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()

    def close(self):
        self.server.stop()


# ---------------------------------------------------------------------------
# Matching an answer against the flow's expectation
# ---------------------------------------------------------------------------

def substitute(value, variables):
    if isinstance(value, str):
        return re.sub(r'\$\{(\w+)\}', lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, list):
        return [substitute(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, variables) for key, item in value.items()}
    return value


def assert_matches(expected, actual, where='body', exact=False):
    """The subset match of tests/idp/README.md; under `"$exact": true`, every object
    must hold exactly the keys given, at every depth."""
    if isinstance(expected, dict) and expected.get('$exact') is True:
        expected, exact = {key: item for key, item in expected.items() if key != '$exact'}, True
    if expected == '$any':
        assert actual is not None, f'{where}: expected a value'
    elif isinstance(expected, dict) and '$contains' in expected:
        assert isinstance(actual, list), f'{where}: expected a list, got {actual!r}'
        for item in expected['$contains']:
            assert any(_matches(item, candidate) for candidate in actual), \
                f'{where}: no element matches {item!r} in {actual!r}'
    elif isinstance(expected, dict) and '$len' in expected:
        assert isinstance(actual, list) and len(actual) == expected['$len'], \
            f'{where}: expected {expected["$len"]} elements, got {actual!r}'
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f'{where}: expected an object, got {actual!r}'
        if exact:
            extra = set(actual) - set(expected)
            assert not extra, f'{where} has {sorted(extra)} besides what the flow expects: {actual!r}'
        for key, item in expected.items():
            if item == '$absent':
                assert key not in actual, f'{where}.{key} must be absent, is {actual[key]!r}'
            else:
                assert key in actual, f'{where}.{key} is missing from {actual!r}'
                assert_matches(item, actual[key], f'{where}.{key}', exact)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), \
            f'{where}: expected {expected!r}, got {actual!r}'
        for index, (item, candidate) in enumerate(zip(expected, actual, strict=True)):
            assert_matches(item, candidate, f'{where}[{index}]', exact)
    else:
        assert actual == expected, f'{where}: expected {expected!r}, got {actual!r}'


def _matches(expected, actual):
    try:
        assert_matches(expected, actual)
    except AssertionError:
        return False
    return True


def dig(document, dotted):
    for part in dotted.split('.'):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def basic(user, password):
    return {'Authorization': 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode('ascii')}


def auth_headers(token):
    """The Authorization header of each `auth` a step may name, presenting `token`."""
    return {
        'bearer': {'Authorization': f'Bearer {token}'},
        'bare': {'Authorization': token},
        'bearer-bearer': {'Authorization': f'Bearer Bearer {token}'},
        'basic': basic('okta-scim', token),
        'basic-wrong': basic('okta-scim', 'not-the-token'),
        'wrong': {'Authorization': 'Bearer not-the-token'},
        'none': {},
    }


def replay(flow, transport, token=TOKEN):
    """Send the flow's steps through `transport`, presenting `token` (a workshop
    seat's, for tests/test_seats.py), and check every answer."""
    variables = {'run': uuid.uuid4().hex[:12]}
    auth = auth_headers(token)
    for number, step in enumerate(flow['steps'], 1):
        request, expect = step['request'], step['expect']
        label = f'step {number} ({step["name"]})'
        headers = {**flow.get('headers', {}), **auth[request.get('auth', 'bearer')],
                   **request.get('headers', {})}
        headers = substitute(headers, variables)
        body = None
        if 'body' in request:
            body = json.dumps(substitute(request['body'], variables)).encode('utf-8')
        path = BASE + substitute(request['path'], variables)
        status, response_headers, raw = transport.send(request['method'], path, headers, body)
        assert status == expect['status'], f'{label}: {request["method"]} {path} -> {status} {raw[:400]!r}'
        if raw:
            assert response_headers['content-type'].startswith('application/scim+json'), label
            document = json.loads(raw)
        else:
            document = None
        for name, prefix in expect.get('headers', {}).items():
            assert response_headers.get(name.lower(), '').startswith(substitute(prefix, variables)), \
                f'{label}: header {name} is {response_headers.get(name.lower())!r}'
        if 'json' in expect:
            assert_matches(substitute(expect['json'], variables), document, label)
        for name, dotted in expect.get('save', {}).items():
            variables[name] = dig(document, dotted)


@pytest.mark.parametrize('transport_class', [WsgiTransport, HttpTransport], ids=['wsgi', 'http'])
@pytest.mark.parametrize('flow_file', FLOWS, ids=[path.stem for path in FLOWS])
def test_idp_flow(flow_file, transport_class, database_url, make_app):
    flow = json.loads(flow_file.read_text(encoding='utf-8'))
    transport = WsgiTransport(make_app()) if transport_class is WsgiTransport else HttpTransport(database_url)
    try:
        replay(flow, transport)
    finally:
        transport.close()


def test_an_exact_expectation_refuses_keys_the_flow_does_not_name_at_any_depth():
    assert_matches({'$exact': True, 'a': {'b': 1}, 'c': [{'d': '$any'}]}, {'a': {'b': 1}, 'c': [{'d': 2}]})
    for actual in ({'a': {'b': 1}, 'c': [{'d': 2}], 'e': 3}, {'a': {'b': 1, 'x': 0}, 'c': [{'d': 2}]},
                   {'a': {'b': 1}, 'c': [{'d': 2, 'y': 0}]}):
        with pytest.raises(AssertionError):
            assert_matches({'$exact': True, 'a': {'b': 1}, 'c': [{'d': '$any'}]}, actual)
    assert_matches({'a': 1}, {'a': 1, 'b': 2})   # without it, a subset


def test_every_step_of_the_validator_flows_cites_its_source():
    """Each validator step names the recording it comes from, or says it is reconstructed."""
    validator_flows = [path for path in FLOWS if path.stem.startswith('entra-scim-validator')]
    assert len(validator_flows) == 2
    for path in validator_flows:
        for step in json.loads(path.read_text(encoding='utf-8'))['steps']:
            assert len(step.get('source', '')) > 40, (path.name, step['name'])

"""scimlite's dashboard: the console line, the exchange recorder and the page at /.

Three things an IdP admin watches while Okta or Entra provisions:
- the console: one line per SCIM request (time, method, path, status, ms,
  and the app's note on its Authorization header, if any);
- the exchange log: each SCIM request and its answer, headers and bodies,
  scrubbed of tokens and passwords, kept in the database (the newest
  `exchanges_kept`) so that every process on one database shows the same list;
- the page at / (views/), behind a login with the server's token: users,
  groups with member counts, and the recent exchanges;
- for a workshop with seats (README, Workshops: seats for a whole room): a login
  with a seat's token shows that seat's page alone, and the server's token (the
  instructor's) adds the board, each seat's progress live, and the seat cards
  (a page to print, and CSV), the one place seat tokens are shown.

The app installs it: `install(app, settings, accept_token, scim_url)` adds the
page's routes, and `Recorder` is the WSGI middleware the app wraps its SCIM
requests in. It knows nothing of the SCIM routes: it sees requests and answers
as WSGI passes them, and reads users, groups and exchanges through the store.
"""

import collections
import csv
import functools
import hashlib
import hmac
import io
import ipaddress
import itertools
import json
import logging
import math
import pkgutil
import re
import secrets
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

import bottle
from bottle import request, response

import store

log = logging.getLogger('scimlite')

# ===========================================================================
# The console line and the exchange log: what the IdP sent, as it happened
# ===========================================================================
#
# Each SCIM request is printed as one line and queued for the dashboard by the
# Recorder, a WSGI middleware around the SCIM app. A request pays for two appends
# to queues in memory: a thread of its own prints the lines (a terminal that
# blocks, or Ctrl-S, holds only that thread), and another scrubs the queued
# exchanges and writes them in a batch every half second, so recording never
# holds a request, and readers never wait behind it. Under a flood (a benchmark, a full import) a batch
# keeps only the newest BATCH_MAX: nobody reads a thousand exchanges a second,
# and writing them all slows the writes that matter (README, Performance).

MAX_LOGGED_BODY = 16 * 1024   # bytes of each body kept for the dashboard (a page of 25 users)
BATCH_MAX = 50                # exchanges written each half second, at most: the newest
SCRUBBED = '[scrubbed]'
CREDENTIAL_HEADERS = ('HTTP_AUTHORIZATION', 'HTTP_PROXY_AUTHORIZATION', 'HTTP_COOKIE', 'HTTP_X_API_KEY')
AUTHORIZATION_SCHEMES = {'bearer': 'Bearer', 'basic': 'Basic', 'ssws': 'SSWS', 'token': 'Token',
                         'digest': 'Digest', 'negotiate': 'Negotiate'}
# What the app says of a request's Authorization header, put in its WSGI environ: the
# form that came when it is not the standard one and what to type instead, or why the
# request was refused. Its own text, never the header's. The console line ends with
# it, and the exchange shows it beside the header.
AUTHORIZATION_NOTE = 'scimlite.authorization_note'
# Set by authentication on a workshop seat's request: its seat number, and the
# milestones (store.MILESTONES) it reached, a set.
SEAT = 'scimlite.seat'
MILESTONES_REACHED = 'scimlite.milestones'


def request_path(path, query, tokens):
    """The path (WSGI's PATH_INFO) and query string as the client sent them, decoded
    for people, without the server's tokens."""
    if query:
        path += '?' + unquote(query.replace('+', ' '), encoding='latin-1')
    return without_tokens(path.encode('latin-1', 'replace').decode('utf-8', 'replace'), tokens)


def failed_once(worker, what, error):
    """`worker` (its `failed` flag) could not reach the database: a warning the first
    time, none again until it has worked once more."""
    if not worker.failed:
        log.warning('%s: %s', what, store.storage_fault(error) or store.first_line(error))
    worker.failed = True


def without_tokens(text, tokens):
    for token in tokens:
        text = text.replace(token, SCRUBBED)
    return text.replace('\x00', '\ufffd')   # no PostgreSQL text holds a NUL


class KnownTokens:
    """The tokens to scrub from what is printed and recorded: the server's own and
    every workshop seat's. Seats live in the database, where another process may add
    some, so theirs are read again at most every RELOAD_SECONDS, and at once when a
    seat not known here shows up. Called by the console's and the exchanges' threads
    (and by a seat's reset, which writes what is queued of its exchanges at once)."""

    RELOAD_SECONDS = 2.0

    def __init__(self, own):
        self.own = tuple(own)
        self.tokens, self.seats = self.own, frozenset()
        self.read_at = None
        self.lock = threading.Lock()
        self.failed = False

    def current(self, seats_met=()):
        """The tokens, longest first (a token inside a longer one must not leave the
        longer one's ends); `seats_met`: seat numbers just seen."""
        with self.lock:
            if (self.read_at is None or time.monotonic() - self.read_at > self.RELOAD_SECONDS
                    or not self.seats.issuperset(seats_met)):
                self._read()
            return self.tokens

    def _read(self):
        self.read_at = time.monotonic()
        try:
            rows = store.seats()
            self.failed = False
        except Exception as error:   # keep scrubbing with the tokens read before
            failed_once(self, "could not read the seats' tokens to scrub them", error)
            return
        finally:
            store.release_connection()
        self.seats = frozenset(row['number'] for row in rows)
        self.tokens = tuple(sorted({*self.own, *(row['token'] for row in rows)}, key=len, reverse=True))


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
    line costs the server a share of its requests a second. If the console falls
    behind, the oldest lines waiting are dropped."""

    interval = 0.1
    thread_name = 'scimlite-console'
    FLOOD_LINES = 50

    def __init__(self, stream, tokens):
        super().__init__()
        self.stream, self.tokens = stream, tokens   # KnownTokens
        self.waiting = collections.deque(maxlen=10_000)
        self.clock = (None, '')   # the last second, formatted: strftime costs half a line

    def add(self, environ, received_ns, status, seconds):
        """Queue the request's line (on its thread: the rest is this thread's work)."""
        self.waiting.append((received_ns, environ.get('REQUEST_METHOD', ''), environ.get('PATH_INFO', ''),
                             environ.get('QUERY_STRING', ''), status, seconds, environ.get(AUTHORIZATION_NOTE),
                             environ.get(SEAT)))
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
        tokens = self.tokens.current({queued[-1] for queued in waiting if queued[-1] is not None})
        lines += [self.line(*queued[:-1], tokens) for queued in waiting]
        try:   # a Windows console, or PYTHONIOENCODING=ascii, may not have every character
            encoding = getattr(self.stream, 'encoding', None) or 'utf-8'
            text = ''.join(lines).encode(encoding, 'backslashreplace').decode(encoding)
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, LookupError):   # a closed console: nothing more to print
            self.stopping.set()

    def line(self, received_ns, method, path_info, query, status, seconds, note, tokens):
        path = request_path(path_info, query, tokens)
        if not path.isprintable():   # a client's path must not drive the terminal
            path = path.encode('unicode_escape').decode('ascii')
        note = f'  auth: {without_tokens(note, tokens)}' if note else ''
        return (f'{self.time_of(received_ns)}  {method[:10]:<6} {path[:200]}  {status[:3]}  '
                f'{seconds * 1000:.1f} ms{note}\n')

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


def shown_authorization(value, note):
    """An Authorization header as the dashboard shows it: its credentials scrubbed, a
    known scheme kept ("Bearer" or "Basic" tells why a 401), twice if it came twice
    ("Bearer Bearer": typed into a field that adds it), and the app's note on it."""
    words = value.split()
    scheme = AUTHORIZATION_SCHEMES.get(words[0].lower()) if words else None
    schemes = [scheme] * (1 + (len(words) > 1 and words[1].lower() == words[0].lower())) if scheme else []
    shown = ' '.join([*schemes, SCRUBBED])
    return f'{shown} ({note})' if note else shown


def request_headers(environ, tokens):
    """{name: value} of the request's headers in a WSGI environ, credentials scrubbed
    (see shown_authorization)."""
    shown = {}
    for key, value in environ.items():
        if not key.startswith('HTTP_') and key not in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            continue
        name = (key[5:] if key.startswith('HTTP_') else key).replace('_', '-').title()
        if key == 'HTTP_AUTHORIZATION':
            value = shown_authorization(value, environ.get(AUTHORIZATION_NOTE))
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
        self.keep, self.tokens = keep, tokens   # KnownTokens
        self.queue = collections.deque(maxlen=min(keep, BATCH_MAX))
        self.tag = secrets.token_hex(4)   # this process, in the ids that order exchanges
        self.sequence = itertools.count()
        self.flushing = threading.Lock()
        self.failed = False

    def add(self, environ, received_ns, seconds, request_body, request_length, status, headers, body, length):
        """Queue the exchange (on the request's thread: cheap). `request_body` is the
        head of what the app read of the request's body, `request_length` all it read;
        `body` the answer's (or the head of a streamed one), of `length` bytes."""
        # A copy of the environ costs less than picking the headers out of it: that,
        # like all the rest, is the writer thread's work, for the few it keeps.
        copied = environ.copy()
        del copied['wsgi.input']
        copied.pop('bottle.request', None)
        self.queue.append((received_ns, next(self.sequence), seconds, copied, request_body[:MAX_LOGGED_BODY],
                           request_length, status, headers, body[:MAX_LOGGED_BODY], length))
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
                tokens = self.tokens.current({queued[3][SEAT] for queued in batch if SEAT in queued[3]})
                store.add_exchanges([self._row(*queued, tokens) for queued in batch], self.keep)
                self.failed = False
            except Exception as error:   # the dashboard loses a batch; SCIM goes on
                failed_once(self, f'could not record {len(batch)} exchange(s) for the dashboard', error)
            finally:
                store.release_connection()

    def _row(self, received_ns, sequence, seconds, environ, request_body, request_length, status, headers,
             response_body, response_length, tokens):
        shown_request = request_headers(environ, tokens)
        shown_response = {without_tokens(name, tokens): without_tokens(value, tokens)
                          for name, value in headers}
        return {
            'id': f'{received_ns:020d}{self.tag}{sequence % 10**8:08d}', 'received': store.now(received_ns),
            'method': environ.get('REQUEST_METHOD', '')[:16],
            'path': request_path(environ.get('PATH_INFO', ''), environ.get('QUERY_STRING', ''), tokens)[:4096],
            'status': int(status[:3]) if status[:3].isdigit() else 0,
            'duration_ms': round(seconds * 1000, 3),
            'user_agent': shown_request.get('User-Agent', '')[:500] or None,
            'request_headers': json.dumps(shown_request),
            'request_body': scrubbed_body(request_body, request_length, tokens),
            'response_headers': json.dumps(shown_response),
            'response_body': scrubbed_body(response_body, response_length, tokens),
            'seat': environ.get(SEAT, store.INSTRUCTOR),
        }

    work = flush


class SeatProgress(Periodic):
    """What each workshop seat's IdP has reached (store.MILESTONES) and its last error
    (status and detail), noted by the request threads as it happens and written by
    one thread every half second (store.note_progress). Never sampled, unlike the
    exchanges: what waits is a few names and one error per seat.

    A milestone this process has stored is not noted again (`stored`), so a busy
    seat costs no write; that memory is dropped every FORGET_SECONDS, so a seat reset
    by another process gets its milestones again within that time."""

    interval = 0.5
    thread_name = 'scimlite-seats'
    FORGET_SECONDS = 30
    DETAIL_KEPT = 500   # characters of an error's detail

    def __init__(self):
        super().__init__()
        self.pending = {}   # {seat: ({milestone: time}, (time, status, detail) or None)}
        self.stored = {}    # {seat: milestones stored}
        self.forget_at = time.monotonic() + self.FORGET_SECONDS
        self.lock = threading.Lock()
        self.failed = False

    def note(self, environ, status, body):
        """After a seat's request: its milestones and, for a 4xx or 5xx, its error."""
        seat = environ.get(SEAT)
        if seat is None:
            return
        stored = self.stored.get(seat, ())
        reached = [name for name in environ.get(MILESTONES_REACHED, ()) if name not in stored]
        code = int(status[:3]) if status[:3].isdigit() else 500
        if not reached and code < 400:
            return
        stamp = store.now()
        with self.lock:
            milestones, error = self.pending.get(seat, ({}, None))
            for name in reached:
                milestones.setdefault(name, stamp)
            if code >= 400:
                error = (stamp, code, error_detail(body)[:self.DETAIL_KEPT])
            self.pending[seat] = (milestones, error)
        if self.thread is None:
            self.start()

    def forget(self, seat):
        """Seat `seat` was reset: its milestones are to be noted again."""
        with self.lock:
            self.stored.pop(seat, None)
            self.pending.pop(seat, None)

    def flush(self):
        with self.lock:
            batch, self.pending = self.pending, {}
            if time.monotonic() > self.forget_at:
                self.stored, self.forget_at = {}, time.monotonic() + self.FORGET_SECONDS
        if not batch:
            return
        try:
            store.note_progress(batch)
            self.failed = False
        except Exception as error:   # the board misses a step; SCIM goes on
            failed_once(self, f'could not record the progress of {len(batch)} seat(s) for the board', error)
            return
        finally:
            store.release_connection()
        with self.lock:
            for seat, (milestones, _) in batch.items():
                self.stored.setdefault(seat, set()).update(milestones)

    work = flush


def error_detail(body):
    """The `detail` of a SCIM Error body (bytes), or '' if it has none."""
    try:
        detail = json.loads(body).get('detail')
    except (ValueError, AttributeError):
        return ''
    return detail if isinstance(detail, str) else ''


class Recorder:
    """WSGI middleware around the SCIM app: each request whose path `is_recorded`
    gets its console line and its exchange queued, after the app has answered,
    and a seat's request its progress noted (SeatProgress).

    The request's body is seen as the app reads it (wsgi.input is teed), so a
    route records its body however it reads it."""

    def __init__(self, application, settings, is_recorded):
        self.application = application
        self.is_recorded = is_recorded
        stdout = None if settings['quiet'] else sys.stdout   # None under pythonw
        tokens = KnownTokens(settings['tokens'])
        self.console = ConsoleLines(stdout, tokens) if stdout else None
        self.exchanges = (ExchangeLog(settings['exchanges_kept'], tokens)
                          if settings['record_exchanges'] else None)
        self.progress = SeatProgress()

    def __call__(self, environ, start_response):
        if not self.is_recorded(environ.get('PATH_INFO', '')):
            return self.application(environ, start_response)
        received_ns, started = time.time_ns(), time.perf_counter()
        if self.exchanges:   # only the exchange log keeps the request's body
            environ['wsgi.input'] = tee = TeeInput(environ['wsgi.input'])
        answer = []

        def remember(status, headers, exc_info=None):
            answer[:] = status, headers
            return start_response(status, headers, exc_info)
        body = self.application(environ, remember)
        if not isinstance(body, list):   # streamed: recorded once sent (RecordedStream)
            return RecordedStream(body, lambda head, length: self.record(
                environ, received_ns, started, tee if self.exchanges else None, answer, head, length))
        # The answer's bytes, for the exchange log, or for a seat's error detail.
        content = b''.join(body) if self.exchanges or SEAT in environ else b''
        self.record(environ, received_ns, started, tee if self.exchanges else None, answer, content, len(content))
        return body

    def record(self, environ, received_ns, started, tee, answer, content, length):
        """The request's console line, exchange and seat progress; `content` is the
        answer's body, or the head of it, of `length` bytes."""
        status, headers = answer or ('500', [])
        seconds = time.perf_counter() - started
        if self.console:
            self.console.add(environ, received_ns, status, seconds)
        if self.exchanges:
            self.exchanges.add(environ, received_ns, seconds, tee.head, tee.length, status, headers, content, length)
        self.progress.note(environ, status, content)

    def close(self, finish=False):
        """Stop recording and printing. With `finish`, what is queued is written and
        printed first."""
        if finish and self.exchanges is not None:
            self.exchanges.flush()
        if finish:
            self.progress.flush()
        if finish and self.console is not None:
            self.console.print_waiting()
        for worker in (self.exchanges, self.console, self.progress):
            if worker is not None:
                worker.stop()


class RecordedStream:
    """A streamed answer (an iterable of bytes) that keeps its first MAX_LOGGED_BODY
    bytes and counts the rest as they are sent, and has the exchange recorded when
    it closes: sent whole, cut short (AnswerCutShort), or abandoned by its client."""

    def __init__(self, body, recorded):
        self.body, self.recorded = body, recorded
        self.head, self.length = b'', 0

    def __iter__(self):
        for chunk in self.body:
            if len(self.head) < MAX_LOGGED_BODY:
                self.head += chunk[:MAX_LOGGED_BODY - len(self.head)]
            self.length += len(chunk)
            yield chunk

    def close(self):
        try:
            if hasattr(self.body, 'close'):
                self.body.close()
        finally:
            recorded, self.recorded = self.recorded, None
            if recorded is not None:
                recorded(self.head, self.length)


class TeeInput:
    """A request's wsgi.input that keeps the first MAX_LOGGED_BODY bytes read from
    it, and counts all of them."""

    __slots__ = ('stream', 'head', 'length')

    def __init__(self, stream):
        self.stream, self.head, self.length = stream, b'', 0

    def _seen(self, data):
        if len(self.head) < MAX_LOGGED_BODY:
            self.head += data[:MAX_LOGGED_BODY - len(self.head)]
        self.length += len(data)
        return data

    def read(self, *size):
        return self._seen(self.stream.read(*size))

    def readline(self, *size):
        return self._seen(self.stream.readline(*size))

    def readlines(self, *hint):
        return [self._seen(line) for line in self.stream.readlines(*hint)]

    def __iter__(self):
        return (self._seen(line) for line in self.stream)

    def __getattr__(self, name):   # close(), and whatever else a server's input has
        return getattr(self.stream, name)


# ===========================================================================
# Dashboard: GET / (a login form, then users, groups and the recent exchanges)
# ===========================================================================
#
# The page is views/dashboard.tpl; views/dashboard.js fills it from
# /dashboard/data every two seconds. Everything but the login form and its
# stylesheet needs a session: a signed, expiring cookie, HttpOnly and
# SameSite=Strict, given for the server's token or a workshop seat's, and
# naming whose it is. A seat's session shows that seat's data and nothing else;
# the server's token (the instructor's) shows its own data, the board of seats
# and the seat cards, and may look at any seat's data. No token ever reaches the
# page, but for the seats' on their cards.

SESSION_COOKIE = 'scimlite_session'
SESSION_SECONDS = 12 * 3600   # a workshop day
SHOWN = 100   # users, groups and exchanges on the page: the newest
LOGIN_FAILURES_ALLOWED = 5    # wrong tokens from one address ...
LOGIN_FAILURE_WINDOW = 60     # ... within this many seconds; then 429 until the first is that old
LABEL_MAX = 80                # characters of a seat's label
SECURITY_HEADERS = {
    # No inline script or style: the page loads its own two files and nothing else.
    'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'same-origin',
    'Cache-Control': 'no-store',
}
# Who may use a route: anyone, any session, or the instructor's session only.
PUBLIC, SESSION, INSTRUCTOR_ONLY = 'public', 'session', 'instructor'

# The board's columns, in the order a workshop gets there (store.MILESTONES; the
# SCIM routes say which requests reach them): (name, heading, what counts).
MILESTONE_STEPS = (
    ('first_request', 'First request', 'the first SCIM request that carried the seat’s token'),
    ('connection_test', 'Test Connection',
     'Okta’s “Test API Credentials” (GET /Users?startIndex=1&count=2) or Entra’s “Test Connection” '
     '(GET /Users?filter=userName eq "<a random GUID>")'),
    ('user_created', 'User created', 'the first user created (POST /Users)'),
    ('user_updated', 'User updated', 'a user changed (PUT or PATCH /Users/…)'),
    ('group_pushed', 'Group pushed', 'a group created (POST /Groups: Okta’s Push Groups, Entra’s groups)'),
    ('member_added', 'Member added', 'a member added to a group (POST, PUT or PATCH /Groups)'),
    ('user_deactivated', 'User deactivated', 'a user set to active: false (Okta’s and Entra’s deprovisioning)'),
)


class Refused(Exception):
    """A dashboard request refused: its status, and what to tell the person."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail


def session_key(secret, tokens):
    """The key that signs session cookies: the database's random secret (every process
    on the database has it; nobody can derive it from a token) and the tokens, so
    that a change of token ends every session."""
    return hmac.new(secret.encode(), '\n'.join(sorted(tokens)).encode('utf-8'), hashlib.sha256).digest()


def new_session(key, seat=store.INSTRUCTOR):
    """A session cookie's value for `seat` (store.INSTRUCTOR: the server's token)."""
    expires = int(time.time()) + SESSION_SECONDS
    claim = f'{expires}.{seat}.{secrets.token_urlsafe(16)}'
    return f'{claim}.{hmac.new(key, claim.encode(), hashlib.sha256).hexdigest()}'


def session_seat():
    """The seat of the request's session (store.INSTRUCTOR for the server's token),
    or None without a valid, unexpired one."""
    value = request.get_cookie(SESSION_COOKIE) or ''
    claim, _, signature = value.rpartition('.')
    expires, _, rest = claim.partition('.')
    seat = rest.partition('.')[0]
    key = request.app.dashboard.session_key
    expected = hmac.new(key, claim.encode('utf-8', 'replace'), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode('utf-8', 'replace'), expected.encode()):
        return None
    if not (expires.isdigit() and int(expires) > time.time() and seat.isdigit()):
        return None
    return int(seat)


def client_address(environ):
    """Whom the login throttle counts: the peer, or, when the peer is this machine
    (ngrok's agent, a proxy here: behind ngrok every attendee arrives from
    127.0.0.1), the client the proxy names last in X-Forwarded-For, the address it
    saw itself (the entries before are whatever the client claimed)."""
    peer = environ.get('REMOTE_ADDR', '')
    forwarded = environ.get('HTTP_X_FORWARDED_FOR', '').rpartition(',')[2].strip()
    return forwarded[:100] if forwarded and is_loopback(peer) else peer


def is_loopback(address):
    """Whether a host (a name or an address) or a client's address is this machine's:
    localhost, 127.0.0.0/8, ::1, or 127.x mapped into IPv6 (a dual-stack socket's peer)."""
    if address == 'localhost':
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_loopback or bool(getattr(ip, 'ipv4_mapped', None) and ip.ipv4_mapped.is_loopback)


class LoginThrottle:
    """At most LOGIN_FAILURES_ALLOWED wrong tokens a minute from one address
    (client_address); while throttled, the token is not even looked at."""

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
                self.failures = {key: times for key, times in self.failures.items()
                                 if times[-1] > now - LOGIN_FAILURE_WINDOW}
                if len(self.failures) >= 10_000:
                    self.failures.clear()
            self.failures[address] = recent + [now]
            return 0

    def succeeded(self, address):
        with self.lock:
            self.failures.pop(address, None)


def dashboard_route(callback, access):
    """A dashboard route: security headers always; unless PUBLIC, a session (of the
    instructor, for INSTRUCTOR_ONLY) and the store working in the seat it shows
    (viewed_seat); a Refused answered as refused() says."""
    def route(*args, **kwargs):
        for name, value in SECURITY_HEADERS.items():
            response.set_header(name, value)
        try:
            if access != PUBLIC:
                seat = session_seat()
                if seat is None:
                    raise Refused(401, 'Log in at / first.')
                if access == INSTRUCTOR_ONLY and seat != store.INSTRUCTOR:
                    raise Refused(403, 'Only the instructor (the server’s token) may see this, not a seat.')
                store.use_seat(viewed_seat(seat))
            return callback(*args, **kwargs)
        except Refused as refusal:
            return refused(refusal)
    route.__name__ = callback.__name__
    route.__doc__ = callback.__doc__
    return route


def refused(refusal):
    """A refusal: a page for a browser's navigation (it asks for HTML), JSON for the
    page's script and any other client."""
    response.status = refusal.status
    if 'text/html' in request.environ.get('HTTP_ACCEPT', ''):
        return page('refused', detail=refusal.detail)
    response.content_type = 'application/json'
    return json.dumps({'detail': refusal.detail})


def viewed_seat(session):
    """The seat whose data the request shows: the session's own, or, for the
    instructor, the seat `?seat=N` asks for (0, their own data). A seat's session
    shows its own seat and no other."""
    asked = request.query.get('seat')
    if asked is None or asked == str(session):
        return session
    if session != store.INSTRUCTOR:
        raise Refused(403, 'A seat’s session shows that seat only.')
    if not (asked.isascii() and asked.isdigit() and len(asked) < 6 and store.seat_row(int(asked))):
        raise Refused(404, f'There is no seat {asked[:20]!r}.')
    return int(asked)


@functools.lru_cache(maxsize=None)
def view(name):
    """A file of views/, read once through this module's loader: from the checkout,
    and from inside scimlite.pyz, where there is no folder to look in."""
    return pkgutil.get_data(__name__, f'views/{name}')


@functools.lru_cache(maxsize=None)
def template(name):
    return bottle.SimpleTemplate(view(f'{name}.tpl').decode('utf-8'))


def page(name, **values):
    response.content_type = 'text/html; charset=utf-8'
    return template(name).render(**values)


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
    """The dashboard, or the login form without a session. The instructor's shows
    the board of seats above their own data, if there are seats; `?seat=N` shows
    seat N's data instead. A seat's shows its own data, and its reset."""
    session = session_seat()
    if session is None:
        return page('login', error=None)
    try:
        seat = viewed_seat(session)
    except Refused as refusal:
        return refused(refusal)
    installed = request.app.dashboard
    settings = installed.settings
    has_seats = session == store.INSTRUCTOR and store.seat_count() > 0
    return page('dashboard', scim_url=installed.scim_url(), recording=settings['record_exchanges'],
                kept=settings['exchanges_kept'], seat=seat, own=seat == session,
                label=(store.seat_row(seat) or {}).get('label') if seat else None,
                board=has_seats and seat == store.INSTRUCTOR, seats_hint=session == store.INSTRUCTOR and not has_seats,
                steps=MILESTONE_STEPS)


def dashboard_login():
    """The login form's post: the server's token, or a seat's, for a session cookie."""
    address = client_address(request.environ)
    installed = request.app.dashboard
    throttle = installed.throttle
    if request.content_length > 4096 or not same_origin():
        response.status = 400
        return page('login', error='That was not a login from this page.')
    wait = throttle.attempt(address)
    if wait:
        response.status = 429
        response.set_header('Retry-After', str(wait))
        return page('login', error=f'Too many wrong tokens: try again in {wait} seconds.')
    presented = (request.forms.getunicode('token') or '').strip()
    seat = installed.accept_token(presented.encode('utf-8')) if presented else None
    if seat is None:
        response.status = 401
        return page('login', error='That is not the server’s token, nor a seat’s.')
    throttle.succeeded(address)
    response.set_cookie(SESSION_COOKIE, new_session(installed.session_key, seat), path='/',
                        max_age=SESSION_SECONDS, httponly=True, samesite='Strict',
                        secure=request.urlparts.scheme == 'https')
    bottle.redirect('/', 303)


def dashboard_logout():
    """Forget the session cookie."""
    if same_origin():
        response.delete_cookie(SESSION_COOKIE, path='/', httponly=True, samesite='Strict')
    bottle.redirect('/', 303)


def dashboard_data():
    """The shown seat's users, groups and exchanges, newest first, as the page shows them."""
    user_total, users = store.recent_users(SHOWN)
    group_total, groups = store.recent_groups(SHOWN)
    settings = request.app.dashboard.settings
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
            'active': resource.get('active', True), 'groups': record['group_names']}


def dashboard_exchange(exchange_id):
    """One exchange of the shown seat whole: the request's and the response's headers and bodies."""
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


def dashboard_reset():
    """Empty the shown seat (the session's own, or the one the instructor looks at):
    its users, groups, exchanges, milestones and last error go; token and label stay."""
    seat = store.current_seat()
    if not same_origin():
        raise Refused(403, 'That was not a reset from this page.')
    if seat == store.INSTRUCTOR:
        raise Refused(400, 'The server’s own data set is not a seat: it has no reset.')
    recorder = request.app.recorder
    # What is queued from before the reset is written first, so that it goes with the rest.
    if recorder.exchanges is not None:
        recorder.exchanges.flush()
    recorder.progress.flush()
    store.reset_seat(seat)
    recorder.progress.forget(seat)
    bottle.redirect('/' if session_seat() == seat else f'/?seat={seat}', 303)


def dashboard_seats():
    """The board: every seat's label, milestones (when each was first reached) and
    last error. No token: those are on the cards only."""
    response.content_type = 'application/json'
    return json.dumps({'seats': [{
        'number': seat['number'], 'label': seat['label'],
        'milestones': {name: seat[name] for name in store.MILESTONES},
        'last_error': None if seat['last_error_at'] is None else {
            'at': seat['last_error_at'], 'status': seat['last_error_status'], 'detail': seat['last_error_detail']},
    } for seat in store.seats()]})


def dashboard_label():
    """The board's label form: name a seat (the attendee's name); empty clears it."""
    if request.content_length > 4096 or not same_origin():
        raise Refused(403, 'That was not a change from this page.')
    number = request.forms.get('seat') or ''
    label = request.forms.getunicode('label')
    if not (number.isascii() and number.isdigit() and len(number) < 6):
        raise Refused(400, 'Say which seat, by its number.')
    if label is None or len(label.strip()) > LABEL_MAX or not label.isprintable():
        raise Refused(400, f'A label is one line of printable text, at most {LABEL_MAX} characters.')
    try:
        store.set_label(int(number), label.strip())
    except store.NotFound:
        raise Refused(404, f'There is no seat {number}.') from None
    bottle.redirect('/', 303)


def dashboard_cards():
    """The seat cards, to print: per seat, its base URL, its token, and what to type
    in Okta and in Entra."""
    installed = request.app.dashboard
    scim_url = installed.scim_url()
    base_path = installed.settings['base_path']
    root = scim_url[:-len(base_path)] if base_path and scim_url.endswith(base_path) else scim_url
    host = urlsplit(scim_url).hostname or ''
    return page('cards', seats=store.seats(), scim_url=scim_url, dashboard_url=root.rstrip('/') + '/',
                local=is_loopback(host))


def dashboard_cards_csv():
    """The seat cards as CSV, for a mail merge: what `--seat-cards` prints."""
    response.content_type = 'text/csv; charset=utf-8'
    response.set_header('Content-Disposition', 'attachment; filename="scimlite-seats.csv"')
    return seat_cards_csv(request.app.dashboard.scim_url())


def seat_cards_csv(base_url):
    """The seats as CSV: a header line `seat,base_url,token` and a line per seat,
    each with the same SCIM base URL (a seat's token picks its data)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(('seat', 'base_url', 'token'))
    for seat in store.seats():
        writer.writerow((seat['number'], base_url, seat['token']))
    return out.getvalue()


def dashboard_script():
    """The page's script: it fills the page from /dashboard/data (and the board from /dashboard/seats)."""
    response.content_type = 'text/javascript; charset=utf-8'
    return view('dashboard.js')


def dashboard_stylesheet():
    """The stylesheet of the page, the cards and the login form."""
    response.content_type = 'text/css; charset=utf-8'
    return view('dashboard.css')


# (method, path, callback, who may use it): only the login form and its stylesheet are public.
DASHBOARD_ROUTES = (
    ('GET', '/', dashboard_home, PUBLIC),
    ('POST', '/dashboard/login', dashboard_login, PUBLIC),
    ('POST', '/dashboard/logout', dashboard_logout, PUBLIC),
    ('GET', '/dashboard/data', dashboard_data, SESSION),
    ('GET', '/dashboard/exchanges/<exchange_id>', dashboard_exchange, SESSION),
    ('POST', '/dashboard/reset', dashboard_reset, SESSION),
    ('GET', '/dashboard/dashboard.js', dashboard_script, SESSION),
    ('GET', '/dashboard/dashboard.css', dashboard_stylesheet, PUBLIC),
    ('GET', '/dashboard/seats', dashboard_seats, INSTRUCTOR_ONLY),
    ('POST', '/dashboard/seats/label', dashboard_label, INSTRUCTOR_ONLY),
    ('GET', '/dashboard/cards', dashboard_cards, INSTRUCTOR_ONLY),
    ('GET', '/dashboard/cards.csv', dashboard_cards_csv, INSTRUCTOR_ONLY),
)


class Dashboard:
    """What the dashboard's routes need of the app they are installed on."""

    def __init__(self, settings, accept_token, scim_url):
        self.settings = settings
        self.accept_token = accept_token
        self.scim_url = scim_url
        self.throttle = LoginThrottle()
        self.session_key = session_key(store.secret('dashboard session'), settings['tokens'])


def install(app, settings, accept_token, scim_url):
    """Put the dashboard on the Bottle `app` (its database already open, its
    `recorder` a Recorder): the routes of DASHBOARD_ROUTES, and `app.dashboard`,
    which they read.

    `accept_token(token as bytes)` says whose dashboard a token logs in to: the
    seat's number, store.INSTRUCTOR for the server's own token, None for no one
    (the SCIM rule); `scim_url()`, under a request, is the SCIM base URL the page
    and the cards show."""
    app.dashboard = Dashboard(settings, accept_token, scim_url)
    for method, path, callback, access in DASHBOARD_ROUTES:
        app.route(path, method, dashboard_route(callback, access))
    return app.dashboard

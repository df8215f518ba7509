"""The benchmark's users, stored in-process through the store's own insert path.

    python bench/seed.py CHECKOUT DATABASE_URL --users 990000 --run 1a2b3c --out seeded.txt

bench/run.py runs this before it starts a server on the database: a million users
over HTTP would take longer than everything the benchmark then measures. Each
user's body is what a POST /Users would send (user_body), cleaned by the
checkout's own `clean_resource` with the resource type its settings make
(config.ini, extensions and all), and stored by `store.create_user`, as the
POST's handler does; only the transactions differ: 10,000 users each. So a seeded
user reads back as one created through the API (bench/run.py checks one of each).
Writes "id userName" a line to --out, and a line of progress to stderr now and then.

The users look like an IdP's: a userName like bench/scim.lua's, a name, a work
email (a home one for every fourth user), and a job title for nine in ten, from
JOB_TITLES, so that sortBy=title sorts something. Their numbers make the
selective searches (search_terms): a few users each, whatever the size.
"""

import argparse
import json
import sys
import time
from pathlib import Path

USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User'
BATCH = 10_000   # users a transaction
GIVEN_NAMES = ('Ada', 'Ben', 'Chloe', 'David', 'Emma', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kira', 'Liam',
               'Maya', 'Nils', 'Olga', 'Pavel', 'Quinn', 'Rosa', 'Sami', 'Tara', 'Uma', 'Victor', 'Wen', 'Ximena',
               'Yusuf', 'Zoe', 'Aiko', 'Bruno', 'Carmen', 'Dmitri', 'Elif', 'Femi')
FAMILY_NAMES = ('Adams', 'Bauer', 'Chen', 'Diaz', 'Eriksson', 'Fischer', 'Garcia', 'Haddad', 'Ivanova', 'Jensen',
                'Kim', 'Lopez', 'Moreau', 'Nakamura', 'Okafor', 'Petrov', 'Quispe', 'Rossi', 'Schmidt', 'Tanaka',
                'Usman', 'Virtanen', 'Wagner', 'Xu', 'Yilmaz', 'Zhang', 'Novak', 'Kowalski', 'Silva', 'Murphy',
                'Larsen', 'Costa', 'Horvat', 'Brown', 'Singh', 'Ahmed', 'Dubois')
JOB_TITLES = ('Account Executive', 'Accountant', 'Administrative Assistant', 'Art Director', 'Backend Engineer',
              'Business Analyst', 'Chief Executive Officer', 'Chief Financial Officer', 'Compliance Officer',
              'Content Strategist', 'Customer Success Manager', 'Data Analyst', 'Data Engineer', 'Data Scientist',
              'Database Administrator', 'Designer', 'DevOps Engineer', 'Engineering Manager', 'Executive Assistant',
              'Facilities Manager', 'Financial Analyst', 'Frontend Engineer', 'General Counsel', 'HR Generalist',
              'IT Support Specialist', 'Legal Counsel', 'Marketing Manager', 'Network Engineer', 'Office Manager',
              'Operations Manager', 'Payroll Specialist', 'Product Designer', 'Product Manager', 'Program Manager',
              'Project Manager', 'QA Engineer', 'Recruiter', 'Sales Engineer', 'Sales Representative',
              'Security Analyst', 'Site Reliability Engineer', 'Software Engineer', 'Solutions Architect',
              'Staff Engineer', 'Support Engineer', 'Systems Administrator', 'Technical Writer', 'UX Researcher',
              'Vice President of Sales', 'Web Developer')


def user_name(run, number):
    return f'u{run}s{number:07d}@bench.example'


def user_body(run, number, name=None):
    """The POST /Users body of seeded user `number` (`name`: another userName)."""
    given = GIVEN_NAMES[number % len(GIVEN_NAMES)]
    family = FAMILY_NAMES[number // len(GIVEN_NAMES) % len(FAMILY_NAMES)]
    emails = [{'primary': True, 'value': f'{given}.{family}.{number:07d}@work.example'.lower(), 'type': 'work'}]
    if number % 4 == 0:
        emails.append({'value': f'{given[0]}{family}{number % 1000}@home.example'.lower(), 'type': 'home'})
    body = {'schemas': [USER_SCHEMA], 'userName': name or user_name(run, number),
            'name': {'givenName': given, 'familyName': family, 'formatted': f'{given} {family}'},
            'emails': emails, 'displayName': f'{given} {family}', 'locale': 'en-US',
            'externalId': f'ext-{run}-{number}', 'groups': [], 'password': 'Not-stored-1', 'active': True}
    if number % 10 != 9:
        body['title'] = JOB_TITLES[number * 7919 % len(JOB_TITLES)]
    return body


def search_terms(seeded):
    """Strings that select ten of `seeded` users each (a block of ten numbers), or
    fewer when there are fewer: {'userName co': ..., 'work email co': ...}. Only
    seeded users' userNames have an 's' before 7 digits, and only their work emails
    a '.' before them."""
    blocks = max(1, seeded // 10)
    return {'userName co': f's{blocks // 3:06d}', 'work email co': f'.{2 * blocks // 3:06d}'}


def seed(checkout, url, users, run, out, first=0):
    """Store users `first` .. `first + users - 1` of `run` in the database at `url`."""
    sys.path.insert(0, str(checkout))
    sys.dont_write_bytecode = True
    import scim_server
    import store
    settings = scim_server.load_settings(['--database', url, '--token', 'seed-' + run], environ={})
    kind = scim_server.Catalog(settings['extension_schemas']).resource_type('User')
    store.open_database(url, lock_wait=60, statement_timeout=0)
    started = time.monotonic()
    with open(out, 'w') as lines:
        for start in range(first, first + users, BATCH):
            with store.writing():
                for number in range(start, min(first + users, start + BATCH)):
                    body = json.loads(json.dumps(user_body(run, number)))   # as the wire gives it
                    record = store.create_user(scim_server.clean_resource(body, kind))
                    lines.write(f'{record["id"]} {body["userName"]}\n')
            done = min(first + users, start + BATCH) - first
            if done % (10 * BATCH) == 0 or done == users:
                print(f'  seeded {done:,} of {users:,} users ({done / (time.monotonic() - started):,.0f}/s)',
                      file=sys.stderr, flush=True)
    if not store.is_sqlite():
        # What autovacuum does a while after a bulk load, done now rather than during
        # the scenarios: the planner's statistics, and the visibility map that lets an
        # index-only scan (an OFFSET, a count) skip the table's rows.
        store.database.execute_sql('VACUUM ANALYZE')
    store.close_database()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkout', help='the scimlite checkout whose store writes the users')
    parser.add_argument('database', help='its database URL (sqlite:///... or postgresql://...)')
    parser.add_argument('--users', type=int, required=True)
    parser.add_argument('--first', type=int, default=0, help='the number of the first user')
    parser.add_argument('--run', required=True, help="the run's tag, in every userName")
    parser.add_argument('--out', required=True, help='the file of "id userName" lines to write')
    args = parser.parse_args(argv)
    seed(Path(args.checkout).resolve(), args.database, args.users, args.run, args.out, args.first)


if __name__ == '__main__':
    main()

"""Sample users and groups for an import demo: `--sample-users N`.

Okta's "Import" tab (and Entra's provisioning preview) needs something on the
server to find. These users look like a small company's: given and family
names, a work email that is also the userName, a title and a department, some
of them deactivated; and a few groups they belong to. Made the same way every
time (no randomness), so two seats filled with N users hold the same names.
Pure: no I/O; store.fill_sample_data stores them.
"""

from scimschema import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

GIVEN_NAMES = ('Ava', 'Noah', 'Mia', 'Liam', 'Zoe', 'Omar', 'Lena', 'Kenji', 'Priya', 'Mateo', 'Chloe', 'Tariq',
               'Ingrid', 'Diego', 'Amara', 'Felix', 'Yuki', 'Hannah', 'Luca', 'Nadia', 'Samuel', 'Elif', 'Rosa',
               'Arjun', 'Maja', 'Tomás', 'Leila', 'Oscar', 'Sofia', 'Kwame', 'Aiko', 'Jonas')
FAMILY_NAMES = ('Martin', 'Okafor', 'Schmidt', 'Tanaka', 'García', 'Nguyen', 'Kowalski', 'Haddad', 'Johansson',
                'Rossi', 'Patel', 'Dubois', 'Silva', 'Kim', 'Novak', 'Mensah', "O'Brien", 'Fischer', 'Yilmaz',
                'Andersen', 'Costa', 'Ito', 'Moreau', 'Reyes', 'Ivanova', 'Berg', 'Sato', 'Lopez', 'Walsh')
# (department, titles): the groups are the departments, plus "All staff".
DEPARTMENTS = (
    ('Engineering', ('Software Engineer', 'Senior Software Engineer', 'Engineering Manager', 'SRE')),
    ('Sales', ('Account Executive', 'Sales Engineer', 'Sales Manager')),
    ('Marketing', ('Content Strategist', 'Product Marketing Manager')),
    ('Finance', ('Accountant', 'Financial Analyst', 'Controller')),
    ('People', ('Recruiter', 'People Partner')),
    ('Support', ('Support Specialist', 'Support Lead')),
)
DOMAIN = 'example.com'
INACTIVE_EVERY = 13   # one sample user in this many is deactivated: Okta imports those too


def ascii_name(name):
    """A name as an email's local part: lower case, letters only (García -> garcia)."""
    plain = name.lower().translate(str.maketrans('áéíóúñç', 'aeiounc'))
    return ''.join(letter for letter in plain if 'a' <= letter <= 'z')


def sample_users(count):
    """`count` user resources, as a POST would store them."""
    users = []
    for number in range(count):
        given = GIVEN_NAMES[number % len(GIVEN_NAMES)]
        # No (given, family) pair repeats within len(GIVEN_NAMES) * len(FAMILY_NAMES) users
        # (29 is prime); past that, a number tells them apart.
        family = FAMILY_NAMES[(number // len(GIVEN_NAMES) + number) % len(FAMILY_NAMES)]
        lap = number // (len(GIVEN_NAMES) * len(FAMILY_NAMES))
        email = f'{ascii_name(given)}.{ascii_name(family)}{lap or ""}@{DOMAIN}'
        department, titles = DEPARTMENTS[number % len(DEPARTMENTS)]
        users.append({
            'schemas': [USER_SCHEMA, ENTERPRISE_SCHEMA],
            'userName': email,
            'name': {'givenName': given, 'familyName': family, 'formatted': f'{given} {family}'},
            'displayName': f'{given} {family}',
            'emails': [{'value': email, 'type': 'work', 'primary': True}],
            'title': titles[number % len(titles)],
            'active': number % INACTIVE_EVERY != INACTIVE_EVERY - 1,
            'externalId': f'sample-{number + 1:05d}',
            ENTERPRISE_SCHEMA: {'employeeNumber': f'{number + 1:05d}', 'department': department},
        })
    return users


def sample_groups(count):
    """The groups for `count` sample users: (group resource, indexes of its members)."""
    groups = [({'schemas': [GROUP_SCHEMA], 'displayName': 'All staff'}, list(range(count)))]
    for position, (department, _) in enumerate(DEPARTMENTS):
        members = list(range(position, count, len(DEPARTMENTS)))
        if members:
            groups.append(({'schemas': [GROUP_SCHEMA], 'displayName': department}, members))
    return groups

"""Build dist/scimlite.pyz: the whole server in one file, for rooms where `pip install` is
the step people get lost in.

    python tools/build_pyz.py [--output PATH]

Run it with the Python of a checkout's virtual environment (`pip install -r
requirements.txt` done). The file holds scimlite's modules, schema.sql, config.ini
and views/, and the pure-Python libraries it runs on: bottle, peewee (with the one
playhouse module scimlite uses) and waitress, with their METADATA and licences. They are taken
from this Python's site-packages, and only at requirements.txt's pins, each file
checked against the hash its wheel recorded, so the .pyz holds exactly the pinned
releases. It does not hold psycopg2 (compiled, one build per platform): with a
postgresql:// URL scimlite.pyz uses the psycopg2 of the Python that runs it, or
says in one line how to install it. No tests, no benchmark.

`python scimlite.pyz [flags]` is `python scim_server.py [flags]`, with config.ini
and scim.db in the working folder (scim_server.FROM_ZIP).

Reproducible: the same sources give the same bytes. Entries go in sorted order,
with one fixed time-stamp and fixed permissions, no __pycache__, compressed by
this Python's zlib (another zlib may compress differently).
"""

import argparse
import base64
import hashlib
import io
import re
import sys
import time
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / 'dist' / 'scimlite.pyz'
SCIMLITE = ['scim_server.py', 'scimschema.py', 'scimpatch.py', 'scimfilter.py', 'store.py', 'dashboard.py',
            'sampledata.py', 'schema.sql', 'config.ini',
            *(f'views/{path.name}' for path in sorted((ROOT / 'views').iterdir()))]
# What the server imports of each pinned distribution, by the paths its wheel installs.
EMBEDDED = {
    'bottle': ['bottle.py'],
    'peewee': ['peewee.py', 'playhouse/__init__.py', 'playhouse/pool.py'],
    'waitress': ['waitress/'],
}
# scimlite needs 3.10 (its dataclasses' `str | None` is evaluated at import; waitress
# 3.0.2 needs 3.9). An older Python would stop at the first import with a traceback,
# and there is no pip here to have refused the install.
OLDEST_PYTHON = (3, 10)
MAIN = f'''"""scimlite.pyz: `python scimlite.pyz [flags]` is `python scim_server.py [flags]`.
Built by tools/build_pyz.py; config.ini and scim.db are kept in the working folder."""
import sys

if sys.version_info < {OLDEST_PYTHON!r}:
    sys.exit('scimlite: needs Python {".".join(map(str, OLDEST_PYTHON))} or newer, this is ' + sys.version.split()[0])

import scim_server  # noqa: E402

scim_server.main()
'''
SHEBANG = b'#!/usr/bin/env python3\n'
TIMESTAMP = (1980, 1, 1, 0, 0, 0)   # the earliest a zip can say
FILE_MODE = 0o644


class BuildError(Exception):
    """The .pyz cannot be built as pinned; the message says what to do."""


def pins(requirements=ROOT / 'requirements.txt'):
    """{distribution name, lower-case: version} of requirements.txt's `name==version` lines."""
    found = {}
    for line in requirements.read_text(encoding='utf-8').splitlines():
        match = re.fullmatch(r'\s*([A-Za-z0-9._-]+)\s*==\s*([^\s;#]+)\s*(#.*)?', line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def recorded_digest(packaged):
    """The sha256 digest a wheel's RECORD gives for an installed file, as bytes."""
    if packaged.hash is None or packaged.hash.mode != 'sha256':
        raise BuildError(f'{packaged} has no sha256 in its RECORD')
    return base64.urlsafe_b64decode(packaged.hash.value + '=' * (-len(packaged.hash.value) % 4))


def dependency_files(name, wanted, pinned):
    """{path in the .pyz: bytes} of the installed distribution `name`: the files under
    `wanted` and its licence, after checking its version against `pinned` and each
    file against its RECORD."""
    try:
        installed = distribution(name)
    except PackageNotFoundError:
        raise BuildError(f'{name} is not installed for {sys.executable}: pip install -r requirements.txt') from None
    if installed.version != pinned:
        raise BuildError(f'{name} {installed.version} is installed, requirements.txt pins {pinned}: '
                         'pip install -r requirements.txt')
    files = {}
    for packaged in installed.files:
        path = packaged.as_posix()
        # Its METADATA says which release this is (importlib.metadata reads it from the
        # zip too); its licence travels with the code.
        is_about = '.dist-info/' in path and (Path(path).name == 'METADATA'
                                              or Path(path).name.upper().startswith(('LICENSE', 'LICENCE')))
        is_code = path.endswith('.py') and any(path == w or (w.endswith('/') and path.startswith(w)) for w in wanted)
        if not (is_code or is_about) or '__pycache__' in path:
            continue
        data = Path(packaged.locate()).read_bytes()
        if hashlib.sha256(data).digest() != recorded_digest(packaged):
            raise BuildError(f'{packaged.locate()} differs from {name} {pinned} as released: '
                             'pip install --force-reinstall -r requirements.txt')
        files[path] = data
    missing = [w for w in wanted if not any(p == w or p.startswith(w) for p in files)]
    if missing:
        raise BuildError(f'{name} {pinned} has no {", ".join(missing)}')
    return files


def contents():
    """{path in the .pyz: bytes}: __main__.py, scimlite's files, the pinned libraries."""
    pinned = pins()
    files = {'__main__.py': MAIN.encode('utf-8')}
    for path in SCIMLITE:
        files[path] = (ROOT / path).read_bytes()
    for name, wanted in EMBEDDED.items():
        if name not in pinned:
            raise BuildError(f'requirements.txt pins no {name}')
        files.update(dependency_files(name, wanted, pinned[name]))
    return files


def archive(files):
    """The .pyz's bytes: a shebang line, then a zip of `files` in sorted order, each
    with the same time-stamp and permissions, so that the same files give the same bytes."""
    buffer = io.BytesIO()
    buffer.write(SHEBANG)
    with zipfile.ZipFile(buffer, 'w') as pyz:
        for path in sorted(files):
            entry = zipfile.ZipInfo(path, date_time=TIMESTAMP)
            entry.create_system = 3   # Unix, wherever it is built: the permissions below are Unix's
            entry.external_attr = (0o100000 | FILE_MODE) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            pyz.writestr(entry, files[path], compresslevel=9)
    return buffer.getvalue()


def build(output=OUTPUT):
    """Write the .pyz to `output`; returns its size in bytes."""
    data = archive(contents())
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + '.partial')
    partial.write_bytes(data)
    partial.chmod(0o755)   # ./scimlite.pyz runs it on Linux and macOS
    partial.replace(output)
    return len(data)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='build_pyz.py', description='Build scimlite.pyz, the server in one file.')
    parser.add_argument('--output', type=Path, default=OUTPUT, help=f'where to write it (default {OUTPUT})')
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        size = build(args.output)
    except BuildError as error:
        print(f'build_pyz: {error}', file=sys.stderr)
        raise SystemExit(2) from None
    print(f'wrote {args.output}: {size / 1024:.0f} KiB in {time.perf_counter() - started:.1f} s '
          f'({", ".join(f"{name} {version}" for name, version in pins().items() if name in EMBEDDED)})')


if __name__ == '__main__':
    main()

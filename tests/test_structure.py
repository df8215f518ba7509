"""The modules' boundaries (README, Development): which module may import which.

The protocol modules are pure, so they can be read, reused and tested without a
server or a database; the dashboard is an add-on the app installs, so it cannot
reach into the SCIM routes; the store knows nothing about HTTP. Read from the
source, so a lazy import inside a function counts too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# module: what it must never import
FORBIDDEN = {
    'scimfilter': {'bottle', 'peewee', 'store', 'scim_server', 'dashboard', 'scimschema', 'scimpatch'},
    'scimschema': {'bottle', 'peewee', 'store', 'scim_server', 'dashboard', 'scimpatch'},
    'scimpatch': {'bottle', 'peewee', 'store', 'scim_server', 'dashboard'},
    'store': {'bottle', 'waitress', 'scim_server', 'dashboard', 'scimpatch'},
    'dashboard': {'scim_server', 'scimschema', 'scimpatch', 'scimfilter'},
}


def imported(module):
    """Every top-level package `module`'s source imports, wherever the import is."""
    tree = ast.parse((ROOT / f'{module}.py').read_text(encoding='utf-8'))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split('.')[0])
    return names


@pytest.mark.parametrize('module', sorted(FORBIDDEN))
def test_a_module_imports_nothing_across_its_boundary(module):
    assert imported(module) & FORBIDDEN[module] == set()


def test_the_reading_of_imports_sees_them():
    """The check above can fail: it sees what the app does import."""
    assert {'bottle', 'store', 'dashboard', 'scimpatch', 'scimschema', 'scimfilter'} <= imported('scim_server')


def test_no_route_handler_branches_on_the_resource_type():
    """What differs between users and groups lives on the resource type and in the
    STORAGE table: no handler asks which type it serves."""
    tree = ast.parse((ROOT / 'scim_server.py').read_text(encoding='utf-8'))
    handlers = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    import scim_server
    for _, _, handler, _ in scim_server.SCIM_ROUTES:
        for node in ast.walk(handlers[handler.__name__]):
            text = ast.unparse(node) if isinstance(node, (ast.If, ast.IfExp, ast.Compare)) else ''
            assert not any(word in text for word in ("'User'", "'Group'", 'USERS', 'GROUPS', '.name ==')), \
                (handler.__name__, text)

"""The SCIM filter and PATCH-path grammar: text in, a small immutable AST out.

Supports RFC 7644 §3.4.2.2 (Figure 1) in full: the operators eq ne co sw ew gt ge
lt le pr, `and` / `or` / `not` with the RFC's precedence (not > and > or),
parentheses, string literals with JSON escapes, numbers, true/false/null, attribute
paths with a sub-attribute, fully qualified names
(`urn:ietf:params:scim:schemas:core:2.0:User:userName`), value paths
(`emails[type eq "work"]`) and Entra's `emails[type eq "work"].value eq "x"`,
which is read as "some email has type work and value x".

PATCH paths (RFC 7644 §3.5.2) are parsed by `parse_path` into the same pieces.

Pure: no I/O, no knowledge of schemas or SQL. `store.py` turns the AST into SQL;
`scim_server.py` evaluates it against one resource's multi-valued attribute.
"""

import json
import re
from dataclasses import dataclass
from typing import Optional, Union

MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 32
MAX_NUMBER = 2 ** 63 - 1   # what a database integer holds
COMPARISON_OPERATORS = ('eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le')


class FilterSyntaxError(ValueError):
    """The text is not a filter (or path); the message points at the position."""


# ---------------------------------------------------------------------------
# The AST
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AttrPath:
    """`[urn:]attr[.sub]`; `urn` is None when the name was not qualified."""
    attr: str
    sub: Optional[str] = None
    urn: Optional[str] = None

    def __str__(self):
        text = f'{self.attr}.{self.sub}' if self.sub else self.attr
        return f'{self.urn}:{text}' if self.urn else text


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str  # one of COMPARISON_OPERATORS
    value: Union[str, int, float, bool, None]


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: 'Expr'
    right: 'Expr'


@dataclass(frozen=True)
class Or:
    left: 'Expr'
    right: 'Expr'


@dataclass(frozen=True)
class Not:
    expr: 'Expr'


@dataclass(frozen=True)
class ValuePath:
    """`attr[filter]`: some value of the multi-valued `attr` matches `filter`,
    whose paths name sub-attributes of `attr`."""
    path: AttrPath
    filter: 'Expr'


@dataclass(frozen=True)
class Constant:
    """A term the parser never makes: the server puts it in place of one whose answer
    it knows without looking at a resource (`meta.resourceType eq "User"`, or an
    attribute the resource type lacks, searched from the server root)."""
    matches: bool


Expr = Union[Compare, Present, And, Or, Not, ValuePath, Constant]


@dataclass(frozen=True)
class PatchPath:
    """A PATCH `path`: `attr[.sub]`, or `attr[filter][.sub]`."""
    path: AttrPath
    filter: Optional[Expr] = None
    sub: Optional[str] = None


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

_TOKEN = re.compile(r'''
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
  | (?P<number>-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.:$]))
  | (?P<name>[A-Za-z$_][\w$\-:.]*)
  | (?P<subattr>\.[A-Za-z$][\w$\-]*)
  | (?P<punct>[()\[\]])
''', re.VERBOSE)


@dataclass(frozen=True)
class _Token:
    kind: str   # string, number, name, subattr, punct, end
    text: str
    pos: int


def _tokenize(text):
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise FilterSyntaxError(f'unexpected character {text[pos]!r} at position {pos}')
        if match.lastgroup != 'space':
            tokens.append(_Token(match.lastgroup, match.group(), pos))
        pos = match.end()
    tokens.append(_Token('end', '', len(text)))
    return tokens


def _split_attr_path(text, pos):
    """`urn:...:User:name.givenName` -> AttrPath; the URN is all up to the last colon."""
    urn = None
    if ':' in text:
        urn, _, text = text.rpartition(':')
        if not urn.lower().startswith('urn:') or not text:
            raise FilterSyntaxError(f'bad attribute name at position {pos}')
    parts = text.split('.')
    if len(parts) > 2 or not all(re.fullmatch(r'[A-Za-z$][\w$\-]*', part) for part in parts):
        raise FilterSyntaxError(f'bad attribute name {text!r} at position {pos}')
    return AttrPath(parts[0], parts[1] if len(parts) == 2 else None, urn)


# ---------------------------------------------------------------------------
# The parser: recursive descent, one method per grammar rule
# ---------------------------------------------------------------------------

class _Parser:
    def __init__(self, text):
        if len(text) > MAX_FILTER_LENGTH:
            raise FilterSyntaxError(f'longer than {MAX_FILTER_LENGTH} characters')
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self):
        return self.tokens[self.index]

    def _advance(self):
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _is_word(self, *words):
        return self.token.kind == 'name' and self.token.text.lower() in words

    def _expect(self, text):
        if self.token.text != text:
            raise self._error(f'expected {text!r}')
        self._advance()

    def _error(self, message):
        found = repr(self.token.text) if self.token.kind != 'end' else 'the end'
        return FilterSyntaxError(f'{message} at position {self.token.pos}, found {found}')

    def _nested(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterSyntaxError(f'nested deeper than {MAX_DEPTH} levels')

    def parse_filter(self):
        expr = self.or_expr()
        if self.token.kind != 'end':
            raise self._error('expected and, or or the end')
        return expr

    def or_expr(self):
        operands = [self.and_expr()]
        while self._is_word('or'):
            self._advance()
            operands.append(self.and_expr())
        return _balanced(Or, operands)

    def and_expr(self):
        operands = [self.unary()]
        while self._is_word('and'):
            self._advance()
            operands.append(self.unary())
        return _balanced(And, operands)

    def unary(self):
        if self._is_word('not'):
            self._advance()
            return Not(self.group())
        if self.token.text == '(':
            return self.group()
        return self.attr_expr()

    def group(self):
        self._nested()
        self._expect('(')
        expr = self.or_expr()
        self._expect(')')
        self.depth -= 1
        return expr

    def attr_path(self):
        if self.token.kind != 'name' or self._is_word('and', 'or', 'not'):
            raise self._error('expected an attribute name')
        token = self._advance()
        return _split_attr_path(token.text, token.pos)

    def attr_expr(self):
        path = self.attr_path()
        if self.token.text == '[':
            value_filter = self.value_filter(path)
            if self.token.kind != 'subattr':
                return ValuePath(path, value_filter)
            # Entra: emails[type eq "work"].value eq "x"
            sub = self.sub_attr()
            return ValuePath(path, And(value_filter, self.comparison(AttrPath(sub))))
        return self.comparison(path)

    def value_filter(self, path):
        if path.sub:
            raise self._error('a value filter must follow a multi-valued attribute')
        self._nested()
        self._expect('[')
        expr = self.or_expr()
        self._expect(']')
        self.depth -= 1
        return expr

    def sub_attr(self):
        """`.sub` after `]`."""
        if self.token.kind != 'subattr':
            raise self._error('expected .subAttribute after ]')
        return self._advance().text[1:]

    def comparison(self, path):
        if not self._is_word('pr', *COMPARISON_OPERATORS):
            raise self._error(f'expected an operator after {path}')
        op = self._advance().text.lower()
        if op == 'pr':
            return Present(path)
        return Compare(path, op, self.comp_value())

    def comp_value(self):
        token = self._advance()
        if token.kind == 'string':
            value = json.loads(token.text)
            if '\x00' in value:   # nothing stored holds one (PostgreSQL cannot)
                self.index -= 1
                raise self._error('a NUL character (\\u0000) in a string')
            return value
        if token.kind == 'number':
            number = json.loads(token.text)
            if not (-MAX_NUMBER <= number <= MAX_NUMBER):   # also catches inf from 1e999
                self.index -= 1
                raise self._error(f'a number beyond ±{MAX_NUMBER}')
            return number
        if token.kind == 'name' and token.text.lower() in ('true', 'false', 'null'):
            return {'true': True, 'false': False, 'null': None}[token.text.lower()]
        self.index -= 1
        raise self._error('expected a value (a "string", number, true, false or null)')

    def parse_path(self):
        path = self.attr_path()
        value_filter = sub = None
        if self.token.text == '[':
            value_filter = self.value_filter(path)
            if self.token.kind == 'subattr':
                sub = self.sub_attr()
        if self.token.kind != 'end':
            raise self._error('unexpected text after the path')
        return PatchPath(path, value_filter, sub)


def _balanced(join, operands):
    """`a or b or c ...` as a balanced tree: and/or associate, and a long chain then
    nests log2(n) deep, not n deep (in Python recursion and in the SQL it becomes)."""
    if len(operands) == 1:
        return operands[0]
    middle = (len(operands) + 1) // 2
    return join(_balanced(join, operands[:middle]), _balanced(join, operands[middle:]))


# `attr[.sub] op "string"`: the lookup IdPs send before every create
# (`userName eq "ann@example.com"`), read without the tokenizer and the parser,
# into the very AST they would build. Anything else takes the full parser.
_SIMPLE_COMPARISON = re.compile(
    r'\s*([A-Za-z$][\w$\-]*)(?:\.([A-Za-z$][\w$\-]*))?\s+((?ai:eq|ne|co|sw|ew|gt|ge|lt|le))\s+'
    r'("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")\s*')


def parse_filter(text):
    """Parse a SCIM filter; raises FilterSyntaxError."""
    if not isinstance(text, str) or not text.strip():
        raise FilterSyntaxError('the filter is empty')
    simple = _SIMPLE_COMPARISON.fullmatch(text) if len(text) <= MAX_FILTER_LENGTH else None
    if simple and (simple[2] or simple[1].lower() not in ('and', 'or', 'not')):
        value = json.loads(simple[4])
        if '\x00' not in value:
            return Compare(AttrPath(simple[1], simple[2]), simple[3].lower(), value)
    return _Parser(text).parse_filter()


def parse_path(text):
    """Parse a PATCH path; raises FilterSyntaxError."""
    if not isinstance(text, str) or not text.strip():
        raise FilterSyntaxError('the path is empty')
    return _Parser(text).parse_path()

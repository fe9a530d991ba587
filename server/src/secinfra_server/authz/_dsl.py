"""The OpenFGA modeling language (DSL), schema 1.1, parsed into the same model as JSON.

::

    model
      schema 1.1
    type user
    type group
      relations
        define member: [user, group#member]
    type document
      relations
        define viewer: [user, group#member, user:*] or editor
        define editor: [user]
        define parent: [folder]
        define can_view: (viewer or viewer from parent) but not blocked
        define reader: [user with in_office]

    condition in_office(ip: ipaddress, office: string) {
      ip.in_cidr(office)
    }

Operators: ``or``, ``and``, ``but not``, ``X from Y``; one operator kind per level
(mix them with parentheses); ``but not`` takes exactly two operands; one ``[...]``
per definition. An expression may continue on the next lines while a parenthesis
or bracket is open. ``#`` starts a comment at the start of a line or after
whitespace. Indentation is not significant. ``[user with c]`` makes a conditional
type restriction; ``condition name(param: type, ...) { <CEL> }`` declares ``c`` at
the top level (its CEL expression may span lines; parameter types as in
:mod:`._conditions`). Modules are not supported. Every error names its line.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import Final

from ._conditions import Condition, ParameterType, parse_parameter_type
from ._errors import ModelError
from ._model import (
    MAX_REWRITE_DEPTH,
    SCHEMA_VERSION,
    AuthorizationModel,
    ComputedUserset,
    Difference,
    Intersection,
    Relation,
    RelationReference,
    Rewrite,
    This,
    TupleToUserset,
    TypeDefinition,
    Union,
)

_COMMENT_RE: Final = re.compile(r"(^|\s)#.*$")
_TOKEN_RE: Final = re.compile(
    r"\s*(?:(?P<word>[A-Za-z0-9_][A-Za-z0-9_.\-]*)|(?P<punct>[\[\](),:#*]))"
)
_KEYWORDS: Final = frozenset({"or", "and", "but", "not", "from", "with"})
_STATEMENT_KEYWORDS: Final = frozenset({"model", "schema", "type", "relations", "define"})


@dataclass(frozen=True)
class _Token:
    text: str
    line: int
    is_word: bool


@dataclass
class _Statement:
    """One logical line: its tokens (several physical lines if brackets are open)."""

    line: int
    tokens: list[_Token] = field(default_factory=list)


def _tokenize_line(text: str, line: int) -> list[_Token]:
    text = _COMMENT_RE.sub("", text)
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            if text[pos:].strip() == "":
                break
            bad = text[pos:].strip()[0]
            raise ModelError(f"unexpected character {bad!r}", line=line)
        pos = match.end()
        word = match.group("word")
        tokens.append(_Token(word or match.group("punct"), line, word is not None))
    return tokens


def _statements(text: str) -> list[_Statement]:
    """Split the text into logical lines, joining lines while brackets are open."""
    statements: list[_Statement] = []
    depth = 0
    current: _Statement | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        tokens = _tokenize_line(raw, number)
        if not tokens:
            continue
        if depth and tokens[0].text in _STATEMENT_KEYWORDS and current is not None:
            raise ModelError("unclosed '(' or '['", line=current.line)
        if current is None or depth == 0:
            current = _Statement(number)
            statements.append(current)
        current.tokens.extend(tokens)
        for tok in tokens:
            if not tok.is_word and tok.text in "([":
                depth += 1
            elif not tok.is_word and tok.text in ")]":
                depth -= 1
        depth = max(depth, 0)
    if depth and current is not None:
        raise ModelError("unclosed '(' or '['", line=current.line)
    return statements


class _ExprParser:
    """Recursive descent over one definition's expression tokens."""

    def __init__(self, tokens: list[_Token], line: int, type_name: str, relation: str) -> None:
        self._tokens = tokens
        self._pos = 0
        self._line = line
        self._type = type_name
        self._relation = relation
        self._open_parentheses = 0
        self.direct: tuple[RelationReference, ...] | None = None

    def fail(self, reason: str, token: _Token | None = None) -> ModelError:
        line = token.line if token is not None else self._line
        return ModelError(reason, type_name=self._type, relation=self._relation, line=line)

    def _peek(self, offset: int = 0) -> _Token | None:
        index = self._pos + offset
        return self._tokens[index] if index < len(self._tokens) else None

    def _next(self, expected: str) -> _Token:
        token = self._peek()
        if token is None:
            raise self.fail(f"expected {expected}, got the end of the definition")
        self._pos += 1
        return token

    def _expect(self, text: str) -> _Token:
        token = self._next(f"'{text}'")
        if token.text != text:
            raise self.fail(f"expected '{text}', got '{token.text}'", token)
        return token

    def _name(self, what: str) -> _Token:
        token = self._next(what)
        if not token.is_word or token.text in _KEYWORDS:
            raise self.fail(f"expected {what}, got '{token.text}'", token)
        return token

    def parse(self) -> Rewrite:
        rewrite = self._expression()
        token = self._peek()
        if token is not None:
            raise self.fail(f"unexpected '{token.text}'", token)
        return rewrite

    def _operator(self) -> str | None:
        token = self._peek()
        if token is None or not token.is_word:
            return None
        if token.text in ("or", "and"):
            return token.text
        if token.text == "but":
            after = self._peek(1)
            if after is None or after.text != "not":
                raise self.fail("expected 'not' after 'but'", token)
            return "but not"
        return None

    def _expression(self) -> Rewrite:
        operands = [self._term()]
        kind: str | None = None
        while (op := self._operator()) is not None:
            token = self._next(op)
            if kind is not None and op != kind:
                raise self.fail(f"cannot mix '{kind}' and '{op}' without parentheses", token)
            if op == "but not":
                if kind is not None:
                    raise self.fail("'but not' takes exactly two operands; add parentheses", token)
                self._pos += 1  # "not"
            kind = op
            operands.append(self._term())
        if kind is None:
            return operands[0]
        if kind == "or":
            return Union(tuple(operands))
        if kind == "and":
            return Intersection(tuple(operands))
        return Difference(operands[0], operands[1])

    def _term(self) -> Rewrite:
        token = self._peek()
        if token is not None and token.text == "(":
            # Each parenthesis is one level of recursion here and at most one
            # level of rewrite nesting in the model: bound both.
            if self._open_parentheses >= MAX_REWRITE_DEPTH:
                raise self.fail(
                    f"parentheses nest deeper than the limit of {MAX_REWRITE_DEPTH} levels",
                    token,
                )
            self._open_parentheses += 1
            self._pos += 1
            inner = self._expression()
            self._expect(")")
            self._open_parentheses -= 1
            return inner
        if token is not None and token.text == "[":
            return self._direct()
        name = self._name("a relation, '[' or '('")
        after = self._peek()
        if after is not None and after.text == "from":
            self._pos += 1
            tupleset = self._name("a relation after 'from'")
            return TupleToUserset(tupleset.text, name.text)
        return ComputedUserset(name.text)

    def _direct(self) -> This:
        opener = self._expect("[")
        if self.direct is not None:
            raise self.fail("type restrictions [...] may appear only once per definition", opener)
        refs = [self._reference()]
        while (token := self._next("',' or ']'")).text == ",":
            refs.append(self._reference())
        if token.text != "]":
            raise self.fail(f"expected ',' or ']', got '{token.text}'", token)
        self.direct = tuple(refs)
        return This()

    def _reference(self) -> RelationReference:
        type_name = self._name("a type").text
        ref = RelationReference(type_name)
        token = self._peek()
        if token is not None and token.text == "#":
            self._pos += 1
            ref = RelationReference(type_name, self._name("a relation after '#'").text)
        elif token is not None and token.text == ":":
            self._pos += 1
            self._expect("*")
            ref = RelationReference(type_name, wildcard=True)
        token = self._peek()
        if token is not None and token.text == "with":
            self._pos += 1
            condition = self._name("a condition name after 'with'").text
            ref = RelationReference(ref.type, ref.relation, ref.wildcard, condition)
        return ref


@dataclass
class _TypeBuilder:
    name: str
    line: int
    has_relations_block: bool = False
    relations: list[Relation] = field(default_factory=list)
    relation_lines: dict[str, int] = field(default_factory=dict)


class _ModelParser:
    """Statement-level parser: model header, types, relations blocks, definitions."""

    def __init__(self, statements: list[_Statement], conditions: list[_ConditionBlock]) -> None:
        self._statements = statements
        self._conditions = conditions
        self._types: list[_TypeBuilder] = []
        self._type_lines: dict[str, int] = {}

    def parse(self) -> AuthorizationModel:
        self._header()
        for stmt in self._statements[2:]:
            self._statement(stmt)
        conditions = tuple(block.build() for block in self._conditions)
        try:
            return AuthorizationModel(
                tuple(TypeDefinition(t.name, tuple(t.relations)) for t in self._types),
                conditions=conditions,
            )
        except ModelError as exc:
            raise exc.with_line(self._line_of(exc)) from exc

    def _line_of(self, exc: ModelError) -> int:
        for builder in self._types:
            if builder.name == exc.type_name:
                return builder.relation_lines.get(exc.relation or "", builder.line)
        for block in self._conditions:
            if f'condition "{block.name}"' in exc.reason:
                return block.line
        return self._statements[0].line

    def _header(self) -> None:
        if not self._statements:
            raise ModelError("empty model: expected 'model'", line=1)
        first = self._statements[0]
        if [t.text for t in first.tokens] != ["model"]:
            raise ModelError("expected 'model' as the first statement", line=first.line)
        if len(self._statements) < 2 or self._statements[1].tokens[0].text != "schema":
            raise ModelError("expected 'schema 1.1' after 'model'", line=first.line + 1)
        schema = self._statements[1]
        words = [t.text for t in schema.tokens]
        if words != ["schema", SCHEMA_VERSION]:
            version = " ".join(words[1:]) or "nothing"
            raise ModelError(
                f"schema version must be {SCHEMA_VERSION}, got {version}", line=schema.line
            )

    def _statement(self, stmt: _Statement) -> None:
        keyword = stmt.tokens[0].text
        if keyword == "type":
            self._type(stmt)
        elif keyword == "relations":
            self._relations(stmt)
        elif keyword == "define":
            self._define(stmt)
        elif keyword in ("module", "extend"):
            raise ModelError(
                "modular models ('module', 'extend') are not supported", line=stmt.line
            )
        else:
            raise ModelError(
                f"unexpected '{keyword}': expected 'type', 'relations' or 'define'",
                line=stmt.line,
            )

    def _type(self, stmt: _Statement) -> None:
        words = [t.text for t in stmt.tokens]
        if len(words) != 2 or not stmt.tokens[1].is_word:
            raise ModelError("expected 'type <name>'", line=stmt.line)
        name = words[1]
        if name in self._type_lines:
            raise ModelError(
                f"type is already defined on line {self._type_lines[name]}",
                type_name=name,
                line=stmt.line,
            )
        self._type_lines[name] = stmt.line
        self._types.append(_TypeBuilder(name, stmt.line))

    def _relations(self, stmt: _Statement) -> None:
        if len(stmt.tokens) != 1:
            raise ModelError("expected 'relations' alone on its line", line=stmt.line)
        if not self._types or self._types[-1].has_relations_block:
            raise ModelError("'relations' must follow a 'type' line, once", line=stmt.line)
        self._types[-1].has_relations_block = True

    def _define(self, stmt: _Statement) -> None:
        if not self._types or not self._types[-1].has_relations_block:
            raise ModelError("'define' must be inside a type's 'relations' block", line=stmt.line)
        builder = self._types[-1]
        tokens = stmt.tokens
        if len(tokens) < 3 or not tokens[1].is_word or tokens[2].text != ":":
            raise ModelError(
                "expected 'define <relation>: <expression>'", type_name=builder.name, line=stmt.line
            )
        name = tokens[1].text
        if name in builder.relation_lines:
            raise ModelError(
                f"relation is already defined on line {builder.relation_lines[name]}",
                type_name=builder.name,
                relation=name,
                line=stmt.line,
            )
        parser = _ExprParser(tokens[3:], stmt.line, builder.name, name)
        rewrite = parser.parse()
        builder.relation_lines[name] = stmt.line
        builder.relations.append(Relation(name, rewrite, parser.direct or ()))


_CONDITION_RE: Final = re.compile(
    r"\s*condition\s+(?P<name>[A-Za-z0-9_]+)\s*\((?P<params>[^)]*)\)\s*\{(?P<body>.*)\}\s*",
    re.DOTALL,
)


@dataclass(frozen=True)
class _ConditionBlock:
    """A ``condition name(...) { ... }`` block, cut out of the text before tokenizing."""

    line: int
    text: str

    @property
    def name(self) -> str:
        match = _CONDITION_RE.fullmatch(self.text)
        return match.group("name") if match is not None else ""

    def build(self) -> Condition:
        match = _CONDITION_RE.fullmatch(self.text)
        if match is None:
            raise ModelError(
                "expected 'condition <name>(<param>: <type>, ...) { <CEL expression> }'",
                line=self.line,
            )
        params: list[tuple[str, ParameterType]] = []
        for part in match.group("params").split(","):
            if not part.strip():
                raise ModelError("expected '<param>: <type>' in the parameter list", line=self.line)
            pname, colon, ptype = part.partition(":")
            if not colon or not pname.strip():
                raise ModelError(
                    f"expected '<param>: <type>', got '{part.strip()}'", line=self.line
                )
            try:
                params.append((pname.strip(), parse_parameter_type(ptype)))
            except ModelError as exc:
                raise exc.with_line(self.line) from None
        try:
            body = textwrap.dedent(match.group("body").strip("\n")).strip()
            return Condition(match.group("name"), body, tuple(params))
        except ModelError as exc:
            raise exc.with_line(self.line) from None


def _cut_conditions(text: str) -> tuple[str, list[_ConditionBlock]]:
    """Return the text with every condition block blanked (line numbers kept) and
    the blocks. A block ends at the ``}`` that balances its first ``{``; braces in
    CEL string literals are skipped."""
    lines = text.splitlines()
    blocks: list[_ConditionBlock] = []
    index = 0
    while index < len(lines):
        if lines[index].split()[:1] != ["condition"]:
            index += 1
            continue
        start, depth, opened, quote = index, 0, False, ""
        while index < len(lines):
            for char in lines[index]:
                if quote:
                    quote = "" if char == quote else quote
                elif char in "'\"":
                    quote = char
                elif char == "{":
                    depth, opened = depth + 1, True
                elif char == "}":
                    depth -= 1
            index += 1
            if opened and depth <= 0:
                break
        if not opened or depth > 0:
            raise ModelError("condition block has no closing '}'", line=start + 1)
        blocks.append(_ConditionBlock(start + 1, "\n".join(lines[start:index])))
        lines[start:index] = [""] * (index - start)
    return "\n".join(lines), blocks


def parse_dsl(text: str) -> AuthorizationModel:
    """Parse and validate a model written in the OpenFGA DSL (schema 1.1).

    Raises:
        ModelError: a syntax or model error; the message names the line (and the
            type and relation, where there is one).
    """
    rest, conditions = _cut_conditions(text)
    return _ModelParser(_statements(rest), conditions).parse()

"""The ``print fmt`` of an ftrace event: a small C-expression parser and evaluator.

Format files end with ``print fmt: "<printf format>", <arg>, <arg>, ...`` where each argument is
a C expression over the record (``REC->prev_state & (1024-1) ? __print_flags(...) : "R"``).
The capture's own ``__print_flags`` / ``__print_symbolic`` tables are the only faithful decoding
of values such as ``prev_state`` (whose bits changed across kernel versions) or arm64 exception
classes, and kernels spell their constants as expressions
(``(((0x0000 | 0x0001 | ... | 0x0040) + 1) << 1)``, formats.md §2.1, §3.5), so this module
evaluates argument expressions rather than pattern-matching tables.

The semantics of the helpers mirror the kernel's ``trace_print_flags_seq`` /
``trace_print_symbols_seq`` (kernel/trace/trace_output.c) and libtraceevent's ``print_str_arg``:
flags print in table order joined by the delimiter, leftover bits as ``0x%x``; a symbol with no
entry prints as ``0x%x``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from importers.errors import CaptureFormatError


class PrintFmtError(CaptureFormatError):
    """A print fmt that does not parse."""


class CannotEvaluate(Exception):
    """The expression uses something this evaluator does not model (a helper, a pointer)."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>0[xX][0-9a-fA-F]+|\d+)[uUlL]*
    | (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<chr>'(?:[^'\\]|\\.)')
    | (?P<id>[A-Za-z_]\w*)
    | (?P<op>->|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^~!?:(),{}\[\].<>])
    )""",
    re.X | re.S,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
_TYPE_WORDS = frozenset(
    [
        "unsigned",
        "signed",
        "int",
        "long",
        "short",
        "char",
        "void",
        "const",
        "struct",
        "bool",
        "u8",
        "u16",
        "u32",
        "u64",
        "s8",
        "s16",
        "s32",
        "s64",
        "__u8",
        "__u16",
        "__u32",
        "__u64",
        "__s8",
        "__s16",
        "__s32",
        "__s64",
        "size_t",
        "pid_t",
        "gfp_t",
    ]
)
_BINARY_PRECEDENCE = {
    "||": 1,
    "&&": 2,
    "|": 3,
    "^": 4,
    "&": 5,
    "==": 6,
    "!=": 6,
    "<": 7,
    ">": 7,
    "<=": 7,
    ">=": 7,
    "<<": 8,
    ">>": 8,
    "+": 9,
    "-": 9,
    "*": 10,
    "/": 10,
    "%": 10,
}
_UNARY = frozenset("-+~!*&")
_MASK64 = (1 << 64) - 1
_CAST_MASKS = {
    "u8": 0xFF,
    "unsigned char": 0xFF,
    "u16": 0xFFFF,
    "unsigned short": 0xFFFF,
    "u32": 0xFFFFFFFF,
    "unsigned int": 0xFFFFFFFF,
    "unsigned": 0xFFFFFFFF,
    "u64": _MASK64,
    "unsigned long long": _MASK64,
}


@dataclass(frozen=True)
class Expr:
    """A node of a print-fmt argument: ``kind`` names it, ``value`` and ``args`` hold data.

    Kinds: ``num`` (value: int), ``str`` (value: str), ``field`` (``REC->name``; value: name),
    ``name`` (bare identifier), ``unary`` / ``binary`` (value: operator), ``cond`` (c ? a : b),
    ``call`` (value: function name), ``braced`` (``{a, b}``), ``cast`` (value: type), ``member``
    and ``index`` (postfix access, not evaluated).
    """

    kind: str
    value: object = None
    args: tuple[Expr, ...] = ()

    def fields(self) -> frozenset[str]:
        """Names of the record fields (``REC->x``) this expression reads."""
        if self.kind == "field":
            return frozenset([str(self.value)])
        out: frozenset[str] = frozenset()
        for a in self.args:
            out |= a.fields()
        return out

    def yields_text(self) -> bool:
        """Whether the expression can produce text (string literal or a print helper)."""
        if self.kind == "str":
            return True
        if self.kind == "call" and str(self.value).startswith("__print_"):
            return True
        if self.kind == "cond":
            return self.args[1].yields_text() or self.args[2].yields_text()
        return False


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), body)


def _c_integer(tok: str) -> int:
    """A C integer literal: ``0x`` hex, a leading ``0`` octal, else decimal."""
    if re.fullmatch(r"0[0-7]+", tok):
        return int(tok, 8)
    if tok[0] == "0" and tok[1:2].isdigit():
        raise PrintFmtError(f"print fmt: {tok!r} is not an octal number")
    return int(tok, 0)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise PrintFmtError(f"print fmt: unexpected character at {text[pos : pos + 20]!r}")
            kind = m.lastgroup or ""
            self.toks.append((kind, m[kind]))
            pos = m.end()
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str]:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("eof", "")

    def take(self, op: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if op is not None and tok[1] != op:
            raise PrintFmtError(f"print fmt: expected {op!r}, found {tok[1] or 'end'!r}")
        self.i += 1
        return tok

    def expression(self) -> Expr:
        cond = self.binary(1)
        if self.peek()[1] == "?":
            self.take()
            yes = self.expression()
            self.take(":")
            no = self.expression()
            return Expr("cond", None, (cond, yes, no))
        return cond

    def binary(self, level: int) -> Expr:
        left = self.unary()
        while True:
            kind, op = self.peek()
            prec = _BINARY_PRECEDENCE.get(op) if kind == "op" else None
            if prec is None or prec < level:
                return left
            self.take()
            right = self.binary(prec + 1)
            left = Expr("binary", op, (left, right))

    def unary(self) -> Expr:
        kind, op = self.peek()
        if kind == "op" and op in _UNARY:
            self.take()
            return Expr("unary", op, (self.unary(),))
        if op == "(" and self._cast_ahead():
            self.take()
            words = []
            while self.peek()[1] != ")":
                words.append(self.take()[1])
            self.take(")")
            return Expr("cast", " ".join(w for w in words if w != "*"), (self.unary(),))
        return self.postfix(self.primary())

    def _cast_ahead(self) -> bool:
        """``(type words [*...])`` followed by an operand is a cast, not a parenthesis."""
        j, words, typed = 1, 0, False
        while True:
            kind, tok = self.peek(j)
            if kind == "id":
                words += 1
                typed |= tok in _TYPE_WORDS or tok.endswith("_t")
            elif tok == "*" and words:
                typed = True
            elif tok == ")":
                after_kind, after = self.peek(j + 1)
                operand = after_kind in ("id", "num", "str", "chr") or after in ("(", "-", "~", "!")
                return words > 0 and (typed or operand) and operand
            else:
                return False
            j += 1

    def primary(self) -> Expr:
        kind, tok = self.take()
        if kind == "num":
            return Expr("num", _c_integer(tok))
        if kind == "str":
            text = _unescape(tok[1:-1])
            while self.peek()[0] == "str":  # adjacent literals concatenate
                text += _unescape(self.take()[1][1:-1])
            return Expr("str", text)
        if kind == "chr":
            return Expr("num", ord(_unescape(tok[1:-1])[0]))
        if kind == "id":
            return Expr("name", tok)
        if tok == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if tok == "{":
            items = self.arguments("}")
            return Expr("braced", None, tuple(items))
        raise PrintFmtError(f"print fmt: unexpected {tok or 'end'!r}")

    def postfix(self, node: Expr) -> Expr:
        while True:
            tok = self.peek()[1]
            if tok == "->" or tok == ".":
                self.take()
                member = self.take()[1]
                if node.kind == "name" and node.value == "REC" and tok == "->":
                    node = Expr("field", member)
                else:
                    node = Expr("member", member, (node,))
            elif tok == "[":
                self.take()
                index = self.expression()
                self.take("]")
                node = Expr("index", None, (node, index))
            elif tok == "(" and node.kind == "name":
                self.take()
                node = Expr("call", node.value, tuple(self.arguments(")")))
            else:
                return node

    def arguments(self, close: str) -> list[Expr]:
        items: list[Expr] = []
        while self.peek()[1] != close:
            if self.peek()[0] == "eof":
                raise PrintFmtError(f"print fmt: missing {close!r}")
            items.append(self.expression())
            if self.peek()[1] == ",":
                self.take()
        self.take(close)
        return items


def parse_print_fmt(text: str) -> tuple[str, list[Expr]]:
    """Split a ``print fmt:`` value into its printf format and argument expressions.

    Raises :class:`PrintFmtError` when the text is not a quoted format followed by
    comma-separated C expressions.
    """
    parser = _Parser(text)
    kind, tok = parser.take()
    if kind != "str":
        raise PrintFmtError(f"print fmt: must start with a quoted format, got {text[:40]!r}")
    fmt = _unescape(tok[1:-1])
    while parser.peek()[0] == "str":
        fmt += _unescape(parser.take()[1][1:-1])
    args: list[Expr] = []
    try:
        while parser.peek()[0] != "eof":
            parser.take(",")
            args.append(parser.expression())
    except RecursionError:
        # the parser recurses once per nesting level; kernels nest a few levels, not hundreds
        raise PrintFmtError(f"print fmt: nested too deeply: {text[:40]!r}...") from None
    return fmt, args


Value = int | str


def evaluate(expr: Expr, rec: Mapping[str, int]) -> Value:
    """Evaluate ``expr`` with the record fields in ``rec``.

    Integers follow C semantics closely enough for print fmts: comparisons give 0/1, ``~`` works
    on 64 bits, casts to unsigned types mask. Raises :class:`CannotEvaluate` for constructs the
    evaluator does not model (other helpers, pointers, members) or fields absent from ``rec``.
    """
    try:
        return _value(expr, rec)
    except RecursionError:
        # each nesting level is a Python call; a corrupt format can nest past the stack
        raise CannotEvaluate("expression nested too deeply") from None


def _value(expr: Expr, rec: Mapping[str, int]) -> Value:
    kind = expr.kind
    if kind == "num" or kind == "str":
        return expr.value  # type: ignore[return-value]
    if kind == "field":
        try:
            return rec[str(expr.value)]
        except KeyError:
            raise CannotEvaluate(f"field {expr.value} not given") from None
    if kind == "cond":
        return _value(expr.args[1] if _int(expr.args[0], rec) else expr.args[2], rec)
    if kind == "unary":
        v = _int(expr.args[0], rec)
        op = expr.value
        if op == "-":
            return -v
        if op == "+":
            return v
        if op == "~":
            return ~v & _MASK64
        if op == "!":
            return int(not v)
        raise CannotEvaluate(f"pointer operator {op}")
    if kind == "binary":
        return _binary(str(expr.value), _int(expr.args[0], rec), expr.args[1], rec)
    if kind == "cast":
        v = _int(expr.args[0], rec)
        mask = _CAST_MASKS.get(str(expr.value))
        return v & mask if mask is not None else v
    if kind == "call":
        name, args = str(expr.value), expr.args
        # a helper called without its value (and delimiter) is left to the fallthrough
        if name in ("__print_flags", "__print_flags_u64") and len(args) >= 2:
            return print_flags(_int(args[0], rec), args[1], args[2:], rec)
        if name in ("__print_symbolic", "__print_symbolic_u64") and args:
            return print_symbolic(_int(args[0], rec), args[1:], rec)
    raise CannotEvaluate(f"cannot evaluate {kind} {expr.value!r}")


def _int(expr: Expr, rec: Mapping[str, int]) -> int:
    v = _value(expr, rec)
    if isinstance(v, str):
        raise CannotEvaluate("text used as a number")
    return v


def _c_div(a: int, b: int) -> int:
    """C division truncates toward zero (Python's ``//`` floors)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


_BINARY_OPS: dict[str, Callable[[int, int], int]] = {
    "|": operator.or_,
    "^": operator.xor,
    "&": operator.and_,
    "==": lambda a, b: int(a == b),
    "!=": lambda a, b: int(a != b),
    "<": lambda a, b: int(a < b),
    ">": lambda a, b: int(a > b),
    "<=": lambda a, b: int(a <= b),
    ">=": lambda a, b: int(a >= b),
    "<<": lambda a, b: (a << b) & _MASK64 if 0 <= b < 64 else 0,
    ">>": lambda a, b: a >> b if 0 <= b < 64 else 0,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _c_div,
    "%": lambda a, b: a - b * _c_div(a, b),
}


def _binary(op: str, left: int, right_expr: Expr, rec: Mapping[str, int]) -> int:
    if op == "&&":
        return int(bool(left) and bool(_int(right_expr, rec)))
    if op == "||":
        return int(bool(left) or bool(_int(right_expr, rec)))
    right = _int(right_expr, rec)
    if op in ("/", "%") and right == 0:
        raise CannotEvaluate("division by zero")
    return _BINARY_OPS[op](left, right)


def _table(entries: tuple[Expr, ...], rec: Mapping[str, int]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for entry in entries:
        if entry.kind != "braced" or len(entry.args) != 2:
            raise CannotEvaluate('table entry is not {value, "name"}')
        out.append((_int(entry.args[0], rec), str(_value(entry.args[1], rec))))
    return out


def print_flags(
    value: int, delim_expr: Expr, entries: tuple[Expr, ...], rec: Mapping[str, int]
) -> str:
    """``__print_flags(value, delim, {mask, "name"}, ...)`` as the kernel prints it."""
    delim = str(_value(delim_expr, rec))
    parts: list[str] = []
    for mask, name in _table(entries, rec):
        if value == 0 and mask == 0:
            parts.append(name)
            break
        if mask and (value & mask) == mask:
            parts.append(name)
            value &= ~mask
    if value:
        parts.append(f"0x{value & _MASK64:x}")
    return delim.join(parts)


def print_symbolic(value: int, entries: tuple[Expr, ...], rec: Mapping[str, int]) -> str:
    """``__print_symbolic(value, {v, "name"}, ...)``: the name, or ``0x%x`` when none matches."""
    for v, name in _table(entries, rec):
        if v == value:
            return name
    return f"0x{value & _MASK64:x}"

"""EPICS calc expressions as an access-security file's ``CALC`` conditions use them.

The CA server's asLib runs a rule's ``CALC("...")`` through EPICS's own calc engine and
applies the rule only when the result is 1 (between 0.99 and 1.01) and every input it
uses is connected. p4p's ACF engine, which pvconsole's PVA side started from, evaluates
the text as a Python expression instead: ``A#1`` (EPICS "not equal") became ``A`` (``#``
starts a Python comment), ``A=1`` was a syntax error, and any non-zero result counted.
This module parses the EPICS grammar (operators, precedence, functions of EPICS's
``postfix.c``) into a tree once, and evaluates it on the inputs; pure functions.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Mapping, Union

#: The input variables a CALC may use (an ASG's ``INPA`` ... ``INPL``).
VARIABLES = "ABCDEFGHIJKL"

Node = Union[float, str, tuple]


class CalcError(ValueError):
    """An expression EPICS's calc engine would not take (the message says where)."""


def _int(x: float) -> int:
    """A calc operand as the 32-bit integer EPICS's bitwise operators use."""
    if math.isnan(x) or math.isinf(x):
        return 0
    return int(x) & 0xFFFFFFFF


def _signed(u: int) -> float:
    return float(u - (1 << 32) if u & 0x80000000 else u)


def _div(a: float, b: float) -> float:
    if b == 0.0:  # C's double division
        return math.nan if a == 0.0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _mod(a: float, b: float) -> float:
    ib = int(b) if math.isfinite(b) else 0
    if ib == 0:
        return math.nan
    return float(math.fmod(int(a), ib)) if math.isfinite(a) else math.nan


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except (OverflowError, ValueError):
        return math.nan if a < 0 else math.inf


def _safe(fn: Callable[..., float]) -> Callable[..., float]:
    def call(*args: float) -> float:
        try:
            return float(fn(*args))
        except (ValueError, OverflowError):
            return math.nan
    return call


_BINARY: dict[str, Callable[[float, float], float]] = {
    "||": lambda a, b: float(bool(a) or bool(b)),
    "|": lambda a, b: _signed(_int(a) | _int(b)),
    "OR": lambda a, b: _signed(_int(a) | _int(b)),
    "XOR": lambda a, b: _signed(_int(a) ^ _int(b)),
    "&&": lambda a, b: float(bool(a) and bool(b)),
    "&": lambda a, b: _signed(_int(a) & _int(b)),
    "AND": lambda a, b: _signed(_int(a) & _int(b)),
    "<<": lambda a, b: _signed((_int(a) << (_int(b) & 31)) & 0xFFFFFFFF),
    ">>": lambda a, b: float(int(_signed(_int(a))) >> (_int(b) & 31)),
    "=": lambda a, b: float(a == b),
    "==": lambda a, b: float(a == b),
    "#": lambda a, b: float(a != b),
    "!=": lambda a, b: float(a != b),
    "<": lambda a, b: float(a < b),
    "<=": lambda a, b: float(a <= b),
    ">": lambda a, b: float(a > b),
    ">=": lambda a, b: float(a >= b),
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    ">?": lambda a, b: max(a, b),
    "<?": lambda a, b: min(a, b),
    "*": lambda a, b: a * b,
    "/": _div,
    "%": _mod,
    "^": _pow,
    "**": _pow,
}

#: Binding strength of each binary operator (higher binds tighter), as EPICS's postfix.c.
_PRECEDENCE = {
    "||": 1, "|": 1, "OR": 1, "XOR": 1,
    "&&": 2, "&": 2, "AND": 2, "<<": 2, ">>": 2,
    "=": 3, "==": 3, "#": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4, ">?": 4, "<?": 4,
    "*": 5, "/": 5, "%": 5,
    "^": 6, "**": 6,
}

_UNARY: dict[str, Callable[[float], float]] = {
    "-": lambda a: -a,
    "+": lambda a: a,
    "!": lambda a: float(a == 0.0),
    "~": lambda a: _signed(~_int(a) & 0xFFFFFFFF),
    "NOT": lambda a: _signed(~_int(a) & 0xFFFFFFFF),
}

#: Functions: name -> (evaluator, number of arguments; None: one or more).
_FUNCTIONS: dict[str, tuple[Callable[..., float], int | None]] = {
    "ABS": (abs, 1),
    "SQR": (_safe(math.sqrt), 1), "SQRT": (_safe(math.sqrt), 1),
    "EXP": (_safe(math.exp), 1),
    "LN": (_safe(math.log), 1), "LOGE": (_safe(math.log), 1), "LOG": (_safe(math.log10), 1),
    "CEIL": (_safe(math.ceil), 1), "FLOOR": (_safe(math.floor), 1),
    "NINT": (_safe(lambda x: math.floor(x + 0.5) if x >= 0 else math.ceil(x - 0.5)), 1),
    "SIN": (_safe(math.sin), 1), "COS": (_safe(math.cos), 1), "TAN": (_safe(math.tan), 1),
    "ASIN": (_safe(math.asin), 1), "ACOS": (_safe(math.acos), 1), "ATAN": (_safe(math.atan), 1),
    "SINH": (_safe(math.sinh), 1), "COSH": (_safe(math.cosh), 1), "TANH": (_safe(math.tanh), 1),
    "ATAN2": (_safe(math.atan2), 2), "FMOD": (_safe(math.fmod), 2),
    "MAX": (lambda *a: max(a), None), "MIN": (lambda *a: min(a), None),
    "ISNAN": (lambda *a: float(any(math.isnan(x) for x in a)), None),
    "ISINF": (lambda *a: float(any(math.isinf(x) for x in a)), None),
    "FINITE": (lambda *a: float(all(math.isfinite(x) for x in a)), None),
}

_CONSTANTS = {"PI": math.pi, "D2R": math.pi / 180.0, "R2D": 180.0 / math.pi,
              "S2R": math.pi / 648000.0, "R2S": 648000.0 / math.pi,
              "INF": math.inf, "NAN": math.nan}

_NAMES = sorted([*_FUNCTIONS, *_CONSTANTS, "AND", "OR", "XOR", "NOT"], key=len, reverse=True)
_SYMBOLS = sorted({*_BINARY, *_UNARY, "(", ")", ",", "?", ":"} - {"AND", "OR", "XOR", "NOT"},
                  key=len, reverse=True)
_NUMBER = re.compile(r"0X[0-9A-F]+|(?:\d+\.?\d*|\.\d+)(?:E[+-]?\d+)?")


def tokens(text: str) -> list[str]:
    """The expression's tokens (names and letters as EPICS takes them, case aside)."""
    src, out, i = text.upper(), [], 0
    while i < len(src):
        c = src[i]
        if c.isspace():
            i += 1
            continue
        m = _NUMBER.match(src, i)
        if m:
            out.append(m.group())
            i = m.end()
            continue
        if c.isalpha():
            name = next((n for n in _NAMES if src.startswith(n, i)), None)
            if name is None:
                if c not in VARIABLES:
                    raise CalcError(f"unknown name at {text[i:]!r}")
                name = c
            out.append(name)
            i += len(name)
            continue
        sym = next((s for s in _SYMBOLS if src.startswith(s, i)), None)
        if sym is None:
            raise CalcError(f"unexpected {c!r} at {text[i:]!r}")
        out.append(sym)
        i += len(sym)
    return out


class _Parser:
    def __init__(self, toks: list[str]) -> None:
        self.toks, self.i = toks, 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise CalcError(f"expected {want or 'more'}, found {tok or 'the end'}")
        self.i += 1
        return tok

    def expression(self) -> Node:
        """``a ? b : c`` (the loosest), right to left."""
        cond = self.binary(1)
        if self.peek() == "?":
            self.take()
            then = self.expression()
            self.take(":")
            return ("?", cond, then, self.expression())
        return cond

    def binary(self, level: int) -> Node:
        left = self.unary()
        while True:
            op = self.peek()
            prec = _PRECEDENCE.get(op or "")
            if prec is None or prec < level:
                return left
            self.take()
            right = self.binary(prec + 1)  # left to right
            left = (op, left, right)

    def unary(self) -> Node:
        tok = self.peek()
        if tok in _UNARY:
            self.take()
            return ("u" + tok, self.unary())  # type: ignore[operator]
        return self.operand()

    def operand(self) -> Node:
        tok = self.take()
        if tok == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if tok in _FUNCTIONS:
            self.take("(")
            args = [self.expression()]
            while self.peek() == ",":
                self.take()
                args.append(self.expression())
            self.take(")")
            arity = _FUNCTIONS[tok][1]
            if (arity is not None and len(args) != arity) or not args:
                raise CalcError(f"{tok} takes {arity} argument(s), not {len(args)}")
            return ("f" + tok, *args)
        if tok in _CONSTANTS:
            return _CONSTANTS[tok]
        if len(tok) == 1 and tok in VARIABLES:
            return tok
        if _NUMBER.fullmatch(tok):
            return float(int(tok, 16)) if tok.startswith("0X") else float(tok)
        raise CalcError(f"unexpected {tok!r}")


def parse(text: str) -> Node:
    """The expression's tree (CalcError if EPICS's calc engine would not take it)."""
    parser = _Parser(tokens(text))
    if parser.peek() is None:
        raise CalcError("empty expression")
    tree = parser.expression()
    if parser.peek() is not None:
        raise CalcError(f"unexpected {parser.peek()!r} after the expression")
    return tree


def inputs_used(tree: Node) -> set[str]:
    """The input letters the expression reads."""
    if isinstance(tree, str):
        return {tree}
    if isinstance(tree, tuple):
        return set().union(*(inputs_used(n) for n in tree[1:]))
    return set()


def evaluate(tree: Node, inputs: Mapping[str, float]) -> float:
    """The expression's value; an input not given is 0, as asLib's unset ones."""
    if isinstance(tree, float):
        return tree
    if isinstance(tree, str):
        return float(inputs.get(tree, 0.0))
    op = tree[0]
    if op == "?":
        return evaluate(tree[2] if evaluate(tree[1], inputs) else tree[3], inputs)
    args = [evaluate(n, inputs) for n in tree[1:]]
    if op[0] == "u" and op[1:] in _UNARY:
        return _UNARY[op[1:]](args[0])
    if op[0] == "f":
        return float(_FUNCTIONS[op[1:]][0](*args))
    return _BINARY[op](*args)


def grants(tree: Node, inputs: Mapping[str, float]) -> bool:
    """Whether a rule with this CALC applies: asLib takes a result between 0.99 and 1.01
    (the calc's 1, allowing for rounding), not any non-zero one."""
    try:
        result = evaluate(tree, inputs)
    except (ArithmeticError, ValueError):
        return False
    return 0.99 < result < 1.01

#!/usr/bin/env python3
"""
gitleaks agreement: how often does `dlpgate import gitleaks` + `dlpgate scan`
decide as gitleaks does, on gitleaks' own labelled examples?

gitleaks defines each rule of its default configuration in Go
(cmd/generate/config/rules/*.go) together with true positives (strings the
rule must report) and false positives (strings it must not), checked by
utils.Validate / utils.ValidateWithPaths with a detector holding that rule
and the global allowlist. Those examples are the labelled set. They are
built by Go expressions (sample templates, secrets generated from regexes,
concatenations), so this script carries a small interpreter for the subset
of Go they use and a generator of strings from a regex; an example it cannot
evaluate is counted and named, never guessed.

Each rule's examples are scanned with a pack holding that rule alone, as
gitleaks validates them (so a generic rule does not give way to another).

Nothing of gitleaks is kept in this repository: the script reads a gitleaks
source tree (a work tree, or a bare git directory read with `git archive`)
given on the command line, and writes the generated set, the imported pack
and the scan output under build/gitleaks-agree/.

    tests/bench/gitleaks_agree.py --gitleaks DIR [--seed N] [--show N]

It prints the agreement (cases decided as labelled / cases), per label, the
rules that disagree and the disagreeing cases. Exit status 0 always (a
measurement), 2 when it cannot run.
"""
import argparse
import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import io

try:
    import re._parser as sre_parse  # Python 3.11+
    import re._constants as sre_c
except ImportError:  # pragma: no cover
    import sre_parse
    import sre_constants as sre_c

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- Go tokens

class Tok:
    __slots__ = ("kind", "val")

    def __init__(self, kind, val):
        self.kind, self.val = kind, val

    def __repr__(self):
        return f"{self.kind}:{self.val!r}"


GO_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"'}
OPS = sorted("""<<= >>= &^= ... && || <- ++ -- == != <= >= := += -= *= /= %= &= |= ^= << >> &^
+ - * / % & | ^ < > = ! ( ) [ ] { } , ; . :""".split(), key=len, reverse=True)


def go_unquote(body):
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        if n in GO_ESC:
            out.append(GO_ESC[n])
            i += 2
        elif n == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif n == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif n == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif n in "01234567":
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise ValueError("bad escape \\" + n)
    return "".join(out)


def tokenize(src):
    """Go tokens, with Go's automatic semicolons at line ends."""
    toks, i, n = [], 0, len(src)

    def semi_needed():
        if not toks:
            return False
        t = toks[-1]
        return t.kind in ("ident", "string", "number", "rune") or (
            t.kind == "op" and t.val in (")", "]", "}", "++", "--")) or (
            t.kind == "ident" and t.val in ("return", "break", "continue", "fallthrough"))

    while i < n:
        c = src[i]
        if c == "\n":
            if semi_needed():
                toks.append(Tok("op", ";"))
            i += 1
        elif c in " \t\r":
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if "\n" in src[i:j] and semi_needed():
                toks.append(Tok("op", ";"))
            i = j + 2
        elif c == "`":
            j = src.find("`", i + 1)
            toks.append(Tok("string", src[i + 1:j].replace("\r", "")))
            i = j + 1
        elif c in "\"'":  # an interpreted string, or a rune
            j = i + 1
            while src[j] != c:
                j += 2 if src[j] == "\\" else 1
            toks.append(Tok("string" if c == '"' else "rune", go_unquote(src[i + 1:j])))
            i = j + 1
        elif c.isalpha() or c == "_":
            m = re.compile(r"[A-Za-z_0-9]+").match(src, i)
            toks.append(Tok("ident", m.group()))
            i = m.end()
        elif c.isdigit():
            m = re.compile(r"0[xX][0-9a-fA-F_]+|[0-9_]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?").match(src, i)
            v = m.group().replace("_", "")
            toks.append(Tok("number", float(v) if ("." in v or "e" in v.lower()) and not v.lower().startswith("0x")
                            else int(v, 0)))
            i = m.end()
        else:
            for op in OPS:
                if src.startswith(op, i):
                    toks.append(Tok("op", op))
                    i += len(op)
                    break
            else:
                raise ValueError(f"unexpected character {c!r}")
    if semi_needed():
        toks.append(Tok("op", ";"))
    return toks


# ---------------------------------------------------------------- Go parse

class Unknown(Exception):
    """A construct the interpreter does not evaluate."""


class UnknownValue:
    """Stands for a value that could not be evaluated (kept so the cases
    that depend on it are counted, not lost)."""

    def __init__(self, why):
        self.why = why

    def __repr__(self):
        return f"<unknown: {self.why}>"


class Parser:
    def __init__(self, toks):
        self.t, self.i = toks, 0

    def peek(self, k=0):
        j = self.i + k
        return self.t[j] if j < len(self.t) else Tok("eof", None)

    def at(self, val, kind="op"):
        p = self.peek()
        return p.kind == kind and p.val == val

    def take(self, val=None, kind="op"):
        p = self.peek()
        if val is not None and not (p.kind == kind and p.val == val):
            raise SyntaxError(f"expected {val}, got {p}")
        self.i += 1
        return p

    def skip_balanced(self):
        """From an opening bracket to after its match."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        stack = [pairs[self.take().val]]
        while stack:
            p = self.take()
            if p.kind == "op" and p.val in pairs:
                stack.append(pairs[p.val])
            elif p.kind == "op" and p.val == stack[-1]:
                stack.pop()

    # types: only to know where they end and what a composite literal builds
    def parse_type(self):
        p = self.peek()
        if p.kind == "op" and p.val == "*":
            self.take()
            return ("ptr", self.parse_type())
        if p.kind == "op" and p.val == "[":
            self.take()
            if not self.at("]"):
                self.parse_expr()
            self.take("]")
            return ("slice", self.parse_type())
        if p.kind == "ident" and p.val == "map":
            self.take(kind="ident")
            self.take("[")
            k = self.parse_type()
            self.take("]")
            return ("map", k, self.parse_type())
        if p.kind == "ident" and p.val == "func":
            self.take(kind="ident")
            self.skip_balanced()
            if self.at("("):
                self.skip_balanced()
            elif self.peek().kind == "ident" or self.at("*") or self.at("["):
                self.parse_type()
            return ("func",)
        if p.kind == "ident" and p.val in ("struct", "interface"):
            self.take(kind="ident")
            self.skip_balanced()
            return ("struct",)
        name = self.take(kind="ident").val
        if self.at("."):
            self.take()
            name += "." + self.take(kind="ident").val
        return ("named", name)

    def starts_type(self):
        p = self.peek()
        return (p.kind == "op" and p.val in ("[", "*")) or (p.kind == "ident" and p.val in ("map", "func", "struct"))

    # expressions
    BINARY = [["||"], ["&&"], ["==", "!=", "<", "<=", ">", ">="], ["+", "-", "|", "^"],
              ["*", "/", "%", "<<", ">>", "&", "&^"]]

    def parse_expr(self, level=0):
        if level == len(self.BINARY):
            return self.parse_unary()
        left = self.parse_expr(level + 1)
        while self.peek().kind == "op" and self.peek().val in self.BINARY[level]:
            op = self.take().val
            left = ("bin", op, left, self.parse_expr(level + 1))
        return left

    def parse_unary(self):
        p = self.peek()
        if p.kind == "op" and p.val in ("-", "!", "&", "*", "^", "+"):
            self.take()
            return ("un", p.val, self.parse_unary())
        return self.parse_primary()

    def parse_composite_body(self, typ):
        self.take("{")
        elems = []
        while not self.at("}"):
            if self.at("{"):
                v = self.parse_composite_body(None)
            else:
                v = self.parse_expr()
            if self.at(":"):
                self.take()
                k = v
                v = self.parse_composite_body(None) if self.at("{") else self.parse_expr()
                elems.append((k, v))
            else:
                elems.append((None, v))
            if self.at(","):
                self.take()
            elif self.at(";"):  # only before a closing brace
                self.take()
        self.take("}")
        return ("composite", typ, elems)

    def parse_operand(self):
        p = self.peek()
        if p.kind in ("string", "number", "rune"):
            self.take(kind=p.kind)
            return ("lit", p.val)
        if p.kind == "op" and p.val == "(":
            self.take()
            e = self.parse_expr()
            self.take(")")
            return e
        if p.kind == "ident" and p.val == "func":  # a function literal
            self.parse_type()
            self.skip_balanced()
            return ("funclit",)
        if self.starts_type():
            typ = self.parse_type()
            if self.at("{"):
                return self.parse_composite_body(typ)
            return ("type", typ)
        name = self.take(kind="ident").val
        return ("ident", name)

    def parse_primary(self):
        e = self.parse_operand()
        while True:
            if self.at("."):
                self.take()
                if self.at("("):  # type assertion
                    self.skip_balanced()
                    e = ("unknown", "type assertion")
                    continue
                e = ("sel", e, self.take(kind="ident").val)
            elif self.at("("):
                self.take()
                args, spread = [], False
                while not self.at(")"):
                    args.append(self.parse_expr())
                    if self.at("..."):
                        self.take()
                        spread = True
                    if self.at(","):
                        self.take()
                self.take(")")
                e = ("call", e, args, spread)
            elif self.at("["):
                self.take()
                lo = None if self.at(":") else self.parse_expr()
                if self.at(":"):
                    self.take()
                    hi = None if self.at("]") else self.parse_expr()
                    self.take("]")
                    e = ("slice", e, lo, hi)
                else:
                    self.take("]")
                    e = ("index", e, lo)
            elif self.at("{") and e[0] in ("ident", "sel") and self.composite_allowed(e):
                e = self.parse_composite_body(("named", flat_name(e)))
            else:
                return e

    def composite_allowed(self, e):
        # `config.Rule{` and `Name{` are literals; rule code has no `if x {`
        # inside an expression the way we parse (statements skip control flow).
        name = flat_name(e)
        return bool(name) and (name[0].isupper() or "." in name)

    # statements
    def parse_block(self):
        self.take("{")
        stmts = []
        while not self.at("}"):
            s = self.parse_stmt()
            if s:
                stmts.append(s)
        self.take("}")
        return stmts

    def parse_exprlist(self):
        es = [self.parse_expr()]
        while self.at(","):
            self.take()
            es.append(self.parse_expr())
        return es

    def skip_control(self):
        """if/for/switch/go/defer/select: skipped to the end of their blocks;
        returns the names assigned inside (their values become unknown)."""
        start = self.i
        self._skip_control()
        return sorted({self.t[j].val for j in range(start, self.i - 1)
                       if self.t[j].kind == "ident" and self.t[j + 1].kind == "op"
                       and self.t[j + 1].val in ("=", ":=", "+=")})

    def _skip_control(self):
        while not self.at("{"):
            if self.peek().kind == "op" and self.peek().val in ("(", "["):
                self.skip_balanced()
            else:
                self.take(kind=self.peek().kind)
        self.skip_balanced()
        while self.peek().kind == "ident" and self.peek().val == "else":
            self.take(kind="ident")
            self._skip_control() if not self.at("{") else self.skip_balanced()

    def try_range(self):
        """`for k, v := range X { ... }` (the one loop form rule code uses to
        build examples); None, with nothing consumed, for any other."""
        save = self.i
        try:
            self.take("for", kind="ident")
            names = [self.take(kind="ident").val]
            if self.at(","):
                self.take()
                names.append(self.take(kind="ident").val)
            self.take(":=")
            self.take("range", kind="ident")
            over = self.parse_expr()
            return ("range", names, over, self.parse_block())
        except SyntaxError:
            self.i = save
            return None

    def parse_var_spec(self):
        names = [self.take(kind="ident").val]
        while self.at(","):
            self.take()
            names.append(self.take(kind="ident").val)
        if not self.at("="):
            if self.at(";") or self.at(")"):
                return ("define", names, [("lit", None)] * len(names))
            self.parse_type()
        if self.at("="):
            self.take()
            return ("define", names, self.parse_exprlist())
        return ("define", names, [("lit", None)] * len(names))

    def parse_stmt(self):
        p = self.peek()
        if p.kind == "op" and p.val == ";":
            self.take()
            return None
        if p.kind == "ident" and p.val == "for":
            rng = self.try_range()
            if rng:
                return rng
        if p.kind == "ident" and p.val in ("if", "for", "switch", "select", "go", "defer"):
            self.take(kind="ident")
            return ("skipped", p.val, self.skip_control())
        if p.kind == "ident" and p.val in ("var", "const"):
            self.take(kind="ident")
            if self.at("("):
                self.take()
                specs = []
                while not self.at(")"):
                    if self.at(";"):
                        self.take()
                        continue
                    specs.append(self.parse_var_spec())
                self.take(")")
                return ("seq", specs)
            return self.parse_var_spec()
        if p.kind == "ident" and p.val == "return":
            self.take(kind="ident")
            if self.at(";") or self.at("}"):
                return ("return", [])
            return ("return", self.parse_exprlist())
        lhs = self.parse_exprlist()
        if self.peek().kind == "op" and self.peek().val in (":=", "=", "+=", "-="):
            op = self.take().val
            rhs = self.parse_exprlist()
            return ("assign", op, lhs, rhs)
        if self.at("++") or self.at("--"):
            self.take()
        return ("expr", lhs)


def flat_name(e):
    if e[0] == "ident":
        return e[1]
    if e[0] == "sel" and e[1][0] == "ident":
        return e[1][1] + "." + e[2]
    return ""


def parse_file(src):
    """Top-level funcs (name -> (params, body)) and vars (name -> expr)."""
    p = Parser(tokenize(src))
    funcs, pkgvars = {}, {}
    while p.peek().kind != "eof":
        t = p.peek()
        if t.kind == "ident" and t.val == "func":
            p.take(kind="ident")
            if p.at("("):  # a method: skipped
                p.skip_balanced()
            name = p.take(kind="ident").val
            p.take("(")
            params = []
            while not p.at(")"):
                group = [p.take(kind="ident").val]
                while p.at(","):
                    p.take()
                    group.append(p.take(kind="ident").val)
                if not p.at(")"):
                    if p.at("..."):
                        p.take()
                    p.parse_type()
                params += group
                if p.at(","):
                    p.take()
            p.take(")")
            if not p.at("{"):
                if p.at("("):
                    p.skip_balanced()
                else:
                    p.parse_type()
            funcs[name] = (params, p.parse_block())
        elif t.kind == "ident" and t.val in ("var", "const"):
            s = p.parse_stmt()
            for spec in (s[1] if s[0] == "seq" else [s]):
                for n, e in zip(spec[1], spec[2]):
                    pkgvars[n] = e
        elif t.kind == "ident" and t.val in ("import", "type"):
            p.take(kind="ident")
            if p.at("("):
                p.skip_balanced()
            else:
                while not p.at(";"):
                    if p.at("{") or p.at("("):
                        p.skip_balanced()
                    else:
                        p.take(kind=p.peek().kind)
        else:
            p.take(kind=t.kind)
    return funcs, pkgvars


# ---------------------------------------------------------------- strings from a regex

PRINTABLE = [chr(c) for c in range(32, 127)]
WORD = [chr(c) for c in range(48, 58)] + [chr(c) for c in range(65, 91)] + [chr(c) for c in range(97, 123)] + ["_"]
DIGIT = [chr(c) for c in range(48, 58)]
SPACE = [" ", "\t"]
POSIX = {"alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "lower": "a-z", "upper": "A-Z", "xdigit": "0-9a-fA-F",
         "space": r" \t\n\r\f\v", "word": r"\w", "punct": r"!-/:-@\[-`{-~"}


class RegexGen:
    """A random string that a regex matches, in the manner of gitleaks'
    test-secret generator: bounded repeats pick a count in their range,
    unbounded ones add at most `limit` repetitions."""

    def __init__(self, rng, limit=1):
        self.rng, self.limit = rng, limit

    def generate(self, pattern):
        pattern = pattern.replace(r"\z", r"\Z")
        pattern = re.sub(r"\[:(\w+):\]", lambda m: POSIX.get(m.group(1), m.group()), pattern)
        try:
            tree = sre_parse.parse(pattern)
        except Exception as e:
            raise Unknown(f"regex {pattern!r}: {e}")
        return "".join(self.seq(tree))

    def chars_of(self, items):
        chars, neg = set(), False
        for op, av in items:
            if op == sre_c.NEGATE:
                neg = True
            elif op == sre_c.LITERAL:
                chars.add(chr(av))
            elif op == sre_c.RANGE:
                chars.update(chr(c) for c in range(av[0], av[1] + 1))
            elif op == sre_c.CATEGORY:
                chars.update(self.category(av))
            else:
                raise Unknown(f"class item {op}")
        if neg:
            return [c for c in PRINTABLE if c not in chars]
        return sorted(chars)

    @staticmethod
    def category(cat):
        name = str(cat)
        if "NOT" in name:
            base = set(RegexGen.category(getattr(sre_c, name.replace("NOT_", ""))))
            return [c for c in PRINTABLE if c not in base]
        if "DIGIT" in name:
            return DIGIT
        if "WORD" in name:
            return WORD
        if "SPACE" in name:
            return SPACE
        raise Unknown(f"category {name}")

    def seq(self, items):
        out = []
        for op, av in items:
            out.extend(self.one(op, av))
        return out

    def one(self, op, av):
        r = self.rng
        if op == sre_c.LITERAL:
            return [chr(av)]
        if op == sre_c.NOT_LITERAL:
            return [r.choice([c for c in PRINTABLE if c != chr(av)])]
        if op == sre_c.ANY:
            return [r.choice(PRINTABLE)]
        if op == sre_c.IN:
            return [r.choice(self.chars_of(av))]
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            hi = lo + self.limit if hi == sre_c.MAXREPEAT else hi
            out = []
            for _ in range(r.randint(lo, hi)):
                out.extend(self.seq(sub))
            return out
        if op == sre_c.SUBPATTERN:
            return self.seq(av[-1])
        if op == sre_c.BRANCH:
            return self.seq(r.choice(av[1]))
        if op == sre_c.AT:
            return []
        if op == sre_c.CATEGORY:
            return [r.choice(self.category(av))]
        raise Unknown(f"regex construct {op}")


# ---------------------------------------------------------------- evaluation

class Return(Exception):
    def __init__(self, value):
        self.value = value


def go_sprintf(fmt, args):
    out, ai, i = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        m = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])").match(fmt, i)
        if not m:
            raise Unknown("format " + fmt)
        verb = m.group(4)
        i = m.end()
        if verb == "%":
            out.append("%")
            continue
        v = args[ai]
        ai += 1
        if verb in ("s", "v", "d"):
            s = str(v) if not isinstance(v, bool) else ("true" if v else "false")
        elif verb == "q":
            s = json.dumps(v)
        elif verb == "x":
            s = v.encode().hex() if isinstance(v, str) else format(v, "x")
        else:
            raise Unknown("format verb %" + verb)
        width = int(m.group(2) or 0)
        s = s.ljust(width) if "-" in m.group(1) else s.rjust(width, "0" if "0" in m.group(1) else " ")
        out.append(s)
    return "".join(out)


class Interp:
    """Evaluates the subset of Go that gitleaks' rule definitions use to
    build their examples; records every Validate call."""

    def __init__(self, packages, rng):
        self.packages = packages          # pkg name -> (funcs, vars)
        self.rng = rng
        self.gen = RegexGen(rng)
        self.validations = []             # (rule_id, tps, fps, with_paths)
        self.pkgvar_cache = {}

    # -- names
    def lookup(self, name, env, pkg):
        if name in env:
            v = env[name]
            if isinstance(v, UnknownValue):
                raise Unknown(v.why)
            return v
        if name in ("nil",):
            return None
        if name in ("true", "false"):
            return name == "true"
        funcs, pkgvars = self.packages[pkg]
        if name in pkgvars:
            key = (pkg, name)
            if key not in self.pkgvar_cache:
                try:
                    self.pkgvar_cache[key] = self.eval(pkgvars[name], {}, pkg)
                except Unknown as e:
                    self.pkgvar_cache[key] = UnknownValue(str(e))
            v = self.pkgvar_cache[key]
            if isinstance(v, UnknownValue):
                raise Unknown(v.why)
            return v
        if name in funcs:
            return ("func", pkg, name)
        raise Unknown(f"name {name}")

    # -- expressions
    def eval(self, e, env, pkg):
        k = e[0]
        if k == "lit":
            return e[1]
        if k == "ident":
            return self.lookup(e[1], env, pkg)
        if k == "bin":
            a, b = self.eval(e[2], env, pkg), self.eval(e[3], env, pkg)
            op = e[1]
            if op == "+":
                if isinstance(a, str) != isinstance(b, str):
                    raise Unknown("mixed +")
                return a + b
            ops = {"==": lambda: a == b, "!=": lambda: a != b, "-": lambda: a - b, "*": lambda: a * b,
                   "<": lambda: a < b, ">": lambda: a > b, "&&": lambda: a and b, "||": lambda: a or b}
            if op in ops:
                return ops[op]()
            raise Unknown("operator " + op)
        if k == "un":
            v = self.eval(e[2], env, pkg)
            if e[1] in ("&", "*", "+"):
                return v
            if e[1] == "-":
                return -v
            if e[1] == "!":
                return not v
            raise Unknown("unary " + e[1])
        if k == "composite":
            return self.composite(e, env, pkg)
        if k == "sel":
            base = e[1]
            if base[0] == "ident" and base[1] in self.packages and base[1] not in env:
                return self.lookup(e[2], {}, base[1])
            if base[0] == "ident" and base[1] not in env and base[1] in ("b64", "base64"):
                return ("b64enc", e[2])
            v = self.eval(base, env, pkg)
            if isinstance(v, dict) and e[2] in v:
                return v[e[2]]
            if isinstance(v, tuple) and v[0] == "b64enc" and e[2] == "EncodeToString":
                return ("b64fn", v[1])
            raise Unknown(f"selector .{e[2]}")
        if k == "call":
            return self.call(e, env, pkg)
        if k == "index":
            return self.eval(e[1], env, pkg)[self.eval(e[2], env, pkg)]
        if k == "slice":
            v = self.eval(e[1], env, pkg)
            lo = self.eval(e[2], env, pkg) if e[2] else None
            hi = self.eval(e[3], env, pkg) if e[3] else None
            return v[lo:hi]
        raise Unknown(f"expression {k}")

    def composite(self, e, env, pkg):
        typ, elems = e[1], e[2]
        is_map = typ is not None and typ[0] == "map"
        is_struct = typ is not None and typ[0] == "named"
        keyed = elems and elems[0][0] is not None
        if is_map or is_struct or (typ is None and keyed):
            out = {}
            for kexpr, vexpr in elems:
                if is_struct or typ is None and kexpr[0] == "ident":
                    key = kexpr[1] if kexpr[0] == "ident" else self.eval(kexpr, env, pkg)
                else:
                    key = self.eval(kexpr, env, pkg)
                try:
                    out[key] = self.eval(vexpr, env, pkg)
                except Unknown as x:
                    out[key] = UnknownValue(str(x))
            return out
        out = []
        for _, vexpr in elems:
            try:
                out.append(self.eval(vexpr, env, pkg))
            except Unknown as x:
                out.append(UnknownValue(str(x)))
        return out

    def call(self, e, env, pkg):
        fe, arg_exprs, spread = e[1], e[2], e[3]
        if fe[0] == "type":  # a conversion: []byte(s), string(b)
            return self.eval(arg_exprs[0], env, pkg)
        name = flat_name(fe)
        if name in ("string",) and "string" not in env:
            return self.eval(arg_exprs[0], env, pkg)
        if name == "append":
            base = list(self.eval(arg_exprs[0], env, pkg) or [])
            for i, a in enumerate(arg_exprs[1:]):
                try:
                    v = self.eval(a, env, pkg)
                except Unknown as x:
                    v = [UnknownValue(str(x))] if spread and i == len(arg_exprs) - 2 else UnknownValue(str(x))
                if spread and i == len(arg_exprs) - 2:
                    base.extend(v)
                else:
                    base.append(v)
            return base
        if name == "len":
            return len(self.eval(arg_exprs[0], env, pkg))
        # gitleaks' Validate: record the rule's labelled examples
        short = name.split(".")[-1]
        if short in ("Validate", "ValidateWithPaths") and (name.startswith("utils.") or pkg == "utils"):
            rule = self.eval(arg_exprs[0], env, pkg)
            rule_id = rule.get("RuleID") if isinstance(rule, dict) else None
            if isinstance(rule_id, UnknownValue) or not isinstance(rule_id, str):
                raise Unknown("a Validate whose rule id is not known")
            got = []
            for a in arg_exprs[1:3]:
                try:
                    got.append(self.eval(a, env, pkg))
                except Unknown as x:
                    got.append(UnknownValue(str(x)))
            self.validations.append((rule_id, got[0], got[1], short == "ValidateWithPaths"))
            return rule
        args = []
        for a in arg_exprs:
            args.append(self.eval(a, env, pkg))
        if spread and args:
            args = args[:-1] + list(args[-1])
        if name == "secrets.NewSecret":
            return self.gen.generate(args[0])
        if name == "newPlausibleSecret":
            return self.plausible(args[0])
        if name == "fmt.Sprintf":
            return go_sprintf(args[0], args[1:])
        if name == "regexp.MustCompile":
            return args[0]
        if name == "strings.Repeat":
            return args[0] * args[1]
        if name == "strings.ToUpper":
            return args[0].upper()
        if name == "strings.ToLower":
            return args[0].lower()
        if name == "strings.Join":
            return args[1].join(args[0])
        if name == "utils.GenerateSampleSecrets":
            return self.sample_secrets(args[0], args[1])
        if name == "utils.MergeRegexps":
            return "|".join(args)
        f = self.eval(fe, env, pkg) if fe[0] != "ident" or fe[1] in env or name in self.packages[pkg][0] \
            else None
        if isinstance(f, tuple) and f[0] == "b64fn":
            raw = args[0].encode("latin-1") if isinstance(args[0], str) else bytes(args[0])
            enc = base64.urlsafe_b64encode(raw) if "URL" in f[1] else base64.b64encode(raw)
            s = enc.decode()
            return s.rstrip("=") if f[1].startswith("Raw") else s
        if isinstance(f, tuple) and f[0] == "func":
            return self.run_func(f[1], f[2], args)
        raise Unknown(f"call {name or fe[0]}")

    def plausible(self, regex):
        """gitleaks' newPlausibleSecret: a secret with a digit and no stopword."""
        stop = [w.lower() for w in self.lookup("DefaultStopWords", {}, "rules")]
        for _ in range(1000):
            s = self.gen.generate(regex)
            if re.search("[1-9]", s) and not any(w in s.lower() for w in stop):
                return s
        raise Unknown("no plausible secret in 1000 tries")

    def sample_secrets(self, ident, secret):
        """utils.GenerateSampleSecrets: the templates are read from its source
        (the map literal it holds), the replacements from its NewReplacer."""
        funcs, _ = self.packages["utils"]
        params, body = funcs["GenerateSampleSecrets"]
        templates, pairs = None, None
        for st in body:
            if st[0] == "assign" and st[2][0] == ("ident", "samples"):
                templates = self.eval(st[3][0], {}, "utils")
            if st[0] == "assign" and st[2][0] == ("ident", "replacer"):
                call = st[3][0]
                pairs = [self.eval(a, {"identifier": ident, "secret": secret}, "utils") if a[0] != "call"
                         else self.eval(a, {"identifier": ident, "secret": secret}, "utils") for a in call[2]]
        if templates is None or pairs is None:
            raise Unknown("GenerateSampleSecrets changed shape")
        out = []
        for _, tpl in sorted(templates.items()):
            s = tpl
            # strings.NewReplacer: one pass, leftmost, first pair wins
            res, i = [], 0
            while i < len(s):
                for j in range(0, len(pairs), 2):
                    if pairs[j] and s.startswith(pairs[j], i):
                        res.append(pairs[j + 1])
                        i += len(pairs[j])
                        break
                else:
                    res.append(s[i])
                    i += 1
            out.append("".join(res))
        return out

    def run_func(self, pkg, name, args):
        params, body = self.packages[pkg][0][name]
        env = dict(zip(params, args))
        try:
            self.exec_block(body, env, pkg)
        except Return as r:
            return r.value
        return None

    # -- statements
    def exec_block(self, stmts, env, pkg):
        for s in stmts:
            self.exec_stmt(s, env, pkg)

    def exec_stmt(self, s, env, pkg):
        k = s[0]
        if k == "seq":
            for x in s[1]:
                self.exec_stmt(x, env, pkg)
        elif k == "define":
            for n, e in zip(s[1], s[2]):
                try:
                    env[n] = self.eval(e, env, pkg)
                except Unknown as x:
                    env[n] = UnknownValue(str(x))
        elif k == "assign":
            op, lhs, rhs = s[1], s[2], s[3]
            if len(lhs) != len(rhs):
                for t in lhs:
                    if t[0] == "ident":
                        env[t[1]] = UnknownValue("multi-value assignment")
                return
            for t, e in zip(lhs, rhs):
                try:
                    v = self.eval(e, env, pkg)
                    if op == "+=":
                        v = self.eval(t, env, pkg) + v
                except Unknown as x:
                    v = UnknownValue(str(x))
                if t[0] == "ident":
                    env[t[1]] = v
                elif t[0] == "sel" and t[1][0] == "ident" and isinstance(env.get(t[1][1]), dict):
                    env[t[1][1]][t[2]] = v
        elif k == "return":
            vals = []
            for e in s[1]:
                vals.append(self.eval(e, env, pkg))
            raise Return(vals[0] if len(vals) == 1 else vals)
        elif k == "expr":
            for e in s[1]:
                self.eval(e, env, pkg)
        elif k == "range":
            over = self.eval(s[2], env, pkg)
            items = sorted(over.items()) if isinstance(over, dict) else list(enumerate(over))
            for key, val in items:
                env[s[1][0]] = key
                if len(s[1]) > 1:
                    env[s[1][1]] = val
                self.exec_block(s[3], env, pkg)
        elif k == "skipped":
            # control flow is not run: what it would have assigned is unknown
            for n in s[2]:
                if n in env:
                    env[n] = UnknownValue(f"assigned in a `{s[1]}` this script does not run")


def read_gitleaks(path):
    """{relative path: text} of the files we need, from a work tree or a
    git directory (bare or not)."""
    want = ("cmd/generate/config/", "config/gitleaks.toml")
    files = {}
    if os.path.isdir(os.path.join(path, "cmd", "generate")):
        for rel in ("cmd/generate/config/main.go",):
            pass
        for root, _, names in os.walk(os.path.join(path, "cmd", "generate", "config")):
            for n in names:
                full = os.path.join(root, n)
                files[os.path.relpath(full, path)] = open(full, encoding="utf-8").read()
        files["config/gitleaks.toml"] = open(os.path.join(path, "config", "gitleaks.toml"), encoding="utf-8").read()
    else:
        tar = subprocess.run(["git", "--git-dir", path, "archive", "HEAD", "cmd/generate/config", "config/gitleaks.toml"],
                             check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            for m in t.getmembers():
                if m.isfile() and m.name.startswith(want):
                    files[m.name] = t.extractfile(m).read().decode("utf-8")
    return files


def extract_cases(files, seed):
    """[(rule_id, label 'tp'|'fp', text, path or None)], [(rule_id, why)]"""
    rng = random.Random(seed)
    packages = {}
    for pkg, folder in (("rules", "cmd/generate/config/rules/"), ("utils", "cmd/generate/config/utils/"),
                        ("base", "cmd/generate/config/base/")):
        funcs, pkgvars = {}, {}
        for rel, text in sorted(files.items()):
            if rel.startswith(folder) and rel.endswith(".go") and not rel.endswith("_test.go") \
                    and "/" not in rel[len(folder):]:
                f, v = parse_file(text)
                funcs.update(f)
                pkgvars.update(v)
        packages[pkg] = (funcs, pkgvars)
    # the rules main.go puts in the default configuration (not those commented out)
    toks = [t.val for t in tokenize(files["cmd/generate/config/main.go"])]
    order = [toks[i + 2] for i in range(len(toks) - 4)
             if toks[i] == "rules" and toks[i + 1] == "." and toks[i + 3] == "(" and toks[i + 4] == ")"]
    interp = Interp(packages, rng)
    skipped = []
    for fn in order:
        if fn not in packages["rules"][0]:
            skipped.append((fn, "function not found"))
            continue
        try:
            interp.run_func("rules", fn, [])
        except Unknown as x:
            skipped.append((fn, str(x)))
    cases = []
    for rule_id, tps, fps, with_paths in interp.validations:
        for label, group in (("tp", tps), ("fp", fps)):
            if isinstance(group, UnknownValue):
                skipped.append((rule_id, f"{label}s: {group.why}"))
                continue
            items = sorted(group.items()) if isinstance(group, dict) else [(None, v) for v in group or []]
            for p, v in items:
                if isinstance(v, UnknownValue) or not isinstance(v, str):
                    skipped.append((rule_id, f"a {label}: {getattr(v, 'why', type(v).__name__)}"))
                    continue
                cases.append((rule_id, label, v, p if with_paths else None))
    return cases, skipped


# ---------------------------------------------------------------- scanning

def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def single_rule_packs(pack_text, work):
    """{rule id: path of a pack holding only that rule}: gitleaks validates
    each rule's examples with a detector of that rule alone (and the
    global allowlist, which the importer folds into every rule), so a
    generic rule's example is not given way to a specific rule's."""
    head, _, body = pack_text.partition("local M = {}\n")
    blocks = re.split(r'(?m)^(?=M\[")', body.rsplit("return M", 1)[0])
    out = {}
    pdir = os.path.join(work, "packs")
    shutil.rmtree(pdir, ignore_errors=True)
    os.makedirs(pdir)
    for i, b in enumerate(x for x in blocks if x.startswith('M["')):
        rule = re.match(r'M\["([^"]+)"\]', b).group(1)
        path = os.path.join(pdir, f"rule{i:03d}.lua")
        with open(path, "w") as f:
            f.write(head + "local M = {}\n" + b + "return M\n")
        out[rule] = path
    return out


def scan_cases(dlpgate, packs, cases, work):
    """{case index: {detector: count}}, each case scanned with its rule's pack"""
    cdir = os.path.join(work, "cases")
    shutil.rmtree(cdir, ignore_errors=True)
    os.makedirs(cdir)
    found = {i: {} for i in range(len(cases))}
    plain = {}  # rule -> [file names]
    by_name = {}
    for i, (rule, _, text, path) in enumerate(cases):
        if rule not in packs:
            continue
        if path is None:
            name = os.path.join(cdir, f"case{i:05d}")
            with open(name, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            plain.setdefault(rule, []).append(name)
            by_name[name] = i
        else:
            # a file of that name, scanned from its folder: gitleaks matches
            # path rules and path allowlists against the name as given
            d = os.path.join(cdir, f"path{i:05d}")
            os.makedirs(os.path.join(d, os.path.dirname(path)) if os.path.dirname(path) else d, exist_ok=True)
            with open(os.path.join(d, path), "w", encoding="utf-8", newline="") as f:
                f.write(text)
            r = run([dlpgate, "scan", packs[rule], path], cwd=d)
            collect(r.stdout, {path: i}, found)
    for rule, names in plain.items():
        for k in range(0, len(names), 500):
            r = run([dlpgate, "scan", packs[rule]] + names[k:k + 500])
            if r.returncode != 0:
                sys.stderr.write(r.stderr)
            collect(r.stdout, by_name, found)
    return found


def collect(stdout, by_name, found):
    for line in stdout.splitlines():
        rec = json.loads(line)
        i = by_name.get(rec["file"])
        if i is not None:  # a span several detectors found is one line naming them all
            for name in rec.get("detectors", [rec["detector"]]):
                found[i][name] = found[i].get(name, 0) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gitleaks", required=True, help="gitleaks source: a work tree or a git directory")
    ap.add_argument("--dlpgate", default=os.path.join(TOP, "build", "dlpgate"))
    ap.add_argument("--work", default=os.path.join(TOP, "build", "gitleaks-agree"))
    ap.add_argument("--seed", type=int, default=1, help="for the generated secrets (default 1)")
    ap.add_argument("--show", type=int, default=60, help="disagreeing cases to print (default 60)")
    a = ap.parse_args()
    if not os.access(a.dlpgate, os.X_OK):
        sys.exit(f"gitleaks_agree: no {a.dlpgate}: run make first")
    files = read_gitleaks(a.gitleaks)
    os.makedirs(a.work, exist_ok=True)
    cases, skipped = extract_cases(files, a.seed)
    with open(os.path.join(a.work, "cases.json"), "w") as f:
        json.dump([{"rule": r, "label": l, "text": t, "path": p} for r, l, t, p in cases], f, indent=1)
    toml = os.path.join(a.work, "gitleaks.toml")
    with open(toml, "w") as f:
        f.write(files["config/gitleaks.toml"])
    pack = os.path.join(a.work, "pack.lua")
    r = run([a.dlpgate, "import", "gitleaks", toml])
    if r.returncode != 0:
        sys.exit("gitleaks_agree: import failed:\n" + r.stderr)
    with open(pack, "w") as f:
        f.write(r.stdout)
    import_notes = [l for l in r.stderr.splitlines() if l.strip()]
    rules_in_pack = set(re.findall(r'^M\["([^"]+)"\]', r.stdout, re.M))
    found = scan_cases(a.dlpgate, single_rule_packs(r.stdout, a.work), cases, a.work)

    agree, rows, per_rule = 0, [], {}
    tally = {"tp": [0, 0], "fp": [0, 0]}
    for i, (rule, label, text, path) in enumerate(cases):
        n = found[i].get(rule, 0)
        ok = (n == 1 if path is not None else n > 0) if label == "tp" else n == 0
        tally[label][0] += ok
        tally[label][1] += 1
        agree += ok
        if not ok:
            rows.append((rule, label, n, text, path))
            per_rule[rule] = per_rule.get(rule, 0) + 1
    total = len(cases)
    print(f"gitleaks agreement: {agree}/{total} = {100.0 * agree / max(total, 1):.2f}%  "
          f"(true positives found {tally['tp'][0]}/{tally['tp'][1]}, "
          f"false positives not found {tally['fp'][0]}/{tally['fp'][1]}; seed {a.seed})")
    missing = sorted({r for r, *_ in cases} - rules_in_pack)
    if missing:
        print(f"rules with cases but not in the imported pack: {', '.join(missing)}")
    print(f"examples not evaluated (Go this script does not interpret): {len(skipped)}")
    for who, why in skipped[:20]:
        print(f"  {who}: {why[:120]}")
    if import_notes:
        print("import said:")
        for l in import_notes[:40]:
            print("  " + l)
    if per_rule:
        print("disagreeing rules: " + ", ".join(f"{r} ({n})" for r, n in sorted(per_rule.items(), key=lambda x: -x[1])))
    for rule, label, n, text, path in rows[:a.show]:
        what = "not found" if label == "tp" else f"found {n}x"
        where = f" [{path}]" if path else ""
        print(f"  {rule} {label} {what}{where}: {json.dumps(text)[:200]}")
    if len(rows) > a.show:
        print(f"  ... {len(rows) - a.show} more (--show N)")


if __name__ == "__main__":
    main()

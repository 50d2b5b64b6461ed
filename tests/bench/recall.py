#!/usr/bin/env python3
"""PII recall on formatted, encoded and wrapped values (issue 16's goal: >= 99%).

Table-driven: TYPES lists each identifier the packs find (its generator of
valid values, checksums included, the detectors that may find it, the word
or key that labels it), FORMATS each way people and programs write one
(groups, '+' and %20 separators, all-percent, base64 of a JSON field, JSON
\\u escapes, a URL-encoded field inside JSON, a line break, lower case,
dashes). Every (type, format, value) becomes one file; one `dlpgate scan`
of them all says which were found by the right detector. A new type is a
generator and a row in TYPES.

    tests/bench/recall.py [--per 40] [--seed 1] [--dlpgate build/dlpgate]

Prints recall per type and format, the misses (masked), and exits 1 below
99%.
"""
import argparse
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import urllib.parse

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- valid values (with their checksums) ----

def luhn_complete(body):
    digits = [int(c) for c in body + "0"]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def card(r):
    kind = r.choice(["visa", "mc", "amex", "discover"])
    if kind == "amex":
        n = luhn_complete(r.choice(["34", "37"]) + "".join(r.choice("0123456789") for _ in range(12)))
        return [n[:4], n[4:10], n[10:]]
    prefix = {"visa": "4", "mc": str(r.randint(51, 55)), "discover": "6011"}[kind]
    n = luhn_complete(prefix + "".join(r.choice("0123456789") for _ in range(15 - len(prefix))))
    return [n[i:i + 4] for i in range(0, 16, 4)]


def iban_check(cc, bban):
    num = "".join(str(int(c, 36)) for c in bban + cc + "00")
    return cc + "%02d" % (98 - int(num) % 97) + bban


def iban(r):
    d = lambda k: "".join(r.choice("0123456789") for _ in range(k))
    L = lambda k: "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(k))
    cc, bban = r.choice([("DE", lambda: d(18)), ("GB", lambda: L(4) + d(14)), ("FR", lambda: d(23)),
                         ("NL", lambda: L(4) + d(10)), ("ES", lambda: d(20))])
    s = iban_check(cc, bban())
    return [s[i:i + 4] for i in range(0, len(s), 4)]


def ssn(r):
    while True:
        area = r.randint(1, 899)
        if area != 666:
            break
    return ["%03d" % area, "%02d" % r.randint(1, 99), "%04d" % r.randint(1, 9999)]


def email(r):
    first = r.choice(["jane", "omar", "li", "maria", "kofi", "sven", "aiko", "pedro"])
    last = r.choice(["doe", "haddad", "wei", "garcia", "mensah", "berg", "tanaka", "silva"])
    dom = r.choice(["corp-mail.com", "fastpost.net", "acme-bank.de", "uni-hamburg.de", "mail.co.uk"])
    return [f"{first}.{last}{r.randint(1, 99)}@{dom}"]


def phone(r):
    if r.random() < 0.5:
        return ["+44", "20", "%04d" % r.randint(1000, 9999), "%04d" % r.randint(0, 9999)]
    return ["%d%02d" % (r.randint(2, 9), r.randint(0, 99)), "%d%02d" % (r.randint(2, 9), r.randint(10, 99)),
            "%04d" % r.randint(0, 9999)]


def aba(r):
    while True:
        prefix = r.choice(list(range(1, 13)) + list(range(21, 33)))
        body = "%02d" % prefix + "".join(r.choice("0123456789") for _ in range(6))
        w = [3, 7, 1, 3, 7, 1, 3, 7]
        check = (10 - sum(int(c) * w[i] for i, c in enumerate(body)) % 10) % 10
        return [body + str(check)]


# (name, generator, detectors that count, label before it, JSON key, separator of its groups)
TYPES = [
    ("credit_card", card, {"credit_card"}, "card number", "card_number", " "),
    ("iban", iban, {"iban"}, "IBAN", "iban", " "),
    ("us_ssn", ssn, {"us_ssn", "us_ssn_labeled"}, "SSN", "ssn", "-"),
    ("email", email, {"email"}, "email", "email", ""),
    ("phone", phone, {"phone"}, "phone", "phone", " "),
    ("aba_routing", aba, {"aba_routing"}, "routing number", "routing_number", ""),
]


# ---- formats: (name, applies to, writer(groups, sep, label, key) -> text) ----

def joined(g, sep):
    return sep.join(g)


def url_plus(g, sep, label, key):
    return f"{key}={urllib.parse.quote_plus(joined(g, sep))}&submit=1"


def url_pct20(g, sep, label, key):
    return f"GET /api?{key}={urllib.parse.quote(joined(g, sep), safe='')} HTTP/1.1"


def url_all(g, sep, label, key):
    return f"{key}=" + "".join("%%%02X" % ord(c) for c in joined(g, sep))


def b64_json(g, sep, label, key):
    blob = base64.b64encode(json.dumps({key: joined(g, sep)}).encode()).decode()
    return json.dumps({"payload": blob})


def json_escaped(g, sep, label, key):
    v = "".join("\\u%04x" % ord(c) if not c.isalnum() or i % 3 == 0 else c for i, c in enumerate(joined(g, sep)))
    return '{"%s":"%s"}' % (key, v)


def url_in_json(g, sep, label, key):
    return json.dumps({"query": f"{key}={urllib.parse.quote(joined(g, sep), safe='')}&page=2"})


def wrapped(g, sep, label, key):
    cut = max(1, len(g) // 2)
    return f"{label}: {joined(g[:cut], sep)}\n{joined(g[cut:], sep)} thanks"


FORMATS = [
    ("plain", lambda t: True, lambda g, sep, label, key: f"{label}: {joined(g, sep)} ok"),
    ("dashes", lambda t: t[0] in ("credit_card", "iban"), lambda g, sep, label, key: f"{label}: {joined(g, '-')}"),
    ("json", lambda t: True, lambda g, sep, label, key: json.dumps({key: joined(g, sep)})),
    ("url_plus", lambda t: True, url_plus),
    ("url_%20", lambda t: True, url_pct20),
    ("url_all", lambda t: True, url_all),
    ("base64_json", lambda t: True, b64_json),
    ("json_escaped", lambda t: True, json_escaped),
    ("url_in_json", lambda t: True, url_in_json),
    ("wrapped", lambda t: t[5] != "" and t[0] != "phone", wrapped),
    ("lower", lambda t: t[0] in ("iban", "email"),
     lambda g, sep, label, key: f"{label}: {joined(g, sep).lower()}"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per", type=int, default=40, help="values per type and format")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dlpgate", default=os.path.join(TOP, "build", "dlpgate"))
    a = ap.parse_args()
    r = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="dlpgate-recall-")
    policy = os.path.join(work, "all.lua")
    for pack in ("pii", "finance"):
        with open(os.path.join(TOP, "rules", pack + ".lua")) as f, open(os.path.join(work, pack + ".lua"), "w") as o:
            o.write(f.read())
    with open(policy, "w") as f:
        f.write('local dlp = require "dlp"\nreturn dlp.merge(require "pii", require "finance")\n')
    cases = {}  # path -> (type, format, accepted detectors, text)
    for t in TYPES:
        for fmt, applies, write in FORMATS:
            if not applies(t):
                continue
            for i in range(a.per):
                g = t[1](r)
                text = write(g, t[5], t[3], t[4])
                path = os.path.join(work, f"{t[0]}.{fmt}.{i}")
                with open(path, "w") as f:
                    f.write(text + "\n")
                cases[path] = (t[0], fmt, t[2], text)
    out = subprocess.run([a.dlpgate, "scan", policy] + sorted(cases), capture_output=True, text=True)
    found = {}
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        names = set(rec.get("detectors", [rec["detector"]]))
        found.setdefault(rec["file"], set()).update(names)
    table, misses = {}, []
    for path, (tname, fmt, accept, text) in cases.items():
        ok = bool(found.get(path, set()) & accept)
        hit, n = table.get((tname, fmt), (0, 0))
        table[(tname, fmt)] = (hit + ok, n + 1)
        if not ok:
            misses.append((tname, fmt, text))
    fmts = [f[0] for f in FORMATS]
    print(f"{'type':14}" + "".join(f"{f:>13}" for f in fmts))
    total_hit = total = 0
    for t in TYPES:
        row = f"{t[0]:14}"
        for f in fmts:
            if (t[0], f) in table:
                h, n = table[(t[0], f)]
                total_hit, total = total_hit + h, total + n
                row += f"{100.0 * h / n:12.1f}%"
            else:
                row += f"{'-':>13}"
        print(row)
    for tname, fmt, text in misses[:20]:
        shown = "".join("#" if c.isdigit() else c for c in text)  # no value in a log
        print(f"miss: {tname} {fmt}: {shown[:100]}")
    recall = 100.0 * total_hit / max(total, 1)
    print(f"recall {recall:.2f}% ({total_hit}/{total} cases; goal >= 99%)")
    subprocess.run(["rm", "-rf", work])
    return 0 if recall >= 99 else 1


if __name__ == "__main__":
    sys.exit(main())

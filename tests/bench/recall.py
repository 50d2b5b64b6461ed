#!/usr/bin/env python3
"""PII recall on formatted, encoded and wrapped values (issue 16's goal: >= 99%).

Table-driven: TYPES lists each identifier the packs find (its generator of
valid values, checksums included, the detectors that may find it, the
labels and JSON keys people put before it, the ways its groups are joined),
FORMATS each way people and programs write one (groups, '+' and %20
separators, all-percent, base64 of a JSON field, JSON \\u escapes, a
URL-encoded field inside JSON, a line break, lower case, dashes). Every
(type, format, value) becomes one file; one `dlpgate scan` of them all says
which were found by the right detector. A new type is a generator and a
row in TYPES.

The national identity numbers (NINO, SIN, CPF, CNPJ, PAN, Aadhaar,
Steuer-ID, NIR, DNI, NIE, BSN, codice fiscale, passports) are looked for
only near their labels, by design, so each case carries one, as a real
document or form does. Their generators follow the issuers' published
rules, written apart from engine/detect/validate_id.c so that one's mistake
is not the other's. A format that cannot apply to a type (lower case of
digits, a line break inside a one-token number) is named with its reason
in the type's row and printed under the table: nothing is left out
silently.

    tests/bench/recall.py [--per 40] [--seed 1] [--dlpgate build/dlpgate]
                          [--misses 20] [--unmasked]

Prints recall per type and format, the misses (masked; --unmasked prints
them as generated, to debug a detector: the values are nobody's), and exits
1 below 99%.
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


# ---- national identity and tax numbers (issue 16's 14 identifier types) ----
# Written from the issuers' published rules, not from engine/detect/
# validate_id.c, so a mistake in one is not repeated in the other. Each
# returns the number's segments; its row's `writings` say how people join
# them (a string: the same separator in every gap; a list: one per gap).

DIG = "0123456789"
AZ = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def digs(r, k):
    return "".join(r.choice(DIG) for _ in range(k))


def uk_nino(r):
    # HMRC: first letter not D F I Q U V, second not D F I O Q U V, and
    # never BG GB KN NK NT TN ZZ; six digits; suffix A-D
    while True:
        p = r.choice("ABCEGHJKLMNOPRSTWXYZ") + r.choice("ABCEGHJKLMNPRSTWXYZ")
        d = digs(r, 6)
        if p not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ") and len(set(d)) > 1:
            return [p, d[:2], d[2:4], d[4:], r.choice("ABCD")]


def ca_sin(r):
    # 9 digits, Luhn; the first is the province group (0 and 8 unused)
    while True:
        n = luhn_complete(r.choice("12345679") + digs(r, 7))
        if len(set(n)) > 1:
            return [n[:3], n[3:6], n[6:]]


def mod11_br(body, weights):
    rest = sum(int(c) * w for c, w in zip(body, weights)) % 11
    return "0" if rest < 2 else str(11 - rest)


def br_cpf(r):
    # Receita Federal: two mod-11 check digits, weights 10..2 then 11..2
    while True:
        b = digs(r, 9)
        if len(set(b)) > 1:
            break
    b += mod11_br(b, range(10, 1, -1))
    b += mod11_br(b, range(11, 1, -1))
    return [b[:3], b[3:6], b[6:9], b[9:]]


def br_cnpj(r):
    # 8-digit root, 4-digit branch (0001 the head office), two mod-11 digits
    # with weights 5..2,9..2 then 6..2,9..2
    b = digs(r, 8) + r.choice(["0001", "0001", "0002", "%04d" % r.randint(1, 99)])
    b += mod11_br(b, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    b += mod11_br(b, [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    return [b[:2], b[2:5], b[5:8], b[8:12], b[12:]]


def in_pan(r):
    # Income Tax Department: 3 letters, the holder's type (P person, C
    # company, H HUF, F firm, A AOP, T trust, B BOI, L local authority, J
    # juridical person, G government), the name's initial, 4 digits, a letter
    kind = r.choice("PPPPPCHFATBLJG")
    return ["".join(r.choice(AZ) for _ in range(3)) + kind + r.choice(AZ) + "%04d" % r.randint(1, 9999) + r.choice(AZ)]


# the dihedral group D5 written out (Verhoeff 1969), multiplication table
VERHOEFF_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
              [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
              [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
              [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
VERHOEFF_PERM = [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]  # p(i+1) = p(1) applied to p(i)
VERHOEFF_INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_complete(body):
    def p(i, x):
        for _ in range(i % 8):
            x = VERHOEFF_PERM[x]
        return x
    c = 0
    for i, ch in enumerate(reversed(body)):
        c = VERHOEFF_D[c][p(i + 1, int(ch))]
    return body + str(VERHOEFF_INV[c])


def in_aadhaar(r):
    # UIDAI: 12 digits, never starting 0 or 1, the last a Verhoeff check digit
    n = verhoeff_complete(r.choice("23456789") + digs(r, 10))
    return [n[:4], n[4:8], n[8:]]


def de_steuer_id(r):
    # BZSt: 11 digits, not starting 0; among the first ten exactly one
    # digit occurs twice (or, since 2016, three times but never three in a
    # row) and the others once; the last is ISO 7064 MOD 11,10
    while True:
        twice = r.random() < 0.7
        rep = r.choice(DIG)
        others = r.sample([c for c in DIG if c != rep], 8 if twice else 7)
        d = [rep] * (2 if twice else 3) + others
        r.shuffle(d)
        s = "".join(d)
        if s[0] != "0" and not any(s[i] == s[i + 1] == s[i + 2] for i in range(8)):
            break
    product = 10
    for c in s:
        total = (int(c) + product) % 10 or 10
        product = total * 2 % 11
    s += str((11 - product) % 10)
    return [s[:2], s[2:5], s[5:8], s[8:]]


def fr_nir(r):
    # INSEE: sex, year, month, department (2A/2B in Corsica) and commune,
    # order in the birth register, key = 97 - (number mod 97) with 2A read
    # as 19 and 2B as 18
    sex = r.choice("1212127")
    yy, mm = "%02d" % r.randint(0, 99), "%02d" % r.choice(list(range(1, 13)) * 4 + [20, 30, 50])
    dept = r.choice(["%02d" % r.randint(1, 95)] * 18 + ["2A", "2B"])  # Corsica, 1 in 10 (more than its share)
    commune, order = "%03d" % r.randint(1, 990), "%03d" % r.randint(1, 999)
    numeric = (sex + yy + mm + dept + commune + order).replace("2A", "19").replace("2B", "18")
    key = "%02d" % (97 - int(numeric) % 97)
    return [sex, yy, mm, dept, commune, order, key]


DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni(r):
    # 8 digits and the letter of their value mod 23
    n = "%08d" % r.randint(1000000, 99999999)
    return [n, DNI_LETTERS[int(n) % 23]]


def es_nie(r):
    # X, Y or Z (read as 0, 1, 2 for the letter), 7 digits, mod-23 letter
    x, n = r.choice("XYZ"), digs(r, 7)
    return [x, n, DNI_LETTERS[int(str("XYZ".index(x)) + n) % 23]]


def nl_bsn(r):
    # 9 digits passing the 11-proof: 9*d1 + 8*d2 + ... + 2*d8 - d9 = 0 mod 11
    while True:
        b = digs(r, 8)
        c = sum((9 - i) * int(x) for i, x in enumerate(b)) % 11
        n = b + str(c)
        if c < 10 and len(set(n)) > 1:  # a leading 0 pads the older 8-digit numbers
            return [n[:3], n[3], n[4:6], n[6:]]


CF_ODD = {c: v for c, v in zip("0123456789", [1, 0, 5, 7, 9, 13, 15, 17, 19, 21])}
CF_ODD.update(zip(AZ, [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
                       23]))


def it_cf(r):
    # Agenzia delle Entrate (DM 23/12/1976): 3 surname and 3 name letters,
    # year, month letter, day (+40 for women), municipality (letter, 3
    # digits), check letter; colliding codes swap digits for LMNPQRSTUV
    # from the right (omocodia)
    cons = "BCDFGHJKLMNPRSTVZ"
    s = "".join(r.choice(cons) for _ in range(6)) + "%02d" % r.randint(0, 99) + r.choice("ABCDEHLMPRST")
    s += "%02d" % (r.randint(1, 28) + r.choice([0, 40])) + r.choice("ABCDEFGHILMZ") + "%03d" % r.randint(1, 999)
    if r.random() < 0.1:
        s = list(s)
        for pos in (14, 13, 12, 10, 9, 7, 6)[:r.randint(1, 3)]:
            s[pos] = "LMNPQRSTUV"[int(s[pos])]
        s = "".join(s)
    total = sum(CF_ODD[c] if i % 2 == 0 else (int(c) if c.isdigit() else AZ.index(c)) for i, c in enumerate(s))
    return [s + AZ[total % 26]]


def passport(r):
    # shapes as issued (no check digit outside the machine-readable zone):
    # US 9 digits (or a letter and 8 since 2021), UK 9 digits, DE a letter
    # of CFGHJK and 8 of its alphabet without vowels, FR 2 digits 2 letters
    # 5 digits, IT 2 letters 7 digits, ES 3 letters 6 digits, NL 2 letters,
    # 6 letters or digits and a digit (no O)
    de = "0123456789CFGHJKLMNPRTVWXYZ"
    nl = "ABCDEFGHIJKLMNPQRSTUVWXYZ"
    return [r.choice([
        lambda: r.choice("123456789") + digs(r, 8),
        lambda: r.choice("ABCDEFGHJKLMNPRSTUVWXYZ") + digs(r, 8),
        lambda: r.choice("CFGHJK") + "".join(r.choice(de) for _ in range(8)),
        lambda: digs(r, 2) + "".join(r.choice(AZ) for _ in range(2)) + digs(r, 5),
        lambda: "".join(r.choice(AZ) for _ in range(2)) + digs(r, 7),
        lambda: "".join(r.choice(AZ) for _ in range(3)) + digs(r, 6),
        lambda: "".join(r.choice(nl) for _ in range(2)) + "".join(r.choice(nl + DIG) for _ in range(6)) + digs(r, 1),
    ])()]


# ---- the table ----
# name, generator, the detectors that count, labels written before it (one
# drawn per case), JSON keys / form fields, writings (how its segments are
# joined: a string for every gap, a list for each), and the formats that do
# not apply to it with the reason (printed under the table).

DIGITS_ONLY = "digits only: lower case is the same text"
NO_DASHES = "its writings already hold every separator people use"
ONE_TOKEN = "written as one token: no space for a line to break at"
NO_SPACE = "written with dots, slash and dash, or bare: no space for a line to break at"


def T(name, gen, detectors, labels, keys, writings, skip=None, wrap=None):
    return {"name": name, "gen": gen, "detectors": set(detectors), "labels": labels, "keys": keys,
            "writings": writings, "skip": skip or {}, "wrap": wrap}


TYPES = [
    T("credit_card", card, {"credit_card"}, ["card number"], ["card_number"], [" "],
      {"lower": DIGITS_ONLY}),
    T("iban", iban, {"iban"}, ["IBAN"], ["iban"], [" "]),
    T("us_ssn", ssn, {"us_ssn", "us_ssn_labeled"}, ["SSN"], ["ssn"], ["-"],
      {"dashes": "written with dashes already", "lower": DIGITS_ONLY}),
    T("email", email, {"email"}, ["email"], ["email"], [""],
      {"dashes": "one token", "wrapped": "one token: no space for a line to break at"}),
    T("phone", phone, {"phone"}, ["phone"], ["phone"], [" "],
      {"dashes": "its own separators", "wrapped": "too short to be wrapped", "lower": DIGITS_ONLY}),
    T("aba_routing", aba, {"aba_routing"}, ["routing number"], ["routing_number"], [""],
      {"dashes": "one token", "wrapped": "one token of 9 digits", "lower": DIGITS_ONLY}),
    T("uk_nino", uk_nino, {"uk_nino"},
      ["National Insurance number", "NINO", "NI number", "NI No"],
      ["nino", "ni_number", "national_insurance_number", "niNumber"],
      ["", " ", [" ", "", "", " "]], {"dashes": NO_DASHES},
      # broken between its digit pairs; not right after the prefix letters
      # ("AB\n123456 C": joining a word to the digits after a line break
      # would join every sentence that ends before a number)
      wrap=[" "]),
    T("ca_sin", ca_sin, {"ca_sin"},
      ["SIN", "Social Insurance Number", "SIN #", "numéro d'assurance sociale"],
      ["sin", "sin_number", "social_insurance_number", "sinNumber"],
      [" ", "-", ""], {"dashes": NO_DASHES, "lower": DIGITS_ONLY}),
    T("br_cpf", br_cpf, {"br_cpf", "br_cpf_labeled"},
      ["CPF", "CPF nº", "CPF do titular"],
      ["cpf", "cpf_cliente", "numeroCpf", "nr_cpf"],
      [[".", ".", "-"], [".", ".", "-"], "", ["", "", "-"]],
      {"dashes": NO_DASHES, "wrapped": NO_SPACE, "lower": DIGITS_ONLY}),
    T("br_cnpj", br_cnpj, {"br_cnpj", "br_cnpj_labeled"},
      ["CNPJ", "CNPJ nº", "CNPJ da empresa"],
      ["cnpj", "cnpj_empresa", "numeroCnpj"],
      [[".", ".", "/", "-"], [".", ".", "/", "-"], ""],
      {"dashes": NO_DASHES, "wrapped": NO_SPACE, "lower": DIGITS_ONLY}),
    T("in_pan", in_pan, {"in_pan"},
      ["PAN", "PAN No.", "Permanent Account Number"],
      ["pan", "pan_number", "panNo", "pan_card"],
      [""], {"dashes": NO_DASHES, "wrapped": ONE_TOKEN}),
    T("in_aadhaar", in_aadhaar, {"in_aadhaar"},
      ["Aadhaar", "Aadhaar No.", "Aadhaar number", "UIDAI number"],
      ["aadhaar", "aadhaar_number", "aadhaarNo", "uid_aadhaar"],
      [" ", "", "-"], {"dashes": NO_DASHES, "lower": DIGITS_ONLY}),
    T("de_steuer_id", de_steuer_id, {"de_steuer_id"},
      ["Steuer-ID", "Steuerliche Identifikationsnummer", "IdNr.", "Steueridentifikationsnummer"],
      ["steuer_id", "steuerId", "steuerid", "idnr", "tin"],
      ["", " "], {"dashes": NO_DASHES, "lower": DIGITS_ONLY}),
    T("fr_nir", fr_nir, {"fr_nir"},
      ["N° de sécurité sociale", "NIR", "numéro INSEE", "carte Vitale n°"],
      ["nir", "numero_securite_sociale", "numSecu", "insee"],
      [" ", ""], {"dashes": NO_DASHES}),
    T("es_dni", es_dni, {"es_dni"},
      ["DNI", "NIF", "DNI/NIF", "Documento Nacional de Identidad"],
      ["dni", "nif", "numero_dni", "dniTitular"],
      ["", "-", " "], {"dashes": NO_DASHES, "wrapped": "8 digits and their letter: too short to be wrapped"}),
    T("es_nie", es_nie, {"es_dni"},
      ["NIE", "Número de Identidad de Extranjero", "NIE/NIF"],
      ["nie", "numero_nie", "nif"],
      ["", "-", ["", "-"]], {"dashes": NO_DASHES, "wrapped": ONE_TOKEN}),
    T("nl_bsn", nl_bsn, {"nl_bsn"},
      ["BSN", "Burgerservicenummer", "sofinummer", "BSN-nummer"],
      ["bsn", "burgerservicenummer", "bsnNummer", "bsn_nummer"],
      [["", "", ""], [".", "", "."], ["", ".", "."], [" ", "", " "]],
      {"dashes": NO_DASHES, "lower": DIGITS_ONLY}),
    T("it_cf", it_cf, {"it_cf"},
      ["Codice fiscale", "C.F.", "Cod. Fisc.", "CF"],
      ["codice_fiscale", "codiceFiscale", "cf", "codFiscale"],
      [""], {"dashes": NO_DASHES, "wrapped": ONE_TOKEN}),
    T("passport", passport, {"passport"},
      ["Passport No", "Passport number", "Reisepass-Nr.", "N° de passeport", "Pasaporte"],
      ["passport", "passport_number", "passportNo", "passport_no"],
      [""], {"dashes": NO_DASHES, "wrapped": ONE_TOKEN,
             "lower": "copied from the document's upper-case print; in lower case the NL shape is any word "
                      "ending in a digit"}),
]


# ---- formats: (name, writer(value, label, key) -> text) ----

class Value:
    """One generated number: its segments and the separators of the
    writing drawn for it."""

    def __init__(self, groups, seps):
        self.groups = groups
        self.seps = [seps] * (len(groups) - 1) if isinstance(seps, str) else list(seps)

    def text(self, sep=None, lo=0, hi=None):
        hi = len(self.groups) if hi is None else hi
        out = self.groups[lo]
        for i in range(lo + 1, hi):
            out += (self.seps[i - 1] if sep is None else sep) + self.groups[i]
        return out


def url_plus(v, label, key):
    return f"{key}={urllib.parse.quote_plus(v.text())}&submit=1"


def url_pct20(v, label, key):
    return f"GET /api?{key}={urllib.parse.quote(v.text(), safe='')} HTTP/1.1"


def url_all(v, label, key):
    return f"{key}=" + "".join("%%%02X" % b for b in v.text().encode())


def b64_json(v, label, key):
    blob = base64.b64encode(json.dumps({key: v.text()}).encode()).decode()
    return json.dumps({"payload": blob})


def json_escaped(v, label, key):
    s = v.text()
    e = "".join("\\u%04x" % ord(c) if not c.isalnum() or i % 3 == 0 else c for i, c in enumerate(s))
    return '{"%s":"%s"}' % (key, e)


def url_in_json(v, label, key):
    return json.dumps({"query": f"{key}={urllib.parse.quote(v.text(), safe='')}&page=2"})


def wrapped(v, label, key):
    # the space or dash nearest the middle becomes the line break (a line
    # wraps there, not at a dot)
    gaps = [i for i in range(1, len(v.groups)) if v.seps[i - 1] in (" ", "-")]
    cut = min(gaps, key=lambda i: abs(2 * i - len(v.groups)))
    return f"{label}: {v.text(lo=0, hi=cut)}\n{v.text(lo=cut)} thanks"


FORMATS = [
    ("plain", lambda v, label, key: f"{label}: {v.text()} ok"),
    ("dashes", lambda v, label, key: f"{label}: {v.text('-')}"),
    ("json", lambda v, label, key: json.dumps({key: v.text()})),
    ("url_plus", url_plus),
    ("url_%20", url_pct20),
    ("url_all", url_all),
    ("base64_json", b64_json),
    ("json_escaped", json_escaped),
    ("url_in_json", url_in_json),
    ("wrapped", wrapped),
    ("lower", lambda v, label, key: f"{label}: {v.text().lower()}"),
]


def writing_for(t, fmt, r):
    """The separators for one case, drawn from the type's writings; a
    wrapped case takes one with a space or dash for the line to replace."""
    ways = t["writings"]
    if fmt == "wrapped":
        ways = t.get("wrap") or [w for w in ways if {" ", "-"} & set([w] if isinstance(w, str) else w)]
        if not ways:
            raise SystemExit(f"{t['name']}: wrapped needs a writing with a space or dash, or a reason to skip it")
    return r.choice(ways)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per", type=int, default=40, help="values per type and format")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--misses", type=int, default=20, help="misses to print")
    ap.add_argument("--unmasked", action="store_true", help="print misses as generated (to debug a detector)")
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
        for fmt, write in FORMATS:
            if fmt in t["skip"]:
                continue
            for i in range(a.per):
                v = Value(t["gen"](r), writing_for(t, fmt, r))
                text = write(v, r.choice(t["labels"]), r.choice(t["keys"]))
                path = os.path.join(work, f"{t['name']}.{fmt}.{i}")
                with open(path, "w") as f:
                    f.write(text + "\n")
                cases[path] = (t["name"], fmt, t["detectors"], text)
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
    reasons = {}
    total_hit = total = 0
    for t in TYPES:
        row = f"{t['name']:14}"
        for f in fmts:
            if f in t["skip"]:
                reasons.setdefault(t["skip"][f], []).append(f"{t['name']}/{f}")
            if (t["name"], f) in table:
                h, n = table[(t["name"], f)]
                total_hit, total = total_hit + h, total + n
                row += f"{100.0 * h / n:12.1f}%"
            else:
                row += f"{'-':>13}"
        print(row)
    for why, cells in reasons.items():
        print(f"n/a ({why}): {' '.join(cells)}")
    for tname, fmt, text in misses[:a.misses]:
        # no value in a log, unless asked for while debugging a detector
        # (the values are generated: nobody's)
        shown = text if a.unmasked else "".join("#" if c.isdigit() else c for c in text)
        print(f"miss: {tname} {fmt}: {shown[:100]!r}")
    recall = 100.0 * total_hit / max(total, 1)
    print(f"recall {recall:.2f}% ({total_hit}/{total} cases; goal >= 99%)")
    subprocess.run(["rm", "-rf", work])
    return 0 if recall >= 99 else 1


if __name__ == "__main__":
    sys.exit(main())

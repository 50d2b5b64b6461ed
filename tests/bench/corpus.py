#!/usr/bin/env python3
"""Mixed corpora for the scan benchmark: source code, JSON, logs and prose,
with secrets sprinkled in at a known rate (one line in 500).

usage: corpus.py [--real] SIZE_MB OUT_FILE

dense (the default): every line generated from a 63-word vocabulary in
    which token, secret, key, password, account and security make up a
    tenth of the words: a stress test where about one byte in a hundred
    starts a keyword. Same arguments, same bytes.
--real: the code is this machine's C headers (/usr/include) and Python
    standard library, the prose its documentation (/usr/share/doc), the
    JSON and log lines are generated with words taken from that prose:
    keywords occur as often as they do in real text. Same machine, same
    bytes."""
import glob, gzip, os, random, sys

rng = random.Random(20261121)
words = ("the of and to in is for that with on as was by at be this from or an are it not have which we you "
         "data report account payment customer invoice quarterly review system process request response server "
         "token secret key password config deploy release version update security policy network traffic").split()

def prose():
    return " ".join(rng.choice(words) for _ in range(rng.randint(8, 30))).capitalize() + ".\n"

def code():
    name = rng.choice(words) + "_" + rng.choice(words)
    return rng.choice([
        f"static int {name}(struct ctx *c, size_t n) {{ return c->{rng.choice(words)} + n; }}\n",
        f"def {name}(self, {rng.choice(words)}):\n    return self.{rng.choice(words)}({rng.randint(0, 999)})\n",
        f"const {name} = require('{rng.choice(words)}');\n",
        f"    if ({rng.choice(words)} == NULL) goto out; /* {prose().strip()} */\n",
    ])

def json_rec():
    return ('{"id": %d, "user": "%s", "amount": %d.%02d, "status": "%s", "ts": "2026-11-%02dT%02d:%02d:%02dZ"}\n'
            % (rng.randint(1, 10**9), rng.choice(words), rng.randint(0, 9999), rng.randint(0, 99),
               rng.choice(["ok", "pending", "failed"]), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
               rng.randint(0, 59)))

def log():
    return ("2026-11-21 %02d:%02d:%02d.%03d INFO  [%s] %s took %dms request_id=%08x\n"
            % (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999), rng.choice(words),
               prose().strip()[:60], rng.randint(1, 5000), rng.getrandbits(32)))

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
def rand(n, alphabet=ALNUM):
    return "".join(rng.choice(alphabet) for _ in range(n))

def luhn_card(prefix="4", n=16):
    d = [int(c) for c in prefix] + [rng.randint(0, 9) for _ in range(n - len(prefix) - 1)]
    s = 0
    for i, v in enumerate(reversed(d)):
        v = v * 2 if i % 2 == 0 else v
        s += v - 9 if v > 9 else v
    d.append((10 - s % 10) % 10)
    c = "".join(map(str, d))
    return " ".join(c[i:i + 4] for i in range(0, 16, 4))

def secret():
    return rng.choice([
        lambda: f'aws_access_key_id = "AKIA{rand(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")}"\n',
        lambda: f"token: ghp_{rand(36)}\n",
        lambda: f"card {luhn_card()} exp 12/29\n",
        lambda: f"ssn {rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}\n",
        lambda: f"SLACK_BOT_TOKEN=xoxb-{rng.randint(10**10, 10**11)}-{rng.randint(10**10, 10**11)}-{rand(24)}\n",
        lambda: "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(rand(64, ALNUM + "+/") for _ in range(6)) +
                "\n-----END RSA PRIVATE KEY-----\n",
        lambda: f"stripe.api_key = 'sk_live_{rand(24)}'\n",
    ])()

def real_lines(patterns, limit):
    """Lines of the files matching patterns (sorted, .gz opened), cycled."""
    paths = sorted(p for pat in patterns for p in glob.glob(pat, recursive=True) if os.path.isfile(p))
    lines, total = [], 0
    for path in paths:
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="strict") as f:
                for line in f:
                    lines.append(line)
                    total += len(line)
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        if total >= limit:
            break
    if not lines:
        sys.exit(f"corpus.py: no readable files in {patterns}")
    while True:
        yield from lines


def main():
    args = sys.argv[1:]
    real = args[:1] == ["--real"]
    if real:
        args = args[1:]
    size = int(args[0]) * 1000 * 1000
    if real:
        global words
        docs = real_lines(["/usr/share/doc/**/*.txt", "/usr/share/doc/**/README*", "/usr/share/doc/**/changelog*"],
                          size // 3)
        c = real_lines(["/usr/include/**/*.h"], size // 3)
        py = real_lines(["/usr/lib/python3.*/**/*.py"], size // 3)
        sample = " ".join(next(docs) for _ in range(20000)).split()
        words = [w.strip(".,;:()[]\"'`").lower() for w in sample if w.isascii()]
        words = [w for w in words if w.isalpha()] or words
        gens = [lambda: next(docs), lambda: next(c), lambda: next(py), json_rec, log]
    else:
        gens = [prose, code, json_rec, log]
    written = 0
    with open(args[1], "w") as f:
        while written < size:
            line = secret() if rng.random() < 0.002 else rng.choice(gens)()
            f.write(line)
            written += len(line)

main()

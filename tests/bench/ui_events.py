#!/usr/bin/env python3
"""Loads realistic events into a console through its real ingest path
(enroll, then gzip NDJSON POST /api/v1/events per agent, THREADS
loader processes), for
tests/bench/ui_query.sh.

    ui_events.py URL CACERT SECRET N_EVENTS [AGENTS] [DAYS] [THREADS]

A fleet of AGENTS (200) agents over DAYS (7) days ending now: mostly pass
and inspect, some block and redact (a tenth of blocks monitor-only), a few
shadow and flow records; 25 detectors and 2,000 hosts with skewed
(Zipf-like) popularity, 80 apps, policy versions v1..v6 by age. Events are
valid against schemas/verdict.schema.json. Prints the ingest rate.
"""
import gzip
import http.client
import json
import random
import ssl
import sys
import multiprocessing
import time
import uuid

url, cacert, secret, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
n_agents = int(sys.argv[5]) if len(sys.argv) > 5 else 200
days = int(sys.argv[6]) if len(sys.argv) > 6 else 7
threads = int(sys.argv[7]) if len(sys.argv) > 7 else 4
host, port = url.split("//")[1].split(":")
port = int(port)
ctx = ssl.create_default_context(cafile=cacert)
ctx.check_hostname = False
BATCH = 5000
rng = random.Random(13)

DETECTORS = ["credit_card", "aws_access_key", "github_token", "iban", "email", "us_ssn", "private_key",
             "slack_token", "jwt", "phone", "passport", "gcp_key", "azure_key", "stripe_key", "npm_token",
             "openai_key", "pgp_key", "db_url", "basic_auth", "fr_insee", "de_tax_id", "uk_nino", "es_dni",
             "it_cf", "edm_customers"]
HOSTS = ["h%d.example.com" % i for i in range(2000)]
APPS = [("/usr/bin/app%d" % i, "com.example.app%d" % i) for i in range(80)]


def zipf(n, s=1.1):
    """cumulative weights (random.choices recomputes them per call otherwise)"""
    w, c = [], 0.0
    for i in range(n):
        c += 1.0 / (i + 1) ** s
        w.append(c)
    return w


DET_W = zipf(len(DETECTORS))
HOST_W = zipf(len(HOSTS))
APP_W = zipf(len(APPS), 0.9)


def conn():
    return http.client.HTTPSConnection(host, port, context=ctx, timeout=120)


def post(c, path, body, headers):
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit("%s: %d %s" % (path, r.status, data[:200]))
    return json.loads(data)


agents = []
c = conn()
for i in range(n_agents):
    aid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    a = post(c, "/api/v1/enroll", json.dumps({"enroll_secret": secret, "agent_id": aid, "hostname": "laptop-%03d" % i,
                                               "version": "1.4.0"}), {"Content-Type": "application/json"})
    agents.append((aid, a["token"]))

now_ms = int(time.time() * 1000)
span_ms = days * 86400000


def ts(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


def event(r, aid, seq):
    t = now_ms - r.randrange(span_ms)
    age = (now_ms - t) / span_ms
    pv = "v%d" % (6 - min(5, int(age * 6)))
    x = r.random()
    kind = "verdict" if x < 0.96 else "shadow" if x < 0.98 else "flow"
    app_path, app_sid = APPS[r.choices(range(len(APPS)), cum_weights=APP_W)[0]]
    h = HOSTS[r.choices(range(len(HOSTS)), cum_weights=HOST_W)[0]]
    eid = "%08x-%04x-7%03x-8000-%012x" % (t // 1000 & 0xffffffff, seq >> 32 & 0xffff, r.getrandbits(12), seq & 0xffffffffffff)
    flow = {"id": seq, "source": "explicit", "host": h, "dst_port": 443, "method": r.choice(["POST", "PUT", "GET"]),
            "path": "/upload/%d" % r.randrange(100), "bytes_up": r.randrange(100, 200000), "tls": "TLSv1.3"}
    app = {"path": app_path, "signing_id": app_sid, "anchor": "developer_id"}
    if kind == "flow":
        return {"event": "flow", "id": eid, "agent_id": aid, "time": ts(t), "policy_version": pv, "mode": "bypass",
                "verdict": "bypass", "app": app, "flow": {"id": seq, "source": "transparent", "sni": h, "dst_port": 443}}
    v = r.choices(["pass", "inspect", "block", "redact", "bypass"], [70, 10, 8, 7, 5])[0]
    dets = {}
    if v in ("block", "redact") or r.random() < 0.05:
        for _ in range(1 if r.random() < 0.8 else 2):
            d = DETECTORS[r.choices(range(len(DETECTORS)), cum_weights=DET_W)[0]]
            dets[d] = {"count": r.randrange(1, 4), "samples": ["AK**********YZ"]}
    e = {"event": kind, "id": eid, "agent_id": aid, "time": ts(t), "policy_version": pv, "stage": "request",
         "verdict": v, "monitor": v == "block" and r.random() < 0.1, "rule": "policy.lua:%d" % r.randrange(5, 60),
         "reason": "%s found" % (next(iter(dets)) if dets else "nothing"), "detectors": dets, "app": app, "flow": flow}
    if kind == "shadow":
        e["active_verdict"] = "pass"
        e["active_policy_version"] = pv
        e["policy_version"] = "v7"
    return e


def worker(k):
    r = random.Random(1000 + k)
    c = conn()
    seq = k << 40
    per = total // threads
    sent = 0
    while sent < per:
        aid, tok = agents[r.randrange(len(agents))]
        n = min(BATCH, per - sent)
        lines = []
        for _ in range(n):
            seq += 1
            lines.append(json.dumps(event(r, aid, seq), separators=(",", ":")))
        body = gzip.compress(("\n".join(lines) + "\n").encode(), 1)
        a = post(c, "/api/v1/events", body, {"Authorization": "Bearer " + tok,
                                              "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
        if a["accepted"] != n:
            raise SystemExit("accepted %d of %d" % (a["accepted"], n))
        sent += n


t0 = time.time()
procs = [multiprocessing.Process(target=worker, args=(k,)) for k in range(threads)]
for p in procs:
    p.start()
for p in procs:
    p.join()
    if p.exitcode:
        raise SystemExit("a loader process failed")
el = time.time() - t0
sent = total // threads * threads
print("loaded %d events from %d agents over %d days in %.1f s (%.0f events/s, generation in Python included)"
      % (sent, n_agents, days, el, sent / el))

#!/usr/bin/env python3
"""A small real HTTPS console for the agent's policy tests (test_sync.c).

It speaks the agent side of schemas/console-api.md over real TLS, enough
for one agent: enrollment (answering the bundle_keys it is given), status
posts and event uploads (kept in files the test reads), and the policy
long-poll with ETags and If-None-Match, holding polls until the offer
changes or the wait passes. The test drives it through files in DIR:

  offer.json   the offer body ({"active": ..., "shadow": ...})
  etag         its ETag, e.g. "3.0" with the quotes
  mode         "" (normal), "garbage" (a 200 that is not JSON), "stall"
               (half the body, then nothing), "unauthorized" (401 once on
               the next status post: the agent enrolls again)
  bundle_keys  the key list enrollment answers

and reads back: enroll.json (the last enrollment request), status.json (the
last status post), events.ndjson (every event uploaded), polls.log (one
If-None-Match a line, as each poll arrived).

usage: policy_console.py PORT CERT KEY DIR
"""
import gzip
import http.server
import json
import os
import ssl
import sys
import threading
import time

PORT, CERT, KEY, DIR = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
lock = threading.Lock()


def read(name, default=""):
    try:
        with open(os.path.join(DIR, name), "rb") as f:
            return f.read().decode()
    except FileNotFoundError:
        return default


def write(name, data, mode="w"):
    with lock:
        with open(os.path.join(DIR, name), mode) as f:
            f.write(data)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("console: " + (fmt % args) + "\n")

    def answer(self, status, body=b"", ctype="application/json", extra=()):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        if status != 304 and status != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status not in (204, 304):
            self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        if self.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return data

    def do_POST(self):
        data = self.body()
        if self.path == "/api/v1/enroll":
            req = json.loads(data)
            write("enroll.json", json.dumps(req))
            ans = {"agent_id": req["agent_id"], "token": "ab" * 32}
            if read("bundle_keys"):
                ans["bundle_keys"] = read("bundle_keys")
            self.answer(200, json.dumps(ans).encode())
        elif self.path == "/api/v1/status":
            if read("mode") == "unauthorized":
                write("mode", "")
                self.answer(401, b'{"error":"unauthorized","detail":"unknown token"}')
                return
            write("status.json", data.decode())
            self.answer(204)
        elif self.path == "/api/v1/events":
            lines = [l for l in data.decode().split("\n") if l]
            write("events.ndjson", "".join(l + "\n" for l in lines), "a")
            self.answer(200, json.dumps({"accepted": len(lines), "duplicates": 0}).encode())
        else:
            self.answer(404, b'{"error":"not_found","detail":"no such path"}')

    def do_GET(self):
        if not self.path.startswith("/api/v1/policy"):
            self.answer(404, b'{"error":"not_found","detail":"no such path"}')
            return
        if self.headers.get("Authorization") != "Bearer " + "ab" * 32:
            self.answer(401, b'{"error":"unauthorized","detail":"unknown token"}')
            return
        inm = self.headers.get("If-None-Match", "")
        write("polls.log", inm + "\n", "a")
        unwanted = [t.strip() for t in inm.split(",") if t.strip()]
        wait = 30
        if "wait=" in self.path:
            wait = int(self.path.split("wait=")[1].split("&")[0])
        deadline = time.monotonic() + wait
        etag = read("etag").strip()
        while etag in unwanted and time.monotonic() < deadline:
            time.sleep(0.05)
            etag = read("etag").strip()
        if etag in unwanted:
            self.answer(304, extra=[("ETag", etag)])
            return
        mode = read("mode")
        offer = read("offer.json").encode()
        if mode == "garbage":
            self.answer(200, b"<html>this is not an offer", extra=[("ETag", etag)])
        elif mode == "stall":
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(offer)))
            self.end_headers()
            self.wfile.write(offer[: len(offer) // 2])
            self.wfile.flush()
            time.sleep(120)
        else:
            self.answer(200, offer, extra=[("ETag", etag)])


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", PORT), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
sys.stderr.write("console: listening on %d\n" % PORT)
sys.stderr.flush()
srv.serve_forever()

#!/usr/bin/env python3
"""An HTTPS upstream that records what it receives (tests/packaging).

Usage: recorder.py CERT KEY OUT_DIR
Binds 127.0.0.1 on a free port and writes it to OUT_DIR/port; every
request body is appended to OUT_DIR/received, and the answer is a short
200. The packaging tests send a card through the gateway to it and read
what arrived: what the gateway let through, byte for byte.
"""
import http.server
import os
import ssl
import sys

cert, key, out = sys.argv[1:4]


class Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with open(os.path.join(out, "received"), "ab") as f:
            f.write(body + b"\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, fmt, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
tmp = os.path.join(out, "port.tmp")
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, os.path.join(out, "port"))
srv.serve_forever()

#!/usr/bin/env python3
"""WebSocket peers for test_websocket.c, on Debian's python3-websockets.

  ws_peer.py server PORT CERT KEY LOG
      A TLS WebSocket echo server. Every byte it receives after TLS (the
      handshake and the frames, still masked) is appended to LOG.raw; what
      it understood goes to LOG as JSON lines: the handshake's headers,
      each message (type and text; binary as latin-1), each ping, the close
      code. It accepts permessage-deflate when offered, as real servers do,
      so a gateway that let the offer through would be caught.
  ws_peer.py h2c|deflate PORT CERT KEY LOG
      A TLS server that answers any request with a 101 and then echoes:
      Upgrade: h2c, or (deflate) a WebSocket with permessage-deflate
      whether it was offered or not. Every byte it receives is appended to
      LOG.raw.
  ws_peer.py client PROXY_PORT PORT CAFILE SCENARIO
      A client through the explicit proxy (CONNECT, then TLS trusting
      CAFILE), offering permessage-deflate as browsers do. It prints one
      JSON line per thing it saw back.
  ws_peer.py bench PROXY_PORT PORT CAFILE COUNT SIZE
      Echo benchmark client (tests/bench/websocket.sh): COUNT text
      messages of SIZE bytes, sent while the echoes are read; prints the time.
"""
import asyncio
import json
import os
import socket
import ssl
import sys
import time

import websockets
import websockets.server


def server(port, cert, key, log_path):
    quiet = os.environ.get("WS_PEER_QUIET")  # the benchmark: no per-message log
    log = open(log_path, "a", buffering=1)
    raw = open(log_path + ".raw", "ab", buffering=0)

    def note(**kw):
        log.write(json.dumps(kw) + "\n")

    class Recording(websockets.server.WebSocketServerProtocol):
        def data_received(self, data):
            raw.write(data)
            super().data_received(data)

    async def echo(ws, path):
        note(kind="handshake", path=path, headers=dict(ws.request_headers.raw_items()),
             extensions=[e.name for e in ws.extensions])
        try:
            async for m in ws:
                if quiet:
                    pass
                elif isinstance(m, bytes):
                    note(kind="message", type="binary", data=m.decode("latin-1"))
                else:
                    note(kind="message", type="text", data=m)
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass
        note(kind="close", code=ws.close_code, reason=ws.close_reason)

    async def main():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        async with websockets.serve(echo, "127.0.0.1", port, ssl=ctx, create_protocol=Recording,
                                    max_size=4 << 20):
            print("ready", flush=True)
            await asyncio.Future()

    asyncio.run(main())


SWITCH = {
    "h2c": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    "deflate": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
               b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
}


def switcher(mode, port, cert, key, log_path):
    raw = open(log_path + ".raw", "ab", buffering=0)

    async def serve(reader, writer):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(4096)
            if not chunk:
                return
            raw.write(chunk)
            head += chunk
        writer.write(SWITCH[mode])
        while True:
            chunk = await reader.read(4096)
            if not chunk:
                break
            raw.write(chunk)
            writer.write(chunk)
        writer.close()

    async def main():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server = await asyncio.start_server(serve, "127.0.0.1", port, ssl=ctx)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def tunnel(proxy_port, port):
    s = socket.create_connection(("127.0.0.1", proxy_port))
    s.sendall(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (port, port))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise SystemExit("proxy closed during CONNECT")
        head += chunk
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise SystemExit("CONNECT refused: " + head.decode("latin-1"))
    return s


def client(proxy_port, port, cafile, scenario):
    def say(**kw):
        print(json.dumps(kw), flush=True)

    async def main():
        ctx = ssl.create_default_context(cafile=cafile)
        sock = tunnel(proxy_port, port)
        try:
            ws = await websockets.connect("wss://localhost:%d/chat?room=1" % port, sock=sock, ssl=ctx,
                                          server_hostname="localhost", max_size=4 << 20, open_timeout=10)
        except Exception as e:  # the handshake was refused: say how
            say(kind="refused", error=str(e))
            return
        say(kind="open", extensions=[e.name for e in ws.extensions])
        try:
            for step in scenario.split(","):
                if step == "text":
                    await ws.send("my card is 4111 1111 1111 1111, thanks")
                elif step == "binary":
                    await ws.send(b"\x00\x01card=4111111111111111\xff")
                elif step == "fragments":
                    # one message in three frames, the card cut twice
                    await ws.send(iter(["pay with 4111 11", "11 1111 ", "1111 please"]))
                elif step == "clean":
                    await ws.send("hello, nothing to see")
                elif step == "ping":
                    pong = await ws.ping(b"are-you-there")
                    await asyncio.wait_for(pong, 5)
                    say(kind="pong")
                    continue
                elif step == "credential":
                    await ws.send("key AKIAIOSFODNN7EXAMPLE here")
                elif step == "big":
                    await ws.send("x" * (3 << 20))
                elif step == "close":
                    await ws.close(1000, "done")
                    say(kind="closed", code=ws.close_code)
                    continue
                m = await asyncio.wait_for(ws.recv(), 5)
                if isinstance(m, bytes):
                    say(kind="reply", type="binary", data=m.decode("latin-1"))
                else:
                    say(kind="reply", type="text", data=m)
        except websockets.ConnectionClosed:
            say(kind="closed", code=ws.close_code, reason=ws.close_reason)

    asyncio.run(main())


def bench(proxy_port, port, cafile, count, size):
    async def main():
        ctx = ssl.create_default_context(cafile=cafile)
        ws = await websockets.connect("wss://localhost:%d/bench" % port, sock=tunnel(proxy_port, port), ssl=ctx,
                                      server_hostname="localhost", compression=None)
        msg = ("order %08d " % 0).ljust(size, "x")
        start = time.monotonic()

        async def reader():
            for _ in range(count):
                await ws.recv()

        r = asyncio.ensure_future(reader())
        for i in range(count):
            await ws.send(msg)
        await r
        took = time.monotonic() - start
        await ws.close()
        print("messages=%d size=%d seconds=%.3f rate=%.0f" % (count, size, took, count / took), flush=True)

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1] == "bench":
        bench(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        sys.exit(0)
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    elif sys.argv[1] in SWITCH:
        switcher(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        client(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])

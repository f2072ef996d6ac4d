"""An interop peer on Python `websockets` (legacy asyncio API, 10.x) with
permessage-deflate on, for tests/deflate_interop_test.ts: an echo server or a
scripted client.

    python3 deflate_websockets.py server [--no-context-takeover]
    python3 deflate_websockets.py client [--no-context-takeover] URL < steps.json

Without the flag, websockets' defaults (compression="deflate": context
takeover; as a server it answers with 12-bit windows both ways). With
--no-context-takeover, both sides are told not to keep context
(server_no_context_takeover and client_no_context_takeover).

Prints one JSON object per line on stdout: listening {port},
open {offered | extensions}, message {binary, data}, close {code, reason},
error {message}. The client sends each step ({"text": S} or {"binary":
B64}), waits for its echo, then closes with 1000.
"""

import asyncio
import base64
import json
import signal
import sys

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)


def emit(**event):
    print(json.dumps(event), flush=True)


def message(data):
    binary = isinstance(data, bytes)
    return dict(
        event="message",
        binary=binary,
        data=base64.b64encode(data).decode("ascii") if binary else data,
    )


async def server(no_takeover):
    async def handler(ws, path=None):
        emit(
            event="open",
            offered=ws.request_headers.get("Sec-WebSocket-Extensions", ""),
            extensions=ws.response_headers.get("Sec-WebSocket-Extensions", ""),
        )
        try:
            async for data in ws:
                await ws.send(data)
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        emit(event="close", code=ws.close_code, reason=ws.close_reason or "")

    options = {}
    if no_takeover:
        options = dict(
            compression=None,
            extensions=[
                ServerPerMessageDeflateFactory(
                    server_no_context_takeover=True, client_no_context_takeover=True
                )
            ],
        )
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(
        handler, "127.0.0.1", 0, max_size=None, ping_interval=None, **options
    ) as srv:
        emit(event="listening", port=srv.sockets[0].getsockname()[1])
        await stop


async def client(no_takeover, url):
    steps = json.loads(sys.stdin.read())
    options = {}
    if no_takeover:
        options = dict(
            compression=None,
            extensions=[
                ClientPerMessageDeflateFactory(
                    server_no_context_takeover=True, client_no_context_takeover=True
                )
            ],
        )
    ws = await websockets.connect(url, max_size=None, ping_interval=None, **options)
    emit(event="open", extensions=ws.response_headers.get("Sec-WebSocket-Extensions", ""))
    try:
        for step in steps:
            if "text" in step:
                await ws.send(step["text"])
            else:
                await ws.send(base64.b64decode(step["binary"]))
            emit(**message(await ws.recv()))
        await ws.close(1000)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    emit(event="close", code=ws.close_code, reason=ws.close_reason or "")


def main():
    role = sys.argv[1]
    no_takeover = "--no-context-takeover" in sys.argv
    rest = [a for a in sys.argv[2:] if not a.startswith("--")]
    if role == "server":
        asyncio.run(server(no_takeover))
    elif role == "client":
        asyncio.run(client(no_takeover, rest[0]))
    else:
        emit(event="error", message=f"unknown role {role}")
        sys.exit(2)


main()

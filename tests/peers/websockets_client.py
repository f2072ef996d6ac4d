"""A scripted client on Python `websockets` (legacy asyncio API, 10.x), for the
interop tests. See README.md."""

import asyncio
import base64
import json
import sys

import websockets


def emit(**event):
    print(json.dumps(event), flush=True)


def b64(data):
    return base64.b64encode(data).decode("ascii")


def closed(ws):
    emit(event="close", code=ws.close_code, reason=ws.close_reason or "")


async def main():
    args = sys.argv[1:]
    protocols, origin, url = [], None, None
    while args:
        arg = args.pop(0)
        if arg == "--protocol":
            protocols.append(args.pop(0))
        elif arg == "--origin":
            origin = args.pop(0)
        else:
            url = arg
    steps = json.loads(sys.stdin.read())
    try:
        ws = await websockets.connect(
            url, subprotocols=protocols or None, origin=origin, max_size=None, ping_interval=None
        )
    except websockets.InvalidStatusCode as err:
        emit(event="refused", status=err.status_code)
        return
    emit(event="open", protocol=ws.subprotocol or "")
    try:
        for step in steps:
            if "command" in step:
                await ws.send(step["command"])
            elif "text" in step or "binary" in step:
                await ws.send(step["text"] if "text" in step else base64.b64decode(step["binary"]))
                message = await ws.recv()
                binary = isinstance(message, bytes)
                emit(event="message", binary=binary, data=b64(message) if binary else message)
            elif "ping" in step:
                payload = base64.b64decode(step["ping"])
                await (await ws.ping(payload))
                emit(event="pong", data=b64(payload))
            elif "close" in step:
                await ws.close(step["close"]["code"], step["close"]["reason"])
                closed(ws)
                return
            elif "await_close" in step:
                await ws.wait_closed()
                closed(ws)
                return
    except websockets.ConnectionClosed:
        await ws.wait_closed()
        closed(ws)
        return
    await ws.close()


asyncio.run(main())

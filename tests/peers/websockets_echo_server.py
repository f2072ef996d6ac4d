"""An echo server on Python `websockets` (legacy asyncio API, 10.x), for the
interop tests. See README.md."""

import asyncio
import base64
import json
import signal
import sys

import websockets


def emit(**event):
    print(json.dumps(event), flush=True)


def b64(data):
    return base64.b64encode(data).decode("ascii")


async def await_pong(ws, payload):
    try:
        await (await ws.ping(payload))
        emit(event="pong", data=b64(payload))
    except websockets.ConnectionClosed:
        pass


async def handler(ws, path=None):
    emit(event="open", protocol=ws.subprotocol or "")
    tasks = set()
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("!close "):
                command = json.loads(message[7:])
                await ws.close(command["code"], command["reason"])
            elif isinstance(message, str) and message.startswith("!ping "):
                task = asyncio.create_task(await_pong(ws, base64.b64decode(message[6:])))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:
                await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    emit(event="close", code=ws.close_code, reason=ws.close_reason or "")


async def main():
    protocols = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--protocol"]
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=protocols or None,
        max_size=None,
        ping_interval=None,
    ) as server:
        emit(event="listening", port=server.sockets[0].getsockname()[1])
        await stop


asyncio.run(main())

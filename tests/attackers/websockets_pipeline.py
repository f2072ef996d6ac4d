"""An honest fast client on Python `websockets` (Debian's python3-websockets
10.4, legacy asyncio API) for tests/fast_client_test.ts.

    websockets_pipeline.py URL COUNT SIZE

writes COUNT binary messages of SIZE bytes back to back while a second task
reads every echo and compares it byte for byte (an 8-byte sequence number,
then random bytes); then closes with 1000 and reads the server's answer.

The client is set up so that it is not the bottleneck: no size limit on
incoming messages (max_size=None; the default is 1 MiB), no bound on the
incoming queue (max_queue=None; the reader drains it anyway), a 4 MiB write
buffer before send() waits for the kernel (write_limit), no compression and
no pings of its own.

Prints one JSON object per line: {"event":"open","local":…} once upgraded,
then {"event":"done",…} with what it saw.
"""

import asyncio
import collections
import json
import os
import sys
import time

import websockets


def emit(**event):
    print(json.dumps(event), flush=True)


async def main():
    url, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if size < 8:
        raise SystemExit("SIZE must be at least 8 (the sequence number)")
    ws = await websockets.connect(
        url,
        max_size=None,
        max_queue=None,
        write_limit=4 * 1024 * 1024,
        compression=None,
        ping_interval=None,
        close_timeout=5,
        open_timeout=10,
    )
    local = "%s:%d" % ws.local_address[:2]
    emit(event="open", local=local, version=websockets.__version__)
    started = time.monotonic()
    sent = 0
    # What was sent and not yet echoed, oldest first: memory for what is in
    # flight only, so a long run does not hold every message.
    in_flight = collections.deque()

    async def writer():
        nonlocal sent
        for i in range(count):
            m = i.to_bytes(8, "big") + os.urandom(size - 8)
            in_flight.append(m)
            await ws.send(m)
            sent += 1

    writing = asyncio.create_task(writer())
    received, mismatches, first_bad, read_error = 0, 0, -1, ""
    try:
        while received < count:
            m = await ws.recv()
            if not in_flight or m != in_flight.popleft():
                mismatches += 1
                if first_bad < 0:
                    first_bad = received
            received += 1
    except websockets.ConnectionClosed as err:
        read_error = "closed: %s %s" % (err.code, err.reason)
    write_error = ""
    try:
        await writing
    except websockets.ConnectionClosed as err:
        write_error = "closed: %s %s" % (err.code, err.reason)
    elapsed_ms = round((time.monotonic() - started) * 1000)
    if not read_error:
        await ws.close(code=1000)
    # The code the server sent: its answer to our close, or its own close.
    emit(
        event="done",
        local=local,
        sent=sent,
        received=received,
        mismatches=mismatches,
        first_bad=first_bad,
        read_error=read_error,
        write_error=write_error,
        close_code=ws.close_code if ws.close_code is not None else -1,
        close_text=ws.close_reason or "",
        ms=elapsed_ms,
    )


asyncio.run(main())

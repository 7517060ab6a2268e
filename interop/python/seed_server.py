"""A WebSocket server on Python's `websockets`, with the seed articles' behaviours, for
heartline's interop tests.

usage: python3 seed_server.py MODE [PORT]
  MODE protocol   the server pings every client with protocol Pings, closes a client
                  that does not answer within PING_TIMEOUT_S, and echoes every
                  message back
  MODE text-ping  seed 001: text "ping" is answered with "pong"; other messages come
                  back as "Echo: <message>"
  MODE json-echo  seed 002: JSON messages whose ModeCode is "message" or "heart_beat"
                  are sent back unchanged
  PORT            0 (default) picks a free port
Prints "listening PORT" once it accepts connections. Binds 127.0.0.1 only.
"""

import asyncio
import json
import sys

from websockets.asyncio.server import serve

PING_INTERVAL_S = 0.2
PING_TIMEOUT_S = 0.4
MODES = ("protocol", "text-ping", "json-echo")


async def protocol(ws):
    async for message in ws:
        await ws.send(message)


async def text_ping(ws):
    async for message in ws:
        if message == "ping":
            await ws.send("pong")
        else:
            await ws.send(f"Echo: {message}")


async def json_echo(ws):
    async for message in ws:
        try:
            data = json.loads(message)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("ModeCode") in ("message", "heart_beat"):
            await ws.send(message)


async def main(mode, port):
    handler = {"protocol": protocol, "text-ping": text_ping, "json-echo": json_echo}[mode]
    # Only the protocol mode pings; the seeds' servers never do. websockets would
    # otherwise ping every 20 s by default.
    protocol_mode = mode == "protocol"
    async with serve(
        handler,
        "127.0.0.1",
        port,
        ping_interval=PING_INTERVAL_S if protocol_mode else None,
        ping_timeout=PING_TIMEOUT_S if protocol_mode else None,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening {bound}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        print("usage: python3 seed_server.py protocol|text-ping|json-echo [PORT]", file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))

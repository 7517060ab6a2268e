"""A Python `websockets` client with its own keepalive ping interval.

It connects to URL, lets websockets send its keepalive Pings every
--ping-interval seconds (and answer the server's Pings), and stays connected
until it has seen --pings answers to its own Pings and --pings Pings from the
server. It also checks the seed 001 application heartbeat (text "ping" gets
"pong") and an echo. Then it closes normally (1000) and prints one JSON line:

    {"event": "done", "own_pings_answered": N, "server_pings": M}

Exit status: 0 on success, 1 if the connection dropped or --deadline seconds
passed first, 2 on bad usage.

    python3 ping_client.py ws://127.0.0.1:PORT/ws/?name=python --ping-interval 0.1
"""

import argparse
import asyncio
import json
import logging
import sys

import websockets


class FrameCounter(logging.Handler):
    """Counts keepalive pongs and server pings from websockets' debug log."""

    def __init__(self, changed):
        super().__init__(logging.DEBUG)
        self.own_pings_answered = 0
        self.server_pings = 0
        self.changed = changed

    def emit(self, record):
        if record.msg == "% received keepalive pong":
            self.own_pings_answered += 1
        elif record.msg == "< %s" and str(record.args[0]).startswith("PING"):
            self.server_pings += 1
        else:
            return
        self.changed.set()


async def run(args):
    changed = asyncio.Event()
    counter = FrameCounter(changed)
    logger = logging.getLogger("websockets.client")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    logger.propagate = False

    async with websockets.connect(
        args.url,
        ping_interval=args.ping_interval,
        ping_timeout=max(10 * args.ping_interval, 2.0),
    ) as ws:
        await ws.send("ping")
        reply = await ws.recv()
        if reply != "pong":
            raise RuntimeError(f"expected 'pong' for 'ping', got {reply!r}")
        await ws.send("hello from python")
        reply = await ws.recv()
        if reply != "hello from python":
            raise RuntimeError(f"expected the echo, got {reply!r}")

        # The pings are answered while this waits: websockets reads in the background.
        while counter.own_pings_answered < args.pings or counter.server_pings < args.pings:
            changed.clear()
            closed = asyncio.ensure_future(ws.wait_closed())
            flag = asyncio.ensure_future(changed.wait())
            await asyncio.wait({closed, flag}, return_when=asyncio.FIRST_COMPLETED)
            flag.cancel()
            if closed.done():
                raise RuntimeError(
                    f"connection closed early: code={ws.close_code} reason={ws.close_reason!r} "
                    f"after {counter.own_pings_answered} own pings, {counter.server_pings} server pings"
                )
            closed.cancel()
        await ws.close(1000, "done")

    print(
        json.dumps(
            {
                "event": "done",
                "own_pings_answered": counter.own_pings_answered,
                "server_pings": counter.server_pings,
            }
        ),
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--ping-interval", type=float, default=0.1, help="seconds between keepalive pings")
    parser.add_argument("--pings", type=int, default=5, help="own pings and server pings to see")
    parser.add_argument("--deadline", type=float, default=20.0, help="give up after this many seconds")
    args = parser.parse_args()
    if args.ping_interval <= 0 or args.pings < 1 or args.deadline <= 0:
        parser.error("--ping-interval, --pings and --deadline must be positive")
    try:
        asyncio.run(asyncio.wait_for(run(args), args.deadline))
    except asyncio.TimeoutError:
        print(f"ping_client: not done within {args.deadline} s", file=sys.stderr)
        sys.exit(1)
    except (OSError, RuntimeError, websockets.exceptions.WebSocketException) as err:
        print(f"ping_client: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""A bare aiohttp WebSocket broadcast server: the floor Parley is compared against.

Every text message a client sends on ``/ws`` is relayed, unchanged, to every
connected client (the sender included). No authentication, no persistence, no
validation, no framing protocol on top of WebSocket. ``GET /healthz`` answers 200
once the server listens.

    python bench/baseline_ws_server.py --host 127.0.0.1 --port 8765

Used by bench/room_broadcast.py, which starts it as a subprocess.
"""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web

CLIENTS = web.AppKey("clients", set)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=64 * 1024)
    await ws.prepare(request)
    clients: set[web.WebSocketResponse] = request.app[CLIENTS]
    clients.add(ws)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            # Broadcast: one write per connected client, in this task.
            for peer in list(clients):
                if not peer.closed:
                    await peer.send_str(msg.data)
    finally:
        clients.discard(ws)
    return ws


def create_app() -> web.Application:
    app = web.Application()
    app[CLIENTS] = set()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ws", ws_handler)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

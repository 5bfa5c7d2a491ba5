"""The least a Python HTTP server can do with an upload: a bare ASGI app on uvicorn (httptools and
uvloop, as ``visionserve serve`` runs) that reads the whole body and answers a small fixed JSON. No
framework, no parsing, no model: its latency is the floor of HTTP round trips on this machine.

    python -m benchmarks.baselines.bare_asgi --port 8000
"""

from __future__ import annotations

import argparse
import json
from typing import Any

ANSWER = json.dumps({"classes": [{"label": "tabby, tabby cat", "class_id": 281, "score": 0.5}] * 5}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    b"".join(chunks)  # what any server does with an upload: hold it whole
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="httptools", loop="uvloop", access_log=False)


if __name__ == "__main__":
    main()

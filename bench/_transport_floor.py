"""The transport floor: a bare ASGI app under uvicorn (as `skewfree serve` runs it) that reads a request's whole body
and answers fixed bytes, no framework, no model. What any Python server on this machine pays per request.

    python bench/_transport_floor.py PORT ANSWER_FILE WORK_MS

`POST /invocations` answers at once. `POST /with_work` first spins the CPU for WORK_MS in a thread, off the event loop,
as a server that never blocks its loop must: the floor for such a server whose work takes as long as a predict.
"""
import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn

ANSWER, WORK_S = Path(sys.argv[2]).read_bytes(), float(sys.argv[3]) / 1000
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
POOL = ThreadPoolExecutor(max_workers=1)


def work() -> None:
    end = time.perf_counter() + WORK_S
    while time.perf_counter() < end: pass


async def app(scope, receive, send):
    if scope["type"] != "http": return
    more = True
    while more:  # the whole body, as a route reading `await request.body()` does
        message = await receive(); more = message.get("more_body", False)
    if scope["path"] == "/with_work": await asyncio.get_running_loop().run_in_executor(POOL, work)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)

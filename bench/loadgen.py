"""Load generation shared by the benchmarks: POST many bodies over a few kept-alive connections."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Sequence


def post_all(port: int, path: str, bodies: Sequence[bytes], *, connections: int) -> list[tuple[int, bytes]]:
    """POST every body to 127.0.0.1:`port``path`, one thread per connection taking the next body in turn.

    Returns (status, response body) per body, in the order of `bodies`.
    """
    answers: list[tuple[int, bytes]] = [(0, b"")] * len(bodies)
    cursor = iter(range(len(bodies)))
    lock = threading.Lock()

    def sender() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                conn.close()
                return
            conn.request("POST", path, body=bodies[index], headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answers[index] = (response.status, response.read())

    threads = [threading.Thread(target=sender) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers

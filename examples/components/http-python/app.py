"""A wasi:http service in Python, made a component by componentize-py.

Routes (the same as http-js):
  GET /        200, a JSON hello that names the routes
  GET /books   200, a fixed JSON list of books (library-api's shape)
  POST /echo   200, the request body as it came, with its Content-Type
  other paths  404 {"error": ...}; another method on a route: 405 with Allow

It exports wasi:http/incoming-handler; the host calls `handle` once per request, in a
fresh instance. Blocking stream calls keep it short: no asyncio loop is needed for a
handler that reads one body and writes one answer.
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Head,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from wit_world.imports.streams import StreamError_Closed

LANGUAGE = "python"

BOOKS = [
    {"id": 1, "title": "Dune", "subtitle": "", "author": "Frank Herbert", "isbn": "9780441013593"},
    {"id": 2, "title": "The Left Hand of Darkness", "subtitle": "", "author": "Ursula K. Le Guin", "isbn": "9780441478125"},
    {"id": 3, "title": "Neuromancer", "subtitle": "", "author": "William Gibson", "isbn": "9780441569595"},
]

ROUTES = {"/": "GET", "/books": "GET", "/echo": "POST"}

# The most of a body /echo takes.
MAX_BODY = 64 * 1024
# The most bytes one blocking write takes (wasi:io guarantees 4096).
WRITE_CHUNK = 4096


def method_name(method) -> str:
    names = {Method_Get: "GET", Method_Head: "HEAD", Method_Post: "POST"}
    for kind, name in names.items():
        if isinstance(method, kind):
            return name
    # Method_Other carries its text; the other variants are named by their class.
    value = getattr(method, "value", None)
    return value if isinstance(value, str) else type(method).__name__.split("_", 1)[1].upper()


def read_body(request: IncomingRequest, limit: int) -> bytes | None:
    """The whole body, or None when it is longer than `limit`."""
    body = request.consume()
    data = bytearray()
    with body.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(16 * 1024)
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break  # the end of the body
                raise
            data += chunk
            if len(data) > limit:
                return None
    return bytes(data)


def respond(out: ResponseOutparam, status: int, body: bytes, headers: list[tuple[str, bytes]]) -> None:
    headers = headers + [("content-length", str(len(body)).encode())]
    response = OutgoingResponse(Fields.from_list(headers))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    with outgoing.write() as stream:
        for start in range(0, len(body), WRITE_CHUNK):
            stream.blocking_write_and_flush(body[start : start + WRITE_CHUNK])
    OutgoingBody.finish(outgoing, None)


def json_reply(out: ResponseOutparam, status: int, value, extra=()) -> None:
    body = (json.dumps(value, separators=(",", ":")) + "\n").encode()
    respond(out, status, body, [("content-type", b"application/json"), *extra])


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = method_name(request.method())
        path = (request.path_with_query() or "/").split("?", 1)[0]
        if path != "/":
            path = path.rstrip("/")

        allowed = ROUTES.get(path)
        if allowed is None:
            json_reply(response_out, 404, {"error": f"no route {path}: see GET / for the routes"})
        elif method != allowed:
            json_reply(
                response_out,
                405,
                {"error": f"method {method} is not allowed on {path}; allowed: {allowed}"},
                [("allow", allowed.encode())],
            )
        elif path == "/":
            json_reply(
                response_out,
                200,
                {
                    "message": f"hello from a {LANGUAGE} component",
                    "language": LANGUAGE,
                    "routes": [f"{m} {p}" for p, m in ROUTES.items()],
                },
            )
        elif path == "/books":
            json_reply(response_out, 200, BOOKS)
        else:  # POST /echo
            content_type = request.headers().get("content-type")
            body = read_body(request, MAX_BODY)
            if body is None:
                json_reply(response_out, 413, {"error": f"the request body is larger than {MAX_BODY} bytes"})
                return
            ct = content_type[0] if content_type else b"application/octet-stream"
            respond(response_out, 200, body, [("content-type", ct)])

"""Just enough HTTP/1.x for the status server, without sockets: find the
end of a request head, parse it strictly, check its ``Host``, format an
answer.

Pure functions over bytes: the server's loop keeps to sockets and
deadlines, and whatever a peer sends ends here as a :class:`Request` or
a :class:`BadRequest` (never another exception).  Answers are HTTP/1.0
with ``Connection: close``, ``Cache-Control: no-store`` and
``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import ipaddress
import re
from email.utils import formatdate
from typing import NamedTuple, Optional

#: the largest request head read (request line and headers); beyond: 431
MAX_HEAD = 16 * 1024

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 421: "Misdirected Request",
           431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rf"({_TOKEN}) (/[\x21-\x7e]*) HTTP/1\.([0-9])")
_HEADER = re.compile(rf"({_TOKEN}):[ \t]*(.*?)[ \t]*")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{0,5}))?")


class BadRequest(Exception):
    """A request that cannot be answered as asked: *code* (400 or 431) and
    a short *message* for the peer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class Request(NamedTuple):
    method: str
    path: str           # without the query
    minor: int          # HTTP/1.<minor>
    host: Optional[str]


def head_end(received: bytes | bytearray, start: int = 0) -> int:
    """Where the request head in *received* ends (after its blank line),
    or -1 if it has not all arrived; the blank line is looked for from
    *start* on."""
    found = _HEAD_END.search(received, start)
    return -1 if found is None else found.end()


def parse_head(head: bytes) -> Request:
    """The request in *head* (up to and including its blank line).

    Strict: one space between the parts of the request line, an
    origin-form target (``/...``), HTTP/1.x, ``name: value`` headers
    without folding or control characters, one ``Host`` at most and one
    at least from HTTP/1.1 on.  Anything else is a :class:`BadRequest`.
    """
    if len(head) > MAX_HEAD:
        raise BadRequest(431, "request head too large")
    lines = re.split(r"\r?\n", head.decode("latin-1"))[:-2]
    found = _REQUEST_LINE.fullmatch(lines[0]) if lines else None
    if found is None:
        raise BadRequest(400, "bad request line")
    method, target, minor = found[1], found[2], int(found[3])
    hosts = []
    for line in lines[1:]:
        header = _HEADER.fullmatch(line)
        if header is None or _CONTROL.search(header[2]):
            raise BadRequest(400, "bad header line")
        if header[1].lower() == "host":
            hosts.append(header[2])
    if len(hosts) > 1 or (minor >= 1 and not hosts):
        raise BadRequest(400, "one Host header is required")
    return Request(method, target.split("?", 1)[0], minor,
                   hosts[0] if hosts else None)


def is_loopback_host(host: str) -> bool:
    """True if *host* (a ``Host`` header's value) names this machine's
    loopback: ``localhost`` or a loopback address (IPv6 in brackets),
    with or without a port.

    Any port is accepted: a DNS-rebinding page reaches the server under a
    name of its own, never under these, while a tunnel
    (``ssh -L 8080:localhost:8765``) rightly brings another port.
    """
    found = _HOST.fullmatch(host)
    if found is None or (found[2] and int(found[2]) > 65535):
        return False
    name = found[1]
    return is_loopback_name(name[1:-1] if name.startswith("[") else name)


def is_loopback_name(name: str) -> bool:
    """True for ``localhost`` and loopback addresses (IPv6 ones without
    brackets)."""
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def answer(code: int, body: bytes, kind: str = "text/plain; charset=utf-8",
           *, with_body: bool = True,
           extra: tuple[str, ...] = ()) -> bytes:
    """A whole answer: status line, headers (*extra* ones too), and *body*
    unless *with_body* is false (``HEAD``; ``Content-Length`` still
    counts it)."""
    lines = (f"HTTP/1.0 {code} {REASONS[code]}",
             "Server: atasker-status",
             f"Date: {formatdate(usegmt=True)}",
             f"Content-Type: {kind}",
             f"Content-Length: {len(body)}",
             "Cache-Control: no-store",
             "X-Content-Type-Options: nosniff",
             "Connection: close", *extra, "", "")
    return "\r\n".join(lines).encode("latin-1") + (body if with_body
                                                  else b"")

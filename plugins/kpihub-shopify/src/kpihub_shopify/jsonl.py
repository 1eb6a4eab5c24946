"""A completed bulk operation's JSONL file: downloaded in ranges, read line by line, memory flat.

The file is one JSON object per line (shopify.dev/docs/api/usage/bulk-operations/queries). A
node of a nested *connection* is a line of its own after its parent, carrying ``__parentId``;
lists and objects (an order's ``refunds``, its MoneyBags) stay inside their node's line. Without
``groupObjects: true`` children come somewhere after their parent, not necessarily right after
it (Shopify/shopify-api-ruby#729), so :func:`assemble` requires the grouped order and fails
naming the line otherwise, rather than holding the whole file to sort it out.

The file lives on Shopify's storage host, not the shop, so it is fetched with a requester of its
own that carries no access token, in ``Range`` requests of :data:`CHUNK_BYTES` each: every request
is retried by kpihub's toolkit like any other, and no more than one range is in memory. The signed
URL's query string is registered as a secret so that errors and logs never print it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import orjson

from kpihub import HTTPError, MalformedResponseError, SourceError, register_secret
from kpihub.http import Requester

#: Bytes per range request: bounds the memory a download holds, whatever the file's size.
CHUNK_BYTES = 4 * 1024 * 1024
_TOTAL = re.compile(r"bytes \d+-\d+/(\d+)")


def download_requester(url: str, *, source_id: str, like: Requester, timeout: float, max_attempts: int) -> Requester:
    """A requester for the file's host: the toolkit's retries, the sync's sleep, no shop token."""
    parts = urlsplit(url)
    register_secret(parts.query)  # the signature: whoever holds the URL can read the file
    return Requester(
        source_id=source_id,
        base_url=f"{parts.scheme}://{parts.netloc}",
        timeout=timeout,
        max_attempts=max_attempts,
        sleep=like.wait,
    )


def lines(
    http: Requester, url: str, *, stream: str, size: int | None, chunk_bytes: int | None = None
) -> Iterator[bytes]:
    """The file's lines (without ``\\n``), fetched ``chunk_bytes`` at a time.

    ``size`` is the operation's ``fileSize``: every range must bring exactly its share of it, so a
    short, cut or foreign body is retried by the toolkit like a truncated page (``decode`` raising
    a JSON error is how the requester is told so). Without a size, the ``Content-Range`` says it.

    :raises SourceError: the URL answered 403/404 (expired or wrong), naming the stream.
    """
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    start, rest, total = 0, b"", size
    while total is None or start < total:
        expected = None if total is None else min(chunk_bytes, total - start)
        try:
            headers, body = http.json_and_headers(
                "GET",
                url,
                stream=stream,
                headers={"Range": f"bytes={start}-{start + chunk_bytes - 1}"},
                decode=partial(_whole, expected=expected),
            )
        except HTTPError as exc:
            if exc.status_code in (400, 403, 404, 410):
                raise SourceError(
                    f"{http.source_id}/{stream}: the bulk operation's file answered HTTP {exc.status_code} "
                    f"(its URL expires seven days after the operation completed): {exc}",
                    source=http.source_id,
                    stream=stream,
                ) from None
            raise
        match = _TOTAL.match(headers.get("Content-Range", ""))
        if match is None and start:  # a whole file again, for a range further on
            raise SourceError(
                f"{http.source_id}/{stream}: the bulk operation's file host ignored a Range request",
                source=http.source_id,
                stream=stream,
            )
        if total is None:
            total = int(match.group(1)) if match else len(body)
            if not body and total:
                raise SourceError(f"{http.source_id}/{stream}: an empty range of a {total}-byte bulk file")
        start += len(body)
        parts = body.split(b"\n")
        if len(parts) == 1:  # a line longer than the range goes on in the next one
            rest += body
            continue
        parts[0] = rest + parts[0]  # only the line cut at the range's start is joined (no copy of the range)
        rest = parts.pop()
        yield from (line for line in parts if line)
    if rest:
        yield rest


def _whole(content: bytes, expected: int | None) -> bytes:
    """``content`` if it is the range's full length; else a JSON error, which the requester retries."""
    if expected is not None and len(content) != expected:
        raise orjson.JSONDecodeError(f"{len(content)} bytes of a {expected}-byte range", "", 0)
    return content


def _type(gid: Any) -> str:
    """``LineItem`` of ``gid://shopify/LineItem/1``."""
    return str(gid).split("/")[-2] if str(gid).count("/") >= 3 else ""


def assemble(
    raw: Iterable[bytes], *, where: str, children: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Root nodes, each with its ``__parentId`` lines put back under it.

    ``children`` maps a child's GID type to the field it goes in (``{"LineItem": "lineItems"}``:
    a list of nodes). Only one root and its children are held at a time, which needs the grouped
    order (``groupObjects: true``).

    :raises MalformedResponseError: a line that is not JSON, a child of a type not in
        ``children``, or one whose parent is not the root being read (naming the line).
    """
    children = children or {}
    root: dict[str, Any] | None = None
    tree: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(raw, 1):
        try:
            node = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise MalformedResponseError(f"{where}: line {number} of the bulk file is not JSON ({exc})") from None
        if not isinstance(node, dict):
            raise MalformedResponseError(f"{where}: line {number} of the bulk file is not an object")
        parent = node.pop("__parentId", None)
        if parent is None:
            if root is not None:
                yield root
            root = node
            tree = {str(node.get("id")): node}
            continue
        field = children.get(_type(node.get("id")))
        if field is None or str(parent) not in tree:
            problem = "of a type the query has no connection for" if field is None else f"of {parent}, not read before"
            raise MalformedResponseError(f"{where}: line {number} of the bulk file is a child {problem}")
        tree[str(parent)].setdefault(field, []).append(node)
        tree[str(node.get("id"))] = node
    if root is not None:
        yield root

"""Incremental gzip/deflate decoding with a cap on decoded bytes.

httpx decodes a whole network chunk at once, so a 200 KB gzip bomb can inflate to tens
of megabytes in one call. This decoder inflates in bounded steps and stops one byte past
the cap, so memory never exceeds the cap by more than one step.
"""

from __future__ import annotations

import zlib

from ingest.exceptions import BodyTooLarge, FetchError

# Bound on one zlib output step: memory never exceeds the cap by more than this.
_INFLATE_STEP = 64 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS


class BodyDecoder:
    """Decodes gzip/deflate incrementally, refusing to hold more than ``cap`` bytes."""

    def __init__(self, content_encoding: str, *, cap: int, url: str) -> None:
        self.encoding = _encoding(content_encoding, url)
        self._cap = cap
        self._url = url
        self._parts: list[bytes] = []
        self._size = 0
        self._seen_input = False
        self._sniff = b""  # deflate: first bytes, until we know zlib-wrapped or raw
        self._inflater: zlib._Decompress | None = None
        if self.encoding == "gzip":
            self._inflater = zlib.decompressobj(_GZIP_WBITS)

    @property
    def complete(self) -> bool:
        # No bytes at all is an empty body (some servers label those gzip too).
        return self.encoding == "identity" or not self._seen_input or self._at_end()

    def body(self) -> bytes:
        return b"".join(self._parts)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._seen_input = True
        if self.encoding == "identity":
            self._keep(data)
            return
        if self._inflater is None:
            self._sniff += data
            if len(self._sniff) < 2:
                return
            data, self._sniff = self._sniff, b""
            # "deflate" means zlib-wrapped (RFC 9110) but some servers send raw deflate.
            wbits = _ZLIB_WBITS if _has_zlib_header(data) else _RAW_DEFLATE_WBITS
            self._inflater = zlib.decompressobj(wbits)
        self._inflate(data)

    def _at_end(self) -> bool:
        return self._inflater is not None and self._inflater.eof

    def _inflate(self, data: bytes) -> None:
        while True:
            inflater = self._inflater
            assert inflater is not None
            if inflater.eof:
                data = self._after_end(data)
                if not data:
                    return
                continue
            # One byte past the cap is enough to know it is over.
            step = min(_INFLATE_STEP, self._cap - self._size + 1)
            try:
                out = inflater.decompress(data, step)
            except zlib.error as exc:
                raise FetchError(f"corrupt {self.encoding} body from {self._url}: {exc}") from exc
            self._keep(out)
            if inflater.eof:
                data = inflater.unused_data
            else:
                data = inflater.unconsumed_tail
                # A full step may leave output pending inside zlib even with no input left.
                if not data and len(out) < step:
                    return

    def _after_end(self, data: bytes) -> bytes:
        """Bytes after the end of a compressed stream: what is left to inflate."""
        if not data:
            return b""
        if self.encoding != "gzip":
            raise FetchError(f"trailing bytes after the deflate body from {self._url}")
        if not data.strip(b"\0"):
            return b""  # zero padding after the last member, which gzip tools accept
        # RFC 1952 allows several gzip members back to back.
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        return data

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._cap:
            raise BodyTooLarge(f"body of {self._url} is over the cap of {self._cap} bytes")
        if data:
            self._parts.append(data)


def _encoding(content_encoding: str, url: str) -> str:
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if codings in (["gzip"], ["x-gzip"]):
        return "gzip"
    if codings == ["deflate"]:
        return "deflate"
    raise FetchError(f"unsupported Content-Encoding {content_encoding!r} from {url}")


def _has_zlib_header(data: bytes) -> bool:
    # RFC 1950: method 8 (deflate) in the low nibble and a header checksum divisible by 31.
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0

"""What went wrong with an HTTP request, in the words a person needs."""
from __future__ import annotations

import re

import requests


def request_failure(error: requests.RequestException) -> str:
    """`connection refused` rather than urllib3's nested exception reprs ("Max retries exceeded ...
    NewConnectionError(...)"): the errno text at the bottom is what tells."""
    text = str(error)
    if isinstance(error, requests.exceptions.SSLError):
        detail = re.search(r"\[SSL[^\]]*\] ([^'\")(]+)", text)
        return "TLS failed" + (f": {detail.group(1).strip()}" if detail else "")
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        reason = str(found[-1]).strip().rstrip(".")
        return reason[:1].lower() + reason[1:]
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed without an answer"
    if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return f"invalid URL ({text})"
    return type(error).__name__

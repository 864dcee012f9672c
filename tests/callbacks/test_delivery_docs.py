"""The receiver example of docs/callbacks.md verifies what the worker signs, and refuses a
tampered body, a wrong secret and an old timestamp."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from callback_helpers import new_secret
from wa_outbound.callbacks import signing

DOC = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"


def _example(secrets: list[str]) -> dict[str, Any]:
    [code, *_] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    code = code.replace("web.run_app(app, port=8000)", "")  # define, do not serve
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    namespace["SECRETS"][:] = secrets
    return namespace


def test_the_documented_receiver_verifies_our_signatures() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"id":"e1","type":"message.sent","data":{"sequence":1}}'
    now = int(time.time())
    headers = signing.headers([new, old], webhook_id="e1", timestamp=now, body=body)
    assert _example([old])["verified"](headers, body)
    assert _example([new])["verified"](headers, body)
    verified = _example([new])["verified"]
    assert not verified(headers, body + b" ")
    assert not _example([new_secret()])["verified"](headers, body)
    stale = signing.headers([new], webhook_id="e1", timestamp=now - 3600, body=body)
    assert not verified(stale, body)

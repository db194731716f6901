"""Schemathesis hooks for scripts/fuzz-api.sh (loaded via SCHEMATHESIS_HOOKS).

A retry with the same Idempotency-Key and body replays the first answer
(docs/errors.md): after a webhook is created and then deleted, a POST that
reuses the key answers 201 with the deleted webhook, as it should. The
generated keys are short and repeat often, so in the stateful phase (which
follows each create with a read of what it created) a reused key reads as
"created resource not found". There, each call's key gets a unique suffix;
a key that breaks the header's pattern is left as it is. Key reuse itself
(replay, and 422 for another body) is covered by
crates/loyalty-server/tests/controls/idempotency_header.rs.
"""

import re
import uuid

import schemathesis

KEY = "Idempotency-Key"
VALID = re.compile(r"^[!-~]{1,128}$")


@schemathesis.hook
def before_call(context, case, **kwargs):
    meta = getattr(case, "meta", None)
    phase = getattr(getattr(meta, "phase", None), "name", None)
    if phase != "stateful" or not case.headers or KEY not in case.headers:
        return
    key = case.headers[KEY]
    if isinstance(key, str) and VALID.match(key):
        case.headers[KEY] = f"{key[:100]}.{uuid.uuid4().hex[:16]}"

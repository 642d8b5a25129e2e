"""Drives a running Tollgate with the google-genai SDK as a user would: its default API
version (v1), the gateway key as the API key, the gateway as the base URL. Prints one
JSON document with what the SDK returned; tests/sdk_google_genai.rs checks it.

Environment: TOLLGATE_URL (http://127.0.0.1:PORT), TOLLGATE_KEY, MODEL, ALIAS.
"""

import json
import os
import sys

from google import genai
from google.genai import errors, types


def usage(u):
    if u is None:
        return None
    return {
        "prompt": u.prompt_token_count,
        "candidates": u.candidates_token_count,
        "cached": u.cached_content_token_count,
        "thoughts": u.thoughts_token_count,
    }


def main():
    client = genai.Client(
        api_key=os.environ["TOLLGATE_KEY"],
        # No api_version: the SDK's default (v1) is what users get.
        http_options=types.HttpOptions(base_url=os.environ["TOLLGATE_URL"], timeout=20_000),
    )
    model = os.environ["MODEL"]
    out = {"sdk_version": genai.__version__, "api_version": client._api_client._http_options.api_version}

    r = client.models.generate_content(model=model, contents="Hello")
    out["generate"] = {"text": r.text, "usage": usage(r.usage_metadata)}

    chunks = list(client.models.generate_content_stream(model=model, contents="Hello"))
    out["stream"] = {
        "chunks": len(chunks),
        "text": "".join(c.text or "" for c in chunks),
        "usage": usage(chunks[-1].usage_metadata) if chunks else None,
    }

    out["count_tokens"] = client.models.count_tokens(model=model, contents="Hello").total_tokens

    out["list"] = [m.name for m in client.models.list()]
    got = client.models.get(model=os.environ["ALIAS"])
    out["get"] = {"name": got.name, "display_name": got.display_name}

    try:
        client.models.generate_content(model="llama-3", contents="Hello")
        out["unrouted"] = None
    except errors.APIError as e:
        out["unrouted"] = {"code": e.code, "status": e.status, "message": e.message}

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

"""Drives a running Tollgate with the official openai, anthropic and google-genai Python
SDKs against models whose upstream speaks another dialect (translated pairs), as users
would: the gateway key as the API key, the gateway as the base URL. Prints one JSON
document with what each SDK returned; tests/sdk_translated.rs checks it.

Environment: TOLLGATE_URL (http://127.0.0.1:PORT), TOLLGATE_KEY, and the models:
GPT (openai upstream), CLAUDE (anthropic upstream), GEMINI (gemini upstream),
TOOL_CLAUDE (an anthropic upstream answering two tool calls), TOOL_GPT (an openai
upstream streaming two tool calls).
"""

import json
import os

import anthropic
import openai
from google import genai
from google.genai import types

URL = os.environ["TOLLGATE_URL"]
KEY = os.environ["TOLLGATE_KEY"]
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def oai_usage(u):
    return {
        "prompt": u.prompt_tokens,
        "cached": u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else None,
        "output": u.completion_tokens,
    }


def ant_usage(u):
    return {
        "input": u.input_tokens,
        "cache_read": u.cache_read_input_tokens,
        "cache_write": u.cache_creation_input_tokens,
        "output": u.output_tokens,
    }


def with_openai(out):
    client = openai.OpenAI(api_key=KEY, base_url=URL + "/v1", max_retries=0, timeout=20)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    r = client.chat.completions.create(model=os.environ["CLAUDE"], messages=messages)
    out["chat_claude"] = {"text": r.choices[0].message.content, "usage": oai_usage(r.usage)}
    text, usage = "", None
    for chunk in client.chat.completions.create(
        model=os.environ["GEMINI"], messages=messages, stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = oai_usage(chunk.usage)
    out["chat_gemini_stream"] = {"text": text, "usage": usage}

    r = client.responses.create(model=os.environ["CLAUDE"], instructions="Be brief.", input="hi")
    out["responses_claude"] = {
        "text": r.output_text,
        "usage": {"input": r.usage.input_tokens, "output": r.usage.output_tokens,
                  "cached": r.usage.input_tokens_details.cached_tokens},
    }
    events, text, final = [], "", None
    with client.responses.stream(model=os.environ["GEMINI"], input="hi") as stream:
        for ev in stream:
            events.append(ev.type)
            if ev.type == "response.output_text.delta":
                text += ev.delta
        final = stream.get_final_response()
    out["responses_gemini_stream"] = {
        "first": events[0], "last": events[-1], "text": text,
        "final_text": final.output_text, "output": final.usage.output_tokens,
    }

    r = client.chat.completions.create(
        model=os.environ["TOOL_CLAUDE"],
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}],
    )
    calls = r.choices[0].message.tool_calls
    out["chat_tools"] = {
        "finish": r.choices[0].finish_reason,
        "calls": [[c.id, c.function.name, json.loads(c.function.arguments)] for c in calls],
    }
    try:
        client.chat.completions.create(model=os.environ["CLAUDE"] + "-error-429", messages=messages)
        out["chat_error"] = None
    except openai.RateLimitError as e:
        out["chat_error"] = {"status": e.status_code, "type": e.body.get("type") if isinstance(e.body, dict) else None}


def with_anthropic(out):
    client = anthropic.Anthropic(api_key=KEY, base_url=URL, max_retries=0, timeout=20)
    r = client.messages.create(
        model=os.environ["GPT"], max_tokens=100, system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
    )
    out["messages_gpt"] = {"text": r.content[0].text, "stop": r.stop_reason, "usage": ant_usage(r.usage)}
    with client.messages.stream(
        model=os.environ["GEMINI"], max_tokens=100, messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    out["messages_gemini_stream"] = {"text": text, "usage": ant_usage(final.usage)}
    with client.messages.stream(
        model=os.environ["TOOL_GPT"], max_tokens=100,
        tools=[{"name": "get_weather", "input_schema": WEATHER}],
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"}],
    ) as stream:
        final = stream.get_final_message()
    out["messages_tools_stream"] = {
        "stop": final.stop_reason,
        "calls": [[b.id, b.name, b.input] for b in final.content if b.type == "tool_use"],
    }
    c = client.messages.count_tokens(model=os.environ["GPT"], messages=[{"role": "user", "content": "hi there"}])
    out["count_gpt"] = c.input_tokens


def with_genai(out):
    client = genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(base_url=URL, timeout=20_000),
    )
    r = client.models.generate_content(model=os.environ["CLAUDE"], contents="hi")
    u = r.usage_metadata
    out["genai_claude"] = {"text": r.text, "prompt": u.prompt_token_count, "cached": u.cached_content_token_count}
    chunks = list(client.models.generate_content_stream(model=os.environ["GPT"], contents="hi"))
    last = chunks[-1].usage_metadata
    out["genai_gpt_stream"] = {
        "text": "".join(c.text or "" for c in chunks),
        "prompt": last.prompt_token_count if last else None,
    }


def main():
    out = {"openai": openai.__version__, "anthropic": anthropic.__version__, "genai": genai.__version__}
    with_openai(out)
    with_anthropic(out)
    with_genai(out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Interop: the official Python MCP SDK drives erlmcp over stdio or Streamable HTTP.

Usage: python sdk_interop.py {PATH_TO_ERLMCP | http://HOST:PORT/mcp} {legacy|auto|v1}

- A path: the SDK launches `erlmcp start --stdio` itself. A URL: a running `erlmcp start --http`.
- legacy / auto: SDK 2.x `mcp.Client(server, mode=...)`; `auto` probes `server/discover` first
  and must adopt revision 2026-07-28 (stateless: per-request envelope, `input_required` rounds
  for sampling, `subscriptions/listen`); `legacy` uses the initialize handshake.
- v1: SDK 1.x `ClientSession` over `stdio_client`, `streamablehttp_client`, or — for a URL
  ending in `/sse` — the legacy 2024-11-05 `sse_client`.

Each check prints `ok` or `FAIL` with the reason; the last line is `N passed, M failed` and the
exit code is 1 if anything failed.
"""

import asyncio
import sys
import traceback

from mcp import StdioServerParameters

TARGET, MODE = sys.argv[1], sys.argv[2]
IS_HTTP = TARGET.startswith("http://")
SERVER = TARGET if IS_HTTP else StdioServerParameters(command=TARGET, args=["start", "--stdio", "--log-level", "warn"])
results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(f"{'ok  ' if condition else 'FAIL'} {name}{'' if condition else ': ' + str(detail)}", flush=True)


async def sampling_callback(context, params):
    from mcp import types

    prompt = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"echoed {prompt}"),
        model="interop-test-model",
    )


def is_error(result):
    """SDK 2.x spells it `is_error`, 1.x `isError`."""
    return getattr(result, "is_error", None) if hasattr(result, "is_error") else getattr(result, "isError", None)


def text_of(result):
    return result.content[0].text if result.content else None


async def exercise(client):
    tools = await client.list_tools()
    names = {t.name for t in tools.tools}
    check("tools/list has echo and the conformance tools", {"echo", "test_simple_text", "test_sampling"} <= names, names)

    echo = await client.call_tool("echo", {"text": "from python"})
    check("tools/call echo", text_of(echo) == "from python" and not is_error(echo), echo)

    failing = await client.call_tool("test_error_handling", {})
    check("a failing tool is a result with isError", is_error(failing) is True, failing)

    sampled = await client.call_tool("test_sampling", {"prompt": "hi there"})
    check("the server asks the client to sample", text_of(sampled) == "LLM response: echoed hi there", sampled)

    resource = await client.read_resource("test://static-text")
    check("resources/read", resource.contents[0].text == "This is the content of the static text resource.", resource)

    templated = await client.read_resource("test://template/42/data")
    check("resource template", '"id":"42"' in templated.contents[0].text, templated)

    prompt = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
    check("prompts/get", prompt.messages[0].content.text == "Prompt with arguments: arg1='a', arg2='b'", prompt)

    try:
        await client.call_tool("no_such_tool", {})
        check("an unknown tool is a JSON-RPC error", False, "no error raised")
    except Exception as error:  # the SDKs raise their McpError/MCPError
        check("an unknown tool is a JSON-RPC error", "unknown tool" in str(error), error)


async def run_v2(mode):
    from mcp import Client

    async with Client(SERVER, mode=mode, sampling_callback=sampling_callback, read_timeout_seconds=20) as client:
        expected = "2026-07-28" if mode == "auto" else "2025-11-25"
        check(f"{mode} mode settles on {expected}", client.protocol_version == expected, client.protocol_version)
        await exercise(client)
        if mode == "auto":
            routed = await client.call_tool("route", {"region": "eu-west", "text": "hi"})
            check("a tool with an x-mcp-header argument (Mcp-Param-Region over HTTP)", text_of(routed) == "hi via eu-west", routed)
            async with client.listen(tools_list_changed=True) as subscription:
                check("subscriptions/listen is acknowledged", subscription.honored.tools_list_changed is True, subscription.honored)


async def run_v1():
    from mcp import ClientSession

    async def session_over(read, write):
        async with ClientSession(read, write, sampling_callback=sampling_callback) as session:
            init = await session.initialize()
            check("initialize negotiates a supported revision", getattr(init, "protocolVersion", None) in ("2025-06-18", "2025-11-25"), init)
            await exercise(session)

    if TARGET.endswith("/sse"):
        from mcp.client.sse import sse_client

        async with sse_client(SERVER) as (read, write):
            await session_over(read, write)
    elif IS_HTTP:
        from mcp.client.streamable_http import streamablehttp_client

        async with streamablehttp_client(SERVER) as (read, write, _):
            await session_over(read, write)
    else:
        from mcp.client.stdio import stdio_client

        async with stdio_client(SERVER) as (read, write):
            await session_over(read, write)


async def main():
    try:
        if MODE == "v1":
            await run_v1()
        else:
            await run_v2(MODE)
    except Exception:
        traceback.print_exc()
        check(f"the {MODE} session ran to the end", False, "exception above")


asyncio.run(asyncio.wait_for(main(), timeout=60))
passed = sum(results)
failed = len(results) - passed
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not results else 0)

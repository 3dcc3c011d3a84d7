"""A session that survives a restart: the official Python MCP SDK (1.x, Streamable HTTP) keeps
its session across `erlmcp start` stopping and starting again on the same home and port.

Usage: python session_restart.py PATH_TO_ERLMCP {graceful|kill}

The script starts `erlmcp start --http 127.0.0.1:0` in a private home, opens one SDK session
(`initialize`), calls `echo`, stops the node (SIGTERM, or SIGKILL with `kill`), starts it again on
the same home and port, and calls `echo` again in the same SDK session: the SDK sends its old
`Mcp-Session-Id` and must be answered as before. Prints `ok`/`FAIL` lines; exit code 1 on failure.
"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

BIN, HOW = sys.argv[1], sys.argv[2]
results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(f"{'ok  ' if condition else 'FAIL'} {name}{'' if condition else ': ' + str(detail)}", flush=True)


def start(home, addr):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERLMCP_")}
    env.update(HOME=home, XDG_RUNTIME_DIR=home, XDG_DATA_HOME=os.path.join(home, "data"), TMPDIR=home)
    log = open(os.path.join(home, "node.log"), "a")
    node = subprocess.Popen([BIN, "start", "--http", addr], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        with open(os.path.join(home, "node.log")) as f:
            found = re.findall(r"http listening on ([0-9.:]+)", f.read())
        if len(found) > start.count:
            start.count += 1
            return node, found[-1]
        time.sleep(0.05)
    node.kill()
    raise RuntimeError("the node did not start")


start.count = 0


def stop(node):
    node.send_signal(signal.SIGKILL if HOW == "kill" else signal.SIGTERM)
    node.wait(timeout=20)


async def main(home):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    node, addr = start(home, "127.0.0.1:0")
    try:
        async with streamablehttp_client(f"http://{addr}/mcp") as (read, write, session_id):
            async with ClientSession(read, write) as session:
                await session.initialize()
                before = session_id()
                first = await session.call_tool("echo", {"text": "before"})
                check("echo before the restart", "before" in first.content[0].text, first)
                stop(node)
                node, again = start(home, addr)
                check("the node listens on the same address again", again == addr, again)
                second = await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 20)
                check(f"echo after the restart ({HOW}) in the same session",
                      not second.isError and "after" in second.content[0].text, second)
                check("the SDK kept its session id", session_id() == before, (before, session_id()))
    finally:
        if node.poll() is None:
            node.terminate()
            node.wait(timeout=20)


with tempfile.TemporaryDirectory(prefix="erlmcp-restart-") as home:
    try:
        asyncio.run(main(home))
    except Exception as e:  # noqa: BLE001 - every failure is a FAIL line
        check("the SDK session across a restart", False, repr(e))
        with open(os.path.join(home, "node.log")) as f:
            print(f.read()[-3000:])
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if results and all(results) else 1)

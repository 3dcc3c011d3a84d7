"""The dashboard in a real browser: headless Chromium, driven over WebDriver by chromedriver.

Usage: python3 dashboard.py PATH_TO_ERLMCP SCREENSHOT.png

Starts `erlmcp start --tcp 127.0.0.1:0 --admin-http 127.0.0.1:0` with a private runtime
directory and cookie, opens the dashboard, waits for live updates, sends MCP requests over TCP
and waits until the page's request count has grown by them, checks the supervision tree is
drawn, checks a request without the cookie is refused, and saves a screenshot.

Only the standard library: WebDriver is plain JSON over HTTP. Exit code 1 on any failure.
"""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN, SHOT = sys.argv[1], sys.argv[2]
COOKIE = "dashboard-test-cookie"
DEADLINE_S = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, probe, timeout=DEADLINE_S):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def start_node(runtime):
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, HOME=runtime, ERLMCP_COOKIE=COOKIE,
               ERLMCP_METRICS_INTERVAL="300")
    env.pop("RUST_LOG", None)
    log = open(os.path.join(runtime, "node.log"), "w+")
    node = subprocess.Popen([BIN, "start", "--tcp", "127.0.0.1:0", "--admin-http", "127.0.0.1:0",
                             "--name", f"dashboard-{os.getpid()}"], env=env, stderr=log,
                            stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def addresses():
        log.seek(0)
        text = log.read()
        tcp = re.search(r"tcp listening on (\S+)", text)
        admin = re.search(r"admin http listening on (\S+)", text)
        return (tcp.group(1), admin.group(1)) if tcp and admin else None

    return node, wait_for("the node's listeners", addresses)


class WebDriver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            raise AssertionError(f"webdriver {method} {path}: {error.read().decode()}") from None

    def start(self):
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1800"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def s(self, path):
        return f"/session/{self.session}{path}"

    def open(self, url):
        self.call("POST", self.s("/url"), {"url": url})

    def text(self, css):
        element = self.call("POST", self.s("/element"), {"using": "css selector", "value": css})
        key = next(iter(element))
        return self.call("GET", self.s(f"/element/{element[key]}/text"))

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", self.s("/screenshot")))
        with open(path, "wb") as f:
            f.write(png)

    def quit(self):
        if self.session:
            try:
                self.call("DELETE", self.s(""))
            except Exception:
                pass


def mcp_requests(tcp, n):
    host, port = tcp.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        f = s.makefile("rw")
        f.write(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "dashboard-test", "version": "1"}}}) + "\n")
        for i in range(1, n + 1):
            f.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                "params": {"name": "echo", "arguments": {"text": "hi"}}}) + "\n")
        f.flush()
        for _ in range(n + 1):
            assert '"result"' in f.readline()


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def main():
    # The node's runtime directory (admin socket, cookie) and chromedriver's log: removed at the
    # end, so a test run leaves nothing behind.
    runtime = tempfile.mkdtemp(prefix="erlmcp-dashboard-")
    try:
        check_dashboard(runtime)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def check_dashboard(runtime):
    node, (tcp, admin) = start_node(runtime)
    port = free_port()
    driver_log = open(os.path.join(runtime, "chromedriver.log"), "w")
    # Chromium's temporary profile and files in the runtime directory too (removed at the end),
    # not in /tmp, where they were left behind; its ~/.config and ~/.cache as well, not in the
    # user's home.
    chromedriver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=driver_log, stderr=driver_log,
                                    env={**os.environ, "TMPDIR": runtime, "HOME": runtime})
    browser = WebDriver(port)
    try:
        wait_for("chromedriver", lambda: _up(f"http://127.0.0.1:{port}/status"))
        try:
            urllib.request.urlopen(f"http://{admin}/", timeout=5)
            raise AssertionError("the dashboard answered without the cookie")
        except urllib.error.HTTPError as error:
            assert error.code == 401, error.code
        print("ok   the dashboard refuses a request without the cookie")

        browser.start()
        browser.open(f"http://{admin}/?token={COOKIE}")
        wait_for("two live updates", lambda: (number(browser.text("#updates")) or 0) >= 2)
        assert browser.text("#status") == "live", browser.text("#status")
        print("ok   the page receives live samples")

        tree = browser.text("#tree")
        assert "erlmcp_registry" in tree and "erlmcp_observability_sup" in tree, tree
        print("ok   the supervision tree is drawn")

        queue, shed = browser.text("#queue"), browser.text("#shed")
        assert re.fullmatch(r"\d+ / 10000", queue), queue  # capacity: queue_size's default
        assert shed == "0.0", shed
        print(f"ok   the admission cards show the queue ({queue}) and the shed rate ({shed})")

        cache, store = browser.text("#cache"), browser.text("#store")
        assert re.fullmatch(r"\d+ · \d+%", cache), cache
        assert re.fullmatch(r"\d+ · (none|\d+ s ago)", store), store
        print(f"ok   the cache card ({cache}) and the store card ({store}) are filled")

        def total():
            return number(browser.text("#total"))

        wait_for("a request count", lambda: total() is not None)
        before = total()
        mcp_requests(tcp, 25)
        wait_for("the request count to grow by 26", lambda: (total() or 0) >= before + 26)
        print(f"ok   live numbers change: requests {before:.0f} -> {total():.0f}")

        browser.screenshot(SHOT)
        assert os.path.getsize(SHOT) > 10_000, os.path.getsize(SHOT)
        print(f"ok   screenshot saved to {SHOT}")
    finally:
        browser.quit()
        chromedriver.terminate()
        chromedriver.wait(timeout=10)
        node.terminate()
        node.wait(timeout=10)


def _up(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())["value"]["ready"]
    except Exception:
        return False


if __name__ == "__main__":
    try:
        main()
    except Exception as error:
        print(f"FAIL {error}")
        sys.exit(1)
    print("dashboard: every check passed")

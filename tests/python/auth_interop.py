"""Interop: the official Python MCP SDK's auth support against a node with `[auth]` on.

Usage: python auth_interop.py PATH_TO_ERLMCP {v2|v1}

The script makes an authorization-server stand-in on loopback (an EC P-256 key generated here with
`cryptography`, JWTs signed with PyJWT — both come with the SDK): its metadata (RFC 8414), its JWKS,
a token endpoint (client_credentials, and authorization_code with PKCE) and an authorization
endpoint that redirects at once with a code. It starts `erlmcp start --http` with a config whose
`[auth]` trusts that server (resource `http://127.0.0.1:PORT/mcp`, `required_scopes = ["mcp"]`,
`sleep` needing `tools:admin`), then:

- without a token: a raw POST gets 401 with `WWW-Authenticate: Bearer resource_metadata=…`, the
  metadata document there names the resource and the server, and the SDK's session fails with the
  auth error;
- a valid JWT passed as an `Authorization` header through the SDK's HTTP client: initialize, list
  (without `sleep`), call `echo`; `sleep` is refused (-32003, or the 403 scope challenge);
- a JWT for another audience: refused (401 `invalid_token`), and the SDK's session fails;
- the SDK's own OAuth client (`ClientCredentialsOAuthProvider`): discovery through the 401's
  `resource_metadata` and the server's metadata, a token for the resource (RFC 8707), then the
  step-up: `sleep` answered 403 `insufficient_scope`, a new token with `mcp tools:admin`, the call
  retried and served. v2 runs it on the handshake path (`mode="legacy"`) and on the stateless
  2026-07-28 path (`mode="auto"`); v1 on Streamable HTTP and on the legacy HTTP+SSE transport
  (`/sse`, the 403 on its `POST /messages`);
- v2: the authorization-code flow (`OAuthClientProvider`, PKCE, a pre-registered public client; the
  browser step scripted: the authorization URL fetched, its redirect read).

The node is stopped (SIGTERM, then SIGKILL if it lingers; waited for) whatever happens. Prints
`ok`/`FAIL` lines; exit code 1 if anything failed.
"""

import asyncio
import base64
import hashlib
import http.server
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

BIN, MODE = sys.argv[1], sys.argv[2]
results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(f"{'ok  ' if condition else 'FAIL'} {name}{'' if condition else ': ' + str(detail)[:600]}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# The authorization-server stand-in.

CLIENT_ID, CLIENT_SECRET = "m2m-client", "m2m-secret"
PUBLIC_CLIENT = "code-client"


class AuthServer:
    """Issues ES256 JWTs for `resource`; keeps every token request it was sent."""

    def __init__(self, resource):
        self.resource = resource
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [dict(jwk, kid="k1", use="sig", alg="ES256")]}
        self.token_requests = []
        self.codes = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/.well-known/oauth-authorization-server":
                    self.answer(200, server.metadata())
                elif url.path == "/jwks":
                    self.answer(200, server.jwks)
                elif url.path == "/authorize":
                    query = dict(urllib.parse.parse_qsl(url.query))
                    code = secrets.token_urlsafe(16)
                    server.codes[code] = query
                    back = urllib.parse.urlencode({"code": code, "state": query.get("state", ""), "iss": server.issuer})
                    self.send_response(302)
                    self.send_header("Location", f"{query['redirect_uri']}?{back}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.answer(404, {"error": "not_found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if self.path != "/token":
                    return self.answer(404, {"error": "not_found"})
                server.token_requests.append(form)
                status, body = server.token(form, self.headers.get("Authorization", ""))
                self.answer(status, body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def metadata(self):
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "authorize",
            "token_endpoint": self.issuer + "token",
            "jwks_uri": self.issuer + "jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["mcp", "tools:admin"],
        }

    def sign(self, subject, scope, audience=None, client_id=None, expires_in=600):
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": audience or self.resource, "iat": now,
                  "exp": now + expires_in, "scope": scope}
        if client_id:
            claims["client_id"] = client_id
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "k1"})

    def token(self, form, authorization):
        # RFC 8707: a token is only ever for the resource asked for, and only for this resource.
        resource = form.get("resource", self.resource)
        if resource != self.resource:
            return 400, {"error": "invalid_target"}
        scope = form.get("scope", "mcp")
        if form.get("grant_type") == "client_credentials":
            basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if authorization != basic:
                return 401, {"error": "invalid_client"}
            subject = CLIENT_ID
        elif form.get("grant_type") == "authorization_code":
            asked = self.codes.pop(form.get("code", ""), None)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
            if not asked or asked.get("code_challenge", "").encode() != challenge.rstrip(b"="):
                return 400, {"error": "invalid_grant"}
            subject, scope = "carol", asked.get("scope", "mcp")
        else:
            return 400, {"error": "unsupported_grant_type"}
        token = self.sign(subject, scope, client_id=form.get("client_id", CLIENT_ID))
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 600, "scope": scope}


# ---------------------------------------------------------------------------------------------
# The node.

CONFIG = """
[auth]
enabled = true
resource = "{resource}"
authorization_servers = ["{issuer}"]
jwks_uri = "{issuer}jwks"
scopes_supported = ["mcp", "tools:admin"]
required_scopes = ["mcp"]

[[auth.rules]]
scopes = ["tools:admin"]
tools = ["sleep"]
"""


class Node:
    """`erlmcp start --http 127.0.0.1:PORT` in a private home; `stop` kills and waits."""

    def __init__(self, home, port, config):
        path = os.path.join(home, "erlmcp.toml")
        with open(path, "w") as f:
            f.write(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERLMCP_")}
        env.update(HOME=home, XDG_RUNTIME_DIR=home, XDG_DATA_HOME=os.path.join(home, "data"), TMPDIR=home)
        self.log = os.path.join(home, "node.log")
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([BIN, "start", "--http", f"127.0.0.1:{port}", "--config", path],
                                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)

    def wait_listening(self):
        deadline = time.time() + 20
        while time.time() < deadline and self.process.poll() is None:
            with open(self.log) as f:
                if re.search(r"http listening on", f.read()):
                    return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def raw(method, url, headers=None, body=None):
    """One HTTP request outside the SDK: (status, headers, body)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}).encode()
POST_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def chain(error):
    """An exception and everything inside it (groups, causes) as one text."""
    seen, parts, stack = set(), [], [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        parts.append(f"{type(e).__name__}: {e}")
        stack.extend(getattr(e, "exceptions", ()))
        stack.extend([e.__cause__, e.__context__])
    return " | ".join(parts)


# ---------------------------------------------------------------------------------------------
# The SDK, either major version.

class MemoryStorage:
    def __init__(self, client_info=None):
        self.tokens, self.client_info = None, client_info

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def text_of(result):
    return result.content[0].text if result.content else None


def is_error(result):
    return getattr(result, "is_error", None) if hasattr(result, "is_error") else getattr(result, "isError", None)


class session:
    """An SDK session to `url` with `headers` and/or `auth`, as an async context manager giving
    an object with `list_tools` / `call_tool`."""

    def __init__(self, url, headers=None, auth=None, mode="legacy"):
        self.url, self.headers, self.auth, self.mode = url, headers, auth, mode

    async def __aenter__(self):
        from contextlib import AsyncExitStack

        self.stack = AsyncExitStack()
        try:
            if MODE == "v2":
                from mcp import Client
                from mcp.client.streamable_http import streamable_http_client
                from mcp.shared._httpx_utils import create_mcp_http_client

                http = await self.stack.enter_async_context(create_mcp_http_client(headers=self.headers, auth=self.auth))
                transport = streamable_http_client(self.url, http_client=http)
                return await self.stack.enter_async_context(
                    Client(transport, mode=self.mode, read_timeout_seconds=20))
            from mcp import ClientSession

            if self.mode == "sse":
                from mcp.client.sse import sse_client

                sse_url = self.url.removesuffix("/mcp") + "/sse"
                read, write = await self.stack.enter_async_context(
                    sse_client(sse_url, headers=self.headers, auth=self.auth))
            else:
                from mcp.client.streamable_http import streamablehttp_client

                read, write, _ = await self.stack.enter_async_context(
                    streamablehttp_client(self.url, headers=self.headers, auth=self.auth))
            client = await self.stack.enter_async_context(ClientSession(read, write))
            await client.initialize()
            return client
        except BaseException:
            await self.stack.aclose()
            raise

    async def __aexit__(self, *exc):
        await self.stack.aclose()


async def refused(url, headers, name, *needles):
    """The SDK's session with `headers` must fail, with one of `needles` in what it raised."""
    try:
        async with session(url, headers=headers) as client:
            await client.list_tools()
        check(name, False, "the session was served")
    except Exception as error:  # noqa: BLE001 - the SDKs raise their own error types
        text = chain(error)
        check(name, any(n in text for n in needles), text)


async def exercise(client, name, may_use_sleep):
    tools = {t.name for t in (await client.list_tools()).tools}
    check(f"{name}: tools/list has echo", "echo" in tools, tools)
    check(f"{name}: tools/list {'has' if may_use_sleep else 'hides'} sleep", ("sleep" in tools) == may_use_sleep, tools)
    echo = await client.call_tool("echo", {"text": "with a token"})
    check(f"{name}: tools/call echo", text_of(echo) == "with a token" and not is_error(echo), echo)


async def run(url, auth_server, metadata_url):
    # 1. No token: the 401 and its challenge, the metadata document, the SDK's error.
    status, headers, body = raw("POST", url, POST_HEADERS, INITIALIZE)
    challenge = headers.get("WWW-Authenticate", "")
    check("no token: 401", status == 401, (status, body))
    check("no token: WWW-Authenticate names resource_metadata", f'resource_metadata="{metadata_url}"' in challenge, challenge)
    check("no token: the challenge asks for scope mcp", 'scope="mcp"' in challenge, challenge)
    status, _, body = raw("GET", metadata_url)
    document = json.loads(body) if status == 200 else {}
    check("the metadata document names the resource and the authorization server",
          document.get("resource") == url and document.get("authorization_servers") == [auth_server.issuer], (status, body))
    await refused(url, None, "the SDK without a token fails with the auth error",
                  "access token is needed", "401", "Unauthorized")

    # 2. A valid JWT passed as a header through the SDK's HTTP client.
    token = auth_server.sign("alice", "mcp", client_id="app-1")
    headers = {"Authorization": f"Bearer {token}"}
    async with session(url, headers=headers) as client:
        await exercise(client, "a JWT in the Authorization header", may_use_sleep=False)
    # Its own session: SDK 1.x, with no OAuth provider to step up, raises the 403 in its transport's
    # task group, which ends the session; 2.x surfaces the JSON-RPC error of the 403's body.
    try:
        async with session(url, headers=headers) as client:
            result = await client.call_tool("sleep", {"ms": 1})
        check("a JWT without tools:admin: sleep is refused", False, result)
    except Exception as error:  # noqa: BLE001
        text = chain(error)
        check("a JWT without tools:admin: sleep is refused", "tools:admin" in text or "403" in text, text)

    # 3. A token for another audience.
    wrong = auth_server.sign("alice", "mcp", audience="http://127.0.0.1:1/other")
    status, headers, _ = raw("POST", url, dict(POST_HEADERS, Authorization=f"Bearer {wrong}"), INITIALIZE)
    check("another audience: 401 invalid_token", status == 401 and 'error="invalid_token"' in headers.get("WWW-Authenticate", ""),
          (status, headers.get("WWW-Authenticate")))
    await refused(url, {"Authorization": f"Bearer {wrong}"}, "the SDK with a token for another audience fails",
                  "invalid_token", "audience", "401", "Unauthorized")

    # 4. The SDK's OAuth client: client_credentials, discovery, then the step-up.
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider

    # v2: the handshake path and the stateless (2026-07-28) one; v1: Streamable HTTP and the
    # legacy HTTP+SSE transport (the 403 on its POST /messages).
    modes = ["legacy", "auto"] if MODE == "v2" else ["legacy", "sse"]
    for mode in modes:
        before = len(auth_server.token_requests)
        provider = ClientCredentialsOAuthProvider(server_url=url, storage=MemoryStorage(), client_id=CLIENT_ID,
                                                  client_secret=CLIENT_SECRET, issuer=auth_server.issuer)
        name = f"client_credentials ({mode})"
        async with session(url, auth=provider, mode=mode) as client:
            await exercise(client, name, may_use_sleep=False)
            asked = auth_server.token_requests[before:]
            check(f"{name}: one token asked for, for this resource, scope mcp",
                  len(asked) == 1 and asked[0].get("resource") == url and asked[0].get("scope") == "mcp", asked)
            try:
                slept = await asyncio.wait_for(client.call_tool("sleep", {"ms": 1}), 20)
                check(f"{name}: sleep served after the step-up", not is_error(slept), slept)
            except Exception as error:  # noqa: BLE001 - a refusal the SDK did not step up from
                check(f"{name}: sleep served after the step-up", False, chain(error))
            asked = auth_server.token_requests[before:]
            check(f"{name}: the 403 made the SDK ask for mcp and tools:admin",
                  len(asked) == 2 and set(asked[1].get("scope", "").split()) == {"mcp", "tools:admin"}, asked)

    # 5. The authorization-code flow with PKCE, the browser step scripted.
    if MODE == "v2":
        from mcp.client.auth import OAuthClientProvider
        from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata

        redirect = "http://127.0.0.1:1/callback"
        landed = {}

        async def redirect_handler(authorization_url):
            # The browser: the stand-in redirects at once; the redirect is read, not followed.
            class NoFollow(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *args):
                    return None

            try:
                urllib.request.build_opener(NoFollow).open(authorization_url, timeout=10)
            except urllib.error.HTTPError as error:
                landed.update(urllib.parse.parse_qsl(urllib.parse.urlsplit(error.headers["Location"]).query))

        async def callback_handler():
            return AuthorizationCodeResult(code=landed.get("code", ""), state=landed.get("state"), iss=landed.get("iss"))

        registered = OAuthClientInformationFull(client_id=PUBLIC_CLIENT, redirect_uris=[redirect],
                                                token_endpoint_auth_method="none", issuer=auth_server.issuer)
        provider = OAuthClientProvider(
            server_url=url,
            client_metadata=OAuthClientMetadata(redirect_uris=[redirect], token_endpoint_auth_method="none",
                                                grant_types=["authorization_code"], client_name="interop"),
            storage=MemoryStorage(registered), redirect_handler=redirect_handler, callback_handler=callback_handler)
        async with session(url, auth=provider) as client:
            await exercise(client, "authorization_code + PKCE", may_use_sleep=False)
            check("authorization_code: the code went through the scripted redirect", "code" in landed, landed)


def main(home):
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    metadata_url = f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
    auth_server = AuthServer(url)
    node = Node(home, port, CONFIG.format(resource=url, issuer=auth_server.issuer))
    try:
        if not node.wait_listening():
            check("the node starts with [auth]", False, open(node.log).read()[-3000:])
            return
        asyncio.run(asyncio.wait_for(run(url, auth_server, metadata_url), timeout=120))
    except Exception as error:  # noqa: BLE001 - every failure is a FAIL line
        check(f"the {MODE} auth run went to the end", False, chain(error))
        print(open(node.log).read()[-3000:])
    finally:
        node.stop()
        auth_server.httpd.shutdown()


with tempfile.TemporaryDirectory(prefix="erlmcp-auth-") as home:
    main(home)
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if results and all(results) else 1)

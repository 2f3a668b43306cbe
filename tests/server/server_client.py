"""Talk to ComfyUI's server as its web frontend does: JSON over HTTP, progress over the websocket."""
import asyncio
import json
import os
import re
import urllib.error
import urllib.request
import uuid

import aiohttp

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKFLOWS = os.path.join(REPO_ROOT, "workflows")
RUN_TIMEOUT_S = 300  # one tiny prompt; generous for a shared 2-core machine
FINISHED = ("execution_success", "execution_error", "execution_interrupted")


def comfy_version(comfy_path):
    with open(os.path.join(comfy_path, "comfyui_version.py"), encoding="utf-8") as version_file:
        match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", version_file.read())
    return match.group(1) if match else "unknown"


def bundled_workflows():
    """Names (file stems) of the workflows the pack ships in workflows/."""
    return sorted(name[:-len(".json")] for name in os.listdir(WORKFLOWS) if name.endswith(".json"))


def load_workflow(name):
    with open(os.path.join(WORKFLOWS, f"{name}.json"), encoding="utf-8") as workflow:
        return json.load(workflow)


def get_json(server, path):
    with urllib.request.urlopen(f"{server.url}{path}", timeout=60) as response:
        return json.loads(response.read())


def post_json(server, path, body):
    """(status, decoded JSON body or None); an HTTP error status is returned, not raised."""
    request = urllib.request.Request(f"{server.url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    try:
        return status, json.loads(payload) if payload else None
    except json.JSONDecodeError:
        return status, payload.decode(errors="replace")


class Session:
    """One websocket client (``clientId``) that queues prompts and collects the messages of each one."""

    def __init__(self, server):
        self.server = server
        self.client_id = str(uuid.uuid4())
        self._http = None
        self._socket = None
        self.messages = []  # (type, data) of every JSON message, in order

    async def __aenter__(self):
        self._http = aiohttp.ClientSession()
        self._socket = await self._http.ws_connect(f"{self.server.url}/ws?clientId={self.client_id}")
        return self

    async def __aexit__(self, *exc_info):
        await self._socket.close()
        await self._http.close()

    async def queue(self, prompt):
        async with self._http.post(f"{self.server.url}/prompt",
                                   json={"prompt": prompt, "client_id": self.client_id}) as response:
            body = await response.json()
            if response.status != 200:
                raise AssertionError(f"POST /prompt answered {response.status}: {json.dumps(body, indent=1)}")
        return body["prompt_id"]

    async def interrupt(self):
        async with self._http.post(f"{self.server.url}/interrupt", json={}) as response:
            assert response.status == 200, f"POST /interrupt answered {response.status}"

    async def next_message(self, prompt_id, timeout=RUN_TIMEOUT_S):
        """The next JSON message about ``prompt_id`` (binary preview frames and other prompts' messages skipped)."""
        while True:
            message = await self._socket.receive(timeout=timeout)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"websocket closed while waiting for prompt {prompt_id}")
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            kind, data = event.get("type"), event.get("data") or {}
            self.messages.append((kind, data))
            if data.get("prompt_id") == prompt_id:
                return kind, data

    async def wait_finished(self, prompt_id):
        """All messages of ``prompt_id`` up to and including the one that ends it."""
        seen = []
        while True:
            kind, data = await self.next_message(prompt_id)
            seen.append((kind, data))
            if kind in FINISHED:
                return seen


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, RUN_TIMEOUT_S * 3))

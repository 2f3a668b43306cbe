"""Run ComfyUI's own server (``main.py``) as a subprocess, the way users start it, for tests that talk HTTP/websocket.

``ComfyServer`` starts ``<python> <ComfyUI>/main.py --cpu`` on 127.0.0.1 at a free port with a temporary
``--base-directory``, installs the pack in that base directory's ``custom_nodes`` as a user would (a symlink to this
checkout, named like ``comfy_env``'s link) next to any extra custom-node folders (e.g. the test-only nodes in
tests/data/custom_nodes), waits until the server answers, and stops the process by its own PID. Its output goes to
``<base dir>/server.log`` (``log_text()``). The base directory starts with the input files the ComfyUI tree ships
(input/example.png), as a user's install has them.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from .comfy_env import PACK_LINK_NAME, PACK_ROOT, _copy_shipped_inputs, is_comfyui_root

READY_TIMEOUT_S = 300  # importing torch and ComfyUI on a busy 2-core machine can take minutes
STOP_TIMEOUT_S = 30


class ServerError(RuntimeError):
    """The server exited or did not answer; the message carries the end of its log."""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComfyServer:
    """One ComfyUI server process. Use as a context manager, or call ``start()`` and ``stop()`` (in ``finally``)."""

    def __init__(self, comfy_path, base_dir, *, front_end_root, extra_custom_nodes=(), python=sys.executable,
                 pack_root=PACK_ROOT, extra_args=()):
        if not is_comfyui_root(comfy_path):
            raise ValueError(f"{comfy_path!r} is not a ComfyUI checkout")
        self.comfy_path = os.path.realpath(comfy_path)
        self.base_dir = os.path.abspath(base_dir)
        self.front_end_root = front_end_root
        self.extra_custom_nodes = tuple(extra_custom_nodes)
        self.python = python
        self.pack_root = os.path.realpath(pack_root)
        self.extra_args = tuple(extra_args)
        self.port = None
        self.process = None
        self.log_path = os.path.join(self.base_dir, "server.log")
        self._log_file = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def custom_nodes_dir(self):
        return os.path.join(self.base_dir, "custom_nodes")

    def pack_dir(self):
        """The pack's folder inside the server's custom_nodes (its name is the key of /api/workflow_templates)."""
        return os.path.join(self.custom_nodes_dir, PACK_LINK_NAME)

    def command(self):
        user_dir = os.path.join(self.base_dir, "user")
        return [self.python, os.path.join(self.comfy_path, "main.py"),
                "--listen", "127.0.0.1", "--port", str(self.port),
                "--base-directory", self.base_dir,
                "--cpu", "--disable-auto-launch",
                # API nodes call external services the closed test network cannot reach.
                "--disable-api-nodes",
                # The default database sits inside the ComfyUI tree, which may be read-only.
                "--database-url", f"sqlite:///{os.path.join(user_dir, 'comfyui.db')}",
                "--front-end-root", self.front_end_root,
                *self.extra_args]

    def start(self):
        os.makedirs(self.custom_nodes_dir, exist_ok=True)
        os.makedirs(os.path.join(self.base_dir, "user"), exist_ok=True)
        self._link(self.pack_root, self.pack_dir())
        _copy_shipped_inputs(self.comfy_path, self.base_dir)
        for folder in self.extra_custom_nodes:
            folder = os.path.realpath(folder)
            self._link(folder, os.path.join(self.custom_nodes_dir, os.path.basename(folder)))
        self.port = free_port()
        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("COMFYUI_PATH", None)  # the server is ComfyUI itself; nothing in it should look for another one
        # cwd is the ComfyUI tree, as when a user runs `python main.py` there.
        self.process = subprocess.Popen(self.command(), cwd=self.comfy_path, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"ComfyUI exited with code {self.process.returncode} before answering:\n"
                                  f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/system_stats", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        raise ServerError(f"ComfyUI did not answer on {self.url} within {READY_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self):
        """Stop the server by its own PID: SIGTERM, then SIGKILL if it has not exited in time."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_S)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def log_text(self):
        if self._log_file is not None:
            self._log_file.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    @staticmethod
    def _link(target, link):
        if os.path.islink(link) and os.path.realpath(link) == target:
            return
        if os.path.lexists(link):
            raise RuntimeError(f"{link} exists and is not a link to {target}")
        os.symlink(target, link, target_is_directory=True)

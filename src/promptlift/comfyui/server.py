"""A ComfyUI server from Python, as scripts and tests drive it: start one (`ComfyUIServer`, ComfyUI's own main.py on
127.0.0.1) and run a workflow through its HTTP API (`run_workflow`: POST /prompt, then /history until it ends)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

__all__ = ["ComfyUIServer", "copy_comfyui", "run_workflow"]


def copy_comfyui(source: Path, target: Path) -> Path:
    """A writable copy of the ComfyUI folder `source` (ComfyUI writes user/, output/ and a database beside its code)
    without its tests, with an empty custom_nodes/; returns `target`."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("tests", "tests-unit", ".git", "custom_nodes"))
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    (target / "custom_nodes").mkdir()
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyUIServer:
    """`with ComfyUIServer(comfyui_dir, python) as url:` ComfyUI's server (`python main.py --cpu` unless `cpu=False`,
    then `args`) on a free port of 127.0.0.1, its log in `comfyui_dir`/server.log; stopped when the block ends."""

    def __init__(self, comfyui_dir: Path, python: str | Path, *, cpu: bool = True, args: tuple[str, ...] = (),
                 env: dict | None = None, timeout: float = 300):
        self.dir, self.python, self.cpu, self.env, self.timeout = Path(comfyui_dir), str(python), cpu, env, timeout
        self.args = tuple(args)
        self.process = None

    @property
    def log(self) -> Path:
        return self.dir / "server.log"

    def __enter__(self) -> str:
        port = _free_port()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([self.python, "main.py", *(["--cpu"] if self.cpu else []), *self.args,
                                             "--listen", "127.0.0.1", "--port", str(port)], cwd=self.dir, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + self.timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/system_stats", timeout=2)
                return url
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"ComfyUI's server did not start; its log ({self.log}) ends:\n"
                                       f"{self.log.read_text()[-3000:]}") from None
                time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


def run_workflow(url: str, workflow: dict, timeout: float = 600) -> dict:
    """Queue `workflow` (ComfyUI's API format) and wait for it to end; returns its /history entry (its "status" says
    success or error, with ComfyUI's messages; its "outputs" the files nodes saved)."""
    request = urllib.request.Request(f"{url}/prompt", data=json.dumps({"prompt": workflow}).encode(),
                                     headers={"Content-Type": "application/json"})
    prompt_id = json.loads(urllib.request.urlopen(request).read())["prompt_id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        entry = json.loads(urllib.request.urlopen(f"{url}/history/{prompt_id}").read()).get(prompt_id)
        if entry is not None and (entry["status"].get("completed") or entry["status"].get("status_str") == "error"):
            return entry
        time.sleep(1)
    raise TimeoutError(f"workflow {prompt_id} did not end in {timeout} s on {url}")

"""Run the ``tritonserver`` binary that the PyPI package ``nvidia-pytriton`` ships on a heal-swin model repository.

pytriton's wheel carries a real Triton Inference Server (``pytriton/tritonserver/bin/tritonserver``)
with only the Python backend, and a python backend *stub* per Python version
(``pytriton/tritonserver/python_backend_stubs/3.X/triton_python_backend_stub``). Triton looks for
the stub in ``<backend-directory>/python/``, so :func:`prepare_backends` lays out a backend
directory with this interpreter's stub. The stub embeds Python: it needs this interpreter's
``libpython`` on ``LD_LIBRARY_PATH`` (with pytriton's bundled libraries) and finds the virtual
environment, hence numpy and onnxruntime, through the first ``python3`` on ``PATH``
(:func:`server_env`). Models with the onnxruntime_onnx platform cannot load in it (no onnxruntime
backend), so only the named models are loaded (``--model-control-mode explicit``): the end-to-end
models exported with ``--triton-backend python``.

    python -m heal_swin.export.tritonserver REPO MODEL [MODEL ...] [--http-port 8000] [--grpc-port 8001]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TritonServer", "command", "find_pytriton", "prepare_backends", "server_env"]


def find_pytriton() -> Path:
    """The ``pytriton`` package folder (its ``tritonserver/`` has the binary; env ``HEAL_SWIN_PYTRITON`` overrides)."""
    import importlib.util

    if os.environ.get("HEAL_SWIN_PYTRITON"):
        root = Path(os.environ["HEAL_SWIN_PYTRITON"])
    else:
        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                "tritonserver: the PyPI package nvidia-pytriton is not installed (pip install nvidia-pytriton)"
            )
        root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "tritonserver" / "bin" / "tritonserver").is_file():
        raise FileNotFoundError(f"tritonserver: no binary at {root / 'tritonserver/bin/tritonserver'}")
    return root


def prepare_backends(workdir: Path, pytriton: Path | None = None) -> Path:
    """``workdir/backends/python/``: the python backend with this interpreter's stub; returns ``workdir/backends``."""
    root = pytriton or find_pytriton()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise FileNotFoundError(
            f"tritonserver: pytriton has no python backend stub for Python {version} ({stub})"
        )
    backends = workdir / "backends"
    python = backends / "python"
    python.mkdir(parents=True, exist_ok=True)
    for f in (root / "tritonserver" / "backends" / "python").iterdir():
        if f.is_file():
            shutil.copy2(f, python / f.name)
    shutil.copy2(stub, python / "triton_python_backend_stub")
    return backends


def server_env(pytriton: Path | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for tritonserver and its stub: this interpreter's libpython and environment first."""
    root = pytriton or find_pytriton()
    env = dict(os.environ if base is None else base)
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(root.parent / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [p for p in libs if p] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else [])
    )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def command(repository: Path, models: Sequence[str], backends: Path, http_port: int, grpc_port: int,
            host: str = "127.0.0.1", pytriton: Path | None = None) -> list[str]:  # fmt: skip
    """The tritonserver command line: only ``models`` loaded, metrics off, a python-backend shared-memory prefix of its own."""
    root = pytriton or find_pytriton()
    prefix = (
        f"heal_swin_{os.getpid()}_{secrets.token_hex(4)}"  # parallel servers must not share /dev/shm regions
    )
    return [
        str(root / "tritonserver" / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--model-control-mode=explicit",
        *(f"--load-model={m}" for m in models),
        f"--http-address={host}", f"--http-port={http_port}",
        f"--grpc-address={host}", f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--exit-on-error=true",
        f"--backend-config=python,shm-region-prefix-name={prefix}",
        "--backend-config=python,shm-default-byte-size=16777216",
        "--backend-config=python,shm-growth-byte-size=16777216",
    ]  # fmt: skip


class TritonServer:
    """A tritonserver process: ``start()`` waits until ``/v2/health/ready``; ``stop()`` always ends it; ``log`` is its output."""

    def __init__(
        self, repository: Path, models: Sequence[str], workdir: Path, http_port: int, grpc_port: int
    ) -> None:
        self.repository, self.models, self.workdir = Path(repository), list(models), Path(workdir)
        self.http_port, self.grpc_port = http_port, grpc_port
        self.log_path = self.workdir / "tritonserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 120.0) -> TritonServer:
        root = find_pytriton()
        backends = prepare_backends(self.workdir, root)
        argv = command(self.repository, self.models, backends, self.http_port, self.grpc_port, pytriton=root)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, env=server_env(root), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        url = f"http://127.0.0.1:{self.http_port}/v2/health/ready"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"tritonserver exited with {self.proc.returncode}; its log:\n{self.log[-6000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"tritonserver not ready after {timeout:.0f} s; its log:\n{self.log[-6000:]}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m heal_swin.export.tritonserver", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("repository", type=Path)
    p.add_argument("models", nargs="+", help="models to load (Python-backend end-to-end models)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--workdir", type=Path, default=Path(".tritonserver"))
    a = p.parse_args(argv)
    try:
        root = find_pytriton()
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    backends = prepare_backends(a.workdir.resolve(), root)
    argv_ = command(a.repository.resolve(), a.models, backends, a.http_port, a.grpc_port, a.host, root)
    os.execve(argv_[0], argv_, server_env(root))  # replaces this process: signals go straight to tritonserver
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

"""The servers behind the benchmark: nginx for the static pages, a latency proxy, a curl loop.

nginx comes from Debian's packages (installed with apt-get when missing and we are root) and
runs in the foreground with a config of our own in a temporary directory, on a free port of
127.0.0.1, one worker process (the machine has 2 cores: the other is the client's).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


class ServerError(RuntimeError):
    """nginx (or the proxy) cannot be installed or started."""


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    return found or next((p for p in NGINX_CANDIDATES if os.access(p, os.X_OK)), None)


def ensure_nginx() -> str:
    """The nginx binary, installed from Debian's packages when it is missing and we may."""
    found = find_nginx()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServerError("nginx is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServerError(f"{' '.join(cmd)} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    found = find_nginx()
    if not found:
        raise ServerError("apt-get installed nginx but no nginx binary was found")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


NGINX_CONF = """\
{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/json;
    # The query parameter that pages names the file (digits only: nothing else reaches the disk).
    map $arg_after $hubspot_page {{ "" first; "~^[0-9]+$" $arg_after; default invalid; }}
    map $arg_offset $ga4_page {{ "" 0; "~^[0-9]+$" $arg_offset; default invalid; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /crm/v3/objects/contacts {{ try_files /hubspot/$hubspot_page.json =404; }}
        location = /v1beta/properties/{ga4_property}:runReport {{ try_files /ga4/$ga4_page.json =404; }}
        location / {{ return 404; }}
    }}
}}
"""


class Nginx:
    """``with Nginx(root) as url:`` serves ``root``'s pages on 127.0.0.1 until the block ends."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        from bench.pages import GA4_PROPERTY

        self.root = root
        self.port = port or free_port()
        self.binary = ensure_nginx()
        self.tmp = Path(tempfile.mkdtemp(prefix="kpihub-bench-nginx-"))
        user = "user root;\n" if os.geteuid() == 0 else ""  # root's workers would run as nobody: pages are 0700
        conf = NGINX_CONF.format(user=user, tmp=self.tmp, port=self.port, root=root, ga4_property=GA4_PROPERTY)
        (self.tmp / "nginx.conf").write_text(conf)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def version(self) -> str:
        done = subprocess.run([self.binary, "-v"], capture_output=True, text=True)
        return done.stderr.strip().split("/")[-1]

    def __enter__(self) -> str:
        cmd = [self.binary, "-p", str(self.tmp), "-c", str(self.tmp / "nginx.conf"), "-g", "daemon off;"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_listening(self.port, self.proc, "nginx")
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: nginx's fast shutdown, workers included
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


class LatencyProxy:
    """``with LatencyProxy(upstream_port, 0.1) as url:`` the same pages, each answer 100 ms later."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        cmd = [sys.executable, "-m", "bench.latency", str(self.port), str(self.upstream_port), str(self.delay)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=child_env())
        wait_listening(self.port, self.proc, "the latency proxy")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def child_env() -> dict[str, str]:
    """The environment of the benchmark's child processes: ``bench`` importable, no telemetry."""
    repo = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": repo + (os.pathsep + path if path else ""),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "RUNTIME__LOG_LEVEL": "WARNING",
    }


def curl_loop(base_url: str, paths: list[str], workdir: Path) -> float | None:
    """Seconds for one curl process to GET every page in order (one kept-alive connection), or None
    without curl: the bytes-only ceiling of the transport."""
    curl = shutil.which("curl")
    if not curl:
        return None
    config = workdir / "curl.conf"
    config.write_text("".join(f'url = "{base_url}{p}"\noutput = "/dev/null"\n' for p in paths))
    started = time.perf_counter()
    done = subprocess.run([curl, "-sS", "--fail", "-K", str(config)], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise ServerError(f"curl loop failed: {done.stderr.strip()[:200]}")
    return elapsed

"""Shared by the conformance suites: starts `sandbox` processes and stops them at the end."""

import os
import pathlib
import subprocess
import time
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def start_sandbox():
    """A function that starts the sandbox binary (``SANDBOX_BIN``, default
    ``<repo>/target/debug/sandbox``) with the given arguments and returns its base URLs by API
    (``{"qbo": …, "hubspot": …}``) once each answers its control API."""
    binary = os.environ.get("SANDBOX_BIN", str(REPO / "target" / "debug" / "sandbox"))
    if not pathlib.Path(binary).exists():
        pytest.fail(f"sandbox binary not found at {binary}; build it or set SANDBOX_BIN")
    processes = []

    def start(*args):
        # stderr is not piped: nothing would read it, and a full pipe would stall the sandbox.
        proc = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        processes.append(proc)
        expected = {arg[2:].removesuffix("-addr") for arg in args if arg.endswith("-addr")}
        urls = {}
        deadline = time.time() + 30
        while expected - urls.keys() and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            api, _, url = line.strip().partition(" ")
            if api in expected:
                urls[api] = url
        if expected - urls.keys():
            raise RuntimeError(f"the sandbox did not print URLs for {sorted(expected - urls.keys())}")
        for url in urls.values():
            for _ in range(50):
                try:
                    urllib.request.urlopen(url + "/_sandbox/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
        return urls

    yield start
    for proc in processes:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

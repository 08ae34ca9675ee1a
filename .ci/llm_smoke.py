"""`discover run --llm` in an environment with only the llm extra, against a local server
speaking the OpenAI chat-completions API (tests/llm_server.py), on the small fit space.

Usage: PYTHONPATH=. python .ci/llm_smoke.py DB_FILE
Prints one line on success; exits non-zero with the reason otherwise.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.llm_server import FakeLLMServer, Reply


def rewrite(i: int) -> Reply:
    a, b, c = 1.0 + 0.03 * i, -0.2 - 0.05 * i, 0.6 - 0.03 * i
    return Reply(f"IDEA: parabola {i}\n```python\nA = {a:.3f}\nB = {b:.3f}\nC = {c:.3f}\n\n\n"
                 "def f(x):\n    return A * x * x + B * x + C\n```\n", prompt_tokens=500, completion_tokens=100)


def main() -> int:
    db = Path(sys.argv[1]).resolve()
    discover = str(Path(sys.executable).with_name("discover"))
    with FakeLLMServer([rewrite(i) for i in range(40)]) as server:
        proc = subprocess.run([discover, "run", "--space", "tests.fit_space:SPACE", "--budget", "6", "--workers", "1",
                               "--llm", "openai/scripted-model", "--api-base", server.url, "--db", f"sqlite:///{db}",
                               "--run-name", "llm-smoke"], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OPENAI_API_KEY": "unused-by-local-server"})
        requests = len(server.requests)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return 1
    con = sqlite3.connect(db)
    calls = con.execute("select count(*) from llm_calls where status = 'ok'").fetchone()[0]
    children = con.execute("select count(*) from programs where mutator = 'llm'").fetchone()[0]
    if not (requests and calls and children):
        print(f"the run made {requests} requests, stored {calls} model calls and {children} model-made programs")
        return 1
    print(f"a run against a local OpenAI-compatible server: {requests} requests, {calls} calls and "
          f"{children} model-made programs stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())

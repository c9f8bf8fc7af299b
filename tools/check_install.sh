#!/usr/bin/env bash
# A non-editable install (pip install .) into a fresh venv serves the bundled checkpoint: `python -m app`, run from a
# directory that holds only checkpoints/, imports the installed packages, preloads its demo chains (real edits with
# checkpoints/synth) and answers HTTP. Run by .ci/run after the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q -c "$root/constraints-cpu.txt" -r "$root/requirements.txt" "$root"
mkdir "$work/run"
ln -s "$root/checkpoints" "$work/run/checkpoints"
cd "$work/run"
py="$work/venv/bin/python"
"$py" -c "import app, reasonbrain; assert 'site-packages' in app.__file__ and 'site-packages' in reasonbrain.__file__"
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$py" -m app --port "$port" --data-dir "$work/run/data" > "$work/app.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  if "$py" -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/config', timeout=2)" \
      2>/dev/null; then
    grep -q "preloaded 3 demo chain" "$work/app.log" || { cat "$work/app.log"; echo "no demo chains"; exit 1; }
    echo "check_install: pip install . serves checkpoints/synth on port $port"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || { cat "$work/app.log"; echo "the app exited"; exit 1; }
  sleep 1
done
cat "$work/app.log"
echo "the app did not answer in 120 s"
exit 1

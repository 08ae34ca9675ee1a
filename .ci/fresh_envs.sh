#!/usr/bin/env bash
# Proves that the README's set-up works from this checkout with nothing installed by hand:
# one fresh virtual environment with the core install alone, then one per optional extra,
# each checked with what that extra is for. pip's wheel cache is shared between them.
#
# Usage: bash .ci/fresh_envs.sh [WORKDIR]      (default: a new temporary directory)
# Each step prints one line; the first failure stops the script with a non-zero status.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${1:-$(mktemp -d -t discover-fresh-XXXXXX)}
mkdir -p "$WORK"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
unset VIRTUAL_ENV PYTHONPATH

step() { echo "fresh_envs: $*" >&2; }
fail() { echo "fresh_envs: FAILED: $*" >&2; exit 1; }

# A fresh environment with `pip install -e .[EXTRA]`; prints its bin directory.
make_env() {
  local name=$1 spec=$2 started=$SECONDS
  rm -rf "$WORK/$name"
  python3 -m venv "$WORK/$name"
  "$WORK/$name/bin/python" -m pip install --quiet -e "$spec" >"$WORK/$name.install.log" 2>&1 \
    || { tail -20 "$WORK/$name.install.log" >&2; fail "pip install -e '$spec' in a fresh environment"; }
  step "$name: pip install -e '$spec' in a fresh environment ($((SECONDS - started)) s)"
  echo "$WORK/$name/bin"
}

# Exit status 2 and exactly one line on stderr naming the extra.
expect_one_line() {
  local what=$1 extra=$2; shift 2
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" = 2 ] || fail "$what: exit status $rc, not 2: $err"
  [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "$what printed more than one line: $err"
  case "$err" in *"needs the $extra extra"*) ;; *) fail "$what does not name the $extra extra: $err" ;; esac
  step "core: $what stops with one line: $err"
}

# ---------------------------------------------------------------- core, the README's first command
BIN=$(make_env core .)
"$BIN/python" -c 'import flax' 2>/dev/null && fail "the core install pulled in flax (the rl extra)"
for cmd in "" $("$BIN/python" -c 'from discover.cli import build_parser
p = build_parser()
print(" ".join(next(a for a in p._actions if a.dest == "command").choices))'); do
  "$BIN/discover" $cmd --help >/dev/null || fail "discover $cmd --help"
done
step "core: discover --help and every command's --help work"
"$BIN/discover" spaces >/dev/null || fail "discover spaces"
"$BIN/discover" spaces --json | "$BIN/python" -c '
import json, sys
spaces = {s["name"]: s for s in json.load(sys.stdin)}
assert spaces["cfr_variants"]["available"] and spaces["psro_meta_solvers"]["available"], spaces
for name in ("ppo_objectives", "temporal_objectives", "advantage_rules"):
    assert not spaces[name]["available"] and spaces[name]["needs_extra"] == "rl", spaces[name]
' || fail "discover spaces --json does not say which spaces need the rl extra"
step "core: discover spaces lists the rl spaces as needing the rl extra"
expect_one_line "discover eval on ppo_objectives" rl \
  "$BIN/discover" eval seeds/ppo_objectives/ppo_clip.py --space ppo_objectives
expect_one_line "discover meta-train" rl "$BIN/discover" meta-train --generations 1
expect_one_line "discover run --llm" llm "$BIN/discover" run --space cfr_variants --llm openai/gpt-4o-mini \
  --budget 1 --db "sqlite:///$WORK/llm-missing.db"
expect_one_line "discover top on a PostgreSQL URL" postgres \
  "$BIN/discover" top --db postgresql+psycopg://nobody:secret@127.0.0.1:1/none

# The README's main job, with a small budget, where a new user runs it: the project folder.
BUDGET=${DISCOVER_CI_BUDGET:-8}
rm -f runs/discover.db
started=$SECONDS
"$BIN/discover" run --space cfr_variants --budget "$BUDGET" >"$WORK/run.log" 2>&1 \
  || { tail -30 "$WORK/run.log" >&2; fail "discover run --space cfr_variants --budget $BUDGET"; }
grep -q "scores (higher is better)" "$WORK/run.log" || { tail -30 "$WORK/run.log" >&2; fail "the run printed no summary"; }
"$BIN/python" - "$BUDGET" <<'PY' || fail "runs/discover.db does not hold the evaluated programs"
import sqlite3, sys
budget = int(sys.argv[1])
db = sqlite3.connect("runs/discover.db")
evaluated = db.execute("select count(*) from programs where status = 'evaluated'").fetchone()[0]
evaluations = db.execute("select count(*) from evaluations").fetchone()[0]
assert evaluated >= min(budget, 7), (evaluated, budget)
print(f"fresh_envs: core: runs/discover.db holds {evaluated} evaluated programs and {evaluations} evaluations",
      file=sys.stderr)
PY
step "core: discover run --space cfr_variants --budget $BUDGET finished in $((SECONDS - started)) s"
"$BIN/discover" top --n 3 >/dev/null || fail "discover top after the run"

# Every browsing and study command on the game spaces, core install alone, on a small run.
"$BIN/discover" run --space cfr_variants --budget 4 --seeds cfr,cfr_plus,dcfr --iterations 20 --workers 2 \
  --run-name small --db "sqlite:///$WORK/small.db" >"$WORK/small.log" 2>&1 \
  || { tail -20 "$WORK/small.log" >&2; fail "a small run"; }
DB="sqlite:///$WORK/small.db"
ids=$("$BIN/discover" top --run small --n 10 --json --db "$DB" | "$BIN/python" -c '
import json, sys
rows = json.load(sys.stdin)
print(rows[0]["id"], next(r["id"] for r in rows if r["edit"] == "seed: dcfr"))')
read -r BEST DCFR <<<"$ids"
for cmd in "show $BEST --diff" "lineage $BEST" "diff $DCFR $BEST" "runs" "plot small --out $WORK/small.png" \
           "export $BEST --out $WORK/exported" "tune $DCFR --trials 2"; do
  # shellcheck disable=SC2086
  "$BIN/discover" $cmd --db "$DB" >"$WORK/cmd.log" 2>&1 || { tail -20 "$WORK/cmd.log" >&2; fail "discover $cmd"; }
done
PORT=$(( 20000 + RANDOM % 20000 ))
"$BIN/discover" ui --port "$PORT" --db "$DB" >"$WORK/ui.log" 2>&1 &
UI=$!
"$BIN/python" - "$PORT" <<'PY' || { kill "$UI"; fail "discover ui serves no page"; }
import sys, time, urllib.request
for _ in range(100):
    try:
        assert urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2).status == 200
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit(1)
PY
kill "$UI"
step "core: show, lineage, diff, runs, plot, export, tune and ui work on the game spaces"

# ---------------------------------------------------------------- each extra on its own
BIN=$(make_env rl '.[rl]')
"$BIN/discover" eval seeds/ppo_objectives/ppo_clip.py --space ppo_objectives --task CartPole-v1 \
  --option total_timesteps=20000 --option num_seeds=1 >"$WORK/rl.log" 2>&1 \
  || { tail -20 "$WORK/rl.log" >&2; fail "rl: discover eval of the PPO seed"; }
step "rl: discover eval seeds/ppo_objectives/ppo_clip.py --space ppo_objectives (20,000 steps, 1 seed) ok"
"$BIN/discover" meta-train --help >/dev/null || fail "rl: discover meta-train --help"

BIN=$(make_env llm '.[llm]')
PYTHONPATH="$ROOT" "$BIN/python" .ci/llm_smoke.py "$WORK/llm.db" >"$WORK/llm.log" 2>&1 \
  || { tail -20 "$WORK/llm.log" >&2; fail "llm: a run against a local OpenAI-compatible server"; }
step "llm: $(tail -1 "$WORK/llm.log")"

BIN=$(make_env postgres '.[postgres]')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  eval "$(bash .ci/postgres.sh 2>"$WORK/postgres.log" | grep '^export DISCOVER_TEST_PG_URL=')" \
    || { tail -20 "$WORK/postgres.log" >&2; fail "postgres: no local PostgreSQL server could be started"; }
  name="fresh-$$-$RANDOM"
  "$BIN/discover" run --space cfr_variants --budget 2 --seeds cfr,cfr_plus --iterations 20 --workers 1 \
    --db "$DISCOVER_TEST_PG_URL" --run-name "$name" >"$WORK/pg.log" 2>&1 \
    || { tail -20 "$WORK/pg.log" >&2; fail "postgres: a run on a PostgreSQL URL"; }
  "$BIN/discover" top --db "$DISCOVER_TEST_PG_URL" --run "$name" --json | "$BIN/python" -c '
import json, sys; rows = json.load(sys.stdin); assert len(rows) == 2, rows' \
    || fail "postgres: discover top does not read the run back"
  step "postgres: a run stored in PostgreSQL and read back"
else
  step "postgres: installed; no local server can be started here (not root on Debian), not run"
fi

BIN=$(make_env ray '.[ray]')
"$BIN/python" -c 'import ray; print(ray.__version__)' >/dev/null || fail "ray: import ray"
step "ray: import ray"

BIN=$(make_env torch '.[torch]')
"$BIN/python" -c 'import torch; assert torch.tensor([1.0, 2.0]).sum().item() == 3.0' || fail "torch: import torch"
step "torch: import torch ($("$BIN/python" -c 'import torch; print(torch.__version__)'))"

rm -rf "$WORK"
step "all fresh environments passed"

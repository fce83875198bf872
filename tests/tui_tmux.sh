#!/usr/bin/env bash
# The real binary in a real terminal (tmux): a live `run --tui` on a copy of goldens/pi0-tiny
# with one op's golden perturbed shows that op as the first divergence, `f` selects it, the
# screen survives resizing down to 80×24 and below, `q` leaves the alternate screen and prints
# the summary, and `pccscope tui` reopens the saved report (Ctrl-C quits it).
#
# Needs tmux and python3 (stdlib only). PCCSCOPE_BIN picks the binary (default:
# target/debug/pccscope, built by `cargo test`; built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${PCCSCOPE_BIN:-target/debug/pccscope}"
if [ ! -x "$BIN" ]; then
  cargo build --quiet
  BIN=target/debug/pccscope
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
command -v tmux >/dev/null || { echo "tui_tmux: tmux is not installed"; exit 1; }

TARGET="vlm.layers.3.mlp.up"
tmp="$(mktemp -d)"
SOCK="pccscope-tui-$$"
T=(tmux -L "$SOCK")
cleanup() {
  "${T[@]}" kill-server >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() {
  failed=$((failed + 1))
  echo "FAIL - $1"
  echo "---- screen ----"
  capture
  echo "----------------"
}
capture() { "${T[@]}" capture-pane -p -t t; }
alt_on() { "${T[@]}" display-message -p -t t '#{alternate_on}'; }
# wait_for REGEX SECONDS: until the screen matches.
wait_for() {
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    if capture | grep -Eq -- "$1"; then return 0; fi
    sleep 0.2
  done
  return 1
}
check() { # check NAME REGEX [SECONDS]
  if wait_for "$2" "${3:-10}"; then ok "$1"; else bad "$1 (no match for: $2)"; fi
}
check_absent() { # check_absent NAME REGEX
  sleep 0.5
  if capture | grep -Eq -- "$2"; then bad "$1 (unexpected: $2)"; else ok "$1"; fi
}

# A capture with one op's golden perturbed (as tests/cli.rs does).
cp -r goldens/pi0-tiny "$tmp/cap"
python3 - "$tmp/cap" "$TARGET" <<'EOF'
import json, struct, sys
cap, name = sys.argv[1], sys.argv[2]
manifest = json.load(open(f"{cap}/manifest.json"))
rec = next(o for m in manifest["modules"] for o in m["ops"] if o["name"] == name)
path = f"{cap}/{rec['file']}"
key = rec.get("tensor") or name
data = bytearray(open(path, "rb").read())
hlen = struct.unpack("<Q", data[:8])[0]
info = json.loads(data[8:8 + hlen])[key]
assert info["dtype"] == "F32", info
start = 8 + hlen + info["data_offsets"][0]
for i in range(64):
    at = start + 4 * i
    (v,) = struct.unpack("<f", data[at:at + 4])
    data[at:at + 4] = struct.pack("<f", v + 0.5)
open(path, "wb").write(bytes(data))
EOF

"${T[@]}" new-session -d -s t -x 160 -y 45 "env -i PATH=$PATH HOME=${HOME:-/tmp} TERM=xterm-256color bash --norc --noprofile"
# No wait after Esc: it is a key of its own here, not the start of an Alt sequence.
"${T[@]}" set-option -s escape-time 0
"${T[@]}" send-keys -t t "PS1='shell\$ '; clear; echo SHELL-BEFORE-TUI" Enter
wait_for "SHELL-BEFORE-TUI" 10 || { bad "shell started"; exit 1; }

# 1. Live run: the screen comes up, the run finishes, the first divergence is named.
"${T[@]}" send-keys -t t "cd $tmp && $BIN run --tui --goldens $tmp/cap --report-dir $tmp/out; echo EXIT=\$? SHELL-AFTER-TUI" Enter
check "live screen is up (alternate screen)" "modules [0-9]+/11" 30
[ "$(alt_on)" = 1 ] && ok "alternate screen entered" || bad "alternate screen entered"
check "run finishes and names the first divergence" "first divergence ◆ $TARGET \(vlm #[0-9]+\)" 300
check_absent "progress gauge gone when done" "running \[[0-9]+/11\]"

# 2. Go elsewhere (module list → siglip), then f: the first-divergence row is on screen.
"${T[@]}" send-keys -t t 1 g
check "moved to siglip" "ops · siglip"
"${T[@]}" send-keys -t t f
check "f opens the diverging module" "ops · vlm [0-9]+ ops · 1 failing"
check "f shows the first-divergence row" "◆ +[0-9]+ +$TARGET ◀ first divergence +FAIL"
check "detail pane names it" "FIRST DIVERGENCE +FAIL +$TARGET"
# The row is highlighted: red background (SGR 41) on the line with the op.
if "${T[@]}" capture-pane -e -p -t t | grep -- "$TARGET ◀ first divergence" | grep -Eq $'\e\\[[0-9;]*(41|48;5;1)[;m]'; then
  ok "first-divergence row has the red highlight"
else
  bad "first-divergence row has the red highlight"
fi

# 3. Detail zoom and help.
"${T[@]}" send-keys -t t Enter
check "Enter zooms the detail" "detail · $TARGET · Esc/Enter back"
"${T[@]}" send-keys -t t Escape
check "Esc leaves the zoom" "ops · vlm"
"${T[@]}" send-keys -t t '?'
check "help screen" "keys · \? or Esc closes"
"${T[@]}" send-keys -t t Escape
check_absent "Esc closes the help" "keys · \? or Esc closes"

# 4. Resizing: 80×24 keeps the row on screen; far smaller never kills it.
"${T[@]}" resize-window -t t -x 80 -y 24
check "80×24 still shows the first divergence" "◆ +[0-9]+ +$TARGET"
"${T[@]}" resize-window -t t -x 12 -y 4
sleep 0.5
"${T[@]}" resize-window -t t -x 30 -y 8
sleep 0.5
"${T[@]}" resize-window -t t -x 160 -y 45
check "back to full size after tiny sizes" "ops · vlm"

# 5. q restores the terminal: alternate screen left, summary printed, shell prompt back.
"${T[@]}" send-keys -t t q
check "q returns to the shell" "EXIT=1 SHELL-AFTER-TUI" 30
[ "$(alt_on)" = 0 ] && ok "alternate screen left" || bad "alternate screen left"
check "summary printed after the TUI" "first divergence: $TARGET \(module vlm"
check "shell marker from before the TUI visible again" "SHELL-BEFORE-TUI"
check_absent "no TUI left on the normal screen" "ops · vlm"
"${T[@]}" send-keys -t t "stty -a | grep -o -- '-icanon\\|icanon ' | head -1" Enter
check "terminal is back in cooked mode (icanon)" "^icanon" 5

# 6. The saved report: `pccscope tui DIR` (newest run under it); Ctrl-C quits.
"${T[@]}" send-keys -t t "clear; echo SAVED-BEFORE; $BIN tui $tmp/out; echo TUI-EXIT=\$?" Enter
check "saved report opens on the first divergence" "◆ +[0-9]+ +$TARGET ◀ first divergence" 30
"${T[@]}" send-keys -t t C-c
check "Ctrl-C quits and restores" "TUI-EXIT=0" 10
[ "$(alt_on)" = 0 ] && ok "alternate screen left after Ctrl-C" || bad "alternate screen left after Ctrl-C"
check "text before the saved TUI visible again" "SAVED-BEFORE"

echo "tui_tmux: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Idempotent setup of everything a fresh machine needs, inside the repository:
#   .venv/          Python 3.11/3.12 virtualenv with session-warden[dev] (editable)
#   node_modules/   anvil, solc (JavaScript build), OpenZeppelin, pinned by package-lock.json
# Re-running is cheap: each step is skipped while its inputs are unchanged.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamps=".bootstrap"
mkdir -p "$stamps"

say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

pick_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }
# pip warns about every configured index that does not exist on this machine; keep real errors.
quiet_pip() { .venv/bin/python -m pip "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }

# --- Python ---------------------------------------------------------------
py="$(pick_python)" || die "need Python 3.11 or 3.12 (durable-rules does not build on 3.13); set PYTHON=/path/to/python3.12"
if ! "$py" -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)'; then
    die "Python headers missing (durable-rules compiles from source): apt-get install python3-dev"
fi
command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || die "a C compiler is needed to build durable-rules: apt-get install build-essential"

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
    say "creating .venv with $("$py" --version)"
    rm -rf .venv
    "$py" -m venv .venv
    rm -f "$stamps/python"
fi
want="$(fingerprint pyproject.toml)"
if [ "$(cat "$stamps/python" 2>/dev/null)" != "$want" ]; then
    say "installing session-warden[dev] into .venv"
    quiet_pip install --quiet --upgrade pip
    quiet_pip install --quiet -e '.[dev]'
    echo "$want" > "$stamps/python"
else
    say ".venv up to date"
fi

# --- Node toolchain (anvil, solc, OpenZeppelin) -----------------------------
command -v node >/dev/null 2>&1 || die "Node.js >= 20 with npm is needed for anvil and solc: apt-get install nodejs npm"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
    || die "Node.js >= 20 is needed (found $(node --version))"
want="$(fingerprint package.json package-lock.json)"
if [ "$(cat "$stamps/node" 2>/dev/null)" != "$want" ] || [ ! -x node_modules/.bin/anvil ]; then
    say "installing pinned node toolchain into node_modules/"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamps/node"
else
    say "node_modules up to date"
fi
node_modules/.bin/anvil --version >/dev/null || die "anvil from node_modules does not run"
say "ready: $(.venv/bin/python --version), $(node_modules/.bin/anvil --version | head -1), solc $(node -e 'console.log(require("solc").version())')"

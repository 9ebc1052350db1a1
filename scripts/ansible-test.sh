#!/usr/bin/env bash
# Runs `ansible-test` on this collection with a virtualenv's ansible-test and the local Python,
# no containers. ansible-test insists on running from a directory named
# ansible_collections/<namespace>/<name>/, so the collection's files (tracked and untracked,
# minus ignored ones and the .collections symlink loop) are copied into such a temporary tree.
#   scripts/ansible-test.sh sanity [--test validate-modules ...]
#   scripts/ansible-test.sh integration [netns bridge ...]   (tests/integration/targets/)
# VENV=<dir> picks another virtualenv (CI tests the oldest supported ansible-core that way).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${VENV:-$root/.venv}
case $venv in /*) ;; *) venv=$root/$venv ;; esac
command=${1:?usage: scripts/ansible-test.sh sanity|integration [ARGS]}
shift
export PATH="$venv/bin:$PATH"
pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# Offline pip bootstrap: ansible-test downloads get_pip_<version>.py (from a host unreachable
# here) into ~/.ansible/test/cache/ unless it is already there -- its error message names that
# path. Our own bootstrap (tests/sanity/pip_bootstrap.py) goes there instead.
pipver=$("$venv/bin/python" - "$pyver" <<'EOF'
import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))['pip'])
EOF
)
cache=$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py
mkdir -p "$(dirname "$cache")"
# Replace only our own (possibly older) copy; a real get-pip placed there by hand is kept.
if [ ! -e "$cache" ] || grep -q 'k8slab.podnet' "$cache"; then
  cp tests/sanity/pip_bootstrap.py "$cache"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/ansible_collections/k8slab/podnet
mkdir -p "$dest"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked and untracked files, not ignored ones; skip tracked files deleted in the work tree.
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do
        # .collections links back here; .ansible is ansible-lint's cache (until it is ignored).
        case $f in collections|.collections/*|.ansible/*|.venv/*|build/*) continue ;; esac
        [ -e "$f" ] && printf '%s\0' "$f"
      done \
    | tar --null -T - -cf - | tar -xf - -C "$dest"
else
  tar --exclude=./.git --exclude=./.collections --exclude=./collections --exclude=./.ansible --exclude=./.venv --exclude=./build \
      --exclude=./tests/output --exclude=__pycache__ --exclude=./.pytest_cache -cf - . \
    | tar -xf - -C "$dest"
fi

cd "$dest"
corever=$("$venv/bin/python" -c 'from ansible.release import __version__ as v; print(".".join(v.split(".")[:2]))')
echo "ansible-test $command (ansible-core $corever, Python $pyver) in $dest"
extra=()
[ "$command" != integration ] || extra=(--allow-root)
# The filter drops pip's noise about this machine's extra local indexes lacking a package.
ansible-test "$command" --python "$pyver" --local --color no "${extra[@]}" "$@" 2>&1 \
  | { grep --line-buffered -v "is ignored: it is neither a file nor a directory" || true; }

# Sourced by the scripts beside it: make (or reuse) a virtual environment for
# one interpreter with this project installed, editable, with the given
# extras (comma-separated).
#   ensure_venv PYTHON EXTRAS  ->  sets VENV_PYTHON
# The venv lives in .venv/<interpreter>-<extras> and is rebuilt when
# pyproject.toml changes, so a fresh clone needs nothing installed by hand.
ensure_venv() {
    local python=$1 extra=$2 tag dir stamp
    tag=$("$python" -c 'import sys; print("py%d.%d.%d" % sys.version_info[:3])')
    dir=".venv/$tag-${extra//,/-}"
    stamp=$(cksum < pyproject.toml)
    if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "setting up $dir" >&2
        rm -rf "$dir"
        "$python" -m venv "$dir"
        "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
        "$dir/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extra]" >&2
        echo "$stamp" > "$dir/.stamp"
    fi
    VENV_PYTHON="$dir/bin/python"
}

# Sourced by scripts/dev and scripts/test: create or refresh a venv from a requirements file.
# A venv is rebuilt only when its requirements files changed (a hash is kept inside it).

ensure_venv() {
    local venv_dir="$1" requirements="$2"
    local python="${PYTHON:-python3}"
    local wanted
    wanted="$(cat requirements*.txt | sha256sum | cut -d' ' -f1)"
    if [[ ! -x "$venv_dir/bin/python" ]]; then
        echo "==> creating $venv_dir with $($python --version)"
        "$python" -m venv "$venv_dir"
    fi
    if [[ "$(cat "$venv_dir/.requirements.sha256" 2>/dev/null)" != "$wanted" ]]; then
        echo "==> installing $requirements into $venv_dir"
        "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$wanted" > "$venv_dir/.requirements.sha256"
    fi
}

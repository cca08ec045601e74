# Sourced by scripts/dev: build the reference React app (clients/react-demo) that Django serves
# at /chat/. Vite compiles the workspace libraries from their sources, so one build suffices.

frontend_sources_newer_than() {
    find clients/js clients/react clients/react-demo clients/package-lock.json \
        \( -name node_modules -o -name dist \) -prune -o -type f -newer "$1" -print -quit
}

ensure_node_modules() {
    # npm writes node_modules/.package-lock.json on every install: older than the lockfile
    # means the lockfile changed since.
    if [[ ! -f clients/node_modules/.package-lock.json ||
          clients/package-lock.json -nt clients/node_modules/.package-lock.json ]]; then
        echo "==> npm ci in clients/"
        (cd clients && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

build_reference_app() {
    if ! command -v npm >/dev/null 2>&1; then
        echo "==> WARNING: node/npm not found: /chat/ (the reference React app) is not built;" \
            "install Node >= 20.19 and run ./scripts/dev again" >&2
        return 0
    fi
    local index=clients/react-demo/dist/index.html
    if [[ -f "$index" && -z "$(frontend_sources_newer_than "$index")" ]]; then
        echo "==> /chat/ is up to date (clients/react-demo/dist)"
        return 0
    fi
    echo "==> building the reference React app into clients/react-demo/dist"
    if ! { ensure_node_modules && (cd clients && npm run build --workspace @crm-chat/react-demo); }; then
        echo "==> WARNING: the reference app did not build: /chat/ says so; the backend starts" >&2
    fi
}

#!/bin/sh
# Build the example components (components/examples/*) for wasm32-unknown-unknown,
# wrap each into a component with oberon-componentize (cli/guest-build), and install
# them as a renderer's components directory: <dest>/<name>/component.wasm, plus the
# crate's assets/ as <dest>/<name>/assets/. The same layout as
# oberon_renderer::registry::install, which `oberon dev` uses.
#
# Then the Python and JavaScript projects (components/examples-py/*,
# components/examples-js/*), each built with `oberon component build` (componentize-py
# and ComponentizeJS, installed on first use into $OBERON_TOOLS_DIR; needs python3 with
# venv, and Node.js 20+ with npm) and installed the same way.
#
# Used by renderer.Dockerfile to bake the components into the image, and by the
# infra check (infra/tests) to start the renderer the way the image does.
#
#   infra/docker/install-components.sh COMPONENTS_WORKSPACE DEST
#
# OBERON_COMPONENTIZE names the oberon-componentize binary, OBERON the oberon CLI
# (default: each on PATH).
set -eu
workspace=$1
dest=$2
componentize=${OBERON_COMPONENTIZE:-oberon-componentize}
oberon=${OBERON:-oberon}

names=""
for manifest in "$workspace"/examples/*/Cargo.toml; do
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)
    [ -n "$name" ] || { echo "$manifest: no package name" >&2; exit 1; }
    names="$names $name"
done

# The components workspace has its own target directory and flags
# (components/.cargo/config.toml): nothing from an outer build may leak in.
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET CARGO_ENCODED_RUSTFLAGS RUSTFLAGS

# shellcheck disable=SC2086 # one -p per name
(cd "$workspace" && cargo build --quiet --release --locked --target wasm32-unknown-unknown \
    $(for n in $names; do printf -- '-p %s ' "$n"; done))

for manifest in "$workspace"/examples/*/Cargo.toml; do
    crate=$(dirname "$manifest")
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)
    core="$workspace/target/wasm32-unknown-unknown/release/$(echo "$name" | tr - _).wasm"
    mkdir -p "$dest/$name"
    if [ -d "$crate/assets" ]; then
        rm -rf "$dest/$name/assets"
        cp -R "$crate/assets" "$dest/$name/assets"
    fi
    "$componentize" "$core" "$dest/$name/.component.wasm.tmp"
    mv "$dest/$name/.component.wasm.tmp" "$dest/$name/component.wasm"
done
for marker in "$workspace"/examples-py/*/pyproject.toml "$workspace"/examples-js/*/package.json; do
    [ -f "$marker" ] || continue
    project=$(dirname "$marker")
    name=$(basename "$project")
    "$oberon" component build --dir "$project" >/dev/null
    mkdir -p "$dest/$name"
    if [ -d "$project/assets" ]; then
        rm -rf "$dest/$name/assets"
        cp -R "$project/assets" "$dest/$name/assets"
    fi
    cp "$project/build/$name.component.wasm" "$dest/$name/.component.wasm.tmp"
    mv "$dest/$name/.component.wasm.tmp" "$dest/$name/component.wasm"
    names="$names $name"
done
echo "installed:$names -> $dest"

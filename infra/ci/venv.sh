# Sourced by infra/ci/check and infra/ci/check-binaries: a virtualenv with the pinned
# tools of requirements.txt, created once per version of that file.
hash=$(cat "$here/requirements.txt" | sha256sum | cut -c1-12)
venv=${OBERON_INFRA_VENV:-${TMPDIR:-/tmp}/oberon-infra-venv-$hash}
if [ ! -x "$venv/bin/checkov" ] || [ ! -f "$venv/.complete" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    # See requirements.txt: kustomize itself, as a shared object behind cffi.
    "$venv/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python \
        pykustomize==0.1.4
    touch "$venv/.complete"
fi
py=$venv/bin/python

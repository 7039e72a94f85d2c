"""Render every Kustomize overlay of infra/k8s with real kustomize (krusty, through
pykustomize) into one YAML file per overlay.

    python infra/ci/render.py OUT_DIR            # writes OUT_DIR/dev.yaml, OUT_DIR/prod.yaml

Load restrictions are off (kustomize's --load-restrictor LoadRestrictionsNone): the
base generates the renderer's ConfigMaps from demo/, the one copy of the site.
"""

import asyncio
import sys
from pathlib import Path

import pykustomize

OVERLAYS = Path(__file__).resolve().parents[1] / "k8s" / "overlays"


def render(overlay: Path) -> str:
    options = pykustomize.BuildOptions(
        load_restrictions=pykustomize.LoadRestrictions.NONE,
    )
    result = asyncio.run(pykustomize.Kustomizer().build(overlay, options))
    return result.yaml


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    overlays = sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())
    if not overlays:
        print(f"no overlays under {OVERLAYS}", file=sys.stderr)
        return 1
    for overlay in overlays:
        try:
            text = render(overlay)
        except pykustomize.KustomizeError as e:
            print(f"{overlay}: kustomize: {e}", file=sys.stderr)
            return 1
        (out / f"{overlay.name}.yaml").write_text(text)
        print(f"rendered {overlay.relative_to(OVERLAYS.parents[2])} -> {out / overlay.name}.yaml "
              f"({text.count(chr(10) + 'kind: ') + text.startswith('kind: ')} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

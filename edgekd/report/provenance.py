"""What a run was made from (recipe, data, task), and whether two runs are comparable at all.

`identity` goes into report.json; `unrelated_reasons` is the one rule `report --compare` uses to warn
that two runs answer different questions (a comparison of them is a list of differences, not of
regressions).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekd.recipe import Recipe


def _data_sidecar(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    items = (manifests.get("data") or {}).get("artifacts")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == "dataset":
            return item
    return {}


def _recipe_hash_from_artifacts(manifests: dict[str, dict[str, Any]]) -> str | None:
    """The recipe hash edgekd stamps into the ONNX metadata of its exports (sidecar config.metadata)."""
    for manifest in manifests.values():
        items = manifest.get("artifacts")
        for item in items if isinstance(items, list) else []:
            config = item.get("config") if isinstance(item, dict) else None
            metadata = config.get("metadata") if isinstance(config, dict) else None
            recipe_hash = metadata.get("recipe_hash") if isinstance(metadata, dict) else None
            if isinstance(recipe_hash, str):
                return recipe_hash
    return None


def identity(manifests: dict[str, dict[str, Any]], recipe: Recipe | None = None) -> dict[str, Any]:
    """{recipe_name, recipe_hash, data_sha256, samples, input_shape, num_classes, label_names}; unknown parts None."""
    found = (manifests.get("data") or {}).get("summary")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    sizes: dict[str, Any] = data["sizes"] if isinstance(data.get("sizes"), dict) else {}
    counts = [v for v in sizes.values() if isinstance(v, int) and not isinstance(v, bool)]
    return {
        "recipe_name": recipe.run.name if recipe is not None else None,
        "recipe_hash": recipe.recipe_hash() if recipe is not None else _recipe_hash_from_artifacts(manifests),
        "data_sha256": _data_sidecar(manifests).get("sha256"),
        "samples": sum(counts) if counts else None,  # train + val + test: a reseeded split keeps it
        "input_shape": data.get("input_shape"),
        "num_classes": data.get("num_classes"),
        "label_names": data.get("label_names"),
    }


def _differs(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    """Both runs know `key` and their values differ."""
    return a.get(key) is not None and b.get(key) is not None and json.dumps(a[key]) != json.dumps(b[key])


def unrelated_reasons(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Why report.json dicts a and b are not two versions of one model ([] when they plausibly are).

    Different task (input shape, classes, labels) is enough on its own; so is having no artifact and no
    bench row in common. A different recipe name counts only together with different data (another
    number of samples): a changed recipe, a new seed (another split, so another data file) or another
    edgekd version are what a before/after comparison is for. The recipe hash changes with any edit,
    so it is shown, never judged.
    """
    ida, idb = a.get("identity") or {}, b.get("identity") or {}
    reasons = []
    for key, label in (
        ("input_shape", "input shape"),
        ("num_classes", "number of classes"),
        ("label_names", "class labels"),
    ):
        if _differs(ida, idb, key):
            reasons.append(f"different {label} ({_short(ida[key])} vs {_short(idb[key])})")
    names_a = {art.get("name") for art in a.get("artifacts") or []}
    names_b = {art.get("name") for art in b.get("artifacts") or []}
    bench_a = {(r.get("artifact"), r.get("target")) for r in a.get("bench") or []}
    bench_b = {(r.get("artifact"), r.get("target")) for r in b.get("bench") or []}
    if (names_a or names_b or bench_a or bench_b) and not names_a & names_b and not bench_a & bench_b:
        reasons.append("no artifact or bench row in common")
    if _differs(ida, idb, "recipe_name") and _differs(ida, idb, "samples"):
        reasons.append(
            f"different recipes ({ida['recipe_name']} vs {idb['recipe_name']}) on different data "
            f"({ida['samples']} vs {idb['samples']} samples)"
        )
    return reasons


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:12] if isinstance(value, str) and len(text) == 64 else (text if len(text) <= 40 else text[:37] + "...")

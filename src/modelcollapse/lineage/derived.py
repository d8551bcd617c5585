"""The fields a ledger record derives, derived again for ``lineage verify``: its
own sums and shares; its composition, parents and human share from train.json and
the parents' records; its settings and key from model.json; its settings and the
head's generation count from params.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcollapse import io
from modelcollapse.lineage.ledger import human_share, parents_of
from modelcollapse.lineage.records import head_path, rel
from modelcollapse.manifest import composition, read_manifest
from modelcollapse.paths import gen_file
from modelcollapse.settings import is_root

if TYPE_CHECKING:
    from modelcollapse.lineage.audit import VerifyResult

REL_TOL = 1e-9


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _differences(ours: Any, theirs: Any, ours_name: str, theirs_name: str) -> str:
    """``key: <ours_name> X, <theirs_name> Y`` for each top-level key that differs."""
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return f"{ours_name} {_short(ours)}, {theirs_name} {_short(theirs)}"
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    return "; ".join(
        f"{k}: {ours_name} {_short(ours.get(k))}, {theirs_name} {_short(theirs.get(k))}"
        for k in keys
    )


def _close(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if not isinstance(a, numbers) or not isinstance(b, numbers):
        return False
    return abs(a - b) <= REL_TOL * max(1.0, abs(a), abs(b))


def _own_fields(run: str, g: int, rec: dict) -> list[str]:
    """What contradicts the rest of the same record: the seed, the artifact paths,
    the composition's sums, the shares."""
    out = []
    if rec["seed"] != rec["settings"].get("seed"):
        out.append(f"seed {rec['seed']} is not the settings' seed {rec['settings'].get('seed')}")
    for name, entry in rec["artifacts"].items():
        if entry["path"] != gen_file(run, g, name).as_posix():
            out.append(f"artifact {name} has path {entry['path']}")
    comp, share = rec["composition"], rec["human_share"]
    human = sum(comp["human_rows"].values())
    synthetic = sum(comp["synthetic_rows"].values())
    if comp["rows"] != human + synthetic or comp["rows"] <= 0:
        out.append(f"composition: rows {comp['rows']} is not {human} human + {synthetic} synthetic")
    elif not _close(comp["human_fraction"], human / comp["rows"]):
        out.append(
            f"composition: human_fraction {comp['human_fraction']} is not {human} / {comp['rows']}"
        )
    if not _close(share["direct"], comp["human_fraction"]):
        out.append(
            f"human share: direct {share['direct']} is not the composition's human fraction "
            f"{comp['human_fraction']}"
        )
    m = share["path_length"]  # a mean of path lengths, each at least one row
    if not (isinstance(m, int | float) and m >= 1 and _close(share["effective"], 1.0 / m)):
        out.append(f"human share: effective {share['effective']} is not 1 / path_length {m}")
    return out


def _as_parts(comp: dict[str, Any]) -> list[dict[str, Any]]:
    """Row parts that :func:`modelcollapse.manifest.composition` counts back to ``comp``."""
    human = [
        {"source": "human", "path": k, "rows": [[0, n]]} for k, n in comp["human_rows"].items()
    ]
    return human + [
        {"source": "synthetic", "origin_generation": int(j), "rows": [[0, n]]}
        for j, n in comp["synthetic_rows"].items()
    ]


class _Manifests:
    """train.json files, each read once, and their compositions.

    A composition is :func:`modelcollapse.manifest.composition` of the manifest's own
    parts plus the row counts of each manifest it includes, computed once (accumulate
    includes every earlier manifest: flattening each anew would read O(G^2) files)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._manifests: dict[str, dict[str, Any]] = {}
        self._compositions: dict[str, dict[str, Any]] = {}

    def manifest(self, path: str) -> dict[str, Any]:
        if path not in self._manifests:
            self._manifests[path] = read_manifest(self.root / path)
        return self._manifests[path]

    def composition(self, path: str) -> dict[str, Any]:
        stack, opened = [(path, False)], set()
        while stack:  # depth first, iteratively: accumulate chains can be thousands deep
            current, expanded = stack.pop()
            if current in self._compositions:
                continue
            parts = self.manifest(current)["parts"]
            includes = [p["path"] for p in parts if p.get("include") == "manifest"]
            if expanded:
                counted = [p for p in parts if p.get("include") != "manifest"]
                for i in includes:
                    counted += _as_parts(self._compositions[i])
                self._compositions[current] = composition({"parts": counted}, self.root)
            elif current in opened:
                raise io.ArtifactError(f"manifest {current} includes itself")
            else:
                opened.add(current)
                stack += [(current, True)] + [(i, False) for i in includes]
        return self._compositions[path]


def _check_train(run: str, g: int, rec: dict, where: str, manifests: _Manifests, res) -> None:
    """Composition, parents and human share, derived again from train.json."""
    train = gen_file(run, g, "train.json").as_posix()
    if not (manifests.root / train).exists():
        return  # a missing file is a problem of its own
    res.counts["manifests"] += 1
    try:
        manifest = manifests.manifest(train)
        comp = manifests.composition(train)
        parents, parent_records = parents_of(run, g, manifest, manifests.root)
        share = human_share(manifest, comp, parent_records)
    except (io.ArtifactError, KeyError, TypeError, ValueError) as exc:
        res.fail(run, g, train, f"the record's composition cannot be derived from it: {exc}")
        return
    if manifest.get("composition") != comp:
        diff = _differences(manifest.get("composition"), comp, "stored", "parts")
        res.fail(run, g, train, f"its composition does not follow from its parts ({diff})")
    if rec["composition"] != comp:
        diff = _differences(rec["composition"], comp, "record", "train.json")
        res.fail(run, g, where, f"composition differs from {train}'s parts ({diff})")
    ours = [{k: v for k, v in p.items() if k != "content_hash"} for p in rec["parents"]]
    theirs = [{k: v for k, v in p.items() if k != "content_hash"} for p in parents]
    if ours != theirs:
        msg = (
            f"parents differ from those {train} uses: record {_short(ours)}, "
            f"train.json {_short(theirs)}"
        )
        res.fail(run, g, where, msg)
    if not all(_close(rec["human_share"].get(k), v) for k, v in share.items()):
        diff = _differences(rec["human_share"], share, "record", "derived")
        msg = f"human share differs from the one {train} and the parents' records give ({diff})"
        res.fail(run, g, where, msg)


def _check_model(run: str, g: int, rec: dict, where: str, root: Path, res) -> None:
    """Run, generation, settings and key against model.json (the checkpoint's own)."""
    model = gen_file(run, g, "model.json").as_posix()
    if not (root / model).exists():
        return
    res.counts["models"] += 1
    meta = io.read_json(root / model)
    extra = meta.get("extra") if isinstance(meta, dict) else None
    if not isinstance(extra, dict):
        res.fail(run, g, model, "holds no run, generation, settings and key ('extra')")
        return
    if (extra.get("run"), extra.get("generation")) != (run, g):
        res.fail(run, g, model, f"says run {extra.get('run')} generation {extra.get('generation')}")
    if rec["settings"] != extra.get("settings"):
        diff = _differences(rec["settings"], extra.get("settings"), "record", "model.json")
        res.fail(run, g, where, f"settings differ from {model}'s ({diff})")
    if rec["key"] != extra.get("key"):
        res.fail(run, g, where, f"key {rec['key']} differs from {model}'s {extra.get('key')}")


def _check_derived(run: str, paths, records, files: bool, manifests: _Manifests, res) -> None:
    for g, rec in records.items():
        where = rel(paths[g], manifests.root)
        try:
            for message in _own_fields(run, g, rec):
                res.fail(run, g, where, message)
            if files:
                _check_train(run, g, rec, where, manifests, res)
                _check_model(run, g, rec, where, manifests.root, res)
        except io.ArtifactError as exc:
            res.fail(run, g, where, str(exc))
        except (KeyError, TypeError, AttributeError, ValueError, ZeroDivisionError) as exc:
            res.fail(run, g, where, f"malformed record: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------ params.yaml


def _load_params(root: Path, res: VerifyResult) -> Any:
    """The validated params.yaml at the root, or None (absent, or invalid: a problem)."""
    from modelcollapse.config import load_params  # schemas and families: only here

    path = root / "params.yaml"
    if not path.exists():
        res.notes.append("no params.yaml: settings checked against model.json only")
        return None
    try:
        return load_params(path)
    except (ValueError, OSError) as exc:  # ConfigError is a ValueError
        res.fail("*", None, "params.yaml", f"invalid, no settings checked against it: {exc}")
        return None


def _check_params(run: str, paths, records, params, head, root: Path, res) -> None:
    """Settings and length against params.yaml: a difference is a run out of date or
    an edit. Generations beyond its ``generations`` (left from a larger count) are not
    compared."""
    if params is None:
        return
    if is_root(run):
        if run not in params.roots():
            res.notes.append(f"no run of params.yaml starts from {run}: not compared")
            return
        res.counts["params_runs"] += 1
        expected = params.root_settings(run).root_dict()
        for g, rec in records.items():
            if rec["settings"] != expected:
                diff = _differences(rec["settings"], expected, "record", "params.yaml")
                res.fail(
                    run, g, rel(paths[g], root), f"settings differ from params.yaml's ({diff})"
                )
        return
    if run not in params.runs:
        res.notes.append(f"run {run} is not in params.yaml: its settings are not compared")
        return
    res.counts["params_runs"] += 1
    expected = params.generation_settings(run)
    count = params.run(run).generations
    for g, rec in records.items():
        if g < count and rec["settings"] != expected:
            msg = (
                f"settings differ from params.yaml's "
                f"({_differences(rec['settings'], expected, 'record', 'params.yaml')}): "
                "the run is out of date with params.yaml (rebuild it) or the record was edited"
            )
            res.fail(run, g, rel(paths[g], root), msg)
    if head is not None and head["generations"] != count:
        msg = (
            f"anchors {head['generations']} generations, params.yaml asks for {count}: the "
            "run is out of date with params.yaml (run the workflow) or head.json was edited"
        )
        res.fail(run, None, rel(head_path(run, root), root), msg)

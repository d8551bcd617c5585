"""``lineage export``: the ledger as W3C PROV (JSON, via ``prov``), mermaid or Graphviz dot.

PROV model, per generation g of a run:

* entities: the human data files, the training set (``train.json``), the checkpoint
  (``model.safetensors``, its ``model.json`` md5 as an attribute) and the samples;
* activities: ``train`` (used the training set, generated the checkpoint) and
  ``sample`` (used the checkpoint, generated the samples);
* ``wasDerivedFrom``: checkpoint from training set, samples from checkpoint, training
  set from the human files and earlier artifacts its manifest references.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from prov.model import ProvDocument

from modelcollapse.lineage.records import (
    LedgerError,
    chain_records,
    ledger_records,
    ledger_runs,
    read_record,
)
from modelcollapse.settings import is_root

NAMESPACE = ("mc", "urn:modelcollapse:")
FORMATS = ("prov-json", "mermaid", "dot")
KINDS = {
    "train.json": "TrainingSet",
    "model.safetensors": "Checkpoint",
    "samples.parquet": "Samples",
}


class Graph:
    """The lineage as nodes (artifact paths) and labelled edges, shared by every format."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[tuple[str, str, str]] = []
        self.activities: list[dict[str, Any]] = []

    def node(self, path: str, kind: str, cluster: str, label: str, **attrs: Any) -> None:
        self.nodes.setdefault(path, {"kind": kind, "cluster": cluster, "label": label, **attrs})

    def edge(self, src: str, dst: str, label: str = "") -> None:
        if (src, dst, label) not in self.edges:
            self.edges.append((src, dst, label))


def parse_generations(text: str) -> range:
    """``START:STOP`` as a Python slice (STOP excluded; either side may be left out) or
    one generation ``G``: the window ``lineage export --generations`` keeps."""
    start, sep, stop = text.partition(":")
    try:
        first = int(start) if start.strip() else 0
        last = (int(stop) if stop.strip() else 1 << 62) if sep else first + 1
    except ValueError:
        raise ValueError(
            f"--generations {text!r}: expected START:STOP (e.g. 0:3, generations 0, 1 and 2) "
            "or one generation"
        ) from None
    if first < 0 or last <= first:
        raise ValueError(f"--generations {text!r}: the window holds no generation")
    return range(first, last)


def records_of(
    runs: list[str] | None, root: str | Path = ".", generations: range | None = None
) -> dict[str, list[dict]]:
    """Every ledger record of ``runs`` (default: every run in the ledger), in order;
    only those in ``generations`` if given. A run without a record is an error."""
    runs = list(runs) if runs else ledger_runs(root)
    out: dict[str, list[dict]] = {}
    for run in runs:
        paths = ledger_records(run, root)
        if not paths:
            known = ", ".join(ledger_runs(root)) or "none"
            raise LedgerError(f"run {run!r} has no ledger records under {root}; runs: {known}")
        zero = chain_records(run, root).get(0)  # the run's root: its generation 0
        if zero is not None and (generations is None or 0 in generations):
            rec = read_record(zero)
            out.setdefault(rec["run"], [rec])  # once, however many runs share it
        out[run] = [
            read_record(p)
            for g, p in sorted(paths.items())
            if generations is None or g in generations
        ]
    return out


def build_graph(records: dict[str, list[dict]]) -> Graph:
    graph = Graph()
    for run, recs in records.items():
        for rec in recs:
            src = rec["human_data"]["source"]
            for name, f in rec["human_data"]["files"].items():
                graph.node(
                    f["path"], "HumanData", f"human {src}", name, md5=f["md5"], size=f["size"]
                )
            g = rec["generation"]
            art = rec["artifacts"]
            for name, kind in KINDS.items():
                a = art[name]
                extra = (
                    {"config_md5": art["model.json"]["md5"]} if name == "model.safetensors" else {}
                )
                if name == "train.json":
                    extra = {
                        "rows": rec["composition"]["rows"],
                        "human_fraction": rec["human_share"]["direct"],
                        "effective_human_share": rec["human_share"]["effective"],
                    }
                graph.node(
                    a["path"],
                    kind,
                    f"{run} (a shared generation 0)" if is_root(run) else f"run {run}",
                    f"gen {g} {name}",
                    md5=a["md5"],
                    size=a["size"],
                    run=run,
                    generation=g,
                    **extra,
                )
            train, model, samples = (art[n]["path"] for n in KINDS)
            for path, rows in rec["composition"]["human_rows"].items():
                if rows:
                    graph.edge(path, train, "human rows")
            for p in rec["parents"]:
                for f in p["used"]:
                    graph.edge(
                        f["path"], train, "rows" if f["path"].endswith(".parquet") else "includes"
                    )
            graph.edge(train, model, "train")
            graph.edge(model, samples, "sample")
            base = f"run/{run}/gen_{g:04d}"
            graph.activities.append(
                {
                    "id": f"{base}/train",
                    "kind": "Training",
                    "used": train,
                    "generated": model,
                    "run": run,
                    "generation": g,
                    "settings": rec["settings"],
                    "seed": rec["seed"],
                    "commit": rec["code"].get("commit"),
                }
            )
            graph.activities.append(
                {
                    "id": f"{base}/sample",
                    "kind": "Sampling",
                    "used": model,
                    "generated": samples,
                    "run": run,
                    "generation": g,
                }
            )
    return graph


def to_prov(graph: Graph) -> ProvDocument:
    doc = ProvDocument()
    prefix, uri = NAMESPACE
    doc.add_namespace(prefix, uri)

    def q(path: str) -> str:
        return f"{prefix}:{path}"

    for path, n in graph.nodes.items():
        attrs: dict[str, Any] = {
            "prov:type": q(n["kind"]),
            "prov:label": f"{n['cluster']}: {n['label']}",
        }
        attrs |= {q(k): v for k, v in n.items() if k not in ("kind", "cluster", "label")}
        doc.entity(q(path), attrs)
    for a in graph.activities:
        attrs = {
            "prov:type": q(a["kind"]),
            q("run"): a["run"],
            q("generation"): a["generation"],
        }
        if "settings" in a:
            attrs |= {
                q("settings"): json.dumps(a["settings"], sort_keys=True),
                q("seed"): str(a["seed"]),
                q("commit"): str(a["commit"]),
            }
        doc.activity(q(a["id"]), other_attributes=attrs)
        doc.used(q(a["id"]), q(a["used"]))
        doc.wasGeneratedBy(q(a["generated"]), q(a["id"]))
    for src, dst, _ in graph.edges:
        doc.wasDerivedFrom(q(dst), q(src))
    return doc


def _mermaid_label(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(graph: Graph) -> str:
    ids = {path: f"n{i}" for i, path in enumerate(graph.nodes)}
    clusters: dict[str, list[str]] = {}
    for path, n in graph.nodes.items():
        clusters.setdefault(n["cluster"], []).append(path)
    lines = ["flowchart LR"]
    for c, (cluster, paths) in enumerate(clusters.items()):
        lines.append(f'  subgraph c{c}["{_mermaid_label(cluster)}"]')
        for path in paths:
            n = graph.nodes[path]
            text = _mermaid_label(f"{n['label']}<br/>md5 {n['md5'][:8]}")
            shape = ('[("', '")]') if n["kind"] == "Checkpoint" else ('["', '"]')
            lines.append(f"    {ids[path]}{shape[0]}{text}{shape[1]}")
        lines.append("  end")
    for src, dst, label in graph.edges:
        if src not in ids:
            continue
        arrow = f" -->|{label}| " if label else " --> "
        lines.append(f"  {ids[src]}{arrow}{ids[dst]}")
    return "\n".join(lines) + "\n"


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph) -> str:
    clusters: dict[str, list[str]] = {}
    for path, n in graph.nodes.items():
        clusters.setdefault(n["cluster"], []).append(path)
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for c, (cluster, paths) in enumerate(clusters.items()):
        lines.append(f"  subgraph cluster_{c} {{")
        lines.append(f"    label={_dot_str(cluster)};")
        for path in paths:
            n = graph.nodes[path]
            shape = ", shape=cylinder" if n["kind"] == "Checkpoint" else ""
            label = _dot_str(n["label"])[:-1] + f'\\nmd5 {n["md5"][:8]}"'
            lines.append(f"    {_dot_str(path)} [label={label}{shape}];")
        lines.append("  }")
    for src, dst, label in graph.edges:
        lines.append(f"  {_dot_str(src)} -> {_dot_str(dst)} [label={_dot_str(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def export(
    fmt: str,
    runs: list[str] | None = None,
    root: str | Path = ".",
    generations: range | None = None,
) -> str:
    """The text of ``lineage export --format FMT`` for ``runs`` (default: all) and the
    ``generations`` window (default: all). An artifact outside the window that a
    generation inside read stays an edge's source: dot and PROV name it, mermaid draws
    only what is inside."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    graph = build_graph(records_of(runs, root, generations))
    if fmt == "prov-json":
        # Without a destination, serialize returns the text (typed str | None).
        return cast(str, to_prov(graph).serialize(format="json", indent=2)) + "\n"
    return to_mermaid(graph) if fmt == "mermaid" else to_dot(graph)

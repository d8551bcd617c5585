"""What is up to date: every step's outputs against its key and its inputs' content.

The workflow's own rebuild decision, shared by the Snakefile (which marks the steps it
finds out of date for Snakemake to rerun), the ``dvc repro`` stages (which reuse the
generations that are up to date), ``python -m modelcollapse status`` and the
DVC bookkeeping after a Snakemake run. It reads only what the outputs record, never
modification times, so it gives the same answer after ``git clone`` and ``dvc pull``.

A step is

* ``missing`` when one of its outputs (or its stamp) is absent;
* ``stale`` when its recorded key differs from the key computed now (settings or code
  changed), when what it read has other content now than when it ran, or when a step
  it reads from is itself missing or stale (it will be rebuilt);
* ``fresh`` otherwise.

Generations record their key in ``model.json`` and in their ledger record, and the md5s
and content hashes of what they read in the ledger record; the other steps in a stamp
(:func:`modelcollapse.keys.stamp_path`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcollapse import io
from modelcollapse.config import Params
from modelcollapse.keys import Keys
from modelcollapse.lineage.records import LEDGER_DIR, LedgerError, head_path, read_record
from modelcollapse.paths import GEN_FILES, REPORT_DIR, gen_path, gen_tag, human_dir, results_dir
from modelcollapse.stamps import read_stamp, stamp_path

FRESH, STALE, MISSING = "fresh", "stale", "missing"


@dataclass(frozen=True)
class Status:
    state: str
    reason: str = ""
    partial: bool = False  # missing, but some of its outputs exist

    @property
    def fresh(self) -> bool:
        return self.state == FRESH

    @property
    def rebuild_in_place(self) -> bool:
        """Out of date with (some of) its outputs in place: a tool that rebuilds only
        what is missing must be told (the Snakefile's rebuild flags)."""
        return self.state == STALE or self.partial


_FRESH = Status(FRESH)

# The files each stamped step writes beside its stamp.
RESULT_FILES = {
    "metrics": ("metrics.csv", "summary.json"),
    "ensemble": ("ensemble.csv",),
}


def _changed(recorded: Any, expected: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two materials (settings by key)."""
    if isinstance(recorded, dict) and isinstance(expected, dict):
        out = []
        for k in sorted(set(recorded) | set(expected), key=str):
            out += _changed(recorded.get(k), expected.get(k), f"{prefix}{k}.")
        return out
    return [] if recorded == expected else [prefix.rstrip(".")]


def explain(recorded: dict[str, Any] | None, expected: dict[str, Any]) -> str:
    """Why a recorded material is not the expected one, in a few words."""
    if not recorded:
        return "no record of how it was built"
    fields = _changed(recorded, {k: expected.get(k) for k in recorded})
    settings = [f.split(".", 1)[1] for f in fields if f.startswith(("settings.", "spec."))]
    parts = []
    if settings:
        parts.append("settings changed: " + ", ".join(sorted(set(settings))))
    if "code" in fields:
        parts.append(f"{expected.get('step', 'its')} code changed")
    if any(f.startswith("human") for f in fields):
        parts.append("its human source's settings changed")
    if "version" in fields:
        parts.append("built by an older version of the workflow")
    if not parts and fields:
        parts.append("what it reads from changed (" + ", ".join(fields[:3]) + ")")
    return "; ".join(parts) or "an earlier step it reads from was rebuilt with other settings"


class Planner:
    """Statuses of every step of ``params`` under ``root`` (memoised; create a new
    planner to see files written since).

    ``forced(step, name, generation)`` marks steps the user asked to rerun
    (Snakemake's ``--forcerun``): they and everything downstream are stale.
    """

    def __init__(
        self,
        params: Params,
        root: str | Path = ".",
        keys: Keys | None = None,
        forced: Callable[[str, str | None, int | None], bool] | None = None,
    ) -> None:
        self.params = params
        self.root = Path(root)
        self.keys = keys or Keys(params)
        self.forced = forced or (lambda step, name, generation: False)
        self._cache: dict[tuple, Status] = {}
        self._generations: dict[str, list[Status]] = {}
        self._human_md5s: dict[str, dict[str, str]] = {}
        self._records: dict[tuple[str, int], dict[str, Any] | None] = {}
        # Paths as strings: thousands of generations make pathlib's objects the cost.
        self._root = os.fspath(self.root)

    # ------------------------------------------------------------ reading
    def record(self, chain: str, generation: int) -> dict[str, Any] | None:
        """A generation's ledger record (``chain``: a run id or a root's name); each is
        read once (a generation's is also read by the next and by its children)."""
        key = (chain, generation)
        if key not in self._records:
            path = os.path.join(self._root, LEDGER_DIR, chain, f"gen_{gen_tag(generation)}.json")
            try:
                self._records[key] = read_record(path)
            except LedgerError:
                self._records[key] = None
        return self._records[key]

    def _stamp(self, step: str, name: str | None) -> dict[str, Any] | None:
        return read_stamp(stamp_path(step, name, self.root))

    # ------------------------------------------------------------ human data
    def human(self, source: str) -> Status:
        key = ("human", source)
        if key not in self._cache:
            self._cache[key] = self._human(source)
        return self._cache[key]

    def _human(self, source: str) -> Status:
        stamp = self._stamp("human", source)
        if stamp is None:
            present = human_dir(source, self.root).exists()
            return Status(MISSING, f"data/human/{source} is missing or unstamped", present)
        missing = [
            n for n in stamp.get("files", {}) if not (human_dir(source, self.root) / n).exists()
        ]
        if missing:
            return Status(MISSING, f"missing {', '.join(sorted(missing))}", True)
        if self.forced("human", source, None):
            return Status(STALE, "forced")
        expected = self.keys.human_material(source)
        if stamp["key"] != self.keys.human(source):
            return Status(STALE, explain(stamp.get("material"), expected))
        return _FRESH

    def human_md5s(self, source: str) -> dict[str, str]:
        """The human source's files and md5s, as its stamp records them."""
        if source not in self._human_md5s:
            stamp = self._stamp("human", source) or {}
            self._human_md5s[source] = dict(stamp.get("files") or {})
        return self._human_md5s[source]

    # ------------------------------------------------------------ generations
    def generation(self, run: str, generation: int) -> Status:
        """Generation ``generation``'s status, upstream included (computed in order).
        Generation 0 is the run's root's (``RunSettings.root``): its status is the
        root's, shared by every run that starts from it."""
        statuses = self._generations.setdefault(run, [])
        settings = self.params.run(run)
        if not statuses:
            statuses.append(self.root_status(settings.root))
        while len(statuses) <= generation:
            g = len(statuses)
            missing = self._missing_outputs(run, g)
            if missing:  # a rebuild for several reasons is reported as the missing files
                partial = len(missing) < len(GEN_FILES)
                status = Status(MISSING, f"missing {', '.join(missing)}", partial)
            else:
                if not self.human(settings.human).fresh:
                    status = Status(STALE, f"its human data {settings.human} will be rebuilt")
                elif not statuses[g - 1].fresh:
                    # Generation 1 says why it differs, if it does (its root is listed
                    # apart, as a generation 0 that runs share); later ones that their
                    # predecessor will be rebuilt.
                    own = self._as_recorded(run, g) if g == 1 else _FRESH
                    what = "its root (generation 0)" if g == 1 else f"generation {g - 1}"
                    status = own if not own.fresh else Status(STALE, f"{what} will be rebuilt")
                else:
                    status = self._as_recorded(run, g)
                if self.forced("generation", run, g):
                    status = Status(STALE, "forced")
            statuses.append(status)
        return statuses[generation]

    def root_status(self, root: str) -> Status:
        """The status of a root: generation 0 of every run that starts from it."""
        key = ("root", root)
        if key not in self._cache:
            source = self.params.root_settings(root).human
            status = self.root_local(root)
            if status.state != MISSING:
                if not self.human(source).fresh:
                    status = Status(STALE, f"its human data {source} will be rebuilt")
                if self.forced("generation", root, 0):
                    status = Status(STALE, "forced")
            self._cache[key] = status
        return self._cache[key]

    def root_local(self, root: str) -> Status:
        """:meth:`generation_local` for a root."""
        missing = self._missing_outputs(root, 0)
        if missing:
            partial = len(missing) < len(GEN_FILES)
            return Status(MISSING, f"missing {', '.join(missing)}", partial)
        return self._check_recorded(
            root, 0, self.keys.root(root), lambda: self.keys.root_material(root), None
        )

    def _missing_outputs(self, chain: str, generation: int) -> list[str]:
        try:  # one directory listing, not a stat per file (thousands of generations)
            present = set(os.listdir(gen_path(chain, generation, "", self._root)))
        except OSError:
            present = set()
        return [n for n in GEN_FILES if n not in present]

    def generation_local(self, run: str, generation: int) -> Status:
        """Whether the generation's files are what its key and its inputs *now* say
        they should be, regardless of whether its upstream is up to date (``dvc repro``
        reuses generations in order with this check, after rebuilding their parents)."""
        if generation == 0:
            return self.root_local(self.params.run(run).root)
        missing = self._missing_outputs(run, generation)
        if missing:
            partial = len(missing) < len(GEN_FILES)
            return Status(MISSING, f"missing {', '.join(missing)}", partial)
        return self._as_recorded(run, generation)

    def _as_recorded(self, run: str, generation: int) -> Status:
        """generation_local for a generation (g >= 1) whose files are all present."""
        previous = self.params.run(run).chain(run, generation - 1)
        return self._check_recorded(
            run,
            generation,
            self.keys.generation(run, generation),
            lambda: self.keys.generation_material(run, generation),
            previous,
        )

    def _check_recorded(
        self,
        chain: str,
        generation: int,
        expected: str,
        material: Callable[[], dict[str, Any]],
        previous: str | None,
    ) -> Status:
        """A generation's record and model.json against the key expected now, then the
        content it read against what it is now (``previous``: the chain of generation
        g - 1, None for a root)."""
        record = self.record(chain, generation)
        if record is None:
            return Status(STALE, "no ledger record")
        if record.get("key") != expected:
            return Status(STALE, explain(_recorded_generation_material(record), material()))
        try:
            model_json = io.read_json(gen_path(chain, generation, "model.json", self._root))
            model_key = model_json["extra"]["key"]
        except (io.ArtifactError, KeyError, TypeError):
            model_key = None
        if model_key != expected:
            return Status(STALE, "its model.json is from another build than its ledger record")
        return self._content_links(generation, record, previous)

    def _content_links(
        self, generation: int, record: dict[str, Any], previous: str | None
    ) -> Status:
        """The md5s and content hashes it read from, against what they are now."""
        human = self.human_md5s(record["human_data"]["source"])
        for name, entry in record["human_data"]["files"].items():
            if human.get(name) != entry["md5"]:
                return Status(STALE, f"its human data's {name} has other content now")
        if previous is not None:
            prev = self.record(previous, generation - 1)
            if prev is None or prev.get("content_hash") != record.get("prev_content_hash"):
                return Status(STALE, f"generation {generation - 1} has other content now")
        for parent in record["parents"]:
            current = self.record(parent["run"], parent["generation"])
            if current is None or current.get("content_hash") != parent["content_hash"]:
                return Status(STALE, f"generation {parent['generation']} has other content now")
        return _FRESH

    # ------------------------------------------------------------ stamped steps
    def step(self, step: str, name: str | None = None) -> Status:
        """``metrics``/``ensemble``/``figures`` of run ``name``, or ``report``."""
        key = (step, name)
        if key not in self._cache:
            self._cache[key] = self._stamped(step, name)
        return self._cache[key]

    def _outputs(self, step: str, name: str | None) -> list[Path]:
        if step == "report":
            return [self.root / REPORT_DIR]
        assert name is not None  # every step but the report is of a run
        if step in RESULT_FILES:
            files = [results_dir(name, self.root) / f for f in RESULT_FILES[step]]
            # The metrics step also anchors the run's ledger (git-tracked, not a
            # Snakemake output, so that a failing job never deletes it).
            return files + [head_path(name, self.root)] if step == "metrics" else files
        return [results_dir(name, self.root) / "figures"]

    def _upstream(self, step: str, name: str | None) -> Status:
        """The first upstream step that is not fresh, as this step's reason to rerun."""
        if step == "report":
            for run in self.params.runs:
                for up in ("metrics", "ensemble", "figures"):
                    if not self.step(up, run).fresh:
                        return Status(STALE, f"{up} of run {run} will be rebuilt")
            return _FRESH
        assert name is not None  # every step but the report is of a run
        settings = self.params.run(name)
        if step == "metrics":
            last = settings.generations - 1
            if not self.generation(name, last).fresh:
                return Status(STALE, f"generations of run {name} will be rebuilt")
            return _FRESH
        if not self.human(settings.human).fresh:
            return Status(STALE, f"its human data {settings.human} will be rebuilt")
        if step == "figures":
            for up in ("metrics", "ensemble"):
                if not self.step(up, name).fresh:
                    return Status(STALE, f"{up} of run {name} will be rebuilt")
        return _FRESH

    def _stamped(self, step: str, name: str | None) -> Status:
        stamp = self._stamp(step, name)
        outputs = self._outputs(step, name)
        missing = [p for p in outputs if not p.exists()]
        if missing or stamp is None:
            what = [p.relative_to(self.root).as_posix() for p in missing] or ["its stamp"]
            partial = stamp is not None or len(missing) < len(outputs)
            return Status(MISSING, f"missing {', '.join(what)}", partial)
        upstream = self._upstream(step, name)
        if not upstream.fresh:
            return upstream
        if self.forced(step, name, None):
            return Status(STALE, "forced")
        expected = self.keys.material(step, name)
        if stamp["key"] != self.keys.key(step, name):
            return Status(STALE, explain(stamp.get("material"), expected))
        if step == "metrics":
            assert name is not None
            settings = self.params.run(name)
            last = settings.generations - 1
            record = self.record(settings.chain(name, last), last)
            if record is None or record.get("content_hash") != stamp.get("last_content_hash"):
                return Status(STALE, f"generation {last} has other content now")
        return _FRESH

    # ------------------------------------------------------------ overview
    def run_generations(self, run: str) -> list[Status]:
        last = self.params.run(run).generations - 1
        self.generation(run, last)
        return self._generations[run][: last + 1]

    def out_of_date(self) -> list[tuple[str, Status]]:
        """(label, status) of every step that is not fresh, in workflow order."""
        out: list[tuple[str, Status]] = []
        for source in self.params.human:
            if not self.human(source).fresh:
                out.append((f"human data {source}", self.human(source)))
        for root, runs in self.params.roots().items():
            if not self.root_status(root).fresh:
                label = f"generation 0 ({root}, of run{'s' if len(runs) > 1 else ''} "
                out.append((label + ", ".join(runs) + ")", self.root_status(root)))
        for run in self.params.runs:
            out += _merged_generations(run, self.run_generations(run))
            for step in ("metrics", "ensemble", "figures"):
                if not self.step(step, run).fresh:
                    out.append((f"run {run}: {step}", self.step(step, run)))
        if not self.step("report").fresh:
            out.append(("report", self.step("report")))
        return out


def _recorded_generation_material(record: dict[str, Any]) -> dict[str, Any]:
    """What a ledger record says of the material its key was built from."""
    return {
        "step": "generation",
        "settings": record.get("settings"),
        "code": record.get("code_fingerprint"),
    }


def _merged_generations(run: str, statuses: list[Status]) -> list[tuple[str, Status]]:
    """The first generation that is not fresh stands for it and every later one (a
    rebuilt generation makes each later one stale). Generation 0 is listed as its root."""
    for g, status in enumerate(statuses):
        if g > 0 and not status.fresh:
            last = len(statuses) - 1
            label = f"generation {g}" if g == last else f"generations {g}-{last}"
            return [(f"run {run}: {label}", status)]
    return []


def describe(out_of_date: list[tuple[str, Status]]) -> str:
    """One line per out-of-date step (or group of generations) and why."""
    return "\n".join(
        f"  {label}: {status.state} ({status.reason})" for label, status in out_of_date
    )

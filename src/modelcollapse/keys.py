"""Step keys: everything a step's output depends on, as one sha256.

A step's key is the hash of its *material*: the settings it reads, the code it runs
(:mod:`modelcollapse.fingerprint`) and the keys of the steps it reads from. Keys are
computed from params.yaml and the code alone, before anything runs, identically by the
Snakefile, by every ``dvc repro`` stage and by the job itself, which records the key
beside its outputs (a *stamp*). An output is up to date when its recorded key is the
key computed now (docs/architecture.md, "What reruns when").

Generation keys form a chain: generation g's material holds generation g-1's key, so a
change anywhere upstream reaches every later generation. Generation 0 is the run's
root's (``RunSettings.root``): its material holds neither the run's id nor the settings
generation 0 does not read, so runs that share it share its key. Settings a generation does not
read (``generations``, ``chains``, ``plot_generations``) are not in its material, so
extending a run reuses what exists.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import TYPE_CHECKING, Any

from modelcollapse.canonical import canonical, digest
from modelcollapse.fingerprint import step_fingerprint

if TYPE_CHECKING:
    from modelcollapse.config import Params
    from modelcollapse.settings import RunSettings

__all__ = ["KEY_VERSION", "Keys", "canonical", "digest"]

# Raise to rebuild everything once when the meaning of a key changes.
KEY_VERSION = 1


# ------------------------------------------------------------------ materials


class Keys:
    """Every step's key and material for one validated params.yaml (memoised)."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._generation: dict[str, list[str]] = {}
        self._generation_texts: dict[str, tuple[str, tuple[str, str]]] = {}
        self._roots: dict[str, str] = {}

    # -- human data
    def human_material(self, source: str) -> dict[str, Any]:
        spec = self.params.human[source]
        return {
            "step": "human",
            "version": KEY_VERSION,
            "source": source,
            "spec": spec,
            "code": step_fingerprint("human", spec["family"]),
        }

    def human(self, source: str) -> str:
        return digest(self.human_material(source))

    # -- generations
    def _generation_common(self, settings: RunSettings) -> dict[str, Any]:
        """The fields a root's material and a run generation's share."""
        return {
            "step": "generation",
            "version": KEY_VERSION,
            "human": self.params.human[settings.human],
            "code": step_fingerprint("generation", settings.family),
        }

    def generation_material_base(self, run: str) -> dict[str, Any]:
        """What every generation >= 1 of ``run`` shares in its material."""
        settings = self.params.run(run)
        return {
            **self._generation_common(settings),
            "run": run,
            "settings": settings.generation_dict(),
        }

    def root_material(self, root: str) -> dict[str, Any]:
        """A root's material: generation 0 of every run that starts from it."""
        settings = self.params.root_settings(root)
        return {
            **self._generation_common(settings),
            "root": root,
            "settings": settings.root_dict(),
            "generation": 0,
            "parent": None,
        }

    def root(self, root: str) -> str:
        if root not in self._roots:
            self._roots[root] = digest(self.root_material(root))
        return self._roots[root]

    def generation_material(self, run: str, generation: int) -> dict[str, Any]:
        if generation == 0:
            return self.root_material(self.params.run(run).root)
        return {
            **self.generation_material_base(run),
            "generation": generation,
            "parent": self.generation(run, generation - 1),
        }

    def generation(self, run: str, generation: int) -> str:
        """Generation ``generation``'s key (the chain is extended iteratively):
        ``digest(generation_material(run, generation))``, with the canonical JSON of
        the parts every generation of the run shares serialised once (a
        2000-generation run's keys are computed at every Snakefile parse)."""
        chain = self._generation.setdefault(run, [])
        if not chain:
            chain.append(self.root(self.params.run(run).root))
        if len(chain) <= generation:
            if run not in self._generation_texts:
                self._generation_texts[run] = self._generation_text(run)
            head, tail = self._generation_texts[run]
            while len(chain) <= generation:
                g = len(chain)
                parent = json.dumps(chain[g - 1])
                text = f"{head}{g}{tail[0]}{parent}{tail[1]}"
                chain.append(hashlib.sha256(text.encode("utf-8")).hexdigest())
        return chain[generation]

    def _generation_text(self, run: str) -> tuple[str, tuple[str, str]]:
        """The canonical JSON of generation_material around its two varying values
        (``generation`` and ``parent``; keys sorted: code, generation, human, parent,
        run, settings, step, version)."""
        material = self.generation_material_base(run)

        head = '{"code":' + canonical(material["code"]) + ',"generation":'
        middle = ',"human":' + canonical(material["human"]) + ',"parent":'
        end = (
            ',"run":' + canonical(run) + ',"settings":' + canonical(material["settings"])
            + ',"step":"generation","version":' + canonical(KEY_VERSION) + "}"
        )  # fmt: skip
        return head, (middle, end)

    # -- per-run results
    def metrics_material(self, run: str) -> dict[str, Any]:
        last = self.params.run(run).generations - 1
        return {
            "step": "metrics",
            "version": KEY_VERSION,
            "run": run,
            "generations": last + 1,
            "last": self.generation(run, last),
            "code": step_fingerprint("metrics"),
        }

    def ensemble_material(self, run: str) -> dict[str, Any]:
        settings = self.params.run(run)
        return {
            "step": "ensemble",
            "version": KEY_VERSION,
            "run": run,
            "settings": {k: v for k, v in settings.to_dict().items() if k != "plot_generations"},
            "human": self.params.human[settings.human],
            "code": step_fingerprint("ensemble", settings.family),
        }

    def figures_material(self, run: str) -> dict[str, Any]:
        settings = self.params.run(run)
        return {
            "step": "figures",
            "version": KEY_VERSION,
            "run": run,
            "settings": settings.to_dict(),
            "human": self.params.human[settings.human],
            "metrics": self.key("metrics", run),
            "ensemble": self.key("ensemble", run),
            "code": step_fingerprint("figures", settings.family),
        }

    def report_material(self, run: str | None = None) -> dict[str, Any]:
        # Replicate groups (runs.<id>.replicate_of) only where there are some, so a
        # study without them keeps the key it had before they existed.
        replicates = self.params.report.get("replicates")
        return ({"replicates": replicates} if replicates else {}) | {
            "step": "report",
            "version": KEY_VERSION,
            "runs": {
                r: {
                    "settings": settings.to_dict(),
                    "metrics": self.key("metrics", r),
                    "ensemble": self.key("ensemble", r),
                    # index.html links every figure of the run
                    "figures": self.key("figures", r),
                }
                for r, settings in self.params.runs.items()
            },
            "compare": self.params.report.get("compare", {}),
            "code": step_fingerprint("report", self.families()),
        }

    def families(self) -> tuple[str, ...]:
        """The families the study's runs use (the report reads all of them)."""
        return tuple(sorted({s.family for s in self.params.runs.values()}))

    @cached_property
    def _materials(self) -> dict[str, Any]:
        return {
            "human": self.human_material,
            "metrics": self.metrics_material,
            "ensemble": self.ensemble_material,
            "figures": self.figures_material,
            "report": self.report_material,
        }

    def material(self, step: str, name: str | None = None) -> dict[str, Any]:
        """The material of a stamped step (``human``, ``metrics``, ``ensemble``,
        ``figures`` of a run or source ``name``; ``report``)."""
        return self._materials[step](name)

    def key(self, step: str, name: str | None = None) -> str:
        return digest(self.material(step, name))

    def stamp(self, step: str, name: str | None = None) -> dict[str, Any]:
        """``{"key", "material"}`` for a step to record with its outputs."""
        material = self.material(step, name)
        return {"key": digest(material), "material": material}

"""The ``metrics`` step: results/<run>/metrics.csv (one row per generation),
summary.json (the last generation's metrics, a DVC metric) and the run's ledger head
lineage/<run>/head.json (``modelcollapse.lineage.ledger.write_head``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from modelcollapse import io
from modelcollapse.lineage.ledger import load_record, write_head
from modelcollapse.paths import gen_file, results_dir
from modelcollapse.stamps import stamp_path, write_stamp

if TYPE_CHECKING:
    from modelcollapse.settings import RunSettings


def collect_metrics(
    run: str,
    settings: RunSettings,
    root: str | Path = ".",
    stamp: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Write metrics.csv, summary.json and the run's ledger head (head.json), then
    the step's stamp (which records the content hash of the last generation's ledger
    record, what the table was read from); return the table. Generation 0 is the run's
    root's."""
    generations = settings.generations
    rows = [
        io.read_json(gen_file(settings.chain(run, g), g, "metrics.json", root))
        for g in range(generations)
    ]
    frame = pd.DataFrame(rows)
    frame = frame[["generation"] + sorted(c for c in frame.columns if c != "generation")]
    out = results_dir(run, root)
    io.write_text(out / "metrics.csv", frame.to_csv(index=False, float_format="%.10g"))
    io.write_json(out / "summary.json", {"run": run, **rows[-1]})
    write_head(run, generations, settings.root, root)
    if stamp is not None:
        last = load_record(settings.chain(run, generations - 1), generations - 1, root)
        last = last["content_hash"]
        write_stamp(stamp_path("metrics", run, root), **stamp, last_content_hash=last)
    return frame

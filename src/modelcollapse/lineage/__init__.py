"""Auditable lineage: a hash-chained, git-tracked ledger of every generation.

``record_generation`` writes ``lineage/<run>/gen_NNNN.json`` after a generation's
artifacts exist; ``verify`` checks the ledger against the files, itself and
``dvc.lock``; ``show``, ``export`` and ``diff`` make it readable in a review, and
``lineage_summary_text`` is ``reports/lineage.md``. See docs/lineage.md.

Names are imported lazily, so a generation job that only records pays for the
ledger modules alone (not for ``prov``, ``yaml`` or the verifier).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LedgerError": "records",
    "build_record": "ledger",
    "code_version": "environment",
    "compute_content_hash": "records",
    "compute_record_hash": "records",
    "ledger_records": "records",
    "ledger_runs": "records",
    "load_record": "records",
    "read_record": "records",
    "record_generation": "ledger",
    "record_path": "records",
    "diff": "history",
    "diff_text": "history",
    "export": "graph",
    "show": "chain",
    "lineage_summary_text": "summary",
    "Problem": "audit",
    "VerifyResult": "audit",
    "verify": "audit",
}
__all__ = [
    "LedgerError",
    "Problem",
    "VerifyResult",
    "build_record",
    "code_version",
    "compute_content_hash",
    "compute_record_hash",
    "diff",
    "diff_text",
    "export",
    "ledger_records",
    "ledger_runs",
    "lineage_summary_text",
    "load_record",
    "read_record",
    "record_generation",
    "record_path",
    "show",
    "verify",
]

if TYPE_CHECKING:
    from modelcollapse.lineage.audit import Problem, VerifyResult, verify
    from modelcollapse.lineage.chain import show
    from modelcollapse.lineage.environment import code_version
    from modelcollapse.lineage.graph import export
    from modelcollapse.lineage.history import diff, diff_text
    from modelcollapse.lineage.ledger import build_record, record_generation
    from modelcollapse.lineage.records import (
        LedgerError,
        compute_content_hash,
        compute_record_hash,
        ledger_records,
        ledger_runs,
        load_record,
        read_record,
        record_path,
    )
    from modelcollapse.lineage.summary import lineage_summary_text


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value

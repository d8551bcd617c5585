"""Canonical JSON and its sha256: how step keys (:mod:`modelcollapse.keys`) and root
names (:func:`modelcollapse.settings.root_name`) hash settings. The ledger defines its
own canonical form beside its schema (:mod:`modelcollapse.lineage.records`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical(value: Any) -> str:
    """The canonical JSON of ``value``: sorted keys, no whitespace, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(material: Any) -> str:
    """sha256 of the canonical JSON of ``material``."""
    return hashlib.sha256(canonical(material).encode("utf-8")).hexdigest()

"""One stage of dvc.yaml: ``python scripts/stage.py NAME [ID]`` (what `dvc repro` runs).

The same as ``python -m modelcollapse stage NAME [ID]``, with this checkout's code.
"""

import sys

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)

from modelcollapse.__main__ import main

sys.exit(main(["stage", *sys.argv[1:]]))

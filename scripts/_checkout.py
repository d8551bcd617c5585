"""Every entry point runs the code of its own checkout: src/ goes first on sys.path.

With one environment shared by several clones, the installed ``modelcollapse`` may be
another clone's; the workflow, its keys and its ledger must describe this one's code.
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
if SRC not in sys.path[:1]:
    sys.path.insert(0, SRC)

"""Every Snakemake job: ``python scripts/job.py STEP [ID [GENERATION]] --study FILE --log FILE``.

The rules (rules/*.smk) call it as a shell command with this checkout's code
(:func:`modelcollapse.jobs.main`); ``dvc repro`` runs scripts/stage.py instead.
"""

import sys

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)

from modelcollapse.jobs import main

sys.exit(main(sys.argv[1:]))

"""Regenerate the committed GX project in gx/ from order_tracking.checks.gx_project.build.

Run after changing an expectation's parameters or a checkpoint's actions; commit the result.
Only the committed part is rewritten: gx/uncommitted/ (validation results, Data Docs) is kept.
Every id is derived from a name, so running it again on unchanged code changes no byte
(tests/test_gx_build.py fails when the committed gx/ differs from a fresh build).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from order_tracking.checks import gx_project  # noqa: E402

gx_project.build(ROOT)
print(f"GX project written to {ROOT / 'gx'}")

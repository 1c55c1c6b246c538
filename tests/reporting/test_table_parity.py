"""Table outputs stay byte-identical: every file the table families write for the fixture
results (LaTeX, Markdown, CSV, JSON) against the digests recorded before the reporting split
(``table_digests.json``; the results directory is written as ``<ROOT>``).

Regenerate the digests only for an intended output change: write the family outputs of
``report_fixtures`` with ``aees report`` and hash each file under ``tables/`` the same way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from aees.reporting.families import FAMILIES

DIGESTS = Path(__file__).with_name("table_digests.json")


def test_table_outputs_match_the_recorded_digests(
    results_root: Path, runset, tmp_path: Path
) -> None:
    for name, family in FAMILIES.items():
        output = family.builder(runset)
        if output.supported:
            output.write(tmp_path / name)
    got = {}
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            text = path.read_text().replace(str(results_root), "<ROOT>")
            got[str(path.relative_to(tmp_path))] = hashlib.sha256(text.encode()).hexdigest()[:16]
    want = json.loads(DIGESTS.read_text())
    assert sorted(got) == sorted(want)
    assert {k: v for k, v in got.items() if want[k] != v} == {}

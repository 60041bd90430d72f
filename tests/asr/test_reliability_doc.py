"""docs/reliability.md is the bad-input matrix as tables, rendered from the tests' own case lists: this test fails
when the two differ (regenerate with ``.venv/bin/python -m tests.asr.test_reliability_doc --write``) and when a
row names a test that does not exist."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.asr._bad_inputs import FAULT_CASES, render_table

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "reliability.md"

HEADER = """# Reliability: what each bad input does

Every row is a test that runs in `make test` (issue 15's hardening matrix). Commands are run in-process with a
tiny hand-set model; each case asserts the exit status, that the message names the problem (and the file), and
that nothing else was lost: the other files transcribed, the reports written, the stream going on to the same
words, a resumed run ending bit for bit as if never stopped. The `issue` column names the defect of issue 15 a row
guards (15.N), empty where the behaviour was already right. This file is generated from the tests' case lists
(`.venv/bin/python -m tests.asr.test_reliability_doc --write`); `tests/asr/test_reliability_doc.py` fails when it
is out of date.
"""


def render() -> str:
    from tests.asr.streaming.test_stream_matrix import CASES as STREAM_CASES
    from tests.asr.test_cli_matrix import CASES as CLI_CASES

    sections = [
        ("The command line", CLI_CASES, "tests/asr/test_cli_matrix.py::test_cli_case"),
        ("The streaming API", STREAM_CASES, "tests/asr/streaming/test_stream_matrix.py"),
        ("Training faults, live capture, long and resampled audio", FAULT_CASES, ""),
    ]
    parts = [HEADER]
    for title, cases, proof in sections:
        parts.append(f"## {title}\n\n{render_table(cases, proof)}\n")
    return "\n".join(parts)


def test_the_doc_is_the_matrix():
    assert DOC.read_text() == render(), "out of date: python -m tests.asr.test_reliability_doc --write"


def test_every_named_test_exists():
    rows = [line for line in render().splitlines() if line.startswith("| ") and not line.startswith("| where")]
    assert rows and all("`tests/" in row for row in rows)  # every row names its test
    proofs = re.findall(r"`(tests/[^`:]+)::(\w+)", render())
    assert len(proofs) == len(rows)
    for path, function in proofs:
        source = (REPO / path).read_text()
        assert f"def {function}(" in source, f"{path}::{function} does not exist"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.asr.test_reliability_doc --write")
    DOC.write_text(render())
    print(f"wrote {DOC}")

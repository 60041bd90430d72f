"""tools/demo.sh (`make demo`) names bundled clips: each must exist and be listed in a bundled manifest, with the
reference the demo prints beside it (re-made clips once broke the demo while every other test passed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AUDIO = REPO / "asr" / "assets" / "audio"


def _demo_clips() -> list[str]:
    text = (REPO / "tools" / "demo.sh").read_text()
    loop = re.search(r"^for f in (.*?); do$", text, flags=re.S | re.M)
    assert loop, "tools/demo.sh has no 'for f in ...; do' loop over clips"
    return loop.group(1).replace("\\\n", " ").split()


def test_every_clip_the_demo_plays_is_bundled_and_has_a_reference():
    clips = _demo_clips()
    assert len(clips) >= 4 and any(c.startswith("synth/") for c in clips) and any(c.startswith("real/") for c in clips)
    listed = {}
    for manifest in AUDIO.glob("*.jsonl"):
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            listed[entry["audio"]] = entry["text"]
    for clip in clips:
        assert (AUDIO / f"{clip}.flac").is_file(), f"tools/demo.sh plays {clip}.flac, which is not in {AUDIO}"
        assert listed.get(f"{clip}.flac"), f"tools/demo.sh plays {clip}.flac, which no bundled manifest lists"

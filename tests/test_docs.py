"""The documentation pages with Python in them run as written, top to bottom, in a fresh process."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
#: page -> wall-clock budget on the 2-core CI machine (import and compilation included)
PAGES = {"beyond.md": 240}


def blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_runs(page, tmp_path):
    code = "\n\n".join(blocks((DOCS / page).read_text()))
    assert code.strip(), f"{page} has no python blocks"
    script = tmp_path / "page.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=PAGES[page],
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "finite difference" in out.stdout  # the gradient check printed (and asserted) its numbers

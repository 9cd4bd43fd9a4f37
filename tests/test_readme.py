"""The README's Layout section is the tree: every module of both packages is listed, and nothing that is not."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout_paths() -> set[str]:
    """Paths named by the fenced block of the Layout section, from its indentation (two spaces a level)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    paths: set[str] = set()
    parents: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match or not re.match(r"^[\w.]+/?$", match.group(2)):
            continue
        depth = len(match.group(1)) // 2
        parents = parents[:depth]
        name = match.group(2)
        path = "".join(parents) + name
        paths.add(path.rstrip("/"))
        if name.endswith("/"):
            parents.append(name)
    return paths


def test_layout_lists_every_module_and_only_real_ones() -> None:
    listed = layout_paths()
    modules = {
        str(p.relative_to(ROOT))
        for package in ("gamerec_assets", "gamerec_api")
        for p in (ROOT / package).rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    }
    assert modules - listed == set(), "modules missing from the README's Layout section"
    stale = {p for p in listed if not (ROOT / p).exists()}
    assert stale == set(), "the Layout section names paths that do not exist"

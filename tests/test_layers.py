"""The layering the README describes, checked on the source: a module imports only from
layers below it (or its own package), and only the I/O modules import what talks to the
network, runs gpg or starts processes."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "composer"

LAYER = {
    "composer.errors": 0, "composer.model": 0, "composer.atomic": 0, "composer.tomllines": 0,
    "composer.profile": 1, "composer.debian": 1,
    "composer.archive": 2, "composer.resolve": 2, "composer.lockfile": 2, "composer.image": 2,
    "composer.audit": 2, "composer.elf": 1, "composer.cpython": 2,
    "composer.pipeline": 3,
    "composer.cli": 4, "composer.__main__": 5,
}
IO_MODULES = {"httpx", "httpcore", "gnupg", "subprocess", "socket", "ssl", "urllib.request",
              "http.client"}
IO_ALLOWED = ("composer.archive", "composer.pipeline.sandbox")


def _layer(module: str) -> tuple[str, int] | None:
    for prefix, layer in sorted(LAYER.items(), key=lambda kv: -len(kv[0])):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, layer
    return None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names if node.module == "composer"]
    return out


def test_modules_import_only_lower_layers() -> None:
    problems = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        if module == "composer":
            continue
        mine = _layer(module)
        assert mine, f"{module} has no layer in tests/test_layers.py"
        for imp in _imports(path):
            if imp.startswith("composer") and imp != "composer":
                theirs = _layer(imp)
                if theirs is None or imp in ("composer.__version__",):
                    continue
                same_package = theirs[0] == mine[0]
                if not same_package and theirs[1] >= mine[1]:
                    problems.append(f"{module} (layer {mine[1]}) imports {imp} (layer {theirs[1]})")
            if imp in IO_MODULES and not module.startswith(IO_ALLOWED):
                problems.append(f"{module} does I/O through {imp}; only composer.archive and composer.pipeline.sandbox may")
    assert not problems, "\n".join(problems)

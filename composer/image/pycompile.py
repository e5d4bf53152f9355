"""Byte-compiling an image's Python with the image's own interpreter, as Debian's
py3compile would have at install time, but deterministically: unchecked-hash .pyc files
(no source mtime inside), a fixed hash seed, and the same files in the same order.

This module is pure: it says what to compile, gives the driver the interpreter runs,
and turns the driver's output into tree entries. Running it is the pipeline's business.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Mapping

from composer.errors import ComposeError
from composer.image.tree import DIR, FILE, Entry
from composer.model import follow

DRIVER = r"""
import py_compile, sys, os, tempfile
out = sys.stdout.buffer
tag = sys.implementation.cache_tag
work = tempfile.mkdtemp(prefix="compose-pyc-")
cfile = os.path.join(work, "out.pyc")
for line in sys.stdin.read().splitlines():
    try:
        py_compile.compile(line, cfile=cfile, doraise=True, optimize=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        out.write(b"!" + line.encode() + b"\0")
        continue
    with open(cfile, "rb") as f:
        data = f.read()
    os.unlink(cfile)
    out.write(line.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
os.rmdir(work)
out.write(b"=" + tag.encode() + b"\0")
"""


FLAGS = ("-s", "-S", "-B")
"""No user site, no site, no byte-code of the driver's own imports. Not -I: it would
ignore the fixed PYTHONHASHSEED the sandbox sets (its environment is otherwise empty)."""


def argv(python_version: str) -> list[str]:
    return [interpreter(python_version), *FLAGS, "-c", DRIVER]


def interpreter(python_version: str) -> str:
    return f"/usr/bin/python{python_version}"


def sources(tree: Mapping[str, Entry], python_version: str) -> list[str]:
    """Every ``.py`` of the standard library and of dist-packages, as absolute paths in
    sorted order: files, and symlinks to files (Debian's ``sitecustomize.py`` leads to
    ``/etc/pythonX.Y``; Python caches what it imports through a link beside the link)."""
    roots = (f"usr/lib/python{python_version}/", "usr/lib/python3/dist-packages/")
    return ["/" + p for p, e in sorted(tree.items())
            if p.endswith(".py") and p.startswith(roots) and _source(tree, p) is not None]


def _source(tree: Mapping[str, Entry], path: str) -> Entry | None:
    """The file a source path leads to, through symlinks inside the tree."""
    found = follow(tree, path)
    e = tree[found] if found is not None else None
    return e if e is not None and e.kind == FILE else None


def split(paths: list[str], parts: int) -> list[list[str]]:
    """Round-robin shares of the work; the output does not depend on how it is shared."""
    return [s for s in (paths[i::parts] for i in range(max(1, parts))) if s]


def key(identity: Iterable[str], tree: Mapping[str, Entry], paths: Iterable[str]) -> str:
    """What the output depends on: the interpreter (named by ``identity``, such as the
    sha256 of every package in the image) and each source's path and content."""
    h = hashlib.sha256()
    for part in (*FLAGS, DRIVER, *identity):
        h.update(part.encode() + b"\0")
    for p in paths:
        source = _source(tree, p.lstrip("/"))
        assert source is not None, p
        h.update(p.encode() + b"\0" + hashlib.sha256(source.data).digest())
    return h.hexdigest()


def parse(output: bytes) -> tuple[dict[str, bytes], list[str], str]:
    """The driver's output: (pyc bytes by source path, sources that do not compile,
    the interpreter's cache tag)."""
    pycs: dict[str, bytes] = {}
    failed: list[str] = []
    pos = 0
    tag = ""
    try:
        while pos < len(output):
            if output[pos:pos + 1] == b"=":
                end = output.index(b"\0", pos)
                tag = output[pos + 1:end].decode()
                pos = end + 1
            elif output[pos:pos + 1] == b"!":
                end = output.index(b"\0", pos)
                failed.append(output[pos + 1:end].decode())
                pos = end + 1
            else:
                end = output.index(b"\0", pos)
                path = output[pos:end].decode()
                end2 = output.index(b"\0", end + 1)
                size = int(output[end + 1:end2])
                pycs[path] = output[end2 + 1:end2 + 1 + size]
                if len(pycs[path]) != size:
                    raise ValueError("truncated")
                pos = end2 + 1 + size
    except ValueError as exc:
        raise ComposeError(f"the image's interpreter gave unreadable output ({exc})") from exc
    if not tag:
        raise ComposeError("the image's interpreter stopped before compiling everything")
    return pycs, failed, tag


def pack(pycs: Mapping[str, bytes], failed: Iterable[str], tag: str) -> bytes:
    """The compiled set as one cacheable blob, in the driver's own framing."""
    out = [p.encode() + b"\0" + str(len(d)).encode() + b"\0" + d for p, d in sorted(pycs.items())]
    out += [b"!" + p.encode() + b"\0" for p in sorted(failed)]
    return b"".join(out) + b"=" + tag.encode() + b"\0"


def entries(tree: Mapping[str, Entry], pycs: Mapping[str, bytes], tag: str,
            mtime: int) -> list[Entry]:
    """``__pycache__/NAME.TAG.pyc`` beside each source, owned like the source."""
    out: dict[str, Entry] = {}
    for src, data in sorted(pycs.items()):
        rel = src.lstrip("/")
        folder, name = posixpath.split(rel)
        cache_dir = f"{folder}/__pycache__"
        owner = tree[rel].package
        if cache_dir not in tree and cache_dir not in out:
            out[cache_dir] = Entry(cache_dir, DIR, 0o755, mtime=mtime, package=owner)
        pyc = f"{cache_dir}/{name[:-3]}.{tag}.pyc"
        out[pyc] = Entry(pyc, FILE, 0o644, data=data, mtime=mtime, package=owner)
    return list(out.values())

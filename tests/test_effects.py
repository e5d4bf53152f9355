"""What maintainer scripts would have done: accounts and the CA bundle, as values."""

from __future__ import annotations

import pytest

from composer.errors import ComposeError
from composer.image import assemble, effects
from composer.model import DIR, FILE, SYMLINK, Entry, UserSpec


def test_default_accounts() -> None:
    acc = effects.accounts((), ())
    assert [(u.name, u.uid, u.gid, u.home) for u in acc.users] == [
        ("root", 0, 0, "/root"), ("nonroot", 65532, 65532, "/home/nonroot"),
        ("nobody", 65534, 65534, "/nonexistent")]
    assert acc.groups == (("root", 0), ("nonroot", 65532), ("nogroup", 65534))
    assert acc.resolve("nonroot") == "65532:65532" and acc.resolve("0") == "0:0"


def test_a_group_with_a_default_gid_renames_it() -> None:
    acc = effects.accounts((), (("nobody", 65534), ("tty", 5), ("staff", 50)))
    assert acc.groups == (("root", 0), ("tty", 5), ("staff", 50), ("nonroot", 65532),
                          ("nobody", 65534))


def test_a_user_gets_its_group() -> None:
    acc = effects.accounts((UserSpec("app", 1000, 1000, "/srv/app"),), ())
    assert ("app", 1000) in acc.groups and acc.resolve("app:nonroot") == "1000:65532"


def test_ca_bundle_is_the_certificates_in_path_order() -> None:
    tree = assemble.Tree()
    for name, body in (("mozilla/B.crt", b"B\n"), ("mozilla/A.crt", b"A"), ("x/C.crt", b"C\n")):
        tree.put(Entry(f"usr/share/ca-certificates/{name}", FILE, data=body))
    assert effects.ca_bundle(tree, 0) == 3
    assert tree.entries["etc/ssl/certs/ca-certificates.crt"].data == b"A\nB\nC\n"


def test_follow_resolves_links_as_the_kernel_would() -> None:
    from composer.model import DIR, SYMLINK, follow

    entries = {p: Entry(p, DIR) for p in ("usr", "usr/share", "usr/share/doc", "usr/share/doc/bar")}
    entries["usr/share/doc/bar/copyright"] = Entry("usr/share/doc/bar/copyright", FILE)
    entries["usr/share/doc/foo"] = Entry("usr/share/doc/foo", SYMLINK,
                                         target="../../../../usr/share/doc/bar")
    entries["usr/share/doc/abs"] = Entry("usr/share/doc/abs", SYMLINK, target="/usr/share/doc/bar")
    entries["usr/share/doc/loop"] = Entry("usr/share/doc/loop", SYMLINK, target="loop")
    assert follow(entries, "usr/share/doc/foo/copyright") == "usr/share/doc/bar/copyright"
    assert follow(entries, "usr/share/doc/abs/copyright") == "usr/share/doc/bar/copyright"
    assert follow(entries, "usr/share/doc/foo/../bar/./copyright") == "usr/share/doc/bar/copyright"
    assert follow(entries, "usr/share/doc/loop/x") is None
    assert follow(entries, "usr/share/doc/nothing") is None


def _busybox_tree() -> assemble.Tree:
    tree = assemble.merged_usr("amd64", 0)
    tree.put(Entry("usr/bin/busybox", FILE, 0o755, data=b"\x7fELF", package="busybox"))
    tree.put(Entry("usr/bin/sh", FILE, 0o755, data=b"dash", package="dash"))
    tree.put(Entry("bin/ls", FILE, 0o755, data=b"ls", package="coreutils"))
    return tree


LISTING = b"linuxrc\nusr/bin/[\nbin/sh\nbin/ls\nsbin/ifconfig\nbin/ash\nusr/sbin/arping\nbin/ash\n"


def test_busybox_applets_go_where_unpacking_would_put_them() -> None:
    tree = _busybox_tree()
    binary = effects.busybox_binary(tree)
    assert binary == "usr/bin/busybox"
    made = effects.busybox_applets(tree, binary, LISTING, 7)
    # bin -> usr/bin and sbin -> usr/sbin: the links land below /usr; sh (dash) and
    # ls (coreutils, written at bin/ls before the merge) keep what was shipped.
    assert sorted(made) == ["usr/bin/[", "usr/bin/ash", "usr/sbin/arping", "usr/sbin/ifconfig"]
    for path in made:
        e = tree.entries[path]
        assert (e.kind, e.target, e.package, e.mtime) == (SYMLINK, "/usr/bin/busybox", "busybox", 7)
    assert tree.entries["usr/bin/sh"].data == b"dash"


def test_busybox_applets_through_links_and_over_dead_ones() -> None:
    tree = assemble.merged_usr("amd64", 0)
    tree.put(Entry("usr/lib/busybox/busybox", FILE, 0o755, data=b"\x7fELF", package="busybox"))
    tree.put(Entry("usr/bin/busybox", SYMLINK, 0o777, target="../lib/busybox/busybox",
                   package="busybox"))
    tree.put(Entry("usr/libexec", DIR, 0o755))
    tree.put(Entry("opt", SYMLINK, 0o777, target="usr/libexec"))
    tree.put(Entry("usr/bin/vi", SYMLINK, 0o777, target="/etc/alternatives/vi", package="vim"))
    tree.put(Entry("usr/bin/cat", SYMLINK, 0o777, target="busybox", package="other"))
    binary = effects.busybox_binary(tree)
    assert binary == "usr/lib/busybox/busybox"
    made = effects.busybox_applets(tree, binary, b"bin/vi\nbin/cat\nopt/tool\n", 0)
    # a link leading nowhere gives way; one that leads somewhere stays; a symlinked
    # parent other than the /usr merge is followed too
    assert sorted(made) == ["usr/bin/vi", "usr/libexec/tool"]
    assert tree.entries["usr/bin/vi"].target == "/usr/lib/busybox/busybox"
    assert tree.entries["usr/bin/cat"].package == "other"


def test_busybox_listing_must_name_paths_below_root() -> None:
    for bad in (b"../etc/passwd\n", b"bin//sh\n", b"/bin/./sh\n", b"\xff\n", b"", b" \n"):
        tree = _busybox_tree()
        with pytest.raises(ComposeError):
            effects.busybox_applets(tree, "usr/bin/busybox", bad, 0)
    assert effects.busybox_binary(assemble.Tree()) is None


def test_only_keeps_the_selected_paths_of_a_package() -> None:
    tree = assemble.merged_usr("amd64", 0)
    for path in ("usr/sbin/ldconfig", "usr/lib/locale/C.utf8/LC_CTYPE", "usr/bin/iconv",
                 "usr/share/doc/libc-bin/copyright", "etc/ld.so.conf.d/libc.conf"):
        tree.put(Entry(path, FILE, 0o644, data=path.encode(), package="libc-bin"))
    tree.put(Entry("usr/bin/getent", FILE, 0o755, data=b"x", package="other"))
    tree.put(Entry("usr/bin/iconv-link", assemble.HARDLINK, 0o755, target="usr/bin/iconv",
                   package="other"))
    removed = assemble.only(tree, {"libc-bin": ["usr/lib/locale/C.utf8/**"]})
    assert "usr/sbin/ldconfig" in removed and "etc/ld.so.conf.d" in removed
    assert "usr/lib/locale/C.utf8/LC_CTYPE" in tree.entries
    assert "usr/share/doc/libc-bin/copyright" in tree.entries  # always kept
    assert "usr/bin/getent" in tree.entries  # another package's
    # a hard link another package keeps becomes the file it linked to
    assert tree.entries["usr/bin/iconv-link"].kind == FILE
    assert tree.entries["usr/bin/iconv-link"].data == b"usr/bin/iconv"
    # a directory libc-bin made that is left empty goes; the merged-/usr ones stay
    assert "etc" not in tree.entries and "usr/sbin" in tree.entries

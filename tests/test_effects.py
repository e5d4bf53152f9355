"""What maintainer scripts would have done: accounts and the CA bundle, as values."""

from __future__ import annotations

from composer.image import assemble, effects
from composer.model import FILE, Entry, UserSpec


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

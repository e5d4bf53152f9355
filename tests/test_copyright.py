"""composer.debian.copyright on crafted copyright files: DEP-5 reading, the SPDX names,
prose detection and the attribution of paragraphs to shipped files.

Every expression produced is put to the SPDX expression parser that spdx-tools brings
(``license_expression``) when it is installed: it must parse, and every identifier must be
on its licence or exception list, or be a ``LicenseRef-`` in SPDX's idstring alphabet.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Sequence

import pytest

from composer.debian.copyright import Attribution, attribute, detect, parse, spdx

try:
    from license_expression import get_spdx_licensing
except ImportError:  # pragma: no cover - spdx-tools is in the test extra
    get_spdx_licensing = None

FORMAT = "Format: https://spec.example/doc/packaging-manuals/copyright-format/1.0/"
IDSTRING = re.compile(r"LicenseRef-[A-Za-z0-9.-]+")
_LICENSING = get_spdx_licensing() if get_spdx_licensing is not None else None
_KNOWN = ({s.key for s in _LICENSING.known_symbols.values()} if _LICENSING is not None
          else set())


def valid(expression: str, ids: Collection[str] = ()) -> str:
    """``expression`` after checking it with the SPDX parser (when installed)."""
    assert expression, "an empty licence expression"
    if _LICENSING is None:
        return expression
    errors = _LICENSING.validate(expression).errors
    for error in errors:
        unknown = re.fullmatch(r"Unknown license key\(s\): (.*)", error)
        assert unknown, f"{expression!r}: {error}"
        for key in unknown.group(1).split(", "):
            assert IDSTRING.fullmatch(key), f"{expression!r}: unknown key {key!r}"
    for i in ids:
        assert i in _KNOWN or IDSTRING.fullmatch(i), f"{i!r} is not an SPDX identifier"
    return expression


def dep5(*paragraphs: str) -> str:
    return "\n\n".join((FORMAT, *paragraphs)) + "\n"


def run(text: str, shipped: Sequence[str] = (), elf: Collection[str] = (),
        where: str = "pkg: /usr/share/doc/pkg/copyright") -> Attribution:
    result = attribute(parse(text, where), shipped, elf, "pkg")
    valid(result.expression, result.ids)
    for use in result.uses:
        valid(use.expression)
    return result


def uses(result: Attribution) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Each use by its globs: (how, expression, files)."""
    return {" ".join(u.patterns): (u.how, u.expression, u.files) for u in result.uses}


LIB = "usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3"
LIB_LINK = "usr/lib/x86_64-linux-gnu/libfoo.so.1"
DOC = "usr/share/doc/pkg/copyright"


# --- names ---------------------------------------------------------------------------------

MAPPINGS = [
    ("GPL-2+", "GPL-2.0-or-later"), ("GPL-2", "GPL-2.0-only"), ("GPL-3+", "GPL-3.0-or-later"),
    ("GPL-3", "GPL-3.0-only"), ("GPL-1+", "GPL-1.0-or-later"), ("GPL-2.0+", "GPL-2.0-or-later"),
    ("GPL-2.0-or-later", "GPL-2.0-or-later"), ("GPL-3.0-only", "GPL-3.0-only"),
    ("GPLv2+", "GPL-2.0-or-later"), ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("LGPL-2.1", "LGPL-2.1-only"), ("LGPL-2+", "LGPL-2.0-or-later"),
    ("LGPL-3+", "LGPL-3.0-or-later"), ("AGPL-3+", "AGPL-3.0-or-later"),
    ("AGPL-3", "AGPL-3.0-only"), ("GFDL-1.2+", "GFDL-1.2-or-later"),
    ("GFDL-1.3", "GFDL-1.3-only"), ("GFDL-NIV-1.3+", "GFDL-1.3-no-invariants-or-later"),
    ("GPL", "GPL-1.0-or-later"), ("LGPL", "LGPL-2.0-or-later"), ("GFDL", "GFDL-1.1-or-later"),
    ("Expat", "MIT"), ("MIT", "MIT"), ("X11", "X11"), ("MIT/X11", "X11"),
    ("BSD-2-clause", "BSD-2-Clause"), ("BSD-3-clause", "BSD-3-Clause"),
    ("BSD-4-clause", "BSD-4-Clause"), ("bsd-3-CLAUSE", "BSD-3-Clause"),
    ("BSD-3-Clause", "BSD-3-Clause"), ("ISC", "ISC"), ("isc", "ISC"), ("Zlib", "Zlib"),
    ("zlib", "Zlib"), ("zlib/libpng", "Zlib"), ("Apache-2.0", "Apache-2.0"),
    ("Apache-2", "Apache-2.0"), ("apache-2.0", "Apache-2.0"),
    ("Artistic", "Artistic-1.0-Perl"), ("Artistic-1.0", "Artistic-1.0-Perl"),
    ("Artistic-2.0", "Artistic-2.0"), ("MPL-2.0", "MPL-2.0"), ("MPL-1.1", "MPL-1.1"),
    ("MPL-2", "MPL-2.0"), ("PSF-2", "PSF-2.0"), ("PSF-2.0", "PSF-2.0"),
    ("Python", "Python-2.0"), ("Python-2.0", "Python-2.0"), ("Python-CNRI", "CNRI-Python"),
    ("OpenSSL", "OpenSSL"), ("SSLeay", "SSLeay-standalone"), ("Sleepycat", "Sleepycat"),
    ("public-domain", "LicenseRef-public-domain"), ("Public-Domain", "LicenseRef-public-domain"),
    ("permissive", "LicenseRef-permissive"), ("other", "LicenseRef-other"),
    ("unknown", "LicenseRef-unknown"), ("CC0-1.0", "CC0-1.0"), ("CC0", "CC0-1.0"),
    ("CC-BY-SA-3.0", "CC-BY-SA-3.0"), ("CC-BY-4", "CC-BY-4.0"),
    ("Unicode-DFS-2016", "Unicode-DFS-2016"), ("curl", "curl"), ("OLDAP-2.8", "OLDAP-2.8"),
    ("FSFAP", "FSFAP"), ("FSFUL", "FSFUL"), ("FSFULLR", "FSFULLR"), ("0BSD", "0BSD"),
    ("BSL-1.0", "BSL-1.0"), ("Boost", "BSL-1.0"), ("SunPro", "SunPro"), ("W3C", "W3C"),
    ("Zope-2.1", "ZPL-2.1"), ("MPL", "MPL-1.0"), ("CDDL-1.0", "CDDL-1.0"),
    ("EPL-2.0", "EPL-2.0"), ("LPPL-1.3c", "LPPL-1.3c"), ("WTFPL", "WTFPL"),
    ("Unlicense", "Unlicense"), ("FreeBSD", "BSD-2-Clause-Views"),
    ("Perl", "Artistic-1.0-Perl OR GPL-1.0-or-later"),
    ("GPL-3+ with GCC-exception-3.1", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    ("GPL-3+ with GCC-exception-3.1 exception", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    ("GPL-3+ with GCC exception", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    ("GPL-2+ with GCC exception", "GPL-2.0-or-later WITH GCC-exception-2.0"),
    ("GPL-2+ with Font exception", "GPL-2.0-or-later WITH Font-exception-2.0"),
    ("GPL-2+ with Libtool exception", "GPL-2.0-or-later WITH Libtool-exception"),
    ("GPL-3+ with Bison-2.2 exception", "GPL-3.0-or-later WITH Bison-exception-2.2"),
    ("GPL-2 with Classpath exception", "GPL-2.0-only WITH Classpath-exception-2.0"),
    ("Apache-2.0 with LLVM exception", "Apache-2.0 WITH LLVM-exception"),
    ("GPL-2+ with OpenSSL exception", "GPL-2.0-or-later AND LicenseRef-OpenSSL-exception"),
    ("GPL-3+ with Autoconf-data exception",
     "GPL-3.0-or-later AND LicenseRef-Autoconf-data-exception"),
    ("GPL-2+-with-link-exception", "GPL-2.0-or-later AND LicenseRef-link-exception"),
    ("GPL-2+-libtool-exception", "GPL-2.0-or-later WITH Libtool-exception"),
    ("GPL-3.0-or-later-WITH-Autoconf-exception-macro",
     "GPL-3.0-or-later WITH Autoconf-exception-macro"),
]


@pytest.mark.parametrize(("debian", "expected"), MAPPINGS)
def test_debian_names_map_to_spdx(debian: str, expected: str) -> None:
    assert valid(spdx(debian)) == expected


def test_or_later_on_licences_without_or_later_ids_is_dropped_and_noted() -> None:
    # SPDX's "+" operator is valid syntax, but validators reject MPL-1.1+.
    assert spdx("MPL-1.1+") == "MPL-1.1"
    c = parse(dep5("Files: *\nCopyright: x\nLicense: MPL-1.1+"), "w")
    assert c.files[0].expression == "MPL-1.1"
    assert any("MPL-1.1+" in n for n in c.notes)


@pytest.mark.parametrize(("debian", "expected"), [
    ("A or B and C", "LicenseRef-A OR (LicenseRef-B AND LicenseRef-C)"),
    ("A or B, and C", "(LicenseRef-A OR LicenseRef-B) AND LicenseRef-C"),
    ("A and B or C", "(LicenseRef-A AND LicenseRef-B) OR LicenseRef-C"),
    ("A and B, or C", "(LicenseRef-A AND LicenseRef-B) OR LicenseRef-C"),
    ("A, and B or C", "LicenseRef-A AND (LicenseRef-B OR LicenseRef-C)"),
    ("GPL-1+ or Artistic", "Artistic-1.0-Perl OR GPL-1.0-or-later"),
    ("GPL-2+ or Artistic-2.0, and BSD-3-clause",
     "(Artistic-2.0 OR GPL-2.0-or-later) AND BSD-3-Clause"),
    ("GPL-2+ and BSD-3-clause", "BSD-3-Clause AND GPL-2.0-or-later"),
    ("BSD-3-clause or GPL-2", "BSD-3-Clause OR GPL-2.0-only"),
    ("GPL-2+ with OpenSSL exception or MIT",
     "(GPL-2.0-or-later AND LicenseRef-OpenSSL-exception) OR MIT"),
    ("MPL-1.1 or GPL-2+ or LGPL-2.1+", "GPL-2.0-or-later OR LGPL-2.1-or-later OR MPL-1.1"),
    ("(GPL-2+ or MIT) and ISC", "(GPL-2.0-or-later OR MIT) AND ISC"),
    ("GPL-2+ and GPL-2+", "GPL-2.0-or-later"),
    ("gpl-2+ OR bsd-2-clause AND expat", "(BSD-2-Clause AND MIT) OR GPL-2.0-or-later"),
])
def test_expression_precedence_follows_dep5(debian: str, expected: str) -> None:
    """DEP-5: "and has the priority over or, unless preceded by a comma"."""
    assert valid(spdx(debian)) == expected


def test_and_or_is_read_as_and_and_a_bare_comma_too() -> None:
    c = parse(dep5("Files: *\nCopyright: x\nLicense: BSD-3-clause and/or GPL-3+",
                   "Files: a/*\nCopyright: x\nLicense: MIT, ISC"), "w")
    assert c.files[0].expression == "BSD-3-Clause AND GPL-3.0-or-later"
    assert c.files[1].expression == "ISC AND MIT"
    assert any("and/or" in n for n in c.notes)
    assert any("comma" in n for n in c.notes)


@pytest.mark.parametrize(("debian", "expected"), [
    ("ad-hoc", "LicenseRef-ad-hoc"),
    ("BSD-variant", "LicenseRef-BSD-variant"),
    ("MIT-like (Lord)", "LicenseRef-MIT-like-Lord"),
    ("__AUTO_PERMISSIVE__", "LicenseRef-AUTO-PERMISSIVE"),
    ("Foo-2+", "LicenseRef-Foo-2-or-later"),
    ("permissive/fsf", "LicenseRef-permissive-fsf"),
    ("LicenseRef-Already", "LicenseRef-Already"),
    ("GPL-2.2", "LicenseRef-GPL-2.2"),
])
def test_unknown_names_become_sanitised_licenserefs(debian: str, expected: str) -> None:
    assert valid(spdx(debian)) == expected


def test_unknown_names_are_noted() -> None:
    c = parse(dep5("Files: *\nCopyright: x\nLicense: ad-hoc\n Some text."), "w")
    assert c.files[0].expression == "LicenseRef-ad-hoc"
    assert any("'ad-hoc'" in n and "LicenseRef-ad-hoc" in n for n in c.notes)


def test_unversioned_gnu_names_are_noted() -> None:
    c = parse(dep5("Files: *\nCopyright: x\nLicense: GPL"), "w")
    assert c.files[0].expression == "GPL-1.0-or-later"
    assert any("no version" in n for n in c.notes)


def test_names_with_a_space_are_joined() -> None:
    assert spdx("public domain") == "LicenseRef-public-domain"
    assert spdx("BSD 3-clause") == "BSD-3-Clause"
    assert spdx("MIT License") == "MIT"


# --- reading DEP-5 ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://spec.example/doc/packaging-manuals/copyright-format/1.0/",
    "http://spec.example/doc/packaging-manuals/copyright-format/1.0",
    "https://spec.example/doc/packaging-manuals/copyright-format/1.0/ ",
    "http://dep.example/deps/dep5/",
    "http://dep.example/deps/dep5",
    "http://svn.example/wsvn/dep/web/deps/dep5.mdwn?op=file&rev=135",
])
def test_format_url_variants_are_machine_readable(url: str) -> None:
    c = parse(f"Format: {url}\n\nFiles: *\nCopyright: x\nLicense: GPL-2+\n", "w")
    assert c.machine_readable
    assert c.files[0].expression == "GPL-2.0-or-later"
    assert not c.notes


def test_old_format_specification_field_and_unknown_urls_are_read() -> None:
    c = parse("Format-Specification: http://wiki.example/Proposals/CopyrightFormat?rev=1\n\n"
              "Files: *\nCopyright: x\nLicense: MIT\n", "w")
    assert c.machine_readable and c.files[0].expression == "MIT"
    odd = parse("Format: http://elsewhere.example/some-spec\n\nFiles: *\nCopyright: x\n"
                "License: MIT\n", "w")
    assert odd.machine_readable and any("unknown Format" in n for n in odd.notes)


def test_header_licence_applies_to_everything_shipped() -> None:
    text = ("Format: https://spec.example/copyright-format/1.0/\nUpstream-Name: foo\n"
            "License: LGPL-2.1+\n\nFiles: *\nCopyright: x\nLicense: LGPL-2.1+\n\n"
            "Files: src/bar/*\nCopyright: x\nLicense: MIT\n")
    r = run(text, [LIB, "usr/share/foo/data"], [LIB])
    assert r.machine_readable
    # src/bar/* matches nothing shipped: its sources may be in the library, which the
    # header and Files: * already cover, so MIT is only possible.
    assert r.expression == "LGPL-2.1-or-later" and r.ids == ("LGPL-2.1-or-later",)
    assert r.possible == ("MIT",)
    header = r.uses[0]
    assert header.patterns == () and header.how == "all"
    assert header.files == (LIB, "usr/share/foo/data")


def test_header_only_file() -> None:
    r = run("Format: https://spec.example/copyright-format/1.0/\nLicense: ISC\n Text.\n",
            ["usr/bin/foo"])
    assert r.expression == "ISC" and r.ids == ("ISC",)


def test_header_licence_in_prose_is_a_summary() -> None:
    text = dep5("Files: *\nCopyright: x\nLicense: 0BSD").replace(
        "1.0/\n", "1.0/\nLicense:\n Most is 0BSD; the scripts are under GNU GPLv2+.\n", 1)
    r = run(text, ["usr/bin/foo"], ["usr/bin/foo"])
    assert r.expression == "0BSD"
    assert any("summary" in n for n in r.notes)


def test_fields_continuations_dots_comments_and_case() -> None:
    text = ("# a comment before the header\n"
            "format: https://spec.example/copyright-format/1.0/\n"
            "UPSTREAM-NAME: foo\n"
            "\n"
            "files: src/*\n"
            "  include/*.h\n"
            "\tlib/foo.c,\n"
            "# a comment inside a paragraph\n"
            "copyright: 2001 A\n"
            " 2002 B\n"
            "LICENSE: gpl-2+\n"
            " This program is free software.\n"
            " .\n"
            " See /usr/share/common-licenses/GPL-2.\n")
    c = parse(text, "w")
    assert c.machine_readable
    (par,) = c.files
    assert par.patterns == ("src/*", "include/*.h", "lib/foo.c")
    assert par.copyright == "2001 A\n2002 B"
    assert par.licence == "gpl-2+" and par.expression == "GPL-2.0-or-later"
    assert par.text == "This program is free software.\n\nSee /usr/share/common-licenses/GPL-2."


def test_repeated_fields_and_stray_lines_are_tolerated() -> None:
    c = parse(dep5("Files: a/*\nFiles: b/*\nCopyright: x\nLicense: MIT\nstray line"), "w")
    assert c.files[0].patterns == ("a/*", "b/*")
    assert any("repeated" in n for n in c.notes)
    assert any("neither fields nor continuations" in n for n in c.notes)


def test_standalone_licence_paragraphs_give_texts() -> None:
    c = parse(dep5("Files: *\nCopyright: x\nLicense: MPL-1.1 or GPL-2 or LGPL-2.1",
                   "License: MPL-1.1\n [MPL TEXT]",
                   "License: GPL-2\n On Debian systems, see /usr/share/common-licenses/GPL-2.",
                   "License: LGPL-2.1\n [LGPL TEXT]"), "w")
    assert [name for name, _ in c.licences] == ["MPL-1.1", "GPL-2", "LGPL-2.1"]
    assert dict(c.licences)["MPL-1.1"] == "[MPL TEXT]"
    assert c.files[0].expression == "GPL-2.0-only OR LGPL-2.1-only OR MPL-1.1"


def test_mit_whose_text_is_not_the_mit_notice_is_noted() -> None:
    c = parse(dep5("Files: *\nCopyright: x\nLicense: Expat",
                   "License: Expat\n Permission to use, copy, modify, and distribute this\n"
                   " software and its documentation for any purpose is hereby granted."), "w")
    assert c.files[0].expression == "MIT"
    assert any("not the MIT" in n for n in c.notes)
    good = parse(dep5("Files: *\nCopyright: x\nLicense: Expat",
                      "License: Expat\n Permission is hereby granted, free of charge, to any\n"
                      " person obtaining a copy of this software."), "w")
    assert not good.notes


def test_licence_field_that_is_prose_is_detected_from_its_text() -> None:
    c = parse(dep5("Files: *\nCopyright: x\nLicense: GPL-2+",
                   "Files: Lib/tarfile.py\nCopyright: x\n"
                   "License: Permission  is  hereby granted,  free  of charge,  to  any person\n"
                   " obtaining a copy of this software.",
                   "Files: Modules/zlib/*\nCopyright: x\nLicense:\n"
                   " This software is provided 'as-is', without any express or implied\n"
                   " warranty."), "w")
    assert c.files[1].expression == "MIT" and c.files[1].detected
    assert c.files[2].expression == "Zlib"
    assert sum("instead of short names" in n for n in c.notes) == 2


def test_files_paragraph_without_licence_is_unknown() -> None:
    c = parse(dep5("Files: *\nCopyright: x"), "w")
    assert c.files[0].expression == "LicenseRef-unknown"
    assert any("no License" in n for n in c.notes)


def test_bytes_are_accepted() -> None:
    c = parse(dep5("Files: *\nCopyright: © x\nLicense: MIT").encode("utf-8"), "w")
    assert c.files[0].copyright == "© x"


# --- prose ---------------------------------------------------------------------------------

GPL2_PLUS = """This package was debianized by someone.

Copyright (C) 1999 Someone

This program is free software; you can redistribute it and/or modify
it under the terms of the GNU General Public License as published by
the Free Software Foundation; either version 2 of the License, or
(at your option) any later version.

This program is distributed in the hope that it will be useful, but
WITHOUT ANY WARRANTY.  See the GNU General Public License for more details.

On Debian systems, the complete text of the GNU General Public License
version 2 can be found in `/usr/share/common-licenses/GPL-2'.
"""

LGPL21_PLUS = """Copyright: 2004 Somebody

This library is free software; you can redistribute it and/or
modify it under the terms of the GNU Lesser General Public
License as published by the Free Software Foundation; either
version 2.1 of the License, or (at your option) any later version.

On Debian systems the full text of the GNU Lesser General Public License
can be found in /usr/share/common-licenses/LGPL-2.1.
"""

GPL3_ONLY = """This is foo, packaged for Debian.

foo is free software: you can redistribute it and/or modify it under the
terms of the GNU General Public License version 3 as published by the Free
Software Foundation.

The complete text of the GNU General Public License version 3 is in
/usr/share/common-licenses/GPL-3.
"""

BSD3 = """Copyright (c) 1990 The Regents of the University of California.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions
are met:
1. Redistributions of source code must retain the above copyright
   notice, this list of conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright
   notice, this list of conditions and the following disclaimer in the
   documentation and/or other materials provided with the distribution.
3. Neither the name of the University nor the names of its contributors
   may be used to endorse or promote products derived from this software
   without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE REGENTS AND CONTRIBUTORS ``AS IS''.
"""

MIT_TEXT = """Copyright (c) 2010 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction.
"""

PUBLIC_DOMAIN = """The author disclaims copyright to this source code.  In place of
a legal notice, here is a blessing.  This code is in the public domain.
"""


@pytest.mark.parametrize(("text", "expected"), [
    (GPL2_PLUS, "GPL-2.0-or-later"),
    (LGPL21_PLUS, "LGPL-2.1-or-later"),
    (GPL3_ONLY, "GPL-3.0-only"),
    (BSD3, "BSD-3-Clause"),
    (BSD3.replace("3. Neither the name", "3. All advertising materials mentioning features "
                  "or use of this software must display an acknowledgement.\n4. Neither the "
                  "name"), "BSD-4-Clause"),
    (BSD3.split("3. Neither")[0], "BSD-2-Clause"),
    (MIT_TEXT, "MIT"),
    (PUBLIC_DOMAIN, "LicenseRef-public-domain"),
    ("This is in public domain, see /usr/share/common-licenses/Apache-2.0 too.",
     "Apache-2.0 AND LicenseRef-public-domain"),
    ("Licensed under the Apache License, Version 2.0.", "Apache-2.0"),
    ("This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0.",
     "MPL-2.0"),
    ("This software is provided 'as-is', without any express or implied warranty.", "Zlib"),
    ("This product includes software developed by the OpenSSL Project.", "OpenSSL"),
    ("PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2\n\n1. This LICENSE AGREEMENT", "PSF-2.0"),
    ("Perl is under the Artistic License, see /usr/share/common-licenses/Artistic",
     "Artistic-1.0-Perl"),
    ("Redistributions in any form must be accompanied by information on how to obtain "
     "complete source code for the DB software.", "Sleepycat"),
    ("Permission to use, copy, modify, and/or distribute this software for any purpose with "
     "or without fee is hereby granted.", "ISC"),
    ("Copying and distribution of this file, with or without modification, are permitted in "
     "any medium without royalty provided the copyright notice and this notice are preserved.",
     "FSFAP"),
    ("The overall license is the GNU Lesser General Public License, version 2.1 (or, at your "
     "option, any later version).\n\n * Copyright A; 3-clause BSD:\n   a.c\n\n"
     " * Copyright B; 0-clause BSD:\n   b.c", "0BSD AND BSD-3-Clause AND LGPL-2.1-or-later"),
    ("Some files: LGPL (v2.1 or later). Others: GPLv3.", "GPL-3.0-only AND LGPL-2.1-or-later"),
    ("GCC is free software; you can redistribute it and/or modify it under the terms of the "
     "GNU General Public License as published by the Free Software Foundation; either version "
     "3, or (at your option) any later version.\n\nThe runtime libraries are licensed under "
     "the terms of the GNU General Public License (v3 or later) with version 3.1 of the GCC "
     "Runtime Library Exception.",
     "GPL-3.0-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1"),
])
def test_prose_is_detected(text: str, expected: str) -> None:
    c = parse(text, "pkg: /usr/share/doc/pkg/copyright")
    assert not c.machine_readable
    r = run(text, ["usr/bin/foo"])
    assert not r.machine_readable
    assert r.expression == expected
    assert any("detected from prose" in n for n in r.notes)
    (only,) = r.uses
    assert only.how == "all" and only.patterns == () and only.files == ("usr/bin/foo",)


def test_prose_with_nothing_recognisable_is_unknown() -> None:
    r = run("This package was put together by someone.\nSee the upstream site.\n", ["usr/x"])
    assert r.expression == "LicenseRef-unknown" and r.ids == ("LicenseRef-unknown",)
    assert any("no licence recognised" in n for n in r.notes)
    assert run("", ["usr/x"]).expression == "LicenseRef-unknown"


def test_prose_boilerplate_does_not_grant() -> None:
    # "See the GPL for more details", "a copy of the GPL", "previously distributed under
    # the GPL", "GPL-compatible": none of them licenses anything.
    text = ("Copyright 2000 X. Permission to use, copy, modify, and/or distribute this "
            "software for any purpose with or without fee is hereby granted.\n\n"
            "See the GNU General Public License for more details.  You should have received "
            "a copy of the GNU General Public License along with it.  Parts were previously "
            "distributed under the GNU General Public License (GPL).  It is GPL-compatible.")
    assert detect(text)[0] == ("ISC",)


def test_prose_negated_public_domain_is_not_detected() -> None:
    assert detect("This work is not in the public domain. Licensed under the MIT license.")[0] \
        == ("MIT",)


def test_prose_reference_without_grant_reads_as_that_version_only() -> None:
    ids, notes = detect("On Debian systems the complete text is in "
                        "/usr/share/common-licenses/GPL-2.")
    assert ids == ("GPL-2.0-only",)
    assert any("only named where its text is" in n for n in notes)


# --- attribution ---------------------------------------------------------------------------


def test_files_star_covers_everything_and_debian_is_unshipped() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: Zlib",
                 "Files: debian/*\nCopyright: y\nLicense: GPL-2+"),
            [LIB, LIB_LINK, DOC], [LIB])
    assert r.expression == "Zlib" and r.ids == ("Zlib",)
    assert uses(r) == {"*": ("all", "Zlib", (LIB_LINK, LIB)),
                       "debian/*": ("unshipped", "GPL-2.0-or-later", ())}


def test_the_copyright_file_itself_is_not_attributed() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: MIT"), [DOC, "usr/bin/x"])
    assert uses(r)["*"][2] == ("usr/bin/x",)


def test_last_match_wins() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: PSF-2",
                 "Files: Lib/json/*\nCopyright: y\nLicense: Expat",
                 "Files: Lib/json/tool.py\nCopyright: z\nLicense: Apache-2.0"),
            ["usr/lib/python3.13/json/decoder.py", "usr/lib/python3.13/json/tool.py",
             "usr/lib/python3.13/os.py"])
    assert uses(r) == {
        "*": ("all", "PSF-2.0", ("usr/lib/python3.13/os.py",)),
        "Lib/json/*": ("matched", "MIT", ("usr/lib/python3.13/json/decoder.py",)),
        "Lib/json/tool.py": ("matched", "Apache-2.0", ("usr/lib/python3.13/json/tool.py",)),
    }
    assert r.expression == "Apache-2.0 AND MIT AND PSF-2.0"
    assert r.ids == ("Apache-2.0", "MIT", "PSF-2.0")


def test_a_paragraph_overridden_entirely_covers_nothing() -> None:
    r = run(dep5("Files: Lib/json/*\nCopyright: y\nLicense: Expat",
                 "Files: *\nCopyright: x\nLicense: PSF-2"),
            ["usr/lib/python3.13/json/decoder.py"])
    assert uses(r)["Lib/json/*"] == ("unshipped", "MIT", ())
    assert r.expression == "PSF-2.0"
    assert any("claimed by later paragraphs" in n for n in r.notes)


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    # a wildcard tail: the named directory must be in the path
    ("Lib/json/*", "usr/lib/python3.13/json/decoder.py", True),
    ("Lib/json/*", "usr/lib/python3.13/json/sub/deep.py", True),
    ("Lib/json/*", "usr/lib/python3.13/jsonx/decoder.py", False),
    ("Lib/json/*", "usr/lib/python3.13/decoder.py", False),
    ("Lib/json/*.py", "usr/lib/python3.13/json/decoder.py", True),
    ("Lib/json/*.py", "usr/lib/python3.13/json/decoder.pyc", False),
    # a literal file name: the last directory and the name must agree
    ("sbin/update-ca-certificates", "usr/sbin/update-ca-certificates", True),
    ("Lib/turtle.py", "usr/lib/python3.13/turtle.py", False),
    ("tools/turtle.py", "usr/share/foo/tools/turtle.py", True),
    # no named directory: only DEP-5's own whole-path match
    ("turtle.py", "usr/lib/python3.13/turtle.py", False),
    ("*/turtle.py", "usr/lib/python3.13/turtle.py", True),
    ("*.py", "usr/lib/python3.13/a/b.py", True),
    ("b?.py", "b1.py", True),
    ("etc/foo.conf", "etc/foo.conf", True),
    # generic directories (lib, src, share ...) do not anchor a wildcard
    ("src/lib/*", "usr/lib/x86_64-linux-gnu/libz.so.1", False),
    ("lib/*", "usr/lib/x86_64-linux-gnu/libz.so.1", False),
    ("mozilla/*", "usr/share/ca-certificates/mozilla/A.crt", True),
    ("foo/lib/*", "usr/foo/lib/x", True),
    # an escaped wildcard is literal
    ("data/a\\*b", "usr/share/data/a*b", True),
    ("data/a\\*b", "usr/share/data/axxb", False),
])
def test_suffix_rule(pattern: str, path: str, matches: bool) -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: MIT",
                 f"Files: {pattern}\nCopyright: y\nLicense: ISC"), [path])
    assert (uses(r)[pattern][0] == "matched") is matches
    assert uses(r)["*"][2] == (() if matches else (path,))


def test_compiled_sources_cover_the_elf_objects() -> None:
    text = dep5("Files: *\nCopyright: x\nLicense: PSF-2",
                "Files: Modules/_decimal/libmpdec/*\nCopyright: y\nLicense: BSD-2-clause",
                "Files: Python/dtoa.c\nCopyright: z\nLicense: SunPro",
                "Files: src/x86/sysv.S src/*.h\nCopyright: w\nLicense: ISC")
    shipped = ["usr/bin/python3.13", "usr/lib/python3.13/os.py", LIB]
    r = run(text, shipped, ["usr/bin/python3.13", LIB])
    u = uses(r)
    assert u["Modules/_decimal/libmpdec/*"] == ("compiled", "BSD-2-Clause",
                                                ("usr/bin/python3.13", LIB))
    assert u["Python/dtoa.c"][0] == "compiled"
    assert u["src/x86/sysv.S src/*.h"][0] == "compiled"
    # Files: * covers both objects definitely: what may be compiled into them is possible.
    assert r.expression == "PSF-2.0" and r.ids == ("PSF-2.0",)
    assert r.possible == ("BSD-2-Clause", "ISC", "SunPro")
    assert any("source files under BSD-2-Clause, ISC, SunPro may or may not be compiled"
               in n and "reported as possible" in n for n in r.notes)


def test_compiled_sources_count_when_nothing_definite_covers_an_object() -> None:
    # fonts/* covers the font definitely, but no definite paragraph covers the library:
    # what may be compiled into it is all there is, so it is counted.
    paragraphs = ("Files: fonts/*\nCopyright: x\nLicense: OFL-1.1",
                  "Files: src/*.c\nCopyright: y\nLicense: BSD-3-clause or GPL-2",
                  "Files: src/gz*.c\nCopyright: z\nLicense: zlib")
    shipped = [LIB, "usr/share/foo/fonts/a.ttf"]
    r = run(dep5(*paragraphs), shipped, [LIB])
    u = uses(r)
    assert u["fonts/*"] == ("matched", "OFL-1.1", ("usr/share/foo/fonts/a.ttf",))
    assert u["src/*.c"] == ("compiled", "BSD-3-Clause OR GPL-2.0-only", (LIB,))
    assert u["src/gz*.c"] == ("compiled", "Zlib", (LIB,))
    assert r.expression == "(BSD-3-Clause OR GPL-2.0-only) AND OFL-1.1 AND Zlib"
    assert r.ids == ("BSD-3-Clause", "GPL-2.0-only", "OFL-1.1", "Zlib")
    assert r.possible == ()
    assert not any("reported as possible" in n for n in r.notes)
    # With Files: * covering the library, the same sources are only possible.
    star = run(dep5("Files: *\nCopyright: w\nLicense: Expat", *paragraphs), shipped, [LIB])
    assert uses(star)["src/*.c"] == u["src/*.c"] and uses(star)["src/gz*.c"] == u["src/gz*.c"]
    assert star.expression == "MIT AND OFL-1.1" and star.ids == ("MIT", "OFL-1.1")
    assert star.possible == ("BSD-3-Clause", "GPL-2.0-only", "Zlib")


def test_compiled_sources_in_a_package_without_elf_cover_nothing() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: public-domain",
                 "Files: src/zic.c\nCopyright: y\nLicense: BSD-3-clause"),
            ["usr/share/zoneinfo/UTC"])
    assert uses(r)["src/zic.c"] == ("compiled", "BSD-3-Clause", ())
    assert r.expression == "LicenseRef-public-domain"


def test_a_source_directory_named_like_an_object_claims_it() -> None:
    text = dep5("Files: *\nCopyright: x\nLicense: GPL-2+",
                "Files: libfoo/* libfoo/src/*\nCopyright: y\nLicense: BSD-3-clause",
                "Files: libfoo/src/gen.c\nCopyright: y\nLicense: ISC",
                "Files: sys-utils/lscpu.c\nCopyright: z\nLicense: GPL-2",
                "Files: keyutils.*\nCopyright: z\nLicense: LGPL-2+")
    r = run(text, [LIB, LIB_LINK, DOC], [LIB])
    u = uses(r)
    assert u["libfoo/* libfoo/src/*"] == ("matched", "BSD-3-Clause", (LIB_LINK, LIB))
    assert u["libfoo/src/gen.c"] == ("compiled", "ISC", (LIB,))  # inside libfoo/: counted
    assert u["sys-utils/lscpu.c"] == ("compiled", "GPL-2.0-only", ())  # outside: set aside
    assert u["*"] == ("unshipped", "GPL-2.0-or-later", ())
    # libfoo/* covers the library definitely; gen.c inside it may be compiled in, the
    # paragraphs set aside reach nothing (GPL-2.0-only, LGPL-2.0-or-later: not possible).
    assert r.expression == "BSD-3-Clause"
    assert r.possible == ("ISC",)
    assert any("libfoo/" in n and "not counted" in n for n in r.notes)


def test_a_name_glob_claims_the_library_of_that_name() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: GPL-2+",
                 "Files: keyutils.*\nCopyright: z\nLicense: LGPL-2+"),
            ["usr/lib/libkeyutils.so.1.10", "usr/lib/libkeyutils.so.1", "usr/bin/keyctl"],
            ["usr/lib/libkeyutils.so.1.10", "usr/bin/keyctl"])
    u = uses(r)
    assert u["keyutils.*"] == ("matched", "LGPL-2.0-or-later",
                               ("usr/lib/libkeyutils.so.1", "usr/lib/libkeyutils.so.1.10"))
    assert u["*"] == ("all", "GPL-2.0-or-later", ("usr/bin/keyctl",))


@pytest.mark.parametrize("pattern", [
    "debian/*", "debian/patches/fix.patch", "doc/*.texi", "doc/*.[03]", "docs/api.html",
    "tests/*", "testsuite/lib/x.c", "t/basic.t", "examples/demo.c", "src/tst-thing.c",
    "src/foo_test.cc", "posix/PCRE.tests", "man/foo.1", "po/de.po", "m4/ax_pthread.m4",
    "configure", "configure.ac", "Makefile.in", "src/Makefile.am", "install-sh",
    "*install-sh", "ltmain.sh", "config.guess", "aclocal.m4", "README", "ChangeLog.old",
    "NEWS", "COPYING.LGPLv2.1", "INSTALL.generic", "CMakeLists.txt", "build-aux/compile",
    "win32/Makefile.msc", "amiga/Makefile.pup", ".github/workflows/ci.yml", "msvcc.sh",
    "make_sunver.pl", "external/perl/Text-Template-1.56/*", "lib/uuid/*.3.in",
])
def test_unshipped_paragraphs_add_nothing(pattern: str) -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: MIT",
                 f"Files: {pattern}\nCopyright: y\nLicense: GPL-3+"),
            [LIB, "usr/share/foo/data.txt"], [LIB])
    assert uses(r)[pattern] == ("unshipped", "GPL-3.0-or-later", ())
    assert r.expression == "MIT"


@pytest.mark.parametrize(("pattern", "elf", "kind"), [
    ("src/foo.c", True, "compiled"), ("src/foo.h", True, "compiled"),
    ("lib/x.cc", True, "compiled"), ("arch/x86/sysv.S", True, "compiled"),
    ("rpc/crypt.x", True, "compiled"), ("Modules/_json/*", True, "compiled"),
    ("src/*.c", True, "compiled"), ("lib/dictBuilder/divsufsort.*", True, "compiled"),
    ("lib/ext2fs/tdb*", True, "compiled"),
    ("src/foo.c", False, "compiled"), ("Modules/_json/*", False, "all"),
    ("licenses/GPL-*", False, "all"), ("mozilla/certdata.txt", True, "all"),
    ("Lib/turtle.py", True, "all"), ("data/README.fonts", True, "unshipped"),
])
def test_what_an_unmatched_glob_names(pattern: str, elf: bool, kind: str) -> None:
    objects = [LIB] if elf else []
    shipped = [*objects, "usr/share/foo/data"]
    r = run(dep5("Files: *\nCopyright: x\nLicense: MIT",
                 f"Files: {pattern}\nCopyright: y\nLicense: ISC"), shipped, objects)
    how, _, files = uses(r)[pattern]
    assert how == kind
    assert files == {"compiled": tuple(objects), "all": tuple(shipped), "unshipped": ()}[kind]
    # Files: * covers the library definitely: a compiled ISC paragraph is only possible.
    assert r.expression == ("ISC AND MIT" if kind == "all" else "MIT")
    assert r.possible == (("ISC",) if kind == "compiled" and files else ())
    if kind == "all":
        assert any("counted for the whole package" in n for n in r.notes)


def test_a_directory_glob_in_a_package_without_elf_is_counted() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: MIT",
                 "Files: tirpc/*\nCopyright: y\nLicense: BSD-3-clause"), ["etc/netconfig"])
    assert uses(r)["tirpc/*"][0] == "all"
    assert r.expression == "BSD-3-Clause AND MIT"


def test_a_paragraph_naming_sources_and_data_without_elf_is_counted() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: GPL-2+",
                 "Files: mozilla/certdata.txt mozilla/nssckbi.h\nCopyright: y\n"
                 "License: MPL-2.0"),
            ["usr/share/ca-certificates/mozilla/A.crt", "usr/sbin/update-ca-certificates"])
    assert uses(r)["mozilla/certdata.txt mozilla/nssckbi.h"][0] == "all"
    assert r.expression == "GPL-2.0-or-later AND MPL-2.0"


def test_expression_ands_distinct_uses_and_keeps_or() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: BSD-3-clause or GPL-2",
                 "Files: lib/dictBuilder/divsufsort.*\nCopyright: y\nLicense: Expat",
                 "Files: zlibWrapper/gz*.c\nCopyright: z\nLicense: zlib",
                 "Files: contrib/*\nCopyright: z\nLicense: GPL-2 or BSD-3-clause"),
            [LIB, LIB_LINK], [LIB])
    # Files: * covers the library; the compiled paragraphs are possible, less what the
    # definite expression already names (contrib/*'s BSD-3-Clause OR GPL-2.0-only).
    assert r.expression == "BSD-3-Clause OR GPL-2.0-only"
    assert r.ids == ("BSD-3-Clause", "GPL-2.0-only")
    assert r.possible == ("MIT", "Zlib")
    # Without Files: * nothing definite covers the library: the compiled uses count, ANDed
    # once each, the OR kept.
    alone = run(dep5("Files: lib/dictBuilder/divsufsort.*\nCopyright: y\nLicense: Expat",
                     "Files: zlibWrapper/gz*.c\nCopyright: z\nLicense: zlib",
                     "Files: contrib/*\nCopyright: z\nLicense: GPL-2 or BSD-3-clause",
                     "Files: src/*.c\nCopyright: w\nLicense: BSD-3-clause or GPL-2"),
                [LIB, LIB_LINK], [LIB])
    assert alone.expression == "(BSD-3-Clause OR GPL-2.0-only) AND MIT AND Zlib"
    assert alone.ids == ("BSD-3-Clause", "GPL-2.0-only", "MIT", "Zlib")
    assert alone.possible == ()


def test_exceptions_and_refs_are_in_ids() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: GPL-3+ with GCC-exception-3.1",
                 "Files: src/a.c\nCopyright: y\nLicense: GPL-2+ with OpenSSL exception"),
            [LIB], [LIB])
    # src/a.c is compiled, and Files: * covers the library: its ids are possible.
    assert r.expression == "GPL-3.0-or-later WITH GCC-exception-3.1"
    assert r.ids == ("GCC-exception-3.1", "GPL-3.0-or-later")
    assert r.possible == ("GPL-2.0-or-later", "LicenseRef-OpenSSL-exception")
    # The same paragraph matched to the library (by its name) is definite: all in ids.
    m = run(dep5("Files: *\nCopyright: x\nLicense: GPL-3+ with GCC-exception-3.1",
                 "Files: libfoo/*\nCopyright: y\nLicense: GPL-2+ with OpenSSL exception"),
            [LIB, "usr/bin/foo"], [LIB])
    assert m.expression == ("GPL-2.0-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1 "
                            "AND LicenseRef-OpenSSL-exception")
    assert m.ids == ("GCC-exception-3.1", "GPL-2.0-or-later", "GPL-3.0-or-later",
                     "LicenseRef-OpenSSL-exception")
    assert m.possible == ()


def test_nothing_attributable_counts_every_paragraph_not_unshipped() -> None:
    r = run(dep5("Files: src/*.c\nCopyright: x\nLicense: MIT",
                 "Files: debian/*\nCopyright: y\nLicense: GPL-2+"), ["usr/share/foo/a.dat"])
    assert r.expression == "MIT"
    assert any("no paragraph could be attributed" in n for n in r.notes)
    none = run(dep5("Files: debian/*\nCopyright: y\nLicense: GPL-2+"), ["usr/share/foo"])
    assert none.expression == "LicenseRef-unknown"
    assert any("no paragraph covers" in n for n in none.notes)


def test_a_package_shipping_only_its_copyright_still_gets_a_licence() -> None:
    r = run(dep5("Files: *\nCopyright: x\nLicense: GPL-2+"), [DOC])
    assert r.expression == "GPL-2.0-or-later"
    assert any("nothing outside usr/share/doc/" in n for n in r.notes)
    prose = run(GPL2_PLUS, [DOC])
    assert prose.expression == "GPL-2.0-or-later" and not prose.machine_readable


def test_paths_are_normalised_and_results_deterministic() -> None:
    text = dep5("Files: *\nCopyright: x\nLicense: MIT",
                "Files: Lib/json/*\nCopyright: y\nLicense: ISC")
    a = run(text, ["./usr/lib/python3/json/a.py", "/usr/bin/x"])
    b = run(text, ["usr/bin/x", "usr/lib/python3/json/a.py"])
    assert a == b
    assert uses(a)["Lib/json/*"][2] == ("usr/lib/python3/json/a.py",)


@pytest.mark.skipif(_LICENSING is None, reason="spdx-tools (license_expression) not installed")
def test_every_identifier_the_module_can_produce_is_on_the_spdx_lists() -> None:
    from composer.debian import copyright as module

    produced = {*module._SPDX_IDS, *module._EXCEPTIONS.values(), *module._ALIASES.values()}
    for family, versions in module._GNU_VERSIONS.items():
        for v in versions:
            v = v if "." in v else v + ".0"
            for tail in ("only", "or-later"):
                produced.add(f"{family.upper()}-{v}-{tail}")
                if family == "gfdl":
                    produced.add(f"GFDL-{v}-no-invariants-{tail}")
    bad = sorted(i for i in produced if i not in _KNOWN and not IDSTRING.fullmatch(i))
    assert not bad


@pytest.mark.parametrize("text", [
    "Format: x", "Format: https://spec.example/copyright-format/1.0/\n\nLicense:",
    dep5("Files:\nCopyright:\nLicense:"), dep5("Files: *\nLicense: (GPL-2+ or"),
    dep5("Files: *\nLicense: with"), dep5("Files: *\nLicense: GPL-2+ with"),
    dep5("Files: *\nLicense: , and or"), dep5("Files: *\nLicense: +"),
    "\x00\x01 binary \udcff junk", "\n\n\n", " continuation first\nField: x",
])
def test_badly_written_files_never_fail(text: str) -> None:
    r = run(text, ["usr/bin/x"], ["usr/bin/x"])
    assert r.expression and r.ids


def test_a_licence_nested_too_deep_is_prose_not_a_recursion() -> None:
    assert spdx("(" * 16 + "GPL-2+ or MIT" + ")" * 16) == "GPL-2.0-or-later OR MIT"
    c = parse(dep5("Files: *\nCopyright: x\nLicense: " + "(" * 400 + "MIT"), "w")
    assert c.files[0].detected and c.files[0].expression == "LicenseRef-unknown"
    assert valid(spdx("(" * 400 + "MIT")) == "LicenseRef-MIT"


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("*" * 40 + "x", "usr/lib/" + "a" * 60 + "x", True),
    ("*" * 40 + "x", "usr/lib/" + "a" * 60, False),
    ("*a" * 30 + "x", "usr/lib/" + "a" * 60 + "x", True),
    ("*a" * 30 + "x", "usr/lib/" + "a" * 60, False),
    ("*a" * 30 + "x", "usr/lib/" + "a" * 29 + "x", False),
    ("a*/" * 20 + "*.c", "ab/" * 20 + "x.c", True),
    ("a*/" * 20 + "*.c", "ab/" * 19 + "x.c", False),
])
def test_globs_with_many_stars_match_without_backtracking(
    pattern: str, path: str, matches: bool
) -> None:
    # A regex with a ".*" per star tried every way of placing them: hours for these. (The
    # bound is far above the milliseconds a linear match takes, so a busy machine passes.)
    start = time.monotonic()
    r = run(dep5("Files: *\nCopyright: x\nLicense: MIT",
                 f"Files: {pattern}\nCopyright: y\nLicense: ISC"), [path])
    assert (uses(r)[pattern][0] == "matched") is matches
    assert time.monotonic() - start < 10.0

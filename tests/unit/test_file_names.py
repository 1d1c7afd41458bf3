"""R5.1/R6.1: a part's file name is kept as the sender wrote it, or refused — never one
that reads as another name (found in review: "racun\\u202efdp.exe" showed as
"racunexe.pdf" in a browser and as "racunfdp.exe" on the PDF receipt)."""

from __future__ import annotations

import pytest

from server.services.submission_metadata import file_name_refused


@pytest.mark.parametrize(
    "name",
    [
        "sodba.pdf",
        "Čestitka ŽŠČ ćđ.pdf",
        "Ελένη Иванова 李.pdf",
        "क्\u200dष.pdf",  # ZERO WIDTH JOINER shapes the script
        "می\u200cخواهم.pdf",  # ZERO WIDTH NON-JOINER, Persian
        "👩\u200d⚖️ sodnica.pdf",  # an emoji sequence
        'quotes "and" back\\slash.pdf',
    ],
)
def test_r5_1_names_in_any_script_are_kept(name: str) -> None:
    assert not file_name_refused(name)


@pytest.mark.parametrize(
    "name",
    [
        "a\r\nb.pdf",
        "a\x00b.pdf",
        "a\x85b.pdf",
        "racun\u202efdp.exe",  # RIGHT-TO-LEFT OVERRIDE
        "a\u2066b\u2069.pdf",  # LEFT-TO-RIGHT ISOLATE … POP
        "sod\u200bba.pdf",  # ZERO WIDTH SPACE
        "\ufeffsodba.pdf",  # BYTE ORDER MARK
        "so\u00adba.pdf",  # SOFT HYPHEN
        "a\u2028b.pdf",  # LINE SEPARATOR
        "a\u2029b.pdf",  # PARAGRAPH SEPARATOR
        "a\ufffeb.pdf",
    ],
)
def test_r5_1_names_that_read_as_another_are_refused(name: str) -> None:
    assert file_name_refused(name)

"""The part names read from Content-Disposition (server.http.api.disposition) are always
the ones aiohttp's own parser gives, whether the fast path or the parser answers."""

from __future__ import annotations

import warnings

import pytest
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from server.http.api import disposition
from server.http.api.disposition import part_names

HEADERS = [
    'form-data; name="file"; filename="doc.pdf"',
    'form-data; name="metadata"',
    'form-data; name="file"; filename="odločba št. 7.pdf"',
    'form-data; name="file"; filename="a b (1).txt"',
    'form-data; name="file"; filename="/etc/passwd"',
    'form-data; name="file"; filename="\\\\server\\share.txt"',
    'form-data; name="file"; filename="a\\"b.txt"',
    'form-data; name="file"; filename="a;b.txt"',
    'form-data; name="file"; filename="a;b;c.txt"',
    'form-data; name="file"; filename=""',
    'form-data; name=""',
    "form-data; name=file; filename=plain.txt",
    "form-data; name=\"file\"; filename*=UTF-8''odlo%C4%8Dba.pdf",
    'form-data; name="file"; filename="x.txt"; filename*=UTF-8\'\'y.txt',
    'form-data; name="file"; filename*0="a"; filename*1="b.txt"',
    'Form-Data; NAME="file"; FILENAME="upper.txt"',
    'form-data;name="file";filename="tight.txt"',
    'form-data; name="file"; filename="trailing.txt" ',
    'form-data; name="file"; filename="x.txt"; name="again"',
    'form-data; name="file"; filename="x.txt";',
    'form-data; name="fi"le"; filename="x.txt"',
    'form-data; name="file"; filename="tab\there.txt"',
    'attachment; name="file"; filename="x.txt"',
    "form-data",
    "",
]


def aiohttp_names(header: str | None) -> tuple[str | None, str | None]:
    _, params = parse_content_disposition(header)
    return content_disposition_filename(params, "name"), content_disposition_filename(
        params, "filename"
    )


@pytest.mark.parametrize("header", [*HEADERS, None])
def test_same_answer_as_aiohttp(header: str | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aiohttp warns about the malformed ones
        assert part_names(header) == aiohttp_names(header)


def test_what_a_client_library_writes_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(header: str | None) -> object:
        raise AssertionError(f"parsed: {header}")

    monkeypatch.setattr(disposition, "parse_content_disposition", refuse)
    assert part_names('form-data; name="file"; filename="odločba.pdf"') == ("file", "odločba.pdf")
    assert part_names('form-data; name="metadata"') == ("metadata", None)
    with pytest.raises(AssertionError):
        part_names('form-data; name="file"; filename="/etc/passwd"')

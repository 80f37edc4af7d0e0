"""The binary and markup formats: PDF (pypdf), DOCX (python-docx), HTML (beautifulsoup4 over lxml).

Each reader takes the file's bytes (already size-checked by :func:`ragops.ingest.formats.convert_file`) and
returns one :class:`~ragops.ingest.formats.Doc`, or raises a
:class:`~ragops.ingest.formats.ConversionError` whose status tells a damaged file (``corrupt``) from a locked
one (``encrypted``) and from a scan without a text layer (``no_text``): they need different fixes.

PDF text is cleaned of what typesetting adds: a running head or foot (a line, digits aside, that is the first
or last of most pages: a journal's name, "Page 3 of 10", a bare page number) is dropped, and a word broken
at a line end ("infor-" / "mation") is joined, its hyphen kept where the document writes the word with one
elsewhere ("state-of-the-art"), where the first part is already a compound, or where the second part starts
with a capital or a digit. DOCX footnotes and endnotes are text too: they follow the body, under a "Notes"
section; so is a text box (a call-out, a sidebar), read after the paragraph it is anchored in, and a table cell
is read whole (its paragraphs, their text boxes, a table nested in it); a DOCX's page headers and footers are
page furniture and are left out, like an HTML page's, and so are reviewers' comments.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

from ragops.ingest.formats import ConversionError, Doc, TextBuilder, check_not_binary, decode

# An Office document encrypted with a password is an OLE compound file holding an "EncryptionInfo" stream,
# not a zip; an OLE file without one is most likely an old binary .doc renamed.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")


def read_pdf(data: bytes, path: Path) -> Doc:
    """Page by page, one section a page. Encrypted with an empty user password (an "owner password" only,
    which restricts printing or copying) still opens; a real password does not."""
    import pypdf
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    if b"%PDF-" not in data[:1024]:
        raise ConversionError("corrupt", "not a PDF (no %PDF- header)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ConversionError("encrypted", "PDF is encrypted (password required)")
        pages = reader.pages
        title = _pdf_title(reader)
        out = TextBuilder()
        for number, text in enumerate(clean_pages([page.extract_text() or "" for page in pages]), 1):
            out.section(page=number)
            for paragraph in re.split(r"\n\s*\n", text):
                out.add(paragraph)
        count = len(pages)
    except FileNotDecryptedError:
        raise ConversionError("encrypted", "PDF is encrypted (password required)") from None
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError,
            OverflowError, AssertionError, ZeroDivisionError) as exc:  # what pypdf raises on damaged files
        raise ConversionError("corrupt", f"PDF cannot be read ({type(exc).__name__}: {exc})") from None
    if not out.parts:
        raise ConversionError("no_text", f"PDF has no text layer ({count} page{'s' * (count != 1)}; a scan? "
                                         "run OCR on it first)")
    return out.doc(path, title, pages=count)


_FURNITURE_LINES = 2  # how many lines at each end of a page can be a running head or foot
_LETTERS = r"[^\W\d_]+"
# a word broken at a line end: (the part before, possibly a compound) "-" newline (the part after)
_BROKEN = re.compile(rf"((?:{_LETTERS}-)*{_LETTERS})-[ \t]*\n[ \t]*(\w+)")
_WORD = re.compile(rf"{_LETTERS}(?:-{_LETTERS})*")


def clean_pages(pages: list[str]) -> list[str]:
    """A PDF's page texts without running heads and feet, and with broken words joined (module docstring)."""
    pages = strip_running_lines(pages)
    vocabulary = {w.lower() for w in _WORD.findall(_BROKEN.sub(" ", "\n".join(pages)))}

    def join(m: re.Match) -> str:
        head, tail = m.group(1), m.group(2)
        keep = ("-" in head or not tail[0].islower() or
                (f"{head}-{tail}".lower() in vocabulary and f"{head}{tail}".lower() not in vocabulary))
        return f"{head}-{tail}" if keep else f"{head}{tail}"

    return [_BROKEN.sub(join, page) for page in pages]


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def strip_running_lines(pages: list[str]) -> list[str]:
    """Drop the lines that, digits aside, are among the first or last two of at least half the pages (and at
    least 3): running heads and feet, page numbers. A document of one or two pages keeps every line."""
    if len(pages) < 3:
        return pages
    raw = [page.split("\n") for page in pages]
    filled = [[i for i, line in enumerate(lines) if line.strip()] for lines in raw]  # non-blank lines' indices
    seen: dict[str, int] = {}
    for lines, idx in zip(raw, filled, strict=True):
        for key in {_line_key(lines[i]) for i in idx[:_FURNITURE_LINES] + idx[-_FURNITURE_LINES:]}:
            seen[key] = seen.get(key, 0) + 1
    furniture = {key for key, n in seen.items() if n >= max(3, len(pages) / 2)}
    out = []
    for lines, idx in zip(raw, filled, strict=True):
        top = 0
        while top < min(_FURNITURE_LINES, len(idx)) and _line_key(lines[idx[top]]) in furniture:
            top += 1
        bottom = len(idx)
        while bottom > max(top, len(idx) - _FURNITURE_LINES) and _line_key(lines[idx[bottom - 1]]) in furniture:
            bottom -= 1
        drop = set(idx[:top] + idx[bottom:])
        out.append("\n".join(line for i, line in enumerate(lines) if i not in drop))
    return out


def _pdf_title(reader) -> str | None:
    try:
        meta = reader.metadata
        return str(meta.title) if meta is not None and meta.title else None
    except Exception:  # noqa: BLE001 - a damaged /Info dictionary costs the title, not the text
        return None


def read_docx(data: bytes, path: Path) -> Doc:
    """Body paragraphs and tables in document order; paragraph styles "Heading N" and "Title" are headings."""
    import zipfile

    import docx
    from docx.opc.exceptions import OpcError
    from docx.table import Table

    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTION_INFO in data:
            raise ConversionError("encrypted", "DOCX is encrypted (password required)")
        raise ConversionError("corrupt", "not a DOCX (an OLE file: an old .doc renamed? save it as .docx)")
    try:
        document = docx.Document(io.BytesIO(data))
        out = TextBuilder()
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    out.add(" | ".join(_unique_cells(row)))
                continue
            style = block.style.name if block.style is not None else ""
            if re.fullmatch(r"(Heading \d|Title)", style or ""):
                out.heading(block.text)
            else:
                out.add(block.text)
            for text in _text_boxes(block._p):
                out.add(text)
        notes = _docx_notes(document)
        if notes:
            out.section(heading="Notes")
            for note in notes:
                out.add(note)
        title = document.core_properties.title
    except (OpcError, zipfile.BadZipFile, KeyError, ValueError, AttributeError, OSError) as exc:
        raise ConversionError("corrupt", f"DOCX cannot be read ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # lxml's XMLSyntaxError and kin: a damaged part inside the zip
        if type(exc).__module__.startswith("lxml"):
            raise ConversionError("corrupt", f"DOCX cannot be read ({type(exc).__name__}: {exc})") from None
        raise
    return out.doc(path, title)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_NOTE_PARTS = ("/footnotes", "/endnotes")


def _para_text(para) -> str:
    return "".join(t.text or "" for t in para.iter(_W + "t"))


def _text_boxes(paragraph) -> list[str]:
    """The paragraphs of the text boxes anchored in ``paragraph`` (a w:p element), in document order. Word writes
    a box twice, as a DrawingML shape and as a VML fallback for older readers: the fallback copy is skipped."""
    boxes = (box for box in paragraph.iter(_W + "txbxContent")
             if not any(a.tag in (_MC_FALLBACK, _W + "txbxContent") for a in box.iterancestors()))
    return [text for box in boxes for text in map(_para_text, box.iterchildren(_W + "p")) if text.strip()]


def _docx_notes(document) -> list[str]:
    """The footnotes, then the endnotes, one paragraph each (Word's separator notes left out)."""
    from lxml import etree

    notes: list[str] = []
    rels = sorted((r for r in document.part.rels.values() if not r.is_external and r.reltype.endswith(_NOTE_PARTS)),
                  key=lambda r: _NOTE_PARTS.index(r.reltype[r.reltype.rindex("/"):]))
    for rel in rels:
        root = etree.fromstring(rel.target_part.blob)
        for note in root:
            if note.tag not in (_W + "footnote", _W + "endnote") or note.get(_W + "type") not in (None, "normal"):
                continue
            notes.append(" ".join(map(_para_text, note.iter(_W + "p"))))
    return notes


def _unique_cells(row) -> list[str]:
    """A merged cell appears once per grid column it spans in ``row.cells``: keep it once."""
    cells, last = [], None
    for cell in row.cells:
        if cell._tc is not last:
            cells.append(_cell_text(cell))
        last = cell._tc
    return cells


def _cell_text(cell) -> str:
    """Everything a cell holds, in order: its paragraphs with the text boxes anchored in them, and a table nested
    in it row by row (python-docx's ``cell.text`` has the paragraphs alone)."""
    from docx.table import Table

    lines: list[str] = []
    for block in cell.iter_inner_content():
        if isinstance(block, Table):
            lines.extend(" | ".join(_unique_cells(row)) for row in block.rows)
        else:
            lines.append(block.text)
            lines.extend(_text_boxes(block._p))
    return "\n".join(lines)


_DROP = ["script", "style", "noscript", "template", "nav", "head"]
_PAGE_CHROME = ["header", "footer"]  # a site's banner and footer; inside <article> or <main> they are content
_HEADINGS = {f"h{i}" for i in range(1, 7)}
_BLOCKS = _HEADINGS | {"p", "div", "section", "article", "main", "aside", "li", "ul", "ol", "dl", "dt", "dd",
                       "table", "tr", "td", "th", "pre", "blockquote", "figure", "figcaption", "caption", "address",
                       "details", "summary", "form", "fieldset", "body", "html", "header", "footer", "hr"}


def read_html(data: bytes, path: Path) -> Doc:
    """Text by block element; h1-h6 are headings; scripts, styles, navigation and page header/footer go."""
    from bs4 import BeautifulSoup
    from bs4.dammit import EncodingDetector
    from bs4.element import NavigableString, PreformattedString

    check_not_binary(data)
    # A declared charset (<meta charset>) is the author's word: bs4 honours it. Otherwise decode as text.
    markup = data if EncodingDetector.find_declared_encoding(data, is_html=True) else decode(data)
    soup = BeautifulSoup(markup, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title is not None else None
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(_PAGE_CHROME):
        if tag.find_parent(("article", "main")) is None:
            tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    out, buf, block = TextBuilder(), [], None
    for node in soup.descendants:
        if not isinstance(node, NavigableString) or isinstance(node, PreformattedString):
            continue  # tags, comments, doctype, CDATA
        owner = _block_of(node)
        if owner is not block:
            _emit(out, buf, block)
            buf, block = [], owner
        buf.append(str(node))
    _emit(out, buf, block)
    return out.doc(path, title)


def _block_of(node):
    """The nearest block element holding a text node: a change of it starts a new paragraph."""
    parent = node.parent
    while parent is not None and parent.name not in _BLOCKS:
        parent = parent.parent
    return parent


def _emit(out: TextBuilder, buf: list[str], block) -> None:
    if block is not None and block.name in _HEADINGS:
        out.heading("".join(buf))
    else:
        out.add("".join(buf))


READERS: dict[str, Callable[[bytes, Path], Doc]] = {".pdf": read_pdf, ".docx": read_docx, ".html": read_html,
                                                    ".htm": read_html}

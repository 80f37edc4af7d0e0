"""One file -> its documents: plain text that remembers where each part comes from (issue 16).

``convert_file(path)`` returns the documents of one file (one, or one per row of a ``.jsonl``) or raises
:class:`ConversionError`, whose ``status`` says what kind of failure it is and ``reason`` says it in one line.
Text is whitespace-normalised, paragraphs joined by a blank line; each :class:`Section` records where a page
(PDF) or a heading (DOCX, HTML, Markdown, reStructuredText) starts, so a citation can say "page 2" or
"under Installation". The title comes from the file's metadata (PDF ``/Title``, DOCX core title, HTML
``<title>``, Markdown front matter), else its first heading, else the file name.

Libraries, each maintained and light (no torch, no network): pypdf (pure Python, page by page, handles
encryption), python-docx (paragraph styles give the headings), beautifulsoup4 over lxml (tolerant of broken
HTML), charset-normalizer (legacy encodings). Markdown, reStructuredText and plain text need no library.
The PDF, DOCX and HTML readers live in :mod:`ragops.ingest.readers`.

Text files are read as UTF-8 (a BOM is honoured); failing that as Windows-1252 when charset-normalizer finds
it about as plausible as its own best guess (short Western text is otherwise often taken for cp1250 or
cp437, and "café" would come out as "cafĂ©"); else as charset-normalizer's best guess. NUL bytes or a high
share of control characters under a text extension are ``binary``, not text.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from pathlib import Path

SUPPORTED = {".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt", ".text", ".rst", ".jsonl"}
STATUSES = ("empty", "no_text", "encrypted", "corrupt", "binary", "too_large", "timeout", "unsupported", "error")
# Bytes that do not occur in text (tab, newline, form feed and carriage return do).
_CONTROL = bytes([*range(0, 9), 11, *range(14, 32), 127])
_MAX_CONTROL_SHARE = 0.05
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class Section:
    """Where a part of ``Doc.text`` comes from, so a citation can say where."""

    start: int  # character offset into Doc.text where this section starts
    page: int | None  # 1-based page number (PDF), else None
    heading: str | None  # nearest heading (DOCX/HTML/Markdown), else None


@dataclass(frozen=True)
class Doc:
    key: str  # "" for a file that is one document; for .jsonl the row's id
    title: str
    text: str
    sections: tuple[Section, ...] = ()
    pages: int | None = None


class ConversionError(Exception):
    """A file that cannot become text: ``status`` (one of :data:`STATUSES`) and a one-line ``reason``.
    Picklable (it crosses from a worker process): its ``args`` are exactly the constructor's arguments."""

    def __init__(self, status: str, reason: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown conversion status {status!r}; valid: {', '.join(STATUSES)}")
        super().__init__(status, reason)
        self.status = status
        self.reason = " ".join(str(reason).split())

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


def convert_file(path: Path, max_bytes: int = 50 * 2**20) -> list[Doc]:
    """The documents of one file; raises :class:`ConversionError`. The size is checked before reading, so a
    huge file costs a ``stat``, not its bytes in memory."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise ConversionError("unsupported", f"no converter for {suffix or 'a file without an extension'}")
    try:
        size = path.stat().st_size
        if size == 0:
            raise ConversionError("empty", "the file is empty (0 bytes)")
        if size > max_bytes:
            raise ConversionError("too_large", f"the file is {_mb(size)}, over the limit of {_mb(max_bytes)}")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since the stat
    except OSError as exc:
        raise ConversionError("error", f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ConversionError("too_large", f"the file grew past the limit of {_mb(max_bytes)} while being read")
    if suffix in (".pdf", ".docx", ".html", ".htm"):
        from ragops.ingest import readers

        return [readers.READERS[suffix](data, path)]
    if suffix == ".jsonl":
        return _jsonl(data, path)
    text = decode(data)
    if suffix in (".md", ".markdown"):
        return [_lines(text, path, markdown=True)]
    return [_lines(text, path, rst=suffix == ".rst")]


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n} bytes"


class TextBuilder:
    """Paragraphs -> ``Doc.text`` and its sections, the offsets kept exact as paragraphs are joined."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.sections: list[Section] = []
        self.first_heading: str | None = None

    def section(self, page: int | None = None, heading: str | None = None) -> None:
        """A section starts with the next paragraph (a later mark at the same offset replaces this one)."""
        start = self.size + (2 if self.parts else 0)
        if self.sections and self.sections[-1].start == start:
            self.sections.pop()
        self.sections.append(Section(start, page, heading))

    def heading(self, text: str, page: int | None = None) -> None:
        """A heading is a paragraph of the text too: it is what a search for the topic should hit."""
        text = clean(text)
        if text:
            self.first_heading = self.first_heading or text
            self.section(page, text)
            self.add(text)

    def add(self, paragraph: str) -> None:
        paragraph = clean(paragraph)
        if paragraph:
            self.size += (2 if self.parts else 0) + len(paragraph)
            self.parts.append(paragraph)

    def doc(self, path: Path, title: str | None = None, pages: int | None = None, key: str = "") -> Doc:
        """The document; no text at all is ``empty`` (a PDF's caller says ``no_text`` itself)."""
        text = "\n\n".join(self.parts)
        if not text:
            raise ConversionError("empty", "the file holds no text")
        title = clean(title or "") or self.first_heading or path.stem
        sections = tuple(s for s in self.sections if s.start < len(text))
        return Doc(key=key, title=title, text=text, sections=sections, pages=pages)


def clean(text: str) -> str:
    """One paragraph: runs of whitespace (newlines included) become one space; soft hyphens go."""
    return " ".join(text.replace("\u00ad", "").split())


def check_not_binary(data: bytes) -> None:
    """Binary junk under a text extension: NUL bytes, or more than 5% control characters (in the first 64 KB)."""
    sample = data[:65536]
    if b"\x00" in sample:
        raise ConversionError("binary", "binary data, not text (it contains NUL bytes)")
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    if controls > _MAX_CONTROL_SHARE * len(sample):
        raise ConversionError("binary", f"binary data, not text ({controls / len(sample):.0%} control characters)")


def decode(data: bytes) -> str:
    """Text from bytes: a BOM's encoding, else UTF-8, else Windows-1252 where plausible, else detected."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise ConversionError("corrupt", f"starts with a {encoding} byte-order mark but is not "
                                                 f"{encoding}") from None
    check_not_binary(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    western = charset_normalizer.from_bytes(data, cp_isolation=["cp1252"]).best()
    if western is not None and western.chaos <= (best.chaos if best is not None else 1.0) + 0.1:
        best = western
    if best is None:
        raise ConversionError("binary", "not text: neither UTF-8 nor any encoding charset-normalizer knows")
    return str(best)


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}[ \t]*$")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


def _lines(text: str, path: Path, markdown: bool = False, rst: bool = False) -> Doc:
    """Markdown (ATX ``#`` and setext headings, fenced code kept as text), reStructuredText (underlined and
    overlined titles) or plain text: paragraphs are separated by blank lines."""
    title = None
    if markdown:
        front = _FRONT_MATTER.match(text)
        if front:
            found = re.search(r"^title:[ \t]*(.+)$", front.group(1), re.MULTILINE)
            title = found.group(1).strip().strip("'\"") if found else None
            text = text[front.end():]
        text = _MD_LINK.sub(r"\1", _MD_IMAGE.sub(r"\1", _MD_COMMENT.sub("", text)))
    out, para, fence = TextBuilder(), [], None
    for line in text.splitlines():
        if fence is not None:  # inside fenced code: no headings, blank lines kept inside the block
            if line.strip().startswith(fence):
                out.add(" ".join(para))
                para, fence = [], None
            else:
                para.append(line)
            continue
        if markdown and (m := _FENCE.match(line)):
            out.add(" ".join(para))
            para, fence = [], m.group(1)[0] * 3
            continue
        if markdown and (m := _ATX.match(line)):
            out.add(" ".join(para))
            para = []
            out.heading(m.group(2) or "")
            continue
        underline = (_SETEXT if markdown else _RST_ADORNMENT if rst else None)
        if underline is not None and underline.match(line):
            if para:  # the paragraph above is a heading (else: a thematic break or an rst overline)
                out.heading(" ".join(para))
                para = []
            continue
        if line.strip():
            para.append(line)
        else:
            out.add(" ".join(para))
            para = []
    out.add(" ".join(para))
    return out.doc(path, title)


def _jsonl(data: bytes, path: Path) -> list[Doc]:
    """One document per row ``{"_id" or "id", "title"?, "text"}`` (BEIR's corpus rows, or your own)."""
    text = decode(data)
    docs: list[Doc] = []
    seen: dict[str, int] = {}
    # Split on newlines only: str.splitlines would also split on U+2028, which JSON allows inside strings.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad_row(path, number, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(row, dict):
            raise _bad_row(path, number, f"a row must be a JSON object, not {type(row).__name__}")
        key = row.get("_id", row.get("id"))
        if not isinstance(key, (str, int)) or isinstance(key, bool) or str(key).strip() == "":
            raise _bad_row(path, number, 'the row has no "_id" or "id" (a non-empty string or number)')
        key = str(key)
        if key in seen:
            raise _bad_row(path, number, f"id {key!r} repeats line {seen[key]}")
        seen[key] = number
        body, title = row.get("text", ""), row.get("title", "")
        if not isinstance(body, str) or not isinstance(title, str | None):
            raise _bad_row(path, number, '"text" and "title" must be strings')
        paragraphs = [clean(p) for p in re.split(r"\n\s*\n", body)]
        docs.append(Doc(key=key, title=clean(title or ""), text="\n\n".join(p for p in paragraphs if p)))
    if not docs:
        raise ConversionError("empty", "the file holds no rows")
    return docs


def _bad_row(path: Path, line: int, message: str) -> ConversionError:
    return ConversionError("corrupt", f"{path.name}:{line}: {message}")

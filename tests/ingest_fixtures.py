"""Real documents written by real writers (fpdf2, python-docx, plain HTML/Markdown/text) for the ingest
tests and bench/ingest_formats.py: the converters are tested on what those libraries produce, not on
hand-made bytes, except where the point is damage (a truncated PDF, junk under .txt)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

# A block of a document: ("h1".."h6" or "title", text) for a heading, ("p", text) for a paragraph.
Block = tuple[str, str]
WORDS = ("index retrieval embedding corpus query answer passage model cache stage pipeline vector token "
         "document chunk score rank judgment metric latency server worker folder manifest page heading "
         "section table claim evidence cell protein study result method sample").split()


def write_pdf(path: Path, pages: Sequence[str], title: str | None = None, owner_password: str | None = None,
              user_password: str | None = None) -> Path:
    """A PDF with a text layer, one string per page (blank lines separate paragraphs); encrypted when an
    owner password is given (readable without one unless a user password is given too)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    if title:
        pdf.set_title(title)
    if owner_password:
        pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    for text in pages:
        pdf.add_page()
        for paragraph in text.split("\n\n"):
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(6)
    path.write_bytes(bytes(pdf.output()))
    return path


def write_image_pdf(path: Path, pages: int = 1) -> Path:
    """What a scanner makes, as far as text goes: pages with drawings and no text layer."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.rect(20, 20, 120, 80, style="F")
    path.write_bytes(bytes(pdf.output()))
    return path


def write_docx(path: Path, blocks: Sequence[Block], title: str | None = None,
               table: Sequence[Sequence[str]] = (), header: str | None = None,
               notes: dict[str, Sequence[str]] | None = None) -> Path:
    """A DOCX: headings with Word's built-in "Heading N" / "Title" styles, paragraphs, then a table; a page
    header; ``notes`` {"footnotes"/"endnotes": texts} as Word stores them (python-docx cannot write notes, so
    their parts are added to the package: the notes XML with Word's separator notes, its relationship and
    content type). A ("box", text) block is a text box anchored in the paragraph before it, written as Word
    writes one (python-docx cannot): a DrawingML shape with a VML copy for older readers, paragraphs split on
    blank lines."""
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    if header:
        document.sections[0].header.paragraphs[0].text = header
    for kind, text in blocks:
        if kind == "box":
            document.paragraphs[-1]._p.append(text_box_run(text))
        elif kind == "p":
            document.add_paragraph(text)
        else:
            document.add_heading(text, level=0 if kind == "title" else int(kind[1]))
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    if notes:
        _add_docx_notes(path, notes)
    return path


def text_box_run(text: str):
    """A w:r holding a text box as Word 2010+ saves it: mc:AlternateContent, a wps shape, a VML fallback."""
    from docx.oxml import parse_xml

    paras = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in text.split("\n\n"))
    body = f"<w:txbxContent>{paras}</w:txbxContent>"
    return parse_xml(
        '<w:r xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
        'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
        'xmlns:v="urn:schemas-microsoft-com:vml"><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing>'
        '<wp:anchor><a:graphic><a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape">'
        f'<wps:wsp><wps:txbx>{body}</wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing>'
        f'</mc:Choice><mc:Fallback><w:pict><v:shape><v:textbox>{body}</v:textbox></v:shape></w:pict></mc:Fallback>'
        '</mc:AlternateContent></w:r>'
    )


def _add_docx_notes(path: Path, notes: dict[str, Sequence[str]]) -> None:
    import zipfile

    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    rels, types = parts["word/_rels/document.xml.rels"].decode(), parts["[Content_Types].xml"].decode()
    for kind, texts in notes.items():  # kind: "footnotes" or "endnotes"
        tag = kind[:-1]
        body = "".join(f'<w:{tag} w:id="{i}"><w:p><w:r><w:t>{t}</w:t></w:r></w:p></w:{tag}>'
                       for i, t in enumerate(texts, 1))
        parts[f"word/{kind}.xml"] = (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:{kind} xmlns:w="{w}">'
            f'<w:{tag} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{tag}>'
            f'<w:{tag} w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p>'
            f'</w:{tag}>{body}</w:{kind}>').encode()
        rels = rels.replace("</Relationships>", f'<Relationship Id="rId{kind}" Target="{kind}.xml" Type="http://'
                            f'schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}"/></Relationships>')
        types = types.replace("</Types>", f'<Override PartName="/word/{kind}.xml" ContentType="application/vnd.'
                              f'openxmlformats-officedocument.wordprocessingml.{kind}+xml"/></Types>')
    parts["word/_rels/document.xml.rels"], parts["[Content_Types].xml"] = rels.encode(), types.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)


def write_html(path: Path, blocks: Sequence[Block], title: str | None = None, encoding: str = "utf-8") -> Path:
    """An HTML page with the chrome a converter must drop: script, style, nav, a site header and footer."""
    head = f"<title>{title}</title>" if title else ""
    body = "".join(f"<{'h1' if k == 'title' else k}>{t}</{'h1' if k == 'title' else k}>" for k, t in blocks)
    html = (f"<!DOCTYPE html><html><head>{head}<style>p {{ color: red }}</style></head><body>"
            "<header>Site banner</header><nav><a href='/'>Home</a> | <a href='/docs'>Docs</a></nav>"
            f"<main>{body}</main><script>var tracking = 1;</script><footer>Copyright footer</footer>"
            "</body></html>")
    path.write_bytes(html.encode(encoding))
    return path


def write_markdown(path: Path, blocks: Sequence[Block], setext: bool = False) -> Path:
    """Markdown with ``#`` headings (or setext underlines for h1/h2 when ``setext``) and a fenced code block
    whose ``# comment`` is not a heading."""
    lines = []
    for kind, text in blocks:
        if kind == "p":
            lines += [text, ""]
        elif setext and kind in ("title", "h1", "h2"):
            lines += [text, ("=" if kind in ("title", "h1") else "-") * len(text), ""]
        else:
            lines += ["#" * (1 if kind == "title" else int(kind[1])) + " " + text, ""]
    lines += ["```bash", "# not a heading", "pip install ragops", "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def sample_folder(folder: Path, n: int, paragraphs: int = 6, seed: int = 0) -> dict[str, list[Path]]:
    """``n`` documents of each format (a JSONL file of ``n`` rows for .jsonl) with ``paragraphs`` paragraphs
    of filler text under two headings each: the bench's corpus. Returns the files by format."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {k: [] for k in ("pdf", "docx", "html", "md", "txt", "jsonl")}
    for i in range(n):
        paras = [words(rng, 60) for _ in range(paragraphs)]
        half = len(paras) // 2
        blocks: list[Block] = [("h1", f"Part one of {i}"), *(("p", p) for p in paras[:half]),
                               ("h2", f"Part two of {i}"), *(("p", p) for p in paras[half:])]
        out["pdf"].append(write_pdf(folder / f"doc{i}.pdf", ["\n\n".join(paras[:half]), "\n\n".join(paras[half:])],
                                    title=f"Document {i}"))
        out["docx"].append(write_docx(folder / f"doc{i}.docx", blocks, title=f"Document {i}"))
        out["html"].append(write_html(folder / f"doc{i}.html", blocks, title=f"Document {i}"))
        out["md"].append(write_markdown(folder / f"doc{i}.md", blocks))
        out["txt"].append(write_text(folder / f"doc{i}.txt", "\n\n".join(paras)))
    rows = [{"_id": f"r{i}", "title": f"Row {i}", "text": " ".join(words(rng, 60) for _ in range(paragraphs))}
            for i in range(n)]
    out["jsonl"].append(write_jsonl(folder / "rows.jsonl", rows))
    return out

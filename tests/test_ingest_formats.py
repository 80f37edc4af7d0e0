"""Document converters and the conversion worker pool of `ragops ingest` (issue 16, items 1 and 6): every
format from files real writers made (title, pages, headings checked), every kind of bad input gets its status
while the other files of the same run convert, and no worker process outlives the run."""

from __future__ import annotations

import itertools
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ingest_fixtures import (
    text_box_run,
    write_docx,
    write_html,
    write_image_pdf,
    write_jsonl,
    write_markdown,
    write_pdf,
    write_text,
)

from ragops.errors import ConfigError
from ragops.ingest.formats import ConversionError, Doc, convert_file
from ragops.ingest.worker import CRASH_ENV, HANG_ENV, convert_all

BLOCKS = [("h1", "Installation"), ("p", "Install the tool with pip."), ("h2", "Upgrading"),
          ("p", "Run pip again with the upgrade flag.")]


def one(path: Path, **kw) -> Doc:
    docs = convert_file(path, **kw)
    assert len(docs) == 1 and docs[0].key == ""
    return docs[0]


def at(doc: Doc, heading: str) -> str:
    """The text from the section under ``heading`` on."""
    (section,) = [s for s in doc.sections if s.heading == heading]
    return doc.text[section.start:]


def status(path: Path, **kw) -> ConversionError:
    with pytest.raises(ConversionError) as info:
        convert_file(path, **kw)
    return info.value


def test_pdf_pages_title_and_where_each_page_starts(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "paper.pdf", ["A café on page one.\n\nIts second paragraph.",
                                             "The answer is on page two."], title="Field Notes")
    doc = one(pdf)
    assert doc.title == "Field Notes" and doc.pages == 2
    assert [s.page for s in doc.sections] == [1, 2] and doc.sections[0].start == 0
    assert doc.text[doc.sections[1].start:] == "The answer is on page two."
    assert "A café on page one." in doc.text[:doc.sections[1].start]
    assert "  " not in doc.text and "\n\n\n" not in doc.text
    assert one(write_pdf(tmp_path / "untitled.pdf", ["text"])).title == "untitled"  # no /Title: the file name


def test_pdf_encrypted_with_an_owner_password_only_still_reads(tmp_path: Path) -> None:
    assert "open to all" in one(write_pdf(tmp_path / "o.pdf", ["open to all"], owner_password="own")).text
    locked = status(write_pdf(tmp_path / "u.pdf", ["secret"], owner_password="own", user_password="usr"))
    assert (locked.status, locked.reason) == ("encrypted", "PDF is encrypted (password required)")


def test_pdf_running_heads_page_numbers_and_broken_words(tmp_path: Path) -> None:
    # fpdf2 breaks a line where the text has a newline: what a typesetter's hyphenation leaves in the text layer
    topics = {1: "Sampling", 2: "Retrieval", 3: "Ranking"}
    pages = [f"Journal of Tests, vol. 7\n{topics[n]}: the infor-\nmation on page {n} is state-of-the-\nart and the "
             f"re-\nuse of Anglo-\nSaxon labs' data, by a re-use policy, of COVID-\n19 data on "
             f"{topics[n].lower()}.\n{n}"
             for n in (1, 2, 3)]
    doc = one(write_pdf(tmp_path / "paper.pdf", pages))
    assert "Journal" not in doc.text and [s.page for s in doc.sections] == [1, 2, 3]
    page = doc.text[doc.sections[1].start:doc.sections[2].start].strip()
    assert page == ("Retrieval: the information on page 2 is state-of-the-art and the re-use of Anglo-Saxon labs' "
                    "data, by a re-use policy, of COVID-19 data on retrieval.")
    assert doc.text.endswith("COVID-19 data on ranking.")  # the last page number went too
    # two pages: too few to tell a running head from text, every line stays (a broken word is still joined)
    short = one(write_pdf(tmp_path / "short.pdf", ["Head\nbro-\nken\n1", "Head\ntwo\n2"]))
    assert short.text.split() == ["Head", "broken", "1", "Head", "two", "2"]


def test_docx_footnotes_endnotes_and_no_page_header(tmp_path: Path) -> None:
    doc = one(write_docx(tmp_path / "n.docx", BLOCKS, header="CONFIDENTIAL draft",
                         notes={"endnotes": ["An endnote."], "footnotes": ["First footnote.", "Second one."]}))
    assert "CONFIDENTIAL" not in doc.text
    assert at(doc, "Notes") == "First footnote.\n\nSecond one.\n\nAn endnote."
    assert "Notes" not in doc.text  # a section mark for citations, not a word of the text
    assert "Notes" not in [s.heading for s in one(write_docx(tmp_path / "plain.docx", BLOCKS)).sections]


def test_docx_text_boxes_follow_their_paragraph_once(tmp_path: Path) -> None:
    blocks = [*BLOCKS[:2], ("box", "Tip: pin the version.\n\nSee the release notes."), *BLOCKS[2:]]
    doc = one(write_docx(tmp_path / "boxes.docx", blocks))
    # Word keeps a second, VML copy of every box for older readers: its text is read once, after its anchor
    assert doc.text == ("Installation\n\nInstall the tool with pip.\n\nTip: pin the version.\n\nSee the release notes."
                        "\n\nUpgrading\n\nRun pip again with the upgrade flag.")
    assert [s.heading for s in doc.sections] == ["Installation", "Upgrading"]


def test_docx_headings_title_and_tables(tmp_path: Path) -> None:
    doc = one(write_docx(tmp_path / "guide.docx", BLOCKS, title="Admin Guide", table=[["Port", "8000"]]))
    assert doc.title == "Admin Guide" and doc.pages is None
    assert [s.heading for s in doc.sections] == ["Installation", "Upgrading"]
    assert at(doc, "Upgrading").startswith("Upgrading\n\nRun pip again") and doc.text.endswith("Port | 8000")
    assert one(write_docx(tmp_path / "t.docx", [("title", "Style Title"), *BLOCKS])).title == "Style Title"


def test_docx_table_cells_are_read_whole(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Ports by service.")
    grid = document.add_table(rows=1, cols=2)
    grid.cell(0, 0).text = "API"
    outer = grid.cell(0, 1)
    outer.text = "Listens on:"
    inner = outer.add_table(rows=2, cols=2)
    for r, row in enumerate([["http", "8000"], ["metrics", "9100"]]):
        for c, value in enumerate(row):
            inner.cell(r, c).text = value
    outer.add_paragraph("Behind the proxy.")._p.append(text_box_run("Never expose 9100."))
    document.save(str(tmp_path / "cells.docx"))
    doc = one(tmp_path / "cells.docx")
    # python-docx's cell.text has the cell's paragraphs only: the nested table and the box were lost. A table row
    # is one block of text, so the lines inside a cell join with spaces.
    assert doc.text == ("Ports by service.\n\nAPI | Listens on: http | 8000 metrics | 9100 Behind the proxy. "
                        "Never expose 9100.")


def test_html_drops_page_chrome_and_keeps_headings(tmp_path: Path) -> None:
    doc = one(write_html(tmp_path / "page.html", BLOCKS, title="Docs home"))
    assert doc.title == "Docs home" and [s.heading for s in doc.sections] == ["Installation", "Upgrading"]
    for chrome in ("Site banner", "Home", "Copyright", "tracking", "color"):
        assert chrome not in doc.text
    assert doc.text == ("Installation\n\nInstall the tool with pip.\n\nUpgrading\n\n"
                        "Run pip again with the upgrade flag.")
    article = tmp_path / "a.htm"
    article.write_text("<body><article><header><h1>Own <b>heading</b></h1></header><div>one<p>two</p>three"
                       "<br>four</div><table><tr><th>Port</th><td>8000</td></tr></table></article></body>")
    doc = one(article)
    assert doc.title == "Own heading" and doc.text == "Own heading\n\none\n\ntwo\n\nthree four\n\nPort\n\n8000"


def test_html_in_legacy_encodings(tmp_path: Path) -> None:
    declared = tmp_path / "declared.html"
    declared.write_bytes('<meta charset="windows-1252"><p>Crème brûlée – 5€</p>'.encode("cp1252"))
    assert one(declared).text == "Crème brûlée – 5€"
    plain = write_html(tmp_path / "plain.html", [("p", "Le café est très bon.")], encoding="cp1252")
    assert one(plain).text == "Le café est très bon."


@pytest.mark.parametrize("setext", [False, True])
def test_markdown_headings(tmp_path: Path, setext: bool) -> None:
    doc = one(write_markdown(tmp_path / "setup.md", BLOCKS, setext=setext))
    assert doc.title == "Installation" and [s.heading for s in doc.sections] == ["Installation", "Upgrading"]
    assert at(doc, "Upgrading").startswith("Upgrading\n\nRun pip again")
    assert "# not a heading pip install ragops" in doc.text  # fenced code is text, its "#" no heading


def test_markdown_front_matter_links_and_rst(tmp_path: Path) -> None:
    md = write_text(tmp_path / "n.markdown", "---\ntitle: 'From front matter'\ntags: [a]\n---\n"
                                             "See [the docs](https://x.org/d) and ![a chart](c.png).\n\n---\n\nEnd.\n")
    doc = one(md)
    assert doc.title == "From front matter" and doc.text == "See the docs and a chart.\n\nEnd." and not doc.sections
    rst = one(write_text(tmp_path / "r.rst", "=====\nTitle\n=====\n\nIntro text.\n\nUsage\n-----\n\nCall it.\n"))
    assert rst.title == "Title" and [s.heading for s in rst.sections] == ["Title", "Usage"]
    assert at(rst, "Usage") == "Usage\n\nCall it."


def test_text_encodings(tmp_path: Path) -> None:
    assert one(write_text(tmp_path / "a.txt", "Le café, 5€ “quoted”.", "cp1252")).text == "Le café, 5€ “quoted”."
    assert one(write_text(tmp_path / "b.txt", "Grüße aus München", "latin-1")).text == "Grüße aus München"
    assert one(write_text(tmp_path / "c.text", "\ufeffBOM café", "utf-8")).text == "BOM café"
    assert one(write_text(tmp_path / "d.txt", "\ufeffwide café", "utf-16-le")).text == "wide café"
    ru = "Привет, как дела? Это тестовый текст на русском языке."
    assert one(write_text(tmp_path / "e.txt", ru, "cp1251")).text == ru  # not taken for Western text
    doc = one(write_text(tmp_path / "notes.txt", "line one\nline two\n\n\n  second   para \n"))
    assert doc.text == "line one line two\n\nsecond para" and doc.title == "notes" and not doc.sections


def test_jsonl_rows_and_a_malformed_line_named(tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"_id": "d1", "title": "One", "text": "first\n\nsecond"},
                                                 {"id": 7, "text": "seven"}])
    docs = convert_file(rows)
    assert [(d.key, d.title, d.text) for d in docs] == [("d1", "One", "first\n\nsecond"), ("7", "", "seven")]
    cases = {'{"id": "x", "text": "ok"}\n{not json\n': "bad.jsonl:2: not valid JSON",
             '\n["a list"]\n': "bad.jsonl:2: a row must be a JSON object",
             '{"title": "no id", "text": "x"}\n': 'bad.jsonl:1: the row has no "_id" or "id"',
             '{"id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n': "bad.jsonl:2: id 'a' repeats line 1",
             '{"id": "a", "text": 3}\n': 'bad.jsonl:1: "text" and "title" must be strings'}
    for content, reason in cases.items():
        error = status(write_text(tmp_path / "bad.jsonl", content))
        assert error.status == "corrupt" and error.reason.startswith(reason), error.reason


def test_bad_files_get_their_status(tmp_path: Path) -> None:
    good = write_pdf(tmp_path / "good.pdf", ["Some text. " * 50])
    (tmp_path / "junk.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "ctrl.txt").write_bytes(b"\x01\x02\x03\x1b text " * 40)
    (tmp_path / "cut.pdf").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = {
        write_text(tmp_path / "zero.md", ""): "empty",
        write_text(tmp_path / "blank.html", "<html><body><script>x()</script></body></html>"): "empty",
        tmp_path / "junk.txt": "binary",
        tmp_path / "ctrl.txt": "binary",
        write_image_pdf(tmp_path / "scan.pdf", pages=2): "no_text",
        tmp_path / "cut.pdf": "corrupt",
        write_text(tmp_path / "fake.pdf", "just text named .pdf"): "corrupt",
        write_text(tmp_path / "fake.docx", "not a zip"): "corrupt",
        write_text(tmp_path / "photo.png", "x"): "unsupported",
    }
    for path, expected in cases.items():
        error = status(path)
        assert error.status == expected, (path.name, error)
        assert error.reason and "\n" not in error.reason
    assert "no text layer (2 pages" in status(tmp_path / "scan.pdf").reason
    big = status(good, max_bytes=1000)
    assert big.status == "too_large" and "over the limit of 1000 bytes" in big.reason


def test_conversion_error_crosses_processes_and_knows_its_statuses() -> None:
    error = pickle.loads(pickle.dumps(ConversionError("encrypted", "PDF is encrypted\n(password required)")))
    assert (error.status, error.reason) == ("encrypted", "PDF is encrypted (password required)")
    assert str(error) == "encrypted: PDF is encrypted (password required)"
    with pytest.raises(ValueError, match="unknown conversion status 'weird'"):
        ConversionError("weird", "x")


def test_a_worker_imports_no_model_library() -> None:
    """A worker is a fresh interpreter (spawn): what it imports is what it costs to start, per worker."""
    heavy = ("torch", "transformers", "sentence_transformers", "faiss")
    code = (f"import sys; from ragops.ingest.worker import preload; preload(); "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _workers_of(pid: int) -> list[int]:
    """Live worker processes (multiprocessing's spawn_main) whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if int(fields.get("PPid", "0")) == pid and b"spawn_main" in cmdline and not fields["State"].startswith("Z"):
            found.append(int(entry.name))
    return found


def test_convert_all_reports_every_failure_and_converts_the_rest(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(HANG_ENV, "hangs.md")
    monkeypatch.setenv(CRASH_ENV, "crashes.txt")
    good = [write_pdf(tmp_path / "p.pdf", ["one", "two"]), write_docx(tmp_path / "d.docx", BLOCKS),
            write_html(tmp_path / "h.html", BLOCKS), write_markdown(tmp_path / "m.md", BLOCKS),
            write_text(tmp_path / "w.txt", "Le café", "cp1252"),
            write_jsonl(tmp_path / "r.jsonl", [{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}])]
    bad = {write_pdf(tmp_path / "locked.pdf", ["x"], owner_password="o", user_password="u"): "encrypted",
           write_image_pdf(tmp_path / "scan.pdf"): "no_text",
           write_text(tmp_path / "broken.pdf", "%PDF-1.4\n"): "corrupt",
           write_text(tmp_path / "zero.txt", ""): "empty",
           write_text(tmp_path / "big.txt", "word " * 40_000): "too_large",
           write_text(tmp_path / "hangs.md", "# never converted"): "timeout",
           write_text(tmp_path / "crashes.txt", "kills its worker"): "error"}
    (tmp_path / "junk.txt").write_bytes(bytes(range(256)) * 4)
    bad[tmp_path / "junk.txt"] = "binary"
    paths = [p for pair in itertools.zip_longest(bad, good) for p in pair if p is not None]
    t0 = time.monotonic()
    outcomes = list(convert_all(paths, workers=2, timeout_s=2.0, max_bytes=100_000))
    assert [o.path for o in outcomes] == paths  # input order
    assert {o.path: o.error.status for o in outcomes if o.error} == bad
    assert all(o.docs == [] for o in outcomes if o.error)
    converted = {o.path.name: o.docs for o in outcomes if not o.error}
    assert set(converted) == {p.name for p in good} and converted["w.txt"][0].text == "Le café"
    assert [d.key for d in converted["r.jsonl"]] == ["a", "b"] and converted["p.pdf"][0].pages == 2
    hang = next(o for o in outcomes if o.path.name == "hangs.md")
    assert 2.0 <= hang.seconds < 10 and "longer than 2 s" in hang.error.reason
    assert "killed by SIGKILL" in next(o for o in outcomes if o.path.name == "crashes.txt").error.reason
    assert time.monotonic() - t0 < 30
    assert _workers_of(os.getpid()) == []


def test_no_worker_outlives_a_consumer_that_stops_early(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(HANG_ENV, "b.txt")
    paths = [write_text(tmp_path / f"{n}.txt", n) for n in ("a", "b", "c", "d")]
    outcomes = convert_all(paths, workers=2, timeout_s=600)
    assert next(outcomes).docs[0].text == "a"
    assert len(_workers_of(os.getpid())) == 2  # one of them stuck on b.txt
    outcomes.close()
    assert _workers_of(os.getpid()) == []
    with pytest.raises(ConfigError, match="timeout_s must be positive"):
        next(convert_all(paths, timeout_s=0))


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL runs no ``finally``: the workers notice the parent's end of the pipe close and exit, even
    one stuck in a converter."""
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "stuck.txt").write_text("hangs")
    script = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from ragops.ingest.worker import convert_all
        if __name__ == "__main__":
            gen = convert_all([Path({str(tmp_path / 'ok.txt')!r}), Path({str(tmp_path / 'stuck.txt')!r})],
                              workers=2, timeout_s=600)
            print(next(gen).docs[0].text, flush=True)
            next(gen)
    """)
    (tmp_path / "parent.py").write_text(script)
    env = {**os.environ, HANG_ENV: "stuck.txt"}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "fine"  # both workers started; one is about to hang
        time.sleep(0.5)
        workers = _workers_of(proc.pid)
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        return not (Path(f"/proc/{pid}/status").read_text().split("State:\t", 1)[1].startswith("Z"))
    except (OSError, IndexError):
        return False

"""The built book in a real browser: headless Chromium (Selenium) opens every chapter from a local server.

Checked per page: it answers 200, shows no execution error, every internal link (and `#fragment`) resolves,
no image is broken, and every chapter whose notebook ran shows its figures. Screenshots of a few pages are
kept in `$SKINLIB_ARTIFACTS/screenshots` (default `outputs/screenshots/`). Needs Debian's `chromium` and
`chromium-driver` and the `selenium` package (the `test` extra): without them these tests skip, saying
so, except in CI (CI set), where they fail. The checker itself is `tests/book_browser.py`.
"""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest
from book_browser import (
    artifacts_dir,
    browser_missing_reason,
    check_pages,
    chromium_driver,
    main,
    png_size,
    problems,
    serve,
    skip_or_fail,
    toc_pages,
)

REPO = Path(__file__).resolve().parent.parent


def require_browser():
    """Skip (fail in CI) when headless Chromium, chromedriver or selenium is missing."""
    skip_or_fail(browser_missing_reason())


@pytest.fixture(scope="module")
def driver():
    require_browser()
    browser = chromium_driver()
    yield browser
    browser.quit()


def tiny_png(width=4, height=3) -> bytes:
    """A valid RGB PNG, all red."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def page(title, body):
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head><body>'
        f'<nav><a href="/index.html">home</a></nav><main><article class="bd-article">{body}</article></main>'
        "</body></html>"
    )


# MyST-NB 1.x markup of a code cell whose output is an nbformat "error" (see book_browser's docstring)
MYST_NB_ERROR = (
    '<div class="cell docutils container"><div class="cell_output docutils container">'
    '<div class="output traceback highlight-ipythontb notranslate"><div class="highlight"><pre>'
    '<span class="ne">ValueError</span>   Traceback (most recent call last)\n'
    '<span class="ne">ValueError</span>: {message}</pre></div></div></div></div>'
)


@pytest.fixture
def tiny_site(tmp_path):
    """Three pages: a clean one, one with every problem, one with older/papermill error markup."""
    site = tmp_path / "html"
    (site / "sub").mkdir(parents=True)
    (site / "good.png").write_bytes(tiny_png())
    (site / "index.html").write_text(
        page(
            "Home",
            (
                '<h1 id="top">Home</h1><p><img src="good.png" alt="good"></p>'
                '<a href="#top">self</a> <a href="sub/problems.html">problems</a> <a href="legacy.html#ok">legacy</a> '
                '<a href="https://example.org/x.html">elsewhere</a> <a href="mailto:someone@example.org">mail</a>'
                '<div style="height: 6000px"></div><img loading="lazy" src="good.png" alt="far below, lazy">'
            ),
        )
    )
    (site / "sub" / "problems.html").write_text(
        page(
            "Problems",
            (
                '<h1>Problems</h1><img src="../missing.png" alt="broken"> <img src="../good.png" alt="fine">'
                '<a href="../nowhere.html">dead link</a> <a href="../index.html#no-such-id">dead anchor</a> '
                '<a href="../index.html#top">fine anchor</a>'
                '<p>A formula MathJax never typeset: <span class="math notranslate nohighlight">\\(p_t\\)</span></p>'
                + MYST_NB_ERROR.format(message="shown by MyST-NB")
                # a traceback printed to a stream output is an error shown too
                + '<div class="cell_output docutils container"><div class="output stderr"><pre>'
                'Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: printed</pre></div></div>'
                # a cell tagged raises-exception is meant to show its traceback
                + '<div class="cell tag_raises-exception docutils container">'
                + MYST_NB_ERROR.format(message="expected")
                + "</div>"
                # a script that fails (the console error) and the known, harmless sphinx-thebe one
                + "<script>document.body.dataset.x = undefined.boom;</script>"
                + "<script>const THEBE_JS_URL = 1;</script><script>const THEBE_JS_URL = 2;</script>"
            ),
        )
    )
    (site / "legacy.html").write_text(
        page(
            "Legacy",
            (
                '<h1 id="ok">Legacy</h1>'
                '<div class="output_area"><div class="output_subarea output_error"><pre>NameError: nbconvert</pre></div></div>'
                "<p><span>An Exception was encountered at '<a href=\"#papermill-error-cell\">In [3]</a>'.</span></p>"
                '<p><span id="papermill-error-cell">Execution using papermill encountered an exception here and stopped:'
                "</span></p>"
            ),
        )
    )
    return site


def test_the_checker_reports_broken_images_links_anchors_and_error_outputs(driver, tiny_site, tmp_path):
    shots = tmp_path / "shots"
    with serve(tiny_site) as base:
        assert base.startswith("http://127.0.0.1:")
        reports = check_pages(
            driver,
            base,
            ["index.html", "sub/problems.html", "legacy.html", "absent.html"],
            screenshot_dir=shots,
            screenshot_pages=["index.html"],
            math_timeout=1.0,
        )
    home, bad, legacy, absent = reports.values()

    assert home.problems() == [], home.problems()
    assert home.title == "Home" and home.status == 200
    assert len(home.images) == 2 and home.article_figures == 2  # the lazy image far below loaded too
    assert base + "sub/problems.html" in home.links and base + "legacy.html" in home.links
    assert not any("example.org" in link for link in home.links)  # other hosts, mailto: are not fetched
    assert png_size(home.screenshot)[0] > 0 and home.figure_screenshot.is_file()

    assert [i["src"].rsplit("/", 1)[-1] for i in bad.broken_images] == ["missing.png"]
    assert bad.article_figures == 1
    assert [(b["href"], b["status"]) for b in bad.broken_links] == [("../nowhere.html", 404)]
    assert [(m["href"], m["fragment"]) for m in bad.missing_anchors] == [("../index.html#no-such-id", "no-such-id")]
    assert len(bad.errors) == 2, bad.errors
    assert "shown by MyST-NB" in bad.errors[0] and "KeyError: printed" in bad.errors[1]
    assert not any("expected" in text for text in bad.errors)
    assert bad.unrendered_math == 1 and home.unrendered_math == 0
    console = [line for line in bad.problems() if "console" in line]
    assert len(console) == 1 and "boom" in console[0], bad.problems()  # not THEBE_JS_URL, not the 404s
    assert len(bad.problems()) == 7

    assert len(legacy.errors) == 3, legacy.errors
    assert any("nbconvert" in t for t in legacy.errors)
    assert any("An Exception was encountered" in t for t in legacy.errors)

    assert absent.status == 404 and absent.problems() == ["absent.html: the page itself answered 404"]
    assert len(problems(reports)) == 7 + 3 + 1


def test_the_command_line_check_exits_1_on_problems_and_0_on_a_clean_book(tiny_site, tmp_path, capsys):
    require_browser()  # main starts its own browser
    clean_toc, bad_toc = tmp_path / "clean.yml", tmp_path / "bad.yml"
    clean_toc.write_text("format: jb-book\nroot: index\n")
    bad_toc.write_text("format: jb-book\nroot: index\nchapters:\n- file: sub/problems\n")
    assert main([str(tiny_site), "--toc", str(clean_toc), "--screenshots", str(tmp_path / "shots")]) == 0
    assert "no problems on 1 pages" in capsys.readouterr().out
    assert (tmp_path / "shots" / "index.png").is_file()
    assert main([str(tiny_site), "--toc", str(bad_toc)]) == 1
    assert "sub/problems.html: broken image" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "no_book"), "--toc", str(clean_toc)])
    assert "build the book first" in capsys.readouterr().err


def test_toc_pages_lists_root_and_chapters_in_order():
    pages = toc_pages(REPO / "_toc.yml")
    assert pages[0] == "book/intro.html"
    assert "notebooks/01_data_exploration.html" in pages and all(p.endswith(".html") for p in pages)


# ------------------------------------------------------------------------------- the course book


@pytest.fixture(scope="module")
def built_book(course_book):
    """(out_dir, html_dir) of the book built from the session's quick run of the whole course (conftest)."""
    return course_book


@pytest.mark.data
@pytest.mark.slow
def test_every_chapter_renders_in_a_browser(built_book, driver):
    out, html = built_book
    pages = toc_pages(html.parent.parent / "_toc.yml")
    executed = [f"notebooks/{p.stem}.html" for p in sorted((out / "notebooks").glob("*.ipynb"))]
    assert executed and set(executed) <= set(pages), (executed, pages)
    shots = artifacts_dir()
    for old in shots.glob("*.png"):
        old.unlink()
    started = time.perf_counter()
    with serve(html) as base:
        reports = check_pages(driver, base, pages, screenshot_dir=shots, screenshot_pages=[pages[0], *executed])
    print(f"browser check of {len(pages)} pages: {time.perf_counter() - started:.1f} s")
    for report in reports.values():
        console = f"; console: {report.console_errors}" if report.console_errors else ""
        print(
            f"  {report.path}: {report.title!r}, {report.article_figures} figures, "
            f"{len(report.links)} internal links, {len(report.errors)} errors{console}"
        )

    assert not problems(reports), "\n".join(problems(reports))
    assert all(r.links for r in reports.values())  # the navigation links were found and checked
    for name in executed:
        assert reports[name].article_figures >= 1, f"{name}: its notebook ran but the page shows no figure"

    saved = [p for r in reports.values() for p in (r.screenshot, r.figure_screenshot) if p]
    assert len([r for r in reports.values() if r.screenshot]) == 1 + len(executed)
    for path in saved:
        width, height = png_size(path)
        assert width >= 800 and height >= 600 and path.stat().st_size > 10_000, path
    print(f"screenshots ({len(saved)}) in {shots}")

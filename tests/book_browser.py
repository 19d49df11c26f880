"""Real-browser checks of a built Jupyter Book (a helper for the tests, not a test module).

    with serve(html_dir) as base_url:
        driver = chromium_driver()
        try:
            reports = check_pages(driver, base_url, ["book/intro.html", "notebooks/01_data_exploration.html"],
                                  screenshot_dir="outputs/screenshots", screenshot_pages=["book/intro.html"])
        finally:
            driver.quit()
    assert not problems(reports)

From the command line, on any built book (every page of `_toc.yml`; exit status 1 on any problem):

    python tests/book_browser.py outputs/full/book/_build/html --screenshots outputs/full/screenshots

`serve` puts the HTML folder on a local port (a quiet `ThreadingHTTPServer` in a daemon thread);
`chromium_driver` starts headless Chromium through Selenium with the Debian binaries (no selenium-manager
download); `check_pages` loads every page in the browser and reports, per page, its title, its images
(broken: loaded with no pixels), the figures in the article, any execution error shown, and every internal
link, each fetched from the local server (it must answer 200; a `#fragment` must name an id on its page).

What counts as an execution error on a page. MyST-NB (1.x, what Jupyter Book 1.x uses) renders an nbformat
`error` output as `<div class="output traceback highlight-ipythontb">` inside the cell's
`<div class="cell_output">`, the ANSI traceback highlighted as IPython traceback text, so it contains
"Traceback (most recent call last)". That is the selector this relies on (`.cell_output .traceback`); the
older nbconvert/nbsphinx classes (`.output.error`, `div.output_error`) are matched too (plain stderr
output is not an error), as are papermill's "An Exception was encountered at" banner and its
`#papermill-error-cell` marker, and any cell output whose text holds "Traceback (most recent call last)".
Cells tagged `raises-exception` (MyST-NB gives their container the class `tag_raises-exception`) are
expected to show a traceback and are not counted.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600")

#: Where a page's content lives (Jupyter Book 1.x / sphinx-book-theme: `<main>` holds `<article class="bd-article">`).
ARTICLE = ".bd-article, article, main"

#: CSS selectors of a rendered execution error (see the module docstring).
ERROR_SELECTORS = (
    ".cell_output .traceback",
    ".output.traceback",
    ".output.error",
    "div.output_error",
    "#papermill-error-cell",
)

#: Seconds to wait for a page to load, and for its images to finish loading.
PAGE_TIMEOUT = 60
IMAGE_TIMEOUT = 15


# ------------------------------------------------------------------------------------------ server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without logging every request (or the browser's aborted connections) to stderr."""

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a browser that drops a connection mid-response is not a test failure


@contextlib.contextmanager
def serve(html_dir):
    """Serve `html_dir` on 127.0.0.1 (a free port) from a daemon thread; yields the base URL, ending in "/"."""
    html_dir = Path(html_dir).resolve()
    if not html_dir.is_dir():
        raise FileNotFoundError(f"no HTML folder at {html_dir}")
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name=f"serve {html_dir.name}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ----------------------------------------------------------------------------------------- browser


def browser_missing_reason() -> str | None:
    """None when headless Chromium can be driven here; else what is missing and how to install it."""
    missing = []
    if not Path(CHROMIUM).is_file():
        missing.append(f"chromium ({CHROMIUM})")
    if not Path(CHROMEDRIVER).is_file():
        missing.append(f"chromedriver ({CHROMEDRIVER})")
    install = ["apt-get install chromium chromium-driver"] if missing else []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
        install.append("pip install -e '.[test]'")
    if not missing:
        return None
    return f"browser check needs {', '.join(missing)}: {' and '.join(install)}"


def skip_or_fail(reason: str | None) -> None:
    """A test that needs a missing tool skips with `reason` on a workstation and fails in CI, where the tool is
    installed on purpose (.ci/run); nothing happens when `reason` is None."""
    import pytest

    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def artifacts_dir(*parts: str) -> Path:
    """Where screenshots are kept: $SKINLIB_ARTIFACTS/screenshots[/parts], else outputs/screenshots (git-ignored)."""
    root = os.environ.get("SKINLIB_ARTIFACTS")
    return (Path(root) if root else Path(__file__).resolve().parent.parent / "outputs").joinpath("screenshots", *parts)


def chromium_driver(page_timeout: float = PAGE_TIMEOUT):
    """A Selenium WebDriver for headless Chromium (Debian's /usr/bin/chromium and /usr/bin/chromedriver).

    The driver path is given explicitly, so selenium-manager never looks for (or downloads) a browser.
    The browser's console log is kept (`driver.get_log("browser")`). Quit it when done.
    """
    reason = browser_missing_reason()
    if reason:
        raise RuntimeError(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(page_timeout)
    return driver


# ----------------------------------------------------------------------------------------- reports


#: Console errors of the book's third-party theme code that are known and harmless: (text, why).
KNOWN_CONSOLE_ERRORS = (
    (
        "Identifier 'THEBE_JS_URL' has already been declared",
        "sphinx-thebe 0.3.1 adds its inline config script twice to every page; thebe itself is never started",
    ),
    (
        "Got invalid theme mode",
        "pydata-sphinx-theme on a first visit (empty localStorage); it resets the light/dark mode to auto",
    ),
)


def unexpected_console_error(message: str) -> bool:
    """A console error the check should fail on: not a known one, not a failed load (images and links are
    checked on their own, with a clearer message)."""
    return "Failed to load resource" not in message and not any(known in message for known, _ in KNOWN_CONSOLE_ERRORS)


@dataclass
class PageReport:
    """What one page showed in the browser (see `check_pages`)."""

    path: str
    url: str
    status: int | str | None = None  # HTTP status of the page itself from the local server (or the error)
    title: str = ""
    images: list[dict] = field(default_factory=list)  # src, complete, natural_width, in_article
    errors: list[str] = field(default_factory=list)  # text (shortened) of every execution error shown
    links: list[str] = field(default_factory=list)  # distinct internal targets (no fragment), absolute URLs
    broken_links: list[dict] = field(default_factory=list)  # href, target, status
    missing_anchors: list[dict] = field(default_factory=list)  # href, target, fragment
    console_errors: list[str] = field(default_factory=list)  # SEVERE messages of the browser console
    unrendered_math: int = 0  # math elements (.math) that MathJax did not typeset (e.g. MathJax failed to load)
    screenshot: Path | None = None  # the page as first shown (top of the page, the whole window)
    figure_screenshot: Path | None = None  # the window scrolled to the article's first figure (if any)

    @property
    def broken_images(self) -> list[dict]:
        """Images that finished loading with no pixels (a missing or undecodable file)."""
        return [i for i in self.images if i["complete"] and i["natural_width"] == 0]

    @property
    def unloaded_images(self) -> list[dict]:
        """Images still not loaded after `IMAGE_TIMEOUT` seconds (scrolled into view, lazy loading off)."""
        return [i for i in self.images if not i["complete"]]

    @property
    def article_figures(self) -> int:
        """Images inside the article (not the theme's chrome) that loaded with pixels."""
        return sum(1 for i in self.images if i["in_article"] and i["complete"] and i["natural_width"] > 0)

    def problems(self) -> list[str]:
        """Every failure on this page, one line each (empty when the page is fine)."""
        found = []
        if self.status != 200:
            found.append(f"{self.path}: the page itself answered {self.status}")
        found += [f"{self.path}: execution error shown: {text}" for text in self.errors]
        found += [f"{self.path}: broken image {i['src']}" for i in self.broken_images]
        if self.unrendered_math:
            found.append(f"{self.path}: {self.unrendered_math} formula(s) shown as raw TeX (MathJax did not run)")
        found += [f"{self.path}: image never loaded {i['src']}" for i in self.unloaded_images]
        found += [f"{self.path}: link {b['href']} -> {b['status']}" for b in self.broken_links]
        found += [
            f"{self.path}: browser console error: {m}" for m in self.console_errors if unexpected_console_error(m)
        ]
        found += [
            f"{self.path}: link {m['href']}: no id {m['fragment']!r} on {m['target']}" for m in self.missing_anchors
        ]
        return found


def problems(reports) -> list[str]:
    """All problems of a `check_pages` result (a dict of reports), one line each."""
    return [line for report in reports.values() for line in report.problems()]


# --------------------------------------------------------------------------------------- the check

_COLLECT = """
const articleSelector = arguments[0], errorSelectors = arguments[1];
const article = document.querySelector(articleSelector);
const images = Array.from(document.images).map(img => ({
    src: img.currentSrc || img.src || img.getAttribute('src') || '',
    complete: img.complete,
    natural_width: img.naturalWidth,
    in_article: !!(article && article.contains(img)),
}));
const expected = el => !!el.closest('.tag_raises-exception');
const errorNodes = new Set();
for (const selector of errorSelectors) {
    for (const el of document.querySelectorAll(selector)) { if (!expected(el)) errorNodes.add(el); }
}
for (const el of document.querySelectorAll('.cell_output, .output_area, .output')) {
    if (!expected(el) && (el.textContent || '').includes('Traceback (most recent call last)')) {
        // each traceback once (the outermost output holding it), not again if a selector matched it
        if (![...errorNodes].some(n => n.contains(el) || el.contains(n))) errorNodes.add(el);
    }
}
const phrase = 'An Exception was encountered at';  // papermill's banner above the failing cell
if (article && (article.textContent || '').includes(phrase)) {
    const holds = el => (el.textContent || '').includes(phrase);
    const banner = [...article.querySelectorAll('*')].find(el => holds(el) && ![...el.children].some(holds));
    if (banner && !expected(banner) && ![...errorNodes].some(n => n.contains(banner))) errorNodes.add(banner);
}
const errors = [...errorNodes].map(el => (el.innerText || el.textContent || '').trim().replace(/\\s+/g, ' '));
const links = Array.from(document.querySelectorAll('a[href]')).map(a => ({
    href: a.getAttribute('href'), url: a.href,
}));
return {title: document.title, images: images, errors: errors, links: links};
"""

# Load every image now: lazy ones made eager and scrolled into view; resolves when all are settled or after
# the timeout (arguments[0], ms). The callback gets nothing: the state is read afterwards by _COLLECT.
_LOAD_IMAGES = """
const timeout = arguments[0], done = arguments[arguments.length - 1];
const images = Array.from(document.images);
for (const img of images) {
    if (img.loading === 'lazy') img.loading = 'eager';
}
for (const img of images) { if (!img.complete) img.scrollIntoView({block: 'center'}); }
const settled = images.map(img => img.complete ? Promise.resolve() : new Promise(resolve => {
    img.addEventListener('load', resolve, {once: true});
    img.addEventListener('error', resolve, {once: true});
}));
const decoded = images.map(img => img.decode ? img.decode().catch(() => null) : null);
Promise.race([
    Promise.all(settled.concat(decoded)),
    new Promise(resolve => setTimeout(resolve, timeout)),
]).then(() => { window.scrollTo(0, 0); done(null); });
"""


def _fetch(url: str, timeout: float = 30) -> tuple[int | str, bytes]:
    """Status and body of a GET against the local server (an error's text instead of a status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except (urllib.error.URLError, OSError) as error:
        return f"{type(error).__name__}: {error}", b""


def _ids(html: bytes) -> set[str]:
    """The ids (and anchor names) in an HTML document."""
    text = html.decode("utf-8", "replace")
    return {urllib.parse.unquote(m) for m in re.findall(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""", text)}


def _screenshot_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", path.strip("/")).removesuffix(".html") + ".png"


MATH_TIMEOUT = 10.0  # seconds MathJax gets to typeset a page


def _unrendered_math(driver, timeout: float = MATH_TIMEOUT) -> int:
    """Math elements left untypeset after `timeout` s (0 when the page has no math or MathJax rendered it)."""
    script = (
        "return Array.from(document.querySelectorAll('.math'))"
        ".filter(e => !e.querySelector('mjx-container') && !e.closest('mjx-container')).length"
    )
    deadline = time.monotonic() + timeout
    while True:
        left = driver.execute_script(script)
        if not left or time.monotonic() > deadline:
            return int(left)
        time.sleep(0.25)


def check_pages(
    driver,
    base_url: str,
    pages,
    screenshot_dir=None,
    screenshot_pages=(),
    image_timeout: float = IMAGE_TIMEOUT,
    math_timeout: float = MATH_TIMEOUT,
) -> dict[str, PageReport]:
    """Open each page (a path relative to the HTML root) in `driver`; return {path: PageReport}.

    Per page: wait for `document.readyState == "complete"`, load every image (lazy ones forced eager and
    scrolled into view, up to `image_timeout` s), then collect the title, every `<img>` (complete,
    naturalWidth, inside the article or not), the execution errors shown (see the module docstring) and
    every link to the same origin. Each distinct internal target (fragment stripped) is then fetched with
    urllib from the server (must be 200), and each `#fragment` checked against the ids of its page (this
    page's live DOM, or the fetched HTML of another). Pages in `screenshot_pages` are saved as
    `<screenshot_dir>/<path with / as __>.png` (the whole window, top of the page) and, when the article
    has a figure, `...__figure.png` (the window scrolled to its first figure).
    """
    from selenium.webdriver.support.ui import WebDriverWait

    base = base_url if base_url.endswith("/") else base_url + "/"
    origin = urllib.parse.urlsplit(base)[:2]
    if screenshot_dir is not None:
        screenshot_dir = Path(screenshot_dir)
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    shots = {str(p).lstrip("/") for p in screenshot_pages}
    fetched: dict[str, tuple[int | str, set[str] | None]] = {}  # target -> status, ids (None: not parsed yet)

    def fetch(target: str, want_ids: bool = False):
        status, ids = fetched.get(target, (None, None))
        if status is None or (want_ids and ids is None and status == 200):
            status, body = _fetch(target)
            ids = _ids(body) if want_ids and status == 200 else ids
            fetched[target] = (status, ids)
        return fetched[target]

    reports: dict[str, PageReport] = {}
    for page in pages:
        page = str(page).lstrip("/")
        url = urllib.parse.urljoin(base, page)
        report = PageReport(path=page, url=url, status=fetch(url)[0])
        driver.get(url)
        WebDriverWait(driver, PAGE_TIMEOUT).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        driver.set_script_timeout(image_timeout + 10)
        driver.execute_async_script(_LOAD_IMAGES, int(image_timeout * 1000))
        state = driver.execute_script(_COLLECT, ARTICLE, list(ERROR_SELECTORS))
        report.title = state["title"]
        report.images = state["images"]
        report.errors = [text[:300] for text in state["errors"]]
        report.unrendered_math = _unrendered_math(driver, math_timeout)
        page_url = driver.current_url.split("#", 1)[0]
        own_ids = None
        first_href: dict[str, str] = {}  # internal target -> the first href on this page pointing at it
        for link in state["links"]:
            parts = urllib.parse.urlsplit(link["url"])
            if parts.scheme not in ("http", "https") or parts[:2] != origin:
                continue  # mailto:, javascript:, other hosts
            target = urllib.parse.urlunsplit(parts._replace(fragment=""))
            first_href.setdefault(target, link["href"])
            fragment = urllib.parse.unquote(parts.fragment)
            if not fragment:
                continue
            if target == page_url:
                if own_ids is None:
                    own_ids = set(
                        driver.execute_script(
                            "return Array.from(document.querySelectorAll('[id], a[name]'))"
                            ".map(e => e.id || e.getAttribute('name'))"
                        )
                    )
                ids = own_ids
            else:
                status, ids = fetch(target, want_ids=True)
                if status != 200:
                    continue  # reported as a broken link below
            if fragment not in ids and not any(m["href"] == link["href"] for m in report.missing_anchors):
                report.missing_anchors.append({"href": link["href"], "target": target, "fragment": fragment})
        report.links = list(first_href)
        for target, href in first_href.items():
            status = fetch(target)[0]
            if status != 200:
                report.broken_links.append({"href": href, "target": target, "status": status})
        with contextlib.suppress(Exception):  # not every driver keeps a console log
            report.console_errors = [
                entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"
            ]
        if screenshot_dir is not None and page in shots:
            path = screenshot_dir / _screenshot_name(page)
            if not driver.save_screenshot(str(path)):
                raise RuntimeError(f"could not save a screenshot of {page} to {path}")
            report.screenshot = path
            if report.article_figures:
                scrolled = driver.execute_script(
                    "const a = document.querySelector(arguments[0]);"
                    "const img = a && [...a.querySelectorAll('img')].find(i => i.complete && i.naturalWidth > 0);"
                    "if (!img) return false; img.scrollIntoView({block: 'center'}); return true;",
                    ARTICLE,
                )
                figure = path.with_name(path.stem + "__figure.png")
                if scrolled and driver.save_screenshot(str(figure)):
                    report.figure_screenshot = figure
        reports[page] = report
    return reports


# ---------------------------------------------------------------------------------------- the book


def toc_pages(toc_file) -> list[str]:
    """The HTML pages of a Jupyter Book `_toc.yml` in reading order: root, then every `file` entry
    (chapters, parts, sections), each as "<file>.html" relative to the HTML root."""
    import yaml

    toc = yaml.safe_load(Path(toc_file).read_text())
    files = [toc["root"]] if toc.get("root") else []

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key))

    for key in ("chapters", "parts", "sections"):
        walk(toc.get(key))
    return [re.sub(r"\.(md|ipynb|rst)$", "", f) + ".html" for f in files]


def png_size(path) -> tuple[int, int]:
    """(width, height) of a PNG file; raises ValueError when the file is not a PNG."""
    head = Path(path).read_bytes()[:24]
    if len(head) < 24 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def check_book(html_dir, toc_file="_toc.yml", screenshot_dir=None) -> dict[str, PageReport]:
    """Check every page of `toc_file` in a built book folder in headless Chromium (screenshots of all)."""
    pages = toc_pages(toc_file)
    driver = chromium_driver()
    try:
        with serve(html_dir) as base_url:
            return check_pages(
                driver, base_url, pages, screenshot_dir=screenshot_dir, screenshot_pages=pages if screenshot_dir else ()
            )
    finally:
        driver.quit()


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Check a built Jupyter Book in headless Chromium.")
    parser.add_argument("html_dir", help="the book's HTML folder, e.g. outputs/full/book/_build/html")
    parser.add_argument("--toc", default="_toc.yml", help="the book's table of contents (default: _toc.yml)")
    parser.add_argument("--screenshots", help="folder for a screenshot of every page")
    args = parser.parse_args(argv)
    if not Path(args.html_dir, "index.html").is_file():
        parser.error(f"{args.html_dir} has no index.html: build the book first (skinlib pipeline --book)")
    reason = browser_missing_reason()
    if reason:
        parser.error(reason)
    reports = check_book(args.html_dir, args.toc, args.screenshots)
    for report in reports.values():
        print(
            f"{report.path}: {report.article_figures} figures, {len(report.links)} internal links, "
            f"{len(report.errors)} errors shown"
        )
    found = problems(reports)
    print("\n".join(found) if found else f"no problems on {len(reports)} pages")
    return 1 if found else 0


__all__ = [
    "CHROMIUM",
    "CHROMEDRIVER",
    "CHROMIUM_ARGS",
    "ARTICLE",
    "ERROR_SELECTORS",
    "serve",
    "browser_missing_reason",
    "chromium_driver",
    "PageReport",
    "problems",
    "check_pages",
    "toc_pages",
    "png_size",
    "check_book",
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())

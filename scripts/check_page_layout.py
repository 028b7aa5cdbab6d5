"""Check a report page (index.html) in a real headless browser: nothing wider than the window, every image loaded.

    python3 scripts/check_page_layout.py results/study-toy/index.html [--width 1280] [--screenshot page.png]

Renders the page in headless Chromium (``chromium``, ``chromium-browser`` or ``google-chrome`` on the PATH;
Debian: ``apt-get install chromium``) at the given window width with every ``<details>`` opened, and prints what
it measured as JSON: the layout width (``document.documentElement.clientWidth``), the page's scroll width,
every element whose right edge passes the layout width outside a box that scrolls sideways (``wide``: the
outermost of them, not each of its children), and
every image that did not load (``broken``: ``naturalWidth`` 0). Exit status 0 when the page fits and every
image loaded, 1 when not, 2 when no browser is found or it cannot render the page.

The page itself has no script: the measuring one is added to a copy in a temporary folder, whose ``<base>``
points at the page's own folder so that its relative links (figures) resolve as they do for a reader.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PROBE_ID = "odebench-layout-probe"
#: runs after every image has loaded (the load event); writes what it measured into the DOM for --dump-dom
PROBE = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  var root = document.documentElement, limit = root.clientWidth, wide = [];
  function name(el) {
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className ? "." + el.className : "");
  }
  function scrolled(el) {
    for (var p = el.parentElement; p && p !== root; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === "auto" || o === "scroll" || o === "hidden" || o === "clip") return true;
    }
    return false;
  }
  var over = new Set();  // an element inside one already named is not named again: the outermost tell
  document.querySelectorAll("body *").forEach(function (el) {
    var r = el.getBoundingClientRect();
    if ((r.width || r.height) && r.right > limit + 0.5 && !scrolled(el)) {
      over.add(el);
      if (!over.has(el.parentElement)) {
        wide.push(name(el) + " right=" + Math.round(r.right) + ": " + (el.textContent || "").trim().slice(0, 60));
      }
    }
  });
  var broken = Array.prototype.filter.call(document.images, function (i) {
    return !(i.complete && i.naturalWidth > 0);
  }).map(function (i) { return i.getAttribute("src"); });
  var out = document.createElement("pre");
  out.id = "PROBE_ID";
  out.textContent = JSON.stringify({inner_width: window.innerWidth, client_width: limit,
    scroll_width: root.scrollWidth, scroll_height: root.scrollHeight, images: document.images.length,
    broken: broken, wide: wide});
  document.body.appendChild(out);
});
</script>""".replace("PROBE_ID", PROBE_ID)


class NoBrowser(RuntimeError):
    """No headless browser on this machine, or one that cannot render a page here (the message says which)."""


def find_browser() -> str | None:
    """The path of the first Chromium-like browser on the PATH (None: there is none)."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="odebench-browser-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "LANG": "C.UTF-8"})
        except subprocess.TimeoutExpired as exc:
            raise NoBrowser(f"{browser} did not finish within {timeout:.0f} s") from exc


def measure(page: str | Path, width: int = 1280, height: int = 900, browser: str | None = None,
            timeout: float = 120.0) -> dict:
    """Render ``page`` at ``width`` x ``height`` and return what the probe measured (see the module docstring)."""
    browser = browser or find_browser()
    if browser is None:
        raise NoBrowser(f"no headless browser found (looked for {', '.join(BROWSERS)} on the PATH); "
                        f"install one, e.g. apt-get install chromium")
    page = Path(page).resolve()
    text = page.read_text(encoding="utf-8")
    base = f'<base href="{page.parent.as_uri()}/">'
    text = re.sub(r"<head>", "<head>" + base, text, count=1) if "<head>" in text else base + text
    text = text.replace("</body>", PROBE + "</body>", 1) if "</body>" in text else text + PROBE
    with tempfile.TemporaryDirectory(prefix="odebench-page-") as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(text, encoding="utf-8")
        done = _run(browser, [f"--window-size={width},{height}", "--virtual-time-budget=20000", "--dump-dom",
                              copy.as_uri()], timeout)
    found = re.search(rf'<pre id="{PROBE_ID}">(.*?)</pre>', done.stdout, re.S)
    if not found:
        raise NoBrowser(f"{browser} rendered no measurement of {page} (exit {done.returncode}): "
                        f"{done.stderr.strip()[-600:]}")
    import html

    return json.loads(html.unescape(found.group(1)))


def screenshot(page: str | Path, out: str | Path, width: int = 1280, height: int = 3000,
               browser: str | None = None, timeout: float = 120.0) -> Path:
    """A PNG of the first ``height`` pixels of ``page`` at ``width`` (the page as a reader opens it)."""
    browser = browser or find_browser()
    if browser is None:
        raise NoBrowser(f"no headless browser found (looked for {', '.join(BROWSERS)} on the PATH)")
    out = Path(out).resolve()
    done = _run(browser, [f"--window-size={width},{height}", "--hide-scrollbars", "--virtual-time-budget=20000",
                          f"--screenshot={out}", Path(page).resolve().as_uri()], timeout)
    if not out.is_file():
        raise NoBrowser(f"{browser} wrote no screenshot (exit {done.returncode}): {done.stderr.strip()[-600:]}")
    return out


def problems(measured: dict, width: int) -> list[str]:
    """What is wrong with a measured page (empty: it fits ``width`` and every image loaded)."""
    out = []
    if measured["scroll_width"] > measured["client_width"] or measured["scroll_width"] > width:
        out.append(f"the page is {measured['scroll_width']} px wide in a {measured['client_width']} px window")
    out += [f"wider than the window: {w}" for w in measured["wide"]]
    out += [f"image not loaded: {src}" for src in measured["broken"]]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", help="the index.html to check")
    parser.add_argument("--width", type=int, default=1280, help="window width in CSS pixels (default 1280)")
    parser.add_argument("--screenshot", metavar="PNG", help="also write a screenshot of the top of the page")
    parser.add_argument("--height", type=int, default=3000, help="screenshot height in pixels (default 3000)")
    args = parser.parse_args(argv)
    if not Path(args.page).is_file():
        print(f"error: {args.page} is not a file; give the index.html of a sweep folder", file=sys.stderr)
        return 2
    try:
        measured = measure(args.page, args.width)
        if args.screenshot:
            screenshot(args.page, args.screenshot, args.width, args.height)
    except NoBrowser as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(measured, indent=1))
    found = problems(measured, args.width)
    for p in found:
        print(p, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

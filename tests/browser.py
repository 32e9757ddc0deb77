"""Measure a page's layout in a real browser: Debian's headless Chromium, no driver, no network.

``measure_layout(page, width)`` copies the page with a small script appended, opens the copy in
``chromium --headless --dump-dom`` with a viewport ``width`` px wide, and reads back what the script
measured after the page loaded (it writes JSON into a ``<pre id="varprop-layout">`` of the dumped
DOM): the viewport and document widths, every element that sticks out of its container's content
box or clips its content, and every image's natural and rendered size.

``.ci/run`` installs the ``chromium`` package (apt-get) when no browser is found; elsewhere
``find_chromium`` returns None and the browser tests are skipped with that reason.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_FLAGS", "NO_BROWSER", "find_chromium", "measure_layout"]

#: Flags Chromium needs in a container on a closed network (no sandbox, GPU, QUIC, sync, updates).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

NO_BROWSER = (
    "no Chromium found (looked for chromium, chromium-browser, google-chrome; or set VARPROP_CHROMIUM): "
    "install Debian's package with `apt-get install -y chromium`, as .ci/run does"
)

# Runs on the load event; rectangles are in CSS px of the viewport.
_PROBE = r"""
<script>
window.addEventListener("load", () => {
  const content = (e) => {
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return {
      left: r.left + parseFloat(s.borderLeftWidth) + parseFloat(s.paddingLeft),
      right: r.right - parseFloat(s.borderRightWidth) - parseFloat(s.paddingRight),
    };
  };
  const name = (e) => e.tagName.toLowerCase() + (e.className ? "." + e.className : "") +
    " '" + (e.textContent || e.getAttribute("alt") || "").trim().replace(/\s+/g, " ").slice(0, 50) + "'";
  const overflowing = [], clipped = [];
  for (const e of document.body.querySelectorAll("*")) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;  // not rendered
    const box = content(e.parentElement);
    if (r.right > box.right + 0.5 || r.left < box.left - 0.5) {
      const span = (a, b) => `[${a.toFixed(1)}, ${b.toFixed(1)}]`;
      overflowing.push(`${name(e)}: ${span(r.left, r.right)} in ${span(box.left, box.right)}`);
    }
    if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible") {
      clipped.push(`${name(e)}: content ${e.scrollWidth} px in ${e.clientWidth} px`);
    }
  }
  const body = content(document.body);
  const result = {
    innerWidth: window.innerWidth,
    clientWidth: document.documentElement.clientWidth,
    scrollWidth: document.documentElement.scrollWidth,
    bodyContentWidth: body.right - body.left,
    overflowing, clipped,
    images: [...document.images].map((img) => ({
      alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
      width: img.getBoundingClientRect().width,
    })),
  };
  const out = document.createElement("pre");
  out.id = "varprop-layout";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""
_RESULT = re.compile(r'<pre id="varprop-layout">(.*?)</pre>', re.DOTALL)


def find_chromium() -> str | None:
    """Path of a Chromium-compatible browser: ``$VARPROP_CHROMIUM``, else the first on PATH."""
    configured = os.environ.get("VARPROP_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def measure_layout(browser: str, page: Path, width: int, height: int = 900, timeout: float = 120.0) -> dict[str, Any]:
    """Open ``page`` at a viewport of ``width`` x ``height`` CSS px and return the probe's measurements.

    Raises:
        AssertionError: the browser failed, or the probe did not report (with the browser's stderr).
    """
    with tempfile.TemporaryDirectory(prefix="varprop-browser-") as scratch:
        probed = Path(scratch) / "page.html"
        text = page.read_text(encoding="utf-8")
        if "</body>" not in text:
            raise AssertionError(f"{page} has no </body>: not a complete HTML page")
        probed.write_text(text.replace("</body>", _PROBE + "</body>", 1), encoding="utf-8")
        profile = Path(scratch) / "profile"  # a fresh profile each time: no state, no first-run work
        command = [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=10000",  # run the load handlers before the DOM is dumped
            "--dump-dom",
            probed.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    match = _RESULT.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode} without the layout probe's result; "
            f"stderr:\n{result.stderr[-3000:]}"
        )
    data: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return data

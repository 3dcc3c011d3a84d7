"""The bench's HTML report in a real browser: headless Chromium, driven over WebDriver by
chromedriver (as dashboard.py).

Usage: python3 report.py PATH_TO_ERLMCP SCREENSHOT.png

Runs `erlmcp bench run --profile tcp` for a second (the bench starts and stops its own node) in a
private temporary directory, opens its report.html from disk, and checks that every chart is an
SVG the browser laid out with drawn lines on it, that no chart failed, and that the page loaded
nothing from anywhere (self-contained). Then the same for a compare report of the run against
itself. Saves a screenshot. Exit code 1 on any failure.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard import WebDriver, free_port, wait_for, _up  # noqa: E402

BIN, SHOT = os.path.abspath(sys.argv[1]), sys.argv[2]
BENCH_BOUND_S = 120

CHARTS = ["latency-over-time", "percentile-curve", "throughput-over-time", "errors-over-time",
          "node-rss", "node-cpu"]

# What the page shows of its charts: each figure's id, the laid-out size of its SVG, the lines
# drawn (polylines of three points or more: a legend's sample is two), and every resource the
# page fetched.
PROBE = """
const charts = [...document.querySelectorAll('figure.chart')].map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const lines = svg ? [...svg.querySelectorAll('polyline')]
      .filter(p => (p.getAttribute('points') || '').trim().split(/\\s+/).length >= 3).length : 0;
  return {id: f.id, width: box.width, height: box.height, lines: lines};
});
return {charts: charts,
        failed: document.querySelectorAll('.chart-failed').length,
        fetched: performance.getEntriesByType('resource').map(r => r.name)};
"""


def run(args, runtime):
    env = dict(os.environ, HOME=runtime, XDG_RUNTIME_DIR=runtime, TMPDIR=runtime,
               XDG_DATA_HOME=os.path.join(runtime, "data"))
    env.pop("RUST_LOG", None)
    done = subprocess.run([BIN, "bench", *args], env=env, cwd=runtime, capture_output=True,
                          text=True, timeout=BENCH_BOUND_S)
    return done


def main():
    runtime = tempfile.mkdtemp(prefix="erlmcp-report-")
    try:
        check_report(runtime)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def check_page(browser, url, expected):
    browser.open(url)
    page = browser.call("POST", browser.s("/execute/sync"), {"script": PROBE, "args": []})
    ids = [c["id"] for c in page["charts"]]
    for chart in expected:
        assert chart in ids, f"{url}: no chart {chart} in {ids}"
    for chart in page["charts"]:
        assert chart["width"] > 300 and chart["height"] > 150, f"{url}: {chart} not laid out"
        assert chart["lines"] >= 1, f"{url}: {chart} has no line drawn"
    assert page["failed"] == 0, f"{url}: {page['failed']} chart(s) failed"
    assert page["fetched"] == [], f"{url}: the page fetched {page['fetched']}"
    return page


def check_report(runtime):
    out = os.path.join(runtime, "run")
    done = run(["run", "--profile", "tcp", "--duration", "1", "--warmup", "0.2",
                "--connections", "4", "--out", out], runtime)
    assert done.returncode == 0, f"bench run failed:\n{done.stdout}\n{done.stderr}"
    print("ok   bench run wrote its results")
    done = run(["compare", out, out, "--out", os.path.join(runtime, "compare")], runtime)
    assert done.returncode == 0, f"bench compare failed:\n{done.stdout}\n{done.stderr}"

    port = free_port()
    driver_log = open(os.path.join(runtime, "chromedriver.log"), "w")
    chromedriver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=driver_log,
                                    stderr=driver_log,
                                    env={**os.environ, "TMPDIR": runtime, "HOME": runtime})
    browser = WebDriver(port)
    try:
        wait_for("chromedriver", lambda: _up(f"http://127.0.0.1:{port}/status"))
        browser.start()
        page = check_page(browser, f"file://{out}/report.html", CHARTS)
        lines = sum(c["lines"] for c in page["charts"])
        print(f"ok   the run's report draws {len(page['charts'])} charts ({lines} lines), "
              "fetching nothing")
        browser.screenshot(SHOT)
        assert os.path.getsize(SHOT) > 10_000, os.path.getsize(SHOT)
        print(f"ok   screenshot saved to {SHOT}")
        page = check_page(browser, f"file://{runtime}/compare/compare.html",
                          ["throughput-over-time", "percentile-curve"])
        both = [c for c in page["charts"] if c["id"] == "throughput-over-time"][0]
        assert both["lines"] >= 2, f"the compare chart does not draw both runs: {both}"
        print("ok   the compare report draws both runs on one chart")
    finally:
        browser.quit()
        chromedriver.terminate()
        chromedriver.wait(timeout=10)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:
        print(f"FAIL {error}")
        sys.exit(1)
    print("report: every check passed")

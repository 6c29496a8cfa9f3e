#!/usr/bin/env bash
# tests/timeline_browser.sh AIFC: the pages of `aifc bench --plot-timeline --plot-dataset-stats`
# in a real headless browser (Debian's chromium): the timeline must render one line per request,
# each with its tooltip and bars, and the legend with the thresholds given; the statistics page
# its three histograms. Exit 77 (skipped) without chromium unless AIFC_REQUIRE_BROWSER=1.
set -euo pipefail
aifc=$1
source "$(dirname "$0")/browser.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$aifc" bench --sim --num-prompts 30 --request-rate 300 --random-output-len 12 \
  --sim-itl-ms uniform:2:40 --sim-error-rate 0.2 --sim-seed 3 --disable-tqdm \
  --plot-timeline --timeline-itl-thresholds 10,30 --plot-dataset-stats --result-dir "$tmp/out" \
  --result-filename run.json >"$tmp/bench.out" 2>&1 || { cat "$tmp/bench.out" >&2; exit 1; }
page="$tmp/out/run_timeline.html"
[ -s "$page" ] || { echo "no timeline at $page" >&2; ls -R "$tmp" >&2; exit 1; }
dump_dom "file://$page" "$tmp/dom.html" "$tmp"
python3 - "$tmp/dom.html" <<'PY'
import re, sys
dom = open(sys.argv[1]).read()
assert "<title>aifc timeline: 30 requests to aifc-sim</title>" in dom, dom[:300]
lines = re.findall(r'<g><title>request (\d+): ([^<]*)</title>(.*?)</g>', dom, re.S)
assert len(lines) == 30, len(lines)
assert sorted(int(i) for i, _, _ in lines) == list(range(30))
failed = [t for _, t, _ in lines if t.startswith("failed")]
assert failed, "the 20% injected errors drew no failed line"
for _, title, bars in lines:
    assert '<rect class="' in bars, title
    if not title.startswith("failed"):
        assert '<rect class="t"' in bars, title  # its wait for the first token
assert "ITL below 10 ms" in dom and "above 30 ms" in dom
print(f"timeline page: {len(lines)} request lines ({len(failed)} failed) rendered by chromium")
PY
# The dataset statistics page of the same run: three histograms of the 30 prompts.
stats="$tmp/out/run_dataset_stats.html"
[ -s "$stats" ] || { echo "no dataset statistics at $stats" >&2; exit 1; }
dump_dom "file://$stats" "$tmp/stats.html" "$tmp"
python3 - "$tmp/stats.html" <<'PY'
import re, sys
dom = open(sys.argv[1]).read()
assert "<title>aifc dataset statistics: 30 requests to aifc-sim</title>" in dom, dom[:300]
for chart in ("prompt-tokens", "output-tokens", "total-tokens"):
    svg = re.search(r'<svg[^>]*id="%s"[^>]*>(.*?)</svg>' % chart, dom, re.S)
    assert svg, chart
    counts = [int(n) for n in re.findall(r"tokens: (\d+) requests</title>", svg.group(1))]
    assert len(counts) == 20 and sum(counts) == 30, (chart, counts)
    assert re.search(r'id="%s-figures">30 requests: mean ' % chart, dom), chart
print("dataset statistics page: three histograms of 30 prompts rendered by chromium")
PY

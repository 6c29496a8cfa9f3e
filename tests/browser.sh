# Sourced by the browser tests: `browser` is Debian's chromium (or the script exits 77, skipped,
# unless AIFC_REQUIRE_BROWSER=1), and `dump_dom URL OUT TMP` writes the page as the browser built
# it, from a profile of its own, with no sandbox (root in CI) and nothing but loopback reachable.
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  [ "${AIFC_REQUIRE_BROWSER:-0}" = 1 ] && { echo "AIFC_REQUIRE_BROWSER=1 but no chromium" >&2; exit 1; }
  echo "skipped: no chromium"; exit 77
fi
dump_dom() {
  "$browser" --headless --no-sandbox --disable-gpu --user-data-dir="$3/profile" \
    --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
    --dump-dom "$1" >"$2" 2>"$3/browser.err" || {
    echo "chromium failed: $(tail -5 "$3/browser.err")" >&2; exit 1; }
}

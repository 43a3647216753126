#!/usr/bin/env bash
# Regenerate the WebAssembly kernels embedded in ui/components/latent_decoder.js from decoder_kernels.wat.
# A dev-time step only (the app never builds anything): run it after editing the .wat, then commit both files.
#
#   ui/components/wasm/build.sh            # wat2wasm from $WAT2WASM, else PATH, else /tmp/wabt
#
# wat2wasm comes from wabt; install it outside the repository, e.g.
#   mkdir -p /tmp/wabt && npm install --prefix /tmp/wabt wabt
# The bytes go in as base64 between the "BEGIN GENERATED" / "END GENERATED" lines of latent_decoder.js, with the
# .wat's sha256 (tests/test_js_decoder.py checks that the embedded bytes are from the committed .wat).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wat="$here/decoder_kernels.wat"
js="$here/../latent_decoder.js"
tool="${WAT2WASM:-$(command -v wat2wasm || echo /tmp/wabt/node_modules/.bin/wat2wasm)}"
[ -x "$tool" ] || { echo "no wat2wasm ($tool): mkdir -p /tmp/wabt && npm install --prefix /tmp/wabt wabt" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$tool" "$wat" -o "$tmp/k.wasm"   # SIMD is on by default in wabt >= 1.0.33
size=$(stat -c %s "$tmp/k.wasm")
# Chromium refuses synchronous compilation of modules over 4 KB on a page's main thread: compile() is synchronous
[ "$size" -le 4096 ] || { echo "decoder_kernels.wasm is $size bytes: keep it <= 4096 (sync compile)" >&2; exit 1; }
b64="$(base64 -w0 "$tmp/k.wasm")"
sha="$(sha256sum "$wat" | cut -d' ' -f1)"
python3 - "$js" "$sha" "$b64" <<'PY'
import re, sys
path, sha, b64 = sys.argv[1:]
src = open(path, encoding="utf-8").read()
new, n = re.subn(r'const DECODER_WASM_WAT_SHA256 = "[0-9a-f]*";\nconst DECODER_WASM = "[A-Za-z0-9+/=]*";',
                 f'const DECODER_WASM_WAT_SHA256 = "{sha}";\nconst DECODER_WASM = "{b64}";', src)
if n != 1:
    sys.exit(f"{path}: the generated lines were not found exactly once")
open(path, "w", encoding="utf-8").write(new)
PY
echo "decoder_kernels.wasm: $size bytes -> $(basename "$js") (wat sha256 ${sha:0:12})"

"""Real-browser tests of the Latent map's probe (ui/components/latent_probe.*), against `streamlit run`.

- Hovering the map decodes the code under the pointer in the browser: the code is core.cartography's inverse
  of the pointer's map point (raw axes: the point; PCA: the plane) and the painted decode equals torch's
  decode of it (<= 1e-3), at several positions, with no message to the server while hovering.
- The Delaunay (UMAP) inverse on a fixed 2-D embedding (no UMAP fit): the browser's codes equal
  DelaunayInverse.codes, its decodes equal torch's, and points beyond the hull come back as outside.
- The decoded manifold's tiles sit at core.cartography.grid_points of the window, and each tile's hole depth
  equals core.holes.hole_depth_of for the same codes.
- The hole comparison: one pointer probes every model's map.
- A click pins the probe: the pin reaches the URL, and "use as interpolation endpoint" opens the
  Interpolation page with that code as endpoint A.
- The zoom window is shareable: a wheel zoom reaches the URL (`view`) once it rests, a new page from that link
  draws the same window, and a bad `view` is ignored with the link note (the default window).
Same server fixture, skip and CI rules as tests/test_browser.py (whose fixtures are reused here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app_support import shipped_root
from test_browser import IDLE, _no_exception, _open, _settle, page, server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOL = 1e-3


def _model(name: str):
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.latent import encode_dataset

    root = shipped_root()
    if root is None:
        pytest.skip("needs the shipped checkpoints")
    ckpt = load_checkpoint(root / name, device="cpu")
    z = encode_dataset(ckpt.model, load_dataset(ckpt.meta["dataset"]).x).numpy()
    return ckpt, z


def _torch_decode(ckpt, codes) -> np.ndarray:
    with torch.no_grad():
        return ckpt.model.eval().decode(torch.as_tensor(np.asarray(codes), dtype=torch.float32)).numpy().reshape(
            len(codes), -1)


def _reports(root) -> int:
    """Messages the probe element sent to the server so far (each would be a rerun)."""
    return int(root.get_attribute("data-reports") or 0)


def _wait_probe(page, count: int = 1):
    page.locator(".lp-root[data-ready='live']").nth(count - 1).wait_for(timeout=180_000)
    _settle(page)


def _hover(page, root, panel, u: float, v: float) -> dict:
    """Move the pointer to relative position (u right, v up) of a panel's map (in element `root`) -> what the
    panel probed."""
    paints = int(root.get_attribute("data-paints") or 0)
    canvas = panel.locator("canvas.lp-map")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + u * box["width"], box["y"] + (1 - v) * box["height"])
    page.wait_for_function("([el, n]) => +(el.getAttribute('data-paints') || 0) > n",
                           arg=[root.element_handle(), paints], timeout=10_000)
    return panel.evaluate("""f => { const c = f.querySelector('canvas.lp-probe');
        return {x: +f.dataset.x, y: +f.dataset.y, inside: f.dataset.inside === 'true',
                code: c.__llCode ? Array.from(c.__llCode) : null,
                decoded: c.__llDecoded ? Array.from(c.__llDecoded) : null}; }""")


POSITIONS = [(0.5, 0.5), (0.2, 0.3), (0.8, 0.75), (0.05, 0.95), (0.62, 0.1)]


@pytest.mark.parametrize("name,kind", [("mnist5k-aae-uniform-z2", "raw"), ("mnist5k-aae-uniform-z16", "pca")])
def test_hover_decodes_the_inverse_like_torch(page, server, name, kind):  # noqa: F811
    from core.cartography import PcaInverse, RawInverse

    ckpt, z = _model(name)
    _open(page, f"{server}/latent_map?ckpt=shipped/{name}")
    _wait_probe(page)
    root = page.locator(".lp-root").first
    panel = root.locator("figure.lp-panel").first
    panel.scroll_into_view_if_needed()
    inverse = RawInverse() if kind == "raw" else PcaInverse(z)
    sent = _reports(root)
    for u, v in POSITIONS:
        got = _hover(page, root, panel, u, v)
        assert got["inside"], "raw axes and the PCA plane cover the whole map"
        want_code = inverse.codes([[got["x"], got["y"]]])[0][0]
        np.testing.assert_allclose(got["code"], want_code, atol=1e-4, err_msg=f"{kind} inverse at {u, v}")
        diff = float(np.abs(np.asarray(got["decoded"]) - _torch_decode(ckpt, [got["code"]])[0]).max())
        assert diff <= TOL, f"{name} at {u, v}: browser vs torch max |diff| = {diff:.2e}"
    page.wait_for_timeout(300)
    assert _reports(root) == sent, "hovering must not talk to the server (no rerun)"
    # the page's own job polls (the hole table's worker job) may still rerun it: wait for them, then no exception
    page.wait_for_selector(IDLE, timeout=120_000)
    _no_exception(page, name)


def test_delaunay_inverse_in_browser_equals_python_and_reports_outside(page, server):  # noqa: F811
    """A fixed 2-D embedding (the codes' PCA plus a fixed wobble) stands in for a UMAP: same inverse class."""
    from core.cartography import DelaunayInverse, codes_from_spec
    from core.projection import project

    name = "mnist5k-aae-uniform-z16"
    ckpt, z = _model(name)
    _open(page, f"{server}/latent_map?ckpt=shipped/{name}")
    _wait_probe(page)
    sub = z[:600]
    xy = np.asarray(project(sub, "pca"), np.float64)
    xy = xy + 0.3 * np.sin(np.arange(len(xy) * 2).reshape(-1, 2))  # not a linear image of the codes
    inv = DelaunayInverse(sub, xy)
    spec = inv.to_browser()
    lo, hi = xy.min(0), xy.max(0)
    g = np.random.default_rng(0)
    inside_pts = inv.xy[g.choice(len(xy), 6)].astype(np.float64) * 0.7 + xy.mean(0) * 0.3  # towards the centre
    outside_pts = np.array([[hi[0] + 5, 0.0], [lo[0] - 1, lo[1] - 1], [0.0, hi[1] + 3]])
    pts = np.concatenate([inside_pts, outside_pts])
    got = page.evaluate("([sha, spec, pts]) => window.latentLabProbe.probeAt(sha, spec, pts)",
                        [ckpt.sha256, spec, pts.tolist()])
    want, inside = inv.codes(pts)
    assert got["inside"] == inside.tolist() and inside[:6].all() and not inside[6:].any()
    assert all(c is None for c in got["codes"][6:]) and all(d is None for d in got["decoded"][6:])
    codes = np.asarray(got["codes"][:6], np.float64)
    np.testing.assert_allclose(codes, want[:6], atol=1e-5)
    np.testing.assert_allclose(codes, codes_from_spec(spec, pts)[0][:6], atol=1e-9)
    diff = float(np.abs(np.asarray(got["decoded"][:6]) - _torch_decode(ckpt, codes)).max())
    assert diff <= TOL, f"browser vs torch max |diff| = {diff:.2e}"


def test_grid_tiles_and_hole_depth_equal_core(page, server):  # noqa: F811
    from core.cartography import grid_points
    from core.holes import hole_depth_of

    name = "mnist5k-aae-uniform-z2"
    ckpt, z = _model(name)
    _open(page, f"{server}/latent_map?ckpt=shipped/{name}&grid=8")
    _wait_probe(page, 2)  # the map's probe and the hole comparison's
    page.wait_for_function("() => { const g = window.latentLabProbe.grids(); "
                           "return g.length >= 3 && g[0].n === 8 && g.every((x) => x.done); }", timeout=120_000)
    grids = page.evaluate("() => window.latentLabProbe.grids()")
    main = grids[0]
    assert main["n"] == 8 and len(main["codes"]) == 64
    np.testing.assert_allclose(main["points"], grid_points(main["win"], 8), atol=1e-9)
    codes = np.asarray(main["codes"], np.float64)  # raw axes: every tile is inside
    np.testing.assert_allclose(codes, main["points"], atol=1e-12)
    want = hole_depth_of(codes, torch.from_numpy(z))
    np.testing.assert_allclose(main["depth"], want, rtol=1e-4)
    assert np.ptp(want) > 0.5, "a window over the whole map holds both filled tiles and holes"
    images = np.asarray(main["images"], np.float32)  # the tiles as painted (decodeMany), before 8-bit rounding
    diff = float(np.abs(images - _torch_decode(ckpt, codes)).max())
    assert diff <= 1e-3, f"grid tiles vs torch max |diff| = {diff:.2e}"
    # the hole comparison: one grid per compared model (8 x 8 by default)
    compared = grids[1:]
    assert len(compared) >= 2 and all(g["n"] == 8 and len(g["depth"]) == 64 for g in compared)
    other = compared[0]  # its own model's codes and training set (raw axes: every tile inside)
    _, z_other = _model(other["title"])
    np.testing.assert_allclose(other["depth"], hole_depth_of(np.asarray(other["codes"]), torch.from_numpy(z_other)),
                               rtol=1e-4)
    _no_exception(page, "grid")


def test_grid_decoded_by_workers_equals_the_page_and_torch(page, server):  # noqa: F811
    """On 4+ cores the grid's batches go to Web Workers (forced here: this box may have 2): same tiles as torch's
    decode, and the very same values as the page's own thread decoded."""
    name = "mnist5k-aae-uniform-z16"
    ckpt, _ = _model(name)
    _open(page, f"{server}/latent_map?ckpt=shipped/{name}&grid=8&hgrid=0")
    _wait_probe(page, 1)
    done = "() => { const g = window.latentLabProbe.grids()[0]; return g && g.n === 8 && g.done; }"
    page.wait_for_function(done, timeout=120_000)
    before = page.evaluate("() => window.latentLabProbe.grids()[0]")
    root = page.locator(".lp-root").first
    count = int(root.get_attribute("data-grids"))
    page.evaluate("() => { window.__latentLabGridWorkers = 2; window.latentLabProbe.regrid(); }")
    try:
        page.wait_for_function("([el, n]) => +el.getAttribute('data-grids') > n", arg=[root.element_handle(), count],
                               timeout=120_000)
        after = page.evaluate("() => window.latentLabProbe.grids()[0]")
    finally:
        page.evaluate("() => { delete window.__latentLabGridWorkers; }")
    assert after["workers"] == 2 and after["done"], "the grid was decoded by the 2 workers asked for"
    inside = [i for i, z in enumerate(after["codes"]) if z is not None]
    assert inside and after["codes"] == before["codes"]
    images = np.asarray([after["images"][i] for i in inside], np.float32)
    np.testing.assert_array_equal(images, np.asarray([before["images"][i] for i in inside], np.float32))
    diff = float(np.abs(images - _torch_decode(ckpt, [after["codes"][i] for i in inside])).max())
    assert diff <= 1e-3, f"worker tiles vs torch max |diff| = {diff:.2e}"
    _no_exception(page, "grid workers")


def test_one_pointer_probes_every_compared_model(page, server):  # noqa: F811
    _open(page, f"{server}/latent_map?ckpt=shipped/mnist5k-aae-uniform-z2&hgrid=0")
    _wait_probe(page, 2)
    compare = page.locator(".lp-root").nth(1)
    panels = compare.locator("figure.lp-panel")
    assert panels.count() >= 2
    compare.scroll_into_view_if_needed()
    before = [p.get_attribute("data-x") for p in panels.all()]
    _hover(page, compare, panels.nth(1), 0.3, 0.6)
    after = panels.all()
    assert all(p.get_attribute("data-x") != b for p, b in zip(after, before)), "every model is probed"
    for p in after:  # each at the same relative position of its own (padded bounding box) window
        assert p.evaluate("f => !!f.querySelector('canvas.lp-probe').__llDecoded")
    _no_exception(page, "comparison pointer")


def test_click_pins_and_sends_the_code_to_interpolation(page, server):  # noqa: F811
    name = "mnist5k-aae-uniform-z2"
    _open(page, f"{server}/latent_map?ckpt=shipped/{name}")
    _wait_probe(page)
    root = page.locator(".lp-root").first
    panel = root.locator("figure.lp-panel").first
    panel.scroll_into_view_if_needed()
    got = _hover(page, root, panel, 0.4, 0.55)
    box = panel.locator("canvas.lp-map").bounding_box()
    sent = _reports(root)
    page.mouse.click(box["x"] + 0.4 * box["width"], box["y"] + 0.45 * box["height"])
    page.wait_for_function("() => location.search.includes('pins=raw')", timeout=60_000)
    _settle(page)
    assert _reports(root) > sent, "a click (unlike hovering) reports to the server"
    assert page.get_by_text("Use as interpolation endpoint A").count() == 1
    page.get_by_text("Use as interpolation endpoint A").click()
    page.wait_for_function("() => location.pathname.endsWith('/interpolation') && location.search.includes('za=')",
                           timeout=60_000)
    _settle(page)
    za = [float(v) for v in page.evaluate("() => new URLSearchParams(location.search).get('za')").split(",")]
    np.testing.assert_allclose(za, got["code"], atol=1e-4)
    assert page.get_by_text("A = a pinned code").count() >= 1
    _no_exception(page, "interpolation from a pin")


def _grid_win(page) -> list[float]:
    page.wait_for_function("() => { const g = window.latentLabProbe.grids()[0]; return g && g.n === 8 && g.done; }",
                           timeout=120_000)
    return page.evaluate("() => window.latentLabProbe.grids()[0].win")


def test_zoom_window_reaches_the_url_and_a_link_restores_it(page, server):  # noqa: F811
    url = f"{server}/latent_map?ckpt=shipped/mnist5k-aae-uniform-z2&grid=8&hgrid=0"
    _open(page, url)
    _wait_probe(page)
    whole = _grid_win(page)
    root = page.locator(".lp-root").first
    canvas = root.locator("canvas.lp-map").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.6 * box["height"])
    for _ in range(3):  # zoom in around the pointer
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(60)
    page.wait_for_function("() => location.search.includes('view=')", timeout=60_000)
    _settle(page)
    rel = [float(v) for v in page.evaluate("() => new URLSearchParams(location.search).get('view')").split(",")]
    assert 0 < rel[0] < rel[1] < 1 and 0 < rel[2] < rel[3] < 1, rel  # inside the whole map: zoomed in
    zoomed = _grid_win(page)
    # the grid covers that relative part of the whole window
    wx, wy = whole[1] - whole[0], whole[3] - whole[2]
    np.testing.assert_allclose(zoomed, [whole[0] + rel[0] * wx, whole[0] + rel[1] * wx,
                                        whole[2] + rel[2] * wy, whole[2] + rel[3] * wy], rtol=1e-9, atol=1e-9)
    link = page.url
    _open(page, link)  # a new session from the link: the same window
    _wait_probe(page)
    np.testing.assert_allclose(_grid_win(page), zoomed, rtol=1e-9, atol=1e-9)
    _open(page, url + "&view=1,0,0,1")  # a bad window: ignored with the note, the whole map
    _wait_probe(page)
    assert page.get_by_text("Ignored bad link parameter(s): view.").count() == 1
    np.testing.assert_allclose(_grid_win(page), whole, rtol=1e-9, atol=1e-9)
    _no_exception(page, "zoom window in the URL")

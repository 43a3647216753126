"""A user's images: a .zip (a browser upload) or a folder (the CLI's imagefolder:PATH) of class folders, one class
per image's folder, PNG / JPEG decoded with PIL to uint8 (N, C, H, W) (C = 1 grey or 3 RGB) at one size.

Checked before anything is decoded: members inside the archive (no traversal), no symbolic links, the decompressed
size capped from the zip's directory and again while reading (a member that inflates past what it claims fails),
each image's header under MAX_IMAGE_SIDE pixels a side; undecodable images are named together. The shared checks
(rows, classes, sizes) are core.user_data's.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import numpy as np

from core.data import MAX_DATA_BYTES, DatasetError, check_data_size
from core.user_data import MAX_ROWS, UserArrays, check_arrays, check_file_size, open_zip

MAX_ZIP_UNPACKED = MAX_DATA_BYTES        # what a zip's members may inflate to, all together
MAX_IMAGE_SIDE = 4096                    # a member claiming more is refused from its header (a pixel bomb)
MAX_IMAGE_BYTES = 64 << 20               # one image file: a 4096 x 4096 RGBA image is 64 MB even uncompressed
MAX_RESIZE = 256                         # the largest side a zip's images are resized to
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
COLOURS = ("grey", "rgb")
DEFAULT_SIZE = {"grey": 28, "rgb": 32}   # pixels a side when none is given (the page's defaults too)
FOLDER_SPEC = "imagefolder:PATH[:grey|rgb[:SIZE]]"


def _member_name_checked(name: str, archive: str) -> str:
    """A zip member's name, refused when it would land outside the archive if extracted."""
    clean = name.replace("\\", "/")
    parts = clean.split("/")
    if clean.startswith("/") or ".." in parts or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise DatasetError(f"{archive}: member {name!r} points outside the archive (path traversal); such "
                           f"archives are refused: zip the class folders themselves")
    return clean


def _skipped(path: str) -> bool:
    """macOS resource forks, hidden files and folders: not images of the data set."""
    return any(p.startswith(".") or p == "__MACOSX" for p in path.split("/"))


def _decode_image(raw: bytes, label: str, mode: str, size: int) -> np.ndarray:
    """One image -> uint8 (C, size, size); ValueError naming what is wrong (the caller names the file)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.format not in ("PNG", "JPEG"):
                raise ValueError(f"is {im.format}, not PNG or JPEG")
            w, h = im.size
            if max(w, h) > MAX_IMAGE_SIDE:
                raise ValueError(f"is {w}x{h}, over {MAX_IMAGE_SIDE} pixels a side")
            im = im.convert(mode)
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot be decoded ({type(exc).__name__})") from exc
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _images_to_arrays(items, source: str, colour: str, size: int, kind: str) -> UserArrays:
    """items: [(member path, class name, bytes reader)] -> UserArrays; undecodable images named together."""
    mode = {"grey": "L", "rgb": "RGB"}[colour]
    classes = sorted({c for _, c, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    channels = 1 if mode == "L" else 3
    check_data_size(source, len(items) * channels * size * size, len(items) * channels * size * size)
    x = np.empty((len(items), channels, size, size), dtype=np.uint8)
    y = np.empty(len(items), dtype=np.int64)
    bad = []
    for i, (path, cls, read) in enumerate(items):
        try:
            x[i] = _decode_image(read(), cls, mode, size)
        except ValueError as exc:
            bad.append(f"{path} {exc}")
        y[i] = index[cls]
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DatasetError(f"{source}: {len(bad)} image(s) could not be read: {'; '.join(bad[:5])}{more}. Remove "
                           f"or re-save them as PNG / JPEG")
    check_arrays(source, x, y, classes)
    return UserArrays(x, y, classes, source, {"kind": kind, "colour": colour, "size": size})


def image_folder_spec(spec: str) -> tuple[str, str, int]:
    """`imagefolder:PATH[:grey|rgb[:SIZE]]` -> (PATH, colour, size), checked as a browser upload's options are.

    PATH may itself hold colons: the options are read from the right, and only when PATH as written is not a file
    or folder that exists. No size: 28 for grey, 32 for RGB (DEFAULT_SIZE)."""
    body = spec[len("imagefolder:"):] if spec.startswith("imagefolder:") else spec
    if not body:
        raise DatasetError(f"{spec}: write {FOLDER_SPEC} (a folder of class folders, or a .zip of them)")
    if Path(body).expanduser().exists():
        return body, "grey", DEFAULT_SIZE["grey"]
    parts = body.rsplit(":", 2)
    path, colour, size = body, "grey", None
    if len(parts) == 3 and parts[1].lower() in COLOURS:
        path, colour, size = parts[0], parts[1].lower(), parts[2]
    elif len(parts) >= 2 and parts[-1].lower() in COLOURS:
        path, colour = body.rsplit(":", 1)[0], parts[-1].lower()
    elif len(parts) == 3 and parts[2].isdigit() and Path(parts[0]).expanduser().exists():
        raise DatasetError(f"{spec}: the colour {parts[1]!r} is neither grey nor rgb; write {FOLDER_SPEC}")
    elif len(parts) >= 2 and parts[-1].isdigit():
        raise DatasetError(f"{spec}: give the colour before the size: {FOLDER_SPEC}, e.g. "
                           f"imagefolder:{body.rsplit(':', 1)[0]}:grey:{parts[-1]}")
    if size is None:
        size = DEFAULT_SIZE[colour]
    elif not size.isdigit():
        raise DatasetError(f"{spec}: the size {size!r} is not a whole number of pixels; write {FOLDER_SPEC}")
    _check_image_options(spec, colour, int(size))
    return path, colour, int(size)


def _check_image_options(source: str, colour: str, size: int) -> None:
    if colour not in COLOURS:
        raise DatasetError(f"{source}: colour must be 'grey' or 'rgb', got {colour!r}")
    if not 4 <= int(size) <= MAX_RESIZE:
        raise DatasetError(f"{source}: image size must be 4 to {MAX_RESIZE} pixels, got {size}")


def _class_of(path: str, archive: str) -> str:
    parts = path.split("/")
    if len(parts) < 2:
        raise DatasetError(f"{archive}: image {path!r} is not inside a class folder; put each class's images in a "
                           f"folder named after the class")
    return parts[-2]


def _check_image_bytes(source: str, member: str, n_bytes: int) -> None:
    """One image file over MAX_IMAGE_BYTES is refused before it is read: the zip's total cap alone let one 600 MB
    member of a 1 MB zip be read whole (+1.2 GB of server memory) before PIL said it was no image."""
    if n_bytes > MAX_IMAGE_BYTES:
        raise DatasetError(f"{source}: {member!r} is {n_bytes / 2**20:,.0f} MB unpacked; an image may be at most "
                           f"{MAX_IMAGE_BYTES >> 20} MB (a zip bomb, or a file that is no image of this set): "
                           f"remove it")


def parse_image_zip(data: bytes, source: str = "upload.zip", colour: str = "grey", size: int = 28) -> UserArrays:
    """A zip of class folders (cats/1.png, dogs/2.jpg or top/cats/1.png): one class per image's folder."""
    check_file_size(source, len(data))
    _check_image_options(source, colour, size)
    zf = open_zip(data, source, "a .zip", "zip the folder that holds one folder per class",
                  magics=(b"PK\x03\x04", b"PK\x05\x06"))
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ROWS + 10_000:
            raise DatasetError(f"{source}: {len(infos):,} members; at most {MAX_ROWS:,} images are taken")
        claimed = 0
        members = []
        for info in infos:
            path = _member_name_checked(info.filename, source)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DatasetError(f"{source}: member {info.filename!r} is a symbolic link; links are refused: "
                                   f"zip the image files themselves")
            claimed += info.file_size
            if claimed > MAX_ZIP_UNPACKED:
                raise DatasetError(f"{source}: its members unpack to more than {MAX_ZIP_UNPACKED >> 20} MB (a zip "
                                   f"bomb, or too big a set); resize or subsample the images first")
            if info.is_dir() or _skipped(path) or not path.lower().endswith(IMAGE_SUFFIXES):
                continue
            _check_image_bytes(source, info.filename, info.file_size)   # from the directory, before any read
            members.append((path, info))
        if not members:
            raise DatasetError(f"{source}: no PNG or JPEG images found; the zip should hold one folder per class")
        budget = [MAX_ZIP_UNPACKED]

        def reader(info):
            def read() -> bytes:
                # A bounded read: zipfile inflates a member only up to the size the directory states and then
                # checks its CRC, so a member that holds more than it claims (a bomb) fails here, read no further.
                try:
                    with zf.open(info) as fp:
                        raw = fp.read(min(info.file_size, budget[0]) + 1)
                except zipfile.BadZipFile as exc:
                    raise DatasetError(f"{source}: member {info.filename!r} does not match the size and checksum its "
                                       f"directory states (a damaged archive or a zip bomb); such archives are "
                                       f"refused") from exc
                except (OSError, EOFError, NotImplementedError) as exc:
                    raise ValueError(f"cannot be unpacked ({exc})") from exc
                if len(raw) > info.file_size:
                    raise DatasetError(f"{source}: member {info.filename!r} inflates past the size its directory "
                                       f"states (a zip bomb); such archives are refused")
                budget[0] -= len(raw)
                return raw
            return read

        items = [(p, _class_of(p, source), reader(i)) for p, i in members]
        return _images_to_arrays(items, source, colour, size, "zip of image folders")


def parse_image_folder(folder: str | Path, colour: str = "grey", size: int = 28) -> UserArrays:
    """A folder of class folders on disk (the CLI's imagefolder:PATH); symbolic links are refused, not followed."""
    root = Path(folder).expanduser()
    name = f"imagefolder:{folder}"
    if root.is_file() and root.suffix.lower() == ".zip":
        check_file_size(name, root.stat().st_size)
        return parse_image_zip(root.read_bytes(), name, colour, size)
    if not root.is_dir():
        raise DatasetError(f"{name}: no such folder; point imagefolder: at a folder holding one folder per class "
                           f"(or a .zip of them)")
    _check_image_options(name, colour, size)
    items, total = [], 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise DatasetError(f"{name}: {rel} is a symbolic link; links are refused: copy the files in")
        if not path.is_file() or _skipped(rel) or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        _check_image_bytes(name, rel, path.stat().st_size)
        total += path.stat().st_size
        if total > MAX_ZIP_UNPACKED or len(items) >= MAX_ROWS:
            raise DatasetError(f"{name}: more than {MAX_ZIP_UNPACKED >> 20} MB or {MAX_ROWS:,} images; subsample")
        items.append((rel, _class_of(rel, name), path.read_bytes))
    if not items:
        raise DatasetError(f"{name}: no PNG or JPEG images found; the folder should hold one folder per class")
    out = _images_to_arrays(items, name, colour, size, "folder of image folders")
    return out

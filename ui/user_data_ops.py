"""Your data: which uploaded data sets this session may see, storing an upload, deleting one.

An upload belongs to the browser that sent it (ui.owners: its cookie token, or the token it was asked to keep
before the cookie came back; never its address). The manifest keeps sha256 hashes of owner keys, never a token.
A session sees an upload only when one of its own hashes is in the manifest, unless the operator sets
LATENT_LAB_SHARE_UPLOADS=1 (a trusted group, or one user). A link carrying `dataset=upload:<sha>` opens it only for its owner: anyone else gets
"not yours or not found" - the same words for both, so a guessed hash tells nothing.

No torch here: the sidebar calls `visible_uploads` on every page (manifests are small JSON files).
"""

from __future__ import annotations

import os

import streamlit as st

from core import data_store
from core.data import DatasetError

SHARE_ENV = "LATENT_LAB_SHARE_UPLOADS"


def share_all() -> bool:
    return os.environ.get(SHARE_ENV, "").strip().lower() in ("1", "true", "yes")


def session_owner_hashes() -> frozenset[str]:
    """Hashes of this session's browser tokens: the cookie it sent, and the token it asked its browser to keep
    (ui.owners.remember_browser), so an upload made on a first visit (no cookie yet) is still this browser's
    after a reload. Never its address: every cookie-less client behind one router (a classroom) or on loopback
    shares an address, and must not share uploads. A browser that refuses cookies keeps its uploads for this
    session only."""
    from ui import owners

    keys = set()
    token = owners._cookie_token()
    if token:
        keys.add(f"browser:{token}")
    pending = st.session_state.get(owners._NEW_TOKEN)
    if pending:
        keys.add(f"browser:{pending}")
    if not keys:  # outside a browser session (bare mode): the owner key names it
        keys.add(owners.owner_key())
    return frozenset(data_store.owner_hash(k) for k in keys)


def visible_uploads() -> list[dict]:
    mine, share = session_owner_hashes(), share_all()
    return [m for m in data_store.list_manifests() if data_store.visible(m, mine, share)]


def is_upload(spec: str | None) -> bool:
    return isinstance(spec, str) and spec.startswith(data_store.PREFIX)


def not_visible_message(spec: str) -> str:
    return (f"Data set {spec[:19]}… is not yours or does not exist (uploads are private to the browser that sent "
            f"them; deleted ones are gone). Upload it on **Your data**, or ask its owner for the file.")


def label(spec: str, manifests: list[dict]) -> str:
    """The picker's label for a dataset spec: an upload by its name."""
    for m in manifests:
        if m.get("spec") == spec:
            return f"{m.get('name', '?')}  [your data · {spec[7:15]}]"
    return spec


def store_upload(files: list[tuple[str, bytes]], name: str, *, label_column: str | None = None,
                 colour: str = "grey", size: int = 28) -> dict:
    """Parse, validate and store one upload (two files: an IDX pair); returns its manifest. DatasetError
    (with what to do) when anything is wrong; then nothing was written."""
    from core import user_data

    if len(files) == 2:
        (n1, b1), (n2, b2) = sorted(files, key=lambda f: "label" in f[0].lower())  # images first, labels second
        arrays = user_data.parse_idx_pair(b1, b2, source=f"{n1} + {n2}")
    elif len(files) == 1:
        arrays = user_data.parse_upload(files[0][1], files[0][0], label_column=label_column, colour=colour,
                                        size=size)
    else:
        raise DatasetError("upload one file (.npz, .csv or .zip of class folders), or two for an IDX pair "
                           "(images and labels)")
    return data_store.store(arrays, name, owners=sorted(session_owner_hashes()))


def delete_upload(spec: str) -> bool:
    """Remove this session's ownership; the files go when no other browser holds the same data."""
    return data_store.delete(spec[len(data_store.PREFIX):], session_owner_hashes())

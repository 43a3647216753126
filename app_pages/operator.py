"""Operator: every job on this server (whose, what, where it is, how old) with a Stop button each.

Listed in the navigation only when LATENT_LAB_OPERATOR_TOKEN is set and the URL carries ?operator=TOKEN
(ui.owners.is_operator); the page checks that again itself.
"""

import time

import pandas as pd
import streamlit as st

from ui import background, owners, session_jobs

if not owners.is_operator():
    st.stop()

st.title("Operator: jobs")
st.caption(f"Session jobs of closed tabs are stopped by themselves: waiting ones {session_jobs.GONE_AFTER_S:.0f} s, running "
           f"ones {session_jobs.RUNNING_GRACE_S:.0f} s after their browser was last seen. Stop any job here at once.")
st.button("Refresh", key="w_op_refresh")

now, wall = session_jobs.clock(), time.time()


def _owner(owner: str) -> str:
    kind, _, value = owner.partition(":")
    return f"{kind}:{value[:8]}…" if kind == "browser" else owner  # enough to tell browsers apart


tracked = list(reversed(session_jobs.tracked_jobs()))  # newest first
st.subheader("Session jobs")
if not tracked:
    st.caption("None yet.")
for t in tracked:
    h = t.handle
    seen = session_jobs.last_seen(t.owner)
    cols = st.columns([1, 2, 2, 2, 2, 1])
    cols[0].markdown(f"**#{t.id}** {t.kind}")
    cols[1].markdown(f"`{_owner(t.owner)}`" + (f" from {t.address}" if t.address else ""))
    place = h.queue_position if not h.done else 0
    cols[2].markdown(h.status + (f", place {place} in the queue" if place else "")
                     + (f" (stopped: {t.stopped_by})" if t.stopped_by else ""))
    cols[3].markdown(f"started {now - t.submitted:.0f} s ago")
    cols[4].markdown("browser seen " + (f"{now - seen:.0f} s ago" if seen is not None else "never"))
    if not h.done and t.stopped_by:   # asked already: one Stop is enough (a running job ends at its next step)
        cols[5].markdown("stopping…")
    elif not h.done and cols[5].button("Stop", key=f"w_op_stop_{t.id}"):
        session_jobs.stop_job(t.id, by="operator")
        st.toast(f"Stopping job #{t.id}…")
        st.rerun()

st.subheader("Shared jobs (UMAP fits, hole metrics, saliency classifiers)")
shared = background.all_jobs()
if not shared:
    st.caption("None yet.")
else:
    st.dataframe(pd.DataFrame([{"job": name, "status": h.status, "place": h.queue_position,
                                "age (s)": round(wall - h.submitted_at)} for name, _key, h in shared]),
                 hide_index=True)
    for name, _key, h in [j for j in shared if not j[2].done]:
        if st.button(f"Stop {name} ({h.status})", key=f"w_op_stop_shared_{h.id}"):
            h.cancel()
            st.rerun()

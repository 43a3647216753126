"""What a method is, for the protocol: does it generate examples, does it use the unlabelled pool.

A method is *pool-using* when it reads the unlabelled pool itself (distill) or needs a generator trained on it
(gen_data = "pool"); otherwise it is *shots-only* — it sees nothing but the k labelled shots per class. Tables
show the mark, because "augmentation beats none" means little when the augmentation saw 5,000 more images.
"""
from __future__ import annotations

from core.augment import parse_method


def generates(method: str) -> bool:
    """True when the method adds examples (expand / online stages): its cells sweep n_generated."""
    return any(a.stage in ("expand", "online") for a in parse_method(method))


def uses_pool(method: str, gen_data: str = "pool") -> bool:
    from core.fewshot.generators import GENERATORS

    for a in parse_method(method):
        if a.uses_pool:
            return True
        if gen_data == "pool" and any(GENERATORS[n].scope == "pool" for n in a.needs if n in GENERATORS):
            return True
    return False


def trains_alone(method: str) -> bool:
    """True when the method's batches read the classifier being trained (an online part with a `classifier`
    keyword: fixmatch's pseudo-labels), so its cells cannot be trained as one stacked model (core.fewshot.batched):
    the runner gives them single-cell tasks even when it batches the others."""
    import inspect

    return any(a.stage == "online" and "classifier" in inspect.signature(a.fn).parameters
               for a in parse_method(method))


def data_mark(method: str, gen_data: str = "pool") -> str:
    return "pool" if uses_pool(method, gen_data) else "shots"

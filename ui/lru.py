"""A small thread-safe least-recently-used cache bounded by entries and by bytes.

For the process-wide memos of the UI edge whose values are large or many (loaded datasets,
uploaded checkpoints, file hashes): st.cache_resource bounds only the number of entries, and a
dataset can weigh 10 MB (mnist5k) or 600 MB (CIFAR-10). The newest entry is always kept, even
when it alone exceeds max_bytes (otherwise a big dataset could never be used at all).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class Lru:
    def __init__(self, max_entries: int, max_bytes: int | None = None, size: Callable[[Any], int] = lambda v: 0):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries, self.max_bytes, self._size = max_entries, max_bytes, size
        self._items: "OrderedDict[Hashable, tuple[Any, int]]" = OrderedDict()
        self._bytes = 0
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items

    @property
    def nbytes(self) -> int:
        return self._bytes

    def keys(self) -> list:
        with self.lock:
            return list(self._items)

    def get(self, key, default=None):
        with self.lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key, value) -> None:
        with self.lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            n = int(self._size(value))
            self._items[key] = (value, n)
            self._bytes += n
            self._evict()

    def get_or_create(self, key, factory: Callable[[], Any]):
        """The cached value, or factory() stored under key. The lock is held while factory runs, so two
        sessions asking for the same dataset load it once (loads are seconds; they queue)."""
        with self.lock:
            if key in self._items:
                return self.get(key)
            value = factory()
            self.put(key, value)
            return value

    def pop(self, key, default=None):
        with self.lock:
            if key not in self._items:
                return default
            value, n = self._items.pop(key)
            self._bytes -= n
            return value

    def clear(self) -> None:
        with self.lock:
            self._items.clear()
            self._bytes = 0

    def _evict(self) -> None:
        while len(self._items) > 1 and (len(self._items) > self.max_entries
                                        or (self.max_bytes is not None and self._bytes > self.max_bytes)):
            _, (_, n) = self._items.popitem(last=False)
            self._bytes -= n

"""A job's key-value store in memory (what torch.distributed's TCPStore offers), shared by ranks run as threads."""

from __future__ import annotations

import threading


class MemoryKeyValue:
    """Thread-safe; ``broken`` makes every call fail as a store whose server went away would."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.broken = False
        self.calls = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        self.calls += 1
        if self.broken:
            raise RuntimeError("Connection reset by peer")

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._enter()
            self.data[key] = value.encode()

    def get(self, key: str) -> bytes:
        with self._lock:
            self._enter()
            if key not in self.data:
                raise RuntimeError(f"key {key} not found before the timeout")
            return self.data[key]

    def check(self, keys: list[str]) -> bool:
        with self._lock:
            self._enter()
            return all(k in self.data for k in keys)

    def add(self, key: str, value: int) -> int:
        with self._lock:
            self._enter()
            number = int(self.data.get(key, b"0")) + value
            self.data[key] = str(number).encode()
            return number

    def delete_key(self, key: str) -> bool:
        with self._lock:
            self._enter()
            return self.data.pop(key, None) is not None


class RankView:
    """One rank's connection to a shared store: it can break alone (the rank died) while the store lives on."""

    def __init__(self, shared: MemoryKeyValue) -> None:
        self.shared = shared
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            raise RuntimeError("Broken pipe")

    def set(self, key: str, value: str) -> None:
        self._check()
        self.shared.set(key, value)

    def get(self, key: str) -> bytes:
        self._check()
        return self.shared.get(key)

    def check(self, keys: list[str]) -> bool:
        self._check()
        return self.shared.check(keys)

    def add(self, key: str, value: int) -> int:
        self._check()
        return self.shared.add(key, value)

    def delete_key(self, key: str) -> bool:
        self._check()
        return self.shared.delete_key(key)

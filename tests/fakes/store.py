"""A store that refuses some writes, as a locked database or a full disk would."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from wattwise.errors import StoreError
from wattwise.records import Artifact, Run, Sample
from wattwise.store.base import RunStore


class FailingStore(RunStore):
    """Wraps a real store; refuses to save the final record (as a locked or full disk would)."""

    def __init__(self, inner: RunStore, fail_final: bool = True, fail_checkpoints: bool = False) -> None:
        self.inner = inner
        self.fail_final = fail_final
        self.fail_checkpoints = fail_checkpoints

    def begin(self, run: Run) -> None:
        self.inner.begin(run)

    def save(self, run: Run) -> None:
        if (run.status != "running" and self.fail_final) or (run.status == "running" and self.fail_checkpoints):
            raise StoreError("database is locked")
        self.inner.save(run)

    def append_samples(self, run_id: str, samples: Sequence[Sample]) -> None:
        if self.fail_checkpoints:
            raise StoreError("database is locked")
        self.inner.append_samples(run_id, samples)

    def get(self, ref: str) -> Run:
        return self.inner.get(ref)

    def list_runs(
        self,
        limit: int | None = 50,
        status: str | None = None,
        name: str | None = None,
        *,
        region: str | None = None,
        name_contains: str | None = None,
        order_by: str = "started_at",
        descending: bool = True,
        offset: int = 0,
    ) -> list[Run]:
        return self.inner.list_runs(
            limit,
            status,
            name,
            region=region,
            name_contains=name_contains,
            order_by=order_by,
            descending=descending,
            offset=offset,
        )

    def iter_samples(self, run_id: str, *, batch_size: int = 5000) -> Iterator[Sample]:
        return self.inner.iter_samples(run_id, batch_size=batch_size)

    def add(self, items: Sequence[tuple[Run, Sequence[Sample]]], *, replace: bool = False) -> None:
        self.inner.add(items, replace=replace)

    def update(self, run_id: str, change: Callable[[Run], Run]) -> Run:
        if self.fail_final:
            raise StoreError("database is locked")
        return self.inner.update(run_id, change)

    def count(self) -> int:
        return self.inner.count()

    def delete(self, run_id: str) -> None:
        self.inner.delete(run_id)

    def save_artifact(self, artifact: Artifact) -> None:
        self.inner.save_artifact(artifact)

    def list_artifacts(self, kind: str | None = None, limit: int | None = 50) -> list[Artifact]:
        return self.inner.list_artifacts(kind, limit)

    def get_artifact(self, ref: str, kind: str | None = None) -> Artifact:
        return self.inner.get_artifact(ref, kind)

    @property
    def read_only(self) -> bool:
        return self.inner.read_only

    @property
    def persistent(self) -> bool:
        return self.inner.persistent

    def close(self) -> None:
        self.inner.close()

"""core.ports.conforms: isinstance against a runtime_checkable Protocol, decided once per class."""

from __future__ import annotations

from core.ports import MergingChannel, conforms


class Merges:
    scheme = "slack"
    merge_limit = 10

    async def send(self, delivery: object) -> None: ...

    async def send_merged(self, deliveries: object) -> None: ...

    async def aclose(self) -> None: ...


class Plain:
    scheme = "console"
    async def send(self, delivery: object) -> None: ...

    async def aclose(self) -> None: ...


def test_conforms_answers_as_isinstance_does() -> None:
    assert conforms(Merges(), MergingChannel)
    assert not conforms(Plain(), MergingChannel)
    for obj in (Merges(), Plain(), object(), Merges()):  # the second time, from the cache
        assert conforms(obj, MergingChannel) == isinstance(obj, MergingChannel)

"""The private faust and aiokafka internals the stream worker leans on, each checked here so that an upgrade that
changes one fails this test instead of the pipeline (faust-streaming and aiokafka are pinned in pyproject.toml).

    faust.streams._current_event            Staged reads and writes with their own event current (rocksdb shards by it)
    faust Consumer._commit                  the worker commits what it processed (faust's commit skips acks=False)
    AIOKafkaConsumerThread._create_worker_consumer / Consumer._new_consumer_thread / App._new_transport
                                            the transport that bounds the worker consumer's fetch wait
    rocksdb Store.set_persisted_offset      the changelog offsets the worker's own writes reached
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

import faust
import pytest
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import _current_event, current_event
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import aiokafka as driver


@pytest.mark.parametrize(("owner", "name", "coroutine"), [
    (FaustConsumer, "_commit", True),
    (driver.AIOKafkaConsumerThread, "_create_worker_consumer", False),
    (driver.Consumer, "_new_consumer_thread", False),
    (faust.App, "_new_transport", False),
    (RocksDBStore, "set_persisted_offset", False),
    (RocksDBStore, "_get", False),
])
def test_the_internals_we_override_or_call_are_there(owner: Any, name: str, coroutine: bool) -> None:
    member = getattr(owner, name, None)
    assert callable(member), f"{owner.__module__}.{owner.__qualname__}.{name} is gone"
    assert inspect.iscoroutinefunction(member) is coroutine


def test_setting_the_current_event_is_what_faust_reads() -> None:
    class Event:
        pass

    event: Any = Event()
    token = _current_event.set(weakref.ref(event))
    try:
        assert current_event() is event
    finally:
        _current_event.reset(token)
    assert "current_event()" in inspect.getsource(RocksDBStore._get), "rocksdb no longer shards reads by the event"

"""Table, Atomic, AtomicLong and Lock in one process: API, limits and errors."""

import math
import os
import random
import signal
import threading
import time

import pytest

from pyswoole.shm import Atomic, AtomicLong, Lock, Table, TableFullError


def make_table(size: int = 16) -> Table:
    table = Table(size)
    table.column("id", Table.TYPE_INT)
    table.column("name", Table.TYPE_STRING, 8)
    table.column("score", Table.TYPE_FLOAT)
    table.create()
    return table


def test_set_get_roundtrip_and_missing():
    t = make_table()
    assert t.set("user1", {"id": 1, "name": "Jack", "score": 9.5}) is True
    assert t.get("user1") == {"id": 1, "name": "Jack", "score": 9.5}
    assert t.get("user1", "name") == "Jack"
    assert t.get("user1", "id") == 1
    assert t.get("nobody") is None
    assert t.get("nobody", "id") is None
    assert t.get("user1", ("score", "id", "name")) == (9.5, 1, "Jack")
    assert t.get("user1", ()) == ()
    assert t.get("nobody", ("id",)) is None
    with pytest.raises(KeyError):
        t.get("user1", ("id", "nope"))


def test_partial_set_keeps_other_columns_and_new_rows_start_zeroed():
    t = make_table()
    t.set("k", {"name": "a"})
    assert t.get("k") == {"id": 0, "name": "a", "score": 0.0}
    t.set("k", {"id": 7})
    assert t.get("k") == {"id": 7, "name": "a", "score": 0.0}


def test_exists_delete_count_len_contains():
    t = make_table()
    for i in range(5):
        t.set(f"k{i}", {"id": i})
    assert t.count() == len(t) == 5
    assert t.exists("k3") and "k3" in t and "k9" not in t
    assert t.delete("k3") is True
    assert t.delete("k3") is False
    assert not t.exists("k3")
    assert t.count() == 4


def test_incr_decr_int_and_float_and_create_missing_row():
    t = make_table()
    assert t.incr("c", "id") == 1
    assert t.incr("c", "id", 10) == 11
    assert t.decr("c", "id", 2) == 9
    assert t.decr("c", "id") == 8
    assert t.incr("c", "score", 1.5) == 1.5
    assert t.decr("c", "score", 1) == 0.5
    assert t.get("c") == {"id": 8, "name": "", "score": 0.5}
    t.set("wrap", {"id": 2**63 - 1})
    assert t.incr("wrap", "id") == -(2**63)


def test_replace_is_a_compare_and_set_of_one_row():
    t = make_table()
    assert t.replace("k", None, {"id": 1, "name": "a"}) is True  # None: the row must be missing
    assert t.replace("k", None, {"id": 2}) is False
    row = t.get("k")
    assert t.replace("k", {"id": 2}, {"id": 3}) is False  # only the given columns are compared
    assert t.replace("k", {"id": 1, "name": b"a"}, {"id": 3}) is True  # strings by their bytes
    assert t.get("k") == {"id": 3, "name": "a", "score": 0.0}
    assert t.replace("k", row, {"id": 4}) is False  # the row changed since it was read
    assert t.replace("k", {"id": 3}, None) is True  # None: delete
    assert t.get("k") is None and len(t) == 0
    assert t.replace("k", {}, None) is False  # any expectation needs a row
    assert t.replace("k", None, None) is True  # missing, and stays so
    with pytest.raises(TypeError, match="dict"):
        t.replace("k", [1], None)
    with pytest.raises(KeyError):
        t.replace("k", None, {"nope": 1})
    with pytest.raises(ValueError, match="holds 8"):
        t.replace("k", None, {"name": "x" * 9})
    assert t.get("k") is None
    full = Table(1)
    full.column("id", Table.TYPE_INT)
    full.create()
    full.set("a", {"id": 1})
    with pytest.raises(TableFullError):
        full.replace("b", None, {"id": 1})
    assert full.replace("a", {"id": 1}, {"id": 2}) is True


def test_incr_if_adds_only_to_a_matching_row_and_never_wraps():
    t = make_table()
    assert t.incr_if("k", "id", 5, {"name": ""}) == 5  # missing: compared as zeroed, then created
    assert t.get("k") == {"id": 5, "name": "", "score": 0.0}
    assert t.incr_if("k", "id", -7, {"name": "", "score": 0.0}) == -2
    t.set("k", {"name": "x"})
    assert t.incr_if("k", "id", 1, {"name": ""}) is None  # no match: nothing written
    assert t.incr_if("other", "id", 1, {"name": "x"}) is None  # a zeroed row does not match either
    assert t.get("k")["id"] == -2 and t.get("other") is None
    t.set("k", {"id": 2**63 - 1})
    with pytest.raises(OverflowError):
        t.incr_if("k", "id", 1, {})
    t.set("k", {"id": -(2**63)})
    with pytest.raises(OverflowError):
        t.incr_if("k", "id", -1, {})
    assert t.get("k")["id"] == -(2**63)
    with pytest.raises(TypeError, match="int column"):
        t.incr_if("k", "score", 1, {})
    with pytest.raises(TypeError, match="int"):
        t.incr_if("k", "id", 1.5, {})
    with pytest.raises(TypeError, match="dict"):
        t.incr_if("k", "id", 1, None)


def test_iteration_yields_every_row_with_its_key_type():
    t = make_table()
    t.set("a", {"id": 1})
    t.set(b"b", {"id": 2, "name": b"\xff\x00"})
    rows = dict(iter(t))
    assert rows == {
        "a": {"id": 1, "name": "", "score": 0.0},
        b"b": {"id": 2, "name": b"\xff\x00", "score": 0.0},
    }
    assert t.get("b") == rows[b"b"]  # str and bytes spell the same key


def test_holds_exactly_size_rows_for_any_keys_then_raises():
    t = make_table(500)
    for i in range(500):
        t.set(f"key:{i}", {"id": i})
    assert len(t) == 500
    with pytest.raises(TableFullError, match="500 rows"):
        t.set("one-more", {"id": 1})
    with pytest.raises(TableFullError):
        t.incr("one-more", "id")
    assert all(t.get(f"key:{i}", "id") == i for i in range(500))
    t.set("key:0", {"id": -1})  # updating an existing row still works when full
    t.delete("key:1")
    t.set("one-more", {"id": 1})
    assert len(t) == 500


def key_sets(n: int) -> dict[str, list]:
    rnd = random.Random(n)
    random_bytes: set[bytes] = set()
    while len(random_bytes) < n:
        random_bytes.add(rnd.randbytes(rnd.randrange(64)))
    return {
        "key:N": [f"key:{i}" for i in range(n)],
        "random bytes, 0 to 63 long": sorted(random_bytes),
        "one 55-byte prefix": ["p" * 55 + f"{i:08d}" for i in range(n)],
        "multiples of a prime": [str(i * 1_000_003) for i in range(n)],
        "utf-8": [f"ключ-{i}-é" for i in range(n)],
    }


@pytest.mark.parametrize("kind", list(key_sets(1)))
@pytest.mark.parametrize("size", [1, 2, 7, 1024])
def test_table_of_size_holds_size_rows_for_any_key_set(size, kind):
    keys = key_sets(size)[kind]
    t = make_table(size)
    for i, key in enumerate(keys):
        assert t.set(key, {"id": i}) is True
    assert len(t) == size
    with pytest.raises(TableFullError, match=f"{size} rows"):
        t.set("one more", {"id": -1})
    assert [t.get(key, "id") for key in keys] == list(range(size))
    assert sorted(row["id"] for _, row in t) == list(range(size))
    for key in keys[::2]:  # free half, refill with other keys: the capacity comes back
        t.delete(key)
    others = [f"other:{i}" for i in range(len(keys[::2]))]
    for key in others:
        t.set(key, {"id": 1})
    assert len(t) == size and all(key in t for key in others + keys[1::2])


def test_churn_rebuilds_the_index_and_loses_nothing():
    t = make_table(64)
    for i in range(32):
        t.set(f"stable{i}", {"id": i})
    for i in range(5000):
        t.set(f"churn{i}", {"id": i})
        assert t.delete(f"churn{i}")
    assert t.stats()["rebuilds"] > 0
    assert len(t) == 32
    assert sorted(row["id"] for _, row in t) == list(range(32))
    assert all(t.get(f"stable{i}", "id") == i for i in range(32))


def test_key_limits_and_types():
    t = make_table()
    t.set("x" * 63, {"id": 1})
    t.set("é" * 31, {"id": 2})  # 62 bytes of UTF-8
    assert t.get("x" * 63, "id") == 1
    with pytest.raises(ValueError, match="63 bytes"):
        t.set("x" * 64, {"id": 1})
    with pytest.raises(ValueError, match="63 bytes"):
        t.get("é" * 32)
    with pytest.raises(TypeError, match="str or bytes"):
        t.set(5, {"id": 1})


def test_value_types_and_string_sizes():
    t = make_table()
    with pytest.raises(TypeError, match="int"):
        t.set("k", {"id": "1"})
    with pytest.raises(TypeError, match="int"):
        t.set("k", {"id": 1.5})
    with pytest.raises(TypeError, match="float"):
        t.set("k", {"score": "9"})
    with pytest.raises(TypeError, match="str or bytes"):
        t.set("k", {"name": 5})
    with pytest.raises(ValueError, match="holds 8"):
        t.set("k", {"name": "123456789"})
    with pytest.raises(OverflowError):
        t.set("k", {"id": 2**63})
    with pytest.raises(KeyError, match="nope"):
        t.set("k", {"nope": 1})
    with pytest.raises(TypeError, match="dict"):
        t.set("k", [("id", 1)])
    with pytest.raises(TypeError, match="string column"):
        t.incr("k", "name")
    with pytest.raises(TypeError, match="must be int"):
        t.incr("k", "id", 1.5)
    assert "k" not in t  # no failed call wrote anything
    t.set("k", {"score": 3})
    assert t.get("k", "score") == 3.0


def test_truncating_string_column_cuts_on_character_boundaries():
    t = Table(4)
    t.column("name", Table.TYPE_STRING, 2, truncate=True)
    t.column("utf", Table.TYPE_STRING, 5, truncate=True)
    t.create()
    t.set("user1", {"name": "Jack", "utf": "ééé"})
    assert t.get("user1") == {"name": "Ja", "utf": "éé"}
    t.set("user1", {"name": b"\xff\xfe\xfd"})
    assert t.get("user1", "name") == b"\xff\xfe"


def test_special_floats_roundtrip():
    t = make_table()
    t.set("f", {"score": math.inf})
    assert t.get("f", "score") == math.inf
    t.set("f", {"score": math.nan})
    assert math.isnan(t.get("f", "score"))


def test_schema_errors_and_use_before_create():
    t = Table(4)
    t.column("a", Table.TYPE_INT)
    with pytest.raises(ValueError, match="already defined"):
        t.column("a", Table.TYPE_INT)
    with pytest.raises(ValueError, match="size"):
        t.column("s", Table.TYPE_STRING)
    with pytest.raises(ValueError, match="unknown column type"):
        t.column("z", 99)
    with pytest.raises(RuntimeError, match="create"):
        t.get("k")
    with pytest.raises(ValueError):
        Table(0)
    t.create()
    with pytest.raises(RuntimeError, match="after create"):
        t.column("b", Table.TYPE_INT)
    assert t.columns == {"a": (Table.TYPE_INT, 8, False)}


def test_memory_cost_per_row_is_within_1_3x_declared_row():
    size = 100_000
    t = Table(size)
    t.column("id", Table.TYPE_INT)
    t.column("name", Table.TYPE_STRING, 64)
    t.column("score", Table.TYPE_FLOAT)
    assert t.memory_size == 0
    t.create()
    declared = Table.KEY_MAX + 1 + 8 + 64 + 8  # key + columns
    assert t.memory_size / size <= 1.3 * declared
    t.set("a", {"id": 1})
    t.set("b", {"id": 2})
    t.delete("b")
    stats = t.stats()
    assert stats == {
        "size": size,
        "count": 1,
        "buckets": 2 * size,
        "tombstones": 1,
        "row_size": stats["row_size"],
        "memory_size": t.memory_size,
        "rebuilds": 0,
        "recoveries": 0,
    }
    assert declared <= stats["row_size"] <= declared + 16  # the row header and string length fields


def test_atomic_operations_and_wraparound():
    a = Atomic()
    assert a.get() == 0
    assert a.add() == 1
    assert a.add(41) == 42
    assert a.sub(2) == 40
    assert a.cmpset(40, 7) is True
    assert a.cmpset(40, 8) is False
    assert a.get() == 7
    a.set(2**32 - 1)
    assert a.add() == 0
    assert a.sub() == 2**32 - 1
    with pytest.raises(OverflowError):
        a.set(2**32)
    with pytest.raises(OverflowError):
        Atomic(-1)
    assert Atomic(initial=2**32 - 1).get() == 2**32 - 1
    assert AtomicLong(initial=-(2**63)).get() == -(2**63)
    with pytest.raises(TypeError):
        a.add(1.0)


def test_atomic_long_operations_and_wraparound():
    a = AtomicLong(-5)
    assert a.add() == -4
    assert a.sub(10) == -14
    assert a.cmpset(-14, 2**62) is True
    assert a.get() == 2**62
    a.set(2**63 - 1)
    assert a.add() == -(2**63)
    with pytest.raises(OverflowError):
        a.set(2**63)


@pytest.mark.parametrize("cls", [Atomic, AtomicLong])
def test_wait_and_wakeup_between_threads(cls):
    event = cls()
    assert event.wait(0.05) is False  # nothing posted: times out
    assert event.wakeup() is True
    assert event.get() == 1
    assert event.wait(0.05) is True  # consumed
    assert event.get() == 0
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(event.wait(5)))
    waiter.start()
    time.sleep(0.05)
    started = time.monotonic()
    event.wakeup()
    waiter.join(5)
    assert woke == [True]
    assert time.monotonic() - started < 1
    event.set(5)  # not an event value: wait returns at once
    assert event.wait(5) is False
    event.set(0)
    assert event.wakeup(3) is True  # nobody waits: one event is posted, no more
    assert event.wait(0.05) is True
    assert event.wait(0.05) is False
    with pytest.raises(ValueError, match="n >= 1"):
        event.wakeup(0)
    assert event.get() == 0  # nothing posted by a refused call


def test_mutex_lock_trylock_lockwait_context_manager():
    lock = Lock()
    assert lock.type == Lock.MUTEX
    assert lock.lock() is True
    assert lock.trylock() is False
    waited = []

    def wait_from_another_thread():
        started = time.monotonic()
        waited.append((lock.lockwait(0.05), time.monotonic() - started))

    other = threading.Thread(target=wait_from_another_thread)
    other.start()
    other.join(5)
    assert waited[0][0] is False and waited[0][1] >= 0.04
    with pytest.raises(RuntimeError, match="already holds"):
        lock.lock()
    assert lock.unlock() is True
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.unlock()
    with lock:
        assert lock.trylock() is False
    assert lock.lockwait(0.05) is True
    lock.unlock()
    with pytest.raises(ValueError):
        Lock(42)


def test_rwlock_readers_share_and_writers_exclude():
    lock = Lock(Lock.RWLOCK)
    assert lock.lock_read() and lock.trylock_read()
    assert lock.trylock() is False
    lock.unlock()
    lock.unlock()
    with lock:
        assert lock.trylock_read() is False
    assert lock.trylock() is True
    lock.unlock()
    other = []
    lock.lock_read()
    reader = threading.Thread(target=lambda: other.append((lock.trylock_read(), lock.unlock())))
    reader.start()
    reader.join(5)
    assert other == [(True, True)]
    lock.unlock()


def test_rwlock_upgrade_from_read_raises_instead_of_deadlocking():
    lock = Lock(Lock.RWLOCK)
    lock.lock_read()
    with pytest.raises(RuntimeError, match="already holds"):
        lock.lock()
    lock.unlock()
    assert lock.trylock() is True  # the failed upgrade released everything it took
    lock.unlock()


def test_wait_forever_is_interrupted_by_a_signal():
    event = Atomic()
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        event.wait(-1)
    timer.join()
    assert time.monotonic() - started < 5

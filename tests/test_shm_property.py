"""Property test: a Table and a dict model, driven by the same operations, always agree."""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pyswoole.shm import Table, TableFullError

SIZE = 6
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, width=64)
KEYS = st.sampled_from([f"k{i}" for i in range(SIZE + 3)] + ["é" * 31, "x" * 63, ""])
NAMES = st.text(max_size=12).filter(lambda s: len(s.encode()) <= 12) | st.binary(max_size=12)
ZERO_ROW = {"n": 0, "f": 0.0, "s": ""}


def wrap64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


class TableMatchesDict(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.table = Table(SIZE)
        self.table.column("n", Table.TYPE_INT)
        self.table.column("f", Table.TYPE_FLOAT)
        self.table.column("s", Table.TYPE_STRING, 12)
        self.table.create()
        self.model: dict[str, dict] = {}

    def full_for(self, key: str) -> bool:
        return key not in self.model and len(self.model) == SIZE

    @rule(key=KEYS, n=st.none() | INT64, f=st.none() | FLOATS, s=st.none() | NAMES)
    def set(self, key, n, f, s):
        values = {name: v for name, v in (("n", n), ("f", f), ("s", s)) if v is not None}
        if self.full_for(key):
            with pytest.raises(TableFullError):
                self.table.set(key, values)
            return
        assert self.table.set(key, values) is True
        self.model[key] = {**self.model.get(key, ZERO_ROW), **values}

    @rule(key=KEYS, by=st.none() | INT64, negate=st.booleans())
    def incr_int(self, key, by, negate):
        op = self.table.decr if negate else self.table.incr
        args = (key, "n") if by is None else (key, "n", by)
        if self.full_for(key):
            with pytest.raises(TableFullError):
                op(*args)
            return
        delta = (1 if by is None else by) * (-1 if negate else 1)
        row = self.model.setdefault(key, dict(ZERO_ROW))
        row["n"] = wrap64(row["n"] + delta)
        assert op(*args) == row["n"]

    @rule(key=KEYS, by=st.floats(-1e6, 1e6))
    def incr_float(self, key, by):
        if self.full_for(key):
            return
        row = self.model.setdefault(key, dict(ZERO_ROW))
        row["f"] += by
        assert self.table.incr(key, "f", by) == row["f"]

    def matches(self, key, expected: dict) -> bool:
        """Whether the row (a missing one as zeroed) has these columns; strings by their bytes."""
        row = self.model.get(key, ZERO_ROW)
        as_bytes = {name: v.encode() if isinstance(v, str) else v for name, v in row.items()}
        return all(
            as_bytes[name] == (v.encode() if isinstance(v, str) else v) for name, v in expected.items()
        )

    @rule(
        key=KEYS,
        expect=st.sampled_from(["missing", "current", "other n"]),
        n=INT64,
        s=st.none() | NAMES,
        remove=st.booleans(),
    )
    def replace(self, key, expect, n, s, remove):
        current = self.model.get(key)
        if expect == "missing":
            expected, match = None, current is None
        elif expect == "current":
            expected, match = dict(current or {}), current is not None
        else:
            expected = {"n": n}
            match = current is not None and self.matches(key, expected)
        values = None if remove else {"n": n, **({} if s is None else {"s": s})}
        if match and values is not None and self.full_for(key):
            with pytest.raises(TableFullError):
                self.table.replace(key, expected, values)
            return
        assert self.table.replace(key, expected, values) is match
        if match and values is None:
            self.model.pop(key, None)
        elif match:
            self.model[key] = {**self.model.get(key, ZERO_ROW), **values}

    @rule(key=KEYS, amount=INT64, where=st.sampled_from(["nothing", "own s", "other n"]), n=INT64)
    def incr_if(self, key, amount, where, n):
        wanted = {"nothing": {}, "own s": {"s": self.model.get(key, ZERO_ROW)["s"]}, "other n": {"n": n}}[
            where
        ]
        if not self.matches(key, wanted):
            assert self.table.incr_if(key, "n", amount, wanted) is None
            return
        value = self.model.get(key, ZERO_ROW)["n"] + amount
        if not -(2**63) <= value < 2**63:
            with pytest.raises(OverflowError):
                self.table.incr_if(key, "n", amount, wanted)
            return
        if self.full_for(key):
            with pytest.raises(TableFullError):
                self.table.incr_if(key, "n", amount, wanted)
            return
        assert self.table.incr_if(key, "n", amount, wanted) == value
        self.model[key] = {**self.model.get(key, ZERO_ROW), "n": value}

    @rule(key=KEYS)
    def delete(self, key):
        assert self.table.delete(key) is (self.model.pop(key, None) is not None)

    @rule(key=KEYS)
    def get(self, key):
        assert self.table.get(key) == self.model.get(key)
        assert self.table.exists(key) is (key in self.model)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def get_column(self, data):
        key = data.draw(st.sampled_from(sorted(self.model)))
        column = data.draw(st.sampled_from(["n", "f", "s"]))
        assert self.table.get(key, column) == self.model[key][column]
        assert self.table.get(key, ("s", column)) == (self.model[key]["s"], self.model[key][column])

    @invariant()
    def same_rows(self):
        assert len(self.table) == len(self.model)
        assert dict(iter(self.table)) == self.model


TestTableMatchesDict = TableMatchesDict.TestCase
TestTableMatchesDict.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)

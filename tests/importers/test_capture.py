"""Capture tables: canonical schemas and the lossless Parquet round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from importers.capture import Capture, CaptureMetadata
from importers.errors import CaptureFormatError
from importers.schema import DICT, TABLES, conform, empty_table


def _meta() -> CaptureMetadata:
    return CaptureMetadata(
        source_path="x.txt", source_sha256="0" * 64, format="ftrace-text", importer="test"
    )


def test_every_schema_has_documented_fields() -> None:
    for name, schema in TABLES.items():
        for field in schema:
            assert field.metadata and field.metadata.get(b"doc"), (name, field.name)


def test_conform_fills_missing_columns_and_rejects_unknown_ones() -> None:
    t = pa.table({"ts": [5], "seq": [0], "cpu": [1], "common_pid": [7], "vcpu_pc": [16]})
    out = conform("kvm_entry", t)
    assert out.schema == TABLES["kvm_entry"]
    assert out.column("vcpu_id").to_pylist() == [None]
    with pytest.raises(ValueError, match="bogus"):
        conform("kvm_entry", t.append_column("bogus", pa.array([1])))


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    switch = conform(
        "sched_switch",
        pa.table(
            {
                "ts": [1, 2],
                "seq": [0, 1],
                "cpu": [0, 3],
                "common_pid": [10, 0],
                "prev_comm": pa.array(["CPU 0/KVM", None]).cast(DICT),
                "prev_pid": [10, 0],
                "prev_state": [1, 0],
            }
        ),
    )
    # an empty table is not written, and an earlier import's table the capture lacks is gone
    cap = Capture(
        metadata=_meta(),
        tables={"sched_switch": switch, "cpu_idle": empty_table("cpu_idle")},
    )
    out = tmp_path / "new" / "capture"  # parents are made
    Capture(metadata=_meta(), tables={"kvm_entry": empty_table("kvm_entry")}).save(out)
    (out / "kvm_entry.parquet").write_bytes(b"from an earlier capture")
    assert cap.save(out) == out
    back = Capture.load(out)
    assert back.metadata == cap.metadata
    assert back.tables["sched_switch"].equals(switch)
    assert back.event_counts() == {"sched_switch": 2}
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "sched_switch.parquet"]
    # metadata.json in one canonical form (sorted keys, indented): byte-identical for equal
    # captures, readable diffs
    text = (out / "metadata.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert list(json.loads(text)) == sorted(cap.metadata.to_json())
    # Encodings chosen per column: deltas for ts/seq, dictionaries for strings and for the
    # few-valued integers the schema marks (prev_state), plain for the other integers.
    group = pq.ParquetFile(out / "sched_switch.parquet").metadata.row_group(0)
    encodings = {
        group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)
    }
    for column in ("ts", "seq"):
        assert "DELTA_BINARY_PACKED" in encodings[column], column
    for column in ("prev_comm", "prev_state"):
        assert "RLE_DICTIONARY" in encodings[column], column
    assert "RLE_DICTIONARY" not in encodings["prev_pid"]
    # zstd everywhere; min/max statistics on the numeric columns readers filter on, none on
    # the strings
    for i in range(group.num_columns):
        column = group.column(i)
        assert column.compression == "ZSTD", column.path_in_schema
        string = pa.types.is_dictionary(switch.schema.field(column.path_in_schema).type)
        assert column.is_stats_set != string, column.path_in_schema


def test_load_of_a_plain_directory_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureFormatError, match="not a saved capture") as err:
        Capture.load(tmp_path)
    assert str(err.value).endswith("create one with `pmu-replay import CAPTURE -o DIR`")


def test_damaged_saved_captures_are_clean_errors(tmp_path: Path) -> None:
    Capture(metadata=_meta()).save(tmp_path)
    meta = tmp_path / "metadata.json"
    good = meta.read_text()
    meta.write_text("{not json")
    with pytest.raises(CaptureFormatError, match=r"metadata\.json: unreadable capture metadata \("):
        Capture.load(tmp_path)
    meta.write_text(good.replace('"schema_version": ', '"schema_version": 1000'))
    with pytest.raises(
        CaptureFormatError,
        match=r"schema version 1000\d+, this pmu-replay reads \d+; import the original",
    ):
        Capture.load(tmp_path)
    meta.write_text(good)
    (tmp_path / "sched_switch.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(CaptureFormatError, match=r"sched_switch\.parquet: unreadable table \("):
        Capture.load(tmp_path)


def test_event_counts_per_table_and_per_event_name() -> None:
    """Typed tables count by table; ``events`` and PMU samples by event name (samples prefixed
    ``pmu_samples:``); perf stat values are no events. Most frequent first, then by name."""

    def table(name: str, n: int, **columns: list[object]) -> pa.Table:
        base = {"ts": list(range(n)), "seq": list(range(n)), "cpu": [0] * n}
        return conform(name, pa.table({**base, **columns}))

    def names(values: list[str]) -> pa.Array:
        return pa.array(values).cast(DICT)

    cap = Capture(
        metadata=_meta(),
        tables={
            "sched_switch": table("sched_switch", 2, common_pid=[1, 2]),
            "cpu_idle": table("cpu_idle", 3, common_pid=[0, 0, 0]),
            # a sched_switch line whose payload was not understood is kept in events: it counts;
            # two chunks, each with its own dictionary, as the chunked importers write them
            "events": pa.concat_tables(
                [
                    table("events", 2, common_pid=[1] * 2, event=names(["print", "bputs"])),
                    table("events", 2, common_pid=[1] * 2, event=names(["print", "sched_switch"])),
                ]
            ),
            "pmu_samples": table(
                "pmu_samples", 3, event=names(["cycles", "cycles", "instructions"])
            ),
            "pmu_counts": table("pmu_counts", 4, event=names(["cycles"] * 4)),
        },
    )
    assert list(cap.event_counts().items()) == [
        ("cpu_idle", 3),
        ("sched_switch", 3),
        ("pmu_samples:cycles", 2),
        ("print", 2),
        ("bputs", 1),
        ("pmu_samples:instructions", 1),
    ]

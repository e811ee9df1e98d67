"""Shard folders: atomic writes, done markers, temp files ignored, damaged shards named."""

from __future__ import annotations

import pyarrow as pa
import pytest

from distill import shards
from distill.errors import UserError


def test_write_mark_and_list(tmp_path):
    stage = tmp_path / "traces"
    for i in range(3):
        shards.write_table(stage / shards.DATA / shards.shard_name(i), pa.table({"x": [i, i]}))
    shards.mark_done(stage, 0)
    shards.mark_done(stage, 2)
    assert shards.done(stage) == {0, 2}
    assert [p.name for p in shards.list_files(stage / shards.DATA)] == [shards.shard_name(i) for i in range(3)]
    assert shards.count_rows(stage / shards.DATA) == 6
    assert not shards.is_complete(stage)


def test_temp_files_are_invisible_and_cleaned(tmp_path):
    stage = tmp_path / "s"
    shards.write_table(stage / shards.DATA / shards.shard_name(0), pa.table({"x": [1]}))
    leftover = stage / shards.DATA / f".{shards.shard_name(1)}.tmp-999"
    leftover.write_bytes(b"PAR1 half a file")
    assert [p.name for p in shards.list_files(stage / shards.DATA)] == [shards.shard_name(0)]
    shards.clean_temp(stage)
    assert not leftover.exists()


def test_folder_loads_with_datasets_and_pyarrow(tmp_path):
    import datasets
    import pyarrow.dataset as pads

    stage = tmp_path / "s"
    for i in range(2):
        shards.write_table(stage / shards.DATA / shards.shard_name(i), pa.table({"x": [i]}))
        shards.mark_done(stage, i)
    shards.write_json(stage / shards.MANIFEST, {"ok": True})
    assert datasets.load_dataset("parquet", data_dir=str(stage / shards.DATA), split="train").num_rows == 2
    assert pads.dataset(stage / shards.DATA, format="parquet").to_table().num_rows == 2


def test_truncated_shard_is_one_clear_error(tmp_path):
    path = tmp_path / shards.shard_name(0)
    shards.write_table(path, pa.table({"x": list(range(1000))}))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"shard-00000.parquet: not a readable Parquet file"):
        shards.read_file(path)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / shards.shard_name(0)
    shards.write_table(path, pa.table({"x": [1]}))
    with pytest.raises(UserError, match=r"missing column 'completion'"):
        shards.read_file(path, ["x", "completion"])

"""The filter's second pass, across files (see filter/stage.py): one scan of the candidates'
small columns decides exact and near duplicates and the quota cut-offs, then each file's final
`data/` and `rejected/` shards are written and marked done (hard links when a file loses no row).
The decisions are deterministic, so a rerun after a kill writes the same shards."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .. import schema, shards
from ..config import FilterConfig
from .dedup import NearDuplicates
from .filterwork import KEYS
from .report import CANDIDATES, PASS1, REJECTED
from .select import cutoffs


NEAR, DUPLICATE = 1, 2  # decision codes in pass 2 (0: unique)
REASONS = {NEAR: "near_duplicate", DUPLICATE: "duplicate"}


def _scan(pass1: Path, n_files: int, cfg: FilterConfig):
    """Dedup decisions per candidate (in file order) and the quota cut-offs. Holds a few bytes a
    row (key, draw, decision code), never the rows: flat in the size of the data."""
    import numpy as np

    near = NearDuplicates(cfg.near_dedup) if cfg.near_dedup is not None else None
    group = cfg.quota_by
    keys, values, codes, group_ids = [], [], [], []
    names: dict[str, int] = {}
    for index in range(n_files):
        columns = ["id", group] + (["problem"] if near is not None else [])
        table = shards.read_file(pass1 / CANDIDATES / shards.shard_name(index), columns)
        numbers = shards.read_file(pass1 / KEYS / shards.shard_name(index))
        keys.append(numbers.column("_key").to_numpy())
        values.append(numbers.column("_draw").to_numpy())
        groups = [str(g) for g in table.column(group).to_pylist()]
        group_ids.append(np.array([names.setdefault(g, len(names)) for g in groups], dtype=np.int32))
        code = np.zeros(table.num_rows, dtype=np.uint8)
        if near is not None:
            ids, problems = table.column("id").to_pylist(), table.column("problem").to_pylist()
            code[[near.check(i, p or "") for i, p in zip(ids, problems)]] = NEAR
        codes.append(code)
    sizes = [len(k) for k in keys]
    all_codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.uint8)
    if cfg.dedup and len(all_codes):
        first = np.zeros(len(all_codes), dtype=bool)
        first[np.unique(np.concatenate(keys), return_index=True)[1]] = True  # the earliest of each key stays
        all_codes[(~first) & (all_codes == 0)] = DUPLICATE
    del keys
    unique = all_codes == 0
    all_values, all_groups = np.concatenate(values), np.concatenate(group_ids)
    draws = {g: all_values[unique & (all_groups == i)] for g, i in names.items()}
    caps, overall = cutoffs(draws, cfg.quotas, cfg.target)
    return np.split(all_codes, np.cumsum(sizes)[:-1]), caps, overall


def _second_pass(stage: Path, n_files: int, cfg: FilterConfig) -> None:
    import numpy as np

    pass1 = stage / PASS1
    todo = [i for i in range(n_files) if i not in shards.done(stage)]
    if not todo:
        return
    decisions, caps, overall = _scan(pass1, n_files, cfg)
    group = cfg.quota_by
    for index in todo:
        name = shards.shard_name(index)
        codes = decisions[index]
        draws = shards.read_file(pass1 / KEYS / name).column("_draw").to_numpy()
        table = shards.read_file(pass1 / CANDIDATES / name, [group])
        groups = np.array([str(g) for g in table.column(group).to_pylist()], dtype=object)
        over = np.zeros(table.num_rows, dtype=bool)
        for g, cap in caps.items():
            if cap is not None:
                over |= (groups == g) & (draws > cap)
        if overall is not None:
            over |= draws > overall
        reason = np.where(codes == NEAR, REASONS[NEAR], np.where(codes == DUPLICATE, REASONS[DUPLICATE],
                                                                  np.where(over, "over_quota", "")))
        keep = reason == ""
        if keep.all():  # nothing more goes: the first pass's files are the final ones
            shards.link_file(pass1 / CANDIDATES / name, stage / shards.DATA / name)
            shards.link_file(pass1 / REJECTED / name, stage / REJECTED / name)
            shards.mark_done(stage, index)
            continue
        table = shards.read_file(pass1 / CANDIDATES / name)
        kept = table.filter(pa.array(keep))
        dropped = table.filter(pa.array(~keep))
        dropped = dropped.append_column("reject_reason", pa.array(reason[~keep].tolist(), pa.string()))
        earlier = shards.read_file(pass1 / REJECTED / name)
        rejected = pa.concat_tables([earlier, dropped.select(schema.REJECTED.names).cast(schema.REJECTED)])
        shards.write_table(stage / shards.DATA / name, kept)
        shards.write_table(stage / REJECTED / name, rejected)
        shards.mark_done(stage, index)

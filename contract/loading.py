"""Any record rebirth writes, read by what it holds: a Profile, a slim record, a paired comparison, a stored run
or a tune record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

from rebirth.contract.errors import InputError
from rebirth.contract.paired import PairedComparison
from rebirth.contract.profile import Profile
from rebirth.contract.slim import SlimRecord
from rebirth.contract.stored import StoredRun
from rebirth.contract.tune import TuneRecord

Record = Union[Profile, SlimRecord, PairedComparison, StoredRun, TuneRecord]


def load_record(path: str | os.PathLike) -> Record:
    """The record in ``path``, of whichever kind it is (each migrated from older versions as its ``load`` does).

    Raises:
        InputError: the file is missing, or is not a record rebirth writes.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a rebirth record ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a rebirth record (a JSON {type(data).__name__})")
    if "store_version" in data:
        return StoredRun.load(path)
    if "ops" in data:
        return Profile.load(path)
    if "merges" in data:
        return SlimRecord.load(path)
    if "reference" in data and "rows" in data:
        return TuneRecord.load(path)
    if "runs" in data and "blocks" in data:
        return PairedComparison.load(path)
    raise InputError(f"{path}: not a rebirth record (a profile, slim record, comparison, stored run or tune record)")

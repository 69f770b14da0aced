"""Run settings written into devices.toml (`rebirth tune --save`), the rest of the file kept as it was.

Python reads TOML (``tomllib``) but does not write it, and rewriting the file from what was read would lose its
comments and layout. So the device's table is edited line by line: a key it has gets its value replaced (the
comment after it kept), a key it lacks is added after its last key, and ``[local]`` (this host's table) is
added at the end when the file has none. The result is read back as an inventory and checked to hold the values
before it replaces the file; a table this cannot edit (written inline, or with dotted keys) is said in one line.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Union

from rebirth.contract.errors import ConfigError
from rebirth.devices.inventory import ENV_VAR, FILE_NAME, inventory_path, read_inventory

Value = Union[str, int]
LOCAL = "local"


def default_path() -> Path:
    """Where a new devices.toml goes when there is none: the user's config folder (the last place looked in)."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "rebirth" / FILE_NAME


def check_savable(device: str, path: Optional[Path] = None) -> None:
    """Raise the ConfigError ``save_settings`` would for ``device``, before anything is measured."""
    target = _target(device, path)
    text = target.read_text() if target.is_file() else ""
    if edit_table(text, device, {}) is None:
        raise _no_table(target, device)


def _target(device: str, path: Optional[Path]) -> Path:
    found = path or inventory_path() or (default_path() if device == LOCAL else None)
    if found is None and ":" in device:
        raise ConfigError(f"{device} is named by its address, which has no devices.toml entry to save into: add it as "
                          "[devices.NAME] with this address, and tune NAME", device=device, step="save")
    if found is None:
        raise ConfigError(f"{device} is not in a devices.toml (looked in the working directory, ${ENV_VAR} and "
                          f"~/.config/rebirth): add it as [devices.{device}] to save its settings",
                          device=device, step="save")
    return found


def _no_table(path: Path, device: str) -> ConfigError:
    return ConfigError(f"{path}: no [devices.{device}] table to write the settings into"
                       + (" (a phone named by its address has none: add it to the file)" if ":" in device
                          else " (tables written inline or as dotted keys are not edited: add them by hand)"),
                       device=device, step="save")


def save_settings(device: str, values: Mapping[str, Value], path: Optional[Path] = None) -> Path:
    """Write ``values`` (``threads``, ``cpu_mask``, ``backend``) into ``device``'s entry of the devices.toml in
    use (``[local]`` for this host, created with the file when there is none); the file it wrote.

    Raises:
        ConfigError: the device has no entry to write to (a phone named by its address), or its table cannot be
            edited line by line.
    """
    path = _target(device, path)
    text = path.read_text() if path.is_file() else ""
    edited = edit_table(text, device, values)
    if edited is None:
        raise _no_table(path, device)
    _write_checked(path, edited, device, values)
    return path


def edit_table(text: str, device: str, values: Mapping[str, Value]) -> Optional[str]:
    """``text`` with ``values`` set in the device's table; None when the text has no such table header (this
    host's ``[local]`` is then added at the end)."""
    lines = text.splitlines(keepends=True)
    header = _header(device)
    start = next((index for index, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        if device != LOCAL:
            return None
        gap = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + gap + "[local]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in values.items())
    end = next((index for index in range(start + 1, len(lines)) if re.match(r"\s*\[", lines[index])), len(lines))
    for key, value in values.items():
        pattern = re.compile(rf"^(\s*{re.escape(key)}\s*=\s*)(\"[^\"]*\"|'[^']*'|[^\s#]+)(.*)$", re.DOTALL)
        found = next((index for index in range(start + 1, end) if pattern.match(lines[index])), None)
        if found is not None:
            match = pattern.match(lines[found])
            assert match is not None
            lines[found] = match.group(1) + _toml(value) + match.group(3)
            continue
        last = max((index for index in range(start, end) if lines[index].strip()
                    and not lines[index].lstrip().startswith("#")), default=start)
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, f"{key} = {_toml(value)}\n")
        end += 1
    return "".join(lines)


def _header(device: str) -> re.Pattern[str]:
    if device == LOCAL:
        return re.compile(r"^\s*\[\s*local\s*\]\s*(#.*)?$")
    name = re.escape(device)
    return re.compile(rf"^\s*\[\s*devices\s*\.\s*(?:{name}|\"{name}\"|'{name}')\s*\]\s*(#.*)?$")


def _toml(value: Value) -> str:
    return str(value) if isinstance(value, int) else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_checked(path: Path, text: str, device: str, values: Mapping[str, Value]) -> None:
    """Write ``text`` beside ``path``, read it back as an inventory, check it holds ``values``, then replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        if path.is_file():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        try:
            inventory = read_inventory(temporary)
        except ConfigError as error:
            raise ConfigError(f"{path}: the edit would not read back ({error}): not written; set the settings by "
                              "hand", device=device, step="save") from None
        entry = inventory.local if device == LOCAL else inventory.devices.get(device)
        read = {key: getattr(entry, key, None) for key in values}
        if read != dict(values):
            raise ConfigError(f"{path}: the edited [{'local' if device == LOCAL else 'devices.' + device}] table "
                              f"reads back as {read}, not {dict(values)}: not written; set them by hand",
                              device=device, step="save")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

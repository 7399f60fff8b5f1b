"""Restaurant import files read a row at a time: CSV, JSON lines (.jsonl, .ndjson) and JSON
arrays (parsed one element at a time), so a file's size never sets the memory it takes.

A malformed file raises InvalidInputError whose one line names the file, the row, the field
when there is one, and what to do; nothing in it comes from a database.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from regbatch.errors import InvalidInputError

JSON_COLUMNS = ("opening_hours", "menu")  # CSV cells holding JSON
MAX_ROW_CHARS = 1_000_000  # one restaurant, its menu included, is far smaller
_CHUNK = 1 << 16
_DECODER = json.JSONDecoder()
_SPACE = " \t\r\n"


class MalformedFileError(InvalidInputError):
    """Raised when an import file cannot be read as restaurants: one line says where and why."""

    def __init__(self, path: Path, row: int | None, problem: str, field: str | None = None):
        where = f"{path}" + (f": row {row}" if row is not None else "")
        where += f", field {field}" if field else ""
        super().__init__(f"cannot import {where}: {problem}; nothing was imported")


def read_rows(path: Path, max_bytes: int) -> Iterator[tuple[int, Any]]:
    """(row number from 1, row) of a restaurants file; a CSV row is a dict of its non-empty cells
    (JSON cells parsed), a JSON row whatever the file holds there (the import checks it)."""
    _check_size(path, max_bytes)
    kind = path.suffix.lower()
    reader = (
        _csv_rows
        if kind == ".csv"
        else _json_lines
        if kind in (".jsonl", ".ndjson")
        else _json_array
    )
    row = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:  # a BOM is dropped
            for row, data in reader(handle, path):
                if "\\u0000" in json.dumps(data):  # fast: JSON writes a NUL as \u0000
                    _refuse_nul(path, row, data)
                yield row, data
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise MalformedFileError(
            path,
            None,
            f"is not UTF-8 text (byte 0x{byte:02x} near row {row + 1}); save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}; check the path") from None


def _check_size(path: Path, max_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}; check the path") from None
    if size > max_bytes:
        raise InvalidInputError(
            f"cannot import {path}: it has {size:,} bytes, over the import limit of "
            f"{max_bytes:,} (REGBATCH_IMPORT_MAX_BYTES); split the file or raise the limit"
        )


def _refuse_nul(path: Path, row: int, data: Any, field: str = "") -> None:
    """A NUL character anywhere in the row (a key or a value) is refused, naming its field."""
    if isinstance(data, str):
        if "\x00" in data:
            raise MalformedFileError(path, row, "holds a NUL byte; remove it", field or None)
    elif isinstance(data, dict):
        for key, value in data.items():
            name = f"{field}.{key}" if field else str(key)
            _refuse_nul(path, row, str(key), name)
            _refuse_nul(path, row, value, name)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _refuse_nul(path, row, value, f"{field}[{index}]")


def _parse(path: Path, row: int, text: str, field: str | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"is not JSON ({exc.msg} at column {exc.colno}); fix the JSON"
    except RecursionError:
        problem = "nests its JSON too deeply; a restaurant needs a few levels at most"
    raise MalformedFileError(path, row, problem, field)


def _csv_rows(handle: IO[str], path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(handle)
    row = 0
    try:
        for row, raw in enumerate(reader, start=1):
            if None in raw:
                raise MalformedFileError(
                    path, row, "has more cells than the header has columns; quote cells with ,"
                )
            cells = {k: v for k, v in raw.items() if v not in ("", None)}
            for column in JSON_COLUMNS:
                if column in cells:
                    cells[column] = _parse(path, row, cells[column], column)
            yield row, cells
    except csv.Error as exc:
        raise MalformedFileError(path, row + 1, f"is not CSV ({exc}); fix the quoting") from None


def _json_lines(handle: IO[str], path: Path) -> Iterator[tuple[int, Any]]:
    row = 0
    for line in handle:
        if line.strip():
            row += 1
            if len(line) > MAX_ROW_CHARS:
                raise MalformedFileError(path, row, _too_long())
            yield row, _parse(path, row, line)


def _too_long() -> str:
    return f"is over {MAX_ROW_CHARS:,} characters; a restaurant row is far smaller"


class _Buffer:
    """Text of a file read in blocks as a parser asks for more."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle, self.text, self.pos, self.eof = handle, "", 0, False

    def more(self) -> bool:
        """Read one more block (dropping what was consumed); False at the end of the file."""
        block = "" if self.eof else self.handle.read(_CHUNK)
        self.eof = not block
        self.text, self.pos = self.text[self.pos :] + block, 0
        return bool(block)

    def next_char(self) -> str:
        """The next character that is not white space ('' at the end), not consumed."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
                self.pos += 1
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos : self.pos + 1]


def _json_array(handle: IO[str], path: Path) -> Iterator[tuple[int, Any]]:
    """The elements of a JSON array, decoded one at a time."""
    buffer = _Buffer(handle)
    first = buffer.next_char()
    if first != "[":
        found = "nothing" if not first else f"{first!r}"
        raise MalformedFileError(
            path, None, f"starts with {found}, not a JSON array; wrap the restaurants in [ ... ]"
        )
    buffer.pos += 1
    row = 0
    while True:
        if buffer.next_char() == "]" and row == 0:
            buffer.pos += 1
            break
        row += 1
        yield row, _element(buffer, path, row)
        separator = buffer.next_char()
        buffer.pos += 1
        if separator == "]":
            break
        if separator != ",":
            raise MalformedFileError(path, row, "is not followed by , or ]; fix the JSON array")
    if buffer.next_char():
        raise MalformedFileError(path, None, "has text after the array's ]; remove it")


def _element(buffer: _Buffer, path: Path, row: int) -> Any:
    """Decode the value at the buffer's position, reading more of the file until it is whole."""
    while True:
        try:
            value, end = _DECODER.raw_decode(buffer.text, buffer.pos)
        except json.JSONDecodeError as exc:
            if len(buffer.text) - buffer.pos > MAX_ROW_CHARS:
                raise MalformedFileError(path, row, _too_long()) from None
            if not buffer.more():  # the whole rest of the file: the JSON is wrong
                raise MalformedFileError(
                    path, row, f"is not JSON ({exc.msg}); fix the JSON"
                ) from None
        except RecursionError:
            raise MalformedFileError(
                path, row, "nests its JSON too deeply; a restaurant needs a few levels at most"
            ) from None
        else:
            if end == len(buffer.text) and buffer.more():
                continue  # a number may go on in the next block
            buffer.pos = end
            return value

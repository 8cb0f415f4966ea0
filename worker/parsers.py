"""Uploaded files (CSV, JSON lines, NumPy ``.npz``) read a chunk of rows at a time into
arrays, with errors that name the row and the column. Nothing here imports Keras."""

from __future__ import annotations

import itertools
import json
import math
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CHUNK_ROWS = 50_000
MAX_CLASSES = 10_000
HEADER_READ_CHARS = 1 << 20
_CSV_SPECIAL = re.compile(r'[",\n]')
# One JSON lines record: 10,000 columns of long values fit many times over.
MAX_LINE_CHARS = 16 * 2**20


class IngestError(Exception):
    """A problem with the uploaded data; its message is what the user reads."""


@dataclass(frozen=True)
class IngestLimits:
    """What one upload may grow into, checked before the work: columns (a wide header costs
    minutes and gigabytes in the parser) and the bytes its arrays may take (what the tenant's
    quota and the disk leave: a small zip can inflate to terabytes)."""

    max_columns: int
    max_bytes: int
    bytes_limit: str  # the limit and its setting, as a refusal names them


@dataclass
class Chunk:
    x: np.ndarray  # float64, rows first
    y: np.ndarray  # float64, or object (raw values of one target column: numbers or labels)
    first_row: int


@dataclass
class Parsed:
    feature_names: list[str]
    target_names: list[str]
    x_row_shape: tuple[int, ...]
    y_row_shape: tuple[int, ...]
    chunks: Iterator[Chunk]
    extracted: list[Path] = field(default_factory=list)  # temporary files to remove


def sniff(path: Path, file_format: str) -> None:
    """Refuse a file that is not what its name says before parsing it."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise IngestError("expected data, received an empty file")
    is_zip = head.startswith(b"PK\x03\x04")
    if file_format == "npz" and not is_zip:
        raise IngestError("expected a .npz (zip) file, received something else")
    if file_format in ("csv", "jsonl") and (is_zip or b"\x00" in head):
        raise IngestError(f"expected a text .{file_format} file, received binary data")


def parse(
    path: Path,
    file_format: str,
    target: list[str],
    features: list[str] | None,
    limits: IngestLimits,
) -> Parsed:
    sniff(path, file_format)
    if file_format == "csv":
        _check_columns(_header_width(path, limits.max_columns), limits)
        return _parse_csv(path, target, features)
    if file_format == "jsonl":
        return _parse_jsonl(path, target, features, limits)
    return _parse_npz(path, limits)


def _check_columns(count: int, limits: IngestLimits) -> None:
    if count > limits.max_columns:
        raise IngestError(
            f"expected at most {limits.max_columns:,} columns (FITQ_MAX_COLUMNS), received "
            f"{count:,}"
        )


def _header_width(path: Path, limit: int) -> int:
    """Columns of the header row, counted before pandas reads anything, a read of
    ``HEADER_READ_CHARS`` at a time and only up to ``limit + 1``: a header of millions of
    columns, or one line of gigabytes, costs one read's memory (the csv module would hold
    the whole row). Commas inside double quotes are not separators (a doubled quote inside
    a quoted field toggles twice)."""
    count, quoted = 1, False
    with open(path, newline="", encoding="utf-8", errors="replace") as file:
        while chunk := file.read(HEADER_READ_CHARS):
            for match in _CSV_SPECIAL.finditer(chunk):
                char = match.group()
                if char == '"':
                    quoted = not quoted
                elif quoted:
                    continue
                elif char == ",":
                    count += 1
                    if count > limit:
                        return count
                else:
                    return count  # the header's end
    return count


# ---- columns (CSV and flat JSON lines) ----------------------------------------------------


def _pick_columns(
    columns: list[str], target: list[str], features: list[str] | None
) -> tuple[list[str], list[str]]:
    if not target:
        raise IngestError("expected a target column (form field 'target'), received none")
    unknown = [c for c in [*target, *(features or [])] if c not in columns]
    if unknown:
        raise IngestError(
            f"expected columns among {', '.join(map(repr, columns))}, received "
            f"{', '.join(map(repr, unknown))}"
        )
    chosen = features or [c for c in columns if c not in target]
    if not chosen:
        raise IngestError("expected at least one feature column besides the target, received none")
    return chosen, target


def _numeric(frame: pd.DataFrame, column: str, first_row: int, where: str) -> np.ndarray:
    series = frame[column]
    if series.dtype.kind in "biuf":  # parsed as numbers by pandas' C parser: the fast path
        array = series.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(series, errors="coerce")
        bad = values.isna() & series.notna()
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise IngestError(
                f"{row_name(first_row + i, where)}, column {column!r}: expected a number, "
                f"received {series.iloc[i]!r}"
            )
        array = values.to_numpy(dtype=np.float64)
    _finite(array, first_row, column, where)
    return array


def _finite(array: np.ndarray, first_row: int, column: str, where: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        i = int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))
        value = array[i] if array.ndim == 1 else array[i][~np.isfinite(array[i])].flat[0]
        what = "a missing value" if math.isnan(float(value)) else f"{value}"
        raise IngestError(
            f"{row_name(first_row + i, where)}, column {column!r}: "
            f"expected a finite number, received {what}"
        )


def row_name(index: int, where: str) -> str:
    """Rows count from 1; CSV lines count the header too."""
    if where == "csv":
        return f"row {index + 1} (line {index + 2})"
    return f"line {index + 1}" if where == "jsonl" else f"row {index + 1}"


def _target(frame: pd.DataFrame, target: list[str], first_row: int, where: str) -> np.ndarray:
    """One target column stays raw (numbers or labels: the ingest decides); several must be
    numbers."""
    if len(target) == 1:
        series = frame[target[0]]
        if series.dtype.kind in "biuf":
            return series.to_numpy(dtype=np.float64)
        return series.to_numpy(dtype=object)
    return np.stack([_numeric(frame, c, first_row, where) for c in target], axis=1)


def _frames_to_chunks(
    frames: Iterator[pd.DataFrame], features: list[str], target: list[str], where: str
) -> Iterator[Chunk]:
    first_row = 0
    for frame in frames:
        missing = frame[[*features, *target]].isna().to_numpy()
        if missing.any():
            i, j = np.argwhere(missing)[0]
            column = [*features, *target][j]
            raise IngestError(
                f"{row_name(first_row + int(i), where)}, column {column!r}: "
                "expected a value, received a missing one"
            )
        x = np.stack([_numeric(frame, c, first_row, where) for c in features], axis=1)
        yield Chunk(x, _target(frame, target, first_row, where), first_row)
        first_row += len(frame)


def _parse_csv(path: Path, target: list[str], features: list[str] | None) -> Parsed:
    try:
        reader = pd.read_csv(path, chunksize=CHUNK_ROWS, skipinitialspace=True)
        first = next(reader)
    except pd.errors.EmptyDataError:
        raise IngestError("expected a header row and data rows, received an empty file") from None
    except StopIteration:
        raise IngestError("expected data rows after the header, received none") from None
    except pd.errors.ParserError as exc:
        raise IngestError(f"the CSV could not be read: {_parser_message(exc)}") from None
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"expected UTF-8 text, received bytes that are not ({exc.reason})"
        ) from None
    if first.empty:
        raise IngestError("expected data rows after the header, received none")
    columns = [str(c) for c in first.columns]
    numeric_names = [c for c in columns if _is_number(c)]
    if numeric_names and len(numeric_names) == len(columns):
        raise IngestError(
            "expected a header row of column names, received a first row of numbers "
            f"({', '.join(columns[:4])}{', …' if len(columns) > 4 else ''})"
        )
    chosen, target = _pick_columns(columns, target, features)

    def frames() -> Iterator[pd.DataFrame]:
        yield first
        try:
            yield from reader
        except pd.errors.ParserError as exc:
            raise IngestError(f"the CSV could not be read: {_parser_message(exc)}") from None

    return Parsed(chosen, target, (len(chosen),), (len(target),) if len(target) > 1 else (),
                  _frames_to_chunks(frames(), chosen, target, "csv"))  # fmt: skip


def _parser_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1]
    return text.replace("Error tokenizing data. C error: ", "")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- JSON lines ---------------------------------------------------------------------------


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each record, read a line at a time; a line longer than ``MAX_LINE_CHARS`` fails
    before it is held whole (one line of gigabytes would be)."""
    with open(path, encoding="utf-8") as f:
        for number in itertools.count():
            try:
                line = f.readline(MAX_LINE_CHARS + 1)
            except UnicodeDecodeError as exc:
                raise IngestError(
                    f"expected UTF-8 text, received bytes that are not ({exc.reason})"
                ) from None
            if not line:
                return
            if len(line) > MAX_LINE_CHARS:
                raise IngestError(
                    f"line {number + 1}: expected a record of at most {MAX_LINE_CHARS:,} "
                    "characters, received a longer one"
                )
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IngestError(
                    f"line {number + 1}: expected a JSON object, received invalid JSON ({exc.msg})"
                ) from None
            if not isinstance(record, dict):
                raise IngestError(
                    f"line {number + 1}: expected a JSON object, received {type(record).__name__}"
                )
            yield number, record


def _parse_jsonl(
    path: Path, target: list[str], features: list[str] | None, limits: IngestLimits
) -> Parsed:
    lines = _json_lines(path)
    try:
        _, first = next(lines)
    except StopIteration:
        raise IngestError("expected JSON objects, one per line, received none") from None
    _check_columns(len(first), limits)

    def batches() -> Iterator[list[dict[str, Any]]]:
        batch = [first]
        for _, record in lines:
            batch.append(record)
            if len(batch) == CHUNK_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch

    if set(first) == {"x", "y"} and not target:
        x_shape, y_shape = np.shape(first["x"]), np.shape(first["y"])
        return Parsed(
            [], [], tuple(x_shape), tuple(y_shape), _xy_chunks(batches(), x_shape, y_shape)
        )
    chosen, target = _pick_columns(list(first), target, features)
    frames = (pd.DataFrame.from_records(b, columns=list(first)) for b in batches())
    return Parsed(chosen, target, (len(chosen),), (len(target),) if len(target) > 1 else (),
                  _frames_to_chunks(frames, chosen, target, "jsonl"))  # fmt: skip


def _xy_chunks(
    batches: Iterator[list[dict[str, Any]]], x_shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> Iterator[Chunk]:
    first_row = 0
    for batch in batches:
        xs: list[Any] = []
        ys: list[Any] = []
        for i, record in enumerate(batch):
            if set(record) != {"x", "y"}:
                raise IngestError(
                    f"line {first_row + i + 1}: expected keys 'x' and 'y', "
                    f"received {sorted(record)}"
                )
            for name, value, shape in (("x", record["x"], x_shape), ("y", record["y"], y_shape)):
                try:
                    array = np.asarray(value, dtype=np.float64)
                except (ValueError, TypeError):
                    raise IngestError(
                        f"line {first_row + i + 1}, column {name!r}: expected numbers in a "
                        f"rectangular array, received {str(value)[:80]}"
                    ) from None
                if array.shape != shape:
                    raise IngestError(
                        f"line {first_row + i + 1}, column {name!r}: expected shape "
                        f"{list(shape)} like the first line, received {list(array.shape)}"
                    )
                (xs if name == "x" else ys).append(array)
        x, y = np.stack(xs), np.stack(ys)
        _finite(x, first_row, "x", "jsonl")
        _finite(y, first_row, "y", "jsonl")
        yield Chunk(x, y, first_row)
        first_row += len(batch)


# ---- NumPy .npz -----------------------------------------------------------------------------


def _parse_npz(path: Path, limits: IngestLimits) -> Parsed:
    try:
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"the .npz file is damaged or truncated ({exc})") from None
    keys = sorted(n.removesuffix(".npy") for n in names)
    if "x" not in keys or "y" not in keys:
        raise IngestError(
            "expected arrays 'x' and 'y' in the .npz, received "
            f"{', '.join(map(repr, keys)) or 'none'}"
        )
    # The sizes the zip declares, before a byte is inflated; the copy stops at the limit too,
    # whatever the headers claim.
    declared = sum(archive.getinfo(f"{name}.npy").file_size for name in "xy")
    if declared > limits.max_bytes:
        raise _too_big(f"its arrays inflate to {declared:,} bytes", limits)
    extracted = [path.with_name(f".{path.name}.{name}.npy") for name in ("x", "y")]
    room = [limits.max_bytes]
    try:
        x, y = (
            _extract(archive, name, target, room, limits)
            for name, target in zip("xy", extracted, strict=True)
        )
        _check_npz(x, y)
    except BaseException:
        for file in extracted:
            file.unlink(missing_ok=True)
        raise

    def chunks() -> Iterator[Chunk]:
        for start in range(0, len(x), CHUNK_ROWS):
            xs = np.asarray(x[start : start + CHUNK_ROWS], dtype=np.float64)
            _finite(xs, start, "x", "npz")
            ys = np.asarray(y[start : start + CHUNK_ROWS])
            if ys.dtype.kind in "US":
                ys = ys.astype(str).astype(object)
            else:
                ys = ys.astype(np.float64)
                _finite(ys, start, "y", "npz")
            yield Chunk(xs, ys, start)

    return Parsed([], [], tuple(x.shape[1:]), tuple(y.shape[1:]), chunks(), extracted)


def _too_big(what: str, limits: IngestLimits) -> IngestError:
    return IngestError(f"expected a .npz within {limits.bytes_limit}, received one that {what}")


def _extract(
    archive: zipfile.ZipFile, name: str, target: Path, room: list[int], limits: IngestLimits
) -> np.ndarray:
    """Copy one member out of the zip (it may be compressed), then memory-map it; ``room``
    holds the bytes both members may still take."""
    try:
        with archive.open(f"{name}.npy") as source, open(target, "wb") as out:
            while block := source.read(1 << 20):
                room[0] -= len(block)
                if room[0] < 0:
                    raise _too_big("inflates past it", limits)
                out.write(block)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise IngestError(f"the .npz file is damaged or truncated ({exc})") from None
    try:
        # Never unpickle: an object array is refused, not loaded.
        return np.load(target, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise IngestError(
                f"array {name!r} holds Python objects (pickle); expected numbers"
            ) from None
        raise IngestError(f"array {name!r} could not be read: {exc}") from None


def _check_npz(x: np.ndarray, y: np.ndarray) -> None:
    for name, array in (("x", x), ("y", y)):
        if array.dtype.kind not in "biuf" and not (name == "y" and array.dtype.kind in "US"):
            raise IngestError(f"array {name!r}: expected numbers, received dtype {array.dtype}")
        if array.ndim == 0:
            raise IngestError(f"array {name!r}: expected rows, received a scalar")
    if len(x) != len(y):
        raise IngestError(f"expected as many rows in 'y' as in 'x' ({len(x)}), received {len(y)}")
    if x.ndim < 2:
        raise IngestError(
            f"array 'x': expected rows of features (rank ≥ 2), received shape {list(x.shape)}"
        )

"""The one writer of result tables: Markdown for reading, CSV (csv module, quoted where needed)
for analysis. Callers choose how a Markdown cell is formatted; the CSV keeps the raw values."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from cremad.atomic import write_text


def markdown(header: Sequence[str], rows: Iterable[Sequence[Any]], cell: Callable[[Any], str] = str) -> str:
    """A Markdown table; `cell` formats each value (a "|" inside a cell is escaped)."""

    def line(values) -> str:
        return "| " + " | ".join(str(value).replace("|", "\\|") for value in values) + " |"

    return "\n".join(
        [line(header), "|" + "---|" * len(header), *(line(cell(value) for value in row) for row in rows)]
    )


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # RFC 4180: quoted where needed, CRLF line ends
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV table atomically; returns the path."""
    write_text(path, csv_text(header, rows))
    return Path(path)


def write_table(
    out_dir: str | Path,
    stem: str,
    title: str,
    markdown_table: str,
    csv_header: Sequence[str],
    csv_rows: Iterable[Sequence[Any]],
) -> list[Path]:
    """<stem>.md (the title, then `markdown_table`) and <stem>.csv (the raw values) under `out_dir`."""
    out_dir = Path(out_dir)
    write_text(out_dir / f"{stem}.md", f"{title}\n\n{markdown_table}\n")
    write_csv(out_dir / f"{stem}.csv", csv_header, csv_rows)
    return [out_dir / f"{stem}.md", out_dir / f"{stem}.csv"]

"""Small helpers that turn frames and figures into Dagster metadata a person can look at."""

import base64
import io
from collections.abc import Sequence
from typing import Any

import dagster as dg
import polars as pl


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        value = ", ".join(map(str, value[:4])) + (" …" if len(value) > 4 else "")
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pl.DataFrame, limit: int = 10, columns: Sequence[str] | None = None) -> dg.MetadataValue:
    frame = frame.select(columns) if columns else frame
    head = frame.head(limit)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.iter_rows()]
    if frame.height > limit:
        lines.append(f"\n_{limit} of {frame.height:,} rows_")
    return dg.MetadataValue.md("\n".join(lines))


def png_markdown(fig: Any, alt: str) -> dg.MetadataValue:
    """A matplotlib figure inlined as a base64 PNG (the quickstart_etl way)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def figure(width: float = 6.0, height: float = 3.5) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))

"""Where the data comes from, as resources, so assets never look at the environment.

`InteractionSources` carries the deployment's GAMEREC_CATALOG / GAMEREC_INTERACTIONS (and the deprecated
GAMEREC_STEAM_PATH); `CatalogueFileClient` stands in for RAWG when the catalogue is a file, so `raw_games` stores
it like a crawl and the rest of the graph reads the same `game_features`.
"""

from pathlib import Path
from typing import Any

import dagster as dg

from gamerec_assets.recsys.catalogue_file import CatalogueFileError, catalogue_pages, read_catalogue
from gamerec_assets.recsys.rawg_pages import RawgPageError
from gamerec_assets.resources.rawg import RawgClient


class InteractionSources(dg.ConfigurableResource):
    """The deployment's sources (`SourceSettings`); a run's config may override them, and the metadata says so."""

    catalog: str = "rawg"  # rawg | file:<path>
    interactions: str = "simulated"  # simulated | steam:<path> | file:<path>
    steam_path: str = ""  # deprecated GAMEREC_STEAM_PATH: the log a run's bare `source: steam` reads


class CatalogueFileClient(RawgClient):
    """A catalogue file (CSV or Parquet, `recsys.catalogue_file`), served as RAWG-shaped pages."""

    path: str

    def describe(self) -> str:
        return f"file:{self.path}"

    def fetch_pages(self, log: Any = None) -> list[dict[str, Any]]:
        try:
            rows = read_catalogue(Path(self.path))
        except CatalogueFileError as exc:
            raise RawgPageError(str(exc)) from exc
        if log is not None:
            log.info(f"read {rows.height:,} games from the catalogue file {self.path}")
        return catalogue_pages(rows)


def catalog_label(source: str) -> str:
    """The catalogue's source for metadata and manifests: `file:<path>`, or `rawg` for a snapshot or the API."""
    return source if source.startswith("file:") else "rawg"

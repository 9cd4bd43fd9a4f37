"""Where real interaction logs come from, as a resource, so assets never look at the environment."""

import dagster as dg


class InteractionSources(dg.ConfigurableResource):
    """Paths of real play logs (`SourceSettings`); an asset's own config wins when it names a path."""

    steam_path: str = ""  # the steam-200k log (csv or csv.gz); empty: none configured

"""The asset graph, one module per stage; each asset's checks sit beside it."""

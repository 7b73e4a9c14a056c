"""Image and prompt sources for reference building (registered as ``data_sources``)."""

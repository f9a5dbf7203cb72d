"""Extractors turn chunks into mentions and relations; all share the ``Extractor`` interface."""

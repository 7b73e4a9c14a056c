"""Importers for the paper authors' published assets (arXiv 2607.02375).

The authors ship pickled ``.pt`` dictionaries (reference bundles, evaluation banks, feature
pools, bandwidths), JSON floor tables, NumPy context pools and text tables, and ``.pth``
student checkpoints. These modules read them without executing anything (tensors, numbers and
strings only) and write rdm's own files with full headers; ``docs/importing.md`` is the guide.
"""

"""Test helpers for recall-zoo plugin authors (opt-in; nothing here is imported by ``import zoo``).

* :mod:`zoo.testing.retrievers`: :class:`~zoo.testing.retrievers.RetrieverConformance`, the suite
  every retriever backend passes (subclass it in your tests), plus brute-force reference helpers.

This package imports neither torch nor pytest at import time; import the submodule you need.
"""

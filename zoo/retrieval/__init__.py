"""Retrieval: the Retriever contract and the multi-interest merge shared by every backend."""

from zoo.retrieval.base import Retriever
from zoo.retrieval.merge import merge_interest_results, query_interests

__all__ = ["Retriever", "merge_interest_results", "query_interests"]

"""The in-memory fake store honours the same contract as the real stores."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from callnowd.store.interface import Store
from tests.fakes import MemoryStore
from tests.store.contract import StoreContract


class MemoryStoreContractTests(StoreContract, TestCase):
    """The Store contract, run against tests.fakes.MemoryStore."""

    def make_store(self) -> Store:
        return MemoryStore()

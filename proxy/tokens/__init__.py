"""Where the OAuth tokens live, how they are shared by replicas, and how they are renewed."""

from .errors import StaleWrite, TokenStoreError
from .model import NewTokens, StoredPair
from .store import MemoryTokenStore, RedisTokenStore, TokenStore

__all__ = [
    "MemoryTokenStore",
    "NewTokens",
    "RedisTokenStore",
    "StaleWrite",
    "StoredPair",
    "TokenStore",
    "TokenStoreError",
]

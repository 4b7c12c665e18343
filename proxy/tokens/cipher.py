"""Encryption at rest of the token pair (optional, off by default).

With ``tokens.encryption_keys`` set, the access and refresh tokens are stored in Redis as Fernet
tokens (AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package), so a Redis dump, a
replica or a backup does not hand out the PandaDoc account. Several keys may be given,
comma-separated: the first encrypts, every one decrypts (``MultiFernet``), so keys can be
rotated without a flag day: add the new key first, let every replica restart, then drop the old.

A pair that cannot be decrypted is a loud error, never "no token stored": treating it as absent
would send every client to 503 ``authorization_required`` and an operator to re-authorize,
when the fix is to configure the right key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import TokenStoreError

__all__ = ["PairCipher"]

#: Stored next to the tokens, so a reader knows what it is looking at.
SCHEME = "fernet"


class PairCipher:
    def __init__(self, keys: tuple[str, ...]) -> None:
        """``keys``: ``tokens.encryption_keys``, already checked by the configuration."""
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            raise TokenStoreError(
                "the stored token pair is encrypted with a key that is not among "
                "tokens.encryption_keys: configure the key it was written with"
            ) from None

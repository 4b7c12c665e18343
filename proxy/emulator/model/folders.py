"""Document folders (``/public/v1/documents/folders``), a tree below an unlisted root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .common import new_id, now, seed_day, timestamp

__all__ = ["Folder", "FolderStore"]


@dataclass
class Folder:
    uuid: str
    name: str
    date_created: datetime
    parent_uuid: str | None = None

    def short_view(self) -> dict[str, object]:
        """DocumentsFolderCreateResponse and DocumentsFolderRenameResponse."""
        return {"uuid": self.uuid, "name": self.name, "date_created": timestamp(self.date_created)}


class FolderStore:
    def __init__(self, has_documents: Callable[[str], bool]) -> None:
        self._has_documents = has_documents
        contracts = Folder("EmuFolder0000000000001", "Contracts", seed_day(10, 9))
        self._folders: dict[str, Folder] = {contracts.uuid: contracts}

    def get(self, uuid: str) -> Folder | None:
        return self._folders.get(uuid)

    def children(self, parent_uuid: str | None) -> list[Folder]:
        return [f for f in self._folders.values() if f.parent_uuid == parent_uuid]

    def list_view(self, folder: Folder) -> dict[str, object]:
        """DocumentsFolderListResponse.results[]."""
        return {
            **folder.short_view(),
            "has_folders": bool(self.children(folder.uuid)),
            "has_items": self._has_documents(folder.uuid),
        }

    def create(self, name: str, parent_uuid: str | None) -> Folder:
        folder = Folder(new_id(self._folders), name, now(), parent_uuid)
        self._folders[folder.uuid] = folder
        return folder

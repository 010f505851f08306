"""Billing's usage export: the rated records and subscriptions it hands over for a period.

The legacy billing system publishes its export as files (``GET /exports/usage`` lists them
with size and SHA-256, ``GET /exports/usage/{name}`` serves one); the hub copies them into a
reconciliation's working folder, verifying each checksum, and reads them from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from adapters.rest import RestClient
from hub.errors import PermanentError
from hub.paths import LocationRefused, require_within


@dataclass(frozen=True)
class ExportFile:
    name: str
    size: int
    sha256: str


class BillingExportClient(RestClient):
    system = "billing"

    async def list_files(self) -> list[ExportFile]:
        body = self.body(await self.request("GET", "/exports/usage"))
        try:
            return [
                ExportFile(str(item["name"]), int(item["size"]), str(item["sha256"]))
                for item in body["files"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(
                f"usage export listing is malformed: {exc!r}", system=self.system
            ) from exc

    async def fetch(
        self, item: ExportFile, folder: Path, *, progress: Callable[[int], None] | None = None
    ) -> Path:
        """Copy one export file into ``folder`` (keeping its relative name); answer its path."""
        relative = Path(item.name)
        if relative.is_absolute() or ".." in relative.parts:
            raise PermanentError(f"export file name {item.name!r} is unsafe", system=self.system)
        destination = folder / relative
        try:
            # Not through a symlink in the copy's folder: the copy stays in the run's workspace.
            require_within(destination, folder, follow_last=False)
        except LocationRefused as exc:
            raise PermanentError(f"export file {item.name!r}: {exc}", system="files") from exc
        await self.download(
            f"/exports/usage/{quote(item.name)}", destination, sha256=item.sha256, progress=progress
        )
        return destination

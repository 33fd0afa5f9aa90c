"""The stored documents as the API and Python users see them: pages of them, one deleted (with its
uploaded file), an upload saved and ingested, every source."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable, Literal

from .db import store
from .db.lifecycle import KnowledgeSchema
from .ingest import uploads
from .ingest.discovery import source_of
from .ingest.pipeline import IngestReport


@dataclass
class DocumentInfo:
    id: int
    source: str
    title: str
    chunks: int
    metadata: dict
    updated_at: datetime


@dataclass
class DocumentPage:
    total: int
    limit: int
    offset: int
    documents: list[DocumentInfo]


@dataclass
class UploadedDocument(DocumentInfo):
    status: Literal["added", "updated", "unchanged"]


class Documents:
    def __init__(self, connection: Callable, knowledge_schema: KnowledgeSchema, uploads_folder: Path, *,
                 max_file_bytes: int, ingest: Callable[[list[Path]], IngestReport]):
        self.connection, self.knowledge_schema, self.schema = connection, knowledge_schema, knowledge_schema.schema
        self.uploads_folder = Path(source_of(uploads_folder))
        self.max_file_bytes, self.ingest = max_file_bytes, ingest

    def page(self, *, limit: int = 50, offset: int = 0) -> DocumentPage:
        """One page of the stored documents, ordered by source, and how many there are in all."""
        if not self.knowledge_schema.ensure(create=False):
            return DocumentPage(0, limit, offset, [])
        with self.connection() as conn:
            total, documents = store.list_documents(conn, self.schema, limit=limit, offset=offset)
        return DocumentPage(total, limit, offset, [DocumentInfo(**d) for d in documents])

    def delete(self, document_id: int) -> str | None:
        """Delete one document and its chunks (and its file, if it was uploaded); its source, or None if unknown."""
        if not self.knowledge_schema.ensure(create=False):
            return None
        with self.connection() as conn:
            deleted = store.delete_by_id(conn, self.schema, [document_id])
        if not deleted:
            return None
        uploads.forget(self.uploads_folder, deleted[0])
        return deleted[0]

    def upload(self, filename: str, stream: BinaryIO) -> UploadedDocument:
        """Save a file sent by a client under the uploads folder and ingest it (see uploads.ingest_upload)."""
        def stored(source: str) -> dict:
            with self.connection() as conn:
                return store.get_document(conn, self.schema, store.document_id(source))

        return UploadedDocument(**uploads.ingest_upload(self.uploads_folder, filename, stream, ingest=self.ingest,
                                                        stored=stored, max_bytes=self.max_file_bytes))

    def sources(self) -> list[str]:
        """Sources of all stored documents."""
        self.knowledge_schema.require()
        with self.connection() as conn:
            return store.all_sources(conn, self.schema)

"""What the route modules share: id paths, upload reading."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, UploadFile

from facetrace.core.errors import InvalidRequestError, RequestTooLargeError
from facetrace.core.limits import MAX_FILE_NAME, bounded
from facetrace.server.schemas import MAX_ID

MAX_UPLOAD_BYTES = 50 * 1024 * 1024

# A case, search or face id in a path: out of the catalog's 64-bit range is a 422, not a failed lookup.
IdPath = Annotated[int, Path(ge=0, le=MAX_ID)]


# Looking at the gallery (faces, thumbnails, people) names a case and a purpose, as a search does; the case service
# refuses a look without them (422) or in a case the caller does not work in (404).
BrowseCase = Annotated[
    int | None, Query(ge=0, le=MAX_ID, description="The case this look at the gallery belongs to (required).")
]
BrowsePurpose = Annotated[str | None, Query(max_length=2000, description="Why, within the case's purpose (required).")]


def read_upload(upload: UploadFile, what: str) -> tuple[bytes, str]:
    name = bounded(upload.filename or what, f"the file name of {what}", MAX_FILE_NAME)
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise RequestTooLargeError(f"{name}: more than {MAX_UPLOAD_BYTES:,} bytes; send a smaller photo")
    if not data:
        raise InvalidRequestError(f"{what} is empty")
    return data, name

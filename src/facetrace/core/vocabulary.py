"""The domain's words, each defined once: roles, case and run statuses, review decisions, erasure modes, ingest job
kinds and statuses, how a photo's label found its face and a face's part in its photo, cluster assignment and event
kinds, how a hit relates to the probe's own photo, why a search withheld a candidate, and the actions the audit log
records.

They are StrEnums: a member is the string it stands for (Role.ADMIN == "admin", f"{Role.ADMIN}" == "admin", JSON
and the catalog hold "admin"), so stored values, API bodies and CLI output are plain strings. Code that takes such a
value from outside (a form, a request body, a catalog row) turns it into the enum, e.g. Role(text), which raises
ValueError for a word that is not one of them.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role, which decides what they may do (the same roles in the API, the web UI and the CLI)."""

    ADMIN = "admin"
    INVESTIGATOR = "investigator"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"


class CaseStatus(StrEnum):
    """An open case accepts searches and comparisons; a closed one keeps its record and accepts only reviews."""

    OPEN = "open"
    CLOSED = "closed"


class IndependentReview(StrEnum):
    """The four-eyes policy (setting independent_review): required, every case refuses a review by the user who ran
    the search; optional, the investigator opening a case chooses."""

    REQUIRED = "required"
    OPTIONAL = "optional"


class ReviewDecision(StrEnum):
    """A reviewer's word on one candidate of a search."""

    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class ErasureMode(StrEnum):
    """What an erasure request named: face ids, a person's label, or the requester's photo."""

    FACES = "faces"
    PERSON = "person"
    PROBE = "probe"


class SameImage(StrEnum):
    """Whether a search hit is the probe's own photo, so that a self-match is never read as independent evidence.

    IDENTICAL: the hit's photo has the probe's sha256 (the same file). NEAR_DUPLICATE: likely the same photo, a
    re-encoded, resized or slightly cropped copy (the rule and its measurement: search/service.py, docs/service.md).
    """

    NONE = "none"
    IDENTICAL = "identical"
    NEAR_DUPLICATE = "near_duplicate"


class MinStrength(StrEnum):
    """The weakest hits a reader wants to see (--min-strength, the API's min_strength, the search page's filter):
    WEAK keeps every hit; MODERATE keeps moderate and strong leads; STRONG only strong ones. A hit of an uncalibrated
    pack has no measured strength, so only WEAK keeps it."""

    STRONG = "strong"
    MODERATE = "moderate"
    WEAK = "weak"

    def keeps(self, strength: str) -> bool:
        """Whether a hit of this strength (a core.types.Strength value) passes the filter."""
        if self is MinStrength.WEAK:
            return True
        return strength == "strong" or (self is MinStrength.MODERATE and strength == "moderate")


class WithheldReason(StrEnum):
    """Why a search did not show a face the index ranked among its candidates (the next ones fill its place)."""

    ERASED_PERSON = "erased_person"  # the face matches an erased person's suppressed embeddings
    NO_CATALOG_ROW = "no_catalog_row"  # the index holds a face the catalog no longer has (`facetrace check --repair`)
    # The index gave a similarity no two unit vectors can have (outside [-1, 1], or not a number): a damaged entry
    # is never a lead (`facetrace check` finds it, `check --repair` or `index rebuild` mends it).
    IMPOSSIBLE_SIMILARITY = "impossible_similarity"


class ErasureMatch(StrEnum):
    """Why a face is on an erasure's list: named by its id, shown with the person's label, matching the requester's
    face (erasure by photo), or matching a face already on the list (one step, never further)."""

    FACE_ID = "face_id"
    LABEL = "label"
    PHOTO = "photo"
    LINKED = "linked"


class JobKind(StrEnum):
    """What a background ingest job reads: uploaded photos, a server folder or file, or a manifest (on the server, or
    uploaded with the photos it names)."""

    UPLOAD = "upload"
    PATH = "path"
    MANIFEST = "manifest"


class JobStatus(StrEnum):
    """Where a background ingest job of the server is: waiting, reading, or finished (done or failed)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RunStatus(StrEnum):
    """An ingest run as the catalog keeps it; RUNNING is only ever set when the run starts."""

    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class WalkSkip(StrEnum):
    """Why a folder walk passed over an entry; an ingest's summary counts each (source_counts "skipped_<word>")."""

    NOT_AN_IMAGE = "not_an_image"  # a suffix no photo has: .txt, .xmp, .mov, none
    UNSUPPORTED_FORMAT = "unsupported_format"  # a photo format facetrace does not decode: camera RAW, SVG, JPEG XL
    HIDDEN = "hidden"  # a file or folder whose name starts with "." (macOS ._ forks, .thumbnails caches)
    BROKEN_LINK = "broken_link"  # a symbolic link to nothing
    LINK_LOOP = "link_loop"  # a link to a folder the walk is already inside
    UNREADABLE = "unreadable"  # a folder or entry the walk may not read (permissions)


class SubjectAttribution(StrEnum):
    """How the face a labelled photo is about (its subject, the one face its label names) was decided; stored with
    the photo (assets.attribution). AMBIGUOUS, NOT_FOUND and NO_FACE photos give their label to no face."""

    ONLY_FACE = "only_face"  # the photo has one face
    DOMINANT = "dominant"  # the face that clearly dominates the photo (core/subject.py's rule)
    FACE_INDEX = "face_index"  # named by the manifest's face_index column
    FACE_BOX = "face_box"  # named by the manifest's face_box column (the detected face that overlaps it best)
    AMBIGUOUS = "ambiguous"  # several faces and none dominates: nobody said which face is the subject
    NOT_FOUND = "not_found"  # the manifest's face_index or face_box names no detected face
    NO_FACE = "no_face"  # no face was detected in the photo

    @property
    def names_a_face(self) -> bool:
        """Whether the photo's label went to one of its faces."""
        return self not in (SubjectAttribution.AMBIGUOUS, SubjectAttribution.NOT_FOUND, SubjectAttribution.NO_FACE)


class PhotoRole(StrEnum):
    """A stored face's part in a labelled photo: its subject (it carries the label), a bystander (the photo is of
    someone else), or unattributed (the photo's subject is ambiguous, so this face may or may not be the one)."""

    SUBJECT = "subject"
    BYSTANDER = "bystander"
    UNATTRIBUTED = "unattributed"


class ClusterAssignedBy(StrEnum):
    """How a face came into its saved cluster."""

    BATCH = "batch"  # batch clustering (the first save)
    INCREMENTAL = "incremental"  # placed later, at ingest or a later save
    MANUAL = "manual"  # a person's merge or split


class ClusterEventKind(StrEnum):
    """One recorded change to a saved cluster."""

    CREATE = "create"
    MERGE = "merge"
    SPLIT = "split"
    ASSIGN = "assign"
    RENAME = "rename"
    ERASE = "erase"
    HIDE = "hide"
    UNHIDE = "unhide"


class AuditAction(StrEnum):
    """What an audit entry records (its `action`). Entries are read back as stored: a plain string."""

    # users and keys
    ADD_USER = "add_user"
    ISSUE_API_KEY = "issue_api_key"
    REVOKE_API_KEY = "revoke_api_key"
    DEACTIVATE_USER = "deactivate_user"
    SET_PASSWORD = "set_password"
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_IN_LOCKOUT = "sign_in_lockout"
    # cases, searches and what they showed
    OPEN_CASE = "open_case"
    CLOSE_CASE = "close_case"
    ADD_CASE_MEMBER = "add_case_member"
    REMOVE_CASE_MEMBER = "remove_case_member"
    SEARCH = "search"
    SEARCH_FAILED = "search_failed"  # the probe could not be searched (unreadable, no face, no such face)
    COMPARE = "compare"
    REVIEW = "review"
    VIEW_FACE = "view_face"
    VIEW_THUMBNAIL = "view_thumbnail"
    VIEW_PHOTO = "view_photo"  # a gallery face's whole photo
    VIEW_PROBE = "view_probe"
    LIST_PEOPLE = "list_people"
    VIEW_PERSON = "view_person"
    VIEW_REVIEW_QUEUE = "view_review_queue"  # the faces of one case shown in a reviewer's queue, in one entry
    EXPORT = "export"
    # reads (folded: one entry per reader and thing read a minute, server/reads.py) and refusals
    LIST_CASES = "list_cases"
    VIEW_CASE = "view_case"
    VIEW_SEARCH = "view_search"
    READ_AUDIT = "read_audit"
    LIST_RECEIPTS = "list_receipts"
    VIEW_RECEIPT = "view_receipt"
    LIST_JOBS = "list_jobs"
    VIEW_JOB = "view_job"
    DENIED = "denied"
    # the gallery: ingest, erasure, retention, saved clusters
    INGEST_JOB = "ingest_job"
    INGEST_JOB_FINISHED = "ingest_job_finished"
    ERASE = "erase"
    ERASE_PREVIEW = "erase_preview"
    PURGE = "purge"
    CLUSTER_SAVE = "cluster_save"
    CLUSTER_MERGE = "cluster_merge"
    CLUSTER_SPLIT = "cluster_split"
    CLUSTER_RENAME = "cluster_rename"
    CLUSTER_HIDE = "cluster_hide"
    CLUSTER_UNHIDE = "cluster_unhide"

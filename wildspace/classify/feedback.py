"""Feedback on classifier answers: stored durably with the image, exported for retraining.

Layout under the store's folder (the data dir's ``feedback/``)::

    feedback.sqlite            one row per answer judged (WAL journal, full sync); an answer
                               id (the app's) is judged once per owner: a second verdict
                               replaces the first
    images/ab/abcdef….jpg      each photo once, named by its sha256, written atomically

:meth:`FeedbackStore.export_dataset` writes a Hugging Face ``datasets`` dataset (images
embedded, labels as a ``ClassLabel``) that ``datasets.load_from_disk`` reads back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import sqlite3
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from wildspace.errors import UsageError
from wildspace.media.images import ImageReadError, load_image

VERDICTS = ("right", "wrong")
MAX_COMMENT = 2000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    owner TEXT NOT NULL,
    model TEXT NOT NULL,
    image TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    predicted TEXT NOT NULL,
    predicted_conf REAL NOT NULL,
    top TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('right', 'wrong')),
    label TEXT,
    comment TEXT NOT NULL DEFAULT '',
    answer_id TEXT
)"""
_COLUMNS = ("id, created, owner, model, image, image_sha256, predicted, predicted_conf, top, "
            "verdict, label, comment, answer_id")
_ANSWER_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS feedback_answer ON feedback(owner, answer_id) "
                 "WHERE answer_id IS NOT NULL")


@dataclass(frozen=True)
class FeedbackRecord:
    """One judged answer. ``label`` is the right label: the prediction when the verdict is
    ``right``, the user's correction when ``wrong`` (``None`` if they did not know it)."""

    id: str
    created: str
    owner: str
    model: str
    image: Path
    image_sha256: str
    predicted: str
    predicted_conf: float
    top: tuple[tuple[str, float], ...]
    verdict: str
    label: str | None
    comment: str
    answer_id: str | None = None


class FeedbackStore:
    """Feedback rows in SQLite plus the judged images, under ``root``."""

    def __init__(self, root: str | Path, max_pixels: int = 200_000_000):
        self.root = Path(root)
        self.images_dir = self.root / "images"
        self.db_path = self.root / "feedback.sqlite"
        self.max_pixels = max_pixels
        self.root.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            if "answer_id" not in {row[1] for row in db.execute("PRAGMA table_info(feedback)")}:
                db.execute("ALTER TABLE feedback ADD COLUMN answer_id TEXT")  # older stores
            db.execute(_ANSWER_INDEX)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            db.execute("PRAGMA synchronous=FULL")
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    # -- writing ------------------------------------------------------------------------
    def add(self, image_path: str | Path, model: str, top: Sequence[tuple[str, float]], verdict: str,
            right_label: str | None = None, comment: str = "", owner: str = "anonymous",
            labels: Sequence[str] | None = None, answer_id: str | None = None) -> FeedbackRecord:
        """Record a verdict on an answer; the photo is copied into the store.

        With ``answer_id`` (the id the app gave the answer) the verdict is stored once per
        owner: a second submission replaces the first (same feedback id, new verdict, label,
        comment and time), so resubmitting never adds rows.

        Args:
            image_path: the photo that was classified.
            top: the answer shown, best first, as ``(label, conf)`` pairs.
            verdict: ``right`` or ``wrong``.
            right_label: the correct label (needed to be useful when ``wrong``; must equal
                the prediction when ``right``).
            labels: the labels a correction may use (the model's); checked when given.

        Raises:
            ValueError: a bad verdict, label or comment, or a file that is not an image.
        """
        if verdict not in VERDICTS:
            raise UsageError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        if not top:
            raise UsageError("there is no answer to give feedback on")
        predicted, conf = str(top[0][0]), float(top[0][1])
        right_label = (right_label or "").strip() or None
        if verdict == "right":
            if right_label not in (None, predicted):
                raise UsageError(f"marked right, but the right label '{right_label}' differs from the "
                                 f"answer '{predicted}'; mark it wrong instead")
            right_label = predicted
        if right_label is not None and labels is not None and right_label not in labels:
            raise UsageError(f"'{right_label}' is not a label of this model; choose from {', '.join(labels)}")
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT:
            raise UsageError(f"the comment is {len(comment)} characters; at most {MAX_COMMENT} please")
        rel, digest = self._save_image(Path(image_path))
        answer_id = (answer_id or "").strip() or None
        rec = FeedbackRecord(id=uuid.uuid4().hex, created=_dt.datetime.now(_dt.timezone.utc).isoformat(),
                             owner=owner, model=model, image=self.root / rel, image_sha256=digest,
                             predicted=predicted, predicted_conf=conf,
                             top=tuple((str(k), float(v)) for k, v in top), verdict=verdict,
                             label=right_label, comment=comment, answer_id=answer_id)
        values = (rec.id, rec.created, rec.owner, rec.model, rel, digest, rec.predicted,
                  rec.predicted_conf, json.dumps(rec.top), rec.verdict, rec.label, rec.comment, answer_id)
        with self._connect() as db:
            if answer_id is None:
                db.execute(f"INSERT INTO feedback ({_COLUMNS}) VALUES ({','.join('?' * 13)})", values)
                return rec
            db.execute(f"INSERT INTO feedback ({_COLUMNS}) VALUES ({','.join('?' * 13)}) "
                       "ON CONFLICT(owner, answer_id) WHERE answer_id IS NOT NULL DO UPDATE SET "
                       "created=excluded.created, model=excluded.model, image=excluded.image, "
                       "image_sha256=excluded.image_sha256, predicted=excluded.predicted, "
                       "predicted_conf=excluded.predicted_conf, top=excluded.top, "
                       "verdict=excluded.verdict, label=excluded.label, comment=excluded.comment",
                       values)
            (stored_id,) = db.execute("SELECT id FROM feedback WHERE owner = ? AND answer_id = ?",
                                      (owner, answer_id)).fetchone()
        return dataclasses.replace(rec, id=stored_id)

    def answer(self, owner: str, answer_id: str) -> FeedbackRecord | None:
        """The verdict ``owner`` gave on the app's answer ``answer_id`` (``None``: none yet)."""
        sql = f"SELECT {_COLUMNS} FROM feedback WHERE owner = ? AND answer_id = ?"
        with self._connect() as db:
            rows = db.execute(sql, (owner, answer_id)).fetchall()
        return self._record(rows[0]) if rows else None

    def _save_image(self, src: Path) -> tuple[str, str]:
        """Copy ``src`` (after checking it decodes) to ``images/<sha[:2]>/<sha><ext>``."""
        try:
            load_image(src, max_pixels=self.max_pixels)
        except ImageReadError as exc:
            raise UsageError(f"the photo cannot be stored: {exc}") from None
        data = src.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        ext = src.suffix.lower() if src.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp",
                                                             ".tif", ".tiff"} else ".img"
        rel = f"images/{digest[:2]}/{digest}{ext}"
        dest = self.root / rel
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return rel, digest

    # -- reading ------------------------------------------------------------------------
    def records(self, owner: str | None = None, model: str | None = None) -> list[FeedbackRecord]:
        """Stored feedback, oldest first (optionally one owner's or one model's)."""
        sql = f"SELECT {_COLUMNS} FROM feedback WHERE 1=1"
        args: list[str] = []
        if owner is not None:
            sql, args = sql + " AND owner = ?", args + [owner]
        if model is not None:
            sql, args = sql + " AND model = ?", args + [model]
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY created, id", args).fetchall()
        return [self._record(r) for r in rows]

    def _record(self, r) -> FeedbackRecord:
        return FeedbackRecord(id=r[0], created=r[1], owner=r[2], model=r[3], image=self.root / r[4],
                              image_sha256=r[5], predicted=r[6], predicted_conf=r[7],
                              top=tuple((str(k), float(v)) for k, v in json.loads(r[8])),
                              verdict=r[9], label=r[10], comment=r[11], answer_id=r[12])

    def __len__(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    # -- export -------------------------------------------------------------------------
    def export_dataset(self, out_dir: str | Path, label_names: Sequence[str] | None = None,
                       model: str | None = None) -> Path:
        """Write the feedback as a ``datasets`` dataset ready for retraining.

        Columns: ``image`` (embedded bytes), ``label`` (``ClassLabel`` over ``label_names``;
        -1 when the user did not know the right label), ``predicted``, ``predicted_conf``,
        ``verdict``, ``comment``, ``model``, ``created``, ``id``.

        Raises:
            ValueError: nothing to export, or a stored label missing from ``label_names``.
        """
        from datasets import ClassLabel, Dataset, Features, Image, Value

        recs = self.records(model=model)
        if not recs:
            raise UsageError("there is no feedback to export yet")
        names = list(label_names) if label_names is not None else sorted({r.label for r in recs if r.label})
        missing = sorted({r.label for r in recs if r.label and r.label not in names})
        if missing:
            raise UsageError(f"feedback labels {', '.join(missing)} are not in the label list given")
        features = Features({"image": Image(), "label": ClassLabel(names=names or ["none"]),
                             "predicted": Value("string"), "predicted_conf": Value("float32"),
                             "verdict": Value("string"), "comment": Value("string"),
                             "model": Value("string"), "created": Value("string"), "id": Value("string")})
        data = {
            "image": [{"bytes": r.image.read_bytes(), "path": r.image.name} for r in recs],
            "label": [names.index(r.label) if r.label else -1 for r in recs],
            "predicted": [r.predicted for r in recs], "predicted_conf": [r.predicted_conf for r in recs],
            "verdict": [r.verdict for r in recs], "comment": [r.comment for r in recs],
            "model": [r.model for r in recs], "created": [r.created for r in recs], "id": [r.id for r in recs],
        }
        out = Path(out_dir)
        Dataset.from_dict(data, features=features).save_to_disk(str(out))
        return out

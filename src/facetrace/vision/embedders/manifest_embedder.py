"""One embedder for every pack: the manifest says the colour order, mean and std; the session runs the network."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from facetrace.core.errors import ModelPackError
from facetrace.vision.sessions import ModelSession

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
BgrImage = npt.NDArray[np.uint8]

# Faces per network call: large enough to amortise the call, small enough to bound memory (2 x 32 x 3 x 112 x 112
# float32 is ~10 MB with flip TTA).
DEFAULT_MAX_BATCH = 32
# A vector shorter than this is not a face embedding (an all-black crop can produce one); it is reported, not divided.
MIN_RAW_NORM = 1e-6


class ManifestEmbedder:
    """Aligned BGR crops in, L2-normalised (n, dim) float32 embeddings out.

    flip_tta averages each crop's raw embedding with its mirror image's before normalising: a little slower, a little
    more robust to pose and lighting asymmetry, and in the same embedding space as plain embeddings.
    """

    def __init__(
        self,
        session: ModelSession,
        *,
        input_width: int,
        input_height: int,
        colour_order: str,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        embedding_dim: int,
        flip_tta: bool = False,
        max_batch: int = DEFAULT_MAX_BATCH,
        label: str = "embedder",
    ) -> None:
        self._session = session
        self.input_width = input_width
        self.input_height = input_height
        self._swap_rb = colour_order == "RGB"
        self._mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self._inv_std = (1.0 / np.asarray(std, dtype=np.float32)).reshape(1, 3, 1, 1)
        self._identity_norm = bool(np.all(self._mean == 0) and np.all(self._inv_std == 1))
        self.embedding_dim = embedding_dim
        self.flip_tta = flip_tta
        self.max_batch = max(1, max_batch)
        self._label = label
        # Some exported graphs hard-code batch 1 (a Reshape to [1, -1]); found out on first use, then run one by one.
        self._batching_works: bool | None = None

    def preprocess(self, crops: Sequence[BgrImage] | npt.NDArray[np.uint8]) -> FloatArray:
        """Crops (n, H, W, 3) BGR uint8 -> the network's (n, 3, H, W) float32 input."""
        batch = np.asarray(crops, dtype=np.uint8)
        if batch.ndim != 4 or batch.shape[1:] != (self.input_height, self.input_width, 3):
            raise ValueError(
                f"{self._label}: expected crops of shape (n, {self.input_height}, {self.input_width}, 3), "
                f"got {batch.shape}"
            )
        if self._swap_rb:
            batch = batch[..., ::-1]
        x = batch.transpose(0, 3, 1, 2).astype(np.float32)
        if not self._identity_norm:
            x = (x - self._mean) * self._inv_std
        return np.ascontiguousarray(x)

    def embed(self, crops: Sequence[BgrImage] | npt.NDArray[np.uint8]) -> FloatArray:
        """L2-normalised embeddings, one row per crop."""
        batch = np.asarray(crops, dtype=np.uint8)
        if batch.shape[0] == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        raw = self._raw(batch)
        if self.flip_tta:
            raw = raw + self._raw(np.ascontiguousarray(batch[:, :, ::-1]))
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        if np.any(norms < MIN_RAW_NORM):
            raise ModelPackError(f"{self._label} produced an all-zero embedding; the model or its input is wrong")
        normalised: FloatArray = (raw / norms).astype(np.float32)
        return normalised

    def _raw(self, batch: npt.NDArray[np.uint8]) -> FloatArray:
        chunks = [
            self._run(self.preprocess(batch[i : i + self.max_batch])) for i in range(0, len(batch), self.max_batch)
        ]
        return np.concatenate(chunks, axis=0)

    def _run(self, x: FloatArray) -> FloatArray:
        if self._batching_works is False and x.shape[0] > 1:
            return np.concatenate([self._run_checked(x[i : i + 1]) for i in range(x.shape[0])], axis=0)
        try:
            out = self._run_checked(x)
        except (ModelPackError, RuntimeError, ValueError) as exc:
            if x.shape[0] == 1 or self._batching_works:
                raise
            log.warning("%s: batched run failed (%s); running one face at a time", self._label, exc)
            self._batching_works = False
            return self._run(x)
        if x.shape[0] > 1:
            self._batching_works = True
        return out

    def _run_checked(self, x: FloatArray) -> FloatArray:
        try:
            output = self._session.run(x)[0]
        except ModelPackError:
            raise
        except Exception as exc:  # runtimes raise their own exception types
            raise RuntimeError(f"{self._label}: inference failed on a batch of {x.shape[0]}: {exc}") from exc
        flat = output.reshape(output.shape[0], -1) if output.ndim >= 2 else output.reshape(1, -1)
        if flat.shape != (x.shape[0], self.embedding_dim):
            raise ModelPackError(
                f"{self._label}: the manifest says embedding_dim {self.embedding_dim}; for a batch of {x.shape[0]} "
                f"the model returned shape {tuple(output.shape)}"
            )
        return flat.astype(np.float32)

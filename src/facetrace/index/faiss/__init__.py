"""A FAISS index in one file plus a JSON sidecar that says which model made its vectors and which structure it holds.

Two structures, chosen by structure_for_size() from the gallery size (or forced with structure="exact"/"ivf"):

exact ("IDMap2,Flat")
    Every vector in one flat inner-product index (inner product on unit vectors is cosine). Exact, one file, all of
    it in RAM (4 * dim bytes per face). The choice below APPROXIMATE_FROM faces.
approximate ("IVF{nlist},SQ8" or "IVF{nlist},PQ{m}x4fs", plus re-ranking)
    An inverted file with a flat coarse quantizer holds compressed codes (SQ8 for dim <= 128, else 4-bit fast-scan
    PQ with one sub-quantizer per 8 dimensions, half a byte each), searched in nprobe of its nlist lists. The best
    `rerank` candidates are then re-scored with dot products against the full vectors, kept as float16 in
    `<index>.vectors.npy` and memory-mapped on reopen, so recall stays high while RAM holds only the codes, the
    coarse centroids and 8-byte row labels (about 50 bytes per face at dim 512). Similarities are those of the
    float16-rounded vectors (within about 1e-3 of float32, not bit-exact). Rows of that file are the labels inside
    the IVF; their face ids live in `<index>.ids.npy`. Until enough vectors have arrived to train the IVF (40 per
    list), searches scan the full vectors exactly.

Sidecar format 2 stores the full vectors as float16; format 1 files (float32 vectors) still open, and are rewritten
as format 2 at their next save.

A gallery opened with structure="auto" (the default) is restructured at save() when it crosses the threshold
(either way); `facetrace index rebuild` may pass expected_count to start in the right structure.

The modules, each importing only those above it (an import-linter contract in pyproject.toml checks it):
    sizing     Structure (what an index holds) and which one a gallery of a given size gets
    stores     the two structures in memory (ExactStore, IvfStore): adding, removing, training, searching
    files      the files on disk: paths, the sidecar, format 1 and 2, loading a store and saving one atomically
    switching  a switch to another structure built in a background thread, with the journal replayed onto it
    backend    FaissIndex, the VectorIndex adapter that composes them

Every module imports the faiss library with an absolute `import faiss`, which this package does not shadow.
"""

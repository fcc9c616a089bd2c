"""What a candidate's badges read (server/ui/templates/macros.html), on every page that shows candidates (a search,
the review queue, a case report): the stored hit's evidence fields and same-image mark, never its sentence."""

from __future__ import annotations

from facetrace.core.types import StoredHit, Strength
from facetrace.core.vocabulary import SameImage


class HitBadges:
    """Mixed into a page's candidate dataclass, which holds the stored hit as `hit`."""

    hit: StoredHit

    @property
    def strength(self) -> Strength:
        return self.hit.evidence.strength

    @property
    def weak_probe(self) -> bool:
        return self.hit.evidence.weak_probe

    @property
    def weak_candidate(self) -> bool:
        return self.hit.evidence.weak_candidate

    @property
    def same_image(self) -> SameImage:
        return self.hit.same_image

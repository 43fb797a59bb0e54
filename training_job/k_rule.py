"""The k rule: from the k search's rows (what the valley test saw at each k), the number of segments.

``choose_k_rule`` is the *valley rule*, a split-and-merge check in the spirit of dip-means (Kalogeratos &
Likas 2012) and of the merge step of split-and-merge k-means. At each k the valley test
(``training_job.valleys``) merges the cluster pairs without a density valley between them; what remains
is the number of *distinct* segments ``n_distinct(k)``. Below the true k every cluster is distinct
(``n_distinct = k``); above it some cluster is one segment cut in two. The rule picks the largest k whose
clusters are all distinct. Unlike silhouette or Calinski-Harabasz it does not reward merging two
overlapping segments, and unlike GMM BIC it does not split a skewed segment to model its shape.

Four guards make it hold up on real tables:

- *Split-and-merge repair*: when k-means at k cuts one segment in two and lumps two others (one
  valley-less pair, everything else distinct), the search merges the pair and splits the widest other
  clusters in turn; a repaired k counts only if some larger k, unaided, also holds k distinct segments.
- *Merging back*: k-means at the true k can also be stuck with no single repair in reach. A larger k
  then cuts every segment into pieces, and the pieces merged (valley-less pairs joined) are the true
  groups, all apart. When some larger k's clusters merge into m groups of at least
  ``MIN_SEGMENT_SHARE`` each, m counts as proven (``STATUS_MERGED``, the row's
  ``smallest_segment_share``), and the model at m is started from those groups' means.
- *Tiny groups*: a k whose smallest cluster holds under ``MIN_SEGMENT_SHARE`` of the customers does
  not count (a handful of extreme spenders leave a real gap but are not a segment).
- *Power*: a pair the test had too few customers to decide is *untested*. A k whose pairs are only apart
  or untested, and whose untested pairs all show a valley below ``VALLEY_RATIO`` at least ``LIKELY_Z``
  standard errors deep (the effect is there and beyond noise, its ``VALLEY_Z`` proof out of reach),
  counts as apart (``STATUS_LIKELY``). A k larger than the proven one
  with an untested pair showing no such valley stays open, and silhouette (reliable on small, clean
  tables) arbitrates among the open ks and the proven one, taking the smallest k within
  ``SILHOUETTE_TOLERANCE`` of the best.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from training_job.valleys import VALLEY_RATIO

__all__ = [
    "FIXED_RULE", "MIN_SEGMENT_SHARE", "RULE_NAME", "STRUCTURE_CONTINUUM", "STRUCTURE_NATURAL", "STRUCTURE_UNPROVEN",
    "USER", "choose_k_in_range", "choose_k_rule", "fixed_k_explanation", "fixed_rule", "merge_support", "rule_status",
    "structure_of",
]

RULE_NAME = "valley-merge"
#: The rule recorded when the user fixed k: one k was fitted, nothing was chosen.
FIXED_RULE = "fixed by the user"
#: Who fixes k when nobody says otherwise (a preset's k says "the preset (mall)": ``fixed_rule``).
USER = "the user"
#: A group holding under this share of the customers is not a segment (a handful of extreme spenders).
MIN_SEGMENT_SHARE = 0.025
#: An unproven gap leans to "apart" only when its dip is at least this many standard errors deep: with
#: few customers per group (power ~2), the smoothed density of one population dips below VALLEY_RATIO
#: by chance alone (a uniform box of 500 rows was called 6-10 "natural groups" on such gaps).
LIKELY_Z = 2.0
#: Fallback when the valley test lacks rows: the smallest k within this of the best silhouette.
SILHOUETTE_TOLERANCE = 0.02

#: Per-k verdicts of the rule (``rule_status`` in the rows).
STATUS_APART = "all groups apart"
STATUS_CUT = "a group cut in two"
STATUS_UNREPAIRED = "all apart only after a repair no larger k confirms"
STATUS_TINY = "a group too small to be a segment"
STATUS_LIKELY = "all groups apart, some gaps seen but too few customers to prove them"
STATUS_UNTESTED = "undecided: too few customers to test every gap"
STATUS_MERGED = "a group cut in two here, but a larger k's groups merge into this many, all apart"

def choose_k_rule(rows: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """The valley rule on search rows, with its small-table fallback; returns (k, a plain-words why)."""
    if not rows:
        raise ValueError("rows is empty: nothing to choose from")
    by_k = sorted(rows, key=lambda r: r["k"])
    status = rule_status(by_k)
    proven = [r for r in by_k if status[r["k"]] in (STATUS_APART, STATUS_MERGED, STATUS_LIKELY)]
    k_valley = proven[-1]["k"] if proven else None
    # Too few customers to prove or disprove the gaps: a larger k that no pair contradicts stays open,
    # and silhouette (reliable on small, clean tables) arbitrates, preferring the smaller k on near ties.
    open_ = [r for r in by_k if status[r["k"]] == STATUS_UNTESTED and (k_valley is None or r["k"] > k_valley)]
    if open_:
        candidates = open_ + proven[-1:]
        best = max(r["silhouette"] for r in candidates)
        pick = min((r for r in candidates if r["silhouette"] >= best - SILHOUETTE_TOLERANCE),
                   key=lambda r: r["k"])
        k = pick["k"]
        if k != k_valley:
            ks = sorted(r["k"] for r in candidates)
            span = ", ".join(map(str, ks)) if ks != list(range(ks[0], ks[-1] + 1)) else (
                str(ks[0]) if len(ks) == 1 else f"{ks[0]} to {ks[-1]}")
            return k, (
                f"{k} segments: there are too few customers per group to prove the gaps between groups. "
                f"The valley test leaves k = {span} open; among them, {k} groups keep customers most "
                f"clearly closer to their own group than to any other (silhouette {pick['silhouette']:.2f})."
            )
    if k_valley is None:
        k = by_k[0]["k"]
        return k, (
            f"No k tried gave groups clearly apart from each other, so the smallest, k={k}, is used: "
            f"read these segments as slices of one continuous customer base."
        )
    # Below the true k every cluster is distinct; above it some cluster is one segment cut in two.
    # The largest all-distinct k is therefore the true k (at large k, small pieces can show chance
    # dips; the z-score test keeps those rare).
    k = k_valley
    if status[k] == STATUS_MERGED:
        return k, (
            f"{k} segments: asked for more groups, k-means cuts segments into pieces, and once the pieces "
            f"with no gap between them are put back together, {k} groups remain, each separated from every "
            f"other by a gap in the data; asked for exactly {k} groups, k-means cuts one segment and lumps "
            f"two, so the model starts from the groups put back together."
        )
    why = f"{k} segments: with {k} groups every group is separated from every other by a gap in the data"
    if status[k] == STATUS_LIKELY:
        why += " (some gaps are seen in too few customers to be proven)"
    larger = {status[r["k"]] for r in by_k if r["k"] > k}
    tails = []
    if larger & {STATUS_CUT, STATUS_UNREPAIRED}:
        tails.append("only cuts an existing group in two")
    if STATUS_TINY in larger:
        share = f"{MIN_SEGMENT_SHARE:.1%}".replace(".0%", "%")
        tails.append(f"splits off a group of under {share} of customers, too few to be a segment")
    if STATUS_UNTESTED in larger:
        tails.append("gives groups that are less clearly apart")
    if tails:
        return k, f"{why}, while asking for more {' or '.join(tails)}."
    return k, f"{why}; no larger number was tried."


def merge_support(by_k: Sequence[dict[str, Any]]) -> dict[int, int]:
    """m -> the smallest larger k whose clusters, valley-less pairs merged, are m segments of at least
    ``MIN_SEGMENT_SHARE`` each: the merge step of split-and-merge, over-cluster and merge back."""
    support: dict[int, int] = {}
    for r in by_k:
        m = r["n_distinct"]
        if m < r["k"] and r.get("smallest_segment_share", 0.0) >= MIN_SEGMENT_SHARE:
            support.setdefault(m, r["k"])
    return support


def rule_status(by_k: Sequence[dict[str, Any]]) -> dict[int, str]:
    """What the rule concludes at each k, from that k's row (and, for a repair, the larger ks')."""
    status = {}
    for r in by_k:
        k = r["k"]
        if r.get("smallest_share", 1.0) < MIN_SEGMENT_SHARE:
            status[k] = STATUS_TINY
        elif r["n_distinct"] >= k:
            # A k made all-distinct only by the split-and-merge repair must be confirmed: some larger
            # k, unaided (not itself repaired), must also hold at least k distinct segments (else the repair
            # cut one in two).
            confirmed = not r.get("split_merge_repaired", False) or any(
                o["k"] > k and o["n_distinct"] >= k and not o.get("split_merge_repaired", False) for o in by_k
            )
            status[k] = STATUS_APART if confirmed else STATUS_UNREPAIRED
        elif (r.get("n_distinct_possible", r["n_distinct"]) >= k and r.get("pairs_untested", 0) > 0
              and math.isfinite(r.get("silhouette", math.nan))):
            # Too few customers to prove some gap. When every such pair still shows a valley as deep
            # as a proven one must be (below VALLEY_RATIO) and beyond the density's noise (LIKELY_Z),
            # the data leans to "apart": the effect is there, only its proof is out of reach, so the k
            # counts; a pair with no valley to speak of, or one noise alone could draw, leaves it undecided.
            weak = [p for p in r.get("valley_pairs") or [] if p["verdict"] == "untested"]
            deep = bool(weak) and all(p["valley_ratio"] < VALLEY_RATIO and p["z"] >= LIKELY_Z for p in weak)
            status[k] = STATUS_LIKELY if deep else STATUS_UNTESTED
        else:
            status[k] = STATUS_CUT
    # k-means at the true k can be stuck cutting a big segment and lumping two close ones, while a
    # larger k cuts every segment and the pieces merge back (no valley between them) into the true
    # groups, all apart. That larger k sees the segments the k itself missed.
    for m in merge_support(by_k):
        if m in status and status[m] != STATUS_APART:
            status[m] = STATUS_MERGED
    return status


# --------------------------------------------------------------------------------------------------
# Natural groups or a partition of a continuum, and the business range


#: What the segments are (``KSearchResult.structure``, the manifest's ``k_search.structure``).
STRUCTURE_NATURAL = "natural groups"
STRUCTURE_CONTINUUM = "partition of a continuum"
#: Groups the valley test had too few customers to prove or disprove (silhouette chose among the ks the
#: data leaves open): neither proven apart nor shown to be one continuum.
STRUCTURE_UNPROVEN = "unproven groups"
#: Inside a business range, a continuum is cut at the fewest segments after which one more segment
#: would explain less than this share of the customers' variation (the elbow of explained variance).
ELBOW_GAIN = 0.03


def structure_of(rows: Sequence[dict[str, Any]], k: int) -> str:
    """Natural groups when the rule sees the groups at ``k`` apart (proven, merged back, or seen beyond
    noise but too few customers to prove); unproven groups when the test lacked the customers to decide
    at ``k``; otherwise the segments are a partition of a continuum."""
    status = rule_status(sorted(rows, key=lambda r: r["k"]))
    if status.get(k) in (STATUS_APART, STATUS_MERGED, STATUS_LIKELY):
        return STRUCTURE_NATURAL
    return STRUCTURE_UNPROVEN if status.get(k) == STATUS_UNTESTED else STRUCTURE_CONTINUUM


def fixed_rule(set_by: str = USER) -> str:
    """The rule recorded for a fixed k: "fixed by the user" (FIXED_RULE), "set by the preset (mall)"."""
    return FIXED_RULE if set_by == USER else f"set by {set_by}"


def fixed_k_explanation(k: int, structure: str, set_by: str = USER) -> str:
    """Why a fixed k is the k (the user or a preset set it, the rule chose nothing), and what the valley test
    saw at it."""
    seen = {
        STRUCTURE_NATURAL: "every group is separated from every other by a gap in the data",
        STRUCTURE_UNPROVEN: "there are too few customers per group to prove or rule out the gaps between groups",
    }.get(structure, "not every group is apart from the others: read the segments as slices of one continuous "
                     "customer base")
    who = ("fixed by the user (the k of the command line, the request or the configuration)" if set_by == USER
           else f"set by {set_by}")
    return (f"k = {k} was {who}, "
            f"not chosen by the {RULE_NAME} rule: no other k was tried. At k = {k}, {seen}.")


def choose_k_in_range(
    rows: Sequence[dict[str, Any]], business_range: tuple[int, int]
) -> tuple[int, str, str]:
    """The rule's k when it finds natural groups inside ``business_range``; otherwise the range's k at
    the elbow of explained variance (``ELBOW_GAIN``). Returns (k, why, structure)."""
    lo, hi = business_range
    k_rule, why_rule = choose_k_rule(rows)
    structure = structure_of(rows, k_rule)
    if structure == STRUCTURE_NATURAL and lo <= k_rule <= hi:
        return k_rule, why_rule, structure
    explained = {r["k"]: r["explained_variance"] for r in rows}
    k = next((k for k in range(lo, hi) if k in explained and k + 1 in explained
              and explained[k + 1] - explained[k] < ELBOW_GAIN), None)
    if k is None:
        k = max((k for k in explained if lo <= k <= hi), default=hi)
        stop = f"every further segment up to {k} still explains at least {ELBOW_GAIN:.0%} more"
    else:
        stop = f"a {_ordinal(k + 1)} segment would explain under {ELBOW_GAIN:.0%} more"
    if structure == STRUCTURE_NATURAL:
        seen = (f"The data's own groups ({k_rule}) lie outside the business range {lo}-{hi}, so the "
                f"segments are a partition, not natural groups. ")
    elif structure == STRUCTURE_UNPROVEN:
        seen = (f"The {k_rule} groups the data leaves open have too few customers each to prove the gaps "
                f"between them, so the segments are cut as a continuum. ")
    else:
        seen = "No number of segments tried gave groups clearly apart: the customers form one continuum. "
    return k, (
        f"{k} segments, a partition of a continuous customer base. {seen}Within the business range "
        f"{lo}-{hi}, {k} segments explain {explained.get(k, float('nan')):.0%} of the variation between "
        f"customers and {stop}."
    ), STRUCTURE_CONTINUUM


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"

"""Readable names, descriptions and marketing actions for segments.

Everything here is derived from each segment's profile against the whole customer base, never from the
raw cluster id, so a retrain that permutes labels does not rename segments.

Numeric features
    The *percentile* ``p`` of the segment's median within the base distribution (mid-rank, NaN ignored)
    is robust to the skew of money-like columns, where a z-score of means is dominated by a few whales.
    ``position = 2p - 1`` lies in [-1, 1]. Levels: ``low`` if p < 1/3, ``high`` if p > 2/3, else
    ``average`` (i.e. the segment's typical member sits in the bottom / top third of all customers).
Categorical features
    A level is over-represented when its lift (share in segment / share in base) is >= 1.5 and it covers
    at least 40% of the segment. Its distinctiveness is (segment share - base share) / (1 - base share),
    0 when the segment looks like the base and 1 when every member has that level, so it ranks on the
    same 0..1 scale as ``|position|`` of numeric features.
Styles
    ``profile`` builds short names (about three words) from the two most distinctive strong traits, in
    the business words of ``name_terms`` ("Affluent Big Spenders"), never from raw column names.
    ``mall`` and ``rfm`` match each segment to archetypes (points in position space) by Hungarian
    assignment on squared distances, so no archetype name is used twice; a match further than
    ``_MAX_AXIS_GAP`` from its archetype on any axis is refused, and an RFM archetype is open only to a
    segment that meets its rule (``_RFM_RULES``: Champions need the top fifth on recency, frequency and
    monetary); such a segment, like any left over when k exceeds the archetypes, gets a profile name.
Short histories
    Recency reads as lapsing only in a transaction log covering at least ``MIN_HISTORY_DAYS`` days (first to
    last purchase day, both counted). In a shorter one, days without a purchase are days, not lost customers:
    recency is left out of names, descriptions and actions (no Lapsed / Recent, no win-back), and no RFM
    archetype is used (they all read recency: Champions bought recently; At Risk, Can't Lose Them,
    Hibernating and Lost have lapsed), so every segment gets a profile name from its other traits.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from training_job.name_terms import measures_recency, readable_label, term_for

__all__ = ["MIN_HISTORY_DAYS", "STYLES", "SegmentDescription", "describe_segments", "recency_means_lapsing",
           "short_history_warning"]

logger = logging.getLogger(__name__)

STYLES = ("profile", "mall", "rfm")
#: A transaction log covering fewer days than this is too short for recency to mean lapsing (module docstring).
MIN_HISTORY_DAYS = 90

# Level thresholds on the percentile of the segment median (see module docstring).
_LOW_PCT = 1.0 / 3.0
_HIGH_PCT = 2.0 / 3.0
# Over-representation of a categorical level.
_MIN_LIFT = 1.5
_MIN_SHARE = 0.4
_MAX_NAME_TRAITS = 3
_MAX_NAME_CATEGORICAL = 2
_MAX_DESCRIPTION_TRAITS = 3
# Names: two traits at most, about three words ("Affluent Big Spenders"; a two-word category level such as
# "New York" may make four).
_NAME_TRAITS = 2
_MAX_NAME_WORDS = 4
_MIDDLE_NAME = "Mid-range Customers"
_STATUS_WORDS = {"Lapsed", "Recent"}
# An archetype is refused when the segment is this far from it on some axis (positions are in [-1, 1];
# 0.75 means e.g. a "high" archetype at +1 needs position > 0.25, i.e. the segment median above the 62nd
# percentile).
_MAX_AXIS_GAP = 0.75
# RFM positions are relative; when k is small no segment reaches the extremes, so each axis is stretched
# until its most extreme segment sits at +-1, but by no more than this factor (noise must stay noise).
_MAX_RFM_STRETCH = 3.0

_BOOL_TRUE = {"true", "yes", "y", "1", "t"}
_BOOL_FALSE = {"false", "no", "n", "0", "f"}
_FILLER_WORDS = {"annual", "total", "score", "level", "average", "avg", "number", "num", "of", "the", "count"}
_RECENCY_RE = re.compile(r"recency|days[ _]*since|since[ _]*last", re.IGNORECASE)
_AGE_RE = re.compile(r"(?<![a-z])age(?![a-z])", re.IGNORECASE)
_TENURE_RE = re.compile(r"tenure|as[ _]*customer|customer[ _]*(since|for)|seniority", re.IGNORECASE)
_COUNT_RE = re.compile(r"children|kids|kidhome|teenhome|items|purchases|orders|visits", re.IGNORECASE)
_INCOME_RE = re.compile(r"income|salary|wealth", re.IGNORECASE)
_VALUE_RE = re.compile(r"spend|monetary|revenue|amount|sales|value|mnt|price", re.IGNORECASE)
_FREQUENCY_RE = re.compile(r"frequency|purchases|orders|items|visits|invoices|transactions", re.IGNORECASE)
_SATISFACTION_RE = re.compile(r"satisf|rating|review|nps", re.IGNORECASE)


@dataclass(frozen=True)
class SegmentDescription:
    """Name, one- or two-sentence description and suggested marketing action of one segment."""

    name: str
    description: str
    action: str

    def to_dict(self) -> dict[str, str]:
        """Plain dict, for the manifest."""
        return asdict(self)


@dataclass(frozen=True)
class _Trait:
    """How one feature of one segment compares with the base."""

    feature: str
    categorical: bool
    score: float  # distinctiveness in [0, 1]
    strong: bool  # worth naming: non-average numeric level or over-represented category
    level: str  # "low" / "average" / "high", or the category level
    position: float  # numeric: 2p - 1 in [-1, 1]; categorical: signed distinctiveness
    segment_value: float  # numeric: segment median; categorical: share of the level in the segment
    base_value: float  # numeric: base median; categorical: share of the level in the base
    label: str = ""  # the feature's display label ([naming.labels] or derived from its name)


# --------------------------------------------------------------------------------------------- public


def recency_means_lapsing(history_days: int | None) -> bool:
    """Whether recency may read as lapsing in names: the data is no transaction log (None) or a log covering
    at least ``MIN_HISTORY_DAYS`` days."""
    return history_days is None or history_days >= MIN_HISTORY_DAYS


def short_history_warning(history_days: int | None) -> str | None:
    """The job's warning for a transaction log too short for recency to mean lapsing; None otherwise."""
    if recency_means_lapsing(history_days):
        return None
    return (f"the transaction log covers only {history_days} day(s) (first to last purchase day), under "
            f"{MIN_HISTORY_DAYS}: a difference in recency of a few days does not mean that customers lapsed, so "
            f"the segment names, descriptions and actions leave recency out (no Lapsed, At Risk, Hibernating, "
            f"Lost or win-back); train on at least {MIN_HISTORY_DAYS} days to tell lapsed customers from active ones")


def describe_segments(
    features: pd.DataFrame,
    labels: np.ndarray,
    numeric: Sequence[str],
    categorical: Sequence[str],
    style: str = "profile",
    overrides: Mapping[str, str] | None = None,
    display_labels: Mapping[str, str] | None = None,
    history_days: int | None = None,
) -> list[SegmentDescription]:
    """One description per segment id 0..k-1, in id order, with unique names (``display_labels``: a
    business label per column, else one derived from the column name; ``history_days``: the days a
    transaction log covers, None for a customer table, see ``recency_means_lapsing``)."""
    labels = np.asarray(labels)
    if style not in STYLES:
        raise ValueError(f"style={style!r} should be one of {STYLES}.")
    if labels.ndim != 1 or len(labels) != len(features):
        raise ValueError(f"labels has shape {labels.shape}, expected ({len(features)},) like features.")
    if len(labels) == 0:
        raise ValueError("features has no rows.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"labels should be non-negative integers, got dtype={labels.dtype}.")
    missing = [c for c in [*numeric, *categorical] if c not in features.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in features (columns: {list(features.columns)}).")
    if not numeric and not categorical:
        raise ValueError("at least one numeric or categorical feature is needed.")
    k = int(labels.max()) + 1
    empty = sorted(set(range(k)) - set(np.unique(labels).tolist()))
    if empty:
        raise ValueError(f"segments {empty} have no rows; labels should cover 0..{k - 1}.")
    display = {c: (display_labels or {}).get(c) or readable_label(c) for c in [*numeric, *categorical]}
    return _describe_segments(features, labels, list(numeric), list(categorical), style, overrides or {}, display,
                              recency_means_lapsing(history_days))


# -------------------------------------------------------------------------------------------- private


def _describe_segments(
    features: pd.DataFrame,
    labels: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    style: str,
    overrides: Mapping[str, str],
    display: Mapping[str, str],
    lapsing: bool = True,
) -> list[SegmentDescription]:
    """Same as describe_segments, no input validation (``lapsing`` False: recency left out, no RFM archetype)."""
    k = int(labels.max()) + 1
    if not lapsing:
        numeric = [c for c in numeric if not measures_recency(display[c], c)]
        style = "profile" if style == "rfm" else style
    profiles = _profiles(features, labels, numeric, categorical, display)
    archetype_names: list[str | None] = [None] * k
    actions: list[str | None] = [None] * k
    lead: list[str] = []  # features reported first in descriptions
    if style == "mall":
        income, spending = _mall_columns(numeric)
        lead = [income, spending]
        archetype_names, actions = _match_archetypes(
            [[_position(p, income), _position(p, spending)] for p in profiles], _MALL_ARCHETYPES
        )
    elif style == "rfm":
        recency, frequency, monetary = _rfm_columns(numeric)
        lead = [c for c in (recency, frequency, monetary) if c is not None]
        archetype_names, actions = _match_archetypes(_rfm_points(profiles, recency, frequency, monetary),
                                                     _RFM_ARCHETYPES,
                                                     _rfm_eligible(profiles, recency, frequency, monetary))
    names = [a if a is not None else _profile_name(p) for a, p in zip(archetype_names, profiles, strict=True)]
    names = _unique_names(names, profiles, fixed=[a is not None for a in archetype_names])
    sizes = np.bincount(labels, minlength=k)
    out = []
    for i, prof in enumerate(profiles):
        description = _description(prof, int(sizes[i]), len(labels), lead)
        action = actions[i] if actions[i] is not None else _profile_action(prof)
        out.append(SegmentDescription(names[i], description, action))
    return _apply_overrides(out, overrides)


def _profiles(features: pd.DataFrame, labels: np.ndarray, numeric: list[str],
              categorical: list[str], display: Mapping[str, str]) -> list[list[_Trait]]:
    """Per segment, its traits sorted by distinctiveness (ties: feature order)."""
    k = int(labels.max()) + 1
    profiles: list[list[_Trait]] = [[] for _ in range(k)]
    for col in numeric:
        values = pd.to_numeric(features[col], errors="coerce").to_numpy(dtype="float64")
        base = np.sort(values[~np.isnan(values)])
        if base.size == 0:
            logger.warning("numeric feature %r has no values; left out of the segment names", col)
            continue
        base_median = float(np.median(base))
        for i in range(k):
            seg = values[labels == i]
            seg = seg[~np.isnan(seg)]
            if seg.size == 0:
                continue
            median = float(np.median(seg))
            # Mid-rank percentile: ties (e.g. 40% of customers with frequency 1) count half.
            p = (np.searchsorted(base, median, "left") + np.searchsorted(base, median, "right")) / (2 * base.size)
            level = "low" if p < _LOW_PCT else "high" if p > _HIGH_PCT else "average"
            position = 2.0 * p - 1.0
            profiles[i].append(_Trait(col, False, abs(position), level != "average", level, position,
                                      median, base_median, display[col]))
    for col in categorical:
        values = features[col].astype("object").where(features[col].notna(), None)
        present = values.notna().to_numpy()
        if not present.any():
            continue
        base_share = values[present].astype(str).value_counts(normalize=True)
        for i in range(k):
            mask = (labels == i) & present
            if not mask.any():
                continue
            seg_share = values[mask].astype(str).value_counts(normalize=True)
            best: _Trait | None = None
            for level, share in seg_share.items():
                b = float(base_share[level])
                score = (share - b) / (1.0 - b) if b < 1.0 else 0.0
                strong = share / b >= _MIN_LIFT and share >= _MIN_SHARE
                trait = _Trait(col, True, max(score, 0.0), strong, str(level), score, float(share), b, display[col])
                if best is None or trait.score > best.score:
                    best = trait
            if best is not None:
                profiles[i].append(best)
    order = {c: n for n, c in enumerate([*numeric, *categorical])}
    return [sorted(p, key=lambda t: (-t.score, order[t.feature])) for p in profiles]


def _position(profile: list[_Trait], feature: str | None) -> float:
    """Numeric position of a feature in a profile (0 if unknown or absent)."""
    for t in profile:
        if t.feature == feature and not t.categorical:
            return t.position
    return 0.0


# ---- archetypes


_MALL_ARCHETYPES: dict[str, tuple[tuple[float, ...], str]] = {
    # (income position, spending position), action
    "Careful Spenders": ((1.0, -1.0), "Earn their trust rather than discount: quality- and value-led messaging, "
                         "premium product showcases and personal service, then measure uplift."),
    "Target Group": ((1.0, 1.0), "Top priority: a VIP loyalty tier, early access to new collections and "
                     "personalised premium offers to retain them."),
    "Standard Customers": ((0.0, 0.0), "Keep them engaged with the regular newsletter and seasonal promotions; "
                           "test bundles that move them towards higher-value products."),
    "Careless Customers": ((-1.0, 1.0), "Promote affordable trend items, limited-time deals and budget-friendly "
                           "bundles; avoid pushing credit to customers who spend beyond their income."),
    "Sensible Customers": ((-1.0, -1.0), "Price-sensitive: reach them with value packs, discount days and "
                           "coupons; keep the contact cost low."),
}

_RFM_ARCHETYPES: dict[str, tuple[tuple[float, ...], str]] = {
    # (recency goodness: +1 = bought most recently, frequency position, monetary position), action
    "Champions": ((1.0, 1.0, 1.0), "Reward them: loyalty perks, early access and referral asks; no discounts "
                  "needed."),
    "Loyal Customers": ((0.3, 0.8, 0.7), "Upsell higher-value products and invite them to the loyalty "
                        "programme; ask for reviews."),
    "Potential Loyalists": ((0.7, 0.0, 0.0), "Offer membership or a loyalty programme and personalised "
                            "recommendations to build the habit."),
    "New Customers": ((1.0, -1.0, -0.5), "Onboard them: a welcome series, product education and a "
                      "second-purchase incentive."),
    "Promising": ((0.4, -0.8, -0.4), "Build awareness with free trials, samples or a small incentive on the "
                  "next order."),
    "Need Attention": ((0.0, 0.0, 0.0), "Re-engage with limited-time offers based on past purchases before "
                       "they drift away."),
    "At Risk": ((-0.6, 0.4, 0.4), "Send personalised win-back e-mails with renewals or helpful products; "
                "find out why they stopped."),
    "Can't Lose Them": ((-0.9, 1.0, 1.0), "Win them back at almost any cost: personal contact, a strong offer "
                        "on their favourite products, and a survey on what went wrong."),
    "Hibernating": ((-0.5, -0.6, -0.5), "Offer relevant products and special discounts; keep the contact "
                    "cost low."),
    "Lost": ((-1.0, -1.0, -1.0), "Try one low-cost reactivation campaign; otherwise stop spending on them."),
}


# RFM archetype rules on the percentile p of the segment's median among all customers (recency as
# "goodness": 1 = the most recent buyers); a segment can take an archetype's name only when it meets them.
# (low, high) bounds per axis: recency goodness, frequency, monetary.
_RFM_RULES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "Champions": ((0.8, 1.0), (0.8, 1.0), (0.8, 1.0)),
    "Loyal Customers": ((0.4, 1.0), (0.6, 1.0), (0.6, 1.0)),
    "Potential Loyalists": ((0.6, 1.0), (0.3, 0.8), (0.0, 1.0)),
    "New Customers": ((0.8, 1.0), (0.0, 0.4), (0.0, 1.0)),
    "Promising": ((0.6, 1.0), (0.0, 0.5), (0.0, 1.0)),
    "Need Attention": ((0.3, 0.7), (0.3, 0.7), (0.0, 1.0)),
    "At Risk": ((0.0, 0.4), (0.5, 1.0), (0.0, 1.0)),
    "Can't Lose Them": ((0.0, 0.3), (0.8, 1.0), (0.8, 1.0)),
    "Hibernating": ((0.0, 0.4), (0.0, 0.5), (0.0, 0.6)),
    "Lost": ((0.0, 0.25), (0.0, 0.4), (0.0, 0.4)),
}
_INELIGIBLE = 1e9


def _rfm_eligible(profiles: list[list[_Trait]], recency: str, frequency: str | None,
                  monetary: str | None) -> np.ndarray:
    """(segments, archetypes) booleans: which RFM archetype rules each segment meets."""
    out = np.zeros((len(profiles), len(_RFM_ARCHETYPES)), dtype=bool)
    for i, prof in enumerate(profiles):
        f = _position(prof, frequency) if frequency else _position(prof, monetary)
        m = _position(prof, monetary) if monetary else f
        pct = ((1.0 - _position(prof, recency)) / 2.0, (f + 1.0) / 2.0, (m + 1.0) / 2.0)
        for j, name in enumerate(_RFM_ARCHETYPES):
            out[i, j] = all(lo <= v <= hi for v, (lo, hi) in zip(pct, _RFM_RULES[name], strict=True))
    return out


def _match_archetypes(points: list[list[float]], archetypes: Mapping[str, tuple[tuple[float, ...], str]],
                      eligible: np.ndarray | None = None) -> tuple[list[str | None], list[str | None]]:
    """Unique best archetype per segment (Hungarian on squared distance) among those whose rule the segment
    meets (``eligible[segment, archetype]``), None where none fits."""
    names = list(archetypes)
    targets = np.array([archetypes[n][0] for n in names])
    pts = np.asarray(points, dtype="float64")
    cost = ((pts[:, None, :] - targets[None, :, :]) ** 2).sum(axis=2)
    if eligible is not None:
        cost = np.where(eligible, cost, _INELIGIBLE)
    rows, cols = linear_sum_assignment(cost)
    out_names: list[str | None] = [None] * len(points)
    out_actions: list[str | None] = [None] * len(points)
    for r, c in zip(rows, cols, strict=True):
        if cost[r, c] >= _INELIGIBLE:
            continue
        gap = float(np.abs(pts[r] - targets[c]).max())
        if gap > _MAX_AXIS_GAP:
            logger.info("segment %d is too far from archetype %r (gap %.2f); it gets a profile name",
                        r, names[c], gap)
            continue
        out_names[r] = names[c]
        out_actions[r] = archetypes[names[c]][1]
    return out_names, out_actions


def _find_column(numeric: list[str], pattern: str) -> str | None:
    """First numeric column whose name matches a pattern, case-insensitively."""
    return next((c for c in numeric if re.search(pattern, c, re.IGNORECASE)), None)


def _mall_columns(numeric: list[str]) -> tuple[str, str]:
    """The income and spending columns of mall data."""
    income, spending = _find_column(numeric, "income"), _find_column(numeric, "spending|spend")
    if income is None or spending is None:
        raise ValueError(f"style='mall' needs numeric columns containing 'income' and 'spending'; got {numeric}.")
    return income, spending


def _rfm_columns(numeric: list[str]) -> tuple[str | None, str | None, str | None]:
    """The recency, frequency and monetary columns (recency and one of the other two are required)."""
    recency = _find_column(numeric, "recency")
    frequency = _find_column(numeric, "frequency")
    monetary = _find_column(numeric, "monetary")
    if recency is None or (frequency is None and monetary is None):
        raise ValueError(f"style='rfm' needs numeric columns containing 'recency' and 'frequency' or "
                         f"'monetary'; got {numeric}.")
    return recency, frequency, monetary


def _rfm_points(profiles: list[list[_Trait]], recency: str, frequency: str | None,
                monetary: str | None) -> list[list[float]]:
    """(recency goodness, frequency, monetary) positions, stretched so the extreme segment reaches +-1."""
    pts = np.array([[-_position(p, recency), _position(p, frequency), _position(p, monetary)] for p in profiles])
    # A missing F or M column copies the other one, so archetypes keep their meaning.
    if frequency is None:
        pts[:, 1] = pts[:, 2]
    if monetary is None:
        pts[:, 2] = pts[:, 1]
    extreme = np.abs(pts).max(axis=0)
    stretch = np.minimum(_MAX_RFM_STRETCH, 1.0 / np.maximum(extreme, 1e-9))
    return (pts * stretch).tolist()


# ---- text


def _short_label(feature: str) -> str:
    """Short lower-case label for names: 'Annual Income (k$)' -> 'income'."""
    words = _label(feature).split()
    kept = [w for w in words if w not in _FILLER_WORDS]
    return " ".join(kept or words)


def _label(feature: str) -> str:
    """Lower-case label without units: 'Annual Income (k$)' -> 'annual income', 'MntWines' -> 'mnt wines'."""
    text = re.sub(r"\([^)]*\)", " ", feature)
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).replace("_", " ")
    return " ".join(text.lower().split()) or feature


def _unit(feature: str) -> str:
    """Unit from a trailing parenthesis, e.g. 'k$'; scales such as '(1-100)' are not units."""
    m = re.search(r"\(([^)]*)\)\s*$", feature)
    if not m or re.search(r"\d\s*-\s*\d", m.group(1)):
        return ""
    return m.group(1).strip()


def _number(x: float) -> str:
    """Compact human number: 1,234 / 87 / 4.1 / 0.35."""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 20 or float(x).is_integer():
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.1f}"
    return f"{x:.2g}"


def _bool_level(level: str) -> bool | None:
    """True/False for boolean-looking category levels, else None."""
    low = level.strip().lower()
    return True if low in _BOOL_TRUE else False if low in _BOOL_FALSE else None


def _phrase(t: _Trait, mostly: bool = True) -> str:
    """Name fragment for one trait, e.g. 'high income', 'lapsed', 'mostly Gold (membership type)'."""
    label = t.label or _short_label(t.feature)
    if t.categorical:
        prefix = "mostly " if mostly else ""
        flag = _bool_level(t.level)
        if flag is not None:
            return f"{prefix}{'with' if flag else 'without'} {label}"
        return f"{prefix}{t.level} ({label})"
    higher = t.position > 0
    if _RECENCY_RE.search(t.feature):
        # Low recency is good; "low recency" confuses marketers.
        if t.level == "average":
            return "slightly less recent" if higher else "slightly more recent"
        return "lapsed" if higher else "recent buyers"
    if _AGE_RE.search(t.feature):
        return ("slightly " if t.level == "average" else "") + ("older" if higher else "younger")
    if _TENURE_RE.search(t.feature):
        return ("slightly " if t.level == "average" else "") + ("longer-standing" if higher else "newer")
    if _COUNT_RE.search(t.feature):
        return ("slightly " if t.level == "average" else "") + f"{'more' if higher else 'fewer'} {label}"
    if t.level == "average":
        return f"slightly {'higher' if higher else 'lower'} {label}"
    return f"{t.level} {label}"


def _capitalize(text: str) -> str:
    """Upper-case the first letter only (keeps 'k$' and category levels as they are)."""
    return text[:1].upper() + text[1:]


def _name_traits(profile: list[_Trait]) -> list[_Trait]:
    """The 1-3 most distinctive strong traits, at most two of them categorical (descriptions, actions)."""
    chosen: list[_Trait] = []
    for t in profile:
        if t.strong and (not t.categorical or sum(c.categorical for c in chosen) < _MAX_NAME_CATEGORICAL):
            chosen.append(t)
        if len(chosen) == _MAX_NAME_TRAITS:
            break
    return chosen


def _words(t: _Trait) -> tuple[str | None, str | None]:
    """(adjective, head noun) a trait reads as in a name (``name_terms``); (None, None) when it does not."""
    if t.categorical:
        flag = _bool_level(t.level)
        if flag is None:
            return _capitalize(t.level), None
        term = term_for(t.label, t.feature)
        if not term.known:
            return None, None  # "with <unknown flag>" does not make a name
    else:
        term = term_for(t.label, t.feature)
        flag = t.position > 0
    return (term.high, term.high_noun) if flag else (term.low, term.low_noun)


def _adjective_rank(t: _Trait, adjective: str) -> int:
    """Order of adjectives in a name: status (lapsed / recent) first, a category level last ('Older Female')."""
    return 0 if adjective in _STATUS_WORDS else 2 if t.categorical else 1


def _profile_name(profile: list[_Trait]) -> str:
    """Name from the two most distinctive strong traits that read (see ``name_terms``): an adjective and a
    head noun ('Affluent Big Spenders'), or adjectives before 'Customers' ('Lapsed Family Customers')."""
    chosen: list[tuple[_Trait, str | None, str | None]] = []
    for t in (t for t in profile if t.strong):
        adjective, noun = _words(t)
        if adjective is None or (t.categorical and any(c[0].categorical for c in chosen)):
            continue
        if any(adjective == c[1] or (noun and noun == c[2]) for c in chosen):
            continue
        chosen.append((t, adjective, noun))
        if len(chosen) == _NAME_TRAITS:
            break
    if not chosen:
        return _MIDDLE_NAME
    head_at = next((i for i, c in enumerate(chosen) if c[2]), None)
    head = chosen[head_at][2] if head_at is not None else "Customers"
    modifiers = sorted((c for i, c in enumerate(chosen) if i != head_at), key=lambda c: _adjective_rank(c[0], c[1]))
    words = [c[1] for c in modifiers]
    while words and len(" ".join([*words, head]).split()) > _MAX_NAME_WORDS:
        words.pop()
    return " ".join([*words, head])


def _unique_names(names: list[str], profiles: list[list[_Trait]], fixed: list[bool]) -> list[str]:
    """Disambiguate equal names: put before each one the adjective of its most distinctive trait that the
    others of its group read differently, then number what is still equal (in id order)."""
    names = list(names)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    for name, members in groups.items():
        if len(members) < 2:
            continue
        words = {i: {t.feature: _words(t)[0] for t in profiles[i]} for i in members}
        for i in members:
            if fixed[i]:
                continue
            for t in profiles[i]:
                adjective = words[i][t.feature]
                if adjective is None or adjective.lower() in name.lower():
                    continue
                if all(words[j].get(t.feature) != adjective for j in members if j != i):
                    candidate = f"{adjective} {name}"
                    if len(candidate.split()) <= _MAX_NAME_WORDS + 1:
                        names[i] = candidate
                        break
    seen: Counter[str] = Counter()
    counts = Counter(names)
    for i, name in enumerate(names):
        if counts[name] > 1:
            seen[name] += 1
            names[i] = f"{name} {seen[name]}"
    return names


def _describe_trait(t: _Trait) -> str:
    """'annual income 85 k$ vs 62 k$' or '82% Gold (membership type) vs 33%'."""
    if t.categorical:
        return f"{t.segment_value:.0%} {t.level} ({t.label or _label(t.feature)}) vs {t.base_value:.0%}"
    unit = _unit(t.feature)
    if not unit and _RECENCY_RE.search(t.feature) and "day" not in t.feature.lower():
        unit = "days"  # RFM recency is in days by the project's convention (segmentation_core.recipe)
    suffix = f" {unit}" if unit else ""
    return f"{t.label or _label(t.feature)} {_number(t.segment_value)}{suffix} vs {_number(t.base_value)}{suffix}"


def _description(profile: list[_Trait], size: int, total: int, lead: list[str]) -> str:
    """Two sentences: size, then medians / shares of the most telling features against all customers."""
    # The lead features (archetype axes) and the traits the name mentions come first, so every word of the
    # name is backed by a number; other strong traits fill up to _MAX_DESCRIPTION_TRAITS.
    chosen = [t for f in lead for t in profile if t.feature == f and not t.categorical]
    chosen += [t for t in _name_traits(profile) if t not in chosen]
    rest = [t for t in profile if t not in chosen]
    chosen += ([t for t in rest if t.strong] or rest[:1])[: max(0, _MAX_DESCRIPTION_TRAITS - len(chosen))]
    parts = "; ".join(_describe_trait(t) for t in chosen)
    return f"{size:,} customers ({size / total:.0%} of the base). Segment vs all customers (medians, shares): {parts}."


def _profile_action(profile: list[_Trait]) -> str:
    """A concrete action from the two most distinctive strong numeric traits, then the dominant levels."""
    # Behaviour (spend, recency, frequency) says what to offer; categories only say whom to address.
    sentences: list[str] = []
    for t in (t for t in profile if t.strong and not t.categorical):
        s = _trait_action(t)
        if s and s not in sentences:
            sentences.append(s)
        if len(sentences) == 2:
            break
    levels = [t for t in _name_traits(profile) if t.categorical]
    if levels and len(sentences) < 2:
        audience = ", ".join(_phrase(t, mostly=False) for t in levels)
        sentences.append(f"Tailor creative, channel and timing to this audience: {audience}.")
    if not sentences:
        return ("Keep them in the regular campaigns and A/B-test offers to find what moves this middle "
                "group.")
    return " ".join(sentences)


def _trait_action(t: _Trait) -> str | None:
    """Suggested action for one strong trait, by what the feature measures."""
    name = t.feature
    high = t.level == "high"
    if _RECENCY_RE.search(name):
        return ("Send a win-back campaign with a time-limited incentive." if high
                else "Follow up while they are engaged: cross-sell recommendations within the next weeks.")
    if _INCOME_RE.search(name):
        # Income is capacity to pay, spending is behaviour: "high income, low spending" needs both sentences.
        return ("Position premium, quality-led products: they can afford more." if high
                else "Lead with price: value packs, discount days and coupons.")
    if _AGE_RE.search(name):
        return ("Use channels and creative suited to an older audience (e-mail, catalogue, in-store)." if high
                else "Reach them on social and mobile channels with trend-led creative.")
    if _VALUE_RE.search(name):
        return ("Keep them spending: a loyalty tier, early access and personalised premium offers." if high
                else "Stimulate spend with personalised bundles and a time-limited incentive.")
    if _FREQUENCY_RE.search(name):
        return ("Reward their frequency with loyalty points and subscriptions." if high
                else "Encourage the next purchase with a time-limited next-order coupon.")
    if _SATISFACTION_RE.search(name):
        return ("Ask for reviews and referrals." if high
                else "Contact them to fix service issues before sending any promotion.")
    return None


def _apply_overrides(descriptions: list[SegmentDescription], overrides: Mapping[str, str]
                     ) -> list[SegmentDescription]:
    """Rename generated names by the user's mapping; refuse a mapping that creates a duplicate."""
    generated = [d.name for d in descriptions]
    unknown = sorted(set(overrides) - set(generated))
    if unknown:
        # Names follow the data; an override for a profile that did not come out this time is not fatal.
        logger.warning("name overrides %s match no generated segment name (generated: %s)", unknown, generated)
    final = [overrides.get(n, n) for n in generated]
    first: dict[str, int] = {}
    for i, name in enumerate(final):
        if name in first:
            j = first[name]
            raise ValueError(
                f"name overrides give segments {j} ({generated[j]!r}) and {i} ({generated[i]!r}) the same "
                f"name {name!r}."
            )
        first[name] = i
    return [SegmentDescription(n, d.description, d.action) for n, d in zip(final, descriptions, strict=True)]

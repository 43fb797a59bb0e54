"""The business vocabulary of segment names: readable labels for columns and the words for high / low.

A segment name is built from at most two of its strongest traits (``naming``); this module says how one
trait reads. A column is recognised by what it measures (its display label and its name, matched by the
patterns below, first match wins), never by its raw spelling, so names never repeat a column name:

=============  ===================================  ============================  =======================
measures       recognised by                        high / low (adjective)        head noun (high / low)
=============  ===================================  ============================  =======================
recency        recency, days since, last purchase   Lapsed / Recent               -
birth year     year birth, birth year               Younger / Older               -
age            age                                  Older / Younger               -
tenure         tenure, as customer, seniority       Long-standing / New           -
children       child, kid, teen                     Family / Child-free           -
income         income, salary, wealth               Affluent / Low-income         -
satisfaction   satisf, rating, review, nps          Satisfied / Unhappy           -
discounts      discount, coupon, promo, deal        Deal-seeking / Full-price     Deal Shoppers / -
response       accepted, response, campaign         Responsive / Unresponsive     -
complaints     complain                             Complaining / Uncomplaining   -
spend          spend, monetary, revenue, amount,    High-spending / Low-spending  Big Spenders / Light
               sales, value, mnt, price, basket                                   Spenders ("<what>
                                                                                  Buyers" for one product)
frequency      frequency, purchases, orders, items, Frequent / Occasional         Frequent Buyers /
               visits, invoices, transactions                                     - ("<channel> Shoppers")
=============  ===================================  ============================  =======================

Any other column reads ``High-<label>`` / ``Low-<label>``. A categorical level reads as itself ("Gold",
"Female"); a yes/no level reads by its column's row above, or is left out of the name.

Display labels: a preset or config may give each column a business label (``[naming.labels]``); without
one the label is derived from the column name: units in parentheses dropped, camelCase and snake_case
split, code prefixes such as ``Mnt``/``Num`` and filler such as ``Products``/``Month`` removed
(``MntMeatProducts`` -> "meat", ``NumWebVisitsMonth`` -> "web visits", ``Kidhome`` -> "kids").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Term", "measures_recency", "readable_label", "term_for"]

_CODE_PREFIXES = {"mnt", "num", "amt", "cnt", "qty", "nb", "dt", "n", "z", "is", "has", "flag"}
_FILLER = {"products", "prods", "product", "month", "months", "monthly", "total", "score", "level", "count",
           "number", "of", "the", "annual", "avg", "average", "per"}
_WORD_FIXES = {"kidhome": "kids", "teenhome": "teens", "cmp": "campaign"}


@dataclass(frozen=True)
class Term:
    """How a trait of one column reads in a name."""

    high: str  # adjective when the segment is high on the column
    low: str
    high_noun: str | None = None  # a head noun that carries the trait by itself ("Big Spenders")
    low_noun: str | None = None
    known: bool = True  # False: a column of unknown meaning, read as High-<label> / Low-<label>


_RECENCY = Term("Lapsed", "Recent")
_TERMS: list[tuple[re.Pattern[str], Term]] = [
    (re.compile(p, re.IGNORECASE), t) for p, t in [
        (r"recency|days? since|since last|last (purchase|order|visit)", _RECENCY),
        (r"year (of )?birth|birth ?year", Term("Younger", "Older")),
        (r"(?<![a-z])age(?![a-z])", Term("Older", "Younger")),
        (r"tenure|as customer|customer (since|for)|seniority|member since", Term("Long-standing", "New")),
        (r"child|kid|teen", Term("Family", "Child-free")),
        (r"income|salary|wealth", Term("Affluent", "Low-income")),
        (r"satisf|rating|review|nps", Term("Satisfied", "Unhappy")),
        (r"discount|coupon|promo|deal", Term("Deal-seeking", "Full-price", "Deal Shoppers")),
        (r"accepted|response|responded|campaign", Term("Responsive", "Unresponsive")),
        (r"complain", Term("Complaining", "Uncomplaining")),
        (r"spend|monetary|revenue|amount|sales|value|mnt|price|basket",
         Term("High-spending", "Low-spending", "Big Spenders", "Light Spenders")),
        (r"frequency|purchases|orders|items|visits|invoices|transactions",
         Term("Frequent", "Occasional", "Frequent Buyers")),
    ]
]
_SPEND_WORDS = {"spend", "spending", "spent", "monetary", "revenue", "amount", "sales", "value", "price", "mnt",
                "basket", "money"}
_FREQUENCY_WORDS = {"frequency", "purchases", "purchase", "purchased", "bought", "orders", "order", "items",
                    "visits", "visit", "invoices", "transactions"}


def readable_label(column: str) -> str:
    """Lower-case business label derived from a column name: 'MntMeatProducts' -> 'meat'."""
    text = re.sub(r"\([^)]*\)", " ", str(column))
    text = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])", " ", text)
    words = [w for w in re.split(r"[\s_\-.]+", text.lower()) if w]
    words = [_WORD_FIXES.get(w, w) for w in words]
    while len(words) > 1 and words[0] in _CODE_PREFIXES:
        words = words[1:]
    kept = [w for w in words if w not in _FILLER]
    return " ".join(kept or words) or str(column)


def term_for(label: str, column: str) -> Term:
    """The words for high / low on a column with this display label (generic for unknown measures)."""
    # The raw name is matched too: a label such as "meat" keeps its column's "Mnt" (spend) meaning.
    text = f"{label} {readable_label(column)} {column}"
    for pattern, term in _TERMS:
        if pattern.search(text):
            return _qualified(term, label)
    words = label.split()
    hyphenated = "-".join(words)
    return Term(f"High-{hyphenated}", f"Low-{hyphenated}", known=False)


def measures_recency(label: str, column: str) -> bool:
    """True for a column that measures recency (time since the last purchase: the Lapsed / Recent row)."""
    return term_for(label, column) == _RECENCY


def _qualified(term: Term, label: str) -> Term:
    """Spend or frequency on one product or channel: 'Meat Buyers', 'Web Shoppers'."""
    words = label.lower().split()
    if term.high_noun == "Big Spenders":
        rest = [w for w in words if w not in _SPEND_WORDS]
        if rest:
            rest = [w[:-1] if w.endswith("s") and not w.endswith("ss") else w for w in rest]  # wines -> wine
            return Term(term.high, term.low, f"{' '.join(rest).title()} Buyers")
    if term.high_noun == "Frequent Buyers":
        rest = [w for w in words if w not in _FREQUENCY_WORDS]
        if rest:
            return Term(term.high, term.low, f"{' '.join(rest).title()} Shoppers")
    return term

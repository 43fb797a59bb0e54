"""What a reader of a model store can see, as a comparable value (for 'the store is unchanged' checks)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def visible_state(root: Path) -> dict[str, str]:
    """Every visible file of the store (staging and trash folders excluded) -> sha256 of its bytes."""
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        state[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state

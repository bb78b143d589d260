"""A tiny name -> object registry whose unknown names raise with a "did you mean" hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def look_up_option(name: str, options: Iterable[str], *, what: str = "option") -> str:
    """Return ``name`` if it is one of ``options``, else raise a helpful ``ValueError``.

    Parameters
    ----------
    name : str
        The value given by the user.
    options : iterable of str
        The allowed values.
    what : str
        What the value is (used in the message), e.g. ``"split method"``.

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    ValueError
        If ``name`` is not allowed; the message lists the options and the closest match.

    Examples
    --------
    >>> look_up_option("radon", ["radon", "watershed"])
    'radon'
    """
    allowed = list(options)
    if name in allowed:
        return name
    close = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown {what} {name!r}.{hint} Available: {', '.join(map(repr, allowed))}.")

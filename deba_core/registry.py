"""Finding strategies, collectors, policies, adapters and profiles through entry points.

The registry is generic: it knows entry-point groups, not DEBA's types. Each caller says which type
it expects (``registry.load("strategies", name, expected=ScoringStrategy)``), so this module
imports nothing else from DEBA and sits below every subpackage. Built-ins are registered in DEBA's own ``pyproject.toml`` exactly like third-party plugins, so one
code path finds both. Discovery is lazy: listing names imports nothing; loading imports one
plugin. A plugin that fails to import, or whose object is the wrong type, is reported by name with
its distribution and the original error chained; it never stops the others from loading.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from deba.errors import DebaConfigError, DebaPluginError

__all__ = ["KINDS", "PluginInfo", "PluginWarning", "Registry", "registry"]

#: Extension kind -> entry-point group.
KINDS: dict[str, str] = {
    "strategies": "deba.strategies",
    "collectors": "deba.collectors",
    "policies": "deba.policies",
    "adapters": "deba.adapters",
    "profiles": "deba.profiles",
}


class PluginWarning(UserWarning):
    """A plugin was skipped because it could not be loaded."""


@dataclass
class PluginInfo:
    """What is known about one registered name, before or after loading it."""

    kind: str
    name: str
    target: str
    distribution: str | None = None
    version: str | None = None
    source: str = "entry point"
    loader: Callable[[], Any] | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        """``dist==version`` or where the object came from."""
        if self.distribution:
            return f"{self.distribution}=={self.version}" if self.version else self.distribution
        return self.source


def _type_name(expected: type) -> str:
    module = expected.__module__
    return f"deba.{expected.__name__}" if module.startswith("deba") else f"{module}.{expected.__qualname__}"


def _conform(obj: Any, expected: type | None) -> Any:
    """``obj`` as ``expected`` asks, or ``TypeError`` saying what was expected.

    A subclass of ``expected`` (strategies, collectors, policies, adapters) or an instance of it
    (profiles) is returned as is; a plain callable returning an instance is called once (a profile
    factory). With ``expected=None`` nothing is checked.
    """
    if expected is None:
        return obj
    if isinstance(obj, type):
        if issubclass(obj, expected):
            return obj
        raise TypeError(f"expected a subclass of {_type_name(expected)}, got {obj!r}")
    if isinstance(obj, expected):
        return obj
    if callable(obj):
        made = obj()
        if isinstance(made, expected):
            return made
        raise TypeError(f"expected the callable to return a {_type_name(expected)}, got {made!r}")
    raise TypeError(f"expected a {_type_name(expected)}, a subclass of it, or a callable returning one; got {obj!r}")


class Registry:
    """Names -> plugin objects for each extension kind.

    Args:
        entry_points: the function used to discover entry points (``importlib.metadata.entry_points``
            by default); tests pass a fake.

    Example:
        >>> import deba
        >>> from deba import registry
        >>> "equal-weight" in registry.available("strategies")
        True
        >>> registry.load("strategies", "equal-weight", expected=deba.ScoringStrategy).__name__
        'EqualWeightStrategy'
    """

    def __init__(self, entry_points: Callable[..., Iterable[Any]] | None = None) -> None:
        self._entry_points = entry_points or importlib_metadata.entry_points
        self._runtime: dict[str, dict[str, PluginInfo]] = {k: {} for k in KINDS}
        self._discovered: dict[str, dict[str, list[PluginInfo]]] = {}
        self._loaded: dict[tuple[str, str], Any] = {}

    # Discovery ------------------------------------------------------------------------------

    @staticmethod
    def _check_kind(kind: str) -> str:
        if kind not in KINDS:
            raise DebaConfigError.single("kind", kind, f"must be one of {sorted(KINDS)}")
        return kind

    def refresh(self) -> None:
        """Forget what was discovered and loaded (after installing a plugin in this process)."""
        self._discovered.clear()
        self._loaded.clear()

    def _discover(self, kind: str) -> dict[str, list[PluginInfo]]:
        if kind in self._discovered:
            return self._discovered[kind]
        found: dict[str, list[PluginInfo]] = {}
        for ep in self._entry_points(group=KINDS[kind]):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                kind=kind,
                name=ep.name,
                target=ep.value,
                distribution=getattr(dist, "name", None),
                version=getattr(dist, "version", None),
                loader=ep.load,
            )
            same = found.setdefault(ep.name, [])
            # One distribution seen twice on sys.path (say, an editable and a normal install of
            # the same project) is one plugin, not a conflict.
            if not any(o.target == info.target and o.distribution == info.distribution for o in same):
                same.append(info)
        self._discovered[kind] = found
        return found

    def _candidates(self, kind: str, name: str) -> list[PluginInfo]:
        runtime = self._runtime[kind].get(name)
        if runtime is not None:
            return [runtime]
        return self._discover(kind).get(name, [])

    def available(self, kind: str) -> list[str]:
        """Every registered name of ``kind`` (sorted), without importing any plugin."""
        self._check_kind(kind)
        return sorted(set(self._discover(kind)) | set(self._runtime[kind]))

    def infos(self, kind: str) -> list[PluginInfo]:
        """One :class:`PluginInfo` per registration of ``kind`` (conflicting ones all listed)."""
        self._check_kind(kind)
        out: list[PluginInfo] = []
        for name in self.available(kind):
            runtime = self._runtime[kind].get(name)
            out.extend([runtime] if runtime else self._discover(kind)[name])
        return out

    # Loading --------------------------------------------------------------------------------

    def load(self, kind: str, name: str, expected: type | None = None) -> Any:
        """The object registered as ``name``, checked against ``expected``.

        Args:
            kind: an extension kind (``"strategies"``, ``"collectors"``, ``"policies"``,
                ``"adapters"``, ``"profiles"``).
            name: the registered name.
            expected: the type the caller needs: the object must be a subclass of it, an instance
                of it, or a callable returning an instance (called once). ``None`` checks nothing.

        Raises:
            DebaConfigError: unknown name (the message lists what exists) or a name claimed by
                two distributions (both named).
            DebaPluginError: the plugin failed to import or has the wrong type; the original error
                is chained.
        """
        self._check_kind(kind)
        if not isinstance(name, str) or not name:
            raise DebaConfigError.single(f"{kind} name", name, "must be a non-empty string")
        key = (kind, name, expected)
        if key in self._loaded:
            return self._loaded[key]
        candidates = self._candidates(kind, name)
        if not candidates:
            listed = ", ".join(self.available(kind)) or "(none)"
            raise DebaConfigError.single(
                f"{kind}", name, f"is not a registered name; available: {listed}",
                remedy=f"Install the plugin that provides it, or pick one of: {listed}.",
            )
        if len(candidates) > 1:
            who = " and ".join(f"{c.target} from {c.origin}" for c in candidates)
            raise DebaConfigError.single(
                f"{kind}", name, f"is claimed by more than one plugin: {who}",
                remedy="Uninstall one of the distributions, or rename its entry point.",
            )
        info = candidates[0]
        try:
            raw = info.loader() if info.loader is not None else None
            obj = _conform(raw, expected)
        except Exception as exc:  # a plugin may fail in any way; report it, never crash the rest
            raise DebaPluginError(
                f"{KINDS[kind]} plugin {name!r} ({info.target}, from {info.origin}) could not be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._loaded[key] = obj
        return obj

    def create(self, kind: str, name: str, /, expected: type | None = None, **kwargs: Any) -> Any:
        """Load the class ``name`` (a subclass of ``expected``) and instantiate it with ``kwargs``."""
        if kind == "profiles":
            raise DebaConfigError.single("kind", kind, "holds values, not classes; use load('profiles', name)")
        cls = self.load(kind, name, expected)
        if not isinstance(cls, type):
            info = self._candidates(kind, name)[0]
            raise DebaPluginError(
                f"{KINDS[kind]} plugin {name!r} ({info.target}, from {info.origin}) must be a class to be "
                f"created, got {cls!r}"
            )
        return cls(**kwargs)

    def load_all(self, kind: str, expected: type | None = None) -> dict[str, Any]:
        """Load every name of ``kind``; broken or conflicting plugins are skipped with a warning."""
        out: dict[str, Any] = {}
        for name in self.available(kind):
            try:
                out[name] = self.load(kind, name, expected)
            except (DebaPluginError, DebaConfigError) as exc:
                warnings.warn(str(exc), PluginWarning, stacklevel=2)
        return out

    def status(self, kind: str, expected: type | None = None) -> list[tuple[PluginInfo, str]]:
        """Each registration with its load status (checked against ``expected``): ``"ok"`` or the error."""
        rows: list[tuple[PluginInfo, str]] = []
        for info in self.infos(kind):
            try:
                self.load(kind, info.name, expected)
                rows.append((info, "ok"))
            except (DebaPluginError, DebaConfigError) as exc:
                rows.append((info, f"error: {str(exc).splitlines()[0]}"))
        return rows

    # Registration at run time -----------------------------------------------------------------

    def register(self, kind: str, name: str, obj: Any, *, expected: type | None = None, override: bool = False) -> None:
        """Register ``obj`` as ``name`` in this process (no packaging needed).

        Args:
            expected: checked now when given (as :meth:`load` checks it); every caller that
                loads the name checks it again against the type it needs.

        Raises:
            DebaConfigError: the name is taken and ``override`` is false.
            DebaPluginError: ``obj`` is not what ``expected`` asks for.
        """
        self._check_kind(kind)
        if not isinstance(name, str) or not name.strip():
            raise DebaConfigError.single("name", name, "must be a non-empty string")
        if not override and (name in self._runtime[kind] or name in self._discover(kind)):
            existing = self._candidates(kind, name)[0]
            raise DebaConfigError.single(
                "name", name, f"is already registered for {kind} by {existing.origin}",
                remedy="Choose another name, or pass override=True to replace it in this process.",
            )
        try:
            _conform(obj, expected)
        except Exception as exc:
            raise DebaPluginError(f"cannot register {name!r} as one of {kind}: {exc}") from exc
        self._runtime[kind][name] = PluginInfo(kind, name, repr(obj), source="registered at run time", loader=lambda: obj)
        self._forget(kind, name)

    def unregister(self, kind: str, name: str) -> None:
        """Remove a run-time registration (entry points cannot be removed)."""
        self._check_kind(kind)
        if self._runtime[kind].pop(name, None) is None:
            raise DebaConfigError.single("name", name, f"was not registered at run time for {kind}")
        self._forget(kind, name)


    def _forget(self, kind: str, name: str) -> None:
        for key in [k for k in self._loaded if k[:2] == (kind, name)]:
            del self._loaded[key]


#: The process-wide registry ``deba.registry``.
registry = Registry()

"""Finding strategies, collectors, adapters and profiles through entry points.

Built-ins are registered in DEBA's own ``pyproject.toml`` exactly like third-party plugins, so one
code path finds both. Discovery is lazy: listing names imports nothing; loading imports one
plugin. A plugin that fails to import, or whose object is the wrong type, is reported by name with
its distribution and the original error chained; it never stops the others from loading.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .errors import DebaConfigError, DebaPluginError

__all__ = ["KINDS", "PluginInfo", "PluginWarning", "Registry", "registry"]

#: Extension kind -> entry-point group.
KINDS: dict[str, str] = {
    "strategies": "deba.strategies",
    "collectors": "deba.collectors",
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


def _validate_object(kind: str, name: str, obj: Any) -> Any:
    """Return the usable object for ``kind``, or raise ``TypeError`` saying what was expected."""
    from .collectors.base import MetricCollector
    from .profile import ArchitectureProfile
    from .scoring import ScoringStrategy

    if kind == "strategies":
        if not (isinstance(obj, type) and issubclass(obj, ScoringStrategy)):
            raise TypeError(f"expected a subclass of deba.ScoringStrategy, got {obj!r}")
        return obj
    if kind == "collectors":
        if not (isinstance(obj, type) and issubclass(obj, MetricCollector)):
            raise TypeError(f"expected a subclass of deba.MetricCollector, got {obj!r}")
        return obj
    if kind == "adapters":
        if not isinstance(obj, type):
            raise TypeError(f"expected an adapter class, got {obj!r}")
        return obj
    if isinstance(obj, ArchitectureProfile):
        return obj
    if callable(obj) and not isinstance(obj, type):
        made = obj()
        if isinstance(made, ArchitectureProfile):
            return made
        raise TypeError(f"expected the callable to return a deba.ArchitectureProfile, got {made!r}")
    raise TypeError(f"expected a deba.ArchitectureProfile or a callable returning one, got {obj!r}")


class Registry:
    """Names -> plugin objects for each extension kind.

    Args:
        entry_points: the function used to discover entry points (``importlib.metadata.entry_points``
            by default); tests pass a fake.

    Example:
        >>> from deba import registry
        >>> "equal-weight" in registry.available("strategies")
        True
        >>> registry.load("strategies", "equal-weight").__name__
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

    def load(self, kind: str, name: str) -> Any:
        """The object registered as ``name`` (a class, or a profile for ``"profiles"``).

        Raises:
            DebaConfigError: unknown name (the message lists what exists) or a name claimed by
                two distributions (both named).
            DebaPluginError: the plugin failed to import or has the wrong type; the original error
                is chained.
        """
        self._check_kind(kind)
        if not isinstance(name, str) or not name:
            raise DebaConfigError.single(f"{kind} name", name, "must be a non-empty string")
        key = (kind, name)
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
            obj = _validate_object(kind, name, raw)
        except Exception as exc:  # a plugin may fail in any way; report it, never crash the rest
            raise DebaPluginError(
                f"{KINDS[kind]} plugin {name!r} ({info.target}, from {info.origin}) could not be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._loaded[key] = obj
        return obj

    def create(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """Load ``name`` and instantiate it with ``kwargs`` (not for profiles, which are values)."""
        if kind == "profiles":
            raise DebaConfigError.single("kind", kind, "holds values, not classes; use load('profiles', name)")
        return self.load(kind, name)(**kwargs)

    def load_all(self, kind: str) -> dict[str, Any]:
        """Load every name of ``kind``; broken or conflicting plugins are skipped with a warning."""
        out: dict[str, Any] = {}
        for name in self.available(kind):
            try:
                out[name] = self.load(kind, name)
            except (DebaPluginError, DebaConfigError) as exc:
                warnings.warn(str(exc), PluginWarning, stacklevel=2)
        return out

    def status(self, kind: str) -> list[tuple[PluginInfo, str]]:
        """Each registration with its load status: ``"ok"`` or the error text."""
        rows: list[tuple[PluginInfo, str]] = []
        for info in self.infos(kind):
            try:
                self.load(kind, info.name)
                rows.append((info, "ok"))
            except (DebaPluginError, DebaConfigError) as exc:
                rows.append((info, f"error: {str(exc).splitlines()[0]}"))
        return rows

    # Registration at run time -----------------------------------------------------------------

    def register(self, kind: str, name: str, obj: Any, *, override: bool = False) -> None:
        """Register ``obj`` as ``name`` in this process (no packaging needed).

        Raises:
            DebaConfigError: the name is taken and ``override`` is false.
            DebaPluginError: ``obj`` is not what ``kind`` expects.
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
            _validate_object(kind, name, obj)
        except Exception as exc:
            raise DebaPluginError(f"cannot register {name!r} as one of {kind}: {exc}") from exc
        self._runtime[kind][name] = PluginInfo(kind, name, repr(obj), source="registered at run time", loader=lambda: obj)
        self._loaded.pop((kind, name), None)

    def unregister(self, kind: str, name: str) -> None:
        """Remove a run-time registration (entry points cannot be removed)."""
        self._check_kind(kind)
        if self._runtime[kind].pop(name, None) is None:
            raise DebaConfigError.single("name", name, f"was not registered at run time for {kind}")
        self._loaded.pop((kind, name), None)


#: The process-wide registry ``deba.registry``.
registry = Registry()

"""Named implementations of one protocol, looked up by name: the linearizers, the checkpoint formats and the
mitigations each keep one :class:`Registry`."""

from __future__ import annotations

from typing import Generic, TypeVar

from .errors import FairLinError, brief

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """name -> implementation, in registration order (a dict: iterate it for the names).

    kind: what is registered, for messages ("linearizer", "checkpoint format"); unknown: how an unknown name is
    called ("method"; default ``kind``); error: the FairLinError subclass raised; reserved: names that mean
    something without an entry (a mitigation's "none"): never registrable, listed first among the valid names.
    """

    def __init__(self, kind: str, *, unknown: str | None = None, error: type[FairLinError] = FairLinError,
                 reserved: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.kind, self.unknown, self.error, self.reserved = kind, unknown or kind, error, reserved

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name``; returns it. ``error`` if the name is taken or reserved."""
        if name in self or name in self.reserved:
            raise self.error(f"a {self.kind} named {brief(name)} is already registered; expected a new name")
        self[name] = item
        return item

    def names(self) -> tuple[str, ...]:
        """The reserved names, then every registered one."""
        return (*self.reserved, *self)

    def lookup(self, name: str) -> T:
        """The item registered as ``name``; ``error`` naming the valid names otherwise."""
        if not isinstance(name, str) or name not in self:
            raise self.error(f"unknown {self.unknown} {brief(name)}; expected one of {', '.join(self.names())}")
        return self[name]

    def copy(self) -> Registry[T]:
        """A registry of the same kind with the same entries (e.g. for a test that registers its own)."""
        twin: Registry[T] = Registry(self.kind, unknown=self.unknown, error=self.error, reserved=self.reserved)
        twin.update(self)
        return twin

"""The audit's diagnostics, one module each, registered in this order (the order of ``all``, of the tables
and of the CLI's help): accuracy, grad, hessian, boundary, bound, attr, density. The protocol and the
registry are in :mod:`.base`."""

from .base import (DIAGNOSTICS, GROUP_KEYS, AuditContext, Diagnostic, parse_diagnostics,
                   register_diagnostic)

# importing a diagnostic's module registers it: a need before the diagnostics that need it
from . import accuracy, grad, hessian, boundary, bound, attr, density  # noqa: E402, F401, I001

__all__ = ["DIAGNOSTICS", "GROUP_KEYS", "AuditContext", "Diagnostic", "parse_diagnostics", "register_diagnostic"]

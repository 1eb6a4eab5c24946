"""Testing kit for plugin authors: the fake-API server base and the conformance suite.

Test a connector the way kpihub tests its own: a fake server on 127.0.0.1
speaking the platform's real wire format, seeded data, programmable faults,
data that changes between page requests (:meth:`FakeAPIServer.between_pages`),
and :class:`kpihub.testing.conformance.SourceConformance`.
"""

from kpihub.testing.server import (
    FAULT_KINDS,
    FakeAPIServer,
    FakeRequest,
    FakeResponse,
    Fault,
    PageHook,
    Paging,
    route,
)

__all__ = ["FAULT_KINDS", "FakeAPIServer", "FakeRequest", "FakeResponse", "Fault", "PageHook", "Paging", "route"]

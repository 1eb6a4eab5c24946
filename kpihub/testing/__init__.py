"""Testing kit for plugin authors: fake-API server base (and, later, the conformance suite).

Test a connector the way kpihub tests its own: a fake server on 127.0.0.1
speaking the platform's real wire format, seeded data, programmable faults.
"""

from kpihub.testing.server import FAULT_KINDS, FakeAPIServer, FakeRequest, FakeResponse, Fault, Paging, route

__all__ = ["FAULT_KINDS", "FakeAPIServer", "FakeRequest", "FakeResponse", "Fault", "Paging", "route"]

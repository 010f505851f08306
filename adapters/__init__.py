"""Protocol clients (REST on httpx, SOAP on zeep) and one client per outside system.

Adapters import only the shared core (:mod:`hub`). They translate every library exception
into :mod:`hub.errors` at their boundary.
"""
